/* test_runner — step attempts as real local processes.
 *
 * Each test runs real programs (/bin/sh, sleep, env, pwd) on the default
 * libev loop and waits for on_exit by running the loop up to a deadline
 * (helpers.h's agent fixture) so a broken runner fails the test instead of
 * hanging it. Checked:
 * exit codes and signals, combined stdout+stderr in order, failure to
 * start (errno: the step's or the machine's), timeout (SIGTERM), runner_kill escalating to SIGKILL
 * after the grace period, leftovers of the step killed with it, its own process group, cwd and
 * exact environment; stdout captured on a pipe of its own (on_stdout, result.h).
 */
#define DROVER_TEST_AGENT
#include "helpers.h"

#include <ev.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "result.h"
#include "runner.h"

static h_agent_t fx;

static void setup(void)
{
    h_agent_init(&fx, false);
}

static void teardown(void)
{
    h_agent_fini(&fx);
}

TestSuite(runner, .init = setup, .fini = teardown, .timeout = 60);

static char *default_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

static runner_t *start(char *const *argv, h_proc_t *res, uint64_t timeout_ms, uint64_t grace_ms)
{
    char errbuf[256] = "";
    runner_spec_t spec = {.argv = argv,
                          .envp = default_env,
                          .cwd = fx.dir,
                          .timeout_ms = timeout_ms,
                          .kill_grace_ms = grace_ms,
                          .on_output = h_proc_output,
                          .on_exit = h_proc_exit,
                          .arg = res};
    runner_t *r = runner_start(fx.loop, &spec, errbuf, sizeof errbuf);
    cr_assert_not_null(r, "runner_start(%s): %s", argv[0], errbuf);
    cr_assert_gt(runner_pid(r), 0);
    return r;
}

/* Run argv to completion (20 s at most) and return the result. */
static void run_to_end(char *const *argv, h_proc_t *res, uint64_t timeout_ms, uint64_t grace_ms)
{
    runner_t *r = start(argv, res, timeout_ms, grace_ms);
    cr_assert(h_pump_until(fx.loop, h_proc_exited, res, 20000), "%s did not finish within 20 s",
              argv[0]);
    cr_assert_eq(res->exits, 1);
    runner_destroy(&r);
    cr_assert_null(r);
}

