/* workdirs — see workdirs.h.
 *
 * Recycling, step by step:
 *   release (loop)   a job is queued; it keeps the attempt's hold on the
 *                    task dir until done (holds: a count per task dir).
 *   clean (worker)   the task dir must hold nothing but this attempt's dir;
 *                    the task dir, the attempt dir and its four subdirs must
 *                    look as mkdir made them (isig_t: a directory, not a
 *                    symlink, on the same file system, with the owner,
 *                    group, mode, inode flags and extended attributes, ACLs
 *                    included, of <work>/spare as made at start), and the
 *                    subdirs, once emptied, the size of an empty one.
 *                    Everything in the subdirs and all else in the attempt
 *                    dir is removed, following no symlink and crossing no
 *                    mount, except the progress file, kept emptied when it
 *                    is as the agent made it; the attempt dir is renamed
 *                    "1". Any failure: rm -rf of the attempt dir, as without
 *                    recycling.
 *   done (loop)      the hold is dropped; when no attempt or job holds the
 *                    task dir any more (a retry that began meanwhile has its
 *                    own dir in it) and the pool has room, the task dir is
 *                    renamed spare/<seq> and pushed; else its clean "1" is
 *                    removed.
 *   make (loop)      attempt 1 and a spare: rename spare/<seq> to the task
 *                    dir (which must be absent or empty); else, or when that
 *                    fails, mkdir as before.
 * The renames stay on the loop thread, which is the one that makes attempt
 * dirs, so a task dir is never moved while an attempt is making its dir in
 * it; a rename is one cheap syscall, where the mkdirs it replaces were six.
 *
 * What disqualifies, and why: container runtimes chown the attempt dir and
 * work/outputs/checkpoint to the image's user (rt_chown_writable), so the
 * owner differs; a step may chmod a dir, give it an ACL or a default ACL,
 * chattr it, or swap it for a symlink, and each would follow the dir into
 * the next task. Timestamps and inode numbers are not compared.
 *
 * Known limit: a process that escaped its step's process group and cgroup
 * (the process runtime without limits) could still write into a dir after
 * it was cleaned; it runs as the agent's user, which may write anywhere in
 * the work dir anyway. A container's processes end with its pid namespace.
 */
#include "workdirs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "idmap.h"
#include "log.h"
#include "util.h"

#define XATTR_SIG_MAX 2048
#define MAX_DEPTH     128 /* deeper trees are left to util_rm_rf */
#define MAX_PASSES    4   /* readdir passes until a dir reads empty */
/* Inode flags a file system sets on its own as a dir grows. */
#define FLAGS_IGNORED (FS_EXTENT_FL | FS_INDEX_FL | FS_INLINE_DATA_FL)

static const char *const subdirs[] = {"work", "inputs", "outputs", "checkpoint"};
#define N_SUBDIRS (sizeof subdirs / sizeof *subdirs)

/* What a directory (or the progress file) looks like, as far as a task
 * could tell. */
typedef struct {
    dev_t dev;
    uid_t uid;
    gid_t gid;
    mode_t mode; /* type and permission bits */
    int flags;   /* FS_IOC_GETFLAGS less FLAGS_IGNORED; -1: not supported */
    size_t xlen;
    char x[XATTR_SIG_MAX]; /* extended attributes: name NUL, length, value... */
} isig_t;

struct workdirs {
    char *spare_dir;
    worker_t *worker;
    size_t cap;
    bool keep, closing;
    isig_t ref;       /* <work>/spare as made at start */
    off_t ref_size;   /* ... and its size, empty */
    isig_t ref_file;  /* a progress file as spot.c makes it (probed at start) */
    uint64_t *spares; /* a stack of spare/<seq> ready to take */
    size_t n_spares;
    uint64_t next_seq;
    size_t busy;     /* jobs not done */
    size_t cleaning; /* ... of which recycle */
    idmap_t *holds;  /* hash of a task dir → attempts holding it (a count) */
};

/* A job holds the task dir it touches until done: a task dir is parked
 * only when no job or attempt holds it. */
