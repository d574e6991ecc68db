/* test_workdirs — recycled attempt directories (agent/workdirs.c).
 *
 * What a task relies on: its four dirs exist, are empty and writable, and
 * hold nothing from an earlier attempt, whether they are new or recycled;
 * a dir a step changed in a way that would follow it (mode, symlink, ACL,
 * a link to its progress file) is removed, not recycled, and nothing
 * outside the attempt dir is touched; a task dir another attempt still
 * uses is never moved. Each test drives the module with a real worker on
 * the default loop, in a temp work dir.
 */
#define DROVER_TEST_AGENT
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "workdirs.h"

#define WAIT_MS 10000

static const char *const subs[] = {"work", "inputs", "outputs", "checkpoint"};

static h_agent_t fx; /* with a worker */
static workdirs_t *wd;
static char *work;

static void setup(void)
{
    h_agent_init(&fx, true);
    work = xasprintf("%s/agent", fx.dir);
    cr_assert_eq(mkdir(work, 0755), 0);
}

static void teardown(void)
{
    if (wd)
        workdirs_close(wd);
    worker_destroy(&fx.worker);
    workdirs_destroy(&wd);
    h_agent_fini(&fx);
    free(work);
}

TestSuite(workdirs, .init = setup, .fini = teardown, .timeout = 60);

static bool idle(void *arg)
{
    return workdirs_busy(wd) == 0;
}

/* Run the loop until the module's jobs are done. */
static void settle(void)
{
    cr_assert(h_pump_until(fx.loop, idle, NULL, WAIT_MS), "jobs still running after %d ms",
              WAIT_MS);
}

static void open_pool(size_t cap)
{
    wd = workdirs_new(work, fx.worker, cap, false);
    cr_assert_not_null(wd);
}

static char *attempt_path(const char *run, const char *task, unsigned n)
{
    return xasprintf("%s/runs/%s/%s/%u", work, run, task, n);
}

/* Make an attempt dir the way the agent does, and the progress file as
 * spot.c makes it. */
static char *make_attempt(const char *run, const char *task, unsigned n)
{
    char *dir = attempt_path(run, task, n);
    cr_assert_eq(workdirs_make(wd, dir, n), 0, "make %s", dir);
    char *p = xasprintf("%s/" WORKDIRS_PROGRESS, dir);
    int fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
    cr_assert_geq(fd, 0);
    fchmod(fd, 0666);
    close(fd);
    free(p);
    return dir;
}

static void release(char *dir)
{
    workdirs_release(wd, xstrdup(dir), true);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    fputs(text, f);
    fclose(f);
    free(p);
}

static char *read_file(const char *path)
{
    char *s = NULL;
    size_t n;
    cr_assert_eq(util_read_file(path, 1 << 20, &s, &n), 0, "read %s", path);
    return s;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* What a task sees in a new attempt dir: the four subdirs, empty, with the
 * mode mkdir gives, writable; the progress file, if there, empty and 0666;
 * nothing else. */
static void assert_fresh(const char *dir)
{
    mode_t mask = umask(0);
    umask(mask);
    size_t want = 4;
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", dir, subs[i]);
        struct stat st;
        cr_assert_eq(lstat(p, &st), 0, "%s missing", p);
        cr_assert(S_ISDIR(st.st_mode), "%s is not a directory", p);
        cr_assert_eq(st.st_mode & 07777, 0755 & ~mask, "%s mode %o", p, st.st_mode & 07777);
        cr_assert_eq(st.st_uid, geteuid());
        cr_assert_eq(count_entries(p), 0, "%s is not empty", p);
        cr_assert_eq(listxattr(p, NULL, 0) > 0 && getxattr(p, "user.mark", NULL, 0) >= 0, false,
                     "%s kept an attribute", p);
        write_file(p, "probe", "x"); /* writable */
        char *f = xasprintf("%s/probe", p);
        unlink(f);
        free(f);
        free(p);
    }
    char *pf = xasprintf("%s/" WORKDIRS_PROGRESS, dir);
    struct stat st;
    if (lstat(pf, &st) == 0) {
        want++;
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq(st.st_size, 0, "progress file not emptied");
        cr_assert_eq(st.st_mode & 07777, 0666);
        cr_assert_eq(st.st_nlink, 1);
    }
    free(pf);
    cr_assert_eq(count_entries(dir), want, "%s holds more than a new attempt dir", dir);
}

