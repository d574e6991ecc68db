/* cmd_agents — `drover agents` (the fleet, as a table or JSON),
 * `drover agent drain NAME` (stop placing new work on an agent; what runs
 * there finishes), `drover agent forget NAME` (drop a gone agent) and `drover agent preempt NAME`
 * (a preemption drill: the agent hands its steps back as if its cloud had reclaimed it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "fmt.h"
#include "doc.h"
#include "units.h"
#include "table.h"
#include "util.h"

enum { OPT_OUTPUT = 1, OPT_LABEL, OPT_WATCH };

/* How often `agents --watch` asks again. */
#define AGENTS_WATCH_INTERVAL_MS 1000

/* At most this many -l filters. */
#define MAX_LABEL_FILTERS 16

static const cli_opt_t agents_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {"label", 'l', true, OPT_LABEL},
    {"watch", 'w', false, OPT_WATCH},
    {NULL, 0, false, 0},
};

#define AGENTS_USAGE "drover agents [-o " CLI_OUTPUTS "] [-l KEY=VALUE]... [-w]"
#define AGENTS_HELP                                                                                \
    "List the agents droverd knows, with used/total resources and how long ago\n"                  \
    "each was last heard from (LAST SEEN; -o wide adds the time with its zone).\n" CLI_OUTPUT_HELP \
    "  -l, --label KEY=VALUE  only agents with this label (repeat: all of them)\n"                 \
    "  -w, --watch            keep going: print an agent's row again whenever it\n"                \
    "                         changes (table, wide or name output; Ctrl-C stops)\n"
#define DRAIN_USAGE   "drover agent drain NAME"
#define DRAIN_HELP    "Stop placing new steps on agent NAME; steps running there finish.\n"
#define UNDRAIN_USAGE "drover agent undrain NAME"
#define UNDRAIN_HELP                                                                               \
    "Put a drained agent NAME back in service; a drill (drover agent preempt) of it\n"             \
    "ends at once. A cloud's preemption notice is not ended.\n"
#define FORGET_USAGE "drover agent forget NAME"
#define FORGET_HELP                                                                                \
    "Forget agent NAME (admin): droverd drops its record. Only an agent that is\n"                 \
    "disconnected and holds no steps can be forgotten; one that registers again\n"                 \
    "later is a new agent.\n"
#define PREEMPT_USAGE "drover agent preempt NAME [--deadline DUR]"
#define PREEMPT_HELP                                                                               \
    "Drill a preemption of agent NAME through the same path as a cloud's notice:\n"                \
    "droverd stops placing work there, the agent signals its steps, commits their\n"               \
    "last checkpoints and hands them back to resume elsewhere. At the deadline the\n"              \
    "drill ends: the agent returns to service, or exits if it runs with --drill-exit\n"            \
    "(drover agents says which); drover agent undrain ends it at once.\n"                          \
    "  --deadline DUR  when the node 'goes away' (e.g. 30s, 2m) [30s]\n"

static const char *agent_state(const Drover__AgentView *a)
{
    if (!a->connected)
        return a->drained ? "disconnected,drained" : "disconnected";
    if (a->preempt && a->preempt->terminate && a->preempt->reason &&
        strncmp(a->preempt->reason, "drill", 5) == 0)
        return strstr(a->preempt->reason, "agent exits") ? "preempting (drill; then exits)"
                                                         : "preempting (drill; then back)";
    if (a->preempt)
        return a->preempt->terminate ? "preempting" : "at-risk";
    return a->drained ? "drained" : "connected";
}

static const char *state_color(const Drover__AgentView *a)
{
    if (!a->connected)
        return "31";
    return a->drained || a->preempt ? "33" : "32";
}

static const Drover__Resources *res_or_zero(const Drover__Resources *r)
{
    static const Drover__Resources zero = DROVER__RESOURCES__INIT;
    return r ? r : &zero;
}

