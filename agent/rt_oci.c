/* rt_oci — the oci driver: an OCI bundle per attempt, run with runc/crun.
 *
 * Probe: the configured binary, or runc then crun from PATH; each is tried
 * by running /bin/true in a throw-away bundle whose root holds the host's
 * /usr (bind-mounted read-only) with a memory limit, so a runtime that
 * cannot run containers here (crun on a hybrid cgroup host: "cgroups in
 * hybrid mode not supported") is skipped with its message.
 *
 * Per attempt, the agent (prepare) opens the image and makes
 * <bundles>/drover-<id>/{rootfs,upper,work}; the shim (a forked child)
 * then: unpacks missing layers; resolves the user; writes config.json;
 * enters a private mount namespace and mounts an overlay of the layers
 * (upper/work in the bundle) on rootfs — so the mount vanishes with the
 * shim and its container, whatever happens; runs `runc create` (the
 * container's stdio are the step's log pipe; runc's own messages go to
 * runc.log, whose last msg= is the error reported) and `runc start`; waits
 * for the container's first process as its subreaper (the true wait
 * status, signals included); reads the OOM counter of the container's
 * cgroup (cgroupsPath drover/<owner>/drover-<id>, limits from the step in
 * linux.resources); then `runc delete --force` and removes the bundle.
 *
 * config.json: args/env/cwd (/drover/work)/user; root read-only unless
 * writable_rootfs; mounts: proc, /dev, /dev/pts, /dev/shm, mqueue, sysfs
 * and cgroup read-only, a tmpfs /tmp, the attempt dir at /drover and its
 * inputs/ read-only on top, the host's resolv.conf and hosts; namespaces
 * pid, ipc, uts, mount (the host's network); noNewPrivileges; the OCI
 * default capabilities; RLIMIT_NOFILE from the agent; devices denied but
 * the step's /dev/nvidia* nodes.
 */
#define RT_DRIVER_INTERNAL
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

#define PROBE_TIMEOUT_MS 20000
#define CMD_TIMEOUT_MS   60000
#define SHM_DEFAULT      (1ULL << 30)

/* ------------------------------------------------------------ JSON (jansson) */

/* A JSON array of the strings of v (NULL-terminated; NULL = empty), or
 * NULL when one is not valid UTF-8 (jansson refuses it; JSON cannot hold
 * it). */
static json_t *json_strv(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++) {
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Append one mount to the array mounts; opts is comma-separated. 0, or -1
 * when a string is not valid UTF-8. */
static int add_mount(json_t *mounts, const char *dst, const char *type, const char *src,
                     const char *opts)
{
    json_t *o = json_array();
    char *copy = xstrdup(opts), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(tok));
    free(copy);
    return json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:o}", "destination", dst,
                                                   "type", type, "source", src, "options", o));
}

/* Write root (compact, keys in the order built, a final newline) to path,
 * mode 0600. 0 or -errno. */
