/* pools — node pools: droverd grows and shrinks its fleet through
 * provider programs (README "Autoscaling node pools", "Providers").
 *
 * Each pool (pool_config_t, from `pools:`) has nodes, each in one state
 * (PoolNodeState): REQUESTED → BOOTING → UP → DRAINING → DELETING →
 * REMOVED, or from REQUESTED/BOOTING/UP straight to DELETING when the
 * provider failed, the boot timed out or the node was lost. Every
 * transition is decided on the loop, recorded in the journal's commit
 * (pool_nodes), and only the NEXT provider call acts on it: a create is
 * called for nodes whose REQUESTED record is durable, a delete for
 * DELETING ones. A droverd killed at any point finds its decisions in the
 * store and calls again; providers are idempotent by node name, so a
 * restart neither loses nor doubles a node. One call at a time per pool.
 *
 * Demand (every DEMAND_EVERY_MS): the READY tasks at the head of the
 * queue and in the placer's parks (tasks no agent in service could ever
 * hold, set aside by shape: the ones new nodes are for; at most
 * DEMAND_SCAN in all: a pool cannot grow past max, so the head decides)
 * are packed first into the room of the agents in service,
 * then into the nodes already coming (REQUESTED, BOOTING), then into new
 * nodes of the best pool that fits each task's shape: resources, labels,
 * spot policy (require: spot pools only; fallback_after reached: on-demand
 * only; prefer/avoid: that kind first), cheapest first. A pool backing
 * off (its provider failed or its nodes missed boot-timeout; the cool-down
 * doubles, BACKOFF_FIRST_MS up to BACKOFF_MAX_MS) gives its place to its
 * `fallback`. A shape that fits nowhere is decided once per pass, so a
 * million tasks no pool can take cost a pointer compare each.
 *
 * Scale-down: a node of a pool above its floor (min, or an operator's
 * `pool scale`) with nothing bound to it for `idle` is drained (the
 * placer gives it nothing); once nothing runs there (a step's outputs and
 * checkpoints are uploaded before its exit is reported, so an unbound
 * node has nothing left to upload) it is deleted through the provider,
 * and its key (from its join token) revoked. A node with running steps is
 * never deleted by scale-down; a node whose agent was lost (a reclaimed
 * spot VM) is deleted at once, and the demand it leaves makes another.
 *
 * pools_explain is the one function the model (the placer) calls here;
 * it only reads.
 */
#include "sched_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "provider.h"
#include "util.h"

#define DEMAND_EVERY_MS  500
#define DEMAND_SCAN      20000
#define DEMAND_SHAPES    16
#define LIST_EVERY_MS    5000 /* while a pool has nodes booting */
#define BACKOFF_FIRST_MS (30 * 1000)
#define BACKOFF_MAX_MS   (10 * 60 * 1000)
#define RETRY_MS         (10 * 1000) /* a failed delete or list */
#define REMOVED_KEPT     10          /* removed nodes shown per pool */
#define TOKEN_MARGIN_MS  (5 * 60 * 1000)

typedef struct pool pool_t;

typedef struct {
    char *name, *provider_id, *why, *token_id;
    Drover__PoolNodeState state;
    int64_t created_ms, state_ms;
    pool_t *pool;
    char *token;             /* the join token's text until a create is answered (memory only) */
    bool dirty;              /* written by the next commit */
    bool committed;          /* its state is in the store */
    uint8_t committed_state; /* the state last written + 1, 0: never (the event log) */
    bool calling;            /* a provider call is about it */
    int64_t idle_since_ms;
} pnode_t;

typedef enum { CALL_NONE, CALL_CREATE, CALL_DELETE, CALL_LIST } call_kind_t;

struct pool {
    const pool_config_t *cfg;
    sched_t *s;
    pnode_t **nodes; /* owned, creation order */
    size_t n_nodes, cap_nodes;
    Drover__PoolRecord hold; /* an operator's scale/drain (hold.name set: held) */
    char hold_by[64];
    bool hold_dirty;
    provider_call_t *call;
    call_kind_t call_kind;
    uint32_t failures;
    int64_t backoff_until_ms;
    char last_error[512];
    int64_t last_error_ms;
    int64_t next_list_ms, next_delete_ms;
    bool shed;                /* an operator's scale: drain the surplus (shed) */
    uint32_t demand, waiting; /* from the last demand pass */
};

struct pools {
    pool_t *pool;
    size_t n;
    zhashx_t *nodes; /* name → pnode_t (owned by its pool) */
    char **gone;     /* node records the next commit deletes */
    size_t n_gone;
    int64_t started_ms, last_demand_ms;
};

/* ------------------------------------------------------------ nodes */

static const char *state_word(Drover__PoolNodeState st)
{
    switch (st) {
    case DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED:
        return "requested";
    case DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING:
        return "booting";
    case DROVER__POOL_NODE_STATE__POOL_NODE_UP:
        return "up";
    case DROVER__POOL_NODE_STATE__POOL_NODE_DRAINING:
        return "draining";
    case DROVER__POOL_NODE_STATE__POOL_NODE_DELETING:
        return "deleting";
    default:
        return "removed";
    }
}

/* Whether the node exists (or may: its create or delete is pending). */
static bool exists(const pnode_t *n)
{
    return n->state != DROVER__POOL_NODE_STATE__POOL_NODE_REMOVED;
}

/* Whether the node is, or is becoming, capacity. */
static bool active(const pnode_t *n)
{
    return n->state <= DROVER__POOL_NODE_STATE__POOL_NODE_UP;
}

static void set_str(char **field, const char *v)
{
    free(*field);
    *field = v && *v ? xstrdup(v) : NULL;
}

static void set_state(pnode_t *n, Drover__PoolNodeState st, const char *why, int64_t now)
{
    if (n->state != st)
        log_info("pool %s: node %s %s -> %s%s%s", n->pool->cfg->name, n->name, state_word(n->state),
                 state_word(st), why ? ": " : "", why ? why : "");
    n->state = st;
    n->state_ms = now;
    if (why)
        set_str(&n->why, why);
    n->dirty = true;
    n->committed = false;
    n->pool->s->journal.must_commit = true;
}

