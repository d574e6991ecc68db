/* cgroup — see cgroup.h.
 *
 * Hierarchies are read once from /proc/self/mountinfo into a small static
 * table (the agent's mounts do not change under it). A v1 cgroup is a
 * directory in each of the memory, cpu and pids hierarchies; a v2 cgroup
 * is one directory in the unified hierarchy, whose ancestors get the
 * controllers enabled in cgroup.subtree_control on the way down.
 */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "path.h"
#include "util.h"

#define MAX_HIER      32
#define CFS_PERIOD_US 100000
#define MAX_FDS       4

typedef struct {
    char path[PATH_MAX / 4];
    char opts[256]; /* super options of a v1 mount: "rw,memory" */
    bool v2;
} hier_t;

static hier_t hiers[MAX_HIER];
static size_t n_hiers;
static bool scanned;

struct cgroup {
    char *rel;
    cgroup_mode_t mode;
    int procs_fd[MAX_FDS];
    size_t n_procs;
    int oom_efd, oom_ctl_fd; /* v1 OOM notification */
    uint64_t oom_events;     /* v1: eventfd counts read so far */
    char *memory_dir;        /* memory (v1) or unified (v2) directory */
};

/* ------------------------------------------------------------ mounts */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static void scan_mounts(void)
{
    if (scanned)
        return;
    scanned = true;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f) && n_hiers < MAX_HIER) {
        /* id parent dev root mountpoint opts [tags...] - fstype source superopts */
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        char *save = NULL, *field = strtok_r(line, " ", &save);
        char *mnt = NULL;
        for (int i = 0; field && i < 4; i++) {
            field = strtok_r(NULL, " ", &save);
            if (i == 3)
                mnt = field;
        }
        char *fstype = strtok_r(sep + 3, " ", &save);
        strtok_r(NULL, " ", &save); /* source */
        char *super = strtok_r(NULL, " \n", &save);
        if (!mnt || !fstype)
            continue;
        bool v2 = strcmp(fstype, "cgroup2") == 0;
        if (!v2 && strcmp(fstype, "cgroup") != 0)
            continue;
        hier_t *h = &hiers[n_hiers++];
        snprintf(h->path, sizeof h->path, "%s", mnt);
        unescape(h->path);
        snprintf(h->opts, sizeof h->opts, "%s", super ? super : "");
        h->v2 = v2;
    }
    fclose(f);
}

/* The v1 hierarchy with the given controller, or NULL. */
static const hier_t *v1_hier(const char *controller)
{
    scan_mounts();
    size_t len = strlen(controller);
    for (size_t i = 0; i < n_hiers; i++) {
        if (hiers[i].v2)
            continue;
        for (const char *p = hiers[i].opts; (p = strstr(p, controller)) != NULL; p += len) {
            bool start = p == hiers[i].opts || p[-1] == ',';
            bool end = p[len] == '\0' || p[len] == ',';
            if (start && end)
                return &hiers[i];
        }
    }
    return NULL;
}

static const hier_t *v2_hier(void)
{
    scan_mounts();
    for (size_t i = 0; i < n_hiers; i++)
        if (hiers[i].v2)
            return &hiers[i];
    return NULL;
}

/* ------------------------------------------------------------ small file I/O */

static int write_file(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    int rc = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return rc;
}

static int write_at(const char *dir, const char *file, const char *value, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, file);
    int rc = write_file(path, value);
    if (rc < 0)
        snprintf(err, errlen, "write %s to %s: %s", value, path, strerror(-rc));
    free(path);
    return rc;
}

static bool file_exists(const char *dir, const char *file)
{
    char *path = xasprintf("%s/%s", dir, file);
    bool ok = access(path, F_OK) == 0;
    free(path);
    return ok;
}