static int write_json(const char *path, const json_t *root)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc =
        json_dumpfd(root, fd, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0 && write(fd, "\n", 1) == 1
            ? 0
            : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* An rlimit for JSON (whose integers are int64): RLIM_INFINITY and beyond
 * are INT64_MAX. */
static json_int_t rlim_json(rlim_t v)
{
    return (uint64_t)v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

/* ------------------------------------------------------------ driver data */

typedef struct {
    char *config, *pidfile, *logfile, *rootfs, *upper, *work;
} oci_t;

static void oci_free(rt_task_t *t)
{
    oci_t *o = t->drv_data;
    if (!o)
        return;
    free(o->config);
    free(o->pidfile);
    free(o->logfile);
    free(o->rootfs);
    free(o->upper);
    free(o->work);
    free(o);
    t->drv_data = NULL;
}

/* Run `<bin> --root R <args...>` (blocking). */
static int runc(const runtime_t *rt, int out_fd, int err_fd, char *capture, size_t caplen,
                char *errline, size_t errlen, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = rt->bin;
    argv[n++] = "--root";
    argv[n++] = rt->oci_root;
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while (n < 15 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return rt_run(argv, out_fd, err_fd, capture, caplen, errline, errlen, CMD_TIMEOUT_MS);
}

static bool exited_ok(int status)
{
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The message of runc's last log line (text format: msg="..."). */
static void runc_log_msg(const char *logfile, char *out, size_t outlen)
{
    char *text = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (util_read_file(logfile, 1 << 20, &text, &len) < 0)
        return;
    char *last = NULL;
    for (char *p = text; (p = strstr(p, "msg=\"")) != NULL; p += 5)
        last = p + 5;
    if (last) {
        size_t o = 0;
        for (char *p = last; *p && *p != '\n' && o + 1 < outlen; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                out[o++] = *p;
                continue;
            }
            if (*p == '"')
                break;
            out[o++] = *p;
        }
        out[o] = '\0';
    } else {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            text[--len] = '\0';
        char *nl = strrchr(text, '\n');
        snprintf(out, outlen, "%s", nl ? nl + 1 : text);
    }
    free(text);
}

/* ------------------------------------------------------------ config.json */

/* The OCI default capabilities, in bounding, effective and permitted. */
static json_t *default_caps(void)
{
    return json_pack("[s, s, s]", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE");
}

/* "process": args, env, cwd, user, capabilities, RLIMIT_NOFILE. NULL when
 * an argument or variable is not valid UTF-8. */
static json_t *oci_process(rt_task_t *t, const image_config_t *cfg, unsigned uid, unsigned gid)
{
    runtime_t *rt = t->rt;
    char **argv = rt_container_argv(t, cfg);
    char **env = rt_container_env(t, cfg, true);
    char *cwd = rt_map_path(t, t->cwd);
    json_t *p =
        json_pack("{s:b, s:{s:I, s:I}, s:o, s:o, s:s, s:{s:o, s:o, s:o}, s:[{s:s, s:I, s:I}], s:b}",
                  "terminal", 0, "user", "uid", (json_int_t)uid, "gid", (json_int_t)gid, "args",
                  json_strv(argv), "env", json_strv(env), "cwd", cwd, "capabilities", "bounding",
                  default_caps(), "effective", default_caps(), "permitted", default_caps(),
                  "rlimits", "type", "RLIMIT_NOFILE", "hard", rlim_json(rt->nofile.rlim_max),
                  "soft", rlim_json(rt->nofile.rlim_cur), "noNewPrivileges", 1);
    rt_strv_free(argv);
    rt_strv_free(env);
    free(cwd);
    return p;
}

/* "mounts", in the order the runtime mounts them. NULL when a path is not
 * valid UTF-8. */
static json_t *oci_mounts(rt_task_t *t)
{
    json_t *m = json_array();
    char opts[128], *inputs = xasprintf("%s/inputs", t->attempt_dir);
    uint64_t shm = t->spec.memory_bytes ? t->spec.memory_bytes : SHM_DEFAULT;
    int bad = 0;
    bad |= add_mount(m, "/proc", "proc", "proc", "nosuid,noexec,nodev");
    bad |= add_mount(m, "/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k");
    bad |= add_mount(m, "/dev/pts", "devpts", "devpts",
                     "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620");
    snprintf(opts, sizeof opts, "nosuid,noexec,nodev,mode=1777,size=%" PRIu64 "k", shm / 1024);
    bad |= add_mount(m, "/dev/shm", "tmpfs", "shm", opts);
    bad |= add_mount(m, "/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev");
    bad |= add_mount(m, "/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro");
    bad |= add_mount(m, "/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro");
    bad |= add_mount(m, "/tmp", "tmpfs", "tmpfs", "nosuid,nodev,mode=1777");
    bad |= add_mount(m, RT_CONTAINER_ROOT, "bind", t->attempt_dir, "rbind,rw");
    if (access(inputs, F_OK) == 0)
        bad |= add_mount(m, RT_CONTAINER_ROOT "/inputs", "bind", inputs, "rbind,ro");
    if (access("/etc/resolv.conf", F_OK) == 0)
        bad |= add_mount(m, "/etc/resolv.conf", "bind", "/etc/resolv.conf", "rbind,ro");
    if (access("/etc/hosts", F_OK) == 0)
        bad |= add_mount(m, "/etc/hosts", "bind", "/etc/hosts", "rbind,ro");
    free(inputs);
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* "linux": the cgroup and its limits, the step's GPU device nodes (allowed
 * in the device cgroup and created in /dev), namespaces, masked and
 * read-only paths. */
static json_t *oci_linux(rt_task_t *t)
{
    uint32_t pids = t->spec.pids_max ? t->spec.pids_max : RT_DEFAULT_PIDS;
    char **devs = rt_gpu_devices(t);
    json_t *allow = json_array(), *nodes = json_array();
    json_array_append_new(allow, json_pack("{s:b, s:s}", "allow", 0, "access", "rwm"));
    struct stat st;
    for (size_t i = 0; devs[i]; i++) {
        if (stat(devs[i], &st) < 0 || !S_ISCHR(st.st_mode))
            continue;
        json_int_t maj = major(st.st_rdev), min = minor(st.st_rdev);
        json_array_append_new(allow, json_pack("{s:b, s:s, s:I, s:I, s:s}", "allow", 1, "type", "c",
                                               "major", maj, "minor", min, "access", "rwm"));
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:i}", "path",
                                               devs[i], "type", "c", "major", maj, "minor", min,
                                               "fileMode", 0666, "uid", 0, "gid", 0));
    }
    rt_strv_free(devs);
    json_t *res = json_pack("{s:o}", "devices", allow);
    if (t->spec.memory_bytes) {
        /* swap = memory + swap in OCI; equal means none. Only where the
         * kernel accounts swap (v1 memsw), or runc refuses. */
        bool swap = access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0 ||
                    cgroup_unified_only();
        json_t *mem = json_pack("{s:I}", "limit", (json_int_t)t->spec.memory_bytes);
        if (swap)
            json_object_set_new(mem, "swap", json_integer((json_int_t)t->spec.memory_bytes));
        json_object_set_new(res, "memory", mem);
    }
    if (t->spec.cpu_milli) {
        uint64_t quota = (uint64_t)t->spec.cpu_milli * 100;
        json_object_set_new(res, "cpu",
                            json_pack("{s:I, s:I}", "quota",
                                      (json_int_t)(quota < 1000 ? 1000 : quota), "period",
                                      (json_int_t)100000));
    }
    json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)pids));
    char *cgpath = xasprintf("/%s", t->cg_rel);
    json_t *l = json_pack(
        "{s:s, s:o, s:o, s:[{s:s}, {s:s}, {s:s}, {s:s}], s:[s, s, s, s, s, s, s, s, s, s], "
        "s:[s, s, s, s, s]}",
        "cgroupsPath", cgpath, "resources", res, "devices", nodes, "namespaces", "type", "pid",
        "type", "ipc", "type", "uts", "type", "mount", "maskedPaths", "/proc/acpi", "/proc/asound",
        "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
        "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "readonlyPaths", "/proc/bus",
        "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger");
    free(cgpath);
    return l;
}

