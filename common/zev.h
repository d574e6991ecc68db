/* zev — a ZeroMQ socket as a libev watcher.
 *
 * ZMQ_FD is edge-triggered and only says "look at ZMQ_EVENTS": after every
 * wake-up and after every send on the socket, readable messages may be
 * waiting with no new edge. zev therefore (1) calls on_readable when the fd
 * wakes, and (2) re-checks ZMQ_EVENTS in a low-priority ev_prepare (after
 * the owner's own prepare-time sends) and, if messages are waiting, keeps
 * an ev_idle running so the loop does not block and on_readable is called
 * again. on_readable should drain a bounded batch of messages and return;
 * zev keeps calling it while ZMQ_EVENTS says POLLIN.
 */
#ifndef DROVER_ZEV_H
#define DROVER_ZEV_H

#include <ev.h>

typedef struct zev zev_t;

/* Watch zsock (a libzmq socket, not owned) on loop. on_readable(arg) is
 * called whenever messages may be waiting. NULL on failure. */
zev_t *zev_new(struct ev_loop *loop, void *zsock, void (*on_readable)(void *arg), void *arg);

/* Stop watching and free; does not close the socket. Accepts NULL. */
void zev_destroy(zev_t **zev);

#endif