typedef struct {
    workdirs_t *w;
    char *dir;      /* what to clean or remove */
    char *task_dir; /* recycling: dir's parent; NULL = only remove dir */
    uint64_t key;   /* the task dir's hold; 0 = none (a spare's removal) */
    bool clean;     /* worker: task_dir holds only a clean "1" */
} job_t;

/* ------------------------------------------------------------ holds */

/* FNV-1a; a collision only makes a task dir look held (no recycling). */
static uint64_t hold_key(const char *task_dir)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = task_dir; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return h ? h : 1;
}

static uintptr_t holders(const workdirs_t *w, uint64_t key)
{
    return (uintptr_t)idmap_get(w->holds, key);
}

static void hold(workdirs_t *w, uint64_t key)
{
    idmap_put(w->holds, key, (void *)(holders(w, key) + 1));
}

static void unhold(workdirs_t *w, uint64_t key)
{
    uintptr_t n = holders(w, key);
    if (n > 1)
        idmap_put(w->holds, key, (void *)(n - 1));
    else
        idmap_del(w->holds, key);
}

static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash > path ? xstrndup(path, (size_t)(slash - path)) : xstrdup("/");
}

/* ------------------------------------------------------------ worker side */

static bool is_dot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static int sig_of(int fd, isig_t *s)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    s->dev = st.st_dev;
    s->uid = st.st_uid;
    s->gid = st.st_gid;
    s->mode = st.st_mode;
    int flags = 0;
    s->flags = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 ? flags & ~FLAGS_IGNORED : -1;
    s->xlen = 0;
    char names[XATTR_SIG_MAX];
    ssize_t n = flistxattr(fd, names, sizeof names);
    if (n < 0)
        return errno == ENOTSUP ? 0 : errno == ERANGE ? -E2BIG : -errno;
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
        size_t nl = strlen(names + i) + 1;
        uint32_t vl;
        if (s->xlen + nl + sizeof vl > sizeof s->x)
            return -E2BIG;
        memcpy(s->x + s->xlen, names + i, nl);
        s->xlen += nl;
        char *val = s->x + s->xlen + sizeof vl;
        ssize_t v = fgetxattr(fd, names + i, val, sizeof s->x - s->xlen - sizeof vl);
        if (v < 0)
            return errno == ERANGE ? -E2BIG : -errno;
        vl = (uint32_t)v;
        memcpy(s->x + s->xlen, &vl, sizeof vl);
        s->xlen += sizeof vl + (size_t)v;
    }
    return 0;
}

/* 0 when the inode open at fd looks like ref (as made); -EPERM if not. */
static int check_sig(int fd, const isig_t *ref)
{
    isig_t s;
    int rc = sig_of(fd, &s);
    if (rc < 0)
        return rc;
    if (s.dev != ref->dev || s.uid != ref->uid || s.gid != ref->gid || s.mode != ref->mode ||
        s.flags != ref->flags || s.xlen != ref->xlen || memcmp(s.x, ref->x, s.xlen) != 0)
        return -EPERM;
    return 0;
}

static int remove_entry(int dfd, const char *name, unsigned char type, dev_t dev, int depth);

/* The next entry of d other than "." and "..": 1 with *e set, 0 at the
 * end, or -errno. */
static int next_entry(DIR *d, struct dirent **e)
{
    for (;;) {
        errno = 0;
        *e = readdir(d);
        if (!*e)
            return errno ? -errno : 0;
        if (!is_dot((*e)->d_name))
            return 1;
    }
}

/* Remove everything in d, pass after pass until one reads it empty (an
 * entry removed during readdir must not hide another). */
static int empty_dir(DIR *d, dev_t dev, int depth)
{
    if (depth > MAX_DEPTH)
        return -ELOOP;
    for (int pass = 0;; pass++) {
        size_t seen = 0;
        struct dirent *e;
        int more;
        while ((more = next_entry(d, &e)) > 0) {
            seen++;
            int rc = remove_entry(dirfd(d), e->d_name, e->d_type, dev, depth);
            if (rc < 0)
                return rc;
        }
        if (more < 0)
            return more;
        if (seen == 0)
            return 0;
        if (pass + 1 == MAX_PASSES)
            return -ENOTEMPTY;
        rewinddir(d);
    }
}