static pnode_t *node_add(pool_t *p, const char *name)
{
    pnode_t *n = xcalloc(1, sizeof *n);
    n->name = xstrdup(name);
    n->pool = p;
    if (p->n_nodes == p->cap_nodes) {
        p->cap_nodes = p->cap_nodes ? 2 * p->cap_nodes : 8;
        p->nodes = xrealloc(p->nodes, p->cap_nodes * sizeof *p->nodes);
    }
    p->nodes[p->n_nodes++] = n;
    zhashx_insert(p->s->pools->nodes, n->name, n);
    return n;
}

static void node_free(pnode_t *n)
{
    free(n->name);
    free(n->provider_id);
    free(n->why);
    free(n->token_id);
    if (n->token)
        explicit_bzero(n->token, strlen(n->token));
    free(n->token);
    free(n);
}

/* Drop p->nodes[i]: its record is deleted by the next commit. */
static void node_forget(pool_t *p, size_t i)
{
    struct pools *ps = p->s->pools;
    pnode_t *n = p->nodes[i];
    zhashx_delete(ps->nodes, n->name);
    ps->gone = xrealloc(ps->gone, (ps->n_gone + 1) * sizeof *ps->gone);
    ps->gone[ps->n_gone++] = xstrdup(n->name);
    p->s->journal.must_commit = true;
    memmove(&p->nodes[i], &p->nodes[i + 1], (p->n_nodes - i - 1) * sizeof *p->nodes);
    p->n_nodes--;
    node_free(n);
}

static void record_of(const pnode_t *n, Drover__PoolNodeRecord *r)
{
    drover__pool_node_record__init(r);
    r->name = n->name;
    r->pool = n->pool->cfg->name;
    r->state = n->state;
    r->created_ms = n->created_ms;
    r->state_ms = n->state_ms;
    r->provider_id = n->provider_id ? n->provider_id : (char *)protobuf_c_empty_string;
    r->why = n->why ? n->why : (char *)protobuf_c_empty_string;
    r->token_id = n->token_id ? n->token_id : (char *)protobuf_c_empty_string;
}

static uint32_t count(const pool_t *p, bool (*which)(const pnode_t *))
{
    uint32_t k = 0;
    for (size_t i = 0; i < p->n_nodes; i++)
        k += which(p->nodes[i]);
    return k;
}

/* The fewest nodes p keeps: an operator's scale, else min; 0 when drained. */
static uint32_t floor_of(const pool_t *p)
{
    if (p->hold.name && p->hold.drained)
        return 0;
    return p->hold.name && p->hold.scaled ? p->hold.floor : p->cfg->min;
}

static bool backing_off(const pool_t *p, int64_t now)
{
    return p->backoff_until_ms > now;
}

/* Whether p may get new nodes now. */
static bool may_grow(const pool_t *p, int64_t now)
{
    return !backing_off(p, now) && !(p->hold.name && p->hold.drained);
}

/* The pool could not get capacity (a create failed, a node missed its
 * boot-timeout): no create for a cool-down that doubles with each failure
 * in a row; its demand goes to its fallback meanwhile. */
static void provider_failed(pool_t *p, const char *what, int64_t now)
{
    p->failures++;
    uint64_t wait = BACKOFF_FIRST_MS;
    for (uint32_t i = 1; i < p->failures && wait < BACKOFF_MAX_MS; i++)
        wait *= 2;
    if (wait > BACKOFF_MAX_MS)
        wait = BACKOFF_MAX_MS;
    p->backoff_until_ms = now + (int64_t)wait;
    snprintf(p->last_error, sizeof p->last_error, "%.500s", what);
    p->last_error_ms = now;
    log_warn("pool %s: %s; backing off for %" PRIu64 " s%s%s", p->cfg->name, what, wait / 1000,
             p->cfg->fallback ? ", its demand goes to " : "",
             p->cfg->fallback ? p->cfg->fallback : "");
}

/* A delete or list failed: shown and logged; a delete is tried again after
 * RETRY_MS (deleting is what stops the cost: it does not wait out the
 * back-off, nor does its failure lengthen it). */
static void call_failed(pool_t *p, const char *what, int64_t now)
{
    snprintf(p->last_error, sizeof p->last_error, "%.500s", what);
    p->last_error_ms = now;
    p->next_delete_ms = now + RETRY_MS;
    log_warn("pool %s: %s; trying again in %d s", p->cfg->name, what, RETRY_MS / 1000);
}

/* ------------------------------------------------------------ load, commit */

static pool_t *pool_named(struct pools *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++)
        if (!strcmp(ps->pool[i].cfg->name, name))
            return &ps->pool[i];
    return NULL;
}

static void load_hold(const Drover__PoolRecord *r, void *arg)
{
    sched_t *s = arg;
    pool_t *p = pool_named(s->pools, r->name);
    if (!p)
        return; /* a pool no longer configured */
    p->hold = *r;
    p->hold.name = p->cfg->name;
    snprintf(p->hold_by, sizeof p->hold_by, "%s", r->by);
    p->hold.by = p->hold_by;
}

static void load_node(const Drover__PoolNodeRecord *r, void *arg)
{
    sched_t *s = arg;
    pool_t *p = pool_named(s->pools, r->pool);
    if (!p) {
        log_warn("node %s of pool %s: the pool is no longer configured; left as it is (%s)",
                 r->name, r->pool, state_word(r->state));
        return;
    }
    pnode_t *n = node_add(p, r->name);
    n->state = r->state;
    n->committed_state = (uint8_t)(r->state + 1);
    n->created_ms = r->created_ms;
    n->state_ms = r->state_ms;
    set_str(&n->provider_id, r->provider_id);
    set_str(&n->why, r->why);
    set_str(&n->token_id, r->token_id);
    n->committed = true;
    n->idle_since_ms = util_now_ms();
}

