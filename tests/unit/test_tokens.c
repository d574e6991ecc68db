/* test_tokens — join tokens in droverd (scheduler/tokens.c): the token's
 * format, minting (tokens_mint, what the pool manager calls), the check of
 * a presented token on an injected clock (forged secret, used up, expired,
 * revoked, bound to another node, outside the name prefix), and the store
 * round trip: a token survives a droverd restart, and only the SHA-256 of
 * its secret is ever written (the state dir's bytes are searched for the
 * secret). The join itself over CURVE is tests/integration/test_join_tokens.py.
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include "digest.h"

TestSuite(tokens, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

static token_t *find(const char *id)
{
    return zhashx_lookup(s->tokens.by_id, id);
}

Test(tokens, parse_accepts_only_the_format)
{
    char id[9];
    uint8_t secret[32];
    char good[128];
    snprintf(good, sizeof good, "drv1.0a1b2c3d.%064d", 7);
    cr_assert_eq(tokens_parse(good, id, secret), 0);
    cr_assert_str_eq(id, "0a1b2c3d");
    cr_assert_eq(secret[31], 0x07);
    const char *bad[] = {
        "",
        "drv1.",
        "drv2.0a1b2c3d.0000000000000000000000000000000000000000000000000000000000000000",
        "drv1.0A1B2C3D.0000000000000000000000000000000000000000000000000000000000000000",
        "drv1.0a1b2c3d.000000000000000000000000000000000000000000000000000000000000000",
        "drv1.0a1b2c3d.00000000000000000000000000000000000000000000000000000000000000000",
        "drv1.0a1b2c3d.000000000000000000000000000000000000000000000000000000000000000g",
        "drv1.0a1b2c3d.00000000000000000000000000000000000000000000000000000000000000AB",
        "drv1.0a1b2c3dx0000000000000000000000000000000000000000000000000000000000000000",
        "drv1.0a1b2c3.d0000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(tokens_parse(bad[i], id, secret), -EINVAL, "accepted '%s'", bad[i]);
    cr_assert_eq(tokens_parse(NULL, id, secret), -EINVAL);
}

Test(tokens, minted_token_admits_its_node_only_once_and_until_it_expires)
{
    char *tok = NULL, err[256];
    cr_assert_eq(tokens_mint(s, "gpu-spot", "gpu-spot-7f3a", 600000, &tok, err, sizeof err), 0,
                 "%s", err);
    char id[9];
    uint8_t secret[32];
    cr_assert_eq(tokens_parse(tok, id, secret), 0, "minted '%s'", tok);
    token_t *t = find(id);
    cr_assert_not_null(t);
    const Drover__TokenRecord *r = t->rec;
    cr_assert_str_eq(r->pool, "gpu-spot");
    cr_assert_str_eq(r->bound_name, "gpu-spot-7f3a");
    cr_assert_eq(r->uses, 1);
    cr_assert_eq(r->uses_left, 1);
    cr_assert_eq(r->expires_ms - r->created_ms, 600000);
    uint8_t h[DIGEST_LEN];
    digest_buffer(secret, 32, h);
    cr_assert_eq(r->secret_sha256.len, DIGEST_LEN);
    cr_assert_arr_eq(r->secret_sha256.data, h, DIGEST_LEN);
    cr_assert(t->dirty);

    char buf[128];
    int64_t now = r->created_ms + 1000;
    cr_assert_null(tokens_refusal(r, secret, "gpu-spot-7f3a", now, buf, sizeof buf));
    cr_assert_str_eq(tokens_state(r, now), "valid");
    /* another node */
    cr_assert_str_eq(tokens_refusal(r, secret, "gpu-spot-0000", now, buf, sizeof buf),
                     "join token bound to node gpu-spot-7f3a");
    /* a forged secret: one bit off */
    uint8_t forged[32];
    memcpy(forged, secret, 32);
    forged[5] ^= 0x10;
    cr_assert_str_eq(tokens_refusal(r, forged, "gpu-spot-7f3a", now, buf, sizeof buf),
                     "join token unknown");
    /* expired: at expires_ms exactly, on the injected clock */
    cr_assert_str_eq(tokens_refusal(r, secret, "gpu-spot-7f3a", r->expires_ms, buf, sizeof buf),
                     "join token expired");
    cr_assert_str_eq(tokens_state(r, r->expires_ms), "expired");
    /* reused: once its use is spent */
    Drover__TokenRecord used = *r;
    used.uses_left = 0;
    cr_assert_str_eq(tokens_refusal(&used, secret, "gpu-spot-7f3a", now, buf, sizeof buf),
                     "join token used up");
    cr_assert_str_eq(tokens_state(&used, now), "used");
    Drover__TokenRecord revoked = *r;
    revoked.revoked = true;
    cr_assert_str_eq(tokens_refusal(&revoked, secret, "gpu-spot-7f3a", now, buf, sizeof buf),
                     "join token revoked");
    cr_assert_str_eq(tokens_state(&revoked, now), "revoked");
    Drover__TokenRecord prefixed = *r;
    prefixed.bound_name = "";
    prefixed.name_prefix = "gpu-";
    cr_assert_null(tokens_refusal(&prefixed, secret, "gpu-9", now, buf, sizeof buf));
    cr_assert_str_eq(tokens_refusal(&prefixed, secret, "cpu-9", now, buf, sizeof buf),
                     "join token admits only names starting with 'gpu-'");
    free(tok);
}

