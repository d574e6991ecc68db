/* cmd_run — `drover runs`, `drover run get`, `drover run cancel` and
 * `drover run delete`: one request each, printed as a table or as JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "cli.h"
#include "fmt.h"
#include "json.h"
#include "runview.h"
#include "table.h"
#include "util.h"

enum { OPT_OUTPUT = 1, OPT_LIMIT };

/* What `runs` asks for without --limit. */
#define RUNS_DEFAULT_LIMIT 50

static const cli_opt_t output_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {NULL, 0, false, 0},
};

static const cli_opt_t runs_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {"limit", 0, true, OPT_LIMIT},
    {NULL, 0, false, 0},
};

#define RUNS_USAGE "drover runs [-o table|json] [--limit N]"
#define RUNS_HELP                                                                                  \
    "List the most recent runs, newest first.\n"                                                   \
    "  -o, --output FORMAT  table (default) or json\n"                                             \
    "      --limit N        show at most N runs (default 50)\n"
#define GET_USAGE "drover run get ID [-o table|json]"
#define GET_HELP                                                                                   \
    "Show a run and the status of each of its steps (a step served from the cache\n"               \
    "says which earlier step it reused), then the output params steps produced\n"                  \
    "(STEP.PARAM = VALUE).\n"                                                                      \
    "  -o, --output FORMAT  table (default) or json\n"
#define CANCEL_USAGE "drover run cancel ID"
#define CANCEL_HELP  "Cancel a run: running steps are killed, the rest will not start.\n"
#define DELETE_USAGE "drover run delete ID"
#define DELETE_HELP                                                                                \
    "Delete a run that has ended: its record, logs and the artifacts only it\n"                    \
    "references. droverd refuses a run that is still running (cancel it first).\n"

static void print_runs_json(Drover__ApiResponse *resp)
{
    json_t *j = json_new(stdout);
    json_array_begin(j);
    for (size_t i = 0; i < resp->n_runs; i++)
        runview_json_summary(j, resp->runs[i]);
    json_array_end(j);
    json_finish(&j);
}

static void print_runs_table(Drover__ApiResponse *resp)
{
    static const char *const headers[] = {"ID", "NAME", "STATUS", "TASKS", "CREATED"};
    table_t *t = table_new(5, headers);
    char buf[FMT_BUF];
    for (size_t i = 0; i < resp->n_runs; i++) {
        const Drover__RunView *r = resp->runs[i];
        table_add(t, r->id, NULL);
        table_add(t, r->name, NULL);
        table_add(t, util_run_status_name(r->status), fmt_run_color(r->status));
        table_addf(t, "%u/%u", r->tasks_done, r->task_count);
        table_add(t, fmt_local_time(r->created_ms, buf), NULL);
    }
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
}

/* Options of `runs`, parsed. */
typedef struct {
    bool json;
    uint32_t limit;
} runs_args_t;

static int parse_runs_args(cli_t *cli, int argc, char **argv, runs_args_t *out)
{
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, runs_opts, RUNS_USAGE);
    out->json = false;
    out->limit = RUNS_DEFAULT_LIMIT;
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(RUNS_USAGE, RUNS_HELP), CLI_STOP;
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(RUNS_USAGE, "unexpected argument '%s'", a.value);
        if (opt == OPT_OUTPUT && cli_parse_output(a.value, &out->json) < 0)
            return cli_usage_error(RUNS_USAGE, "-o expects table or json, got '%s'", a.value);
        if (opt == OPT_LIMIT && (cli_parse_u32(a.value, &out->limit) < 0 || out->limit == 0))
            return cli_usage_error(RUNS_USAGE, "--limit expects a positive number, got '%s'",
                                   a.value);
    }
    return 0;
}