/* The row of a, up to LABELS; seen is the LAST SEEN cell. */
static void add_agent_row(table_t *t, const Drover__AgentView *a, const char *seen)
{
    const Drover__Resources *cap = res_or_zero(a->capacity), *used = res_or_zero(a->used);
    char x[FMT_BUF], y[FMT_BUF];
    char *labels = fmt_kvs(a->labels, a->n_labels, ",");
    table_add(t, a->name, NULL);
    table_add(t, agent_state(a), state_color(a));
    table_addf(t, "%s/%s", fmt_cpu(used->cpu_milli, x), fmt_cpu(cap->cpu_milli, y));
    table_addf(t, "%s/%s", fmt_bytes(used->memory_bytes, x), fmt_bytes(cap->memory_bytes, y));
    table_addf(t, "%u/%u", used->gpus, cap->gpus);
    table_addf(t, "%u", a->running);
    table_add(t, a->runtime && *a->runtime ? a->runtime : "-", NULL);
    if (a->price > 0)
        table_addf(t, "%s $%.3g/h", a->spot ? "spot" : "on-demand", a->price);
    else
        table_add(t, a->spot ? "spot" : "on-demand", NULL);
    table_add(t, seen, NULL);
    table_add(t, labels, NULL);
    free(labels);
}

/* The agents whose show[i] is set (all when show is NULL). */
static void print_agents_table(const Drover__ApiResponse *resp, bool wide, const bool *show,
                               bool header)
{
    static const char *const headers[] = {"NAME",      "STATE",   "CPU",     "MEMORY",
                                          "GPU",       "RUNNING", "RUNTIME", "CAPACITY",
                                          "LAST SEEN", "LABELS",  "SEEN AT"};
    table_t *t = table_new(wide ? 11 : 10, headers);
    char buf[FMT_BUF];
    int64_t now = util_now_ms();
    for (size_t i = 0; i < resp->n_agents; i++) {
        const Drover__AgentView *a = resp->agents[i];
        if (show && !show[i])
            continue;
        add_agent_row(t, a, fmt_age(a->last_seen_ms, now, buf));
        if (wide)
            table_add(t, fmt_local_time(a->last_seen_ms, buf), NULL);
    }
    if (!header)
        table_hide_header(t);
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
}

static void json_agent(doc_t *j, const Drover__AgentView *a)
{
    const Drover__Resources *cap = res_or_zero(a->capacity), *used = res_or_zero(a->used);
    doc_object_begin(j);
    doc_field_str(j, "name", a->name);
    doc_field_bool(j, "connected", a->connected);
    doc_field_bool(j, "drained", a->drained);
    doc_key(j, "labels");
    doc_kv_object(j, a->labels, a->n_labels);
    doc_field_uint(j, "cpu_milli", cap->cpu_milli);
    doc_field_uint(j, "memory_bytes", cap->memory_bytes);
    doc_field_uint(j, "gpus", cap->gpus);
    doc_field_uint(j, "used_cpu_milli", used->cpu_milli);
    doc_field_uint(j, "used_memory_bytes", used->memory_bytes);
    doc_field_uint(j, "used_gpus", used->gpus);
    doc_field_uint(j, "running", a->running);
    doc_field_str(j, "runtime", a->runtime);
    doc_field_bool(j, "images", a->images);
    doc_field_bool(j, "spot", a->spot);
    doc_field_double(j, "price", a->price);
    doc_key(j, "preemption");
    if (a->preempt) {
        doc_object_begin(j);
        doc_field_bool(j, "terminate", a->preempt->terminate);
        doc_field_int(j, "deadline_ms", a->preempt->deadline_ms);
        doc_field_str(j, "reason", a->preempt->reason);
        doc_object_end(j);
    } else {
        doc_null(j);
    }
    doc_field_time(j, "last_seen", a->last_seen_ms);
    doc_object_end(j);
}