Test(tokens, mint_refuses_bad_input)
{
    char *tok = NULL, err[256];
    cr_assert_eq(tokens_mint(s, "bad pool", "n1", 1000, &tok, err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "bad pool name 'bad pool'"), "%s", err);
    cr_assert_eq(tokens_mint(s, "p", "n1", 0, &tok, err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "ttl"), "%s", err);
    cr_assert_eq(tokens_mint(s, "p", "bad/name", 1000, &tok, err, sizeof err), -EINVAL);
    cr_assert_eq(tokens_mint(s, "p", NULL, 1000, &tok, err, sizeof err), -EINVAL);
    cr_assert_null(tok);
    cr_assert_not(tokens_any(s));
}

/* Whether the n bytes of needle occur in file path. */
static bool file_has(const char *path, const void *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)len + 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    bool found = memmem(buf, (size_t)len, needle, n) != NULL;
    free(buf);
    return found;
}

Test(tokens, stored_hashed_and_kept_across_a_restart)
{
    char *tok = NULL, err[256];
    cr_assert_eq(tokens_mint(s, "pool-a", "node-1", 3600000, &tok, err, sizeof err), 0, "%s", err);
    char id[9];
    uint8_t secret[32];
    cr_assert_eq(tokens_parse(tok, id, secret), 0);
    cr_assert(tokens_any(s));
    cr_assert_eq(commit_journal(s), 0);
    cr_assert_not(find(id)->dirty);
    h_sched_restart();
    token_t *t = find(id);
    cr_assert_not_null(t, "token %s lost by a restart", id);
    cr_assert_str_eq(t->rec->pool, "pool-a");
    cr_assert_str_eq(t->rec->bound_name, "node-1");
    cr_assert_null(tokens_refusal(t->rec, secret, "node-1", t->rec->created_ms, err, sizeof err));
    /* never the secret, in either form, in the state dir */
    char *data = xasprintf("%s/data.mdb", h_dir);
    const char *hex = strrchr(tok, '.') + 1;
    cr_assert_not(file_has(data, hex, strlen(hex)), "the secret's text is in the store");
    cr_assert_not(file_has(data, secret, sizeof secret), "the secret's bytes are in the store");
    uint8_t h[DIGEST_LEN];
    digest_buffer(secret, 32, h);
    cr_assert(file_has(data, h, sizeof h), "the secret's hash is not in the store");
    free(data);
    free(tok);
}