/* A step that leaves a bit of everything behind. */
static void dirty(const char *dir, const char *outside)
{
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", dir, subs[i]);
        write_file(p, "secret.txt", "previous run's data");
        char *deep = xasprintf("%s/a/b/c", p);
        cr_assert_eq(util_mkdir_p(deep, 0755), 0);
        write_file(deep, "deep.bin", "more");
        char *ro = xasprintf("%s/a/readonly", p);
        write_file(p, "a/readonly", "r");
        chmod(ro, 0444);
        char *rodir = xasprintf("%s/a/b", p);
        chmod(rodir, 0555); /* a read-only dir with content */
        free(rodir);
        char *ln = xasprintf("%s/link-out", p);
        cr_assert_eq(symlink(outside, ln), 0);
        char *fifo = xasprintf("%s/fifo", p);
        cr_assert_eq(mkfifo(fifo, 0600), 0);
        free(fifo);
        free(ln);
        free(ro);
        free(deep);
        free(p);
    }
    char *pf = xasprintf("%s/" WORKDIRS_PROGRESS, dir);
    FILE *f = fopen(pf, "a");
    fputs("{\"progress\":0.5}\n", f);
    fclose(f);
    free(pf);
    write_file(dir, "stray-file", "x");
    char *sd = xasprintf("%s/stray-dir/x", dir);
    cr_assert_eq(util_mkdir_p(sd, 0755), 0);
    free(sd);
}

/* A directory outside the work dir, with a file, that no cleanup may touch. */
static char *outside_dir(void)
{
    char *o = xasprintf("%s/outside", fx.dir);
    mkdir(o, 0755);
    write_file(o, "keep.txt", "untouched");
    return o;
}

static void assert_outside_intact(const char *o)
{
    char *p = xasprintf("%s/keep.txt", o);
    char *s = read_file(p);
    cr_assert_str_eq(s, "untouched");
    free(s);
    free(p);
}

/* ------------------------------------------------------------ tests */

Test(workdirs, new_attempt_dirs)
{
    open_pool(8);
    char *dir = attempt_path("r", "t", 1);
    cr_assert_eq(workdirs_make(wd, dir, 1), 0);
    assert_fresh(dir);
    cr_assert_eq(workdirs_spares(wd), 0);
    release(dir);
    settle();
    free(dir);
}

Test(workdirs, spare_dir_is_wiped_at_start)
{
    char *junk = xasprintf("%s/spare/7/1/work", work);
    cr_assert_eq(util_mkdir_p(junk, 0755), 0);
    write_file(junk, "old", "from a crashed agent");
    open_pool(8);
    char *spare = xasprintf("%s/spare", work);
    cr_assert_eq(count_entries(spare), 0);
    cr_assert_eq(workdirs_spares(wd), 0);
    free(spare);
    free(junk);
}

Test(workdirs, recycled_dirs_hold_nothing_from_before)
{
    open_pool(8);
    char *o = outside_dir();
    /* Several rounds: each dir goes back to the pool and out again. */
    for (int round = 0; round < 5; round++) {
        char run[32], task[32];
        snprintf(run, sizeof run, "run%d", round);
        snprintf(task, sizeof task, "step[%d]", round);
        char *dir = make_attempt(run, task, 1);
        if (round > 0)
            cr_assert_eq(workdirs_spares(wd), 0, "round %d did not take the spare", round);
        assert_fresh(dir);
        dirty(dir, o);
        release(dir);
        settle();
        cr_assert_eq(workdirs_spares(wd), 1, "round %d: not recycled", round);
        char *task_dir = xasprintf("%s/runs/%s/%s", work, run, task);
        cr_assert_not(exists(task_dir), "round %d: the task dir was not moved", round);
        free(task_dir);
        assert_outside_intact(o);
        free(dir);
    }
    /* The spare is the next attempt's dir. */
    char *dir = attempt_path("last", "t", 1);
    cr_assert_eq(workdirs_make(wd, dir, 1), 0);
    cr_assert_eq(workdirs_spares(wd), 0);
    assert_fresh(dir);
    release(dir);
    settle();
    free(dir);
    free(o);
}

/* Each way a step can change its dirs that would follow them into the
 * next task: the attempt dir is removed instead, and what a link pointed
 * to is left alone. */
typedef enum {
    CHMOD_WORK,
    SYMLINK_OUTPUTS,
    MISSING_CHECKPOINT,
    XATTR_INPUTS,
    CHMOD_ATTEMPT,
} change_t;