/* Whether the unified hierarchy offers the memory controller. */
static bool v2_has(const hier_t *u, const char *controller)
{
    char *path = xasprintf("%s/cgroup.controllers", u->path), *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 4096, &text, &len);
    free(path);
    if (rc < 0)
        return false;
    bool found = false;
    char *save = NULL;
    for (char *t = strtok_r(text, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
        if (strcmp(t, controller) == 0)
            found = true;
    free(text);
    return found;
}

cgroup_mode_t cgroup_mode(char *why, size_t whylen)
{
    char dummy[8];
    if (!why) {
        why = dummy;
        whylen = sizeof dummy;
    }
    const hier_t *u = v2_hier();
    if (u && v2_has(u, "memory")) {
        if (access(u->path, W_OK) == 0)
            return CGROUP_V2;
        snprintf(why, whylen, "cgroup v2 at %s is not writable (not root?)", u->path);
        return CGROUP_NONE;
    }
    const hier_t *m = v1_hier("memory");
    if (m) {
        if (access(m->path, W_OK) == 0)
            return CGROUP_V1;
        snprintf(why, whylen, "cgroup v1 memory hierarchy %s is not writable (not root?)", m->path);
        return CGROUP_NONE;
    }
    snprintf(why, whylen, "no cgroup memory controller mounted");
    return CGROUP_NONE;
}

bool cgroup_unified_only(void)
{
    struct stat st;
    /* A pure v2 system mounts cgroup2 on /sys/fs/cgroup itself; hybrid and
     * v1 systems put a tmpfs there. */
    const hier_t *u = v2_hier();
    return u && strcmp(u->path, "/sys/fs/cgroup") == 0 && stat(u->path, &st) == 0;
}

/* ------------------------------------------------------------ creation */

static void format_limits_v1(cgroup_t *cg, const char *mem_dir, const char *cpu_dir,
                             const char *pids_dir, const cgroup_limits_t *lim, int *rc, char *err,
                             size_t errlen)
{
    char v[64];
    if (lim->memory_bytes && mem_dir) {
        snprintf(v, sizeof v, "%" PRIu64, lim->memory_bytes);
        *rc = write_at(mem_dir, "memory.limit_in_bytes", v, err, errlen);
        /* memsw (memory + swap) exists only with swap accounting; equal to
         * the memory limit means no swap at all. */
        if (*rc == 0 && file_exists(mem_dir, "memory.memsw.limit_in_bytes"))
            *rc = write_at(mem_dir, "memory.memsw.limit_in_bytes", v, err, errlen);
    }
    if (*rc == 0 && lim->cpu_milli && cpu_dir) {
        snprintf(v, sizeof v, "%d", CFS_PERIOD_US);
        *rc = write_at(cpu_dir, "cpu.cfs_period_us", v, err, errlen);
        uint64_t quota = (uint64_t)lim->cpu_milli * CFS_PERIOD_US / 1000;
        snprintf(v, sizeof v, "%" PRIu64, quota < 1000 ? 1000 : quota);
        if (*rc == 0)
            *rc = write_at(cpu_dir, "cpu.cfs_quota_us", v, err, errlen);
    }
    if (*rc == 0 && lim->pids_max && pids_dir) {
        snprintf(v, sizeof v, "%u", lim->pids_max);
        *rc = write_at(pids_dir, "pids.max", v, err, errlen);
    }
    (void)cg;
}

static int open_procs(cgroup_t *cg, const char *dir, char *err, size_t errlen)
{
    char *path = xasprintf("%s/cgroup.procs", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC), rc = fd < 0 ? -errno : 0;
    if (fd < 0)
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
    else
        cg->procs_fd[cg->n_procs++] = fd;
    free(path);
    return rc;
}

/* v1: an eventfd that counts OOMs of this memory cgroup (including ones
 * whose victim lives in a child cgroup, which oom_control does not count). */
static int arm_oom_eventfd(cgroup_t *cg, const char *mem_dir, char *err, size_t errlen)
{
    char *path = xasprintf("%s/memory.oom_control", mem_dir), v[64];
    cg->oom_ctl_fd = open(path, O_RDONLY | O_CLOEXEC);
    int e = errno;
    free(path);
    if (cg->oom_ctl_fd < 0) {
        snprintf(err, errlen, "open %s/memory.oom_control: %s", mem_dir, strerror(e));
        return -e;
    }
    cg->oom_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cg->oom_efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -errno;
    }
    snprintf(v, sizeof v, "%d %d", cg->oom_efd, cg->oom_ctl_fd);
    return write_at(mem_dir, "cgroup.event_control", v, err, errlen);
}