/* Open a subdir of dfd: a directory (no symlink followed) on dev. */
static DIR *open_subdir(int dfd, const char *name, dev_t dev, int *rc)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        *rc = -errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != dev) { /* a mount point */
        *rc = -EXDEV;
        close(fd);
        return NULL;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        *rc = -errno;
        close(fd);
    }
    return d;
}

static int remove_entry(int dfd, const char *name, unsigned char type, dev_t dev, int depth)
{
    if (type != DT_DIR && type != DT_UNKNOWN) {
        if (unlinkat(dfd, name, 0) == 0)
            return 0;
        if (errno != EISDIR)
            return -errno;
    }
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0) == 0 ? 0 : -errno;
    if (st.st_dev != dev)
        return -EXDEV;
    int rc = 0;
    DIR *d = open_subdir(dfd, name, dev, &rc);
    if (!d)
        return rc;
    /* A read-only dir of ours (a Go module cache): writable to empty it. */
    if ((st.st_mode & 0300) != 0300 && st.st_uid == geteuid())
        fchmod(dirfd(d), 0700);
    rc = empty_dir(d, dev, depth + 1);
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
        rc = -errno;
    return rc;
}

/* A subdir: as made, emptied, and then the size of an empty dir. */
static int clean_subdir(int dfd, const char *name, const isig_t *ref, off_t ref_size)
{
    int rc = 0;
    DIR *d = open_subdir(dfd, name, ref->dev, &rc);
    if (!d)
        return rc;
    struct stat st;
    rc = check_sig(dirfd(d), ref);
    if (rc == 0)
        rc = empty_dir(d, ref->dev, 0);
    if (rc == 0)
        rc = fstat(dirfd(d), &st) < 0 ? -errno : st.st_size != ref_size ? -EFBIG : 0;
    closedir(d);
    return rc;
}

/* Keep the progress file, emptied, when it is the agent's as made: a
 * regular file with no other link (a link elsewhere would show the next
 * task's lines), owner, mode, flags and attributes unchanged. */
static int keep_progress(int dfd, const char *name, const isig_t *ref)
{
    struct stat st, st2;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        return -EPERM; /* never open a device or fifo */
    int fd = openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &st2) < 0 ? -errno : 0;
    if (rc == 0 && (st2.st_ino != st.st_ino || st2.st_dev != st.st_dev || st2.st_nlink != 1))
        rc = -EPERM;
    if (rc == 0)
        rc = check_sig(fd, ref);
    if (rc == 0 && ftruncate(fd, 0) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int subdir_index(const char *name)
{
    for (size_t i = 0; i < N_SUBDIRS; i++)
        if (strcmp(name, subdirs[i]) == 0)
            return (int)i;
    return -1;
}

/* The attempt dir d: the four subdirs cleaned, the progress file emptied,
 * all else removed. */
static int clean_attempt(DIR *d, const workdirs_t *w)
{
    const isig_t *ref = &w->ref;
    unsigned cleaned = 0;
    bool kept = false;
    for (int pass = 0;; pass++) {
        size_t removed = 0;
        struct dirent *e;
        int more;
        while ((more = next_entry(d, &e)) > 0) {
            int i = subdir_index(e->d_name), rc = 0;
            bool progress = strcmp(e->d_name, WORKDIRS_PROGRESS) == 0;
            if (progress && kept)
                continue;
            if (progress && keep_progress(dirfd(d), e->d_name, &w->ref_file) == 0) {
                kept = true; /* a new inode per attempt is what this module avoids */
            } else if (i < 0) {
                rc = remove_entry(dirfd(d), e->d_name, e->d_type, ref->dev, 0);
                removed++;
            } else if (!(cleaned & 1u << i)) {
                rc = clean_subdir(dirfd(d), e->d_name, ref, w->ref_size);
                cleaned |= 1u << i;
            }
            if (rc < 0)
                return rc;
        }
        if (more < 0)
            return more;
        if (removed == 0)
            break;
        if (pass + 1 == MAX_PASSES)
            return -ENOTEMPTY;
        rewinddir(d);
    }
    return cleaned == (1u << N_SUBDIRS) - 1 ? 0 : -ENOENT;
}

/* 0 when the dir open at fd holds exactly one entry, name. */
static int only_entry(int fd, const char *name)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        int rc = -errno;
        if (dup_fd >= 0)
            close(dup_fd);
        return rc;
    }
    int rc;
    size_t n = 0;
    struct dirent *e;
    while ((rc = next_entry(d, &e)) > 0) {
        if (++n > 1 || strcmp(e->d_name, name) != 0) {
            rc = -ENOTEMPTY;
            break;
        }
    }
    closedir(d);
    return rc == 0 && n != 1 ? -ENOENT : rc;
}