Test(tokens, api_lists_without_the_hash_and_revoke_is_durable)
{
    api_caller_t admin = {.role = API_ROLE_ADMIN, .name = "ops"};
    Drover__TokenRequest req = DROVER__TOKEN_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.op = DROVER__TOKEN_OP__TOKEN_CREATE;
    req.pool = "p";
    req.ttl_ms = 60000;
    req.uses = 3;
    req.name_prefix = "gpu-";
    tokens_api(s, &admin, &req, &resp, &err);
    cr_assert_null(err, "%s", err);
    cr_assert_eq(strncmp(resp.token, "drv1.", 5), 0);
    cr_assert_eq(resp.n_tokens, 1);
    char id[9];
    snprintf(id, sizeof id, "%s", resp.tokens[0]->record->id);
    cr_assert_str_eq(resp.tokens[0]->record->created_by, "ops");
    cr_assert_eq(resp.tokens[0]->record->uses_left, 3);
    tokens_api_done(&resp);

    Drover__ApiResponse list = DROVER__API_RESPONSE__INIT;
    req = (Drover__TokenRequest)DROVER__TOKEN_REQUEST__INIT;
    tokens_api(s, &admin, &req, &list, &err);
    cr_assert_eq(list.n_tokens, 1);
    cr_assert_eq(list.tokens[0]->record->secret_sha256.len, 0, "the hash left droverd");
    cr_assert_str_eq(list.tokens[0]->state, "valid");
    cr_assert_str_eq(list.token, "");
    tokens_api_done(&list);

    Drover__ApiResponse rv = DROVER__API_RESPONSE__INIT;
    req.op = DROVER__TOKEN_OP__TOKEN_REVOKE;
    req.id = id;
    tokens_api(s, &admin, &req, &rv, &err);
    cr_assert_null(err, "%s", err);
    cr_assert_str_eq(rv.tokens[0]->state, "revoked");
    tokens_api_done(&rv);
    cr_assert_eq(commit_journal(s), 0);
    h_sched_restart();
    cr_assert(find(id)->rec->revoked);

    Drover__ApiResponse nf = DROVER__API_RESPONSE__INIT;
    req.id = "00000000";
    tokens_api(s, &admin, &req, &nf, &err);
    cr_assert_not_null(err);
    cr_assert_eq(nf.error_code, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND);
    cr_assert(strstr(err, "no join token '00000000'"), "%s", err);
    free(err);
    tokens_api_done(&nf);
}

/* ------------------------------------------------------------ API tokens */