static cgroup_t *new_v1(cgroup_t *cg, const cgroup_limits_t *lim, char *err, size_t errlen)
{
    const char *names[3] = {"memory", "cpu", "pids"};
    char *dirs[3] = {NULL, NULL, NULL};
    bool have[3] = {false, false, false};
    int rc = 0;
    /* Without limits the cgroup only keeps track of processes: the pids
     * hierarchy does that at a third of the memory controller's cost. */
    bool track_only = !lim && v1_hier("pids");
    for (int i = 0; i < 3 && rc == 0; i++) {
        const hier_t *h = v1_hier(names[i]);
        if (!h || (track_only && i != 2))
            continue;
        dirs[i] = xasprintf("%s/%s", h->path, cg->rel);
        rc = util_mkdir_p(dirs[i], 0755);
        if (rc < 0) {
            snprintf(err, errlen, "mkdir %s: %s", dirs[i], strerror(-rc));
            break;
        }
        have[i] = true;
        /* cpu and cpuacct may share one hierarchy mounted twice: join each
         * hierarchy once, by path. */
        bool dup = false;
        for (int j = 0; j < i; j++)
            if (have[j] && strcmp(dirs[j], dirs[i]) == 0)
                dup = true;
        if (!dup)
            rc = open_procs(cg, dirs[i], err, errlen);
    }
    if (rc == 0 && !have[0] && !track_only) {
        snprintf(err, errlen, "no cgroup v1 memory hierarchy");
        rc = -ENOENT;
    }
    if (rc == 0 && lim)
        format_limits_v1(cg, have[0] ? dirs[0] : NULL, have[1] ? dirs[1] : NULL,
                         have[2] ? dirs[2] : NULL, lim, &rc, err, errlen);
    if (rc == 0 && have[0])
        cg->memory_dir = xstrdup(dirs[0]);
    if (rc == 0 && lim && lim->memory_bytes)
        rc = arm_oom_eventfd(cg, dirs[0], err, errlen);
    for (int i = 0; i < 3; i++)
        free(dirs[i]);
    if (rc < 0) {
        cgroup_remove(cg->rel, true);
        cgroup_destroy(&cg);
    }
    return cg;
}

static cgroup_t *new_v2(cgroup_t *cg, const cgroup_limits_t *lim, char *err, size_t errlen)
{
    const hier_t *u = v2_hier();
    char *dir = NULL, enable[64] = "", v[64];
    int rc = 0;
    const char *ctl[3] = {"memory", "cpu", "pids"};
    for (int i = 0; i < 3; i++)
        if (v2_has(u, ctl[i]))
            snprintf(enable + strlen(enable), sizeof enable - strlen(enable), "%s+%s",
                     enable[0] ? " " : "", ctl[i]);
    /* Walk down from the root: each ancestor passes the controllers on. */
    dir = xstrdup(u->path);
    const char *p = cg->rel;
    while (rc == 0 && *p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        rc = write_at(dir, "cgroup.subtree_control", enable, err, errlen);
        if (rc < 0)
            break;
        char *next = xasprintf("%s/%.*s", dir, (int)n, p);
        free(dir);
        dir = next;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
        }
        p += n;
        while (*p == '/')
            p++;
    }
    if (rc == 0 && lim && lim->memory_bytes) {
        snprintf(v, sizeof v, "%" PRIu64, lim->memory_bytes);
        rc = write_at(dir, "memory.max", v, err, errlen);
        if (rc == 0 && file_exists(dir, "memory.swap.max"))
            rc = write_at(dir, "memory.swap.max", "0", err, errlen);
    }
    if (rc == 0 && lim && lim->cpu_milli) {
        uint64_t quota = (uint64_t)lim->cpu_milli * CFS_PERIOD_US / 1000;
        snprintf(v, sizeof v, "%" PRIu64 " %d", quota < 1000 ? 1000 : quota, CFS_PERIOD_US);
        rc = write_at(dir, "cpu.max", v, err, errlen);
    }
    if (rc == 0 && lim && lim->pids_max) {
        snprintf(v, sizeof v, "%u", lim->pids_max);
        rc = write_at(dir, "pids.max", v, err, errlen);
    }
    if (rc == 0)
        rc = open_procs(cg, dir, err, errlen);
    if (rc == 0)
        cg->memory_dir = xstrdup(dir);
    free(dir);
    if (rc < 0) {
        cgroup_remove(cg->rel, true);
        cgroup_destroy(&cg);
    }
    return cg;
}

