/* apitokens — bearer API tokens (docs/architecture.md "Security", README
 * "API tokens"): a script, CI job or drover-web acts as a named token with
 * a role, whatever connection its request came on.
 *
 * A token is `drva1.<id>.<secret>`: id 8 hex digits (its record's key in
 * the LMDB database "tokens", shared with join tokens: one id space, one
 * map s->tokens.by_id), secret 32 random bytes as 64 hex digits. Only the
 * secret's SHA-256 is stored; the text is shown once, when made
 * (`drover token create NAME --role R [--ttl DUR]`, admin). The record has
 * a role (read, submit or admin: what makes it an API token), a name
 * (unique among valid API tokens), created_ms/created_by, expires_ms (0:
 * never), revoked, and last_used_ms.
 *
 * A request whose ApiRequest.bearer is not empty is checked here before
 * anything else (api_handle_as): the text parsed, the id looked up, the
 * secret's hash compared in constant time, then revoked and expired. A
 * refusal answers API_ERROR_UNAUTHENTICATED with what is wrong (malformed,
 * unknown, revoked, expired; the id at most, never the secret) and counts
 * refused_tokens; a bad bearer is never ignored, not even on the ipc socket
 * whose callers are otherwise admins. Accepted: the request runs as the
 * token: role and name are the token's (runs it submits are owned by its
 * name; role submit cancels only those). The connection's own check (a
 * CURVE key in api-keys on a TCP endpoint) still comes first.
 *
 * Revoking is in memory at once (the token's very next request is refused)
 * and durable with the revoke's reply, which leaves after the commit.
 * last_used_ms is kept in memory (token_t.used_ms) on every request and
 * written lazily: by a commit that happens anyway, at most once a minute a
 * token (apitokens_stale_use), never a commit of its own.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define NAME_MAX_LEN 63
/* An API token lives at most this long (a ttl beyond is refused). */
#define TTL_MAX_MS (10LL * 366 * 24 * 3600 * 1000)
/* last_used_ms is rewritten at most this often a token. */
#define USE_WRITE_MS 60000

bool apitokens_is_api(const Drover__TokenRecord *r)
{
    return r->role && *r->role;
}

int apitokens_parse(const char *text, char id[9], uint8_t secret[32])
{
    return tokens_parse_as(text, "drva1.", id, secret);
}

static api_role_t role_of(const char *role)
{
    return strcmp(role, "admin") == 0    ? API_ROLE_ADMIN
           : strcmp(role, "submit") == 0 ? API_ROLE_SUBMIT
                                         : API_ROLE_READ;
}

static bool valid_now(const Drover__TokenRecord *r, int64_t now_ms)
{
    return strcmp(tokens_state(r, now_ms), "valid") == 0;
}