/* config.json for t (written by the shim, after the user is known). 0,
 * -EILSEQ when an argument, variable or path is not valid UTF-8 (JSON
 * cannot carry it), or -errno from writing. */
static int write_config(rt_task_t *t, unsigned uid, unsigned gid)
{
    oci_t *o = t->drv_data;
    const image_config_t *cfg = image_config(t->image);
    char host[64];
    snprintf(host, sizeof host, "%.63s", t->name);
    json_t *root = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2",
                             "process", oci_process(t, cfg, uid, gid), "root", "path", "rootfs",
                             "readonly", !t->spec.writable_rootfs, "hostname", host, "mounts",
                             oci_mounts(t), "linux", oci_linux(t));
    if (!root)
        return -EILSEQ;
    int rc = write_json(o->config, root);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------ probe */

/* Run /bin/true with bin in a bundle whose root shows the host's /usr. */
static int try_runtime(runtime_t *rt, const char *bin, char *why, size_t whylen)
{
    char *dir = xasprintf("%s/probe-%d", rt->base, (int)getpid());
    char *rootfs = xasprintf("%s/rootfs", dir), *root = xasprintf("%s/state", dir);
    char *name = xasprintf("drover-probe-%d", (int)getpid());
    char *cg = xasprintf("/%s/%s", rt->cg_parent, name);
    json_t *mounts = json_pack("[{s:s, s:s, s:s}]", "destination", "/proc", "type", "proc",
                               "source", "proc"),
           *doc = NULL;
    int rc = -1;
    util_rm_rf(dir);
    if (util_mkdir_p(rootfs, 0755) < 0 || util_mkdir_p(root, 0700) < 0) {
        snprintf(why, whylen, "mkdir %s: %s", rootfs, strerror(errno));
        goto cleanup;
    }
    static const char *const top[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr"};
    for (size_t i = 0; i < sizeof top / sizeof *top; i++) {
        char host[64], link[256];
        struct stat st;
        snprintf(host, sizeof host, "/%s", top[i]);
        if (lstat(host, &st) < 0)
            continue;
        char *in = xasprintf("%s/%s", rootfs, top[i]);
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(host, link, sizeof link - 1);
            if (n > 0) {
                link[n] = '\0';
                if (symlink(link, in) < 0)
                    log_debug("probe: symlink %s: %s", in, strerror(errno));
            }
        } else if (S_ISDIR(st.st_mode)) {
            mkdir(in, 0755);
            add_mount(mounts, host, "bind", host, "rbind,ro");
        }
        free(in);
    }
    doc = json_pack("{s:s, s:{s:b, s:{s:i, s:i}, s:[s], s:[s], s:s, s:b}, s:{s:s, s:b}, s:O, "
                    "s:{s:s, s:{s:{s:I}}, s:[{s:s}, {s:s}, {s:s}, {s:s}]}}",
                    "ociVersion", "1.0.2", "process", "terminal", 0, "user", "uid", 0, "gid", 0,
                    "args", "/bin/true", "env", "PATH=/usr/bin:/bin", "cwd", "/", "noNewPrivileges",
                    1, "root", "path", "rootfs", "readonly", 1, "mounts", mounts, "linux",
                    "cgroupsPath", cg, "resources", "memory", "limit", (json_int_t)67108864,
                    "namespaces", "type", "pid", "type", "mount", "type", "ipc", "type", "uts");
    if (!doc) {
        snprintf(why, whylen, "%s: path is not valid UTF-8", rt->base);
        rc = -1;
        goto cleanup;
    }
    char *config = xasprintf("%s/config.json", dir);
    rc = write_json(config, doc);
    free(config);
    if (rc < 0) {
        snprintf(why, whylen, "write %s/config.json: %s", dir, strerror(-rc));
        goto cleanup;
    }
    char *argv[] = {(char *)bin, "--root", root, "run", "--bundle", dir, name, NULL};
    char line[256];
    int st = rt_run(argv, -1, -1, NULL, 0, line, sizeof line, PROBE_TIMEOUT_MS);
    if (st < 0) {
        snprintf(why, whylen, "%s", strerror(-st));
        rc = -1;
    } else if (!exited_ok(st)) {
        snprintf(why, whylen, "%s", line[0] ? line : "test container failed");
        rc = -1;
    } else {
        rc = 0;
    }
    char *del[] = {(char *)bin, "--root", root, "delete", "--force", name, NULL};
    rt_run(del, -1, -1, NULL, 0, NULL, 0, PROBE_TIMEOUT_MS);
cleanup:
    cgroup_remove_wait(cg + 1, 1000);
    util_rm_rf(dir);
    json_decref(mounts);
    json_decref(doc);
    free(dir);
    free(rootfs);
    free(root);
    free(name);
    free(cg);
    return rc;
}

