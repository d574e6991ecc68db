/* cmd_events — `drover events [-f] [--run ID] [--since N] [-o FORMAT]`:
 * droverd's event log (README "Events"), oldest first: every run and task
 * transition with its attempt, agent and reason, agents connecting,
 * lost, drained or noticed, checkpoints, pool nodes' states. Pages
 * through the log (at most PAGE events a request) from seq --since + 1.
 * -f then asks again with wait_ms = FOLLOW_WAIT_MS: droverd holds the
 * request and answers right after the commit that puts the next matching
 * event (no polling), or empty at the wait's end; it goes on from the
 * answer's next_seq. A reader whose --since is below the oldest event
 * kept is told on stderr that it fell behind. A droverd restart: the held
 * request is lost with it, and the client asks again (patience). Role
 * read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "doc.h"
#include "fmt.h"
#include "util.h"

#define USAGE "drover events [-f] [--run ID] [--since N] [-o " CLI_OUTPUTS "]"
#define HELP                                                                                       \
    "droverd's event log, oldest first: runs' and tasks' transitions (with attempt,\n"             \
    "agent, reason, exit code), agents connected, lost, drained and noticed,\n"                    \
    "checkpoints, pool nodes' states. Each event has a sequence number (SEQ), counting\n"          \
    "up without gaps; --since N shows those after N; --run ID only run ID's.\n"                    \
    "-f, --follow: go on printing events as they commit: droverd holds each request\n"             \
    "until the next matching event commits (no polling); a droverd restart is ridden\n"            \
    "out (60 s). Table and wide only. The log is pruned by droverd's --events-max and\n"           \
    "--events-max-age: a --since below what is kept is warned of.\n"                               \
    "-o name is refused (events have no names).\n" CLI_OUTPUT_HELP

#define PAGE           1000
#define FOLLOW_WAIT_MS 2000 /* how long droverd holds one -f request */
#define OLD_POLL_MS    200  /* a droverd from before wait_ms: polled */

enum { OPT_OUTPUT = 1, OPT_RUN, OPT_SINCE, OPT_FOLLOW };

static const cli_opt_t opts[] = {
    {"output", 'o', true, OPT_OUTPUT},  {"run", 0, true, OPT_RUN}, {"since", 0, true, OPT_SINCE},
    {"follow", 'f', false, OPT_FOLLOW}, {NULL, 0, false, 0},
};

static const char *kind_name(Drover__EventKind k)
{
    switch (k) {
    case DROVER__EVENT_KIND__EVENT_TASK:
        return "task";
    case DROVER__EVENT_KIND__EVENT_RUN:
        return "run";
    case DROVER__EVENT_KIND__EVENT_AGENT:
        return "agent";
    case DROVER__EVENT_KIND__EVENT_CHECKPOINT:
        return "checkpoint";
    case DROVER__EVENT_KIND__EVENT_POOL_NODE:
        return "pool-node";
    default:
        return "?";
    }
}

/* The DETAIL column: attempt, agent, exit, checkpoint step, pool, reason. */
static void detail(const Drover__EventRecord *e, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (at < len)                                                                              \
            at += (size_t)snprintf(buf + at, len - at, __VA_ARGS__);                               \
    } while (0)
    if (e->attempt)
        ADD("%sattempt %u", at ? ", " : "", e->attempt);
    if (*e->agent && e->kind != DROVER__EVENT_KIND__EVENT_AGENT)
        ADD("%son %s", at ? ", " : "", e->agent);
    if (e->has_exit)
        ADD("%sexit %d", at ? ", " : "", e->exit_code);
    if (e->kind == DROVER__EVENT_KIND__EVENT_CHECKPOINT)
        ADD("%sstep %" PRIu64, at ? ", " : "", e->checkpoint_step);
    if (*e->reason)
        ADD("%s%s", at ? ": " : "", e->reason);
#undef ADD
}

static void print_header(bool wide)
{
    printf(wide ? "%-8s %-24s %-10s %-9s %-24s %-26s %s\n"
                : "%-8s %-12s %-10s %-9s %-24s %-26s %s\n",
           "SEQ", "TIME", "KIND", "RUN", "TASK", "FROM→TO", "DETAIL");
}

static void print_event(const Drover__EventRecord *e, bool wide)
{
    char when[64], what[256], ft[96], det[512];
    if (wide)
        fmt_rfc3339(e->time_ms, when);
    else
        fmt_clock(e->time_ms, when);
    if (e->kind == DROVER__EVENT_KIND__EVENT_AGENT)
        snprintf(what, sizeof what, "%s", e->agent);
    else if (e->kind == DROVER__EVENT_KIND__EVENT_POOL_NODE)
        snprintf(what, sizeof what, "%s/%s", e->pool, e->node);
    else
        snprintf(what, sizeof what, "%s", *e->task ? e->task : "-");
    if (e->kind == DROVER__EVENT_KIND__EVENT_CHECKPOINT)
        snprintf(ft, sizeof ft, "-");
    else
        snprintf(ft, sizeof ft, "%s→%s", *e->from ? e->from : "", e->to);
    detail(e, det, sizeof det);
    /* "→" is 3 bytes shown as 1 column: pad by 2 more */
    int ftw = 26 + (strstr(ft, "→") ? 2 : 0);
    printf(wide ? "%-8" PRIu64 " %-24s %-10s %-9s %-24s %-*s %s\n"
                : "%-8" PRIu64 " %-12s %-10s %-9s %-24s %-*s %s\n",
           e->seq, when, kind_name(e->kind), *e->run_id ? e->run_id : "-", what, ftw, ft,
           *det ? det : "-");
}

