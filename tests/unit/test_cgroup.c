/* test_cgroup — per-attempt cgroups on this machine's real hierarchies.
 *
 * Checked: which layout is used (v2 with the memory controller, else v1),
 * limits written where the kernel reads them, joining between fork and
 * exec, an OOM kill counted (a shell filling a variable past 32 MiB),
 * signalling everything inside, and removal with leftovers killed. Needs
 * root and a memory controller: otherwise every test skips with the reason.
 */
#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"

static char rel[128];

static void setup(void)
{
    snprintf(rel, sizeof rel, "drover/test-cgroup/t%d", (int)getpid());
}

static void teardown(void)
{
    cgroup_remove_wait(rel, 2000);
    /* The shared parent, once no test uses it (rmdir fails while one does). */
    int rc = system("rmdir /sys/fs/cgroup/*/drover/test-cgroup "
                    "/sys/fs/cgroup/drover/test-cgroup 2>/dev/null");
    (void)rc;
}

TestSuite(cgroup, .init = setup, .fini = teardown, .timeout = 60);

static cgroup_mode_t need_cgroups(void)
{
    char why[256] = "";
    cgroup_mode_t mode = cgroup_mode(why, sizeof why);
    if (mode == CGROUP_NONE)
        cr_skip_test("no usable cgroups: %s", why);
    return mode;
}

/* The directory of rel in the hierarchy that has controller (v1), or the
 * unified one (v2). */
static char *dir_of(cgroup_mode_t mode, const char *controller)
{
    if (mode == CGROUP_V2)
        return xasprintf("/sys/fs/cgroup%s/%s", cgroup_unified_only() ? "" : "/unified", rel);
    return xasprintf("/sys/fs/cgroup/%s/%s", controller, rel);
}

static char *read_text(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(util_read_file(path, 1 << 16, &text, &len), 0, "read %s", path);
    return text;
}