int pools_init(sched_t *s)
{
    struct pools *ps = xcalloc(1, sizeof *ps);
    s->pools = ps;
    ps->nodes = zhashx_new();
    ps->n = s->cfg.n_pools;
    ps->pool = xcalloc(ps->n ? ps->n : 1, sizeof *ps->pool);
    ps->started_ms = util_now_ms();
    for (size_t i = 0; i < ps->n; i++) {
        ps->pool[i].cfg = &s->cfg.pools[i];
        ps->pool[i].s = s;
    }
    int rc = store_load_pools(s->store, load_hold, load_node, s);
    size_t nodes = zhashx_size(ps->nodes);
    if (ps->n)
        log_info("%zu node pool%s, %zu node%s known", ps->n, ps->n == 1 ? "" : "s", nodes,
                 nodes == 1 ? "" : "s");
    return rc;
}

void pools_free(sched_t *s)
{
    struct pools *ps = s->pools;
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        pool_t *p = &ps->pool[i];
        provider_cancel(&p->call);
        for (size_t j = 0; j < p->n_nodes; j++)
            node_free(p->nodes[j]);
        free(p->nodes);
    }
    for (size_t i = 0; i < ps->n_gone; i++)
        free(ps->gone[i]);
    free(ps->gone);
    zhashx_destroy(&ps->nodes);
    free(ps->pool);
    free(ps);
    s->pools = NULL;
}

int pools_commit(sched_t *s)
{
    struct pools *ps = s->pools;
    int rc = 0;
    if (!ps)
        return 0; /* droverd stopping before pools_init */
    for (size_t i = 0; i < ps->n && rc == 0; i++) {
        pool_t *p = &ps->pool[i];
        if (p->hold_dirty && p->hold.name)
            rc = store_put_pool(s->store, &p->hold);
        for (size_t j = 0; j < p->n_nodes && rc == 0; j++) {
            if (!p->nodes[j]->dirty)
                continue;
            Drover__PoolNodeRecord r;
            pnode_t *n = p->nodes[j];
            record_of(n, &r);
            rc = store_put_pool_node(s->store, &r);
            if (rc == 0 && n->committed_state != n->state + 1) /* the event log */
                rc = events_pool_node(s, r.pool, r.name,
                                      n->committed_state ? state_word(n->committed_state - 1) : "",
                                      state_word(n->state), n->why);
            if (rc == 0)
                n->committed_state = (uint8_t)(n->state + 1);
        }
    }
    for (size_t i = 0; i < ps->n_gone && rc == 0; i++)
        rc = store_delete_pool_node(s->store, ps->gone[i]);
    return rc;
}

void pools_after_commit(sched_t *s)
{
    struct pools *ps = s->pools;
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        pool_t *p = &ps->pool[i];
        p->hold_dirty = false;
        for (size_t j = 0; j < p->n_nodes; j++)
            if (p->nodes[j]->dirty) {
                p->nodes[j]->dirty = false;
                p->nodes[j]->committed = true;
            }
    }
    for (size_t i = 0; i < ps->n_gone; i++)
        free(ps->gone[i]);
    ps->n_gone = 0;
}

/* ------------------------------------------------------------ provider calls */

static void call_done(void *arg, int status, const char *out, const char *errline);

/* Start p's provider with verb and the JSON request (stolen). */
static void call_start(pool_t *p, call_kind_t kind, const char *verb, json_t *req)
{
    const pool_config_t *c = p->cfg;
    char **argv = xcalloc(c->n_args + 3, sizeof *argv);
    argv[0] = c->command;
    argv[1] = (char *)verb;
    for (size_t i = 0; i < c->n_args; i++)
        argv[2 + i] = c->args[i];
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    p->call_kind = kind;
    p->call = provider_call(p->s->loop, argv, text, c->call_timeout_ms, call_done, p);
    explicit_bzero(text, strlen(text)); /* it may hold join tokens */
    free(text);
    free(argv);
}

/* The agents endpoint new nodes connect to. */
static void endpoint_of(const sched_t *s, char *buf, size_t len)
{
    const char *e = s->cfg.advertise ? s->cfg.advertise : s->cfg.listen;
    const char *star = strstr(e, "://*:"), *any = strstr(e, "://0.0.0.0:");
    if (!s->cfg.advertise && (star || any))
        snprintf(buf, len, "%.*s://127.0.0.1%s", (int)((star ? star : any) - e), e,
                 strchr((star ? star : any) + 3, ':'));
    else
        snprintf(buf, len, "%s", e);
}

/* A join token for node n (one use, its name only, outliving its boot a
 * little): n->token (its text, until the create is answered) and
 * n->token_id, both durable with the node's record at the next commit. */
static void mint_token(pool_t *p, pnode_t *n)
{
    char err[256];
    free(n->token);
    n->token = NULL;
    if (tokens_mint(p->s, p->cfg->name, n->name, p->cfg->boot_timeout_ms + TOKEN_MARGIN_MS,
                    &n->token, err, sizeof err) < 0) {
        log_warn("pool %s: node %s: no join token: %s", p->cfg->name, n->name, err);
        return;
    }
    char id[16] = ""; /* "drv1.ID.SECRET" */
    sscanf(n->token, "drv1.%15[0-9a-f]", id);
    set_str(&n->token_id, id);
    n->dirty = true;
    n->committed = false;
}

static void call_create(pool_t *p)
{
    sched_t *s = p->s;
    const pool_config_t *c = p->cfg;
    bool minted = false;
    for (size_t i = 0; i < p->n_nodes && s->auth.agents_curve; i++) {
        pnode_t *n = p->nodes[i];
        if (n->state != DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED || !n->committed || n->token)
            continue;
        /* decided before a restart: its first token's secret is gone (a
         * provider that made the node keeps that one; both are for this
         * node only, one use, short-lived) */
        mint_token(p, n);
        minted = true;
    }
    if (minted)
        return; /* the new tokens are durable at the next commit: called after it */
    json_t *names = json_array(), *tokens = json_object(), *labels = json_object();
    for (size_t i = 0; i < p->n_nodes; i++) {
        pnode_t *n = p->nodes[i];
        if (n->state != DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED || !n->committed)
            continue;
        json_array_append_new(names, json_string(n->name));
        if (n->token)
            json_object_set_new(tokens, n->name, json_string(n->token));
        n->calling = true;
    }
    if (!json_array_size(names)) {
        json_decref(names);
        json_decref(tokens);
        json_decref(labels);
        return;
    }
    for (size_t i = 0; i < c->n_labels; i++)
        json_object_set_new(labels, c->label_keys[i], json_string(c->label_values[i]));
    char memory[32], endpoint[512];
    snprintf(memory, sizeof memory, "%" PRIu64, c->memory_bytes);
    endpoint_of(s, endpoint, sizeof endpoint);
    char public_key[41] = "";
    if (s->auth.agents_curve && s->auth.cert)
        snprintf(public_key, sizeof public_key, "%s", zcert_public_txt(s->auth.cert));
    json_t *req = json_pack("{s:s, s:o, s:{s:f, s:s, s:i, s:o}, s:b, s:f, s:o, s:{s:s, s:s}, s:s}",
                            "pool", c->name, "names", names, "node", "cpu", c->cpu_milli / 1000.0,
                            "memory", memory, "gpu", (int)c->gpus, "labels", labels, "spot",
                            c->spot, "price", c->price, "join_tokens", tokens, "scheduler",
                            "endpoint", endpoint, "public_key", public_key, "user_data", "");
    log_info("pool %s: asking %s to create %zu node%s", c->name, c->command, json_array_size(names),
             json_array_size(names) == 1 ? "" : "s");
    call_start(p, CALL_CREATE, "create", req);
}