static void doc_event(doc_t *j, const Drover__EventRecord *e)
{
    doc_object_begin(j);
    doc_field_uint(j, "seq", e->seq);
    doc_field_time(j, "time", e->time_ms);
    doc_field_str(j, "kind", kind_name(e->kind));
    doc_field_str(j, "run", e->run_id);
    doc_field_str(j, "task", e->task);
    doc_field_str(j, "from", e->from);
    doc_field_str(j, "to", e->to);
    doc_field_uint(j, "attempt", e->attempt);
    doc_field_str(j, "agent", e->agent);
    doc_field_str(j, "reason", e->reason);
    doc_key(j, "exit_code");
    if (e->has_exit)
        doc_int(j, e->exit_code);
    else
        doc_null(j);
    doc_field_uint(j, "checkpoint_step", e->checkpoint_step);
    doc_field_str(j, "pool", e->pool);
    doc_field_str(j, "node", e->node);
    doc_object_end(j);
}

int cmd_events(cli_t *cli, int argc, char **argv)
{
    cli_output_t out = CLI_OUT_TABLE;
    Drover__EventsRequest er = DROVER__EVENTS_REQUEST__INIT;
    bool follow = false;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(USAGE, HELP);
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(USAGE, "unexpected argument '%s'", a.value);
        if (opt == OPT_OUTPUT && cli_parse_output(USAGE, a.value, &out) < 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_RUN)
            er.run_id = (char *)a.value;
        if (opt == OPT_FOLLOW)
            follow = true;
        if (opt == OPT_SINCE) {
            char *end;
            er.since = strtoull(a.value, &end, 10);
            if (!*a.value || *end || *a.value == '-')
                return cli_usage_error(USAGE, "--since expects a sequence number, got '%s'",
                                       a.value);
        }
    }
    if (follow && cli_output_doc(out))
        return cli_usage_error(USAGE, "-f prints table or wide output");
    if (out == CLI_OUT_NAME)
        return cli_usage_error(USAGE, "-o name: events have no names; use table, wide, json or "
                                      "yaml");
    er.max = PAGE;
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_EVENTS;
    req.events = &er;
    api_t *api = api_new(api_endpoint(cli->api));
    if (!api)
        return CLI_EXIT_ERROR;
    if (follow)
        api_set_patience(api, 60000);
    doc_t *j = NULL;
    if (cli_output_doc(out)) {
        j = cli_doc_writer(out);
        doc_array_begin(j);
    }
    int rc = CLI_EXIT_OK;
    bool header = false, warned = false;
    for (;;) {
        Drover__ApiResponse *resp = NULL;
        if (api_call(api, &req, &resp) < 0) {
            rc = CLI_EXIT_ERROR;
            break;
        }
        if (resp->truncated && !warned)
            fprintf(stderr,
                    "drover events: events %" PRIu64 "..%" PRIu64 " were pruned (droverd's "
                    "--events-max, --events-max-age): this starts at %" PRIu64 "\n",
                    er.since + 1, resp->first_seq - 1, resp->first_seq);
        warned = warned || resp->truncated;
        for (size_t i = 0; i < resp->n_events; i++) {
            if (j) {
                doc_event(j, resp->events[i]);
                continue;
            }
            if (!header)
                print_header(out == CLI_OUT_WIDE);
            header = true;
            print_event(resp->events[i], out == CLI_OUT_WIDE);
        }
        size_t n = resp->n_events;
        uint64_t was = er.since;
        if (n)
            er.since = resp->events[n - 1]->seq;
        if (resp->next_seq > er.since)
            er.since = resp->next_seq; /* a filtered scan: where droverd stopped looking */
        /* without -f: on until droverd has looked at the whole log */
        bool more = n == PAGE || (!follow && er.since > was);
        bool old = follow && !n && !resp->next_seq; /* a droverd that does not hold */
        drover__api_response__free_unpacked(resp, NULL);
        fflush(stdout);
        if (more)
            continue; /* more now */
        if (!follow || ferror(stdout))
            break;
        er.wait_ms = FOLLOW_WAIT_MS; /* held until the next event commits */
        if (old)
            cli_sleep_ms(OLD_POLL_MS);
    }
    if (j) {
        doc_array_end(j);
        doc_finish(&j);
    }
    if (!j && !header && rc == CLI_EXIT_OK && !follow)
        fprintf(stderr, "no events%s\n", er.run_id ? " for this run" : "");
    api_destroy(&api);
    return rc;
}
