/* runtime — see runtime.h.
 *
 * This file holds what all drivers share: choosing and probing a driver,
 * the task's life on the loop (status pipe, timeout, SIGTERM → SIGKILL →
 * shim kill escalation, the cleanup child when a shim dies, composing the
 * exit report), and helpers the shims use (rt_run, status lines, the
 * container environment). Plain processes are rt_process.c; the container
 * drivers are rt_oci.c and rt_podman.c.
 *
 * A container task goes: prepare (agent, quick) → shim forked → "started"
 * → shim exits → on_exit. If the shim exits without "done" (killed, or
 * crashed), a cleanup child forked from the agent removes the container,
 * bundle and cgroup, and on_exit follows its exit. Either way on_exit
 * comes once, after nothing is left behind.
 */
#define RT_DRIVER_INTERNAL
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "path.h"
#include "util.h"

#define HARD_KILL_S  10.0 /* after SIGKILL: how long a shim may take to clean up */
#define STATUS_LINE  1024
#define ERRTAIL      4096
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

/* The agent's environment without what systemd gave the agent alone:
 * with NOTIFY_SOCKET, `runc run` waits for a READY from the container
 * (and conmon reports its own MAINPID to the agent's unit). Built once;
 * the agent's environment does not change after start-up. */
char **rt_tool_env(void)
{
    static char **env;
    static const char *const drop[] = {"NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC="};
    if (env)
        return env;
    size_t n = 0;
    while (environ[n])
        n++;
    env = xcalloc(n + 1, sizeof *env);
    for (size_t i = 0, k = 0; i < n; i++) {
        bool keep = true;
        for (size_t d = 0; d < sizeof drop / sizeof *drop; d++)
            keep = keep && strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
        if (keep)
            env[k++] = environ[i];
    }
    return env;
}

/* ------------------------------------------------------------ small helpers */

size_t rt_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

char **rt_strv_dup(char *const *v)
{
    size_t n = rt_strv_len(v);
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

void rt_strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

void rt_strv_push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

/* Set "K=V" in env, replacing an entry with the same key. Takes kv. */
static void env_set(char ***env, size_t *n, char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*env)[i], kv, klen) == 0 && (*env)[i][klen] == '=') {
            free((*env)[i]);
            (*env)[i] = kv;
            return;
        }
    }
    rt_strv_push(env, n, kv);
}

static bool env_has(char *const *env, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, klen) == 0 && env[i][klen] == '=')
            return true;
    return false;
}

void rt_format_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"Ki", "Mi", "Gi", "Ti"};
    int u = -1;
    uint64_t v = n;
    while (v >= 1024 && v % 1024 == 0 && u < 3) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, len, "%" PRIu64, n);
    else
        snprintf(buf, len, "%" PRIu64 "%s", v, units[u]);
}

static bool valid_id(const char *id)
{
    return path_is_component(id, RT_ID_MAX, NULL);
}

/* ------------------------------------------------------------ runtime */

static const rt_driver_t *const drivers[] = {&rt_process_driver, &rt_oci_driver, &rt_podman_driver,
                                             &rt_docker_driver};

/* A short hash of the state dir: scopes names to this agent. */
static char *owner_of(const char *state_dir)
{
    uint8_t md[DIGEST_LEN];
    char hex[DIGEST_HEX_LEN + 1];
    digest_buffer(state_dir, strlen(state_dir), md);
    digest_hex(md, hex);
    return xstrndup(hex, 12);
}

static runtime_t *runtime_alloc(const rt_driver_t *drv, const char *state_dir)
{
    char real[PATH_MAX];
    runtime_t *rt = xcalloc(1, sizeof *rt);
    rt->drv = drv;
    rt->state_dir = xstrdup(realpath(state_dir, real) ? real : state_dir);
    rt->base = xasprintf("%s/runtime", rt->state_dir);
    rt->bundles = xasprintf("%s/bundles", rt->base);
    rt->cache = xasprintf("%s/cache", rt->base);
    rt->oci_root = xasprintf("%s/runc", rt->base);
    rt->owner = owner_of(rt->state_dir);
    rt->cg_parent = xasprintf("drover/%s", rt->owner);
    rt->cg_mode = cgroup_mode(rt->cg_why, sizeof rt->cg_why);
    getrlimit(RLIMIT_NOFILE, &rt->nofile);
    struct rlimit np;
    getrlimit(RLIMIT_NPROC, &np);
    rt->nproc = np.rlim_cur == RLIM_INFINITY ? 1048576 : (unsigned long)np.rlim_cur;
    return rt;
}

