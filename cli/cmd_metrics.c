/* cmd_metrics — `drover metrics`: droverd's metrics (README "Metrics")
 * in the Prometheus text exposition format, as drover-web's GET /metrics
 * serves them (both render with common/metrics_text.c), so a script, a
 * node_exporter textfile collector or `promtool check metrics` can read
 * them without drover-web. Role read. */
#include <stdio.h>

#include "api.h"
#include "cli.h"
#include "metrics_text.h"
#include "strbuf.h"

#define METRICS_USAGE "drover metrics"
#define METRICS_HELP                                                                               \
    "Print droverd's metrics in the Prometheus text format: dispatch and commit latency\n"         \
    "histograms, preemptions, checkpoints, tasks and runs by status, READY tasks by why\n"         \
    "they wait, agents by state and class, pool nodes and demand, the blob store and the\n"        \
    "event log (README \"Metrics\" lists them).\n"

int cmd_metrics(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, none, METRICS_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(METRICS_USAGE, METRICS_HELP);
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(METRICS_USAGE, "unexpected argument '%s'", a.value);
    }
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty empty = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp = NULL;
    req.op_case = DROVER__API_REQUEST__OP_METRICS;
    req.metrics = &empty;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    int rc = CLI_EXIT_OK;
    strbuf_t out = {0};
    if (!resp->metrics) {
        fprintf(stderr, "drover: error: droverd sent no metrics (an older droverd?)\n");
        rc = CLI_EXIT_ERROR;
    } else if (metrics_text(resp->metrics, &out) < 0) {
        fprintf(stderr, "drover: error: droverd's metrics cannot be written as Prometheus "
                        "text (a bad metric or label name)\n");
        rc = CLI_EXIT_ERROR;
    } else if (out.len && fwrite(out.buf, 1, out.len, stdout) != out.len) {
        rc = CLI_EXIT_ERROR;
    }
    sb_free(&out);
    drover__api_response__free_unpacked(resp, NULL);
    return rc;
}