static void changed_dir_is_removed(change_t change)
{
    open_pool(8);
    char *o = outside_dir();
    char *dir = make_attempt("r", "t", 1);
    dirty(dir, o);
    char *p = NULL;
    switch (change) {
    case CHMOD_WORK:
        p = xasprintf("%s/work", dir);
        cr_assert_eq(chmod(p, 0777), 0);
        break;
    case SYMLINK_OUTPUTS:
        p = xasprintf("%s/outputs", dir);
        cr_assert_eq(util_rm_rf(p), 0);
        cr_assert_eq(symlink(o, p), 0);
        break;
    case MISSING_CHECKPOINT:
        p = xasprintf("%s/checkpoint", dir);
        cr_assert_eq(util_rm_rf(p), 0);
        break;
    case XATTR_INPUTS:
        p = xasprintf("%s/inputs", dir);
        if (setxattr(p, "user.mark", "1", 1, 0) < 0) {
            cr_log_warn("user xattrs not supported here (%s): case skipped", strerror(errno));
            release(dir);
            settle();
            goto cleanup;
        }
        break;
    case CHMOD_ATTEMPT:
        cr_assert_eq(chmod(dir, 0700), 0);
        break;
    }
    release(dir);
    settle();
    cr_assert_eq(workdirs_spares(wd), 0, "a changed dir was recycled");
    cr_assert_not(exists(dir), "the attempt dir was not removed");
    assert_outside_intact(o);
    cr_assert_eq(count_entries(o), 1);
cleanup:
    free(p);
    free(dir);
    free(o);
}

Test(workdirs, chmod_work_is_not_recycled)
{
    changed_dir_is_removed(CHMOD_WORK);
}

Test(workdirs, symlinked_outputs_is_not_recycled)
{
    changed_dir_is_removed(SYMLINK_OUTPUTS);
}

Test(workdirs, missing_subdir_is_not_recycled)
{
    changed_dir_is_removed(MISSING_CHECKPOINT);
}

Test(workdirs, xattr_is_not_recycled)
{
    changed_dir_is_removed(XATTR_INPUTS);
}

Test(workdirs, chmod_attempt_dir_is_not_recycled)
{
    changed_dir_is_removed(CHMOD_ATTEMPT);
}

/* A progress file with a second link (elsewhere, where the next task's
 * lines would show) is removed, not emptied: the other link keeps its
 * content and the next task gets a new file. */
Test(workdirs, linked_progress_file_is_not_kept)
{
    open_pool(8);
    char *o = outside_dir();
    char *dir = make_attempt("r", "t", 1);
    char *pf = xasprintf("%s/" WORKDIRS_PROGRESS, dir);
    write_file(dir, WORKDIRS_PROGRESS, "line\n");
    char *other = xasprintf("%s/peek", o);
    cr_assert_eq(link(pf, other), 0);
    release(dir);
    settle();
    cr_assert_eq(workdirs_spares(wd), 1);
    char *s = read_file(other);
    cr_assert_str_eq(s, "line\n", "the other link was truncated");
    free(s);
    char *next = attempt_path("r2", "t", 1);
    cr_assert_eq(workdirs_make(wd, next, 1), 0);
    assert_fresh(next);
    char *npf = xasprintf("%s/" WORKDIRS_PROGRESS, next);
    cr_assert_eq(access(npf, F_OK), -1, "a linked progress file was recycled");
    release(next);
    settle();
    free(npf);
    free(next);
    free(other);
    free(pf);
    free(dir);
    free(o);
}

/* Another attempt of the same task still uses the task dir: it is not
 * moved, and the other attempt's dir is untouched. */
Test(workdirs, task_dir_in_use_is_not_moved)
{
    open_pool(8);
    char *one = make_attempt("r", "t", 1);
    char *two = make_attempt("r", "t", 2);
    write_file(two, "work/mine", "attempt 2's");
    release(one);
    settle();
    cr_assert_eq(workdirs_spares(wd), 0);
    cr_assert_not(exists(one), "attempt 1's dir was not removed");
    char *mine = xasprintf("%s/work/mine", two);
    char *s = read_file(mine);
    cr_assert_str_eq(s, "attempt 2's");
    free(s);
    /* The last one out recycles the task dir, renamed to attempt 1. */
    release(two);
    settle();
    cr_assert_eq(workdirs_spares(wd), 1);
    char *task_dir = xasprintf("%s/runs/r/t", work);
    cr_assert_eq(access(task_dir, F_OK), -1);
    char *next = attempt_path("r", "u", 1);
    cr_assert_eq(workdirs_make(wd, next, 1), 0);
    assert_fresh(next);
    release(next);
    settle();
    free(next);
    free(task_dir);
    free(mine);
    free(one);
    free(two);
}

static atomic_bool marker_ran;

static void marker_work(void *arg)
{
    atomic_store(&marker_ran, true);
}

/* An attempt of the same task begins while the first one's dir is being
 * cleaned (after the cleaning job checked the task dir): the task dir is
 * not parked with the new attempt's dir in it. */