static const char *limits_text(const runtime_t *rt)
{
    return rt->cg_mode == CGROUP_V2 ? "cgroup v2" : rt->cg_mode == CGROUP_V1 ? "cgroup v1" : "none";
}

runtime_t *runtime_new(const char *driver, const char *state_dir, char *err, size_t errlen)
{
    if (!driver || !*driver)
        driver = "process";
    if (strcmp(driver, "auto") == 0) {
        char e1[512], e2[512];
        runtime_t *rt = runtime_new("oci", state_dir, e1, sizeof e1);
        if (!rt)
            rt = runtime_new("podman", state_dir, e2, sizeof e2);
        if (!rt)
            rt = runtime_new("process", state_dir, err, errlen);
        return rt;
    }
    const char *colon = strchr(driver, ':');
    size_t nlen = colon ? (size_t)(colon - driver) : strlen(driver);
    const rt_driver_t *drv = NULL;
    for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++)
        if (strlen(drivers[i]->name) == nlen && strncmp(drivers[i]->name, driver, nlen) == 0)
            drv = drivers[i];
    if (!drv || (colon && drv == &rt_process_driver)) {
        snprintf(err, errlen, "unknown runtime '%s' (known: process, oci, podman, docker, auto)",
                 driver);
        return NULL;
    }
    int rc = util_mkdir_p(state_dir, 0755);
    if (rc < 0) {
        snprintf(err, errlen, "%s: mkdir %s: %s", drv->name, state_dir, strerror(-rc));
        return NULL;
    }
    runtime_t *rt = runtime_alloc(drv, state_dir);
    const char *dirs[] = {rt->base, rt->bundles, rt->cache};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        rc = util_mkdir_p(dirs[i], 0700);
        if (rc < 0)
            snprintf(err, errlen, "%s: mkdir %s: %s", drv->name, dirs[i], strerror(-rc));
    }
    if (rc == 0)
        rc = drv->probe(rt, colon ? colon + 1 : NULL, err, errlen);
    if (rc < 0) {
        runtime_destroy(&rt);
        return NULL;
    }
    size_t dl = strlen(rt->describe);
    snprintf(rt->describe + dl, sizeof rt->describe - dl, "%slimits for processes: %s%s%s",
             dl ? "; " : "", limits_text(rt), rt->cg_mode == CGROUP_NONE ? " — " : "",
             rt->cg_mode == CGROUP_NONE ? rt->cg_why : "");
    return rt;
}

const char *runtime_name(const runtime_t *rt)
{
    return rt->drv->name;
}

const char *runtime_describe(const runtime_t *rt)
{
    return rt->describe;
}

bool runtime_can_run_images(const runtime_t *rt)
{
    return rt->drv->images;
}

bool runtime_has_limits(const runtime_t *rt)
{
    return rt->cg_mode != CGROUP_NONE;
}

int runtime_cleanup_orphans(runtime_t *rt)
{
    int count = 0;
    if (rt->drv->orphans)
        count += rt->drv->orphans(rt);
    /* Bundles hold no mounts (those live in each shim's own namespace). */
    DIR *d = opendir(rt->bundles);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "drover-", 7) != 0)
            continue;
        char *p = xasprintf("%s/%s", rt->bundles, e->d_name);
        int rc = util_rm_rf(p);
        if (rc < 0)
            log_warn("cleanup: rm -rf %s: %s", p, strerror(-rc));
        free(p);
    }
    if (d)
        closedir(d);
    if (rt->cg_mode != CGROUP_NONE)
        count += cgroup_remove_children(rt->cg_parent, 3000);
    image_cache_clean(rt->cache);
    return count;
}

void runtime_destroy(runtime_t **rtp)
{
    if (!rtp || !*rtp)
        return;
    runtime_t *rt = *rtp;
    /* Our cgroup parent, if nothing lives there any more (no kill). */
    if (rt->cg_mode != CGROUP_NONE)
        cgroup_remove(rt->cg_parent, false);
    free(rt->state_dir);
    free(rt->base);
    free(rt->bundles);
    free(rt->cache);
    free(rt->oci_root);
    free(rt->owner);
    free(rt->cg_parent);
    free(rt->bin);
    free(rt->bin_runtime);
    free(rt);
    *rtp = NULL;
}

/* ------------------------------------------------------------ shim helpers */

