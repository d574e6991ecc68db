/* webd — drover-web's settings and the pieces main.c starts (server.c,
 * client.c). Route handlers see only web.h. */
#ifndef DROVER_WEBD_WEBD_H
#define DROVER_WEBD_WEBD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"
#include "web.h"

/* Settings (flags and /etc/drover/drover-web.yaml keys: main.c's apply). */
typedef struct {
    const char *listen;    /* HOST:PORT, [V6]:PORT; default 127.0.0.1:7080 */
    const char *api;       /* droverd's API endpoint; default ipc:///run/drover/api.sock */
    uint64_t max_body;     /* request body bytes (submit); default 4 MiB */
    uint64_t header_limit; /* per-connection memory for the request head; default 64 KiB */
    uint32_t max_conns;    /* connections in all; default 256 */
    uint32_t max_conns_ip; /* connections per client address; default 32 */
    uint64_t timeout_ms;   /* a connection idle this long is closed; default 30 s */
    uint32_t rate;         /* requests a second per client address (0: no limit); 50 */
    uint32_t burst;        /* bucket size; default 100 */
    const char *tls_cert;  /* PEM file: serve HTTPS (with tls_key) */
    const char *tls_key;
    const char *assets; /* the web console's files (index.html, assets/); "" = none */
} web_config_t;

void web_config_defaults(web_config_t *c);

/* The web console's files are served from dir (routes_console.c; not
 * copied: a setting). NULL or "": GET / answers 404. */
void web_console_init(const char *dir);

/* Start serving (MHD threads); 0, or -1 with the reason logged. */
int web_server_start(const web_config_t *c);

/* Stop: web_stopping() turns true (streams end), then every connection
 * thread is joined. */
void web_server_stop(void);

/* The droverd client pool: endpoint (not copied: a setting) for every
 * web_call. The open-files limit is raised to its hard limit, and the
 * clients alive at once are bounded so that they and max_conns
 * connections fit in it (a client is a ZeroMQ context: ~10 descriptors). */
void web_client_init(const char *endpoint, unsigned max_conns);
void web_client_shutdown(void);

/* From any thread: make every droverd call in flight, and later ones, fail
 * at once (stopping). */
void web_client_interrupt(void);

/* ---- request handling below MHD (request.c: pure; fuzz/fuzz_web.c) ---- */

/* The route of the tables (web.h) for method and path: its captures
 * (allocated names and values, the caller frees each) into names[i] and
 * vals[i], at most max, their count in *n. NULL when none matches: then
 * allow holds the methods the path has (", "-separated), empty when no
 * pattern matches it (404; else 405). allow is the caller's, reset here. */
const web_route_t *web_route_lookup(const char *method, const char *path, char **names, char **vals,
                                    size_t max, size_t *n, strbuf_t *allow);

/* The token of an Authorization header "Bearer TOKEN" (scheme in any case,
 * spaces around the token dropped): a pointer into authorization and its
 * length in *len; NULL when the header is absent, of another scheme, or
 * the token is empty. */
const char *web_bearer_parse(const char *authorization, size_t *len);

/* body (len bytes, may hold NULs) as a JSON object (new reference; {} when
 * len is 0), or NULL with why filled (not JSON, duplicate keys, not an
 * object). */
json_t *web_json_object_parse(const char *body, size_t len, char *why, size_t why_len);

/* Whether a request of method with this Origin header (NULL: none) may
 * go on, host being its Host header (NULL: none): always for GET, HEAD and
 * OPTIONS and without an Origin; otherwise only when origin is
 * http://HOST or https://HOST (scheme and host in any case, the scheme's
 * default port optional on either side) for the request's own Host: a
 * page of another origin cannot write (403 forbidden_origin, server.c).
 * The scheme is not compared with drover-web's own: behind a TLS proxy
 * the browser's origin is https while drover-web serves http. */
bool web_origin_allowed(const char *method, const char *origin, const char *host);

/* HTTPS: c's tls-cert and tls-key read and checked (tls.c): 0 with *cert
 * and *key the PEM texts (the caller frees them), or both NULL when
 * neither is set; -1 with the reason logged (one set without the other, a
 * file missing or unreadable, not PEM, or a key that is not the cert's). */
int web_tls_load(const web_config_t *c, char **cert, char **key);

/* The message all refusals of the stopping flag share; set by stop. */
void web_set_stopping(void);

#endif
