/* rt_podman — the podman and docker drivers: the container engine's CLI.
 *
 * Both CLIs take the same commands, so one file serves both (docker sets
 * rt->is_docker). Probe: `<cli> info` must answer; for podman, its OCI
 * runtime must run a container here (podman defaults to crun, which fails
 * on hybrid cgroup hosts: then `--runtime <runc>` is passed when runc
 * works).
 *
 * Limits: where the engine manages cgroups with cgroupfs and the agent can
 * write the same cgroup layout, the container goes below a cgroup of our
 * own (--cgroup-parent drover/<owner>/drover-<id>) that carries the memory,
 * cpu and pids limits: an OOM there is seen by our counter even where the
 * engine's own OOMKilled flag is not set (podman 4 on cgroup v1), and the
 * cgroup survives the engine's cleanup until we have read it. Otherwise
 * --memory/--memory-swap/--cpus/--pids-limit go to the engine and its
 * State.OOMKilled is used. ulimits are passed explicitly (nofile from the
 * agent, nproc at most 32768): podman's defaults are above what its conmon
 * may grant, and the container then fails to start.
 *
 * The shim: `create` (its stderr captured for a clear error), `start
 * --attach` (the container's stdout/stderr are the log; the CLI's stderr is
 * copied there too and its last line kept), `inspect` for the state, exit
 * code and OOMKilled, then `rm -f`. The engine reports a signal as exit code
 * 128+n: runtime.c reads it back as the signal only when the agent sent it
 * or the OOM killer struck. Signals go through `<cli> kill --signal`.
 * Images: a name as the engine knows it; for podman also a local path —
 * OCI layout (oci:), OCI or docker-save tar (oci-archive:, docker-archive:)
 * or a rootfs directory (--rootfs, overlaid so it stays untouched).
 */
#define RT_DRIVER_INTERNAL
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define CLI_TIMEOUT_MS 120000 /* create may pull or copy an image */
#define NPROC_CAP      32768

typedef struct {
    char **create; /* full argv of `<cli> create ...` */
    char *image_arg;
} cli_t;

static void cli_free(rt_task_t *t)
{
    cli_t *c = t->drv_data;
    if (!c)
        return;
    rt_strv_free(c->create);
    free(c->image_arg);
    free(c);
    t->drv_data = NULL;
}