/* Make task_dir a clean skeleton: only 1/ with four empty subdirs. */
static int clean_task(const char *task_dir, const char *name, const workdirs_t *w)
{
    const isig_t *ref = &w->ref;
    int rc = 0;
    DIR *a = NULL;
    int tfd = open(task_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd < 0) {
        rc = -errno;
        goto cleanup;
    }
    rc = check_sig(tfd, ref);
    if (rc == 0)
        rc = only_entry(tfd, name);
    if (rc < 0)
        goto cleanup;
    a = open_subdir(tfd, name, ref->dev, &rc);
    if (!a)
        goto cleanup;
    rc = check_sig(dirfd(a), ref);
    if (rc == 0)
        rc = clean_attempt(a, w);
    if (rc == 0 && strcmp(name, "1") != 0 && renameat(tfd, name, tfd, "1") < 0)
        rc = -errno;
cleanup:
    if (a)
        closedir(a);
    if (tfd >= 0)
        close(tfd);
    return rc;
}

static void job_work(void *arg)
{
    job_t *j = arg;
    if (j->task_dir) {
        const char *name = strrchr(j->dir, '/') + 1;
        int rc = clean_task(j->task_dir, name, j->w);
        if (rc == 0) {
            j->clean = true;
            return;
        }
        log_debug("%s: not recycled: %s", j->dir,
                  rc == -EPERM ? "owner, mode, flags or attributes changed" : strerror(-rc));
    }
    util_rm_rf(j->dir);
}

/* ------------------------------------------------------------ loop side */

static char *spare_path(const workdirs_t *w, uint64_t seq)
{
    return xasprintf("%s/%" PRIu64, w->spare_dir, seq);
}

static void job_done(void *arg);

/* Queue dir's cleaning (task_dir set) or removal. Takes dir and task_dir;
 * the job takes over a hold on key (0: none). */
static void submit(workdirs_t *w, char *dir, char *task_dir, uint64_t key)
{
    job_t *j = xcalloc(1, sizeof *j);
    j->w = w;
    j->dir = dir;
    j->task_dir = task_dir;
    j->key = key;
    w->busy++;
    if (task_dir)
        w->cleaning++;
    worker_submit(w->worker, job_work, job_done, j);
}

/* A clean task dir into the pool, if it has room and nobody holds it. */
static bool park(workdirs_t *w, const job_t *j)
{
    if (w->closing || w->n_spares >= w->cap || holders(w, j->key) > 0)
        return false;
    uint64_t seq = ++w->next_seq;
    char *to = spare_path(w, seq);
    bool ok = rename(j->task_dir, to) == 0;
    if (!ok)
        log_warn("rename(%s, %s): %s", j->task_dir, to, strerror(errno));
    else
        w->spares[w->n_spares++] = seq;
    free(to);
    return ok;
}

static void job_done(void *arg)
{
    job_t *j = arg;
    workdirs_t *w = j->w;
    w->busy--;
    if (j->task_dir)
        w->cleaning--;
    if (j->key)
        unhold(w, j->key);
    if (j->clean && !park(w, j)) {
        char *one = xasprintf("%s/1", j->task_dir);
        if (w->closing) { /* the worker is stopping: queue nothing */
            util_rm_rf(one);
            free(one);
        } else {
            hold(w, j->key);
            submit(w, one, NULL, j->key);
        }
    }
    free(j->dir);
    free(j->task_dir);
    free(j);
}

