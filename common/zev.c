/* zev — see zev.h. */
#include "zev.h"

#include <stdlib.h>
#include <zmq.h>

#include "log.h"

struct zev {
    struct ev_loop *loop;
    void *zsock;
    void (*on_readable)(void *arg);
    void *arg;
    ev_io io;
    ev_prepare prepare;
    ev_idle idle;
};

static int zsock_readable(void *zsock)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(zsock, ZMQ_EVENTS, &events, &len) < 0)
        return 0;
    return (events & ZMQ_POLLIN) != 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    zev_t *z = w->data;
    if (zsock_readable(z->zsock))
        z->on_readable(z->arg);
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    zev_t *z = w->data;
    ev_idle_stop(loop, w);
    if (zsock_readable(z->zsock))
        z->on_readable(z->arg);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    zev_t *z = w->data;
    if (zsock_readable(z->zsock))
        ev_idle_start(loop, &z->idle);
}

zev_t *zev_new(struct ev_loop *loop, void *zsock, void (*on_readable)(void *arg), void *arg)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(zsock, ZMQ_FD, &fd, &len) < 0) {
        log_error("zmq_getsockopt(ZMQ_FD): %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    zev_t *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->loop = loop;
    z->zsock = zsock;
    z->on_readable = on_readable;
    z->arg = arg;
    ev_io_init(&z->io, on_io, fd, EV_READ);
    z->io.data = z;
    ev_prepare_init(&z->prepare, on_prepare);
    ev_set_priority(&z->prepare, EV_MINPRI);
    z->prepare.data = z;
    ev_idle_init(&z->idle, on_idle);
    z->idle.data = z;
    ev_io_start(loop, &z->io);
    ev_prepare_start(loop, &z->prepare);
    return z;
}

void zev_destroy(zev_t **zev)
{
    if (!zev || !*zev)
        return;
    zev_t *z = *zev;
    ev_io_stop(z->loop, &z->io);
    ev_prepare_stop(z->loop, &z->prepare);
    ev_idle_stop(z->loop, &z->idle);
    free(z);
    *zev = NULL;
}