static void call_delete(pool_t *p)
{
    json_t *names = json_array();
    for (size_t i = 0; i < p->n_nodes; i++) {
        pnode_t *n = p->nodes[i];
        if (n->state == DROVER__POOL_NODE_STATE__POOL_NODE_DELETING && n->committed) {
            json_array_append_new(names, json_string(n->name));
            n->calling = true;
        }
    }
    if (!json_array_size(names)) {
        json_decref(names);
        return;
    }
    log_info("pool %s: asking %s to delete %zu node%s", p->cfg->name, p->cfg->command,
             json_array_size(names), json_array_size(names) == 1 ? "" : "s");
    call_start(p, CALL_DELETE, "delete",
               json_pack("{s:s, s:o}", "pool", p->cfg->name, "names", names));
}

static void call_list(pool_t *p)
{
    call_start(p, CALL_LIST, "list", json_pack("{s:s}", "pool", p->cfg->name));
}

/* The key a removed node's join token admitted is revoked; its agent is
 * forgotten once it is disconnected with nothing bound (pools_tick). */
static void node_removed(pool_t *p, pnode_t *n, int64_t now)
{
    set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_REMOVED, NULL, now);
    tokens_forget_node(p->s, n->name);
    agents_keys_changed(p->s);
}

/* A node's entry of a create or list answer. */
static json_t *answer_of(json_t *nodes, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(nodes, i, v)
    {
        json_t *nm = json_object_get(v, "name");
        if (json_is_string(nm) && !strcmp(json_string_value(nm), name))
            return v;
    }
    return NULL;
}

static void call_done(void *arg, int status, const char *out, const char *errline)
{
    pool_t *p = arg;
    sched_t *s = p->s;
    call_kind_t kind = p->call_kind;
    p->call = NULL;
    p->call_kind = CALL_NONE;
    int64_t now = util_now_ms();
    json_error_t jerr;
    json_t *reply = status == 0 ? json_loads(out, 0, &jerr) : NULL;
    char what[600];
    const char *verb = kind == CALL_CREATE ? "create" : kind == CALL_DELETE ? "delete" : "list";
    if (status != 0)
        snprintf(what, sizeof what, "provider %s %s: %s", verb,
                 status == PROVIDER_KILLED        ? "killed"
                 : status == PROVIDER_NOT_STARTED ? "did not start"
                                                  : "failed",
                 *errline ? errline : "no message");
    else if (!reply || !json_is_object(reply))
        snprintf(what, sizeof what, "provider %s: its answer is not a JSON object%s%s", verb,
                 reply ? "" : ": ", reply ? "" : jerr.text);
    json_t *nodes = reply ? json_object_get(reply, "nodes") : NULL;
    json_t *deleted = reply ? json_object_get(reply, "deleted") : NULL;
    bool ok = reply && json_is_object(reply) &&
              (kind == CALL_DELETE ? json_is_array(deleted) : json_is_array(nodes));
    if (reply && json_is_object(reply) && !ok)
        snprintf(what, sizeof what, "provider %s: its answer has no \"%s\" list", verb,
                 kind == CALL_DELETE ? "deleted" : "nodes");
    if (!ok && kind == CALL_CREATE)
        provider_failed(p, what, now);
    else if (!ok)
        call_failed(p, what, now);

    for (size_t i = 0; i < p->n_nodes; i++) {
        pnode_t *n = p->nodes[i];
        if (kind == CALL_LIST) {
            json_t *a = ok ? answer_of(nodes, n->name) : NULL;
            json_t *st = a ? json_object_get(a, "state") : NULL;
            bool gone = json_is_string(st) && !strcmp(json_string_value(st), "gone");
            if (gone && (n->state == DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING ||
                         n->state == DROVER__POOL_NODE_STATE__POOL_NODE_UP ||
                         n->state == DROVER__POOL_NODE_STATE__POOL_NODE_DRAINING))
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DELETING,
                          "gone (the provider lists it as gone)", now);
            continue;
        }
        if (!n->calling)
            continue;
        n->calling = false;
        if (kind == CALL_CREATE) {
            json_t *a = ok ? answer_of(nodes, n->name) : NULL;
            if (a) {
                json_t *id = json_object_get(a, "id");
                set_str(&n->provider_id, json_is_string(id) ? json_string_value(id) : NULL);
                if (n->state == DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED)
                    set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING, NULL, now);
                else
                    n->dirty = true; /* registered before the answer came: keep its state */
            } else {
                /* not made, or made in part: deleted (idempotent) to be sure */
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DELETING,
                          ok ? "create: the provider's answer left it out" : what, now);
            }
            if (n->token)
                explicit_bzero(n->token, strlen(n->token));
            free(n->token);
            n->token = NULL;
        } else if (ok) {
            for (size_t j = 0; j < json_array_size(deleted); j++) {
                json_t *v = json_array_get(deleted, j);
                if (json_is_string(v) && !strcmp(json_string_value(v), n->name)) {
                    node_removed(p, n, now);
                    break;
                }
            }
        }
    }
    if (ok && kind == CALL_CREATE && json_array_size(nodes) == 0)
        provider_failed(p, "provider create: it made no node", now);
    json_decref(reply);
    s->journal.must_commit = true;
}

