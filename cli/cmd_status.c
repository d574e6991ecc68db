/* cmd_status — `drover status`: droverd's security settings (CURVE,
 * keys loaded), its limits, what it refused or dropped since it started,
 * and its READY tasks counted by why they wait. */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "cli.h"
#include "doc.h"
#include "fmt.h"

#define STATUS_USAGE "drover status [-o table|json|yaml]"
#define STATUS_HELP                                                                                \
    "Show this CLI's and droverd's versions, whether keys are required on the agents and API\n"    \
    "sockets, its limits, and counters of what it refused (unknown keys, roles, join\n"            \
    "tokens, specs over a limit, undecodable messages) or dropped (API clients not reading\n"      \
    "their replies), and the READY tasks counted by why they wait (no agent offers what\n"         \
    "they ask for, a pool is growing, their run's parallelism, all agents that fit busy).\n"       \
    "  -o, --output FORMAT  table (default), json or yaml\n"

enum { OPT_OUTPUT = 1 };

static void print_kvs_json(doc_t *j, const char *key, Drover__KeyValue **kvs, size_t n)
{
    doc_key(j, key);
    doc_object_begin(j);
    for (size_t i = 0; i < n; i++) {
        doc_key(j, kvs[i]->key);
        doc_uint(j, strtoull(kvs[i]->value, NULL, 10));
    }
    doc_object_end(j);
}

int cmd_status(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {{"output", 'o', true, OPT_OUTPUT}, {NULL, 0, false, 0}};
    cli_output_t out = CLI_OUT_TABLE;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, STATUS_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(STATUS_USAGE, STATUS_HELP);
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(STATUS_USAGE, "unexpected argument '%s'", a.value);
        if (opt == OPT_OUTPUT && cli_parse_output(STATUS_USAGE, a.value, &out) < 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_OUTPUT && (out == CLI_OUT_WIDE || out == CLI_OUT_NAME))
            return cli_usage_error(STATUS_USAGE, "-o expects table, json or yaml, got '%s'",
                                   a.value);
    }
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty empty = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp = NULL;
    req.op_case = DROVER__API_REQUEST__OP_STATUS;
    req.status = &empty;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    const Drover__StatusView *v = resp->status;
    if (!v) {
        fprintf(stderr, "drover: error: droverd sent no status (an older droverd?)\n");
        drover__api_response__free_unpacked(resp, NULL);
        return CLI_EXIT_ERROR;
    }
    if (cli_output_doc(out)) {
        doc_t *j = cli_doc_writer(out);
        doc_object_begin(j);
        doc_field_str(j, "version", v->version);
        doc_field_str(j, "cli_version", DROVER_VERSION);
        doc_field_bool(j, "curve", v->curve);
        doc_field_bool(j, "api_curve", v->api_curve);
        doc_field_uint(j, "agent_keys", v->agent_keys);
        doc_field_uint(j, "api_keys", v->api_keys);
        doc_field_str(j, "caller", v->caller);
        print_kvs_json(j, "limits", v->limits, v->n_limits);
        print_kvs_json(j, "counters", v->counters, v->n_counters);
        doc_field_uint(j, "waiting_total", v->waiting_total);
        doc_key(j, "waiting");
        doc_array_begin(j);
        for (size_t i = 0; i < v->n_waiting; i++) {
            doc_object_begin(j);
            doc_field_str(j, "reason", v->waiting[i]->reason);
            doc_field_uint(j, "count", v->waiting[i]->count);
            doc_object_end(j);
        }
        doc_array_end(j);
        doc_object_end(j);
        doc_finish(&j);
    } else {
        printf("droverd %s, drover (this CLI) %s; you are %s\n", v->version, DROVER_VERSION,
               v->caller);
        printf("agents socket: %s\n", v->curve ? "CURVE (keys required)" : "no keys");
        printf("api socket:    %s\n", v->api_curve ? "CURVE (keys required)" : "local (ipc)");
        printf("keys loaded:   %u agents, %u API users\n", v->agent_keys, v->api_keys);
        printf("\nLIMITS\n");
        for (size_t i = 0; i < v->n_limits; i++)
            printf("  %-18s %s\n", v->limits[i]->key, v->limits[i]->value);
        printf("\nREFUSED OR DROPPED SINCE START\n");
        for (size_t i = 0; i < v->n_counters; i++)
            printf("  %-18s %s\n", v->counters[i]->key, v->counters[i]->value);
        char n[FMT_BUF];
        printf("\nWAITING: %s READY task%s\n", fmt_count(v->waiting_total, n),
               v->waiting_total == 1 ? "" : "s");
        for (size_t i = 0; i < v->n_waiting; i++) {
            printf("  %12s  ", fmt_count(v->waiting[i]->count, n));
            fmt_put_clean(stdout, v->waiting[i]->reason);
            putchar('\n');
        }
    }
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}
