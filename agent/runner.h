/* runner — one step attempt as a local process.
 *
 * runner_start() spawns argv (as posix_spawnp would, without copying the
 * agent's memory) in a new process group, in the given working directory,
 * with stdin from /dev/null and stdout+stderr on one pipe (or stdout on a
 * second one, with on_stdout), without
 * blocking the loop; the process is SIGKILLed should the agent die. Output is delivered as it is
 * read (on_output); exit is detected with ev_child. When the main process exits the rest of its
 * process group is killed, the pipes are drained, and then on_exit is called exactly once. A
 * timeout or runner_kill() sends SIGTERM to the group and SIGKILL after the grace period.
 */
#ifndef DROVER_RUNNER_H
#define DROVER_RUNNER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct runner runner_t;

typedef struct {
    int exit_code;   /* valid when term_signal == 0 */
    int term_signal; /* signal that ended the main process, or 0 */
    bool timed_out;
    bool killed;      /* by runner_kill */
    bool oom_killed;  /* the step's memory limit killed it (set by runtime drivers, never by runner)
                       */
    char reason[256]; /* why it could not start or was stopped; "" for a normal exit */
} runner_exit_t;

typedef struct {
    char *const *argv; /* NULL-terminated, argv[0] looked up in PATH; NULL only with child_fn */
    char *const *envp; /* NULL-terminated */
    const char *cwd;
    uint64_t timeout_ms;    /* 0 = none */
    uint64_t kill_grace_ms; /* SIGTERM → SIGKILL delay */
    void (*on_output)(void *arg, const uint8_t *data, size_t len);
    /* Optional: standard output on a pipe of its own, each read handed to
     * on_stdout as well as to on_output (stderr stays on on_output's pipe,
     * so the log's interleaving of the two is then as the reads came).
     * NULL: stdout and stderr share one pipe. */
    void (*on_stdout)(void *arg, const uint8_t *data, size_t len);
    void (*on_exit)(void *arg, const runner_exit_t *exit);
    void *arg;
    /* Optional, for runtime drivers (runtime.h); NULL for a plain spawn.
     * child_fn(child_arg) runs in the child once stdin, stdout+stderr,
     * process group, default signal dispositions and cwd are set up, with
     * every signal blocked (so none kills it before it is ready; the exec of
     * argv unblocks them all). With argv the child shares the agent's
     * memory until it execs (vfork): child_fn may only make
     * async-signal-safe calls (no malloc). Returning -errno fails
     * runner_start with that error. With argv NULL child_fn is the whole
     * child (a container shim), made with fork(): it must _exit(), and
     * runner_start returns as soon as the child exists. */
    int (*child_fn)(void *child_arg);
    void *child_arg;
} runner_spec_t;

/* Start a process. Returns the runner, or NULL when spawning failed (the
 * reason is written to err, e.g. "cannot run 'foo': No such file or
 * directory", and errno says why: the exec's error for the command itself,
 * EAGAIN/ENOMEM/EMFILE... when the machine ran short, EAGAIN when child_fn
 * failed before exec: not the command's fault). Callbacks are not called
 * for a failed start. */
runner_t *runner_start(struct ev_loop *loop, const runner_spec_t *spec, char *err, size_t errlen);

/* Stop the process group: SIGTERM now, SIGKILL after the grace period.
 * on_exit still follows (with killed set). Idempotent. */
void runner_kill(runner_t *r, const char *reason);

/* SIGKILL the group at once (used at agent shutdown). */
void runner_kill_now(runner_t *r);

/* Process id of the group leader. */
pid_t runner_pid(const runner_t *r);

/* Stop watchers and free; kills the group if still running. NULLs *r.
 * Must not be called from inside on_exit for the same runner. */
void runner_destroy(runner_t **r);

#endif