/* ------------------------------------------------------------ demand */

typedef struct {
    uint64_t cpu, memory;
    uint32_t gpus;
} room_t;

static bool room_takes(const room_t *r, const Drover__Resources *want)
{
    return !want ||
           (want->cpu_milli <= r->cpu && want->memory_bytes <= r->memory && want->gpus <= r->gpus);
}

static void room_take(room_t *r, const Drover__Resources *want)
{
    if (!want)
        return;
    r->cpu -= want->cpu_milli;
    r->memory -= want->memory_bytes;
    r->gpus -= want->gpus;
}

static room_t node_room(const pool_config_t *c)
{
    /* a node without memory given: as much as any step may ask */
    return (room_t){c->cpu_milli, c->memory_bytes ? c->memory_bytes : UINT64_MAX, c->gpus};
}

/* Whether t was preempted often enough to go to on-demand only. */
static bool wants_ondemand(const task_t *t)
{
    const Drover__StepSpec *st = t->step;
    return st->fallback_after && t->preemptions >= st->fallback_after &&
           st->spot != DROVER__SPOT_POLICY__SPOT_REQUIRE;
}

/* Whether a node of c could ever hold a task of t's shape. */
static bool pool_suits(const pool_config_t *c, const task_t *t, bool ondemand)
{
    const Drover__StepSpec *st = t->step;
    if ((st->spot == DROVER__SPOT_POLICY__SPOT_REQUIRE && !c->spot) || (ondemand && c->spot))
        return false;
    room_t r = node_room(c);
    if (!room_takes(&r, st->resources))
        return false;
    for (size_t i = 0; i < st->n_labels; i++) {
        bool have = false;
        for (size_t j = 0; j < c->n_labels && !have; j++)
            have = !strcmp(c->label_keys[j], st->labels[i]->key) &&
                   !strcmp(c->label_values[j], st->labels[i]->value);
        if (!have)
            return false;
    }
    return true;
}

/* How much t would rather not use a pool of c (lower first). */
static int pool_rank(const pool_config_t *c, const task_t *t)
{
    Drover__SpotPolicy sp = t->step->spot;
    return (sp == DROVER__SPOT_POLICY__SPOT_PREFER && !c->spot) ||
           (sp == DROVER__SPOT_POLICY__SPOT_AVOID && c->spot);
}

/* The pools a task of t's shape would use, best first, each already
 * replaced by its fallback (chain) while it cannot grow; at most max. */
static size_t candidates(struct pools *ps, const task_t *t, int64_t now, pool_t **out, size_t max,
                         pool_t **first_choice)
{
    bool ondemand = wants_ondemand(t);
    size_t n = 0;
    *first_choice = NULL;
    for (int rank = 0; rank < 2; rank++) {
        /* by price within a rank: a selection, the pools are few */
        bool used[64] = {false};
        for (;;) {
            pool_t *best = NULL;
            size_t best_i = 0;
            for (size_t i = 0; i < ps->n && i < 64; i++) {
                pool_t *p = &ps->pool[i];
                if (used[i] || pool_rank(p->cfg, t) != rank || !pool_suits(p->cfg, t, ondemand))
                    continue;
                if (!best || p->cfg->price < best->cfg->price) {
                    best = p;
                    best_i = i;
                }
            }
            if (!best)
                break;
            used[best_i] = true;
            if (!*first_choice)
                *first_choice = best;
            pool_t *q = best;
            for (int hops = 0; q && !may_grow(q, now) && hops < 64; hops++) {
                q = q->cfg->fallback ? pool_named(ps, q->cfg->fallback) : NULL;
                if (q && !pool_suits(q->cfg, t, ondemand))
                    q = NULL;
            }
            if (!q || !may_grow(q, now))
                continue;
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup = dup || out[k] == q;
            if (!dup && n < max)
                out[n++] = q;
        }
    }
    return n;
}

/* A shape of task in one demand pass, with where its search may start:
 * a bin (an agent's room, a node's) that could not take one task of the
 * shape will not take the next either (rooms only shrink during a pass),
 * so each shape walks each list of bins once per pass, not once per task. */
typedef struct {
    const Drover__StepSpec *step;
    bool ondemand;
    size_t agent_from;
    pool_t *pools[8];
    size_t from[8]; /* per candidate pool: its first bin worth trying */
    size_t n_pools;
} dshape_t;

typedef struct {
    agent_t *a;
    room_t room;
} abin_t;

/* A pool's bins in one demand pass: the nodes coming, then new ones. */
typedef struct {
    room_t *room;
    size_t n, cap;
    uint32_t existing, planned; /* nodes it has (not removed); new nodes this pass */
} pbins_t;

static void bin_add(pbins_t *b, room_t r)
{
    if (b->n == b->cap)
        b->room = xrealloc(b->room, (b->cap = b->cap ? 2 * b->cap : 16) * sizeof *b->room);
    b->room[b->n++] = r;
}

/* Whether agent a would take a task of t's shape (placer's own tests). */
static bool agent_suits(const agent_t *a, const task_t *t)
{
    return placer_rank(a, t, true) >= 0 && placer_suits(a, t);
}

/* Where t goes in this pass: the room of an agent in service, a node
 * coming, or a new node of the best pool that may grow; false if none. */
static bool pack(struct pools *ps, dshape_t *sh, const task_t *t, abin_t *ab, size_t n_ab,
                 pbins_t *bins)
{
    const Drover__Resources *want = t->step->resources;
    for (; sh->agent_from < n_ab; sh->agent_from++) {
        abin_t *x = &ab[sh->agent_from];
        if (room_takes(&x->room, want) && agent_suits(x->a, t)) {
            room_take(&x->room, want);
            return true;
        }
    }
    for (size_t k = 0; k < sh->n_pools; k++) {
        pool_t *p = sh->pools[k];
        pbins_t *b = &bins[p - ps->pool];
        for (; sh->from[k] < b->n; sh->from[k]++)
            if (room_takes(&b->room[sh->from[k]], want)) {
                room_take(&b->room[sh->from[k]], want);
                p->waiting++;
                return true;
            }
        if (b->existing + b->planned >= p->cfg->max)
            continue;
        bin_add(b, node_room(p->cfg));
        room_take(&b->room[b->n - 1], want);
        b->planned++;
        p->waiting++;
        return true;
    }
    return false;
}

