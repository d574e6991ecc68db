/* cmd_pools — node pools (README "Autoscaling node pools"): `drover pools`
 * (each pool's size limits, its nodes by state, the demand droverd sees,
 * its cost per hour, its provider's last error and back-off; the nodes
 * listed under it), `drover pool scale NAME N` (keep N nodes: grow now,
 * drain the surplus) and `drover pool drain NAME` (no new nodes; every
 * node drained, then removed). Listing needs role read, the others admin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "doc.h"
#include "fmt.h"
#include "table.h"
#include "util.h"

#define LIST_USAGE "drover pools [-o " CLI_OUTPUTS "]"
#define LIST_HELP                                                                                  \
    "List node pools: min/max, nodes by state (requested, booting, up, draining,\n"                \
    "deleting), the nodes the waiting steps need beyond those (demand), cost per hour,\n"          \
    "the provider's last error and the back-off; each pool's nodes below it.\n" CLI_OUTPUT_HELP
#define SCALE_USAGE "drover pool scale NAME N"
#define SCALE_HELP                                                                                 \
    "Keep N nodes in pool NAME (admin; 0..max): it grows to N now, idle nodes above N\n"           \
    "are drained and removed at once, busy ones once their steps end; demand may still\n"          \
    "grow it up to max. Ends a `pool drain` and a back-off.\n"
#define DRAIN_USAGE "drover pool drain NAME"
#define DRAIN_HELP                                                                                 \
    "Take pool NAME out of service (admin): no new nodes; every node is drained (no\n"             \
    "new steps) and removed once nothing runs there. `drover pool scale` resumes it.\n"

static const char *const STATES[] = {"requested", "booting",  "up",
                                     "draining",  "deleting", "removed"};

static const char *state_name(Drover__PoolNodeState st)
{
    return (unsigned)st < sizeof STATES / sizeof *STATES ? STATES[st] : "?";
}

static int call(cli_t *cli, Drover__PoolRequest *pr, Drover__ApiResponse **resp)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_POOL;
    req.pool = pr;
    return api_call_once(cli->api, &req, resp);
}

/* "2 up, 1 booting" from the nodes' states (removed left out). */
static void nodes_summary(const Drover__PoolView *v, char *buf, size_t len)
{
    uint32_t n[6] = {0};
    for (size_t i = 0; i < v->n_nodes; i++)
        if ((unsigned)v->nodes[i]->state < 6)
            n[v->nodes[i]->state]++;
    size_t at = 0;
    buf[0] = '\0';
    static const int order[] = {2, 1, 0, 3, 4};
    for (size_t k = 0; k < 5; k++) {
        int st = order[k];
        if (n[st] && at < len)
            at +=
                (size_t)snprintf(buf + at, len - at, "%s%u %s", at ? ", " : "", n[st], STATES[st]);
    }
    if (!at)
        snprintf(buf, len, "none");
}

