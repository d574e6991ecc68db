/* tokens — join tokens: new nodes join without a person copying keys
 * (docs/architecture.md "Security", README "Join tokens").
 *
 * A token is `drv1.<id>.<secret>`: id 8 hex digits (the record's key in
 * the LMDB database "tokens"), secret 32 random bytes as 64 hex digits.
 * Only the secret's SHA-256 is stored; the token is shown once, when made.
 * A token has a pool, an expiry, a number of uses (1 by default), an
 * optional name prefix, or one node name it is bound to (tokens_mint, for
 * the pool manager), and the nodes it admitted (name + key).
 *
 * Joining: an agent with --join-token sends Join{token, name, key} beside
 * its Register. Its key is unknown, so auth_agent_key hands the message
 * here instead of refusing it (only while at least one token record
 * exists, and only up to 64 KiB: otherwise unknown keys stay undecoded,
 * as before). A message of
 * an unknown key that is not a Join (or a Join with anything but a
 * Register) is refused as an unknown key's always was. The token is
 * checked (known id, the secret's hash compared in constant time, not
 * revoked, uses left, not expired, the name allowed, the name not already
 * held by another key); a refusal is answered with its reason and counted
 * (`refused_joins`). Admitted: the key is authorized for that name only,
 * exactly as a key file in authorized-keys naming it (it is added to
 * s->auth.agent_keys, and again after each SIGHUP reload), the admission
 * and the use are written in the next commit, and the Register in the same
 * message is handled as any registration (its reply leaves after that
 * commit, so a joined key is durable before the agent hears of it). A key
 * already authorized that sends a Join again (an agent restarted with the
 * same --join-token) is not re-checked: agents.c ignores the Join.
 *
 * Revoking a token (or `drover agent forget NAME`) takes back the keys it
 * admitted: a connected agent holding one is lost at once
 * (agents_keys_changed), and its next message is refused.
 *
 * API tokens (`drva1.`, apitokens.c) live in the same map and database:
 * their records have a role (apitokens_is_api). They never admit a node
 * (tokens_join treats their ids as unknown) and do not count for
 * tokens_any; create, revoke (by id or name) and list here serve both.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "digest.h"
#include "log.h"
#include "util.h"

#define NAME_MAX_LEN 63
#define POOL_MAX_LEN 63
/* The most bytes of an unknown key's message that are decoded as a Join. */
#define JOIN_MAX_BYTES 65536

static void token_free(void **item)
{
    if (!*item)
        return;
    token_t *t = *item;
    drover__token_record__free_unpacked(t->rec, NULL);
    free(t);
    *item = NULL;
}

/* A record we own as if unpacked (free_unpacked frees it): built by
 * packing m and unpacking the bytes. */
static Drover__TokenRecord *record_copy(const Drover__TokenRecord *m)
{
    size_t n = drover__token_record__get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__token_record__pack(m, buf);
    Drover__TokenRecord *r = drover__token_record__unpack(NULL, n, buf);
    free(buf);
    if (!r)
        abort(); /* our own bytes: cannot happen */
    return r;
}

static token_t *token_add(sched_t *s, Drover__TokenRecord *rec)
{
    token_t *t = xcalloc(1, sizeof *t);
    t->rec = rec;
    t->used_ms = rec->last_used_ms;
    if (apitokens_is_api(rec))
        s->tokens.n_api++;
    zhashx_update(s->tokens.by_id, rec->id, t);
    return t;
}

void tokens_update(sched_t *s, token_t *t, const Drover__TokenRecord *m)
{
    Drover__TokenRecord *r = record_copy(m);
    drover__token_record__free_unpacked(t->rec, NULL);
    t->rec = r;
    t->dirty = true;
    s->journal.must_commit = true;
}

