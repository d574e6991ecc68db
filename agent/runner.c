/* runner — see runner.h.
 *
 * Ordering matters for a faithful report: the exit status comes from
 * ev_child, but output may still sit in the pipe (or be held open by a
 * grandchild). After the leader exits we SIGKILL its group, keep reading
 * until EOF, and only then call on_exit — with a short fallback timer in
 * case a process escaped the group and holds the pipe open.
 *
 * A step is started the way posix_spawn starts a process — clone() with
 * CLONE_VM | CLONE_VFORK on a stack of its own, so the agent's memory is
 * never copied (a fork of a big agent costs milliseconds) — but with our
 * own child code, which also makes the step die with the agent
 * (PR_SET_PDEATHSIG: a step whose agent was killed must not run on, and
 * finish, unseen while droverd runs it again elsewhere) and lets a driver
 * act before exec (child_fn: join a cgroup). An error pipe keeps exec
 * failures synchronous, as posix_spawn reports them. A spec without argv
 * (a container shim: the whole child is ours, it allocates) is fork()ed.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define READ_CHUNK       65536
#define DRAIN_FALLBACK_S 2.0

struct runner {
    struct ev_loop *loop;
    runner_spec_t spec;
    pid_t pid;
    int out_fd, so_fd; /* so_fd: stdout's own pipe (on_stdout), else -1 */
    ev_io out_w, so_w;
    ev_child child_w;
    ev_timer timeout_w, grace_w, drain_w;
    bool exited, reported, signalled;
    runner_exit_t result;
    uint8_t *buf;
};

static void finish(runner_t *r)
{
    if (r->reported)
        return;
    r->reported = true;
    ev_io_stop(r->loop, &r->out_w);
    ev_io_stop(r->loop, &r->so_w);
    ev_timer_stop(r->loop, &r->timeout_w);
    ev_timer_stop(r->loop, &r->grace_w);
    ev_timer_stop(r->loop, &r->drain_w);
    if (r->out_fd >= 0) {
        close(r->out_fd);
        r->out_fd = -1;
    }
    if (r->so_fd >= 0) {
        close(r->so_fd);
        r->so_fd = -1;
    }
    r->spec.on_exit(r->spec.arg, &r->result);
}

/* Whether a pipe is still open (output may still come). */
static bool reading(const runner_t *r)
{
    return ev_is_active(&r->out_w) || ev_is_active(&r->so_w);
}

/* Either pipe is readable: w is out_w (combined, or stderr alone) or so_w
 * (stdout alone, also handed to on_stdout). */