static void print_table(const Drover__ApiResponse *resp, bool wide)
{
    static const char *const headers[] = {"POOL",   "NODES", "MIN/MAX", "DEMAND",   "WAITING",
                                          "COST/H", "SPOT",  "STATUS",  "PROVIDER", "SIZE"};
    int64_t now = util_now_ms();
    table_t *t = table_new(wide ? 10 : 8, headers);
    char buf[FMT_BUF], nodes[128];
    for (size_t i = 0; i < resp->n_pools; i++) {
        const Drover__PoolView *v = resp->pools[i];
        table_add(t, v->name, NULL);
        nodes_summary(v, nodes, sizeof nodes);
        table_add(t, nodes, NULL);
        if (v->hold && v->hold->scaled)
            table_addf(t, "%u/%u (scaled to %u)", v->min, v->max, v->hold->floor);
        else
            table_addf(t, "%u/%u", v->min, v->max);
        table_addf(t, "%u", v->demand);
        table_addf(t, "%u", v->waiting);
        table_addf(t, "%.2f", v->cost_per_hour);
        table_add(t, v->spot ? "spot" : "on-demand", NULL);
        if (v->hold && v->hold->drained)
            table_add(t, "drained", "33");
        else if (v->backoff_until_ms)
            table_addf(t, "backing off %s: %s", fmt_duration(v->backoff_until_ms - now, buf),
                       v->last_error);
        else if (*v->last_error)
            table_addf(t, "ok (last error %s ago: %s)", fmt_age(v->last_error_ms, now, buf),
                       v->last_error);
        else
            table_add(t, "ok", "32");
        if (wide) {
            table_add(t, v->provider, NULL);
            char cpu[FMT_BUF], mem[FMT_BUF];
            table_addf(t, "cpu %s, memory %s, gpu %u", fmt_cpu(v->node->cpu_milli, cpu),
                       v->node->memory_bytes ? fmt_bytes(v->node->memory_bytes, mem) : "-",
                       v->node->gpus);
        }
    }
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
    /* the nodes, pool by pool */
    static const char *const nheaders[] = {"NODE", "POOL", "STATE", "SINCE", "PROVIDER ID", "WHY"};
    table_t *n = table_new(6, nheaders);
    size_t rows = 0;
    for (size_t i = 0; i < resp->n_pools; i++)
        for (size_t j = 0; j < resp->pools[i]->n_nodes; j++, rows++) {
            const Drover__PoolNodeRecord *r = resp->pools[i]->nodes[j];
            table_add(n, r->name, NULL);
            table_add(n, r->pool, NULL);
            table_add(n, state_name(r->state),
                      r->state == DROVER__POOL_NODE_STATE__POOL_NODE_UP ? "32" : NULL);
            table_addf(n, "%s ago", fmt_age(r->state_ms, now, buf));
            table_add(n, *r->provider_id ? r->provider_id : "-", NULL);
            table_add(n, *r->why ? r->why : "-", NULL);
        }
    if (rows) {
        printf("\n");
        table_print(n, stdout, 0, 0, fmt_color_ok(stdout));
    }
    table_destroy(&n);
}

static void doc_pool(doc_t *j, const Drover__PoolView *v)
{
    doc_object_begin(j);
    doc_field_str(j, "name", v->name);
    doc_field_uint(j, "min", v->min);
    doc_field_uint(j, "max", v->max);
    doc_field_bool(j, "spot", v->spot);
    doc_key(j, "price");
    doc_double(j, v->price);
    doc_key(j, "node");
    doc_object_begin(j);
    doc_field_uint(j, "cpu_milli", v->node ? v->node->cpu_milli : 0);
    doc_field_uint(j, "memory_bytes", v->node ? v->node->memory_bytes : 0);
    doc_field_uint(j, "gpus", v->node ? v->node->gpus : 0);
    doc_key(j, "labels");
    doc_object_begin(j);
    for (size_t i = 0; i < v->n_labels; i++)
        doc_field_str(j, v->labels[i]->key, v->labels[i]->value);
    doc_object_end(j);
    doc_object_end(j);
    doc_field_str(j, "fallback", v->fallback);
    doc_field_str(j, "provider", v->provider);
    doc_field_uint(j, "demand", v->demand);
    doc_field_uint(j, "waiting", v->waiting);
    doc_key(j, "cost_per_hour");
    doc_double(j, v->cost_per_hour);
    doc_field_str(j, "last_error", v->last_error);
    doc_field_time(j, "last_error_at", v->last_error_ms);
    doc_field_time(j, "backoff_until", v->backoff_until_ms);
    doc_field_uint(j, "failures", v->failures);
    doc_key(j, "hold");
    if (v->hold) {
        doc_object_begin(j);
        doc_field_bool(j, "scaled", v->hold->scaled);
        doc_field_uint(j, "floor", v->hold->floor);
        doc_field_bool(j, "drained", v->hold->drained);
        doc_field_time(j, "at", v->hold->at_ms);
        doc_field_str(j, "by", v->hold->by);
        doc_object_end(j);
    } else {
        doc_null(j);
    }
    uint32_t by_state[6] = {0};
    for (size_t i = 0; i < v->n_nodes; i++)
        if ((unsigned)v->nodes[i]->state < 6)
            by_state[v->nodes[i]->state]++;
    doc_key(j, "counts");
    doc_object_begin(j);
    for (size_t k = 0; k < 6; k++)
        doc_field_uint(j, STATES[k], by_state[k]);
    doc_object_end(j);
    doc_key(j, "nodes");
    doc_array_begin(j);
    for (size_t i = 0; i < v->n_nodes; i++) {
        const Drover__PoolNodeRecord *r = v->nodes[i];
        doc_object_begin(j);
        doc_field_str(j, "name", r->name);
        doc_field_str(j, "state", state_name(r->state));
        doc_field_time(j, "created", r->created_ms);
        doc_field_time(j, "since", r->state_ms);
        doc_field_str(j, "provider_id", r->provider_id);
        doc_field_str(j, "why", r->why);
        doc_field_str(j, "token_id", r->token_id);
        doc_object_end(j);
    }
    doc_array_end(j);
    doc_object_end(j);
}