static bool exited_ok(int status)
{
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static char **cli_argv_va(const runtime_t *rt, const char *first, va_list ap)
{
    char **v = NULL;
    size_t n = 0;
    rt_strv_push(&v, &n, xstrdup(rt->bin));
    if (rt->bin_runtime) {
        rt_strv_push(&v, &n, xstrdup("--runtime"));
        rt_strv_push(&v, &n, xstrdup(rt->bin_runtime));
    }
    for (const char *a = first; a; a = va_arg(ap, const char *))
        rt_strv_push(&v, &n, xstrdup(a));
    return v;
}

/* argv for `<cli> [--runtime X] <args...>` (a NULL-terminated list). */
static char **cli_argv(const runtime_t *rt, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    char **v = cli_argv_va(rt, first, ap);
    va_end(ap);
    return v;
}

/* Run `<cli> <args...>` and wait (blocking: shims, children, start-up). */
static int cli_run(const runtime_t *rt, char *capture, size_t caplen, char *errline, size_t errlen,
                   const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    char **v = cli_argv_va(rt, first, ap);
    va_end(ap);
    int st = rt_run(v, -1, -1, capture, caplen, errline, errlen, CLI_TIMEOUT_MS);
    rt_strv_free(v);
    return st;
}

/* ------------------------------------------------------------ probe */

static int cli_probe(runtime_t *rt, const char *path, bool docker, char *err, size_t errlen)
{
    const char *name = docker ? "docker" : "podman";
    char out[512], line[512], why[1024];
    rt->is_docker = docker;
    rt->bin = path ? xstrdup(path) : rt_which(name);
    if (!rt->bin || access(rt->bin, X_OK) < 0) {
        snprintf(err, errlen, "%s: %s not found%s", name, path ? path : name,
                 path ? "" : " on PATH");
        return -ENOENT;
    }
    const char *fmt = docker ? "{{.DefaultRuntime}}|{{.CgroupDriver}}|{{.CgroupVersion}}"
                             : "{{.Host.OCIRuntime.Name}}|{{.Host.CgroupManager}}|"
                               "{{.Host.CgroupsVersion}}";
    int st = cli_run(rt, out, sizeof out, line, sizeof line, "info", "--format", fmt, NULL);
    if (!exited_ok(st)) {
        snprintf(err, errlen, "%s: '%s info' failed: %s", name, rt->bin,
                 line[0]  ? line
                 : st < 0 ? strerror(-st)
                          : "no message");
        return -EIO;
    }
    out[strcspn(out, "\n")] = '\0';
    char *manager = strchr(out, '|'), *version = NULL;
    if (manager) {
        *manager++ = '\0';
        version = strchr(manager, '|');
        if (version)
            *version++ = '\0';
    }
    if (!docker) {
        /* podman's runtime must work here; else try the other one. */
        const char *names[3] = {out[0] ? out : "crun", NULL, NULL};
        names[1] = strcmp(names[0], "runc") == 0 ? "crun" : "runc";
        char *found = rt_oci_find_runtime(rt, NULL, names, why, sizeof why);
        if (!found) {
            snprintf(err, errlen, "podman: no working OCI runtime (%s)", why);
            return -ENOENT;
        }
        if (strcmp(strrchr(found, '/') + 1, names[0]) != 0)
            rt->bin_runtime = found;
        else
            free(found);
    }
    bool v2 = version && (strcmp(version, "v2") == 0 || strcmp(version, "2") == 0);
    rt->own_cgroup = geteuid() == 0 && manager && strcmp(manager, "cgroupfs") == 0 &&
                     rt->cg_mode == (v2 ? CGROUP_V2 : CGROUP_V1);
    rt->nproc = rt->nproc > NPROC_CAP ? NPROC_CAP : rt->nproc;
    snprintf(rt->describe, sizeof rt->describe, "%s (%s%s%s, cgroups %s %s, limits %s)", name,
             rt->bin, rt->bin_runtime ? ", --runtime " : "", rt->bin_runtime ? rt->bin_runtime : "",
             manager ? manager : "?", version ? version : "?",
             rt->own_cgroup ? "on drover's parent cgroup" : "by the engine");
    return 0;
}

static int podman_probe(runtime_t *rt, const char *path, char *err, size_t errlen)
{
    return cli_probe(rt, path, false, err, errlen);
}

static int docker_probe(runtime_t *rt, const char *path, char *err, size_t errlen)
{
    return cli_probe(rt, path, true, err, errlen);
}

/* ------------------------------------------------------------ prepare */

static bool is_path(const char *ref)
{
    return ref[0] == '/' || strncmp(ref, "./", 2) == 0 || strncmp(ref, "../", 3) == 0;
}

static bool valid_ref(const char *ref)
{
    if (!*ref || ref[0] == '-' || strlen(ref) > 512)
        return false;
    for (const char *p = ref; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

#define PUSH(...) rt_strv_push(&v, &n, xasprintf(__VA_ARGS__))

static int cli_prepare(rt_task_t *t, char *err, size_t errlen)
{
    runtime_t *rt = t->rt;
    const char *name = rt->is_docker ? "docker" : "podman";
    char *rootfs = NULL;
    cli_t *c = xcalloc(1, sizeof *c);
    t->drv_data = c;
    if (strpbrk(t->attempt_dir, ":,")) {
        snprintf(err, errlen, "%s: the attempt dir must not contain ':' or ','", name);
        return -EINVAL;
    }
    if (t->user && !util_valid_name(t->user, strlen(t->user), 64, ":")) {
        snprintf(err, errlen, "bad user '%s' (uid[:gid] or name[:group])", t->user);
        return -EINVAL;
    }
    unsigned uid, gid;
    if (t->user && image_resolve_user(NULL, t->user, &uid, &gid) == 0)
        rt_chown_writable(t, uid, gid); /* numeric only: names are the engine's to resolve */
    if (is_path(t->image_ref)) {
        if (rt->is_docker) {
            snprintf(err, errlen,
                     "docker: local image paths are not supported (%s): docker load "
                     "it and use the image's name, or use the oci runtime",
                     t->image_ref);
            return -ENOTSUP;
        }
        image_t *img = image_open(t->image_ref, NULL, err, errlen);
        if (!img)
            return -EINVAL;
        const char *ref = image_ref(img);
        switch (image_kind(img)) {
        case IMAGE_OCI_DIR:
            c->image_arg = xasprintf("oci:%s", ref);
            break;
        case IMAGE_OCI_TAR:
            c->image_arg = xasprintf("oci-archive:%s", ref);
            break;
        case IMAGE_DOCKER_TAR:
            c->image_arg = xasprintf("docker-archive:%s", ref);
            break;
        case IMAGE_ROOTFS_DIR:
            rootfs = xstrdup(ref);
            break;
        case IMAGE_DOCKER_DIR:
            snprintf(err, errlen,
                     "image %s: podman cannot run an unpacked docker-save directory "
                     "(tar it, or use the oci runtime)",
                     ref);
            image_destroy(&img);
            return -ENOTSUP;
        }
        image_destroy(&img);
        if (rootfs && (!t->argv || !t->argv[0])) {
            snprintf(err, errlen, "image %s: a rootfs directory needs a command", rootfs);
            free(rootfs);
            return -EINVAL;
        }
    } else if (!valid_ref(t->image_ref)) {
        snprintf(err, errlen, "bad image name '%s'", t->image_ref);
        return -EINVAL;
    } else {
        c->image_arg = xstrdup(t->image_ref);
    }
    int rc = util_mkdir_p(t->bundle, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "mkdir %s: %s", t->bundle, strerror(-rc));
        free(rootfs);
        return rc;
    }
    uint32_t pids = t->spec.pids_max ? t->spec.pids_max : RT_DEFAULT_PIDS;
    if (rt->own_cgroup) {
        char why[256];
        cgroup_limits_t lim = {t->spec.memory_bytes, t->spec.cpu_milli, pids};
        t->cg_rel = xasprintf("%s/%s", rt->cg_parent, t->name);
        cgroup_remove(t->cg_rel, true);
        t->cg = cgroup_new(t->cg_rel, &lim, why, sizeof why);
        if (!t->cg) {
            log_warn("%s: limits go to %s instead: cgroup %s: %s", t->name, name, t->cg_rel, why);
            free(t->cg_rel);
            t->cg_rel = NULL;
        }
    }

    char **v = cli_argv(rt, "create", NULL);
    size_t n = rt_strv_len(v);
    PUSH("--name");
    PUSH("%s", t->name);
    PUSH("--label");
    PUSH("drover.owner=%s", rt->owner);
    PUSH("--label");
    PUSH("drover.id=%s", t->id);
    PUSH("--network");
    PUSH("host");
    PUSH("--security-opt");
    PUSH("no-new-privileges");
    PUSH("--cap-drop");
    PUSH("ALL");
    static const char *const caps[] = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
    for (size_t i = 0; i < 3; i++) {
        PUSH("--cap-add");
        PUSH("%s", caps[i]);
    }
    PUSH("--ulimit");
    PUSH("nofile=%" PRIu64 ":%" PRIu64, (uint64_t)rt->nofile.rlim_cur,
         (uint64_t)rt->nofile.rlim_max);
    PUSH("--ulimit");
    PUSH("nproc=%lu:%lu", rt->nproc, rt->nproc);
    PUSH("--log-driver");
    PUSH("none");
    PUSH("-v");
    PUSH("%s:%s", t->attempt_dir, RT_CONTAINER_ROOT);
    char *inputs = xasprintf("%s/inputs", t->attempt_dir);
    if (access(inputs, F_OK) == 0) {
        PUSH("-v");
        PUSH("%s:%s/inputs:ro", inputs, RT_CONTAINER_ROOT);
    }
    free(inputs);
    char *cwd = rt_map_path(t, t->cwd);
    PUSH("--workdir");
    PUSH("%s", cwd);
    free(cwd);
    if (t->user) {
        PUSH("--user");
        PUSH("%s", t->user);
    }
    if (!t->spec.writable_rootfs)
        PUSH("--read-only");
    char **env = rt_container_env(t, NULL, false);
    for (size_t i = 0; env[i]; i++) {
        PUSH("--env");
        PUSH("%s", env[i]);
    }
    rt_strv_free(env);
    char **devs = rt_gpu_devices(t);
    for (size_t i = 0; devs[i]; i++) {
        PUSH("--device");
        PUSH("%s", devs[i]);
    }
    rt_strv_free(devs);
    if (t->cg) {
        PUSH("--cgroup-parent");
        PUSH("/%s", t->cg_rel);
    } else {
        if (t->spec.memory_bytes) {
            PUSH("--memory");
            PUSH("%" PRIu64 "b", t->spec.memory_bytes);
            PUSH("--memory-swap");
            PUSH("%" PRIu64 "b", t->spec.memory_bytes);
        }
        if (t->spec.cpu_milli) {
            PUSH("--cpus");
            PUSH("%u.%03u", t->spec.cpu_milli / 1000, t->spec.cpu_milli % 1000);
        }
    }
    PUSH("--pids-limit");
    PUSH("%u", pids);
    size_t first_arg = 0;
    if (rootfs) {
        PUSH("--rootfs");
        PUSH("%s:O", rootfs); /* an overlay: the directory stays untouched */
    } else {
        if (t->argv && t->argv[0]) {
            PUSH("--entrypoint");
            PUSH("%s", t->argv[0]);
            first_arg = 1;
        }
        PUSH("%s", c->image_arg);
    }
    for (size_t i = first_arg; t->argv && t->argv[i]; i++)
        PUSH("%s", t->argv[i]);
    c->create = v;
    free(rootfs);
    return 0;
}

/* ------------------------------------------------------------ shim */

static void remove_container(rt_task_t *t)
{
    const runtime_t *rt = t->rt;
    if (rt->is_docker)
        cli_run(rt, NULL, 0, NULL, 0, "rm", "-f", t->name, NULL);
    else
        cli_run(rt, NULL, 0, NULL, 0, "rm", "-f", "-t", "0", t->name, NULL);
}

static int cli_shim(void *arg)
{
    rt_task_t *t = arg;
    const runtime_t *rt = t->rt;
    cli_t *c = t->drv_data;
    const char *name = rt->is_docker ? "docker" : "podman";
    char line[512], out[512];
    bool created = false, cancel = false;

    rt_shim_setup(t);
    if (rt_cancelled()) {
        cancel = true;
        goto cleanup;
    }
    int st = rt_run(c->create, -1, -1, NULL, 0, line, sizeof line, CLI_TIMEOUT_MS);
    if (!exited_ok(st) && strstr(line, "already in use")) {
        /* A leftover of ours with this name goes; another agent's stays. */
        char owner[128] = "";
        cli_run(rt, owner, sizeof owner, NULL, 0, "inspect", "--format",
                "{{index .Config.Labels \"drover.owner\"}}", t->name, NULL);
        owner[strcspn(owner, "\n")] = '\0';
        if (strcmp(owner, rt->owner) == 0) {
            remove_container(t);
            st = rt_run(c->create, -1, -1, NULL, 0, line, sizeof line, CLI_TIMEOUT_MS);
        } else {
            snprintf(line, sizeof line,
                     "the name %s is taken by a container this agent does not "
                     "own (drover.owner=%s)",
                     t->name, owner[0] ? owner : "none");
        }
    }
    if (!exited_ok(st)) {
        rt_status(t, "error %s create: %s", name, line[0] ? line : "failed");
        goto cleanup;
    }
    created = true;
    if (rt_cancelled()) {
        cancel = true;
        goto cleanup;
    }
    rt_status(t, "started 0");
    char **start = cli_argv(rt, "start", "--attach", t->name, NULL);
    st = rt_run(start, RT_INHERIT, RT_INHERIT, NULL, 0, line, sizeof line, 0);
    rt_strv_free(start);
    char *fmt = "{{.State.Status}}|{{.State.ExitCode}}|{{.State.OOMKilled}}";
    int ist = cli_run(rt, out, sizeof out, NULL, 0, "inspect", "--format", fmt, t->name, NULL);
    /* `start --attach` can return before the engine has recorded the exit
     * (podman 4 under load: "getting exit code ... from DB"), and `wait`
     * can hang the same way: look again for up to 30 s. Where the container
     * ran in our cgroup and nothing is left there, the engine will never
     * record it (its conmon was killed with the container, by the memory
     * limit): then our own OOM counter and SIGKILL say what happened. */
    bool gone = false;
    for (int i = 0; i < 150 && exited_ok(ist) && strncmp(out, "exited|", 7) != 0 &&
                    strncmp(out, "stopped|", 8) != 0;
         i++) {
        uint64_t own = 0;
        if (t->cg && cgroup_signal(t->cg_rel, 0) == 0 && cgroup_oom_kills(t->cg, &own) == 0 &&
            own > 0) {
            gone = true;
            snprintf(out, sizeof out, "exited|%d|true", 128 + SIGKILL);
            break;
        }
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
        ist = cli_run(rt, out, sizeof out, NULL, 0, "inspect", "--format", fmt, t->name, NULL);
    }
    char *code = strchr(out, '|'), *oom = code ? strchr(code + 1, '|') : NULL;
    if (!gone && (!exited_ok(ist) || !code || !oom)) {
        rt_status(t, "error %s inspect %s failed after start (exit status %d): %s", name, t->name,
                  st, line);
        goto cleanup;
    }
    *code++ = '\0';
    *oom++ = '\0';
    if (strcmp(out, "exited") != 0 && strcmp(out, "stopped") != 0) {
        rt_status(t, "error %s start: %s", name, line[0] ? line : "the container did not run");
        goto cleanup;
    }
    rt_status(t, "code %d", atoi(code));
    uint64_t ooms = strncmp(oom, "true", 4) == 0 ? 1 : 0, own = 0;
    if (t->cg && cgroup_oom_kills(t->cg, &own) == 0 && own > ooms)
        ooms = own;
    rt_status(t, "oom %" PRIu64, ooms);
    goto cleanup;
cleanup:
    if (cancel)
        rt_status(t, "cancelled");
    if (created)
        remove_container(t);
    if (t->cg_rel)
        cgroup_remove_wait(t->cg_rel, 3000);
    util_rm_rf(t->bundle);
    rt_status(t, "done");
    _exit(0);
}

/* `<cli> kill --signal N name`, not waited for (libev reaps it). */
static void cli_deliver(rt_task_t *t, int sig)
{
    char signum[16];
    snprintf(signum, sizeof signum, "%d", sig);
    char **argv = cli_argv(t->rt, "kill", "--signal", signum, t->name, NULL);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, rt_tool_env());
    if (rc != 0)
        log_warn("%s kill %s: %s", t->rt->bin, t->name, strerror(rc));
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    rt_strv_free(argv);
}

static void cli_cleanup(rt_task_t *t)
{
    remove_container(t);
    if (t->cg_rel)
        cgroup_remove_wait(t->cg_rel, 3000);
    util_rm_rf(t->bundle);
}

static int cli_orphans(runtime_t *rt)
{
    char list[16384], filter[64];
    int count = 0;
    snprintf(filter, sizeof filter, "label=drover.owner=%s", rt->owner);
    int st = cli_run(rt, list, sizeof list, NULL, 0, "ps", "-a", "--filter", filter, "--format",
                     "{{.Names}}", NULL);
    if (!exited_ok(st))
        return 0;
    char *save = NULL;
    for (char *name = strtok_r(list, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
        if (strncmp(name, "drover-", 7) != 0)
            continue;
        if (rt->is_docker)
            st = cli_run(rt, NULL, 0, NULL, 0, "rm", "-f", name, NULL);
        else
            st = cli_run(rt, NULL, 0, NULL, 0, "rm", "-f", "-t", "0", name, NULL);
        if (exited_ok(st)) {
            log_info("removed leftover container %s", name);
            count++;
        }
    }
    return count;
}

const rt_driver_t rt_podman_driver = {
    .name = "podman",
    .images = true,
    .probe = podman_probe,
    .prepare = cli_prepare,
    .shim = cli_shim,
    .deliver = cli_deliver,
    .cleanup = cli_cleanup,
    .orphans = cli_orphans,
    .free_task = cli_free,
};

const rt_driver_t rt_docker_driver = {
    .name = "docker",
    .images = true,
    .probe = docker_probe,
    .prepare = cli_prepare,
    .shim = cli_shim,
    .deliver = cli_deliver,
    .cleanup = cli_cleanup,
    .orphans = cli_orphans,
    .free_task = cli_free,
};