static void on_output(struct ev_loop *loop, ev_io *w, int revents)
{
    runner_t *r = w->data;
    bool is_stdout = w == &r->so_w;
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(w->fd, r->buf, READ_CHUNK);
        if (n > 0) {
            r->spec.on_output(r->spec.arg, r->buf, (size_t)n);
            if (is_stdout)
                r->spec.on_stdout(r->spec.arg, r->buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        /* EOF (or a read error): no more output on this pipe. */
        ev_io_stop(loop, w);
        if (r->exited && !reading(r))
            finish(r);
        return;
    }
}

static void signal_group(runner_t *r, int sig)
{
    if (kill(-r->pid, sig) < 0 && errno != ESRCH)
        log_warn("kill(-%d, %d): %s", (int)r->pid, sig, strerror(errno));
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    runner_t *r = w->data;
    ev_child_stop(loop, w);
    ev_timer_stop(loop, &r->timeout_w); /* it ended on its own: no timeout now */
    r->exited = true;
    if (WIFSIGNALED(w->rstatus))
        r->result.term_signal = WTERMSIG(w->rstatus);
    else
        r->result.exit_code = WEXITSTATUS(w->rstatus);
    signal_group(r, SIGKILL); /* leftovers of the step die with it */
    if (!reading(r)) {
        finish(r);
        return;
    }
    ev_timer_start(loop, &r->drain_w);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    finish(w->data);
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    runner_t *r = w->data;
    if (!r->exited)
        signal_group(r, SIGKILL);
}

static void stop_group(runner_t *r)
{
    if (r->exited || r->signalled)
        return;
    r->signalled = true;
    signal_group(r, SIGTERM);
    ev_timer_start(r->loop, &r->grace_w);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    runner_t *r = w->data;
    r->result.timed_out = true;
    snprintf(r->result.reason, sizeof r->result.reason, "timeout after %.3gs",
             (double)r->spec.timeout_ms / 1000.0);
    stop_group(r);
}

void runner_kill(runner_t *r, const char *reason)
{
    if (r->exited)
        return;
    if (!r->result.killed) {
        r->result.killed = true;
        snprintf(r->result.reason, sizeof r->result.reason, "%s", reason);
    }
    stop_group(r);
}

void runner_kill_now(runner_t *r)
{
    if (!r->exited)
        signal_group(r, SIGKILL);
}

pid_t runner_pid(const runner_t *r)
{
    return r->pid;
}

/* The child side of start_child: set up what posix_spawn would, then run
 * child_fn and exec. Failures go to errfd as {stage, errno}. Only
 * async-signal-safe calls: with argv it runs in the agent's memory (vfork),
 * on its own stack. */
static void child_main(const runner_spec_t *spec, int outfd, int sofd, int errfd, pid_t agent)
{
    int stage = 0, e = 0;
    sigset_t none;
    setpgid(0, 0);
    /* Die with the agent (and if it died already, do not start at all). */
    if (spec->argv && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != agent))
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(sofd >= 0 ? sofd : outfd, 1) < 0 ||
        dup2(outfd, 2) < 0) {
        e = errno;
        goto fail;
    }
    if (devnull > 2)
        close(devnull);
    /* All signals are still blocked (start_child): a signal sent to the new
     * process before it is ready stays pending instead of killing it. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL); /* fails harmlessly for glibc's internal signals */
    if (spec->cwd && chdir(spec->cwd) < 0) {
        e = errno;
        goto fail;
    }
    stage = 1;
    int rc = spec->child_fn ? spec->child_fn(spec->child_arg) : 0;
    if (!spec->argv)
        _exit(rc < 0 ? 127 : rc);
    if (rc < 0) {
        e = -rc;
        goto fail;
    }
    stage = 2;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(spec->argv[0], spec->argv, spec->envp);
    e = errno;
fail:
    if (errfd >= 0) {
        int rec[2] = {stage, e};
        ssize_t ignored = write(errfd, rec, sizeof rec);
        (void)ignored;
    }
    _exit(127);
}

typedef struct {
    const runner_spec_t *spec;
    int outfd, sofd, errfd;
    pid_t agent;
} child_args_t;

static int vfork_main(void *arg)
{
    child_args_t *c = arg;
    child_main(c->spec, c->outfd, c->sofd, c->errfd, c->agent);
    return 127; /* not reached */
}

/* Start the child; with argv, wait (like posix_spawn does) until it has
 * exec'd or failed. */