int cmd_runs(cli_t *cli, int argc, char **argv)
{
    runs_args_t ra;
    int rc = parse_runs_args(cli, argc, argv, &ra);
    if (rc != 0)
        return cli_status(rc);

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ListRunsRequest list = DROVER__LIST_RUNS_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    list.limit = ra.limit;
    req.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    req.list_runs = &list;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (ra.json)
        print_runs_json(resp);
    else
        print_runs_table(resp);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* Parse "ID [-o FORMAT]" (json may be NULL when -o is not accepted).
 * Returns 0 with *id set, CLI_STOP after printing help, or CLI_EXIT_USAGE. */
static int parse_id_args(cli_t *cli, int argc, char **argv, const char *usage, const char *help,
                         const char **id, bool *json)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    args_t a;
    int opt;
    *id = NULL;
    args_init(&a, cli, argc, argv, json ? output_opts : none, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, help), CLI_STOP;
        if (opt == ARGS_POSITIONAL && *id)
            return cli_usage_error(usage, "unexpected argument '%s'", a.value);
        if (opt == ARGS_POSITIONAL)
            *id = a.value;
        if (opt == OPT_OUTPUT && cli_parse_output(a.value, json) < 0)
            return cli_usage_error(usage, "-o expects table or json, got '%s'", a.value);
    }
    if (!*id)
        return cli_usage_error(usage, "missing run ID");
    return 0;
}

static void print_run_header(const Drover__RunView *run, bool color)
{
    char a[FMT_BUF], b[FMT_BUF];
    char *params = fmt_kvs(run->params, run->n_params, ", ");
    const char *sgr = color ? fmt_run_color(run->status) : NULL;

    printf("run:       %s\n", run->id);
    fputs("name:      ", stdout);
    fmt_put_clean(stdout, run->name);
    if (sgr)
        printf("\nstatus:    \033[%sm%s\033[0m\n", sgr, util_run_status_name(run->status));
    else
        printf("\nstatus:    %s\n", util_run_status_name(run->status));
    fputs("params:    ", stdout);
    fmt_put_clean(stdout, *params ? params : "-");
    printf("\ncreated:   %s\n", fmt_local_time(run->created_ms, a));
    if (run->finished_ms)
        printf("finished:  %s (took %s)\n", fmt_local_time(run->finished_ms, a),
               fmt_duration(run->finished_ms - run->created_ms, b));
    printf("steps:     %u/%u done\n", run->tasks_done, run->task_count);
    free(params);
}

static int get_run(cli_t *cli, const char *id, Drover__ApiResponse **resp)
{
    api_t *api = api_new(api_endpoint(cli->api));
    if (!api)
        return -EINVAL;
    int rc = api_get_run(api, id, resp);
    api_destroy(&api);
    return rc;
}

int cmd_run_get(cli_t *cli, int argc, char **argv)
{
    const char *id;
    bool json = false;
    int rc = parse_id_args(cli, argc, argv, GET_USAGE, GET_HELP, &id, &json);
    Drover__ApiResponse *resp = NULL;
    if (rc != 0)
        return cli_status(rc);
    if (get_run(cli, id, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (json) {
        json_t *j = json_new(stdout);
        runview_json_run(j, resp->run);
        json_finish(&j);
    } else {
        bool color = fmt_color_ok(stdout);
        table_t *t = runview_task_table(resp->run, NULL, 0, util_now_ms());
        print_run_header(resp->run, color);
        putchar('\n');
        table_print(t, stdout, 0, 0, color);
        table_destroy(&t);
        runview_print_spot(stdout, resp->run, color);
        runview_print_outputs(stdout, resp->run);
    }
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* run cancel / run delete: one run id in, "VERB ID" out. */
static int run_op(cli_t *cli, int argc, char **argv, const char *usage, const char *help,
                  Drover__ApiRequest__OpCase op, const char *verb)
{
    const char *id;
    int rc = parse_id_args(cli, argc, argv, usage, help, &id, NULL);
    if (rc != 0)
        return cli_status(rc);

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    rr.id = (char *)id;
    req.op_case = op;
    if (op == DROVER__API_REQUEST__OP_CANCEL_RUN)
        req.cancel_run = &rr;
    else
        req.delete_run = &rr;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("%s %s\n", verb, *resp->run_id ? resp->run_id : id);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_run_cancel(cli_t *cli, int argc, char **argv)
{
    return run_op(cli, argc, argv, CANCEL_USAGE, CANCEL_HELP, DROVER__API_REQUEST__OP_CANCEL_RUN,
                  "cancelled");
}

int cmd_run_delete(cli_t *cli, int argc, char **argv)
{
    return run_op(cli, argc, argv, DELETE_USAGE, DELETE_HELP, DROVER__API_REQUEST__OP_DELETE_RUN,
                  "deleted");
}