/* t's shape in the pass's cache (the last DEMAND_SHAPES), made when new. */
static dshape_t *shape_for(struct pools *ps, dshape_t *shapes, size_t *n_shapes, size_t *next_shape,
                           const task_t *t, int64_t now)
{
    bool ondemand = wants_ondemand(t);
    for (size_t i = 0; i < *n_shapes; i++)
        if (shapes[i].step == t->step && shapes[i].ondemand == ondemand)
            return &shapes[i];
    dshape_t *sh =
        &shapes[*n_shapes < DEMAND_SHAPES ? (*n_shapes)++ : (*next_shape)++ % DEMAND_SHAPES];
    memset(sh, 0, sizeof *sh);
    sh->step = t->step;
    sh->ondemand = ondemand;
    pool_t *first;
    sh->n_pools = candidates(ps, t, now, sh->pools, 8, &first);
    return sh;
}

static void demand_pass(sched_t *s, int64_t now)
{
    struct pools *ps = s->pools;
    size_t n_ab = 0;
    abin_t *ab = xcalloc(zhashx_size(s->fleet.agents) + 1, sizeof *ab);
    pbins_t *bins = xcalloc(ps->n, sizeof *bins);
    for (agent_t *a = zhashx_first(s->fleet.agents); a; a = zhashx_next(s->fleet.agents)) {
        if (!a->connected || a->drained || a->terminating)
            continue;
        room_t r = {a->capacity.cpu_milli > a->used.cpu_milli
                        ? a->capacity.cpu_milli - a->used.cpu_milli
                        : 0,
                    a->capacity.memory_bytes > a->used.memory_bytes
                        ? a->capacity.memory_bytes - a->used.memory_bytes
                        : 0,
                    a->capacity.gpus > a->used.gpus ? a->capacity.gpus - a->used.gpus : 0};
        if (!a->capacity.memory_bytes)
            r.memory = UINT64_MAX;
        ab[n_ab++] = (abin_t){a, r};
    }
    for (size_t i = 0; i < ps->n; i++) {
        pool_t *p = &ps->pool[i];
        p->demand = p->waiting = 0;
        bins[i].existing = count(p, exists);
        for (size_t j = 0; j < p->n_nodes; j++)
            if (p->nodes[j]->state == DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED ||
                p->nodes[j]->state == DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING)
                bin_add(&bins[i], node_room(p->cfg));
    }
    dshape_t shapes[DEMAND_SHAPES];
    size_t n_shapes = 0, next_shape = 0, scanned = 0;
    /* the placer's parks first: tasks of one shape no agent in service
     * could ever hold, n of them each, the very ones new nodes are for */
    for (park_t *k = s->dag.parks; k && scanned < DEMAND_SCAN; k = k->next) {
        if (!k->head)
            continue;
        dshape_t *sh = shape_for(ps, shapes, &n_shapes, &next_shape, k->head, now);
        for (size_t i = 0; i < k->n && scanned < DEMAND_SCAN; i++, scanned++)
            if (!pack(ps, sh, k->head, ab, n_ab, bins))
                break; /* no pool takes one more of this shape */
    }
    /* then the ready queue's head (tasks some agent could hold once free),
     * with a budget of its own */
    scanned = 0;
    for (task_t *t = s->dag.ready_head; t && scanned < DEMAND_SCAN; t = t->ready_next, scanned++)
        pack(ps, shape_for(ps, shapes, &n_shapes, &next_shape, t, now), t, ab, n_ab, bins);
    for (size_t i = 0; i < ps->n; i++) {
        ps->pool[i].demand = bins[i].planned;
        free(bins[i].room);
    }
    free(bins);
    free(ab);
}

/* ------------------------------------------------------------ the tick */

static void new_node(pool_t *p, int64_t now)
{
    sched_t *s = p->s;
    char name[80];
    do {
        uint8_t r[3];
        while (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            ;
        snprintf(name, sizeof name, "%s-%02x%02x%02x", p->cfg->name, r[0], r[1], r[2]);
    } while (zhashx_lookup(s->pools->nodes, name) || fleet_find(&s->fleet, name));
    pnode_t *n = node_add(p, name);
    n->created_ms = now;
    n->idle_since_ms = now;
    n->state = DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED;
    set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED, NULL, now);
    if (s->auth.agents_curve)
        mint_token(p, n);
}

/* Whether nothing is bound to the node's agent (nothing runs there, and
 * every output and checkpoint of what ran is uploaded). */
static bool unbound(const agent_t *a)
{
    return !a || a->n_tasks == 0;
}

static void drain_agent(sched_t *s, agent_t *a)
{
    if (a && !a->drained) {
        a->drained = true;
        journal_mark_agent(&s->journal, a);
    }
}

/* Right after an operator's `pool scale` (once: the floor does not stop
 * demand growing the pool later), and while a `pool drain` holds: the
 * nodes up beyond the floor are drained at once, idle ones
 * first, then busy ones (they get nothing new, and go once their steps
 * end: scale-down never removes a node with a step running). up: the
 * nodes up or coming. */
static void shed(pool_t *p, uint32_t up, int64_t now)
{
    bool drained = p->hold.name && p->hold.drained;
    if (!drained && !p->shed)
        return;
    p->shed = false; /* a scale sheds once; later nodes go by idle */
    uint32_t floor = floor_of(p);
    char why[64];
    if (drained)
        snprintf(why, sizeof why, "pool drained");
    else
        snprintf(why, sizeof why, "pool scaled to %u", floor);
    for (int busy = 0; busy < 2 && up > floor; busy++)
        for (size_t i = 0; i < p->n_nodes && up > floor; i++) {
            pnode_t *n = p->nodes[i];
            agent_t *a = fleet_find(&p->s->fleet, n->name);
            if (n->state != DROVER__POOL_NODE_STATE__POOL_NODE_UP || unbound(a) == (bool)busy)
                continue;
            set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DRAINING, why, now);
            drain_agent(p->s, a);
            up--;
        }
}