cgroup_t *cgroup_new(const char *rel, const cgroup_limits_t *lim, char *err, size_t errlen)
{
    char why[256];
    cgroup_mode_t mode = cgroup_mode(why, sizeof why);
    if (mode == CGROUP_NONE) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    if (!path_is_safe_relative(rel)) {
        snprintf(err, errlen, "bad cgroup name '%s'", rel);
        return NULL;
    }
    cgroup_t *cg = xcalloc(1, sizeof *cg);
    cg->rel = xstrdup(rel);
    cg->mode = mode;
    cg->oom_efd = cg->oom_ctl_fd = -1;
    return mode == CGROUP_V2 ? new_v2(cg, lim, err, errlen) : new_v1(cg, lim, err, errlen);
}

const char *cgroup_rel(const cgroup_t *cg)
{
    return cg->rel;
}

int cgroup_join(const cgroup_t *cg)
{
    for (size_t i = 0; i < cg->n_procs; i++)
        if (write(cg->procs_fd[i], "0", 1) != 1)
            return -errno;
    return 0;
}

size_t cgroup_fds(const cgroup_t *cg, int *fds, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cg->n_procs && n < max; i++)
        fds[n++] = cg->procs_fd[i];
    if (cg->oom_efd >= 0 && n < max)
        fds[n++] = cg->oom_efd;
    if (cg->oom_ctl_fd >= 0 && n < max)
        fds[n++] = cg->oom_ctl_fd;
    return n;
}

/* ------------------------------------------------------------ OOM */

int cgroup_read_oom_kill(const char *path, uint64_t *count)
{
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 65536, &text, &len);
    if (rc < 0)
        return rc;
    *count = 0;
    for (char *line = text; line && *line;) {
        if (strncmp(line, "oom_kill ", 9) == 0)
            *count = strtoull(line + 9, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    free(text);
    return 0;
}

int cgroup_oom_kills(cgroup_t *cg, uint64_t *count)
{
    *count = 0;
    if (!cg->memory_dir)
        return 0;
    if (cg->mode == CGROUP_V2) {
        char *path = xasprintf("%s/memory.events", cg->memory_dir);
        int rc = cgroup_read_oom_kill(path, count);
        free(path);
        return rc;
    }
    uint64_t n = 0;
    if (cg->oom_efd >= 0 && read(cg->oom_efd, &n, sizeof n) == (ssize_t)sizeof n)
        cg->oom_events += n;
    char *path = xasprintf("%s/memory.oom_control", cg->memory_dir);
    int rc = cgroup_read_oom_kill(path, count);
    free(path);
    if (cg->oom_events > *count)
        *count = cg->oom_events;
    return rc == -ENOENT ? 0 : rc;
}

char *cgroup_oom_file(const char *rel)
{
    if (cgroup_unified_only())
        return xasprintf("/sys/fs/cgroup/%s/memory.events", rel);
    const hier_t *m = v1_hier("memory");
    return m ? xasprintf("%s/%s/memory.oom_control", m->path, rel) : NULL;
}

/* ------------------------------------------------------------ signals, removal */

/* Signal the processes listed in dir/cgroup.procs and below. */
static int signal_tree(const char *dir, int sig, int depth)
{
    char *path = xasprintf("%s/cgroup.procs", dir), *text = NULL;
    size_t len = 0;
    int count = 0;
    int rc = util_read_file(path, 1 << 20, &text, &len);
    free(path);
    if (rc == 0) {
        for (char *p = text; *p;) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (pid > 1 && kill((pid_t)pid, sig) == 0)
                count++;
            p = end;
            while (*p == '\n')
                p++;
        }
        free(text);
    }
    if (depth > 16)
        return count;
    DIR *d = opendir(dir);
    if (!d)
        return count;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        char *sub = xasprintf("%s/%s", dir, e->d_name);
        count += signal_tree(sub, sig, depth + 1);
        free(sub);
    }
    closedir(d);
    return count;
}