/* Refuse: why into buf, counted, logged (rate-limited). */
static int refuse(sched_t *s, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(sched_t *s, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    s->counters.refused_tokens++;
    if (s->counters.refused_tokens < 100 || s->counters.refused_tokens % 1000 == 0)
        log_warn("api: %s (%" PRIu64 " refused tokens so far)", buf, s->counters.refused_tokens);
    return -EACCES;
}

int apitokens_check(sched_t *s, const char *bearer, int64_t now_ms, api_caller_t *caller, char *buf,
                    size_t len)
{
    char id[9];
    uint8_t secret[32];
    token_t *t = NULL;
    if (apitokens_parse(bearer, id, secret) < 0) {
        size_t n = strlen(bearer);
        return refuse(s, buf, len,
                      "API token malformed (%zu characters%s): expected drva1.<8 hex "
                      "digits>.<64 hex digits>, as `drover token create` printed it",
                      n,
                      strncmp(bearer, "drv1.", 5) == 0 ? "; a join token is no API token"
                      : n < 79 && strncmp(bearer, "drva1.", 6) == 0 ? "; truncated?"
                                                                    : "");
    }
    bool known = (t = zhashx_lookup(s->tokens.by_id, id)) && apitokens_is_api(t->rec) &&
                 tokens_secret_matches(t->rec, secret);
    explicit_bzero(secret, sizeof secret);
    /* A wrong secret says no more than an unknown id. */
    if (!known)
        return refuse(s, buf, len, "API token %s unknown (never made, or a wrong secret)", id);
    const Drover__TokenRecord *r = t->rec;
    if (r->revoked)
        return refuse(s, buf, len, "API token '%s' (%s) was revoked", r->name, r->id);
    if (r->expires_ms && now_ms >= r->expires_ms) {
        char when[32];
        time_t sec = (time_t)(r->expires_ms / 1000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return refuse(s, buf, len, "API token '%s' (%s) expired at %s", r->name, r->id, when);
    }
    memset(caller, 0, sizeof *caller);
    caller->role = role_of(r->role);
    caller->token = true;
    snprintf(caller->name, sizeof caller->name, "%s", r->name);
    t->used_ms = now_ms; /* written lazily (apitokens_stale_use) */
    return 0;
}

token_t *apitokens_find_name(sched_t *s, const char *name, int64_t now_ms)
{
    token_t *best = NULL;
    for (token_t *t = zhashx_first(s->tokens.by_id); t; t = zhashx_next(s->tokens.by_id)) {
        if (!apitokens_is_api(t->rec) || strcmp(t->rec->name, name) != 0)
            continue;
        if (valid_now(t->rec, now_ms))
            return t; /* names are unique among valid tokens */
        if (!best || t->rec->created_ms > best->rec->created_ms)
            best = t;
    }
    return best;
}

/* Whether name is a caller's that is no API token: the local socket's
 * ("local", also the owner of scheduled runs) or an api-keys entry's. Runs
 * are owned by a caller's name, and role submit may cancel or resume the
 * runs its name owns, so a token of such a name could act on theirs. */
static bool owner_name_taken(sched_t *s, const char *name)
{
    if (strcmp(name, "local") == 0)
        return true;
    if (!s->auth.api_keys)
        return false;
    for (const keys_entry_t *k = zhashx_first(s->auth.api_keys); k;
         k = zhashx_next(s->auth.api_keys))
        if (strcmp(k->name, name) == 0)
            return true;
    return false;
}

int apitokens_create(sched_t *s, const api_caller_t *caller, const Drover__TokenRequest *req,
                     Drover__ApiResponse *resp, token_t **made, char *buf, size_t len)
{
    const char *name = req->name ? req->name : "", *role = req->role;
    int64_t now = util_now_ms();
    if (!util_valid_name(name, strlen(name), NAME_MAX_LEN, NULL)) {
        snprintf(buf, len, "bad API token name '%.63s': 1-63 characters of [A-Za-z0-9_.-]", name);
        return -EINVAL;
    }
    if (strcmp(role, "read") && strcmp(role, "submit") && strcmp(role, "admin")) {
        snprintf(buf, len, "bad role '%.31s': read, submit or admin", role);
        return -EINVAL;
    }
    if (req->ttl_ms > (uint64_t)TTL_MAX_MS) {
        snprintf(buf, len, "ttl must be at most 10 years (or none: the token does not expire)");
        return -EINVAL;
    }
    if (owner_name_taken(s, name)) {
        snprintf(buf, len,
                 "API token name '%s' is taken by a caller that is no token ('local' is droverd's "
                 "local socket, the others api-keys' names): a token of that name would own, and "
                 "so could cancel, their runs; pick another name",
                 name);
        return -EINVAL;
    }
    if ((req->pool && *req->pool) || req->uses || (req->name_prefix && *req->name_prefix) ||
        (req->node && *req->node)) {
        snprintf(buf, len,
                 "an API token takes no pool, uses, name prefix or node (those are "
                 "for join tokens)");
        return -EINVAL;
    }
    const token_t *same = apitokens_find_name(s, name, now);
    if (same && valid_now(same->rec, now)) {
        snprintf(buf, len,
                 "an API token named '%s' already exists (%s): revoke it first "
                 "(drover token revoke %s), or pick another name",
                 name, same->rec->id, name);
        return -EEXIST;
    }
    Drover__TokenRecord r = DROVER__TOKEN_RECORD__INIT;
    r.role = (char *)role;
    r.name = (char *)name;
    r.created_by = (char *)caller->name;
    *made = tokens_new(s, &r, req->ttl_ms, "drva1.", &resp->token);
    log_info("API token %s '%s' (role %s) made by %s%s", (*made)->rec->id, name, role, caller->name,
             req->ttl_ms ? "" : ", no expiry");
    return 0;
}

bool apitokens_stale_use(const token_t *t)
{
    return t->used_ms > t->rec->last_used_ms &&
           (t->used_ms - t->rec->last_used_ms >= USE_WRITE_MS || t->dirty);
}