/* Move each node along by what the fleet shows. */
static void watch_nodes(pool_t *p, int64_t now)
{
    sched_t *s = p->s;
    int64_t grace = (int64_t)s->cfg.agent_timeout_ms;
    uint32_t floor = floor_of(p);
    uint32_t up_or_coming = count(p, active);
    for (size_t i = 0; i < p->n_nodes; i++) {
        pnode_t *n = p->nodes[i];
        agent_t *a = fleet_find(&s->fleet, n->name);
        bool connected = a && a->connected;
        switch (n->state) {
        case DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED:
        case DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING:
            if (connected) {
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_UP, NULL, now);
                n->idle_since_ms = now;
                p->failures = 0;
            } else if (n->state == DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING &&
                       now - n->state_ms > (int64_t)p->cfg->boot_timeout_ms) {
                char why[128];
                snprintf(why, sizeof why, "not registered within boot-timeout %" PRIu64 " s",
                         p->cfg->boot_timeout_ms / 1000);
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DELETING, why, now);
                char what[200];
                snprintf(what, sizeof what, "node %s %s", n->name, why);
                provider_failed(p, what, now);
                up_or_coming--;
            } else if (p->hold.name && p->hold.drained &&
                       n->state == DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING) {
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DELETING, "pool drained", now);
                up_or_coming--;
            }
            break;
        case DROVER__POOL_NODE_STATE__POOL_NODE_UP:
        case DROVER__POOL_NODE_STATE__POOL_NODE_DRAINING: {
            int64_t seen = a ? a->last_seen_ms : 0;
            if (seen < s->pools->started_ms)
                seen = s->pools->started_ms; /* after a restart: time to reconnect */
            if (!connected && now - seen > grace) {
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DELETING,
                          "lost (its agent stopped answering)", now);
                up_or_coming -= n->state == DROVER__POOL_NODE_STATE__POOL_NODE_UP;
                break;
            }
            if (n->state == DROVER__POOL_NODE_STATE__POOL_NODE_DRAINING) {
                drain_agent(s, a); /* again, after a restart */
                if (connected && unbound(a))
                    set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DELETING, NULL, now);
                break;
            }
            if (!unbound(a) || !connected) {
                n->idle_since_ms = now;
                break;
            }
            if (up_or_coming > floor && p->waiting == 0 &&
                now - n->idle_since_ms >= (int64_t)p->cfg->idle_ms) {
                char why[64];
                snprintf(why, sizeof why, "idle for %" PRIu64 " s", p->cfg->idle_ms / 1000);
                set_state(n, DROVER__POOL_NODE_STATE__POOL_NODE_DRAINING, why, now);
                drain_agent(s, a);
                up_or_coming--;
            }
            break;
        }
        case DROVER__POOL_NODE_STATE__POOL_NODE_DELETING:
            drain_agent(s, a); /* going: if it still answers, it gets nothing new */
            break;
        case DROVER__POOL_NODE_STATE__POOL_NODE_REMOVED:
            drain_agent(s, a);
            if (a && !a->connected && !a->n_tasks)
                agents_forget(s, a); /* the node is gone for good */
            break;
        default:
            break;
        }
    }
    shed(p, up_or_coming, now);
    /* removed nodes beyond the few shown are forgotten */
    size_t kept = 0;
    for (size_t i = p->n_nodes; i-- > 0;) {
        pnode_t *n = p->nodes[i];
        if (n->state != DROVER__POOL_NODE_STATE__POOL_NODE_REMOVED || !n->committed)
            continue;
        if (++kept > REMOVED_KEPT && !fleet_find(&s->fleet, n->name))
            node_forget(p, i);
    }
}

void pools_tick(sched_t *s, int64_t now)
{
    struct pools *ps = s->pools;
    if (!ps || !ps->n)
        return;
    bool demand = now - ps->last_demand_ms >= DEMAND_EVERY_MS;
    if (demand) {
        ps->last_demand_ms = now;
        demand_pass(s, now);
    }
    for (size_t i = 0; i < ps->n; i++) {
        pool_t *p = &ps->pool[i];
        watch_nodes(p, now);
        if (demand && may_grow(p, now)) {
            uint32_t have = count(p, exists), coming = count(p, active);
            uint32_t want = p->demand;
            uint32_t floor = floor_of(p);
            if (coming + want < floor)
                want = floor - coming;
            if (have + want > p->cfg->max)
                want = p->cfg->max > have ? p->cfg->max - have : 0;
            if (want)
                log_info("pool %s: %u node%s more (%u waiting tasks fit its nodes; %u up or "
                         "coming, floor %u, max %u)",
                         p->cfg->name, want, want == 1 ? "" : "s", p->waiting, coming, floor,
                         p->cfg->max);
            for (uint32_t k = 0; k < want; k++)
                new_node(p, now);
        }
        if (p->call)
            continue;
        bool creates = false, deletes = false, booting = false;
        for (size_t j = 0; j < p->n_nodes; j++) {
            const pnode_t *n = p->nodes[j];
            creates = creates || n->state == DROVER__POOL_NODE_STATE__POOL_NODE_REQUESTED;
            deletes = deletes ||
                      (n->state == DROVER__POOL_NODE_STATE__POOL_NODE_DELETING && n->committed);
            booting = booting || n->state == DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING;
        }
        if (deletes && now >= p->next_delete_ms)
            call_delete(p);
        else if (creates && !backing_off(p, now))
            call_create(p);
        else if (booting && now >= p->next_list_ms) {
            p->next_list_ms = now + LIST_EVERY_MS;
            call_list(p);
        }
    }
}

/* ------------------------------------------------------------ the placer's words */