int cgroup_signal(const char *rel, int sig)
{
    const hier_t *h[2] = {NULL, NULL};
    if (cgroup_mode(NULL, 0) == CGROUP_V2) {
        h[0] = v2_hier();
    } else { /* a limited cgroup is in memory, a tracking-only one in pids */
        h[0] = v1_hier("memory");
        h[1] = v1_hier("pids");
    }
    for (int i = 0; i < 2; i++) {
        if (!h[i])
            continue;
        char *dir = xasprintf("%s/%s", h[i]->path, rel);
        struct stat st;
        bool there = stat(dir, &st) == 0;
        int n = there ? signal_tree(dir, sig, 0) : 0;
        free(dir);
        if (there)
            return n;
    }
    return 0;
}

static int remove_tree(const char *dir, bool kill_procs, int depth)
{
    int rc = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.' || depth > 16)
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        int r = remove_tree(path, kill_procs, depth + 1);
        free(path);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    if (kill_procs)
        signal_tree(dir, SIGKILL, 17); /* this level only: children were handled */
    if (rmdir(dir) < 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}

int cgroup_remove(const char *rel, bool kill)
{
    scan_mounts();
    if (!path_is_safe_relative(rel))
        return -EINVAL;
    int rc = 0;
    for (size_t i = 0; i < n_hiers; i++) {
        char *dir = xasprintf("%s/%s", hiers[i].path, rel);
        int r = remove_tree(dir, kill, 0);
        free(dir);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return rc;
}

int cgroup_remove_wait(const char *rel, int timeout_ms)
{
    int64_t end = util_mono_ms() + timeout_ms;
    for (;;) {
        int rc = cgroup_remove(rel, true);
        if (rc != -EBUSY || util_mono_ms() >= end)
            return rc;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int cgroup_remove_children(const char *rel, int timeout_ms)
{
    scan_mounts();
    int count = 0;
    for (size_t i = 0; i < n_hiers; i++) {
        char *dir = xasprintf("%s/%s", hiers[i].path, rel);
        DIR *d = opendir(dir);
        free(dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_type != DT_DIR || e->d_name[0] == '.')
                continue;
            char *child = xasprintf("%s/%s", rel, e->d_name);
            if (cgroup_remove_wait(child, timeout_ms) == 0)
                count++;
            free(child);
        }
        closedir(d);
    }
    return count;
}

void cgroup_destroy(cgroup_t **cgp)
{
    if (!cgp || !*cgp)
        return;
    cgroup_t *cg = *cgp;
    for (size_t i = 0; i < cg->n_procs; i++)
        close(cg->procs_fd[i]);
    if (cg->oom_efd >= 0)
        close(cg->oom_efd);
    if (cg->oom_ctl_fd >= 0)
        close(cg->oom_ctl_fd);
    free(cg->memory_dir);
    free(cg->rel);
    free(cg);
    *cgp = NULL;
}
