/* cmd_run — `drover runs`, `drover run get`, `drover run cancel`,
 * `drover run delete`, `drover run resume` (an approval gate) and `drover
 * run spec` (what a run was submitted from): one request each, printed as
 * a table or as JSON (run spec: as text, or written to files). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "bundle.h"
#include "cli.h"
#include "fmt.h"
#include "doc.h"
#include "log.h"
#include "runview.h"
#include "units.h"
#include "table.h"
#include "util.h"

enum {
    OPT_OUTPUT = 1,
    OPT_LIMIT,
    OPT_STATUS,
    OPT_NAME,
    OPT_SINCE,
    OPT_OWNER,
    OPT_WATCH,
    OPT_SCHEDULE
};

/* What `runs` asks for without --limit. */
#define RUNS_DEFAULT_LIMIT 50

/* How often `runs --watch` asks again. */
#define RUNS_WATCH_INTERVAL_MS 1000

static const cli_opt_t output_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {NULL, 0, false, 0},
};

static const cli_opt_t runs_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {"limit", 0, true, OPT_LIMIT},
    {"status", 0, true, OPT_STATUS},
    {"name", 0, true, OPT_NAME},
    {"since", 0, true, OPT_SINCE},
    {"owner", 0, true, OPT_OWNER},
    {"watch", 'w', false, OPT_WATCH},
    {"schedule", 0, true, OPT_SCHEDULE},
    {NULL, 0, false, 0},
};

#define RUNS_USAGE                                                                                 \
    "drover runs [-o " CLI_OUTPUTS "] [--limit N] [--status S[,S]...] [--name NAME]\n"             \
    "            [--since DUR] [--owner WHO] [--schedule NAME] [-w]"
#define RUNS_HELP                                                                                  \
    "List the most recent runs, newest first: AGE since created, DURATION (so far,\n"              \
    "while running); -o wide adds the owner, the created time with its zone, and\n"                \
    "a scheduled run's schedule and logical time.\n" CLI_OUTPUT_HELP                               \
    "      --limit N        show at most N runs that match (default 50)\n"                         \
    "      --status S,...   only runs in one of these statuses (pending, running,\n"               \
    "                       succeeded, failed, cancelled)\n"                                       \
    "      --name NAME      only runs of this pipeline name\n"                                     \
    "      --since DUR      only runs created in the last DUR (30m, 2h, 7d = 168h)\n"              \
    "      --owner WHO      only runs submitted by WHO (an API key's name; local\n"                \
    "                       for the ipc socket)\n"                                                 \
    "      --schedule NAME  only runs a schedule started (drover schedules)\n"                     \
    "  -w, --watch          keep going: print a run's row again whenever it changes\n"             \
    "                       (table, wide or name output; Ctrl-C stops)\n"
#define GET_USAGE "drover run get ID [-o table|json|yaml|name]"
#define GET_HELP                                                                                   \
    "Show a run and the status of each of its steps (a step served from the cache\n"               \
    "says which earlier step it reused), then the output params steps produced\n"                  \
    "(STEP.PARAM = VALUE).\n"                                                                      \
    "  -o, --output FORMAT  table (default), json, yaml or name (the run's id)\n"
#define CANCEL_USAGE "drover run cancel ID"
#define CANCEL_HELP  "Cancel a run: running steps are killed, the rest will not start.\n"
#define DELETE_USAGE "drover run delete ID"
#define DELETE_HELP                                                                                \
    "Delete a run that has ended: its record, logs and the artifacts only it\n"                    \
    "references. droverd refuses a run that is still running (cancel it first).\n"

static void print_runs_doc(Drover__ApiResponse *resp, cli_output_t o)
{
    doc_t *j = cli_doc_writer(o);
    doc_array_begin(j);
    for (size_t i = 0; i < resp->n_runs; i++)
        runview_json_summary(j, resp->runs[i]);
    doc_array_end(j);
    doc_finish(&j);
}

/* The table of runs (or the rows of those with show[i] set, when show is
 * not NULL), with the header unless header is false. */