static void print_agents(const Drover__ApiResponse *resp, cli_output_t o, const bool *show,
                         bool header)
{
    if (o == CLI_OUT_TABLE || o == CLI_OUT_WIDE) {
        print_agents_table(resp, o == CLI_OUT_WIDE, show, header);
        return;
    }
    if (o == CLI_OUT_NAME) {
        for (size_t i = 0; i < resp->n_agents; i++)
            if (!show || show[i])
                printf("%s\n", resp->agents[i]->name);
        return;
    }
    doc_t *j = cli_doc_writer(o);
    doc_array_begin(j);
    for (size_t i = 0; i < resp->n_agents; i++)
        if (!show || show[i])
            json_agent(j, resp->agents[i]);
    doc_array_end(j);
    doc_finish(&j);
}

typedef struct {
    cli_output_t out;
    bool watch;
    const char *labels[MAX_LABEL_FILTERS]; /* "key=value", in argv */
    size_t n_labels;
} agents_args_t;

/* Whether agent a has every label of the -l filters. */
static bool agent_matches(const Drover__AgentView *a, const agents_args_t *f)
{
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *eq = strchr(f->labels[i], '=');
        size_t klen = (size_t)(eq - f->labels[i]);
        bool found = false;
        for (size_t k = 0; k < a->n_labels && !found; k++)
            found = strlen(a->labels[k]->key) == klen &&
                    strncmp(a->labels[k]->key, f->labels[i], klen) == 0 &&
                    strcmp(a->labels[k]->value, eq + 1) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* What a row shows changed between before and now. */
static bool agent_changed(const Drover__AgentView *a, const Drover__AgentView *b)
{
    const Drover__Resources *ua = res_or_zero(a->used), *ub = res_or_zero(b->used);
    return a->connected != b->connected || a->drained != b->drained ||
           (a->preempt != NULL) != (b->preempt != NULL) || a->running != b->running ||
           ua->cpu_milli != ub->cpu_milli || ua->memory_bytes != ub->memory_bytes ||
           ua->gpus != ub->gpus;
}

/* Fill show[i] for the agents that pass the filters and, with prev, are
 * new or changed since prev. Returns whether any is shown. */
static bool select_agents(const Drover__ApiResponse *resp, const Drover__ApiResponse *prev,
                          const agents_args_t *f, bool *show)
{
    bool any = false;
    for (size_t i = 0; i < resp->n_agents; i++) {
        const Drover__AgentView *a = resp->agents[i], *before = NULL;
        for (size_t k = 0; prev && k < prev->n_agents && !before; k++)
            if (strcmp(prev->agents[k]->name, a->name) == 0)
                before = prev->agents[k];
        show[i] = agent_matches(a, f) && (!prev || !before || agent_changed(a, before));
        any |= show[i];
    }
    return any;
}

static int parse_agents_args(cli_t *cli, int argc, char **argv, agents_args_t *f)
{
    args_t a;
    int opt;
    memset(f, 0, sizeof *f);
    args_init(&a, cli, argc, argv, agents_opts, AGENTS_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(AGENTS_USAGE, AGENTS_HELP), CLI_STOP;
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(AGENTS_USAGE, "unexpected argument '%s'", a.value);
        if (opt == OPT_OUTPUT && cli_parse_output(AGENTS_USAGE, a.value, &f->out) < 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_WATCH)
            f->watch = true;
        if (opt == OPT_LABEL) {
            const char *eq = strchr(a.value, '=');
            if (!eq || eq == a.value)
                return cli_usage_error(AGENTS_USAGE, "-l expects KEY=VALUE, got '%s'", a.value);
            if (f->n_labels == MAX_LABEL_FILTERS)
                return cli_usage_error(AGENTS_USAGE, "at most %d -l filters", MAX_LABEL_FILTERS);
            f->labels[f->n_labels++] = a.value;
        }
    }
    if (f->watch && cli_output_doc(f->out))
        return cli_usage_error(AGENTS_USAGE, "--watch prints table, wide or name output");
    return 0;
}

int cmd_agents(cli_t *cli, int argc, char **argv)
{
    agents_args_t f;
    int rc = parse_agents_args(cli, argc, argv, &f);
    if (rc != 0)
        return cli_status(rc);

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    Drover__ApiResponse *prev = NULL;
    req.op_case = DROVER__API_REQUEST__OP_LIST_AGENTS;
    req.list_agents = &ar;
    api_t *api = api_new(api_endpoint(cli->api));
    if (!api)
        return CLI_EXIT_ERROR;
    if (f.watch)
        api_set_patience(api, 60000);
    rc = CLI_EXIT_ERROR;
    for (bool first = true;; first = false) {
        Drover__ApiResponse *resp = NULL;
        if (api_call(api, &req, &resp) < 0)
            break;
        bool *show = xcalloc(resp->n_agents + 1, sizeof *show);
        if (select_agents(resp, prev, &f, show) || first)
            print_agents(resp, f.out, show, first);
        fflush(stdout);
        free(show);
        if (prev)
            drover__api_response__free_unpacked(prev, NULL);
        prev = resp;
        if (!f.watch) {
            rc = CLI_EXIT_OK;
            break;
        }
        if (ferror(stdout))
            break;
        cli_sleep_ms(AGENTS_WATCH_INTERVAL_MS);
    }
    if (prev)
        drover__api_response__free_unpacked(prev, NULL);
    api_destroy(&api);
    return rc;
}

/* drain, undrain or forget: one agent NAME, one request, "VERB NAME". */
static int name_op(cli_t *cli, int argc, char **argv, Drover__ApiRequest__OpCase op, bool undrain)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    bool forget = op == DROVER__API_REQUEST__OP_FORGET_AGENT;
    const char *usage = forget ? FORGET_USAGE : undrain ? UNDRAIN_USAGE : DRAIN_USAGE;
    const char *help = forget ? FORGET_HELP : undrain ? UNDRAIN_HELP : DRAIN_HELP;
    const char *name = NULL;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, none, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, help);
        if (name)
            return cli_usage_error(usage, "unexpected argument '%s'", a.value);
        name = a.value;
    }
    if (!name)
        return cli_usage_error(usage, "missing agent NAME");

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    ar.name = (char *)name;
    ar.undrain = undrain;
    req.op_case = op;
    if (forget)
        req.forget_agent = &ar;
    else
        req.drain_agent = &ar;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("%s %s\n", forget ? "forgot" : undrain ? "undrained" : "drained", name);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_agent_drain(cli_t *cli, int argc, char **argv)
{
    return name_op(cli, argc, argv, DROVER__API_REQUEST__OP_DRAIN_AGENT, false);
}

