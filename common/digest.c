/* digest — see digest.h. */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define FILE_CHUNK (1 << 20)

struct digest_ctx {
    EVP_MD_CTX *md;
};

digest_ctx_t *digest_begin(void)
{
    digest_ctx_t *c = xcalloc(1, sizeof *c);
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        digest_abort(c);
        return NULL;
    }
    return c;
}

void digest_update(digest_ctx_t *c, const void *data, size_t len)
{
    EVP_DigestUpdate(c->md, data, len);
}

void digest_final(digest_ctx_t *c, uint8_t out[DIGEST_LEN])
{
    unsigned n = DIGEST_LEN;
    EVP_DigestFinal_ex(c->md, out, &n);
    digest_abort(c);
}

void digest_abort(digest_ctx_t *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

void digest_buffer(const void *data, size_t len, uint8_t out[DIGEST_LEN])
{
    unsigned n = DIGEST_LEN;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

int digest_file(const char *path, uint8_t out[DIGEST_LEN], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    digest_ctx_t *c = digest_begin();
    uint8_t *buf = xmalloc(FILE_CHUNK);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, FILE_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        digest_update(c, buf, (size_t)n);
        total += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (rc < 0) {
        digest_abort(c);
        return rc;
    }
    digest_final(c, out);
    *size = total;
    return 0;
}

void digest_hex(const uint8_t d[DIGEST_LEN], char out[DIGEST_HEX_LEN + 1])
{
    util_hex(d, DIGEST_LEN, out);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int digest_from_hex(const char *hex, uint8_t out[DIGEST_LEN])
{
    if (strlen(hex) != DIGEST_HEX_LEN)
        return -EINVAL;
    for (int i = 0; i < DIGEST_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