/* Whether pid is gone (or a zombie nobody reaped: not running either). */
static bool process_dead(pid_t pid)
{
    if (kill(pid, 0) < 0)
        return errno == ESRCH;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

static bool wait_dead(pid_t pid, int64_t timeout_ms)
{
    int64_t end = util_mono_ms() + timeout_ms;
    while (util_mono_ms() < end) {
        if (process_dead(pid))
            return true;
        usleep(10000);
    }
    return process_dead(pid);
}

static pid_t read_pidfile(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int64_t end = util_mono_ms() + 10000;
    while (util_read_file(path, 64, &text, &len) < 0 || len == 0 || !strchr(text, '\n')) {
        free(text);
        text = NULL;
        cr_assert_lt(util_mono_ms(), end, "no pid written to %s", path);
        ev_run(fx.loop, EVRUN_NOWAIT);
        usleep(10000);
    }
    pid_t pid = (pid_t)atoi(text);
    free(text);
    cr_assert_gt(pid, 1);
    return pid;
}

Test(runner, exit_code_is_captured)
{
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c", "exit 7", NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_eq(res.ex.exit_code, 7);
    cr_assert_eq(res.ex.term_signal, 0);
    cr_assert_not(res.ex.timed_out);
    cr_assert_not(res.ex.killed);
    cr_assert_str_eq(res.ex.reason, "");
    free(res.out);

    h_proc_t ok = {0};
    char *argv2[] = {"true", NULL};
    run_to_end(argv2, &ok, 0, 1000);
    cr_assert_eq(ok.ex.exit_code, 0);
    cr_assert_eq(ok.len, 0);
    free(ok.out);
}

Test(runner, signal_death_is_captured)
{
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c", "kill -USR1 $$", NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_eq(res.ex.term_signal, SIGUSR1);
    cr_assert_not(res.ex.killed);
    free(res.out);
}

Test(runner, stdout_and_stderr_arrive_in_order)
{
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c",
                    "echo one; echo two >&2; printf three; echo ' four' >&2; "
                    "read x || echo 'stdin is empty'",
                    NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_eq(res.ex.exit_code, 0);
    cr_assert_str_eq((char *)res.out, "one\ntwo\nthree four\nstdin is empty\n");
    free(res.out);
}

Test(runner, large_output_is_complete)
{
    /* ~1 MiB, more than any pipe buffer: the runner must keep reading. */
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c",
                    "i=0; while [ $i -lt 16384 ]; do "
                    "echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789a"
                    "bcde; i=$((i+1)); done",
                    NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_eq(res.ex.exit_code, 0);
    cr_assert_eq(res.len, 16384 * 64);
    for (size_t i = 0; i < res.len; i += 64)
        cr_assert_eq(res.out[i + 63], '\n', "line %zu is damaged", i / 64);
    free(res.out);
}

Test(runner, missing_binary_is_refused_at_start)
{
    char errbuf[256] = "";
    h_proc_t res = {0};
    char *argv[] = {"drover-no-such-program", "x", NULL};
    runner_spec_t spec = {.argv = argv,
                          .envp = default_env,
                          .cwd = fx.dir,
                          .kill_grace_ms = 100,
                          .on_output = h_proc_output,
                          .on_exit = h_proc_exit,
                          .arg = &res};
    runner_t *r = runner_start(fx.loop, &spec, errbuf, sizeof errbuf);
    cr_assert_null(r);
    cr_assert(strstr(errbuf, "cannot run") != NULL, "err: %s", errbuf);
    cr_assert(strstr(errbuf, "drover-no-such-program") != NULL, "names the program: %s", errbuf);
    cr_assert(strstr(errbuf, "No such file") != NULL, "says why: %s", errbuf);
    cr_assert_eq(errno, ENOENT, "errno says why: %s", strerror(errno));
    cr_assert_not(util_errno_is_system(errno), "a missing command is the step's failure");
    /* No callbacks for a failed start. */
    ev_run(fx.loop, EVRUN_NOWAIT);
    cr_assert_eq(res.exits, 0);
}

static int join_nothing(void *arg)
{
    return 0;
}

/* Out of file descriptors (a real RLIMIT_NOFILE, as a busy agent hits it):
 * no process can be made, and errno says it is the machine's trouble, not
 * the step's, whichever way it spawns (posix_spawn, or the fork runtime
 * drivers use). Criterion runs each test in its own process, so the limit
 * dies with it. */
Test(runner, no_descriptors_left_is_a_system_error)
{
    char errbuf[256] = "";
    h_proc_t res = {0};
    char *argv[] = {"true", NULL};
    runner_spec_t spec = {.argv = argv,
                          .envp = default_env,
                          .cwd = fx.dir,
                          .kill_grace_ms = 100,
                          .on_output = h_proc_output,
                          .on_exit = h_proc_exit,
                          .arg = &res};
    /* open() takes the lowest free descriptor: with the limit at it, none
     * is left. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    struct rlimit lim;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
    lim.rlim_cur = (rlim_t)fd;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0, "setrlimit: %s", strerror(errno));
    for (int fork_path = 0; fork_path < 2; fork_path++) {
        spec.child_fn = fork_path ? join_nothing : NULL;
        runner_t *r = runner_start(fx.loop, &spec, errbuf, sizeof errbuf);
        cr_assert_null(r, "started with no descriptor left");
        cr_assert_eq(errno, EMFILE, "errno %s (%s)", strerror(errno), errbuf);
        cr_assert(util_errno_is_system(errno), "EMFILE is the machine's trouble: %s", errbuf);
    }
    ev_run(fx.loop, EVRUN_NOWAIT);
    cr_assert_eq(res.exits, 0);
}

Test(runner, timeout_terminates_the_step)
{
    h_proc_t res = {0};
    char *argv[] = {"sleep", "30", NULL};
    int64_t t0 = util_mono_ms();
    run_to_end(argv, &res, 200, 5000);
    int64_t took = res.exit_ms - t0;
    cr_assert(res.ex.timed_out);
    cr_assert_not(res.ex.killed);
    cr_assert_eq(res.ex.term_signal, SIGTERM, "SIGTERM first (got signal %d)", res.ex.term_signal);
    cr_assert(strstr(res.ex.reason, "timeout") != NULL, "reason: %s", res.ex.reason);
    cr_assert_geq(took, 190, "stopped before its timeout (%ld ms)", (long)took);
    cr_assert_lt(took, 4000, "the timeout took %ld ms", (long)took);
    free(res.out);
}

Test(runner, kill_escalates_to_sigkill_after_grace)
{
    h_proc_t res = {0};
    char *pidfile = xasprintf("%s/ready", fx.dir);
    char *script = xasprintf("trap '' TERM; echo $$ > %s; sleep 30", pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    runner_t *r = start(argv, &res, 0, 300);
    read_pidfile(pidfile); /* the trap is installed */
    int64_t t0 = util_mono_ms();
    runner_kill(r, "run cancelled");
    runner_kill(r, "second reason is ignored"); /* idempotent */
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 20000), "not dead 20 s after runner_kill");
    int64_t took = res.exit_ms - t0;
    cr_assert_eq(res.exits, 1);
    cr_assert(res.ex.killed);
    cr_assert_not(res.ex.timed_out);
    cr_assert_eq(res.ex.term_signal, SIGKILL, "SIGTERM was ignored, so SIGKILL (got %d)",
                 res.ex.term_signal);
    cr_assert_str_eq(res.ex.reason, "run cancelled");
    cr_assert_geq(took, 250, "SIGKILL came before the grace period (%ld ms)", (long)took);
    cr_assert_lt(took, 5000);
    runner_destroy(&r);
    free(script);
    free(pidfile);
    free(res.out);
}