int cmd_pools(cli_t *cli, int argc, char **argv)
{
    cli_output_t out;
    int rc = cli_output_only_args(cli, argc, argv, LIST_USAGE, LIST_HELP, &out);
    if (rc != 0)
        return cli_status(rc);
    Drover__PoolRequest pr = DROVER__POOL_REQUEST__INIT;
    pr.op = DROVER__POOL_OP__POOL_LIST;
    Drover__ApiResponse *resp = NULL;
    if (call(cli, &pr, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (out == CLI_OUT_TABLE || out == CLI_OUT_WIDE) {
        if (resp->n_pools)
            print_table(resp, out == CLI_OUT_WIDE);
        else
            fprintf(stderr, "no node pools (droverd's config has no pools:)\n");
    } else if (out == CLI_OUT_NAME) {
        for (size_t i = 0; i < resp->n_pools; i++)
            printf("%s\n", resp->pools[i]->name);
    } else {
        doc_t *j = cli_doc_writer(out);
        doc_array_begin(j);
        for (size_t i = 0; i < resp->n_pools; i++)
            doc_pool(j, resp->pools[i]);
        doc_array_end(j);
        doc_finish(&j);
    }
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* `pool scale` and `pool drain`: NAME (and N). */
static int pool_op(cli_t *cli, int argc, char **argv, bool scale)
{
    static const cli_opt_t opts[] = {{NULL, 0, false, 0}};
    const char *usage = scale ? SCALE_USAGE : DRAIN_USAGE;
    Drover__PoolRequest pr = DROVER__POOL_REQUEST__INIT;
    pr.op = scale ? DROVER__POOL_OP__POOL_SCALE : DROVER__POOL_OP__POOL_DRAIN;
    const char *count = NULL;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, scale ? SCALE_HELP : DRAIN_HELP);
        if (!*pr.name)
            pr.name = (char *)a.value;
        else if (scale && !count)
            count = a.value;
        else
            return cli_usage_error(usage, "unexpected argument '%s'", a.value);
    }
    if (!*pr.name)
        return cli_usage_error(usage, "missing pool NAME");
    if (scale) {
        char *end;
        unsigned long n = count ? strtoul(count, &end, 10) : 0;
        if (!count)
            return cli_usage_error(usage, "missing N (the nodes to keep)");
        if (!*count || *end || count[0] == '-' || n > 10000)
            return cli_usage_error(usage, "N expects a number from 0 to the pool's max, got '%s'",
                                   count);
        pr.count = (uint32_t)n;
    }
    Drover__ApiResponse *resp = NULL;
    if (call(cli, &pr, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (scale)
        printf("pool %s: keeps %u node%s\n", pr.name, pr.count, pr.count == 1 ? "" : "s");
    else
        printf("pool %s: drained: no new nodes; each node is removed once nothing runs there\n",
               pr.name);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_pool_scale(cli_t *cli, int argc, char **argv)
{
    return pool_op(cli, argc, argv, true);
}

int cmd_pool_drain(cli_t *cli, int argc, char **argv)
{
    return pool_op(cli, argc, argv, false);
}
