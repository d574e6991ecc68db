/* tls — drover-web's HTTPS settings: the certificate chain and private key
 * (tls-cert, tls-key: PEM files) read and checked at start, so a missing,
 * unreadable, malformed or mismatched pair is a clear error naming the
 * file instead of libmicrohttpd's (GnuTLS's) refusal to start. The check
 * uses OpenSSL (as common/digest.c does); MHD serves with GnuTLS from the
 * same PEM text.
 */
#include "webd.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define TLS_FILE_MAX (1u << 20)

static void openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "no PEM block found");
    ERR_clear_error();
}

static int read_pem(const char *what, const char *path, char **out)
{
    size_t len;
    int rc = util_read_file(path, TLS_FILE_MAX, out, &len);
    if (rc < 0) {
        log_error("%s %s: cannot read it: %s", what, path,
                  rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
        return -1;
    }
    if (len == 0 || strlen(*out) != len) {
        log_error("%s %s: not a PEM file (empty, or binary)", what, path);
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

int web_tls_load(const web_config_t *c, char **cert, char **key)
{
    *cert = *key = NULL;
    if (!c->tls_cert && !c->tls_key)
        return 0;
    if (!c->tls_cert || !c->tls_key) {
        log_error("HTTPS needs both tls-cert and tls-key (only %s is set)",
                  c->tls_cert ? "tls-cert" : "tls-key");
        return -1;
    }
    if (read_pem("tls-cert", c->tls_cert, cert) < 0 || read_pem("tls-key", c->tls_key, key) < 0)
        goto fail;
    char why[256];
    BIO *b = BIO_new_mem_buf(*cert, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x) {
        openssl_reason(why, sizeof why);
        log_error("tls-cert %s: not a PEM certificate (%s)", c->tls_cert, why);
        goto fail;
    }
    b = BIO_new_mem_buf(*key, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!k) {
        openssl_reason(why, sizeof why);
        log_error("tls-key %s: not an unencrypted PEM private key (%s)", c->tls_key, why);
        X509_free(x);
        goto fail;
    }
    int match = X509_check_private_key(x, k);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    if (match != 1) {
        log_error("tls-key %s is not the private key of tls-cert %s", c->tls_key, c->tls_cert);
        goto fail;
    }
    return 0;
fail:
    free(*cert);
    free(*key);
    *cert = *key = NULL;
    return -1;
}