Test(runner, kill_of_a_cooperative_step_needs_no_sigkill)
{
    h_proc_t res = {0};
    char *argv[] = {"sleep", "30", NULL};
    runner_t *r = start(argv, &res, 0, 10000);
    runner_kill(r, "preempted");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 5000), "SIGTERM alone should end sleep");
    cr_assert_eq(res.ex.term_signal, SIGTERM);
    cr_assert(res.ex.killed);
    runner_destroy(&r);
    free(res.out);
}

Test(runner, leftovers_of_the_step_die_with_it)
{
    h_proc_t res = {0};
    char *pidfile = xasprintf("%s/bg.pid", fx.dir);
    char *script = xasprintf("sleep 30 & echo $! > %s; echo started", pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_eq(res.ex.exit_code, 0);
    cr_assert_str_eq((char *)res.out, "started\n");
    pid_t bg = read_pidfile(pidfile);
    cr_assert(wait_dead(bg, 5000), "background process %d of the step still runs", (int)bg);
    free(script);
    free(pidfile);
    free(res.out);
}

Test(runner, on_exit_waits_for_output_of_the_last_moment)
{
    /* The step's last words come right before it exits. */
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c", "echo last words; exit 3", NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_eq(res.ex.exit_code, 3);
    cr_assert_str_eq((char *)res.out, "last words\n");
    free(res.out);
}

Test(runner, own_process_group_and_cwd)
{
    h_proc_t res = {0};
    char *pidfile = xasprintf("%s/pg.pid", fx.dir);
    char *script = xasprintf("pwd -P; echo $$ > %s; sleep 30", pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    runner_t *r = start(argv, &res, 0, 1000);
    pid_t pid = runner_pid(r);
    cr_assert_eq(read_pidfile(pidfile), pid, "runner_pid is the step's process");
    cr_assert_eq(getpgid(pid), pid, "the step leads its own process group");
    cr_assert_neq(getpgid(pid), getpgrp(), "not in the test's group");
    runner_kill(r, "done");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 10000));
    char real[4096];
    cr_assert_not_null(realpath(fx.dir, real));
    char *want = xasprintf("%s\n", real);
    cr_assert_str_eq((char *)res.out, want, "cwd is the spec's directory");
    runner_destroy(&r);
    free(want);
    free(script);
    free(pidfile);
    free(res.out);
}

Test(runner, environment_is_exactly_envp)
{
    h_proc_t res = {0};
    char *env[] = {"A=1", "B=two words", "EMPTY=", NULL};
    char *argv[] = {"env", NULL};
    char errbuf[256] = "";
    runner_spec_t spec = {.argv = argv,
                          .envp = env,
                          .cwd = fx.dir,
                          .kill_grace_ms = 100,
                          .on_output = h_proc_output,
                          .on_exit = h_proc_exit,
                          .arg = &res};
    setenv("DROVER_TEST_LEAK", "must-not-show", 1);
    runner_t *r = runner_start(fx.loop, &spec, errbuf, sizeof errbuf);
    cr_assert_not_null(r, "%s", errbuf);
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 20000));
    cr_assert_eq(res.ex.exit_code, 0);
    cr_assert_str_eq((char *)res.out, "A=1\nB=two words\nEMPTY=\n");
    runner_destroy(&r);
    free(res.out);
}

