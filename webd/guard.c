/* guard — drover-web's deadline for slow clients, which libmicrohttpd does
 * not keep itself: a request must arrive whole (head and body) within
 * --timeout of its first byte's chance (the connection's start, or the
 * end of the previous request on a kept-alive connection). MHD's own
 * timeout only closes a connection idle that long, so a slowloris sending
 * a header byte a second would hold a thread for ever; the guard's thread
 * checks every GUARD_TICK_MS and shuts down the socket of a request late.
 *
 * Each connection has a guard_conn_t (made when MHD says it started,
 * freed when it says it closed: server.c's connection callback) in one
 * list under a mutex, found by its MHD_Connection (a walk of at most the
 * connections there are, per request). It holds a dup() of the
 * connection's socket: shutdown() acts on the socket, so the guard never
 * touches a descriptor number MHD may have closed and reused, and closing
 * the dup frees nothing MHD still uses.
 */

#include "guard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define GUARD_TICK_MS 250

typedef struct guard_conn {
    struct guard_conn *prev, *next;
    const struct MHD_Connection *conn;
    int fd;           /* a dup of the connection's socket, or -1 */
    int64_t since_ms; /* waiting for a request since then; 0 = one is being answered */
    bool cut;
    char addr[INET6_ADDRSTRLEN];
} guard_conn_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static guard_conn_t *conns;
static uint64_t limit_ms;
static pthread_t thread;
static atomic_bool running;
static atomic_uint_fast64_t cut_total;

static void *watch(void *arg)
{
    (void)arg;
    while (atomic_load(&running)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = GUARD_TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = util_mono_ms();
        pthread_mutex_lock(&mu);
        for (guard_conn_t *g = conns; g; g = g->next)
            if (g->since_ms && !g->cut && g->fd >= 0 && now - g->since_ms > (int64_t)limit_ms) {
                g->cut = true;
                shutdown(g->fd, SHUT_RDWR);
                atomic_fetch_add(&cut_total, 1);
                log_info("closed a connection from %s: no whole request in %llums", g->addr,
                         (unsigned long long)limit_ms);
            }
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

int web_guard_start(const web_config_t *c)
{
    limit_ms = c->timeout_ms;
    atomic_store(&running, true);
    if (pthread_create(&thread, NULL, watch, NULL) != 0) {
        atomic_store(&running, false);
        log_error("cannot start the slow-client guard's thread");
        return -1;
    }
    return 0;
}

void web_guard_stop(void)
{
    if (!atomic_exchange(&running, false))
        return;
    pthread_join(thread, NULL);
}

void web_guard_connection(struct MHD_Connection *conn, bool started)
{
    if (started) {
        guard_conn_t *g = xcalloc(1, sizeof *g);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        g->conn = conn;
        g->fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        g->since_ms = util_mono_ms();
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        web_format_address(ci ? ci->client_addr : NULL, g->addr, sizeof g->addr);
        pthread_mutex_lock(&mu);
        g->next = conns;
        if (conns)
            conns->prev = g;
        conns = g;
        pthread_mutex_unlock(&mu);
        return;
    }
    pthread_mutex_lock(&mu);
    guard_conn_t *g = conns;
    while (g && g->conn != conn)
        g = g->next;
    if (g) {
        if (g->prev)
            g->prev->next = g->next;
        else
            conns = g->next;
        if (g->next)
            g->next->prev = g->prev;
    }
    pthread_mutex_unlock(&mu);
    if (!g)
        return;
    if (g->fd >= 0)
        close(g->fd);
    free(g);
}

/* Set conn's clock: since (0: stopped). */
static void set_since(struct MHD_Connection *conn, int64_t since)
{
    pthread_mutex_lock(&mu);
    for (guard_conn_t *g = conns; g; g = g->next)
        if (g->conn == conn) {
            g->since_ms = since;
            break;
        }
    pthread_mutex_unlock(&mu);
}

void web_guard_request_read(struct MHD_Connection *conn)
{
    set_since(conn, 0);
}

void web_guard_request_done(struct MHD_Connection *conn)
{
    set_since(conn, util_mono_ms());
}