/* Attempt 1 from a spare: rename it to task_dir. */
static bool take_spare(workdirs_t *w, const char *task_dir)
{
    uint64_t seq = w->spares[--w->n_spares];
    char *from = spare_path(w, seq);
    int rc = rename(from, task_dir) == 0 ? 0 : -errno;
    if (rc == -ENOENT) { /* a new run: make its dir */
        char *run_dir = parent_of(task_dir);
        rc = util_mkdir_p(run_dir, 0755);
        if (rc == 0)
            rc = rename(from, task_dir) == 0 ? 0 : -errno;
        free(run_dir);
    }
    if (rc == -EEXIST || rc == -ENOTEMPTY) { /* the task dir is in use: keep the spare */
        w->spares[w->n_spares++] = seq;
    } else if (rc < 0) {
        log_warn("rename(%s, %s): %s", from, task_dir, strerror(-rc));
        submit(w, from, NULL, 0);
        return false;
    }
    free(from);
    return rc == 0;
}

/* The references: spare/ as made, and a progress file made in it the way
 * spot.c makes one. */
static int probe(workdirs_t *w)
{
    struct stat st;
    int fd = open(w->spare_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : fstat(fd, &st) < 0 ? -errno : sig_of(fd, &w->ref);
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        return rc;
    w->ref_size = st.st_size;
    char *path = xasprintf("%s/" WORKDIRS_PROGRESS, w->spare_dir);
    fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
    rc = fd < 0 || fchmod(fd, 0666) < 0 ? -errno : sig_of(fd, &w->ref_file);
    if (fd >= 0)
        close(fd);
    unlink(path);
    free(path);
    return rc;
}

workdirs_t *workdirs_new(const char *work_dir, worker_t *worker, size_t cap, bool keep)
{
    workdirs_t *w = xcalloc(1, sizeof *w);
    w->spare_dir = xasprintf("%s/spare", work_dir);
    w->worker = worker;
    w->cap = cap;
    w->keep = keep;
    w->spares = xcalloc(cap ? cap : 1, sizeof *w->spares);
    w->holds = idmap_new();
    if (!w->holds)
        goto fail;
    /* Without a clean spare/ (or a reference), attempt dirs are made and
     * removed as before; the agent still runs. */
    const char *what = "rm -rf";
    int rc = util_rm_rf(w->spare_dir);
    if (rc == 0) {
        what = "mkdir";
        rc = mkdir(w->spare_dir, 0755) < 0 ? -errno : 0;
    }
    if (rc == 0) {
        what = "probe"; /* e.g. more extended attributes than an isig_t holds */
        rc = probe(w);
    }
    if (rc < 0) {
        log_warn("%s %s: %s (attempt dirs are not recycled)", what, w->spare_dir, strerror(-rc));
        w->cap = 0;
    }
    return w;
fail:
    workdirs_destroy(&w);
    return NULL;
}

int workdirs_make(workdirs_t *w, const char *dir, uint32_t number)
{
    char *task_dir = parent_of(dir);
    hold(w, hold_key(task_dir));
    bool taken = number == 1 && w->n_spares > 0 && !w->closing && take_spare(w, task_dir);
    free(task_dir);
    if (taken)
        return 0;
    for (size_t i = 0; i < N_SUBDIRS; i++) {
        char *d = xasprintf("%s/%s", dir, subdirs[i]);
        int rc = util_mkdir_p(d, 0755);
        free(d);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void workdirs_release(workdirs_t *w, char *dir, bool contained)
{
    char *task_dir = parent_of(dir);
    uint64_t key = hold_key(task_dir);
    if (w->keep) {
        unhold(w, key);
        free(task_dir);
        free(dir);
        return;
    }
    if (!contained || w->closing || w->n_spares + w->cleaning >= w->cap) {
        free(task_dir);
        task_dir = NULL; /* only remove it */
    }
    submit(w, dir, task_dir, key); /* with the attempt's hold */
}

size_t workdirs_spares(const workdirs_t *w)
{
    return w->n_spares;
}

size_t workdirs_busy(const workdirs_t *w)
{
    return w->busy;
}

void workdirs_close(workdirs_t *w)
{
    w->closing = true;
}

void workdirs_destroy(workdirs_t **wp)
{
    if (!wp || !*wp)
        return;
    workdirs_t *w = *wp;
    idmap_destroy(&w->holds);
    free(w->spares);
    free(w->spare_dir);
    free(w);
    *wp = NULL;
}