static void print_runs_table(Drover__ApiResponse *resp, bool wide, const bool *show, bool header)
{
    static const char *const headers[] = {"ID",       "NAME",  "STATUS",  "TASKS",   "AGE",
                                          "DURATION", "OWNER", "CREATED", "SCHEDULE"};
    table_t *t = table_new(wide ? 9 : 6, headers);
    char buf[FMT_BUF];
    int64_t now = util_now_ms();
    for (size_t i = 0; i < resp->n_runs; i++) {
        const Drover__RunView *r = resp->runs[i];
        if (show && !show[i])
            continue;
        table_add(t, r->id, NULL);
        table_add(t, r->name, NULL);
        table_add(t, util_run_status_name(r->status), fmt_run_color(r->status));
        table_addf(t, "%u/%u", r->tasks_done, r->task_count);
        table_add(t, fmt_age(r->created_ms, now, buf), NULL);
        table_add(t,
                  r->created_ms
                      ? fmt_duration((r->finished_ms ? r->finished_ms : now) - r->created_ms, buf)
                      : "-",
                  NULL);
        if (wide) {
            table_add(t, r->owner, NULL);
            table_add(t, fmt_local_time(r->created_ms, buf), NULL);
            if (r->schedule && *r->schedule) /* the schedule and the time the run stands for */
                table_addf(t, "%s %s", r->schedule, fmt_local_time(r->scheduled_ms, buf));
            else
                table_add(t, "-", NULL);
        }
    }
    if (!header)
        table_hide_header(t);
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
}

static void print_runs(Drover__ApiResponse *resp, cli_output_t o, const bool *show, bool header)
{
    if (cli_output_doc(o)) {
        print_runs_doc(resp, o);
        return;
    }
    if (o != CLI_OUT_NAME) {
        print_runs_table(resp, o == CLI_OUT_WIDE, show, header);
        return;
    }
    for (size_t i = 0; i < resp->n_runs; i++)
        if (!show || show[i])
            printf("%s\n", resp->runs[i]->id);
}

/* Options of `runs`, parsed. */
typedef struct {
    cli_output_t out;
    bool watch;
    Drover__ListRunsRequest list; /* strings point into argv */
    Drover__RunStatus statuses[5];
} runs_args_t;

/* Parse "--status running,failed" into r->list. 0 or a usage error. */
static int parse_statuses(runs_args_t *r, const char *value)
{
    char *copy = xstrdup(value), *save = NULL;
    int rc = 0;
    r->list.n_status = 0;
    for (char *w = strtok_r(copy, ",", &save); w && rc == 0; w = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int s = 0; s < 5 && found < 0; s++)
            if (strcasecmp(w, util_run_status_name((Drover__RunStatus)s)) == 0)
                found = s;
        if (found < 0)
            rc = cli_usage_error(RUNS_USAGE,
                                 "--status: '%s' is not pending, running, succeeded, failed or "
                                 "cancelled",
                                 w);
        else if (r->list.n_status < 5)
            r->statuses[r->list.n_status++] = (Drover__RunStatus)found;
    }
    free(copy);
    r->list.status = r->statuses;
    return rc;
}

static int parse_runs_args(cli_t *cli, int argc, char **argv, runs_args_t *out)
{
    args_t a;
    int opt;
    uint64_t since;
    args_init(&a, cli, argc, argv, runs_opts, RUNS_USAGE);
    memset(out, 0, sizeof *out);
    drover__list_runs_request__init(&out->list);
    out->list.limit = RUNS_DEFAULT_LIMIT;
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(RUNS_USAGE, RUNS_HELP), CLI_STOP;
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(RUNS_USAGE, "unexpected argument '%s'", a.value);
        if (opt == OPT_OUTPUT && cli_parse_output(RUNS_USAGE, a.value, &out->out) < 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_LIMIT &&
            (cli_parse_u32(a.value, &out->list.limit) < 0 || out->list.limit == 0))
            return cli_usage_error(RUNS_USAGE, "--limit expects a positive number, got '%s'",
                                   a.value);
        if (opt == OPT_STATUS && parse_statuses(out, a.value) != 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_NAME)
            out->list.name = (char *)a.value;
        if (opt == OPT_OWNER)
            out->list.owner = (char *)a.value;
        if (opt == OPT_SCHEDULE)
            out->list.schedule = (char *)a.value;
        if (opt == OPT_SINCE && (spec_parse_duration(a.value, &since) < 0 || since == 0))
            return cli_usage_error(
                RUNS_USAGE, "--since expects a duration such as 30m or 2h, got '%s'", a.value);
        if (opt == OPT_SINCE)
            out->list.since_ms = util_now_ms() - (int64_t)since;
        if (opt == OPT_WATCH)
            out->watch = true;
    }
    if (out->watch && cli_output_doc(out->out))
        return cli_usage_error(RUNS_USAGE, "--watch prints table, wide or name output, not %s",
                               out->out == CLI_OUT_JSON ? "json" : "yaml");
    return 0;
}