void rt_status(rt_task_t *t, const char *fmt, ...)
{
    char line[STATUS_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    /* One write under PIPE_BUF: atomic. */
    ssize_t w = write(t->status_wfd, line, len);
    (void)w;
}

/* Close every fd from 3 up but those in keep (a forked child must not
 * hold the agent's sockets: a TCP connection would outlive its close). */
static void close_all_but(int *keep, size_t n)
{
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of fds */
        for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int tmp = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = tmp;
        }
    unsigned lo = 3;
    for (size_t i = 0; i <= n; i++) {
        unsigned hi = i < n ? (unsigned)keep[i] : ~0U;
        if (i < n && keep[i] < 3)
            continue;
        if (hi > lo && close_range(lo, hi - 1, 0) < 0) {
            for (unsigned fd = lo; fd < hi && fd < 65536; fd++)
                close((int)fd);
        }
        lo = hi == ~0U ? hi : hi + 1;
    }
}

void rt_shim_setup(rt_task_t *t)
{
    sigset_t set;
    int keep[8];
    size_t n = 0;
    keep[n++] = t->status_wfd;
    if (t->cg)
        n += cgroup_fds(t->cg, keep + n, 7);
    close_all_but(keep, n);
    t->status_rfd = -1;
    signal(SIGPIPE, SIG_IGN);
    /* runner forked us with everything blocked: keep the cancel signals
     * blocked (a SIGTERM sent meanwhile is pending, not lost), free the
     * rest. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_SETMASK, &set, NULL);
}

bool rt_cancelled(void)
{
    sigset_t pending;
    if (sigpending(&pending) < 0)
        return false;
    return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT) ||
           sigismember(&pending, SIGHUP);
}

static void keep_last_line(char *tail, size_t *tlen, const char *data, size_t n)
{
    if (n >= ERRTAIL) {
        data += n - (ERRTAIL - 1);
        n = ERRTAIL - 1;
    }
    if (*tlen + n >= ERRTAIL) {
        size_t drop = *tlen + n - (ERRTAIL - 1);
        memmove(tail, tail + drop, *tlen - drop);
        *tlen -= drop;
    }
    memcpy(tail + *tlen, data, n);
    *tlen += n;
    tail[*tlen] = '\0';
}

static void last_line_of(char *tail, size_t tlen, char *out, size_t outlen)
{
    while (tlen > 0 && (tail[tlen - 1] == '\n' || tail[tlen - 1] == ' ' || tail[tlen - 1] == '\r'))
        tail[--tlen] = '\0';
    char *nl = strrchr(tail, '\n');
    snprintf(out, outlen, "%s", nl ? nl + 1 : tail);
}

int rt_run(char *const *argv, int out_fd, int err_fd, char *capture, size_t caplen, char *errline,
           size_t errlen, int timeout_ms)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc = 0, status = 0;
    pid_t pid = -1;
    char *tail = NULL;
    size_t tlen = 0, clen = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;

    if (errline && errlen)
        errline[0] = '\0';
    if (capture && caplen)
        capture[0] = '\0';
    if ((capture && pipe2(outp, O_CLOEXEC) < 0) || (errline && pipe2(errp, O_CLOEXEC) < 0))
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (capture)
        posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    else if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else if (out_fd == -1)
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (errline)
        posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    else if (err_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    else if (err_fd == -1)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int src = posix_spawnp(&pid, argv[0], &fa, &attr, argv, rt_tool_env());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (outp[1] >= 0)
        close(outp[1]);
    if (errp[1] >= 0)
        close(errp[1]);
    if (src != 0) {
        rc = -src;
        goto cleanup;
    }
    tail = xmalloc(ERRTAIL + 1);
    tail[0] = '\0';
    int64_t end = timeout_ms ? util_mono_ms() + timeout_ms : 0;
    char buf[4096];
    while (outp[0] >= 0 || errp[0] >= 0) {
        struct pollfd p[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
        int wait = -1;
        if (end) {
            int64_t left = end - util_mono_ms();
            if (left <= 0) {
                kill(pid, SIGKILL);
                break;
            }
            wait = (int)left;
        }
        int n = poll(p, 2, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(p[i].fd, buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(p[i].fd);
                if (i == 0)
                    outp[0] = -1;
                else
                    errp[0] = -1;
                continue;
            }
            if (i == 0) {
                size_t take = clen + (size_t)r < caplen ? (size_t)r : caplen - 1 - clen;
                memcpy(capture + clen, buf, take);
                clen += take;
                capture[clen] = '\0';
            } else {
                keep_last_line(tail, &tlen, buf, (size_t)r);
                int tee = err_fd == RT_INHERIT ? 2 : err_fd;
                for (ssize_t off = 0; tee >= 0 && off < r;) {
                    ssize_t w = write(tee, buf + off, (size_t)(r - off));
                    if (w < 0 && errno == EINTR)
                        continue;
                    if (w <= 0)
                        break;
                    off += w;
                }
            }
        }
    }
    if (end && util_mono_ms() >= end)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    rc = status;
    if (errline)
        last_line_of(tail, tlen, errline, errlen);
cleanup:
    if (outp[0] >= 0)
        close(outp[0]);
    if (errp[0] >= 0)
        close(errp[0]);
    free(tail);
    return rc;
}

char *rt_which(const char *name)
{
    const char *path = getenv("PATH");
    char *dirs = xstrdup(path && *path ? path
                                       : "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                         "/usr/bin:/sbin:/bin");
    char *save = NULL, *found = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, name);
        if (access(p, X_OK) == 0)
            found = p;
        else
            free(p);
    }
    free(dirs);
    return found;
}

char *rt_map_path(const rt_task_t *t, const char *path)
{
    size_t n = strlen(t->attempt_dir);
    if (strncmp(path, t->attempt_dir, n) == 0 && (path[n] == '\0' || path[n] == '/'))
        return xasprintf("%s%s", RT_CONTAINER_ROOT, path + n);
    return xstrdup(path);
}

static char *gpu_list(const rt_task_t *t)
{
    char *s = xstrdup("");
    for (size_t i = 0; i < t->spec.n_gpus; i++) {
        char *next = xasprintf("%s%s%d", s, i ? "," : "", t->gpus[i]);
        free(s);
        s = next;
    }
    return s;
}

/* GPU variables: container says whether the step runs in a container
 * (where only its own device nodes exist, so CUDA numbers them from 0 and
 * CUDA_VISIBLE_DEVICES must not name host indexes). */
static void gpu_env(const rt_task_t *t, char ***env, size_t *n, bool container)
{
    if (t->spec.n_gpus == 0 && !t->spec.hide_gpus)
        return;
    char *list = gpu_list(t);
    if (t->spec.n_gpus == 0) {
        if (!container)
            env_set(env, n, xstrdup("CUDA_VISIBLE_DEVICES="));
        env_set(env, n, xstrdup("NVIDIA_VISIBLE_DEVICES=void"));
    } else {
        if (!container)
            env_set(env, n, xasprintf("CUDA_VISIBLE_DEVICES=%s", list));
        env_set(env, n, xasprintf("NVIDIA_VISIBLE_DEVICES=%s", list));
        env_set(env, n, xstrdup("CUDA_DEVICE_ORDER=PCI_BUS_ID"));
    }
    env_set(env, n, xasprintf("DROVER_GPUS=%s", list));
    free(list);
}

char **rt_process_env(const rt_task_t *t)
{
    char **env = rt_strv_dup(t->env);
    size_t n = rt_strv_len(env);
    gpu_env(t, &env, &n, false);
    return env;
}

char **rt_container_env(const rt_task_t *t, const image_config_t *cfg, bool defaults)
{
    char **env = NULL;
    size_t n = 0;
    env = xcalloc(1, sizeof *env);
    for (size_t i = 0; defaults && cfg && cfg->env && cfg->env[i]; i++)
        if (strchr(cfg->env[i], '='))
            env_set(&env, &n, xstrdup(cfg->env[i]));
    if (defaults && !env_has(env, "PATH"))
        env_set(&env, &n, xstrdup(DEFAULT_PATH));
    for (size_t i = 0; t->env && t->env[i]; i++) {
        const char *eq = strchr(t->env[i], '=');
        if (!eq)
            continue;
        char *mapped = rt_map_path(t, eq + 1);
        env_set(&env, &n, xasprintf("%.*s=%s", (int)(eq - t->env[i]), t->env[i], mapped));
        free(mapped);
    }
    gpu_env(t, &env, &n, true);
    if (defaults && !env_has(env, "HOME"))
        env_set(&env, &n, xstrdup("HOME=/root"));
    return env;
}

char **rt_container_argv(const rt_task_t *t, const image_config_t *cfg)
{
    if (t->argv && t->argv[0])
        return rt_strv_dup(t->argv);
    char **v = NULL;
    size_t n = 0;
    for (size_t i = 0; cfg && cfg->entrypoint && cfg->entrypoint[i]; i++)
        rt_strv_push(&v, &n, xstrdup(cfg->entrypoint[i]));
    for (size_t i = 0; cfg && cfg->cmd && cfg->cmd[i]; i++)
        rt_strv_push(&v, &n, xstrdup(cfg->cmd[i]));
    return v;
}

static unsigned chown_uid, chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (lchown(path, chown_uid, chown_gid) < 0)
        log_warn("chown %s: %s", path, strerror(errno));
    return 0;
}