/* Fork a child that joins cg and runs sh -c script; return its status. */
static int run_in(cgroup_t *cg, const char *script, pid_t *pid_out)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (cgroup_join(cg) < 0)
            _exit(99);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(98);
    }
    if (pid_out) {
        *pid_out = pid;
        return 0;
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* Poll (up to 10 s) until the cgroup holds at least n processes; returns
 * how many it holds then (cgroup_signal with 0 counts them). */
static int wait_members(const char *cg, int n)
{
    int have = 0;
    for (int i = 0; i < 1000 && (have = cgroup_signal(cg, 0)) < n; i++)
        usleep(10 * 1000);
    return have;
}

Test(cgroup, limits_land_in_the_kernel_files)
{
    cgroup_mode_t mode = need_cgroups();
    cr_log_info("cgroup layout: %s", mode == CGROUP_V2 ? "v2" : "v1");
    char err[256] = "";
    cgroup_limits_t lim = {.memory_bytes = 64 << 20, .cpu_milli = 500, .pids_max = 100};
    cgroup_t *cg = cgroup_new(rel, &lim, err, sizeof err);
    cr_assert_not_null(cg, "cgroup_new: %s", err);
    cr_assert_str_eq(cgroup_rel(cg), rel);
    char *mem = dir_of(mode, "memory"), *cpu = dir_of(mode, "cpu"), *pids = dir_of(mode, "pids");
    char *p, *v;
    if (mode == CGROUP_V1) {
        p = xasprintf("%s/memory.limit_in_bytes", mem);
        v = read_text(p);
        cr_assert_eq(strtoull(v, NULL, 10), 64 << 20);
        free(p);
        free(v);
        p = xasprintf("%s/cpu.cfs_quota_us", cpu);
        v = read_text(p);
        cr_assert_eq(atoi(v), 50000);
        free(p);
        free(v);
    } else {
        p = xasprintf("%s/memory.max", mem);
        v = read_text(p);
        cr_assert_eq(strtoull(v, NULL, 10), 64 << 20);
        free(p);
        free(v);
        p = xasprintf("%s/cpu.max", cpu);
        v = read_text(p);
        cr_assert_eq(strncmp(v, "50000 100000", 12), 0, "%s", v);
        free(p);
        free(v);
    }
    p = xasprintf("%s/pids.max", pids);
    v = read_text(p);
    cr_assert_eq(atoi(v), 100);
    free(p);
    free(v);

    /* A joined child is in the cgroup (what its /proc/self/cgroup says). */
    int st = run_in(cg, "grep -q 'test-cgroup' /proc/self/cgroup", NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child not in the cgroup (status %d)", st);
    uint64_t ooms = 99;
    cr_assert_eq(cgroup_oom_kills(cg, &ooms), 0);
    cr_assert_eq(ooms, 0);
    cgroup_destroy(&cg);
    cr_assert_null(cg);
    cr_assert_eq(cgroup_remove(rel, true), 0);
    cr_assert_neq(access(mem, F_OK), 0, "%s removed", mem);
    free(mem);
    free(cpu);
    free(pids);
}

Test(cgroup, oom_kill_is_counted)
{
    need_cgroups();
    char err[256] = "";
    cgroup_limits_t lim = {.memory_bytes = 32 << 20};
    cgroup_t *cg = cgroup_new(rel, &lim, err, sizeof err);
    cr_assert_not_null(cg, "cgroup_new: %s", err);
    int st = run_in(cg, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived", NULL);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "hog not killed (status %d)", st);
    uint64_t ooms = 0;
    cr_assert_eq(cgroup_oom_kills(cg, &ooms), 0);
    cr_assert_geq(ooms, 1, "OOM kill not counted");
    cgroup_destroy(&cg);
    cr_assert_eq(cgroup_remove_wait(rel, 2000), 0);
}

Test(cgroup, signal_and_remove_reach_escaped_processes)
{
    need_cgroups();
    char err[256] = "";
    cgroup_limits_t lim = {.pids_max = 50};
    cgroup_t *cg = cgroup_new(rel, &lim, err, sizeof err);
    cr_assert_not_null(cg, "cgroup_new: %s", err);
    pid_t pid;
    /* A daemon that left its parent's session, and the parent itself. */
    run_in(cg, "setsid sleep 30 & exec sleep 30", &pid);
    cr_assert_geq(wait_members(rel, 2), 2, "both sleeps are in the cgroup");
    cr_assert_eq(cgroup_remove(rel, false), -EBUSY, "busy while they run");
    cr_assert_eq(cgroup_remove_wait(rel, 3000), 0, "killed and removed");
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    cr_assert_eq(cgroup_signal(rel, 0), 0);
    cgroup_destroy(&cg);
}

Test(cgroup, children_of_a_parent_are_removed)
{
    need_cgroups();
    char err[256] = "", a[192], b[192];
    snprintf(a, sizeof a, "%s/a", rel);
    snprintf(b, sizeof b, "%s/b", rel);
    cgroup_t *ca = cgroup_new(a, NULL, err, sizeof err), *cb = cgroup_new(b, NULL, err, sizeof err);
    cr_assert(ca && cb, "cgroup_new: %s", err);
    pid_t pid;
    run_in(cb, "exec sleep 30", &pid);
    cgroup_destroy(&ca);
    cgroup_destroy(&cb);
    cr_assert_geq(wait_members(b, 1), 1, "the sleep is in b");
    cr_assert_geq(cgroup_remove_children(rel, 3000), 2);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status));
    char *oom = cgroup_oom_file(a);
    cr_assert_not_null(oom);
    uint64_t n;
    cr_assert_eq(cgroup_read_oom_kill(oom, &n), -ENOENT, "gone: %s", oom);
    free(oom);
}

Test(cgroup, bad_names_are_refused)
{
    need_cgroups();
    char err[256] = "";
    cr_assert_null(cgroup_new("../escape", NULL, err, sizeof err));
    cr_assert(strstr(err, "bad cgroup name"), "%s", err);
    cr_assert_null(cgroup_new("/abs", NULL, err, sizeof err));
    cr_assert_eq(cgroup_remove("../x", true), -EINVAL);
}