bool pools_explain(sched_t *s, const task_t *t, bool fallback, char *buf, size_t len)
{
    struct pools *ps = s->pools;
    if (!ps || !ps->n)
        return false;
    (void)fallback; /* wants_ondemand(t) says the same */
    int64_t now = util_now_ms();
    pool_t *order[8], *first;
    size_t n = candidates(ps, t, now, order, 8, &first);
    if (!first)
        return false;
    char lead[320] = "";
    if (first != (n ? order[0] : NULL)) {
        if (first->hold.name && first->hold.drained)
            snprintf(lead, sizeof lead, "pool %s is drained (drover pool scale resumes it)",
                     first->cfg->name);
        else
            snprintf(lead, sizeof lead, "pool %s backs off after a failure (%.160s)",
                     first->cfg->name, first->last_error);
    }
    if (!n) {
        snprintf(buf, len, "%s%s", lead, first->cfg->fallback ? "; no fallback pool can grow" : "");
        return true;
    }
    pool_t *p = order[0];
    uint32_t coming = 0;
    for (size_t i = 0; i < p->n_nodes; i++)
        coming += p->nodes[i]->state <= DROVER__POOL_NODE_STATE__POOL_NODE_BOOTING;
    char what[200];
    if (coming)
        snprintf(what, sizeof what, "pool %s is growing: %u node%s booting", p->cfg->name, coming,
                 coming == 1 ? "" : "s");
    else if (count(p, exists) >= p->cfg->max)
        snprintf(what, sizeof what, "pool %s is at its max (%u nodes)", p->cfg->name, p->cfg->max);
    else
        snprintf(what, sizeof what, "pool %s is about to grow", p->cfg->name);
    snprintf(buf, len, "%s%s%s", lead, *lead ? "; " : "", what);
    return true;
}

/* ------------------------------------------------------------ the API */

api_role_t pools_api_role(const Drover__PoolRequest *req)
{
    return req->op == DROVER__POOL_OP__POOL_LIST ? API_ROLE_READ : API_ROLE_ADMIN;
}

static Drover__PoolView *view_of(const pool_t *p, int64_t now)
{
    const pool_config_t *c = p->cfg;
    Drover__PoolView *v = xmalloc(sizeof *v);
    drover__pool_view__init(v);
    v->name = c->name;
    v->min = c->min;
    v->max = c->max;
    v->spot = c->spot;
    v->price = c->price;
    v->node = xmalloc(sizeof *v->node);
    drover__resources__init(v->node);
    v->node->cpu_milli = c->cpu_milli;
    v->node->memory_bytes = c->memory_bytes;
    v->node->gpus = c->gpus;
    v->n_labels = c->n_labels;
    v->labels = xcalloc(c->n_labels + 1, sizeof *v->labels);
    for (size_t i = 0; i < c->n_labels; i++) {
        v->labels[i] = xmalloc(sizeof **v->labels);
        drover__key_value__init(v->labels[i]);
        v->labels[i]->key = c->label_keys[i];
        v->labels[i]->value = c->label_values[i];
    }
    v->fallback = c->fallback ? c->fallback : (char *)protobuf_c_empty_string;
    v->n_nodes = p->n_nodes;
    v->nodes = xcalloc(p->n_nodes + 1, sizeof *v->nodes);
    for (size_t i = 0; i < p->n_nodes; i++) {
        v->nodes[i] = xmalloc(sizeof **v->nodes);
        record_of(p->nodes[i], v->nodes[i]);
    }
    v->demand = p->demand;
    v->waiting = p->waiting;
    v->cost_per_hour = c->price * count(p, exists);
    v->last_error = (char *)p->last_error;
    v->last_error_ms = p->last_error_ms;
    v->backoff_until_ms = backing_off(p, now) ? p->backoff_until_ms : 0;
    v->failures = p->failures;
    if (p->hold.name)
        v->hold = (Drover__PoolRecord *)&p->hold;
    v->provider = c->command;
    return v;
}

void pools_api(sched_t *s, const api_caller_t *caller, const Drover__PoolRequest *req,
               Drover__ApiResponse *resp, char **err)
{
    struct pools *ps = s->pools;
    int64_t now = util_now_ms();
    pool_t *only = NULL;
    if (req->op != DROVER__POOL_OP__POOL_LIST || *req->name) {
        only = pool_named(ps, req->name);
        if (!only) {
            api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND, "no pool '%s'%s",
                          req->name, ps->n ? "" : " (droverd's config has no pools:)");
            return;
        }
    }
    if (req->op == DROVER__POOL_OP__POOL_SCALE || req->op == DROVER__POOL_OP__POOL_DRAIN) {
        bool scale = req->op == DROVER__POOL_OP__POOL_SCALE;
        if (scale && req->count > only->cfg->max) {
            api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                          "pool %s: %u is above its max (%u)", only->cfg->name, req->count,
                          only->cfg->max);
            return;
        }
        drover__pool_record__init(&only->hold);
        only->hold.name = only->cfg->name;
        only->hold.scaled = scale;
        only->hold.floor = scale ? req->count : 0;
        only->hold.drained = !scale;
        only->hold.at_ms = now;
        snprintf(only->hold_by, sizeof only->hold_by, "%s", caller->name);
        only->hold.by = only->hold_by;
        only->hold_dirty = true;
        if (scale) { /* an operator asks: the cool-down ends, the surplus goes */
            only->backoff_until_ms = 0;
            only->failures = 0;
            only->shed = true;
        }
        s->journal.must_commit = true;
        ps->last_demand_ms = 0; /* act at the next tick */
        log_info("pool %s: %s by %s", only->cfg->name,
                 scale ? "scaled" : "drained: no new nodes, every node drained and removed",
                 caller->name);
    }
    size_t n = only ? 1 : ps->n;
    resp->pools = xcalloc(n + 1, sizeof *resp->pools);
    for (size_t i = 0; i < n; i++)
        resp->pools[resp->n_pools++] = view_of(only ? only : &ps->pool[i], now);
}

void pools_api_done(Drover__ApiResponse *resp)
{
    for (size_t i = 0; i < resp->n_pools; i++) {
        Drover__PoolView *v = resp->pools[i];
        for (size_t j = 0; j < v->n_labels; j++)
            free(v->labels[j]);
        for (size_t j = 0; j < v->n_nodes; j++)
            free(v->nodes[j]);
        free(v->labels);
        free(v->nodes);
        free(v->node);
        free(v);
    }
    free(resp->pools);
    resp->pools = NULL;
    resp->n_pools = 0;
}