void rt_chown_writable(const rt_task_t *t, unsigned uid, unsigned gid)
{
    static const char *const subs[] = {"work", "outputs", "checkpoint"};
    if (uid == 0 && gid == 0)
        return;
    chown_uid = uid;
    chown_gid = gid;
    if (lchown(t->attempt_dir, uid, gid) < 0)
        log_warn("chown %s: %s", t->attempt_dir, strerror(errno));
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        char *p = xasprintf("%s/%s", t->attempt_dir, subs[i]);
        nftw(p, chown_one, 16, FTW_PHYS);
        free(p);
    }
}

char **rt_gpu_devices(const rt_task_t *t)
{
    char **v = xcalloc(1, sizeof *v);
    size_t n = 0;
    if (t->spec.n_gpus == 0)
        return v;
    for (size_t i = 0; i < t->spec.n_gpus; i++)
        rt_strv_push(&v, &n, xasprintf("/dev/nvidia%d", t->gpus[i]));
    static const char *const shared[] = {"/dev/nvidiactl", "/dev/nvidia-uvm",
                                         "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"};
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++)
        if (access(shared[i], F_OK) == 0)
            rt_strv_push(&v, &n, xstrdup(shared[i]));
    return v;
}

/* ------------------------------------------------------------ task life */

static void task_free(rt_task_t *t);