Test(runner, step_does_not_inherit_ignored_signals)
{
    /* The agent ignores SIGPIPE; a step must get default dispositions for
     * the standard signals (glibc itself marks its internal real-time
     * signals 32 and 33 ignored in a spawned child; those are not ours). */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c", "grep '^SigIgn:' /proc/self/status", NULL};
    run_to_end(argv, &res, 0, 1000);
    cr_assert_not_null(res.out);
    unsigned long long ign = 0;
    cr_assert_eq(sscanf((char *)res.out, "SigIgn: %llx", &ign), 1, "output: %s", res.out);
    cr_assert_eq(ign & 0x7fffffffULL, 0, "signals ignored in the step: %s", res.out);
    free(res.out);
}

Test(runner, destroy_kills_a_running_step)
{
    h_proc_t res = {0};
    char *argv[] = {"sleep", "30", NULL};
    runner_t *r = start(argv, &res, 0, 1000);
    pid_t pid = runner_pid(r);
    runner_destroy(&r);
    cr_assert_null(r);
    /* Nobody reaps it through the runner any more: reap it here. */
    int64_t end = util_mono_ms() + 5000;
    bool gone = false;
    while (!gone && util_mono_ms() < end) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            cr_assert(WIFSIGNALED(st));
            cr_assert_eq(WTERMSIG(st), SIGKILL);
            gone = true;
        } else if (w < 0) {
            gone = process_dead(pid); /* reaped by libev's SIGCHLD handler */
        } else {
            usleep(10000);
        }
    }
    cr_assert(gone, "sleep %d survived runner_destroy", (int)pid);
    cr_assert_eq(res.exits, 0, "no on_exit after destroy");
}

Test(runner, many_steps_at_once)
{
    enum { N = 20 };
    h_proc_t res[N];
    runner_t *r[N];
    char *scripts[N];
    memset(res, 0, sizeof res);
    for (int i = 0; i < N; i++) {
        scripts[i] = xasprintf("echo step %d; exit %d", i, i);
        char *argv[] = {"sh", "-c", scripts[i], NULL};
        r[i] = start(argv, &res[i], 0, 1000);
    }
    for (int i = 0; i < N; i++) {
        cr_assert(h_pump_until(fx.loop, h_proc_exited, &res[i], 20000), "step %d did not finish",
                  i);
        cr_assert_eq(res[i].ex.exit_code, i);
        char *want = xasprintf("step %d\n", i);
        cr_assert_str_eq((char *)res[i].out, want);
        free(want);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].exits, 1);
        runner_destroy(&r[i]);
        free(scripts[i]);
        free(res[i].out);
    }
}

