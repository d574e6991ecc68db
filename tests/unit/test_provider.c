/* test_provider — one provider call (scheduler/provider.c) with real
 * processes on a real libev loop: the request reaches stdin, stdout comes
 * back whole (past a pipe's buffer), the exit status and stderr's last line
 * are reported, a program that hangs is killed at the timeout with its
 * children, one that cannot start is reported from the loop, and a child
 * left holding the pipes does not hold the call. */
#include "helpers.h"

#include <ev.h>
#include <signal.h>

#include "provider.h"

typedef struct {
    bool done;
    int status;
    char *out, *err;
} result_t;

static void on_done(void *arg, int status, const char *out, const char *errline)
{
    result_t *r = arg;
    r->done = true;
    r->status = status;
    r->out = xstrdup(out);
    r->err = xstrdup(errline);
}

/* Run sh -c script with request; the loop turns until the call ends. */
static result_t run(const char *script, const char *request, uint64_t timeout_ms)
{
    struct ev_loop *loop = EV_DEFAULT;
    char *argv[] = {"/bin/sh", "-c", (char *)script, "provider", "create", NULL};
    result_t r = {0};
    provider_call(loop, argv, request, timeout_ms, on_done, &r);
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    return r;
}

static void result_free(result_t *r)
{
    free(r->out);
    free(r->err);
}

TestSuite(provider, .timeout = 60);

Test(provider, the_request_goes_in_and_the_answer_comes_back)
{
    result_t r = run("echo \"$1 timeout=$DROVER_PROVIDER_TIMEOUT\"; cat", "{\"pool\":\"a\"}", 3500);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "create timeout=4\n{\"pool\":\"a\"}");
    cr_assert_str_eq(r.err, "");
    result_free(&r);
}

Test(provider, a_failure_reports_its_status_and_last_stderr_line)
{
    result_t r = run("cat >/dev/null; echo first >&2; echo 'quota exceeded' >&2; echo >&2; exit 3",
                     "{}", 10000);
    cr_assert_eq(r.status, 3);
    cr_assert_str_eq(r.err, "quota exceeded");
    result_free(&r);
}

Test(provider, a_big_answer_and_a_big_request_pass_whole)
{
    /* 1 MiB each way: past every pipe buffer, in both directions at once */
    size_t n = 1 << 20;
    char *req = xmalloc(n + 1);
    memset(req, 'x', n);
    req[n] = '\0';
    result_t r = run("cat", req, 20000);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(strlen(r.out), n);
    cr_assert_eq(memcmp(r.out, req, n), 0);
    free(req);
    result_free(&r);
}

Test(provider, a_hanging_provider_is_killed_with_its_children)
{
    char *pidfile = xasprintf("/tmp/drover-provider-test-%d", (int)getpid());
    char *script = xasprintf("sleep 600 & echo $! > %s; sleep 600", pidfile);
    result_t r = run(script, "{}", 300);
    cr_assert_eq(r.status, PROVIDER_KILLED);
    cr_assert(strstr(r.err, "killed") != NULL, "%s", r.err);
    char *text = NULL;
    size_t len;
    cr_assert_eq(util_read_file(pidfile, 64, &text, &len), 0);
    pid_t child = (pid_t)atoi(text);
    /* its own child went with it (the whole session is killed) */
    for (int i = 0; i < 200 && kill(child, 0) == 0; i++)
        usleep(10000);
    cr_assert_neq(kill(child, 0), 0, "the provider's child %d still runs", (int)child);
    unlink(pidfile);
    free(text);
    free(script);
    free(pidfile);
    result_free(&r);
}

Test(provider, a_child_that_keeps_the_pipes_does_not_hold_the_call)
{
    /* like the local provider's agents, if they kept its stdout */
    result_t r = run("(sleep 30 &) ; echo '{\"nodes\":[]}'", "{}", 20000);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "{\"nodes\":[]}\n");
    result_free(&r);
}

Test(provider, a_program_that_cannot_start_is_reported_from_the_loop)
{
    struct ev_loop *loop = EV_DEFAULT;
    char *argv[] = {"/nonexistent/provider", "list", NULL};
    result_t r = {0};
    provider_call(loop, argv, "{}", 1000, on_done, &r);
    cr_assert(!r.done, "never from inside provider_call");
    while (!r.done)
        ev_run(loop, EVRUN_ONCE);
    cr_assert_eq(r.status, PROVIDER_NOT_STARTED);
    cr_assert(strstr(r.err, "cannot run /nonexistent/provider") != NULL, "%s", r.err);
    result_free(&r);
}

Test(provider, cancel_kills_and_calls_nothing)
{
    struct ev_loop *loop = EV_DEFAULT;
    char *argv[] = {"/bin/sleep", "600", NULL};
    result_t r = {0};
    provider_call_t *c = provider_call(loop, argv, "", 60000, on_done, &r);
    provider_cancel(&c);
    cr_assert_null(c);
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert(!r.done);
}