static void report(rt_task_t *t)
{
    if (t->reported)
        return;
    t->reported = true;
    ev_timer_stop(t->loop, &t->timeout_w);
    ev_timer_stop(t->loop, &t->grace_w);
    ev_timer_stop(t->loop, &t->hard_w);
    ev_timer_stop(t->loop, &t->retry_w);
    ev_io_stop(t->loop, &t->status_w);
    t->spec.on_exit(t->spec.arg, &t->ex);
}

/* Read what the shim wrote (non-blocking). */
static void read_status(rt_task_t *t)
{
    if (t->status_rfd < 0)
        return;
    for (;;) {
        if (t->slen >= sizeof t->sbuf - 1)
            t->slen = 0; /* a runaway line: drop it */
        ssize_t n = read(t->status_rfd, t->sbuf + t->slen, sizeof t->sbuf - 1 - t->slen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0) {
                ev_io_stop(t->loop, &t->status_w);
                close(t->status_rfd);
                t->status_rfd = -1;
            }
            break;
        }
        t->slen += (size_t)n;
        t->sbuf[t->slen] = '\0';
        char *line = t->sbuf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (strncmp(line, "started ", 8) == 0) {
                t->started = true;
                t->ctr_pid = (pid_t)atoi(line + 8);
                if (t->pending_sig && !t->exited)
                    t->rt->drv->deliver(t, t->pending_sig);
            } else if (strncmp(line, "exit ", 5) == 0) {
                t->have_wstatus = true;
                t->wstatus = atoi(line + 5);
            } else if (strncmp(line, "code ", 5) == 0) {
                t->have_code = true;
                t->code = atoi(line + 5);
            } else if (strncmp(line, "oom ", 4) == 0) {
                t->oom = strtoull(line + 4, NULL, 10);
            } else if (strncmp(line, "error ", 6) == 0) {
                snprintf(t->error, sizeof t->error, "%s", line + 6);
            } else if (strcmp(line, "cancelled") == 0) {
                t->cancelled = true;
            } else if (strcmp(line, "done") == 0) {
                t->done = true;
            }
            line = nl + 1;
        }
        t->slen = strlen(line);
        memmove(t->sbuf, line, t->slen + 1);
    }
}

static void on_status(struct ev_loop *loop, ev_io *w, int revents)
{
    read_status(w->data);
}