static void load_one(const Drover__TokenRecord *rec, void *arg)
{
    sched_t *s = arg;
    if (!rec->id || strlen(rec->id) != 8 || rec->secret_sha256.len != DIGEST_LEN) {
        log_error("tokens: record '%s' malformed: skipped", rec->id ? rec->id : "");
        return;
    }
    token_add(s, record_copy(rec));
}

int tokens_init(sched_t *s)
{
    s->tokens.by_id = zhashx_new();
    zhashx_set_destructor(s->tokens.by_id, token_free);
    return store_load_tokens(s->store, load_one, s);
}

void tokens_free(sched_t *s)
{
    zhashx_destroy(&s->tokens.by_id);
}

bool tokens_any(const sched_t *s)
{
    return s->tokens.by_id && zhashx_size(s->tokens.by_id) > s->tokens.n_api;
}

int tokens_commit(sched_t *s)
{
    int rc = 0;
    if (!s->tokens.by_id)
        return 0;
    for (token_t *t = zhashx_first(s->tokens.by_id); t && rc == 0;
         t = zhashx_next(s->tokens.by_id)) {
        if (apitokens_stale_use(t)) {
            t->rec->last_used_ms = t->used_ms; /* a scalar: set in place */
            t->dirty = true;
        }
        if (t->dirty && (rc = store_put_token(s->store, t->rec)) == 0)
            t->dirty = false; /* a failed commit stops droverd: no retry needed */
    }
    return rc;
}

/* ------------------------------------------------------------ the format */

