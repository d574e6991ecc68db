/* keys — CURVE key files (czmq zcert format) for droverd, agents and the
 * CLI.
 *
 * A key pair is two files written by `drover keygen NAME`: NAME.key (the
 * public key, with metadata name = NAME and, for API clients, role =
 * admin|submit|read) and NAME.key_secret (both keys). Both are written
 * 0600. A secret file readable by group or others is refused with a
 * message naming it: a leaked secret key is a stolen identity. A directory
 * of public key files (droverd's authorized-keys and api-keys) maps each
 * key to the name (and role) its file carries.
 */
#ifndef DROVER_KEYS_H
#define DROVER_KEYS_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* A secret key file: 0 and *cert (caller destroys), or -errno with the
 * reason (naming the file) in err. */
int keys_load_secret(const char *path, zcert_t **cert, char *err, size_t errlen);

/* A public key file: 0 and *cert, or -errno + err. */
int keys_load_public(const char *path, zcert_t **cert, char *err, size_t errlen);

typedef struct {
    char key[41]; /* Z85 public key */
    char name[64];
    char role[16];
} keys_entry_t;

/* Every public key file (*.key) of dir: a new hash Z85 → keys_entry_t
 * (owned by the hash; zhashx_destroy frees all). A file that cannot be
 * read or has no valid key is skipped with a warning; two files with the
 * same key: the first wins. 0, or -errno + err when dir cannot be read. */
int keys_load_dir(const char *dir, zhashx_t **out, char *err, size_t errlen);

/* Write NAME.key and NAME.key_secret in dir (0600 each), with metadata
 * name and (if not NULL) role. Refuses to overwrite. 0 or -errno + err. */
int keys_generate(const char *dir, const char *name, const char *role, char *err, size_t errlen);

/* Whether a ZeroMQ endpoint is reachable only from this machine
 * (loopback TCP, ipc, inproc). */
bool keys_endpoint_is_local(const char *endpoint);

#endif
