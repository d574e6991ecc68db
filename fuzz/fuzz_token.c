/* fuzz_token — join tokens as an agent presents them (scheduler/tokens.c,
 * README "Join tokens"): the bytes are the Join's token text.
 *
 * tokens_parse must return 0 or -EINVAL; an accepted token must print
 * back to exactly the input (drv1.<8 lowercase hex>.<64 lowercase hex>:
 * nothing else is accepted), and tokens_refusal against a record made
 * from the parsed secret must admit it, and refuse it ("join token
 * unknown") once one bit of the secret is flipped. The same bytes as an
 * API token's text (apitokens_parse, drva1.): the same rules, and a text
 * is never both.
 */
#include "sched_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "fuzz_common.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 200)
        return 0;
    char *text = fz_strndup(data, size);
    char id[9];
    uint8_t secret[32];
    int rc = tokens_parse(text, id, secret);
    if (rc != 0 && rc != -EINVAL)
        fz_fail("tokens_parse returned %d", rc);
    if (rc == 0) {
        char hex[65], back[128];
        snprintf(back, sizeof back, "drv1.%s.%s", id, util_hex(secret, 32, hex));
        if (strcmp(back, text) != 0)
            fz_fail("accepted '%s' but it reads back as '%s'", text, back);
        uint8_t h[DIGEST_LEN];
        digest_buffer(secret, 32, h);
        Drover__TokenRecord r = DROVER__TOKEN_RECORD__INIT;
        r.id = id;
        r.secret_sha256.data = h;
        r.secret_sha256.len = DIGEST_LEN;
        r.uses = r.uses_left = 1;
        r.expires_ms = 2000;
        char buf[128];
        const char *why = tokens_refusal(&r, secret, "n1", 1000, buf, sizeof buf);
        if (why)
            fz_fail("its own secret refused: %s", why);
        secret[size % 32] ^= 1;
        why = tokens_refusal(&r, secret, "n1", 1000, buf, sizeof buf);
        if (!why || strcmp(why, "join token unknown") != 0)
            fz_fail("a forged secret %s", why ? why : "admitted");
    }
    char aid[9];
    uint8_t asecret[32];
    int arc = apitokens_parse(text, aid, asecret);
    if (arc != 0 && arc != -EINVAL)
        fz_fail("apitokens_parse returned %d", arc);
    if (arc == 0 && rc == 0)
        fz_fail("'%s' parsed as a join token and an API token", text);
    if (arc == 0) {
        char hex[65], back[128];
        snprintf(back, sizeof back, "drva1.%s.%s", aid, util_hex(asecret, 32, hex));
        if (strcmp(back, text) != 0)
            fz_fail("API token '%s' accepted but it reads back as '%s'", text, back);
    }
    free(text);
    return 0;
}
