/* rt_process — the process driver: a step as a process group on the host.
 *
 * runner.h does the work (spawn, output, timeout, SIGTERM → SIGKILL). What
 * this adds is a cgroup drover/<owner>/drover-<id> per step wherever
 * cgroups are writable, so that nothing a step started outlives it — not
 * even what left its process group (setsid, daemons) — and a restarted
 * agent finds and kills what its previous life left (runtime_cleanup_
 * orphans). The child joins it between clone and exec (runner's child_fn),
 * so nothing of the step ever runs outside, nor unlimited for a moment.
 * When the step asks for memory (its cpu then limited too) or pids, the
 * cgroup has those limits; otherwise it only keeps track (v1: the pids
 * hierarchy alone, the cheapest). After the exit the OOM counter says
 * whether the memory limit killed it (reported as OOMKilled), and the
 * cgroup is removed, with whatever is left killed first; if processes are
 * still leaving, removal is retried on a short timer before on_exit, so
 * on_exit means nothing is left (rt_task_contained() says so). Where a
 * cgroup cannot be made, the step runs without one (and without limits,
 * with a warning when it asked for them).
 */
#define RT_DRIVER_INTERNAL
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define RETRY_S     0.02
#define RETRY_LIMIT 150 /* 3 s */

static int proc_probe(runtime_t *rt, const char *path, char *err, size_t errlen)
{
    snprintf(rt->describe, sizeof rt->describe, "process");
    return 0;
}

const rt_driver_t rt_process_driver = {
    .name = "process",
    .images = false,
    .probe = proc_probe,
};

static int join_cgroup(void *cg)
{
    return cgroup_join(cg);
}

static void proc_report(rt_task_t *t)
{
    ev_timer_stop(t->loop, &t->retry_w);
    t->reported = true;
    t->spec.on_exit(t->spec.arg, &t->ex);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    rt_task_t *t = w->data;
    int rc = cgroup_remove(t->cg_rel, true);
    if (rc == -EBUSY && ++t->retries < RETRY_LIMIT)
        return;
    if (rc < 0)
        log_warn("cgroup %s: not removed: %s", t->cg_rel, strerror(-rc));
    t->contained = rc == 0 && t->in_cgroup;
    proc_report(t);
}

static void on_exit_cb(void *arg, const runner_exit_t *ex)
{
    rt_task_t *t = arg;
    t->exited = true;
    t->ex = *ex;
    if (!t->cg) {
        proc_report(t);
        return;
    }
    uint64_t ooms = 0;
    int rc = cgroup_oom_kills(t->cg, &ooms);
    if (rc < 0)
        log_warn("cgroup %s: reading OOM kills: %s", t->cg_rel, strerror(-rc));
    bool failed = ex->exit_code != 0 || ex->term_signal != 0;
    if (ooms > 0 && failed && !ex->timed_out) {
        char lim[32];
        rt_format_bytes(t->spec.memory_bytes, lim, sizeof lim);
        t->ex.oom_killed = true;
        snprintf(t->ex.reason, sizeof t->ex.reason, "OOMKilled: memory limit %s exceeded", lim);
    }
    rc = cgroup_remove(t->cg_rel, true);
    if (rc != -EBUSY) {
        if (rc < 0)
            log_warn("cgroup %s: not removed: %s", t->cg_rel, strerror(-rc));
        t->contained = rc == 0 && t->in_cgroup;
        proc_report(t);
        return;
    }
    ev_timer_init(&t->retry_w, on_retry, RETRY_S, RETRY_S);
    t->retry_w.data = t;
    ev_timer_start(t->loop, &t->retry_w);
}

static void on_output(void *arg, const uint8_t *data, size_t len)
{
    rt_task_t *t = arg;
    t->spec.on_output(t->spec.arg, data, len);
}

static void on_stdout(void *arg, const uint8_t *data, size_t len)
{
    rt_task_t *t = arg;
    t->spec.on_stdout(t->spec.arg, data, len);
}

int rt_process_start(rt_task_t *t, char *err, size_t errlen)
{
    runtime_t *rt = t->rt;
    cgroup_limits_t lim = {.memory_bytes = t->spec.memory_bytes,
                           .cpu_milli = t->spec.cpu_milli,
                           .pids_max = t->spec.pids_max};
    /* Limits only when the step bounds its memory (or pids); cpu alone is
     * already reserved by droverd's placement. */
    bool limited = lim.memory_bytes || lim.pids_max;
    if (rt->cg_mode != CGROUP_NONE) {
        char why[256];
        t->cg_rel = xasprintf("%s/%s", rt->cg_parent, t->name);
        cgroup_remove(t->cg_rel, true); /* a leftover of a crashed agent */
        t->cg = cgroup_new(t->cg_rel, limited ? &lim : NULL, why, sizeof why);
        if (!t->cg) {
            /* Limits are best effort where cgroups do not cooperate (a
             * delegated hierarchy we may not write): say so, run anyway. */
            if (limited)
                log_warn("%s: running without memory/cpu/pids limits: cgroup %s: %s", t->name,
                         t->cg_rel, why);
            free(t->cg_rel);
            t->cg_rel = NULL;
        }
    }
    char **env = rt_process_env(t);
    runner_spec_t rs = {.argv = t->argv,
                        .envp = env,
                        .cwd = t->cwd,
                        .timeout_ms = t->spec.timeout_ms,
                        .kill_grace_ms = t->spec.kill_grace_ms,
                        .on_output = on_output,
                        .on_stdout = t->spec.on_stdout ? on_stdout : NULL,
                        .on_exit = on_exit_cb,
                        .arg = t,
                        .child_fn = t->cg ? join_cgroup : NULL,
                        .child_arg = t->cg};
    t->runner = runner_start(t->loop, &rs, err, errlen);
    int spawn_errno = errno;
    rt_strv_free(env);
    if (!t->runner) {
        if (t->cg_rel)
            cgroup_remove(t->cg_rel, true);
        return spawn_errno > 0 ? -spawn_errno : -EIO;
    }
    t->in_cgroup = t->cg != NULL;
    return 0;
}
