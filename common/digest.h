/* digest — SHA-256 content digests (OpenSSL EVP) for artifacts.
 *
 * Digests are 32 raw bytes on the wire and in LMDB, 64 lowercase hex
 * characters in file names and output. Hashing a file reads it in chunks;
 * callers run it off the event loop (worker.h).
 */
#ifndef DROVER_DIGEST_H
#define DROVER_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN     32
#define DIGEST_HEX_LEN 64

typedef struct digest_ctx digest_ctx_t;

/* Incremental hashing: new → update* → final (which frees). NULL on failure. */
digest_ctx_t *digest_begin(void);
void digest_update(digest_ctx_t *c, const void *data, size_t len);
void digest_final(digest_ctx_t *c, uint8_t out[DIGEST_LEN]);

/* Free a context without producing a digest; accepts NULL. */
void digest_abort(digest_ctx_t *c);

/* One-shot digest of a buffer. */
void digest_buffer(const void *data, size_t len, uint8_t out[DIGEST_LEN]);

/* Digest of a whole file; *size gets its length. 0 or -errno. Blocking. */
int digest_file(const char *path, uint8_t out[DIGEST_LEN], uint64_t *size);

/* Hex form (65 bytes with the NUL). */
void digest_hex(const uint8_t d[DIGEST_LEN], char out[DIGEST_HEX_LEN + 1]);

/* Parse 64 hex characters. 0 or -EINVAL. */
int digest_from_hex(const char *hex, uint8_t out[DIGEST_LEN]);

#endif