/* Whether run a (now) differs from b (before) in what a row shows. */
static bool run_changed(const Drover__RunView *a, const Drover__RunView *b)
{
    return a->status != b->status || a->tasks_done != b->tasks_done ||
           a->task_count != b->task_count;
}

/* --watch: ask again every RUNS_WATCH_INTERVAL_MS; print the rows of runs
 * that are new or changed since the last answer (the first answer whole).
 * Runs until interrupted or droverd stays away past the patience. */
static int watch_runs(cli_t *cli, runs_args_t *ra)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ApiResponse *prev = NULL;
    api_t *api = api_new(api_endpoint(cli->api));
    if (!api)
        return CLI_EXIT_ERROR;
    api_set_patience(api, 60000);
    req.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    req.list_runs = &ra->list;
    for (bool first = true;; first = false) {
        Drover__ApiResponse *resp = NULL;
        if (api_call(api, &req, &resp) < 0)
            break;
        bool *show = xcalloc(resp->n_runs + 1, sizeof *show), any = false;
        for (size_t i = 0; i < resp->n_runs; i++) {
            const Drover__RunView *before = NULL;
            for (size_t k = 0; prev && k < prev->n_runs && !before; k++)
                if (strcmp(prev->runs[k]->id, resp->runs[i]->id) == 0)
                    before = prev->runs[k];
            show[i] = !before || run_changed(resp->runs[i], before);
            any |= show[i];
        }
        if (any || first)
            print_runs(resp, ra->out, show, first);
        fflush(stdout);
        free(show);
        if (prev)
            drover__api_response__free_unpacked(prev, NULL);
        prev = resp;
        if (ferror(stdout))
            break;
        cli_sleep_ms(RUNS_WATCH_INTERVAL_MS);
    }
    if (prev)
        drover__api_response__free_unpacked(prev, NULL);
    api_destroy(&api);
    return CLI_EXIT_ERROR;
}