char *rt_oci_find_runtime(runtime_t *rt, const char *path, const char *const *names, char *why,
                          size_t whylen)
{
    char one[512];
    why[0] = '\0';
    if (path) {
        if (access(path, X_OK) < 0) {
            snprintf(why, whylen, "%s: %s", path, strerror(errno));
            return NULL;
        }
        if (try_runtime(rt, path, one, sizeof one) == 0)
            return xstrdup(path);
        snprintf(why, whylen, "%s: %s", path, one);
        return NULL;
    }
    for (size_t i = 0; names[i]; i++) {
        char *bin = rt_which(names[i]), *msg;
        if (!bin) {
            msg = xasprintf("%s: not found on PATH", names[i]);
        } else if (try_runtime(rt, bin, one, sizeof one) == 0) {
            return bin;
        } else {
            msg = xasprintf("%s: %s", names[i], one);
            free(bin);
        }
        size_t l = strlen(why);
        snprintf(why + l, whylen - l, "%s%.400s", l ? "; " : "", msg);
        free(msg);
    }
    return NULL;
}

static int oci_probe(runtime_t *rt, const char *path, char *err, size_t errlen)
{
    static const char *const names[] = {"runc", "crun", NULL};
    char why[1024];
    if (geteuid() != 0) {
        snprintf(err, errlen, "oci: needs root (the agent runs as uid %d)", (int)geteuid());
        return -EPERM;
    }
    rt->bin = rt_oci_find_runtime(rt, path, names, why, sizeof why);
    if (!rt->bin) {
        snprintf(err, errlen, "oci: no working OCI runtime (%s)", why);
        return -ENOENT;
    }
    snprintf(rt->describe, sizeof rt->describe, "oci (%s, state in %s)", rt->bin, rt->oci_root);
    return util_mkdir_p(rt->oci_root, 0700);
}