static int start_child(const runner_spec_t *spec, int outfd, int sofd, pid_t *pid, char *err,
                       size_t errlen)
{
    /* The vfork child's stack: the loop is one thread and CLONE_VFORK holds
     * it until the child has exec'd or exited, so one buffer serves all.
     * Room for execvp's copies of argv (a script it hands to /bin/sh). */
    static uint8_t stack[256 << 10] __attribute__((aligned(16)));
    int ep[2] = {-1, -1};
    const char *what = spec->argv ? spec->argv[0] : "shim";
    if (spec->argv && pipe2(ep, O_CLOEXEC) < 0) {
        int e = errno;
        snprintf(err, errlen, "pipe2: %s", strerror(e));
        return -e;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    child_args_t args = {spec, outfd, sofd, ep[1], getpid()};
    if (spec->argv) {
        /* ep[0] is O_CLOEXEC: the exec closes it in the child. */
        *pid = clone(vfork_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    } else {
        *pid = fork();
        if (*pid == 0) {
            if (ep[0] >= 0)
                close(ep[0]);
            child_main(spec, outfd, sofd, ep[1], args.agent);
        }
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (*pid < 0) {
        snprintf(err, errlen, "cannot run '%s': %s: %s", what, spec->argv ? "clone" : "fork",
                 strerror(fork_errno));
        if (ep[0] >= 0) {
            close(ep[0]);
            close(ep[1]);
        }
        return -fork_errno;
    }
    if (ep[0] < 0)
        return 0;
    close(ep[1]);
    int rec[2];
    ssize_t n;
    do
        n = read(ep[0], rec, sizeof rec);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n != (ssize_t)sizeof rec)
        return 0; /* EOF: exec succeeded */
    /* The child has exited (or is about to): reap it here, before the loop
     * sees it. */
    while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (rec[0] == 1)
        snprintf(err, errlen, "cannot start '%s': %s", what, strerror(rec[1]));
    else
        snprintf(err, errlen, "cannot run '%s': %s", what, strerror(rec[1]));
    /* Before exec (stage 1: the driver's setup, e.g. joining the cgroup)
     * nothing of the step ran: whatever went wrong is the agent's, so the
     * error is one a caller classifies as such (the text has the cause). */
    if (rec[0] == 1)
        return -EAGAIN;
    return rec[1] > 0 ? -rec[1] : -EIO;
}

runner_t *runner_start(struct ev_loop *loop, const runner_spec_t *spec, char *err, size_t errlen)
{
    int pipefd[2] = {-1, -1}, sofd[2] = {-1, -1};
    runner_t *r = NULL;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0 || (spec->on_stdout && pipe2(sofd, O_CLOEXEC) < 0)) {
        int e = errno;
        snprintf(err, errlen, "pipe2: %s", strerror(e));
        if (pipefd[0] >= 0) {
            close(pipefd[0]);
            close(pipefd[1]);
        }
        errno = e;
        return NULL;
    }
    int rc = start_child(spec, pipefd[1], sofd[1], &pid, err, errlen);
    close(pipefd[1]);
    if (sofd[1] >= 0)
        close(sofd[1]);
    if (rc < 0) {
        close(pipefd[0]);
        if (sofd[0] >= 0)
            close(sofd[0]);
        errno = -rc;
        return NULL;
    }
    fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
    if (sofd[0] >= 0)
        fcntl(sofd[0], F_SETFL, fcntl(sofd[0], F_GETFL) | O_NONBLOCK);

    r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->spec = *spec;
    r->pid = pid;
    r->out_fd = pipefd[0];
    r->so_fd = sofd[0];
    r->buf = xmalloc(READ_CHUNK);
    ev_io_init(&r->out_w, on_output, r->out_fd, EV_READ);
    ev_io_init(&r->so_w, on_output, r->so_fd, EV_READ);
    ev_child_init(&r->child_w, on_child, pid, 0);
    ev_timer_init(&r->timeout_w, on_timeout, (double)spec->timeout_ms / 1000.0, 0.);
    ev_timer_init(&r->grace_w, on_grace, (double)spec->kill_grace_ms / 1000.0, 0.);
    ev_timer_init(&r->drain_w, on_drain_timeout, DRAIN_FALLBACK_S, 0.);
    r->so_w.data = r->out_w.data = r->child_w.data = r->timeout_w.data = r->grace_w.data =
        r->drain_w.data = r;
    ev_io_start(loop, &r->out_w);
    if (r->so_fd >= 0)
        ev_io_start(loop, &r->so_w);
    ev_child_start(loop, &r->child_w);
    if (spec->timeout_ms) {
        /* The loop's clock is that of its last wake-up, maybe long before
         * the fork: a timer started on it would end the step early. */
        ev_now_update(loop);
        ev_timer_start(loop, &r->timeout_w);
    }
    return r;
}

void runner_destroy(runner_t **rp)
{
    if (!rp || !*rp)
        return;
    runner_t *r = *rp;
    if (!r->exited)
        signal_group(r, SIGKILL);
    ev_io_stop(r->loop, &r->out_w);
    ev_io_stop(r->loop, &r->so_w);
    ev_child_stop(r->loop, &r->child_w);
    ev_timer_stop(r->loop, &r->timeout_w);
    ev_timer_stop(r->loop, &r->grace_w);
    ev_timer_stop(r->loop, &r->drain_w);
    if (r->out_fd >= 0)
        close(r->out_fd);
    if (r->so_fd >= 0)
        close(r->so_fd);
    free(r->buf);
    free(r);
    *rp = NULL;
}