Test(workdirs, attempt_made_during_cleaning_keeps_its_dir)
{
    open_pool(8);
    char *one = make_attempt("r", "t", 1);
    release(one);
    /* Jobs run in order: once the marker ran, the cleaning job's work is
     * over, and its done callback waits for the loop. */
    atomic_store(&marker_ran, false);
    worker_submit(fx.worker, marker_work, NULL, NULL);
    int64_t deadline = util_mono_ms() + WAIT_MS;
    while (!atomic_load(&marker_ran) && util_mono_ms() < deadline)
        usleep(1000);
    cr_assert(atomic_load(&marker_ran));
    char *two = make_attempt("r", "t", 2);
    write_file(two, "work/mine", "attempt 2's");
    settle();
    cr_assert_eq(workdirs_spares(wd), 0, "parked while attempt 2 holds it");
    cr_assert_not(exists(one));
    char *mine = xasprintf("%s/work/mine", two);
    char *s = read_file(mine);
    cr_assert_str_eq(s, "attempt 2's");
    free(s);
    release(two);
    settle();
    free(mine);
    free(one);
    free(two);
}

/* A task dir that holds something else (a crashed agent's leftover) is
 * neither recycled nor emptied; a spare is not renamed over it. */
Test(workdirs, task_dir_with_leftovers)
{
    open_pool(8);
    char *a = make_attempt("r", "a", 1);
    release(a);
    settle();
    cr_assert_eq(workdirs_spares(wd), 1);
    char *left = xasprintf("%s/runs/r/t/0/work", work);
    cr_assert_eq(util_mkdir_p(left, 0755), 0);
    write_file(left, "old", "x");
    char *dir = attempt_path("r", "t", 1);
    cr_assert_eq(workdirs_make(wd, dir, 1), 0);
    cr_assert_eq(workdirs_spares(wd), 1, "the spare was used over a non-empty task dir");
    assert_fresh(dir);
    release(dir);
    settle();
    cr_assert_eq(workdirs_spares(wd), 1);
    cr_assert_not(exists(dir));
    char *old = xasprintf("%s/old", left);
    cr_assert_eq(access(old, F_OK), 0, "a leftover was removed");
    free(old);
    free(dir);
    free(left);
    free(a);
}

Test(workdirs, retries_use_new_dirs)
{
    open_pool(8);
    char *a = make_attempt("r", "a", 1);
    release(a);
    settle();
    char *dir = attempt_path("r", "t", 3);
    cr_assert_eq(workdirs_make(wd, dir, 3), 0);
    cr_assert_eq(workdirs_spares(wd), 1);
    assert_fresh(dir);
    release(dir);
    settle();
    cr_assert_eq(workdirs_spares(wd), 2, "a retry's task dir is recycled too");
    free(dir);
    free(a);
}

Test(workdirs, pool_is_capped)
{
    open_pool(2);
    char *dirs[5];
    for (int i = 0; i < 5; i++) {
        char task[16];
        snprintf(task, sizeof task, "t%d", i);
        dirs[i] = make_attempt("r", task, 1);
    }
    for (int i = 0; i < 5; i++)
        release(dirs[i]);
    settle();
    cr_assert_eq(workdirs_spares(wd), 2);
    char *spare = xasprintf("%s/spare", work);
    cr_assert_eq(count_entries(spare), 2);
    for (int i = 0; i < 5; i++) {
        cr_assert_not(exists(dirs[i]), "%s left behind", dirs[i]);
        free(dirs[i]);
    }
    free(spare);
}

Test(workdirs, keep_work_dirs)
{
    wd = workdirs_new(work, fx.worker, 8, true);
    cr_assert_not_null(wd);
    char *dir = make_attempt("r", "t", 1);
    write_file(dir, "work/result", "kept");
    release(dir);
    settle();
    cr_assert_eq(workdirs_spares(wd), 0);
    char *p = xasprintf("%s/work/result", dir);
    cr_assert_eq(access(p, F_OK), 0);
    free(p);
    free(dir);
}

Test(workdirs, closing_only_removes)
{
    open_pool(8);
    char *dir = make_attempt("r", "t", 1);
    workdirs_close(wd);
    release(dir);
    settle();
    cr_assert_eq(workdirs_spares(wd), 0);
    cr_assert_not(exists(dir));
    free(dir);
}

/* Issue 12, defect 5: an attempt whose processes may live on (no cgroup
 * showed them gone) leaves its dir to no one: removed, not recycled. */
Test(workdirs, uncontained_attempt_is_only_removed)
{
    open_pool(8);
    char *dir = make_attempt("r", "t", 1);
    workdirs_release(wd, xstrdup(dir), false);
    settle();
    cr_assert_eq(workdirs_spares(wd), 0, "a dir a leftover may still use was recycled");
    cr_assert_not(exists(dir));
    free(dir);
}
