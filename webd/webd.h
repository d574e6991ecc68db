/* webd — drover-web's settings and the pieces main.c starts (server.c,
 * client.c). Route handlers see only web.h. */
#ifndef DROVER_WEBD_WEBD_H
#define DROVER_WEBD_WEBD_H

#include <stdbool.h>
#include <stdint.h>

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
} web_config_t;

void web_config_defaults(web_config_t *c);

/* Start serving (MHD threads); 0, or -1 with the reason logged. */
int web_server_start(const web_config_t *c);

/* Stop: web_stopping() turns true (streams end), then every connection
 * thread is joined. */
void web_server_stop(void);

/* The droverd client pool: endpoint (not copied: a setting) for every
 * web_call. */
void web_client_init(const char *endpoint);
void web_client_shutdown(void);

/* From any thread: make every droverd call in flight, and later ones, fail
 * at once (stopping). */
void web_client_interrupt(void);

/* The message all refusals of the stopping flag share; set by stop. */
void web_set_stopping(void);

#endif