/* ------------------------------------------------------------ per attempt */

static bool valid_user(const char *u)
{
    return util_valid_name(u, strlen(u), 64, ":") && u[0] != ':';
}

static int oci_prepare(rt_task_t *t, char *err, size_t errlen)
{
    runtime_t *rt = t->rt;
    t->image = image_open(t->image_ref, rt->cache, err, errlen);
    if (!t->image)
        return -EINVAL;
    if (t->user && !valid_user(t->user)) {
        snprintf(err, errlen, "bad user '%s' (uid[:gid] or name[:group])", t->user);
        return -EINVAL;
    }
    char **argv = rt_container_argv(t, image_config(t->image));
    bool none = !argv || !argv[0];
    rt_strv_free(argv);
    if (none) {
        snprintf(err, errlen,
                 "image %s: the step has no command and the image no entrypoint or "
                 "cmd",
                 t->image_ref);
        return -EINVAL;
    }
    oci_t *o = xcalloc(1, sizeof *o);
    t->drv_data = o;
    o->config = xasprintf("%s/config.json", t->bundle);
    o->pidfile = xasprintf("%s/pid", t->bundle);
    o->logfile = xasprintf("%s/runc.log", t->bundle);
    o->rootfs = xasprintf("%s/rootfs", t->bundle);
    o->upper = xasprintf("%s/upper", t->bundle);
    o->work = xasprintf("%s/work", t->bundle);
    t->cg_rel = xasprintf("%s/%s", rt->cg_parent, t->name);
    t->oom_file = cgroup_oom_file(t->cg_rel);
    util_rm_rf(t->bundle); /* a leftover with this name */
    const char *dirs[] = {o->rootfs, o->upper, o->work};
    for (size_t i = 0; i < 3; i++) {
        int rc = util_mkdir_p(dirs[i], 0755);
        if (rc < 0) {
            snprintf(err, errlen, "mkdir %s: %s", dirs[i], strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static bool state_exists(const rt_task_t *t)
{
    char *p = xasprintf("%s/%s", t->rt->oci_root, t->name);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* Mount the image's layers (overlay) on the bundle's rootfs, in a mount
 * namespace of the shim's own. */
static int mount_rootfs(rt_task_t *t, char *why, size_t whylen)
{
    oci_t *o = t->drv_data;
    if (unshare(CLONE_NEWNS) < 0) {
        snprintf(why, whylen, "unshare(CLONE_NEWNS): %s", strerror(errno));
        return -errno;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        snprintf(why, whylen, "make / private: %s", strerror(errno));
        return -errno;
    }
    bool layered = image_kind(t->image) != IMAGE_ROOTFS_DIR;
    char *lower = image_lowerdirs(t->image, layered);
    char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, o->upper, o->work);
    int rc = 0;
    if (strlen(opts) >= 4000) {
        snprintf(why, whylen, "too many layers for one overlay mount (%zu)",
                 image_layer_count(t->image));
        rc = -E2BIG;
    } else if (layered && chdir(image_layers_dir(t->image)) < 0) {
        rc = -errno;
        snprintf(why, whylen, "chdir %s: %s", image_layers_dir(t->image), strerror(errno));
    } else if (mount("overlay", o->rootfs, "overlay", 0, opts) < 0) {
        rc = -errno;
        snprintf(why, whylen, "mount overlay on %s: %s", o->rootfs, strerror(errno));
    }
    if (chdir(t->bundle) < 0 && rc == 0) {
        rc = -errno;
        snprintf(why, whylen, "chdir %s: %s", t->bundle, strerror(errno));
    }
    free(lower);
    free(opts);
    return rc;
}

static pid_t read_pid(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (util_read_file(path, 64, &text, &len) < 0)
        return -1;
    pid_t pid = (pid_t)atoi(text);
    free(text);
    return pid;
}

static int oci_shim(void *arg)
{
    rt_task_t *t = arg;
    runtime_t *rt = t->rt;
    oci_t *o = t->drv_data;
    char why[768] = "";
    bool created = false, cancel = false;
    int st;

    rt_shim_setup(t);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (rt_cancelled()) {
        cancel = true;
        goto cleanup;
    }
    int rc = image_unpack(t->image, rt_cancelled, why, sizeof why);
    if (rc == -ECANCELED) {
        cancel = true;
        goto cleanup;
    }
    if (rc < 0) {
        rt_status(t, "error %s", why);
        goto cleanup;
    }
    const image_config_t *cfg = image_config(t->image);
    const char *user = t->user ? t->user : cfg->user ? cfg->user : "0";
    unsigned uid = 0, gid = 0;
    if (image_resolve_user(t->image, user, &uid, &gid) < 0) {
        rt_status(t, "error user '%s': not found in the image's /etc/passwd or /etc/group", user);
        goto cleanup;
    }
    rt_chown_writable(t, uid, gid);
    rc = write_config(t, uid, gid);
    if (rc < 0) {
        rt_status(t, "error write %s: %s", o->config, strerror(-rc));
        goto cleanup;
    }
    if (mount_rootfs(t, why, sizeof why) < 0) {
        rt_status(t, "error %s", why);
        goto cleanup;
    }
    if (state_exists(t))
        runc(rt, -1, -1, NULL, 0, NULL, 0, "delete", "--force", t->name, NULL);
    char *argv[] = {rt->bin,    "--root",  rt->oci_root, "--log",    o->logfile, "create",
                    "--bundle", t->bundle, "--pid-file", o->pidfile, t->name,    NULL};
    st = rt_run(argv, RT_INHERIT, RT_INHERIT, NULL, 0, NULL, 0, CMD_TIMEOUT_MS);
    created = true; /* even a failed create may leave state behind */
    if (!exited_ok(st)) {
        runc_log_msg(o->logfile, why, sizeof why);
        rt_status(t, "error %s", why[0] ? why : "runc create failed");
        goto cleanup;
    }
    pid_t pid = read_pid(o->pidfile);
    if (rt_cancelled()) {
        cancel = true;
        goto cleanup;
    }
    char *start[] = {rt->bin, "--root", rt->oci_root, "--log", o->logfile, "start", t->name, NULL};
    st = rt_run(start, -1, -1, NULL, 0, NULL, 0, CMD_TIMEOUT_MS);
    if (!exited_ok(st)) {
        runc_log_msg(o->logfile, why, sizeof why);
        rt_status(t, "error %s", why[0] ? why : "runc start failed");
        goto cleanup;
    }
    rt_status(t, "started %d", (int)pid);
    /* The container's first process was runc's child; runc has exited, so
     * it is ours now (subreaper). */
    int status = 0;
    for (;;) {
        pid_t r = waitpid(-1, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rt_status(t, "error lost track of the container's process (%s)", strerror(errno));
            goto cleanup;
        }
    }
    rt_status(t, "exit %d", status);
    uint64_t ooms = 0;
    if (t->oom_file && cgroup_read_oom_kill(t->oom_file, &ooms) == 0)
        rt_status(t, "oom %" PRIu64, ooms);
    goto cleanup;
cleanup:
    if (cancel)
        rt_status(t, "cancelled");
    if (created || state_exists(t))
        runc(rt, -1, -1, NULL, 0, NULL, 0, "delete", "--force", t->name, NULL);
    umount2(o->rootfs, MNT_DETACH);
    util_rm_rf(t->bundle);
    cgroup_remove_wait(t->cg_rel, 2000);
    rt_status(t, "done");
    _exit(0);
}

static void oci_deliver(rt_task_t *t, int sig)
{
    /* Every process of the container, like a process group; the first
     * process directly if its cgroup could not be read. */
    if (cgroup_signal(t->cg_rel, sig) == 0 && t->ctr_pid > 0)
        kill(t->ctr_pid, sig);
}

static void oci_cleanup(rt_task_t *t)
{
    runtime_t *rt = t->rt;
    runc(rt, -1, -1, NULL, 0, NULL, 0, "kill", t->name, "KILL", NULL);
    runc(rt, -1, -1, NULL, 0, NULL, 0, "delete", "--force", t->name, NULL);
    util_rm_rf(t->bundle);
    if (t->cg_rel)
        cgroup_remove_wait(t->cg_rel, 3000);
}

static int oci_orphans(runtime_t *rt)
{
    char list[16384];
    int count = 0;
    int st = runc(rt, -1, -1, list, sizeof list, NULL, 0, "list", "-q", NULL);
    if (!exited_ok(st))
        return 0;
    char *save = NULL;
    for (char *id = strtok_r(list, "\n", &save); id; id = strtok_r(NULL, "\n", &save)) {
        if (strncmp(id, "drover-", 7) != 0)
            continue;
        st = runc(rt, -1, -1, NULL, 0, NULL, 0, "delete", "--force", id, NULL);
        if (exited_ok(st)) {
            log_info("removed leftover container %s", id);
            count++;
        } else {
            log_warn("runc delete --force %s failed", id);
        }
    }
    return count;
}

const rt_driver_t rt_oci_driver = {
    .name = "oci",
    .images = true,
    .probe = oci_probe,
    .prepare = oci_prepare,
    .shim = oci_shim,
    .deliver = oci_deliver,
    .cleanup = oci_cleanup,
    .orphans = oci_orphans,
    .free_task = oci_free,
};
