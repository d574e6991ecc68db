/* provider — see provider.h. */
#include "provider.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "util.h"

#define PROVIDER_MAX_OUT  (4u << 20)
#define PROVIDER_ERR_KEEP 4096

extern char **environ;

struct provider_call {
    struct ev_loop *loop;
    pid_t pid;
    int in_fd, out_fd, err_fd; /* our ends; -1 once closed */
    char *request;
    size_t req_len, req_off;
    strbuf_t out;
    char err[PROVIDER_ERR_KEEP]; /* the tail of stderr */
    size_t err_len;
    int status;
    bool exited;
    ev_io in_w, out_w, err_w;
    ev_child child_w;
    ev_timer timeout_w, spawn_failed_w;
    provider_done_fn done;
    void *arg;
};

static void close_fd(struct ev_loop *loop, ev_io *w, int *fd)
{
    if (*fd < 0)
        return;
    ev_io_stop(loop, w);
    close(*fd);
    *fd = -1;
}

static void call_free(provider_call_t *c)
{
    close_fd(c->loop, &c->in_w, &c->in_fd);
    close_fd(c->loop, &c->out_w, &c->out_fd);
    close_fd(c->loop, &c->err_w, &c->err_fd);
    ev_child_stop(c->loop, &c->child_w);
    ev_timer_stop(c->loop, &c->timeout_w);
    ev_timer_stop(c->loop, &c->spawn_failed_w);
    sb_free(&c->out);
    free(c->request);
    free(c);
}

/* Read what fd has now (to EOF or EAGAIN) into out or the stderr tail. */
static void drain(provider_call_t *c, int *fd, ev_io *w, bool is_out)
{
    char buf[16384];
    while (*fd >= 0) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close_fd(c->loop, w, fd);
            return;
        }
        if (is_out) {
            if (c->out.len + (size_t)n <= PROVIDER_MAX_OUT)
                sb_add(&c->out, buf, (size_t)n);
        } else {
            size_t k = (size_t)n;
            if (k >= sizeof c->err) { /* keep the tail */
                memcpy(c->err, buf + k - (sizeof c->err - 1), sizeof c->err - 1);
                c->err_len = sizeof c->err - 1;
            } else {
                if (c->err_len + k >= sizeof c->err) {
                    size_t drop = c->err_len + k - (sizeof c->err - 1);
                    memmove(c->err, c->err + drop, c->err_len - drop);
                    c->err_len -= drop;
                }
                memcpy(c->err + c->err_len, buf, k);
                c->err_len += k;
            }
        }
    }
}

/* The last non-empty line of the stderr tail, in place. */
static const char *last_line(provider_call_t *c)
{
    c->err[c->err_len] = '\0';
    char *end = c->err + c->err_len;
    while (end > c->err && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        *--end = '\0';
    char *nl = strrchr(c->err, '\n');
    return nl ? nl + 1 : c->err;
}

static void finish(provider_call_t *c)
{
    drain(c, &c->out_fd, &c->out_w, true);
    drain(c, &c->err_fd, &c->err_w, false);
    sb_add(&c->out, "", 0); /* terminated, even when empty */
    c->done(c->arg, c->status, c->out.buf, last_line(c));
    call_free(c);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop, (void)revents;
    provider_call_t *c = w->data;
    int st = w->rstatus;
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : PROVIDER_KILLED;
    c->exited = true;
    finish(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    provider_call_t *c = w->data;
    log_warn("provider %d: no answer in time: killed", (int)c->pid);
    kill(-c->pid, SIGKILL); /* its session: what it started too */
    snprintf(c->err, sizeof c->err, "no answer within the provider timeout: killed");
    c->err_len = strlen(c->err);
    close_fd(c->loop, &c->err_w, &c->err_fd); /* keep that message */
}

static void on_out(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    provider_call_t *c = w->data;
    if (w == &c->out_w)
        drain(c, &c->out_fd, &c->out_w, true);
    else
        drain(c, &c->err_fd, &c->err_w, false);
}

static void on_in(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    provider_call_t *c = w->data;
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->in_fd, c->request + c->req_off, c->req_len - c->req_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0)
            break; /* it closed its stdin: its answer tells */
        c->req_off += (size_t)n;
    }
    close_fd(c->loop, &c->in_w, &c->in_fd);
}

static void on_spawn_failed(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    finish(w->data);
}

/* A pipe whose end `ours` (0 read, 1 write) is non-blocking and
 * close-on-exec; the child's end is dup2'd onto 0/1/2 by posix_spawn. */
static int make_pipe(int fds[2], int ours)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    fcntl(fds[ours], F_SETFL, O_NONBLOCK);
    return 0;
}

provider_call_t *provider_call(struct ev_loop *loop, char *const argv[], const char *request,
                               uint64_t timeout_ms, provider_done_fn done, void *arg)
{
    provider_call_t *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->in_fd = c->out_fd = c->err_fd = -1;
    c->request = xstrdup(request);
    c->req_len = strlen(request);
    c->done = done;
    c->arg = arg;
    ev_timer_init(&c->spawn_failed_w, on_spawn_failed, 0, 0);
    c->spawn_failed_w.data = c;

    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int rc = make_pipe(in, 1);
    if (rc == 0)
        rc = make_pipe(out, 0);
    if (rc == 0)
        rc = make_pipe(err, 0);
    char timeout_env[64];
    snprintf(timeout_env, sizeof timeout_env, "DROVER_PROVIDER_TIMEOUT=%llu",
             (unsigned long long)((timeout_ms + 999) / 1000));
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **env = xcalloc(n_env + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "DROVER_PROVIDER_TIMEOUT=", 24) != 0)
            env[k++] = environ[i];
    env[k] = timeout_env;
    if (rc == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_init(&at);
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                          POSIX_SPAWN_SETSIGDEF);
        rc = -posix_spawn(&c->pid, argv[0], &fa, &at, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
    }
    free(env);
    if (in[0] >= 0) /* the child's ends */
        close(in[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (err[1] >= 0)
        close(err[1]);
    if (rc < 0) {
        if (in[1] >= 0)
            close(in[1]);
        if (out[0] >= 0)
            close(out[0]);
        if (err[0] >= 0)
            close(err[0]);
        c->status = PROVIDER_NOT_STARTED;
        snprintf(c->err, sizeof c->err, "cannot run %s: %s", argv[0], strerror(-rc));
        c->err_len = strlen(c->err);
        ev_timer_start(loop, &c->spawn_failed_w); /* done() from the loop, never from here */
        return c;
    }
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = err[0];
    ev_io_init(&c->in_w, on_in, c->in_fd, EV_WRITE);
    ev_io_init(&c->out_w, on_out, c->out_fd, EV_READ);
    ev_io_init(&c->err_w, on_out, c->err_fd, EV_READ);
    ev_child_init(&c->child_w, on_child, c->pid, 0);
    ev_timer_init(&c->timeout_w, on_timeout, (double)timeout_ms / 1000.0, 0);
    c->in_w.data = c->out_w.data = c->err_w.data = c->child_w.data = c->timeout_w.data = c;
    ev_io_start(loop, &c->in_w);
    ev_io_start(loop, &c->out_w);
    ev_io_start(loop, &c->err_w);
    ev_child_start(loop, &c->child_w);
    ev_timer_start(loop, &c->timeout_w);
    return c;
}

void provider_cancel(provider_call_t **cp)
{
    if (!cp || !*cp)
        return;
    provider_call_t *c = *cp;
    if (c->pid > 0 && !c->exited)
        kill(-c->pid, SIGKILL);
    call_free(c);
    *cp = NULL;
}
