/* guard — drover-web's deadline for each whole request, against slow
 * clients (guard.c). server.c wires it into libmicrohttpd. */
#ifndef DROVER_WEBD_GUARD_H
#define DROVER_WEBD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "webd.h"

/* Start the guard's thread with c's timeout; 0, or -1 logged. */
int web_guard_start(const web_config_t *c);

/* Stop and join the thread (connections are MHD's to close). */
void web_guard_stop(void);

/* A connection started (or closed: started false); from MHD's
 * connection-notify callback. */
void web_guard_connection(struct MHD_Connection *conn, bool started);

/* conn's request has arrived whole (its deadline stops), or has been
 * answered (the next one's deadline starts). */
void web_guard_request_read(struct MHD_Connection *conn);
void web_guard_request_done(struct MHD_Connection *conn);

/* sa's address as text ("127.0.0.1", "::1"; "?" when unknown) into out. */
void web_format_address(const struct sockaddr *sa, char *out, size_t len);

#endif