Test(tokens, api_token_parse_accepts_only_its_format)
{
    char id[9];
    uint8_t secret[32];
    char good[128];
    snprintf(good, sizeof good, "drva1.0a1b2c3d.%064d", 9);
    cr_assert_eq(apitokens_parse(good, id, secret), 0);
    cr_assert_str_eq(id, "0a1b2c3d");
    cr_assert_eq(secret[31], 0x09);
    cr_assert_eq(secret[0], 0x00);
    const char *bad[] = {
        "",
        "drva1.",
        "drva1.0a1b2c3d.",
        "drva1.0a1b2c3d",
        /* a join token is not an API token, nor the other way round */
        "drv1.0a1b2c3d.0000000000000000000000000000000000000000000000000000000000000000",
        "drva2.0a1b2c3d.0000000000000000000000000000000000000000000000000000000000000000",
        "DRVA1.0a1b2c3d.0000000000000000000000000000000000000000000000000000000000000000",
        "drva1.0A1B2C3D.0000000000000000000000000000000000000000000000000000000000000000",
        /* truncated, one too many, not hex, uppercase */
        "drva1.0a1b2c3d.000000000000000000000000000000000000000000000000000000000000000",
        "drva1.0a1b2c3d.00000000000000000000000000000000000000000000000000000000000000000",
        "drva1.0a1b2c3d.000000000000000000000000000000000000000000000000000000000000000z",
        "drva1.0a1b2c3d.00000000000000000000000000000000000000000000000000000000000000AB",
        /* the dot misplaced or missing */
        "drva1.0a1b2c3dx0000000000000000000000000000000000000000000000000000000000000000",
        "drva1.0a1b2c3.d0000000000000000000000000000000000000000000000000000000000000000",
        " drva1.0a1b2c3d.0000000000000000000000000000000000000000000000000000000000000000",
        "drva1.0a1b2c3d.0000000000000000000000000000000000000000000000000000000000000000\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(apitokens_parse(bad[i], id, secret), -EINVAL, "accepted '%s'", bad[i]);
    cr_assert_eq(apitokens_parse(NULL, id, secret), -EINVAL);
    char join[128];
    snprintf(join, sizeof join, "drv1.0a1b2c3d.%064d", 9);
    cr_assert_eq(tokens_parse(good, id, secret), -EINVAL, "the join parser refuses drva1.");
    cr_assert_eq(tokens_parse(join, id, secret), 0);
}

/* Create an API token through tokens_api as ops; returns its text. */
static char *api_token(const char *name, const char *role, uint64_t ttl_ms)
{
    api_caller_t admin = {.role = API_ROLE_ADMIN, .name = "ops"};
    Drover__TokenRequest req = DROVER__TOKEN_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.op = DROVER__TOKEN_OP__TOKEN_CREATE;
    req.name = (char *)name;
    req.role = (char *)role;
    req.ttl_ms = ttl_ms;
    tokens_api(s, &admin, &req, &resp, &err);
    cr_assert_null(err, "%s", err);
    cr_assert_str_eq(resp.tokens[0]->kind, "api");
    char *tok = xstrdup(resp.token);
    tokens_api_done(&resp);
    return tok;
}

Test(tokens, api_token_checked_as_its_role_and_name_until_revoked_or_expired)
{
    char *tok = api_token("ci", "submit", 60000);
    char id[9], buf[256];
    uint8_t secret[32];
    cr_assert_eq(apitokens_parse(tok, id, secret), 0, "made '%s'", tok);
    token_t *t = find(id);
    cr_assert(apitokens_is_api(t->rec));
    cr_assert_str_eq(t->rec->name, "ci");
    cr_assert_str_eq(t->rec->created_by, "ops");
    cr_assert_eq(t->rec->uses_left, 0);
    cr_assert_not(tokens_any(s), "an API token admits no node");
    int64_t now = t->rec->created_ms + 1000;

    api_caller_t c;
    cr_assert_eq(apitokens_check(s, tok, now, &c, buf, sizeof buf), 0, "%s", buf);
    cr_assert_eq(c.role, API_ROLE_SUBMIT);
    cr_assert_str_eq(c.name, "ci");
    cr_assert(c.token);
    cr_assert_eq(t->used_ms, now);
    uint64_t before = s->counters.refused_tokens;

    /* a forged secret (one bit off) says no more than an unknown id */
    char forged[128];
    snprintf(forged, sizeof forged, "%s", tok);
    forged[20] = forged[20] == '0' ? '1' : '0';
    cr_assert_eq(apitokens_check(s, forged, now, &c, buf, sizeof buf), -EACCES);
    cr_assert(strstr(buf, "unknown"), "%s", buf);
    cr_assert_null(strstr(buf, forged + 15), "the secret is not echoed: %s", buf);
    /* the join-token form of the same id and secret */
    cr_assert_eq(apitokens_check(s, tok + 1, now, &c, buf, sizeof buf), -EACCES);
    cr_assert(strstr(buf, "malformed"), "%s", buf);
    /* ... and as a join token it admits no node */
    char as_join[128];
    snprintf(as_join, sizeof as_join, "drv1.%s", tok + 6);
    char jid[9];
    uint8_t jsecret[32];
    cr_assert_eq(tokens_parse(as_join, jid, jsecret), 0);
    cr_assert_str_eq(tokens_refusal(t->rec, jsecret, "n1", now, buf, sizeof buf),
                     "join token unknown");
    /* expired */
    cr_assert_eq(apitokens_check(s, tok, t->rec->expires_ms, &c, buf, sizeof buf), -EACCES);
    cr_assert(strstr(buf, "API token 'ci'") && strstr(buf, "expired at"), "%s", buf);
    cr_assert_str_eq(tokens_state(t->rec, t->rec->expires_ms), "expired");
    cr_assert_eq(s->counters.refused_tokens, before + 3);

    /* a second valid token of the same name is refused; revoke by name */
    api_caller_t admin = {.role = API_ROLE_ADMIN, .name = "ops"};
    Drover__TokenRequest req = DROVER__TOKEN_REQUEST__INIT;
    Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
    char *err = NULL;
    req.op = DROVER__TOKEN_OP__TOKEN_CREATE;
    req.name = "ci";
    req.role = "read";
    tokens_api(s, &admin, &req, &resp, &err);
    cr_assert_eq(resp.error_code, DROVER__API_ERROR_CODE__API_ERROR_CONFLICT);
    cr_assert(strstr(err, "already exists"), "%s", err);
    free(err);
    err = NULL;
    tokens_api_done(&resp);
    req = (Drover__TokenRequest)DROVER__TOKEN_REQUEST__INIT;
    req.op = DROVER__TOKEN_OP__TOKEN_REVOKE;
    req.id = "ci";
    Drover__ApiResponse rv = DROVER__API_RESPONSE__INIT;
    tokens_api(s, &admin, &req, &rv, &err);
    cr_assert_null(err, "%s", err);
    cr_assert_str_eq(rv.tokens[0]->state, "revoked");
    tokens_api_done(&rv);
    cr_assert_eq(apitokens_check(s, tok, now, &c, buf, sizeof buf), -EACCES);
    cr_assert(strstr(buf, "was revoked"), "%s", buf);

    /* durable, hashed; the last use written with the commit */
    cr_assert_eq(commit_journal(s), 0);
    h_sched_restart();
    t = find(id);
    cr_assert(t->rec->revoked);
    cr_assert_str_eq(t->rec->role, "submit");
    cr_assert_eq(t->rec->last_used_ms, now);
    cr_assert_eq(apitokens_check(s, tok, now, &c, buf, sizeof buf), -EACCES);
    free(tok);
}

Test(tokens, api_token_create_refuses_bad_input)
{
    api_caller_t admin = {.role = API_ROLE_ADMIN, .name = "ops"};
    struct {
        const char *name, *role, *pool;
        uint64_t ttl;
        const char *why;
    } cases[] = {
        {"", "read", "", 0, "bad API token name"},
        {"a/b", "read", "", 0, "bad API token name"},
        {"ci", "root", "", 0, "bad role 'root'"},
        {"ci", "read", "p", 0, "takes no pool"},
        {"ci", "read", "", 11ULL * 366 * 24 * 3600 * 1000, "at most 10 years"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Drover__TokenRequest req = DROVER__TOKEN_REQUEST__INIT;
        Drover__ApiResponse resp = DROVER__API_RESPONSE__INIT;
        char *err = NULL;
        req.op = DROVER__TOKEN_OP__TOKEN_CREATE;
        req.name = (char *)cases[i].name;
        req.role = (char *)cases[i].role;
        req.pool = (char *)cases[i].pool;
        req.ttl_ms = cases[i].ttl;
        tokens_api(s, &admin, &req, &resp, &err);
        cr_assert_not_null(err, "case %zu accepted", i);
        cr_assert_eq(resp.error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
        cr_assert(strstr(err, cases[i].why), "case %zu: %s", i, err);
        free(err);
        tokens_api_done(&resp);
    }
    cr_assert_eq(zhashx_size(s->tokens.by_id), 0);
}