int tokens_parse_as(const char *text, const char *prefix, char id[9], uint8_t secret[32])
{
    size_t n = strlen(prefix);
    if (!text || strncmp(text, prefix, n) != 0)
        return -EINVAL;
    const char *p = text + n;
    if (strlen(p) != 8 + 1 + 64 || p[8] != '.')
        return -EINVAL;
    for (int i = 0; i < 8 + 1 + 64; i++) /* lowercase hex only: one form per token */
        if (i != 8 && !((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return -EINVAL;
    memcpy(id, p, 8);
    id[8] = '\0';
    return digest_from_hex(p + 9, secret) == 0 ? 0 : -EINVAL;
}

int tokens_parse(const char *text, char id[9], uint8_t secret[32])
{
    return tokens_parse_as(text, "drv1.", id, secret);
}

static bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

bool tokens_secret_matches(const Drover__TokenRecord *r, const uint8_t secret[32])
{
    uint8_t h[DIGEST_LEN];
    digest_buffer(secret, 32, h);
    bool ok = r->secret_sha256.len == DIGEST_LEN && equal_ct(h, r->secret_sha256.data, DIGEST_LEN);
    explicit_bzero(h, sizeof h);
    return ok;
}

const char *tokens_state(const Drover__TokenRecord *r, int64_t now_ms)
{
    if (r->revoked)
        return "revoked";
    if (apitokens_is_api(r)) /* no uses; expires_ms 0: never */
        return r->expires_ms && now_ms >= r->expires_ms ? "expired" : "valid";
    if (r->uses_left == 0)
        return "used";
    if (now_ms >= r->expires_ms)
        return "expired";
    return "valid";
}

const char *tokens_refusal(const Drover__TokenRecord *r, const uint8_t secret[32], const char *name,
                           int64_t now_ms, char *buf, size_t len)
{
    if (apitokens_is_api(r) || !tokens_secret_matches(r, secret))
        return "join token unknown"; /* a forged secret says no more than an unknown id */
    if (r->revoked)
        return "join token revoked";
    if (r->uses_left == 0)
        return "join token used up";
    if (now_ms >= r->expires_ms)
        return "join token expired";
    if (r->bound_name && *r->bound_name && strcmp(r->bound_name, name) != 0) {
        snprintf(buf, len, "join token bound to node %s", r->bound_name);
        return buf;
    }
    if (r->name_prefix && *r->name_prefix &&
        strncmp(name, r->name_prefix, strlen(r->name_prefix)) != 0) {
        snprintf(buf, len, "join token admits only names starting with '%s'", r->name_prefix);
        return buf;
    }
    return NULL;
}

/* ------------------------------------------------------------ minting */

static void random_bytes(uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(b + got, n - got, 0);
        if (k > 0)
            got += (size_t)k;
        else if (errno != EINTR)
            abort(); /* cannot happen on Linux >= 3.17 once booted */
    }
}

/* Make a token; *token_out gets its text (caller frees), *id_out its id. */
static int mint(sched_t *s, const char *pool, uint64_t ttl_ms, uint32_t uses, const char *prefix,
                const char *bound, const char *by, char **token_out, token_t **made, char *err,
                size_t errlen)
{
    if (!pool || !util_valid_name(pool, strlen(pool), POOL_MAX_LEN, NULL)) {
        snprintf(err, errlen, "bad pool name '%s': 1-63 characters of [A-Za-z0-9_.-]",
                 pool ? pool : "");
        return -EINVAL;
    }
    if (ttl_ms == 0 || ttl_ms > 366ULL * 24 * 3600 * 1000) {
        snprintf(err, errlen, "ttl must be between 1ms and 366 days");
        return -EINVAL;
    }
    if (uses > 100000) {
        snprintf(err, errlen, "uses must be at most 100000");
        return -EINVAL;
    }
    if (prefix && *prefix && !util_valid_name(prefix, strlen(prefix), NAME_MAX_LEN, NULL)) {
        snprintf(err, errlen, "bad name prefix '%s': 1-63 characters of [A-Za-z0-9_.-]", prefix);
        return -EINVAL;
    }
    if (bound && !util_valid_name(bound, strlen(bound), NAME_MAX_LEN, NULL)) {
        snprintf(err, errlen, "bad node name '%s': 1-63 characters of [A-Za-z0-9_.-]", bound);
        return -EINVAL;
    }
    Drover__TokenRecord r = DROVER__TOKEN_RECORD__INIT;
    r.pool = (char *)pool;
    r.uses = r.uses_left = uses ? uses : 1;
    r.created_by = (char *)(by ? by : "");
    r.name_prefix = (char *)(prefix ? prefix : "");
    r.bound_name = (char *)(bound ? bound : "");
    token_t *t = tokens_new(s, &r, ttl_ms, "drv1.", token_out);
    if (made)
        *made = t;
    log_info("join token %s made for pool %s by %s: %u uses, expires in %" PRIu64 " s%s%s",
             t->rec->id, pool, by ? by : "droverd", r.uses, ttl_ms / 1000,
             bound ? ", for node " : "", bound ? bound : "");
    return 0;
}

token_t *tokens_new(sched_t *s, const Drover__TokenRecord *tmpl, uint64_t ttl_ms,
                    const char *prefix, char **text_out)
{
    uint8_t raw[4 + 32], hash[DIGEST_LEN];
    char id[9], secret[65];
    do {
        random_bytes(raw, sizeof raw);
        util_hex(raw, 4, id);
    } while (zhashx_lookup(s->tokens.by_id, id)); /* one id space for both kinds */
    util_hex(raw + 4, 32, secret);
    digest_buffer(raw + 4, 32, hash);
    Drover__TokenRecord r = *tmpl;
    r.id = id;
    r.secret_sha256.data = hash;
    r.secret_sha256.len = DIGEST_LEN;
    r.created_ms = util_now_ms();
    r.expires_ms = ttl_ms ? r.created_ms + (int64_t)ttl_ms : 0;
    token_t *t = token_add(s, record_copy(&r));
    t->dirty = true;
    s->journal.must_commit = true;
    *text_out = xasprintf("%s%s.%s", prefix, id, secret);
    explicit_bzero(raw, sizeof raw);
    explicit_bzero(secret, sizeof secret);
    return t;
}

int tokens_mint(sched_t *s, const char *pool, const char *node_name, uint64_t ttl_ms,
                char **token_out, char *err, size_t errlen)
{
    *token_out = NULL;
    if (!node_name) {
        snprintf(err, errlen, "a minted token needs the node's name");
        return -EINVAL;
    }
    return mint(s, pool, ttl_ms, 1, NULL, node_name, "droverd", token_out, NULL, err, errlen);
}

/* ------------------------------------------------------------ keys */

static void add_key(zhashx_t *keys, const char *z85, const char *name)
{
    if (zhashx_lookup(keys, z85))
        return; /* a key file for it wins */
    keys_entry_t *e = xcalloc(1, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", z85);
    snprintf(e->name, sizeof e->name, "%s", name);
    zhashx_insert(keys, z85, e);
    /* zhashx_insert does not copy items: the hash's destructor frees e */
}

void tokens_add_keys(sched_t *s, zhashx_t *keys)
{
    if (!keys || !s->tokens.by_id)
        return;
    for (token_t *t = zhashx_first(s->tokens.by_id); t; t = zhashx_next(s->tokens.by_id)) {
        if (t->rec->revoked)
            continue;
        for (size_t i = 0; i < t->rec->n_admitted; i++)
            add_key(keys, t->rec->admitted[i]->key, t->rec->admitted[i]->name);
    }
}

/* Take back t's admissions of node name (NULL: all of them); their keys
 * leave the authorized set. Returns how many. */
static size_t take_back(sched_t *s, token_t *t, const char *name)
{
    Drover__TokenRecord r = *t->rec;
    Drover__TokenAdmit **kept = xcalloc(r.n_admitted + 1, sizeof *kept);
    size_t n = 0, gone = 0;
    for (size_t i = 0; i < r.n_admitted; i++) {
        Drover__TokenAdmit *a = r.admitted[i];
        if (name && strcmp(a->name, name) != 0) {
            kept[n++] = a;
            continue;
        }
        const keys_entry_t *k =
            s->auth.agent_keys ? zhashx_lookup(s->auth.agent_keys, a->key) : NULL;
        if (k && strcmp(k->name, a->name) == 0)
            zhashx_delete(s->auth.agent_keys, a->key);
        gone++;
    }
    if (gone) {
        r.admitted = kept;
        r.n_admitted = n;
        tokens_update(s, t, &r);
    }
    free(kept);
    return gone;
}

void tokens_forget_node(sched_t *s, const char *name)
{
    if (!s->tokens.by_id)
        return;
    size_t gone = 0;
    for (token_t *t = zhashx_first(s->tokens.by_id); t; t = zhashx_next(s->tokens.by_id))
        gone += take_back(s, t, name);
    if (gone)
        log_info("agent %s: the key its join token admitted is revoked", name);
}

/* ------------------------------------------------------------ joining */

static void refuse_join(sched_t *s, zframe_t *conn, const char *name, const char *why)
{
    s->counters.refused_joins++;
    if (s->counters.refused_joins < 100 || s->counters.refused_joins % 1000 == 0)
        log_warn("agent '%.63s': join refused: %s", name ? name : "", why);
    outbound_peer_reply(&s->out, conn, why);
}

/* Whether an authorized key (a key file's or a token's) is for name. */
static bool name_taken(const sched_t *s, const char *name)
{
    for (keys_entry_t *k = zhashx_first(s->auth.agent_keys); k; k = zhashx_next(s->auth.agent_keys))
        if (strcmp(k->name, name) == 0)
            return true;
    return false;
}

void tokens_join(sched_t *s, zframe_t *conn, zframe_t *body)
{
    const char *user = zframe_meta(body, "User-Id");
    char why[256];
    /* A Join and a fresh node's Register are small: a larger message of an
     * unknown key is not even decoded. */
    Drover__AgentMessage *msg =
        zframe_size(body) > JOIN_MAX_BYTES
            ? NULL
            : drover__agent_message__unpack(NULL, zframe_size(body), zframe_data(body));
    if (!msg || !msg->join || !user) {
        /* Not a join: an unknown key, refused as always. */
        auth_unknown_key(s, user, why, sizeof why);
        if (s->counters.refused_agents < 100 || s->counters.refused_agents % 1000 == 0)
            log_warn("agents socket: message refused: %s", why);
        outbound_peer_reply(&s->out, conn, why);
        goto done;
    }
    const Drover__Join *j = msg->join;
    const char *name = j->name;
    uint8_t secret[32];
    char id[9];
    token_t *t = NULL;
    const char *refusal = NULL;
    if (msg->heartbeat || msg->n_reports || msg->n_assign_acks || msg->n_offers || msg->n_chunks ||
        msg->n_chunk_acks || msg->n_fetches)
        refusal = "a joining agent may send only Join and Register";
    else if (!name || !util_valid_name(name, strlen(name), NAME_MAX_LEN, NULL))
        refusal = "bad agent name: 1-63 characters of [A-Za-z0-9_.-]";
    else if (msg->register_ && (!msg->register_->name || strcmp(msg->register_->name, name)))
        refusal = "Join and Register name different agents";
    else if (j->public_key && *j->public_key && strcmp(j->public_key, user) != 0)
        refusal = "Join names another key than the connection's";
    else if (tokens_parse(j->token, id, secret) < 0 || !(t = zhashx_lookup(s->tokens.by_id, id)))
        refusal = "join token unknown";
    else if (!(refusal = tokens_refusal(t->rec, secret, name, util_now_ms(), why, sizeof why)) &&
             name_taken(s, name)) {
        snprintf(why, sizeof why,
                 "node name %s already has a key (drover agent forget %s, or pick another name)",
                 name, name);
        refusal = why;
    }
    explicit_bzero(secret, sizeof secret);
    if (refusal) {
        refuse_join(s, conn, name, refusal);
        goto done;
    }
    /* Admitted: the key for that name, the use spent, both in the next
     * commit (before the Register's reply leaves). */
    Drover__TokenRecord r = *t->rec;
    Drover__TokenAdmit ad = DROVER__TOKEN_ADMIT__INIT;
    ad.name = (char *)name;
    ad.key = (char *)user;
    ad.at_ms = util_now_ms();
    Drover__TokenAdmit **all = xcalloc(r.n_admitted + 1, sizeof *all);
    if (r.n_admitted)
        memcpy(all, r.admitted, r.n_admitted * sizeof *all);
    all[r.n_admitted] = &ad;
    r.admitted = all;
    r.n_admitted++;
    r.uses_left--;
    tokens_update(s, t, &r);
    free(all);
    add_key(s->auth.agent_keys, user, name);
    log_info("agent %s joined with token %s (pool %s, %u uses left): key %s authorized for it",
             name, t->rec->id, t->rec->pool, t->rec->uses_left, user);
    const keys_entry_t *k = zhashx_lookup(s->auth.agent_keys, user);
    if (msg->register_)
        agents_handle(s, conn, k, zframe_data(body), zframe_size(body));
    else
        outbound_peer_reply(&s->out, conn, NULL); /* register now */
done:
    if (msg)
        drover__agent_message__free_unpacked(msg, NULL);
}

/* ------------------------------------------------------------ the API */

static Drover__TokenView *view_of(const token_t *t, int64_t now)
{
    Drover__TokenView *v = xcalloc(1, sizeof *v);
    drover__token_view__init(v);
    v->record = record_copy(t->rec);
    v->record->secret_sha256.len = 0; /* the hash stays in droverd */
    if (t->used_ms > v->record->last_used_ms)
        v->record->last_used_ms = t->used_ms; /* not yet written */
    v->state = (char *)tokens_state(t->rec, now);
    v->kind = (char *)(apitokens_is_api(t->rec) ? "api" : "join");
    return v;
}

static int by_created(const void *a, const void *b)
{
    const Drover__TokenView *x = *(Drover__TokenView *const *)a,
                            *y = *(Drover__TokenView *const *)b;
    if (x->record->created_ms != y->record->created_ms)
        return x->record->created_ms < y->record->created_ms ? -1 : 1;
    return strcmp(x->record->id, y->record->id);
}

void tokens_api(sched_t *s, const api_caller_t *caller, const Drover__TokenRequest *req,
                Drover__ApiResponse *resp, char **err)
{
    char buf[256];
    int64_t now = util_now_ms();
    token_t *t = NULL;
    switch (req->op) {
    case DROVER__TOKEN_OP__TOKEN_CREATE:
        if (req->role && *req->role) { /* an API token */
            int rc = apitokens_create(s, caller, req, resp, &t, buf, sizeof buf);
            if (rc < 0) {
                api_set_error(resp, err,
                              rc == -EEXIST ? DROVER__API_ERROR_CODE__API_ERROR_CONFLICT
                                            : DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                              "%s", buf);
                return;
            }
            break;
        }
        if (mint(s, req->pool, req->ttl_ms, req->uses, req->name_prefix,
                 req->node && *req->node ? req->node : NULL, caller->name, &resp->token, &t, buf,
                 sizeof buf) < 0) {
            api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID, "%s", buf);
            return;
        }
        break;
    case DROVER__TOKEN_OP__TOKEN_REVOKE: {
        t = req->id ? zhashx_lookup(s->tokens.by_id, req->id) : NULL;
        if (!t && req->id)
            t = apitokens_find_name(s, req->id, now); /* an API token by its name */
        if (!t) {
            api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND,
                          "no join token '%s' (nor an API token of that id or name)",
                          req->id ? req->id : "");
            return;
        }
        if (!t->rec->revoked && apitokens_is_api(t->rec)) {
            Drover__TokenRecord r = *t->rec;
            r.revoked = true;
            tokens_update(s, t, &r); /* its very next request is refused */
            log_info("API token %s (%s) revoked by %s", t->rec->id, t->rec->name, caller->name);
        } else if (!t->rec->revoked) {
            Drover__TokenRecord r = *t->rec;
            r.revoked = true;
            tokens_update(s, t, &r);
            size_t gone = take_back(s, t, NULL);
            log_info("join token %s revoked by %s: %zu admitted keys revoked", t->rec->id,
                     caller->name, gone);
            if (gone)
                agents_keys_changed(s);
        }
        break;
    }
    case DROVER__TOKEN_OP__TOKEN_LIST:
        break;
    default:
        api_set_error(resp, err, DROVER__API_ERROR_CODE__API_ERROR_INVALID,
                      "unknown token operation %d", req->op);
        return;
    }
    if (t) {
        resp->tokens = xcalloc(1, sizeof *resp->tokens);
        resp->tokens[resp->n_tokens++] = view_of(t, now);
        return;
    }
    resp->tokens = xcalloc(zhashx_size(s->tokens.by_id) + 1, sizeof *resp->tokens);
    for (t = zhashx_first(s->tokens.by_id); t; t = zhashx_next(s->tokens.by_id))
        resp->tokens[resp->n_tokens++] = view_of(t, now);
    qsort(resp->tokens, resp->n_tokens, sizeof *resp->tokens, by_created);
}

void tokens_api_done(Drover__ApiResponse *resp)
{
    for (size_t i = 0; i < resp->n_tokens; i++) {
        drover__token_record__free_unpacked(resp->tokens[i]->record, NULL);
        free(resp->tokens[i]);
    }
    free(resp->tokens);
    resp->tokens = NULL;
    resp->n_tokens = 0;
    if (resp->token && *resp->token) { /* else the init's protobuf_c_empty_string */
        explicit_bzero(resp->token, strlen(resp->token));
        free(resp->token);
        resp->token = NULL;
    }
}