/* Build the exit report of a container task from what the shim said. */
static void compose(rt_task_t *t, const runner_exit_t *shim)
{
    runner_exit_t *ex = &t->ex;
    const char *reason = t->reason_buf ? t->reason_buf : "";
    char buf[sizeof ex->reason];
    memset(ex, 0, sizeof *ex);
    ex->killed = t->killed;
    ex->timed_out = t->timed_out;
    if (t->have_wstatus) {
        if (WIFSIGNALED(t->wstatus))
            ex->term_signal = WTERMSIG(t->wstatus);
        else
            ex->exit_code = WEXITSTATUS(t->wstatus);
    } else if (t->have_code) {
        /* podman/docker report a signal as 128+n: read it back as a signal
         * only when we sent that signal or the OOM killer did. */
        int c = t->code, sig = c - 128;
        bool ours =
            sig > 0 && sig < 65 &&
            ((t->sent_sig && sig == t->sent_sig) || (sig == SIGKILL && (t->kill_sent || t->oom)) ||
             (sig == SIGTERM && t->term_sent));
        if (ours)
            ex->term_signal = sig;
        else
            ex->exit_code = c;
    } else if (t->error[0]) {
        ex->exit_code = 127;
        reason = t->error;
    } else if (t->cancelled || t->killed || t->timed_out) {
        ex->term_signal = t->kill_sent ? SIGKILL : SIGTERM; /* stopped before it ran */
    } else {
        if (shim && shim->term_signal)
            snprintf(buf, sizeof buf, "container shim killed by signal %d", shim->term_signal);
        else
            snprintf(buf, sizeof buf, "container shim exited with code %d without a result",
                     shim ? shim->exit_code : -1);
        ex->exit_code = 127;
        reason = buf;
    }
    if (t->error[0] && reason != t->error && !reason[0])
        reason = t->error;
    bool failed = ex->exit_code != 0 || ex->term_signal != 0;
    if (t->oom && failed && !t->timed_out) {
        ex->oom_killed = true;
        char lim[32] = "";
        if (t->spec.memory_bytes)
            rt_format_bytes(t->spec.memory_bytes, lim, sizeof lim);
        snprintf(ex->reason, sizeof ex->reason, "OOMKilled: memory limit %s exceeded",
                 lim[0] ? lim : "(none set)");
        return;
    }
    snprintf(ex->reason, sizeof ex->reason, "%s", reason);
}

static void on_cleanup_done(struct ev_loop *loop, ev_child *w, int revents)
{
    rt_task_t *t = w->data;
    ev_child_stop(loop, w);
    report(t);
}

/* Fork a child that runs fn(t) — blocking cleanup work, off the loop — in
 * its own session, with default signals and none of the agent's fds. */
static pid_t fork_cleanup(rt_task_t *t, void (*fn)(rt_task_t *t))
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0)
            log_error("fork (cleanup of %s): %s", t->name, strerror(errno));
        return pid;
    }
    sigset_t none;
    setsid();
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_all_but(NULL, 0);
    fn(t);
    _exit(0);
}

/* In the cleanup child, after the shim was reaped: its container, and the
 * layers it was unpacking when it was killed (.tmp-<digest>-<shim pid>). */
static void driver_cleanup(rt_task_t *t)
{
    t->rt->drv->cleanup(t);
    image_cache_clean(t->rt->cache);
}

static void process_cleanup(rt_task_t *t)
{
    cgroup_remove_wait(t->cg_rel, 5000);
}

