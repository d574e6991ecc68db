/* guard — drover-web's bounds on slow and greedy clients (guard.c): a
 * deadline for each whole request and a clear refusal past the connections
 * allowed per client address. server.c wires it into libmicrohttpd. */
#ifndef DROVER_WEBD_GUARD_H
#define DROVER_WEBD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "webd.h"

/* Start the guard's thread with c's timeout and per-address limit (c is
 * kept); 0, or -1 logged. */
int web_guard_start(const web_config_t *c);

/* Stop and join the thread (connections are MHD's to close). */
void web_guard_stop(void);

/* MHD_OPTION_NOTIFY_CONNECTION's callback: a connection's start and end. */
void web_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe);

/* Whether conn came from an address that already had the connections it
 * may have (answer 429 and close it). */
bool web_guard_over_ip_limit(struct MHD_Connection *conn);

/* conn's request has arrived whole (its deadline stops), or has been
 * answered (the next one's deadline starts). */
void web_guard_request_read(struct MHD_Connection *conn);
void web_guard_request_done(struct MHD_Connection *conn);

/* sa's address as text ("127.0.0.1", "::1"; "?" when unknown) into out. */
void web_format_address(const struct sockaddr *sa, char *out, size_t len);

#endif