int cmd_agent_undrain(cli_t *cli, int argc, char **argv)
{
    return name_op(cli, argc, argv, DROVER__API_REQUEST__OP_DRAIN_AGENT, true);
}

int cmd_agent_forget(cli_t *cli, int argc, char **argv)
{
    return name_op(cli, argc, argv, DROVER__API_REQUEST__OP_FORGET_AGENT, false);
}

enum { OPT_DEADLINE = 1 };

int cmd_agent_preempt(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {{"deadline", 0, true, OPT_DEADLINE}, {NULL, 0, false, 0}};
    const char *name = NULL;
    uint64_t deadline_ms = 30000;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, PREEMPT_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(PREEMPT_USAGE, PREEMPT_HELP);
        if (opt == OPT_DEADLINE) {
            if (spec_parse_duration(a.value, &deadline_ms) < 0)
                return cli_usage_error(PREEMPT_USAGE,
                                       "--deadline expects a duration such as "
                                       "30s or 2m, got '%s'",
                                       a.value);
            continue;
        }
        if (name)
            return cli_usage_error(PREEMPT_USAGE, "unexpected argument '%s'", a.value);
        name = a.value;
    }
    if (!name)
        return cli_usage_error(PREEMPT_USAGE, "missing agent NAME");

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    ar.name = (char *)name;
    ar.deadline_ms = deadline_ms;
    req.op_case = DROVER__API_REQUEST__OP_PREEMPT_AGENT;
    req.preempt_agent = &ar;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("preemption notice sent to %s (deadline in %.0fs)\n", name, deadline_ms / 1000.0);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}