static void on_shim_exit(void *arg, const runner_exit_t *shim)
{
    rt_task_t *t = arg;
    t->exited = true;
    read_status(t);
    compose(t, shim);
    if (t->done) {
        report(t);
        return;
    }
    /* The shim did not finish its cleanup: do it in a child, then report. */
    log_warn("container %s: shim ended early (%s); cleaning up", t->name,
             shim->term_signal ? strsignal(shim->term_signal) : "no result");
    pid_t pid = fork_cleanup(t, driver_cleanup);
    if (pid <= 0) {
        report(t);
        return;
    }
    ev_child_init(&t->cleanup_w, on_cleanup_done, pid, 0);
    t->cleanup_w.data = t;
    ev_child_start(t->loop, &t->cleanup_w);
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

/* Send sig to a container task, whatever stage it is in. */
static void deliver(rt_task_t *t, int sig)
{
    if (t->exited)
        return;
    t->sent_sig = sig;
    if (t->started) {
        t->rt->drv->deliver(t, sig);
        return;
    }
    /* Not running yet (unpacking, creating): SIGTERM asks the shim to stop
     * before starting it; SIGKILL kills the shim (the cleanup child removes
     * whatever it had made). */
    t->pending_sig = sig;
    if (sig == SIGKILL)
        runner_kill_now(t->runner);
    else if (t->shim_pid > 0)
        kill(t->shim_pid, SIGTERM);
}

static void on_hard(struct ev_loop *loop, ev_timer *w, int revents)
{
    rt_task_t *t = w->data;
    if (t->exited)
        return;
    log_warn("container %s: still there %.0fs after SIGKILL; killing its shim", t->name,
             HARD_KILL_S);
    runner_kill_now(t->runner);
}

static void send_kill(rt_task_t *t)
{
    if (t->kill_sent || t->exited)
        return;
    t->kill_sent = true;
    deliver(t, SIGKILL);
    if (!t->exited && !ev_is_active(&t->hard_w))
        ev_timer_start(t->loop, &t->hard_w);
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    send_kill(w->data);
}

static void stop_container(rt_task_t *t)
{
    if (t->term_sent || t->exited)
        return;
    t->term_sent = true;
    deliver(t, SIGTERM);
    ev_timer_start(t->loop, &t->grace_w);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    rt_task_t *t = w->data;
    if (t->exited || t->killed)
        return;
    t->timed_out = true;
    free(t->reason_buf);
    t->reason_buf = xasprintf("timeout after %.3gs", (double)t->spec.timeout_ms / 1000.0);
    stop_container(t);
}

static int start_container(rt_task_t *t, char *err, size_t errlen)
{
    runtime_t *rt = t->rt;
    int sp[2];
    if (!rt->drv->images) {
        snprintf(err, errlen, "runtime '%s' cannot run images (image %s)", rt->drv->name,
                 t->image_ref);
        return -ENOTSUP;
    }
    t->container = true;
    t->bundle = xasprintf("%s/%s", rt->bundles, t->name);
    int rc = rt->drv->prepare(t, err, errlen);
    if (rc < 0)
        return rc;
    if (pipe2(sp, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2: %s", strerror(errno));
        return -errno;
    }
    t->status_rfd = sp[0];
    t->status_wfd = sp[1];
    runner_spec_t rs = {.argv = NULL,
                        .envp = rt_tool_env(),
                        .cwd = t->bundle,
                        .on_output = on_output,
                        .on_stdout = t->spec.on_stdout ? on_stdout : NULL,
                        .on_exit = on_shim_exit,
                        .arg = t,
                        .child_fn = rt->drv->shim,
                        .child_arg = t};
    t->runner = runner_start(t->loop, &rs, err, errlen);
    int spawn_errno = errno;
    close(t->status_wfd);
    t->status_wfd = -1;
    if (!t->runner) {
        util_rm_rf(t->bundle);
        if (t->cg_rel && t->cg)
            cgroup_remove(t->cg_rel, true);
        return spawn_errno > 0 ? -spawn_errno : -EIO;
    }
    t->shim_pid = runner_pid(t->runner);
    fcntl(t->status_rfd, F_SETFL, fcntl(t->status_rfd, F_GETFL) | O_NONBLOCK);
    ev_io_init(&t->status_w, on_status, t->status_rfd, EV_READ);
    t->status_w.data = t;
    ev_io_start(t->loop, &t->status_w);
    if (t->spec.timeout_ms)
        ev_timer_start(t->loop, &t->timeout_w);
    return 0;
}

rt_task_t *runtime_start(runtime_t *rt, struct ev_loop *loop, const rt_spec_t *spec, char *err,
                         size_t errlen)
{
    bool image = spec->image && spec->image[0];
    if (!valid_id(spec->id)) {
        snprintf(err, errlen, "bad attempt id '%s' for a container name",
                 spec->id ? spec->id : "(null)");
        errno = EINVAL;
        return NULL;
    }
    if (!spec->attempt_dir || spec->attempt_dir[0] != '/') {
        snprintf(err, errlen, "the attempt dir must be an absolute path");
        errno = EINVAL;
        return NULL;
    }
    if (!image && (!spec->argv || !spec->argv[0])) {
        snprintf(err, errlen, "empty command");
        errno = EINVAL;
        return NULL;
    }
    rt_task_t *t = xcalloc(1, sizeof *t);
    t->rt = rt;
    t->loop = loop;
    t->spec = *spec;
    t->id = xstrdup(spec->id);
    t->name = xasprintf("drover-%s", spec->id);
    t->image_ref = image ? xstrdup(spec->image) : NULL;
    t->attempt_dir = xstrdup(spec->attempt_dir);
    size_t al = strlen(t->attempt_dir);
    while (al > 1 && t->attempt_dir[al - 1] == '/')
        t->attempt_dir[--al] = '\0';
    t->cwd = spec->cwd ? xstrdup(spec->cwd) : xasprintf("%s/work", t->attempt_dir);
    t->user = spec->user && spec->user[0] ? xstrdup(spec->user) : NULL;
    t->argv = spec->argv ? rt_strv_dup(spec->argv) : NULL;
    t->env = rt_strv_dup(spec->envp);
    if (spec->n_gpus) {
        t->gpus = xcalloc(spec->n_gpus, sizeof *t->gpus);
        memcpy(t->gpus, spec->gpus, spec->n_gpus * sizeof *t->gpus);
    }
    t->spec.id = t->id;
    t->spec.image = t->image_ref;
    t->spec.argv = t->argv;
    t->spec.envp = t->env;
    t->spec.attempt_dir = t->attempt_dir;
    t->spec.cwd = t->cwd;
    t->spec.user = t->user;
    t->spec.gpus = t->gpus;
    t->status_rfd = t->status_wfd = -1;
    ev_timer_init(&t->timeout_w, on_timeout, (double)spec->timeout_ms / 1000.0, 0.);
    ev_timer_init(&t->grace_w, on_grace, (double)spec->kill_grace_ms / 1000.0, 0.);
    ev_timer_init(&t->hard_w, on_hard, HARD_KILL_S, 0.);
    t->timeout_w.data = t->grace_w.data = t->hard_w.data = t;
    int rc = image ? start_container(t, err, errlen) : rt_process_start(t, err, errlen);
    if (rc < 0) {
        task_free(t);
        errno = -rc;
        return NULL;
    }
    return t;
}

int rt_task_signal(rt_task_t *t, int sig)
{
    if (t->exited)
        return -ESRCH;
    if (!t->container)
        return kill(-runner_pid(t->runner), sig) < 0 ? -errno : 0;
    deliver(t, sig);
    return 0;
}

void rt_task_kill(rt_task_t *t, const char *reason)
{
    if (t->exited)
        return;
    if (!t->killed && !t->timed_out) {
        t->killed = true;
        free(t->reason_buf);
        t->reason_buf = xstrdup(reason ? reason : "killed");
    }
    if (!t->container) {
        runner_kill(t->runner, reason ? reason : "killed");
        return;
    }
    stop_container(t);
}

void rt_task_kill_now(rt_task_t *t)
{
    if (t->exited)
        return;
    if (!t->container) {
        runner_kill_now(t->runner);
        return;
    }
    send_kill(t);
}

pid_t rt_task_pid(const rt_task_t *t)
{
    if (t->container && t->ctr_pid > 0)
        return t->ctr_pid;
    return t->runner ? runner_pid(t->runner) : -1;
}

const char *rt_task_name(const rt_task_t *t)
{
    return t->name;
}

static void task_free(rt_task_t *t)
{
    ev_timer_stop(t->loop, &t->timeout_w);
    ev_timer_stop(t->loop, &t->grace_w);
    ev_timer_stop(t->loop, &t->hard_w);
    ev_timer_stop(t->loop, &t->retry_w);
    ev_io_stop(t->loop, &t->status_w);
    ev_child_stop(t->loop, &t->cleanup_w);
    runner_destroy(&t->runner);
    if (t->status_rfd >= 0)
        close(t->status_rfd);
    if (t->status_wfd >= 0)
        close(t->status_wfd);
    if (t->rt->drv->free_task && t->container)
        t->rt->drv->free_task(t);
    cgroup_destroy(&t->cg);
    image_destroy(&t->image);
    rt_strv_free(t->argv);
    rt_strv_free(t->env);
    free(t->gpus);
    free(t->id);
    free(t->name);
    free(t->image_ref);
    free(t->attempt_dir);
    free(t->cwd);
    free(t->user);
    free(t->reason_buf);
    free(t->bundle);
    free(t->cg_rel);
    free(t->oom_file);
    free(t);
}

bool rt_task_contained(const rt_task_t *t)
{
    return t->reported && (t->container ? t->done : t->contained);
}

void rt_task_destroy(rt_task_t **tp)
{
    if (!tp || !*tp)
        return;
    rt_task_t *t = *tp;
    if (!t->reported) {
        bool cleaning = ev_is_active(&t->cleanup_w);
        /* Still running (agent shutdown): kill the shim now and let a
         * detached child remove what it leaves. */
        runner_destroy(&t->runner);
        if (t->container && !t->done && !cleaning)
            fork_cleanup(t, driver_cleanup);
        else if (!t->container && t->cg_rel && cgroup_remove(t->cg_rel, true) == -EBUSY)
            fork_cleanup(t, process_cleanup);
    }
    task_free(t);
    *tp = NULL;
}