Test(runner, step_that_exits_before_its_timeout_is_not_timed_out)
{
    /* The step starts a daemon in its own session (out of the step's
     * process group; it keeps the output pipe open) and exits 0 at once,
     * long before its 500 ms timeout. The runner waits up to its drain
     * fallback for EOF; the step still exited by itself, on time. */
    h_proc_t res = {0};
    char *pidfile = xasprintf("%s/daemon.pid", fx.dir);
    char *script = xasprintf("setsid sh -c 'echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 5' & "
                             "while [ ! -s %s ]; do :; done; exit 0",
                             pidfile, pidfile, pidfile, pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    int64_t t0 = util_mono_ms();
    run_to_end(argv, &res, 500, 1000);
    pid_t daemon_pid = read_pidfile(pidfile);
    kill(daemon_pid, SIGKILL);
    free(script);
    free(pidfile);
    runner_exit_t ex = res.ex;
    int64_t took = res.exit_ms - t0;
    free(res.out);
    cr_assert_eq(ex.exit_code, 0);
    cr_assert_eq(ex.term_signal, 0);
    cr_assert_lt(took, 10000);
    cr_assert_not(ex.timed_out, "exited at once, reported as timed out (reason '%s')", ex.reason);
    cr_assert_str_eq(ex.reason, "");
}

/* Issue 12, defect 3: a step dies with its agent (kill -9 of the agent,
 * not of the machine), so it cannot run on, and finish, unseen while
 * droverd runs it again elsewhere. The "agent" is a child of the test
 * that starts a step and is then killed. */
Test(runner, a_step_dies_with_its_agent)
{
    char *pidfile = xasprintf("%s/step.pid", fx.dir);
    char *script = xasprintf("echo $$ > %s; exec sleep 60", pidfile);
    pid_t agent = fork();
    cr_assert_geq(agent, 0);
    if (agent == 0) {
        ev_loop_fork(fx.loop); /* the default loop: child watchers need it */
        char *argv[] = {"sh", "-c", script, NULL};
        h_proc_t res = {0};
        start(argv, &res, 0, 1000);
        ev_run(fx.loop, 0);
        _exit(0);
    }
    pid_t step = read_pidfile(pidfile);
    cr_assert(!wait_dead(step, 200), "the step did not start");
    kill(agent, SIGKILL);
    waitpid(agent, NULL, 0);
    cr_assert(wait_dead(step, 5000), "step %d outlived its agent", (int)step);
    free(script);
    free(pidfile);
}

/* ---- issue 15: a step's standard output captured (on_stdout + result.h) */

static result_t captured;

static void on_stdout_capture(void *arg, const uint8_t *data, size_t len)
{
    (void)arg;
    result_add(&captured, data, len);
}

/* Run argv with stdout on its own pipe into `captured`. */
static void run_capturing(char *const *argv, h_proc_t *res)
{
    char errbuf[256] = "";
    result_free(&captured);
    runner_spec_t spec = {.argv = argv,
                          .envp = default_env,
                          .cwd = fx.dir,
                          .kill_grace_ms = 1000,
                          .on_output = h_proc_output,
                          .on_stdout = on_stdout_capture,
                          .on_exit = h_proc_exit,
                          .arg = res};
    runner_t *r = runner_start(fx.loop, &spec, errbuf, sizeof errbuf);
    cr_assert_not_null(r, "runner_start: %s", errbuf);
    cr_assert(h_pump_until(fx.loop, h_proc_exited, res, 20000), "did not finish within 20 s");
    cr_assert_eq(res->exits, 1);
    runner_destroy(&r);
}

Test(runner, stdout_is_captured_apart_from_stderr_and_still_logged)
{
    h_proc_t res = {0};
    /* the last line comes from a grandchild after the leader's own output:
     * on_exit waits for both pipes to be drained */
    char *argv[] = {"sh", "-c",
                    "echo tails; echo noise >&2; (sleep 0.2; printf 'more\\n\\n') & wait; exit 3",
                    NULL};
    run_capturing(argv, &res);
    cr_assert_eq(res.ex.exit_code, 3);
    cr_assert(strstr(res.out, "tails\n") && strstr(res.out, "noise\n") && strstr(res.out, "more"),
              "the log has both streams: %s", res.out);
    char *text = NULL, why[256];
    cr_assert_eq(result_take(&captured, &text, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(text, "tails\nmore\n", "only stdout, one trailing newline dropped");
    free(text);
    free(res.out);
}

Test(runner, output_over_64k_is_refused_and_memory_stays_bounded)
{
    h_proc_t res = {0};
    char *argv[] = {"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x", NULL};
    run_capturing(argv, &res);
    cr_assert_eq(res.ex.exit_code, 0);
    cr_assert_leq(captured.buf.len, RESULT_MAX + 2, "kept %zu bytes", captured.buf.len);
    char *text = (char *)0x1, why[256];
    cr_assert_eq(result_take(&captured, &text, why, sizeof why), -E2BIG);
    cr_assert_null(text);
    cr_assert(strstr(why, "standard output is 1000000 bytes, over the 65536 bytes (64 KiB)"), "%s",
              why);
    free(res.out);
}

Test(runner, result_limits_exactly)
{
    char *text = NULL, why[256];
    static uint8_t big[RESULT_MAX + 2];
    memset(big, 'y', sizeof big);
    /* 64 KiB and a newline: fits */
    result_t r = {0};
    big[RESULT_MAX] = '\n';
    result_add(&r, big, RESULT_MAX / 2);
    result_add(&r, big + RESULT_MAX / 2, RESULT_MAX / 2 + 1);
    cr_assert_eq(result_take(&r, &text, why, sizeof why), 0, "%s", why);
    cr_assert_eq(strlen(text), RESULT_MAX);
    free(text);
    /* one byte more: refused */
    big[RESULT_MAX] = 'y';
    result_add(&r, big, RESULT_MAX + 1);
    cr_assert_eq(result_take(&r, &text, why, sizeof why), -E2BIG);
    /* a NUL byte: refused, the result is text */
    result_add(&r, (const uint8_t *)"a\0b", 3);
    cr_assert_eq(result_take(&r, &text, why, sizeof why), -EINVAL);
    cr_assert(strstr(why, "NUL byte"), "%s", why);
    /* nothing written: "" */
    cr_assert_eq(result_take(&r, &text, why, sizeof why), 0);
    cr_assert_str_eq(text, "");
    free(text);
    /* only a newline: "" too; two: one kept */
    result_add(&r, (const uint8_t *)"\n\n", 2);
    cr_assert_eq(result_take(&r, &text, why, sizeof why), 0);
    cr_assert_str_eq(text, "\n");
    free(text);
}