int cmd_runs(cli_t *cli, int argc, char **argv)
{
    runs_args_t ra;
    int rc = parse_runs_args(cli, argc, argv, &ra);
    if (rc != 0)
        return cli_status(rc);
    if (ra.watch)
        return watch_runs(cli, &ra);

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    req.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    req.list_runs = &ra.list;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    print_runs(resp, ra.out, NULL, true);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* Parse "ID [-o FORMAT]" (out may be NULL when -o is not accepted).
 * Returns 0 with *id set, CLI_STOP after printing help, or CLI_EXIT_USAGE. */
static int parse_id_args(cli_t *cli, int argc, char **argv, const char *usage, const char *help,
                         const char **id, cli_output_t *out)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    args_t a;
    int opt;
    *id = NULL;
    args_init(&a, cli, argc, argv, out ? output_opts : none, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, help), CLI_STOP;
        if (opt == ARGS_POSITIONAL && *id)
            return cli_usage_error(usage, "unexpected argument '%s'", a.value);
        if (opt == ARGS_POSITIONAL)
            *id = a.value;
        if (opt == OPT_OUTPUT && cli_parse_output(usage, a.value, out) < 0)
            return CLI_EXIT_USAGE;
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
    if (run->schedule && *run->schedule) { /* a scheduled run and the time it stands for */
        fputs("schedule:  ", stdout);
        fmt_put_clean(stdout, run->schedule);
        printf(" for %s", fmt_rfc3339(run->scheduled_ms, a));
        if (run->trigger_run_id && *run->trigger_run_id)
            printf(" (after run %s)", run->trigger_run_id);
        putchar('\n');
    }
    if (run->reason && *run->reason) { /* why it was stopped (a run timeout) */
        fputs("reason:    ", stdout);
        fmt_put_clean(stdout, run->reason);
        putchar('\n');
    }
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
    cli_output_t out = CLI_OUT_TABLE;
    int rc = parse_id_args(cli, argc, argv, GET_USAGE, GET_HELP, &id, &out);
    Drover__ApiResponse *resp = NULL;
    if (rc != 0)
        return cli_status(rc);
    if (get_run(cli, id, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (cli_output_doc(out)) {
        doc_t *j = cli_doc_writer(out);
        runview_json_run(j, resp->run);
        doc_finish(&j);
    } else if (out == CLI_OUT_NAME) {
        printf("%s\n", resp->run->id);
    } else {
        bool color = fmt_color_ok(stdout);
        table_t *t = runview_task_table(resp->run, NULL, 0, util_now_ms());
        print_run_header(resp->run, color);
        putchar('\n');
        table_print(t, stdout, 0, 0, color);
        table_destroy(&t);
        runview_print_spot(stdout, resp->run, color);
        runview_print_gates(stdout, resp->run, color);
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

/* ---------------------------------------------------------------- resume */

enum { OPT_REJECT = 100, OPT_PARAM };

#define RESUME_USAGE "drover run resume RUN STEP [--reject] [-p KEY=VALUE]..."
#define RESUME_HELP                                                                                \
    "End an approval gate (a step with suspend:) that is SUSPENDED: it SUCCEEDS and\n"             \
    "the steps after it go on. Allowed to admin keys, and to the run's owner with\n"               \
    "role submit.\n"                                                                               \
    "      --reject           fail the gate instead (reason \"rejected by YOU\"): its\n"           \
    "                         dependants are skipped and the run fails\n"                          \
    "  -p, --param KEY=VALUE  set an output param the gate declares (outputs:\n"                   \
    "                         {params: [KEY]}); later steps read it as\n"                          \
    "                         {{steps.STEP.outputs.params.KEY}} (repeatable; a declared\n"         \
    "                         param not given is \"\")\n"

int cmd_run_resume(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {
        {"reject", 0, false, OPT_REJECT}, {"param", 'p', true, OPT_PARAM}, {NULL, 0, false, 0}};
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ResumeRequest rr = DROVER__RESUME_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    const char *pos[2] = {NULL, NULL};
    size_t n_pos = 0;
    int rc = 0, opt;
    args_t a;
    args_init(&a, cli, argc, argv, opts, RESUME_USAGE);
    while (rc == 0 && (opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR) {
            rc = CLI_EXIT_USAGE;
        } else if (opt == ARGS_HELP) {
            cli_help(RESUME_USAGE, RESUME_HELP);
            rc = CLI_STOP;
        } else if (opt == ARGS_POSITIONAL) {
            if (n_pos == 2)
                rc = cli_usage_error(RESUME_USAGE, "unexpected argument '%s'", a.value);
            else
                pos[n_pos++] = a.value;
        } else if (opt == OPT_REJECT) {
            rr.reject = true;
        } else if (opt == OPT_PARAM &&
                   (rc = cli_param(RESUME_USAGE, a.value, &rr.params, &rr.n_params)) != 0) {
            break;
        }
    }
    if (rc == 0 && n_pos < 2)
        rc = cli_usage_error(RESUME_USAGE, n_pos ? "missing STEP" : "missing RUN and STEP");
    if (rc == 0 && rr.reject && rr.n_params)
        rc = cli_usage_error(RESUME_USAGE, "--reject takes no -p");
    if (rc != 0) {
        util_free_kvs(rr.params, rr.n_params);
        return cli_status(rc);
    }
    rr.run_id = (char *)pos[0];
    rr.step = (char *)pos[1];
    req.op_case = DROVER__API_REQUEST__OP_RESUME;
    req.resume = &rr;
    rc = api_call_once(cli->api, &req, &resp);
    util_free_kvs(rr.params, rr.n_params);
    if (rc < 0)
        return CLI_EXIT_ERROR;
    printf("%s %s %s\n", rr.reject ? "rejected" : "resumed", resp->run_id, pos[1]);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- spec */

#define SPEC_USAGE "drover run spec ID [-o DIR]"
#define SPEC_HELP                                                                                  \
    "Print what a run was submitted from, as droverd stored it with the run: the\n"                \
    "spec file, then each file it imports as its own YAML document, after \"---\"\n"               \
    "and a line \"# import: PATH\" (PATH relative to the spec's directory).\n"                     \
    "  -o, --output DIR  write them instead: the spec as DIR/NAME (its file name)\n"               \
    "                    and each import at DIR/PATH, so that `drover submit\n"                    \
    "                    DIR/NAME` submits it again (files there are replaced; an\n"               \
    "                    import outside the spec's directory ('..') is refused)\n"                 \
    "The -p values it was submitted with, if any, are named on standard error.\n"

/* The file name `run spec -o` gives the main spec: the base name it was
 * submitted as, "spec.yaml" for standard input. */
static const char *spec_main_name(const char *file)
{
    const char *slash = strrchr(file, '/');
    const char *base = slash ? slash + 1 : file;
    return !*base || *base == '<' ? "spec.yaml" : base;
}

/* text, then a newline unless it ends with one (or is empty). */
static void put_text(const ProtobufCBinaryData *text)
{
    fwrite(text->data, 1, text->len, stdout);
    if (text->len && text->data[text->len - 1] != '\n')
        putchar('\n');
}

/* "note: run ID was submitted with -p K=V ...", on stderr, when it was. */
static void note_params(const char *id, const Drover__RunSpecRecord *rec)
{
    if (!rec->n_params)
        return;
    fprintf(stderr, "note: run %s was submitted with", id);
    for (size_t i = 0; i < rec->n_params; i++) {
        char *kv = xasprintf("%s=%s", rec->params[i]->key, rec->params[i]->value);
        char *shown = fmt_clean(kv, RUNVIEW_MAX_VALUE);
        fprintf(stderr, " -p %s", shown);
        free(shown);
        free(kv);
    }
    fputc('\n', stderr);
}

int cmd_run_spec(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {{"output", 'o', true, OPT_OUTPUT}, {NULL, 0, false, 0}};
    const char *id = NULL, *dir = NULL;
    int opt;
    args_t a;
    args_init(&a, cli, argc, argv, opts, SPEC_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(SPEC_USAGE, SPEC_HELP);
        if (opt == ARGS_POSITIONAL && id)
            return cli_usage_error(SPEC_USAGE, "unexpected argument '%s'", a.value);
        if (opt == ARGS_POSITIONAL)
            id = a.value;
        if (opt == OPT_OUTPUT && !*a.value)
            return cli_usage_error(SPEC_USAGE, "-o expects a directory");
        if (opt == OPT_OUTPUT)
            dir = a.value;
    }
    if (!id)
        return cli_usage_error(SPEC_USAGE, "missing run ID");

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    rr.id = (char *)id;
    req.op_case = DROVER__API_REQUEST__OP_GET_SPEC;
    req.get_spec = &rr;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    const Drover__RunSpecRecord *rec = resp->spec;
    int rc = CLI_EXIT_OK;
    if (!rec) {
        log_error("droverd sent no spec for run %s", id);
        rc = CLI_EXIT_ERROR;
    } else if (dir) {
        char err[1024];
        const char *name = spec_main_name(rec->file);
        if (bundle_write(dir, name, rec->text.data, rec->text.len, rec->imports, rec->n_imports,
                         err, sizeof err) < 0) {
            log_error("%s", err);
            rc = CLI_EXIT_ERROR;
        } else {
            printf("%s/%s\n", dir, name);
            for (size_t i = 0; i < rec->n_imports; i++)
                if (strcmp(rec->imports[i]->path, name) != 0)
                    printf("%s/%s\n", dir, rec->imports[i]->path);
        }
    } else {
        put_text(&rec->text);
        for (size_t i = 0; i < rec->n_imports; i++) {
            printf("---\n# import: %s\n", rec->imports[i]->path);
            put_text(&rec->imports[i]->text);
        }
    }
    if (rc == CLI_EXIT_OK)
        note_params(id, rec);
    drover__api_response__free_unpacked(resp, NULL);
    return rc;
}
