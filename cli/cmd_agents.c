/* cmd_agents — `drover agents` (the fleet, as a table or JSON),
 * `drover agent drain NAME` (stop placing new work on an agent; what runs
 * there finishes) and `drover agent preempt NAME` (a preemption drill:
 * the agent hands its steps back as if its cloud had reclaimed it). */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "cli.h"
#include "fmt.h"
#include "json.h"
#include "spec.h"
#include "table.h"
#include "util.h"

enum { OPT_OUTPUT = 1 };

static const cli_opt_t agents_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {NULL, 0, false, 0},
};

#define AGENTS_USAGE "drover agents [-o table|json]"
#define AGENTS_HELP                                                                                \
    "List the agents droverd knows, with used/total resources.\n"                                  \
    "  -o, --output FORMAT  table (default) or json\n"
#define DRAIN_USAGE   "drover agent drain NAME"
#define DRAIN_HELP    "Stop placing new steps on agent NAME; steps running there finish.\n"
#define UNDRAIN_USAGE "drover agent undrain NAME"
#define UNDRAIN_HELP  "Put a drained agent NAME back in service.\n"
#define PREEMPT_USAGE "drover agent preempt NAME [--deadline DUR]"
#define PREEMPT_HELP                                                                               \
    "Drill a preemption of agent NAME through the same path as a cloud's notice:\n"                \
    "droverd stops placing work there, the agent signals its steps, commits their\n"               \
    "last checkpoints and hands them back to resume elsewhere.\n"                                  \
    "  --deadline DUR  when the node 'goes away' (e.g. 30s, 2m) [30s]\n"

static const char *agent_state(const Drover__AgentView *a)
{
    if (!a->connected)
        return a->drained ? "disconnected,drained" : "disconnected";
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

static void add_agent_row(table_t *t, const Drover__AgentView *a)
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
    table_add(t, labels, NULL);
    free(labels);
}

static void print_agents_table(const Drover__ApiResponse *resp)
{
    static const char *const headers[] = {"NAME",    "STATE",   "CPU",      "MEMORY", "GPU",
                                          "RUNNING", "RUNTIME", "CAPACITY", "LABELS"};
    table_t *t = table_new(9, headers);
    for (size_t i = 0; i < resp->n_agents; i++)
        add_agent_row(t, resp->agents[i]);
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
}

static void json_agent(json_t *j, const Drover__AgentView *a)
{
    const Drover__Resources *cap = res_or_zero(a->capacity), *used = res_or_zero(a->used);
    json_object_begin(j);
    json_field_str(j, "name", a->name);
    json_field_bool(j, "connected", a->connected);
    json_field_bool(j, "drained", a->drained);
    json_key(j, "labels");
    json_object_begin(j);
    for (size_t i = 0; i < a->n_labels; i++)
        json_field_str(j, a->labels[i]->key, a->labels[i]->value);
    json_object_end(j);
    json_field_uint(j, "cpu_milli", cap->cpu_milli);
    json_field_uint(j, "memory_bytes", cap->memory_bytes);
    json_field_uint(j, "gpus", cap->gpus);
    json_field_uint(j, "used_cpu_milli", used->cpu_milli);
    json_field_uint(j, "used_memory_bytes", used->memory_bytes);
    json_field_uint(j, "used_gpus", used->gpus);
    json_field_uint(j, "running", a->running);
    json_field_str(j, "runtime", a->runtime);
    json_field_bool(j, "images", a->images);
    json_field_bool(j, "spot", a->spot);
    json_field_double(j, "price", a->price);
    json_key(j, "preemption");
    if (a->preempt) {
        json_object_begin(j);
        json_field_bool(j, "terminate", a->preempt->terminate);
        json_field_int(j, "deadline_ms", a->preempt->deadline_ms);
        json_field_str(j, "reason", a->preempt->reason);
        json_object_end(j);
    } else {
        json_null(j);
    }
    json_field_int(j, "last_seen_ms", a->last_seen_ms);
    json_object_end(j);
}

static void print_agents_json(const Drover__ApiResponse *resp)
{
    json_t *j = json_new(stdout);
    json_array_begin(j);
    for (size_t i = 0; i < resp->n_agents; i++)
        json_agent(j, resp->agents[i]);
    json_array_end(j);
    json_finish(&j);
}

int cmd_agents(cli_t *cli, int argc, char **argv)
{
    bool json = false;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, agents_opts, AGENTS_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(AGENTS_USAGE, AGENTS_HELP);
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(AGENTS_USAGE, "unexpected argument '%s'", a.value);
        if (opt == OPT_OUTPUT && cli_parse_output(a.value, &json) < 0)
            return cli_usage_error(AGENTS_USAGE, "-o expects table or json, got '%s'", a.value);
    }

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    req.op_case = DROVER__API_REQUEST__OP_LIST_AGENTS;
    req.list_agents = &ar;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (json)
        print_agents_json(resp);
    else
        print_agents_table(resp);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* drain or undrain: the same request with a flag. */
static int drain(cli_t *cli, int argc, char **argv, bool undrain)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    const char *usage = undrain ? UNDRAIN_USAGE : DRAIN_USAGE;
    const char *name = NULL;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, none, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, undrain ? UNDRAIN_HELP : DRAIN_HELP);
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
    req.op_case = DROVER__API_REQUEST__OP_DRAIN_AGENT;
    req.drain_agent = &ar;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("%s %s\n", undrain ? "undrained" : "drained", name);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_agent_drain(cli_t *cli, int argc, char **argv)
{
    return drain(cli, argc, argv, false);
}

int cmd_agent_undrain(cli_t *cli, int argc, char **argv)
{
    return drain(cli, argc, argv, true);
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
