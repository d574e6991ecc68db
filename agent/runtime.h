/* runtime — how a step attempt runs: a plain process, or a container.
 *
 * One small API over four drivers, chosen per agent (--runtime):
 *   process  today's runner: a process group on the host; resources.memory,
 *            cpu and pids become cgroup limits where cgroups (v1 or v2) are
 *            writable, and an OOM kill is reported as OOMKilled;
 *   oci      an OCI bundle per attempt run with runc or crun (whichever is
 *            configured, "oci:/usr/sbin/runc", or found and working here);
 *   podman   the podman CLI; docker: the docker CLI (same shape).
 * Every driver also runs plain steps (no image) as processes, so an agent
 * needs one runtime_t; runtime_can_run_images() is what it advertises.
 *
 * A container attempt is run by a shim: a child forked from the agent
 * (runner.h's child_fn) that does the blocking work off the loop — image
 * unpack into the per-digest cache (image.h), overlay mount of the layers
 * in a private mount namespace (so no mount outlives it), `runc create` +
 * `runc start` (it is the container's subreaper, so the real wait status,
 * signal included, comes back) or `podman create` + `podman start
 * --attach` + `podman inspect`, then removal of the container, bundle and
 * cgroup — and reports over a status pipe ("started <pid>", "exit <wait
 * status>", "oom <n>", "error <why>", "done"). The container's stdout and
 * stderr are the runner's pipe, so logs stream as for processes; on_exit
 * comes after the shim has removed everything. Signals go straight to
 * the container's processes (oci: every pid of its cgroup; podman/docker:
 * `<cli> kill`), SIGTERM first, SIGKILL after the grace period; should a
 * shim die, a cleanup child removes what it left before on_exit.
 *
 * Names and places: container "drover-<id>", cgroup
 * "drover/<owner>/drover-<id>" (owner = a hash of the state dir, so two
 * agents on one host never touch each other's), runc state in
 * <state>/runtime/runc (`runc --root <state>/runtime/runc list`), bundles in
 * <state>/runtime/bundles, layers in <state>/runtime/cache, podman/docker
 * containers labelled drover.owner=<owner>. runtime_cleanup_orphans()
 * removes all of these at agent start. Containers run with the host's
 * network, a read-only root by default, no new privileges, the OCI default
 * capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE), the attempt dir at
 * /drover (inputs read-only) and the agent's RLIMIT_NOFILE.
 */
#ifndef DROVER_RUNTIME_H
#define DROVER_RUNTIME_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runner.h"

#define RT_DEFAULT_PIDS   4096      /* containers, when the step sets none */
#define RT_CONTAINER_ROOT "/drover" /* the attempt dir inside a container */
#define RT_ID_MAX         64

typedef struct runtime runtime_t;
typedef struct rt_task rt_task_t;

typedef struct {
    /* Unique attempt id, 1..RT_ID_MAX of [A-Za-z0-9_.-]: the container is
     * "drover-<id>" (pass e.g. the attempt id; add the agent name when
     * several agents share one podman). */
    const char *id;
    /* NULL or "" runs a plain process. Otherwise oci: a path to a rootfs
     * directory, an OCI layout (dir or tar) or a docker-save tar; podman: an
     * image name or one of those paths; docker: an image name. */
    const char *image;
    /* NULL-terminated. For an image, NULL or empty runs the image's
     * entrypoint + cmd. argv[0] is looked up in PATH (the image's PATH in
     * a container). */
    char *const *argv;
    /* NULL-terminated "K=V". Pass the DROVER_* variables with host paths:
     * in a container, any value under attempt_dir is rewritten to
     * /drover/..., and variables are laid over the image's Env (so do not
     * pass the agent's PATH/HOME to an image step). */
    char *const *envp;
    const char *attempt_dir; /* host dir holding work/ inputs/ outputs/ checkpoint/ */
    const char *cwd;         /* NULL = attempt_dir/work (/drover/work in a container) */
    const char *user;        /* containers: "uid[:gid]" or "name[:group]"; NULL = image's */
    uint32_t cpu_milli;      /* 0 = no cpu limit */
    uint64_t memory_bytes;   /* 0 = no memory limit */
    uint32_t pids_max;       /* 0 = none for processes, RT_DEFAULT_PIDS for containers */
    const int *gpus;         /* host GPU indexes allocated to the step (gpu.h) */
    size_t n_gpus;
    bool hide_gpus;         /* on a GPU node, a step given none must see none */
    bool writable_rootfs;   /* containers: default is a read-only root */
    uint64_t timeout_ms;    /* 0 = none */
    uint64_t kill_grace_ms; /* SIGTERM → SIGKILL delay */
    void (*on_output)(void *arg, const uint8_t *data, size_t len);
    /* Optional: the step's standard output alone, as read (also passed to
     * on_output): runner.h's on_stdout. A container's is what its runtime
     * writes to its own stdout (the container's, for runc/crun/podman). */
    void (*on_stdout)(void *arg, const uint8_t *data, size_t len);
    /* Exactly once per started task. exit->oom_killed is set (and reason is
     * "OOMKilled: memory limit 64Mi exceeded") when the memory limit killed
     * the step; exit_code 127 with a reason when it could not start (bad
     * image, runtime error). */
    void (*on_exit)(void *arg, const runner_exit_t *exit);
    void *arg;
} rt_spec_t;

/* Make a runtime. driver: "process", "oci" (runc or crun from PATH,
 * whichever works here), "oci:/path/to/runc", "podman", "docker" (or
 * "podman:/path", "docker:/path"), or "auto" (oci, else podman, else
 * process). state_dir is the agent's work dir (bundles, runc state, image
 * cache live below it). Probes the driver (runs a tiny container with the
 * host's /usr for oci, `podman info` for podman): call at agent start, not
 * from the loop. NULL with err set when unusable, e.g. "unknown runtime
 * 'foo' (known: process, oci, podman, docker, auto)" or "oci: no working
 * OCI runtime (runc: ...; crun: cgroups in hybrid mode not supported...)". */
runtime_t *runtime_new(const char *driver, const char *state_dir, char *err, size_t errlen);

/* "process", "oci", "podman" or "docker". */
const char *runtime_name(const runtime_t *rt);

/* One line for the agent's start-up log: "oci (/usr/sbin/runc, state in
 * /var/lib/drover-agent/runtime/runc); limits for processes: cgroup v1". */
const char *runtime_describe(const runtime_t *rt);

/* Whether steps with an image can run here (all drivers but process). */
bool runtime_can_run_images(const runtime_t *rt);

/* Whether memory/cpu/pids limits are enforced for plain processes. */
bool runtime_has_limits(const runtime_t *rt);

/* Remove what a previous agent process on this state dir left: drover-*
 * containers (killed), bundles, cgroups (their processes killed), unpack
 * leftovers. Blocking (runs the runtime's CLI): call at start, before
 * running steps. Returns how many containers and cgroups were removed. */
int runtime_cleanup_orphans(runtime_t *rt);

/* Start an attempt on the loop (libev's default loop: exits are seen with
 * ev_child). Returns the task, or NULL when it could not start, with err
 * set ("image /x/y.tar: not an OCI layout or docker-save archive (no
 * index.json or manifest.json)", "runtime 'process' cannot run images",
 * "cannot run 'foo': No such file or directory") and errno saying why
 * (ENOENT for a missing command, EAGAIN or ENOMEM when the machine could
 * not make a process: util_errno_is_system); callbacks are not called
 * then. Some failures are only known in the shim (a corrupt layer, an
 * executable missing from the image): they arrive as on_exit with exit code
 * 127 and the reason. Quick: image metadata reads and a fork, no unpacking. */
rt_task_t *runtime_start(runtime_t *rt, struct ev_loop *loop, const rt_spec_t *spec, char *err,
                         size_t errlen);

/* Send sig to the step (process: its process group; container: its
 * processes). 0, or -ESRCH when it has exited. For preemption signals. */
int rt_task_signal(rt_task_t *t, int sig);

/* Stop the step: SIGTERM now, SIGKILL after the grace period; on_exit
 * follows with killed set and the reason. Idempotent. */
void rt_task_kill(rt_task_t *t, const char *reason);

/* SIGKILL the step at once (agent shutdown). */
void rt_task_kill_now(rt_task_t *t);

/* Host pid of the step: the process group leader, or the container's
 * first process once started (before that: the shim). */
pid_t rt_task_pid(const rt_task_t *t);

/* "drover-<id>" (owned by t). */
const char *rt_task_name(const rt_task_t *t);

/* After on_exit: whether nothing the step started can still run — its
 * cgroup was emptied and removed (processes), or its container removed.
 * False for a process that ran without a cgroup: a detached leftover may
 * live on, so its attempt dir must not be handed to another attempt. */
bool rt_task_contained(const rt_task_t *t);

/* Free the task; NULLs the pointer. After on_exit everything is already
 * removed. Before it (agent shutdown), the step is killed and a detached
 * child removes its container, bundle and cgroup. Must not be called from
 * inside on_exit for the same task. */
void rt_task_destroy(rt_task_t **t);

/* Free the runtime (destroy its tasks first); its cgroup parent
 * drover/<owner> goes too when empty. Accepts NULL; NULLs the pointer. */
void runtime_destroy(runtime_t **rt);

/* NULL-terminated string vectors (argv, envp), the agent's one set of
 * helpers for them: a deep copy (empty for NULL), the count, free (each
 * string, then the vector; accepts NULL), and append (takes s; *v stays
 * NULL-terminated, *n its count). */
char **rt_strv_dup(char *const *v);
size_t rt_strv_len(char *const *v);
void rt_strv_free(char **v);
void rt_strv_push(char ***v, size_t *n, char *s);

#ifdef RT_DRIVER_INTERNAL
/* ------------------------------------------------------------------------
 * Driver interface: for runtime.c and rt_*.c only.
 */
#include <sys/resource.h>

#include "cgroup.h"
#include "image.h"

typedef struct rt_driver rt_driver_t;

struct rt_driver {
    const char *name;
    bool images;
    /* Find and check the tool; fill rt->bin etc. and rt->describe. */
    int (*probe)(runtime_t *rt, const char *path, char *err, size_t errlen);
    /* In the agent, synchronous and quick: validate, open the image, make
     * the bundle dir, build argv for the shim. */
    int (*prepare)(rt_task_t *t, char *err, size_t errlen);
    /* The shim (runner child_fn, argv NULL): never returns. */
    int (*shim)(void *task);
    /* Deliver sig to a started container (quick, non-blocking). */
    void (*deliver)(rt_task_t *t, int sig);
    /* Remove the container, bundle and cgroup of t (blocking; in a child). */
    void (*cleanup)(rt_task_t *t);
    /* runtime_cleanup_orphans' driver part (blocking). */
    int (*orphans)(runtime_t *rt);
    /* Free driver data. */
    void (*free_task)(rt_task_t *t);
};

struct runtime {
    const rt_driver_t *drv;
    char *state_dir, *base, *bundles, *cache, *owner;
    char *cg_parent; /* "drover/<owner>" */
    char describe[320];
    cgroup_mode_t cg_mode;
    char cg_why[160];
    char *bin;         /* runc, crun, podman or docker */
    char *bin_runtime; /* podman/docker --runtime, or NULL */
    char *oci_root;    /* runc --root */
    bool own_cgroup;   /* podman/docker: limits on a parent cgroup we own */
    bool is_docker;
    struct rlimit nofile;
    unsigned long nproc;
};

struct rt_task {
    runtime_t *rt;
    struct ev_loop *loop;
    rt_spec_t spec; /* strings and arrays below are the task's own copies */
    char *id, *name, *image_ref, *attempt_dir, *cwd, *user, *reason_buf;
    char **argv, **env;
    int *gpus;
    char *bundle, *cg_rel, *oom_file;
    image_t *image;
    cgroup_t *cg;
    runner_t *runner;
    pid_t shim_pid, ctr_pid;
    int status_rfd, status_wfd;
    ev_io status_w;
    char sbuf[2048];
    size_t slen;
    /* what the shim reported */
    bool started, done, have_wstatus, have_code, cancelled;
    int wstatus, code;
    uint64_t oom;
    char error[256];
    /* control */
    bool container, killed, timed_out, term_sent, kill_sent, exited, reported;
    bool in_cgroup; /* process: the step was started inside t->cg */
    bool contained; /* rt_task_contained() */
    int pending_sig;
    int sent_sig; /* last signal delivered, to read 128+n exit codes */
    ev_timer timeout_w, grace_w, hard_w, retry_w;
    ev_child cleanup_w;
    int retries;
    runner_exit_t ex;
    void *drv_data;
};

extern const rt_driver_t rt_process_driver, rt_oci_driver, rt_podman_driver, rt_docker_driver;

/* Plain processes (rt_process.c): start t as a process, with cgroup
 * limits where available. 0 or -errno with err set. */
int rt_process_start(rt_task_t *t, char *err, size_t errlen);

/* Shared helpers (runtime.c). */

/* The environment a plain process sees: the step's plus GPU variables. */
char **rt_process_env(const rt_task_t *t);

/* Write one status line from a shim ("started 42"). Newlines in the text
 * become spaces. */
void rt_status(rt_task_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* In a shim: close every inherited fd but the status pipe and the task's
 * cgroup fds (the agent's sockets must not stay open in a long-lived
 * child); SIGTERM/SIGINT/SIGHUP blocked (a cancel request, see
 * rt_cancelled); SIGPIPE ignored. */
void rt_shim_setup(rt_task_t *t);

/* In a shim: whether a SIGTERM (cancel before start) is pending. */
bool rt_cancelled(void);

/* Run argv (PATH lookup) and wait. stdin /dev/null; out_fd/err_fd: a fd,
 * -1 for /dev/null, RT_INHERIT for the caller's 1/2. capture (optional)
 * receives stdout instead, NUL-terminated, at most caplen-1 bytes; errline
 * (optional) the last line of stderr — stderr is then also copied to err_fd
 * when that is a fd or RT_INHERIT (2). timeout_ms 0 = none. Returns the
 * wait status, or -errno when it could not run. Blocking: shims, children
 * and start-up only. */
#define RT_INHERIT (-2)
int rt_run(char *const *argv, int out_fd, int err_fd, char *capture, size_t caplen, char *errline,
           size_t errlen, int timeout_ms);

/* The environment a container sees: with defaults, the image's Env (cfg,
 * may be NULL) and PATH/HOME defaults; then the step's variables with host
 * paths under attempt_dir rewritten to /drover; then GPU variables.
 * Without defaults only the latter two (podman/docker add the image's).
 * NULL-terminated; the caller frees with rt_strv_free. */
char **rt_container_env(const rt_task_t *t, const image_config_t *cfg, bool defaults);

/* rt_oci.c: the first OCI runtime that runs a test container here — path
 * if given, else names looked up on PATH in order. NULL with why. The
 * caller frees. Blocking (start-up). */
char *rt_oci_find_runtime(runtime_t *rt, const char *path, const char *const *names, char *why,
                          size_t whylen);

/* The argv a container runs: the step's, or the image's entrypoint + cmd.
 * NULL when neither exists. */
char **rt_container_argv(const rt_task_t *t, const image_config_t *cfg);

/* Map a host path under the attempt dir to /drover/...; others unchanged.
 * The caller frees. */
char *rt_map_path(const rt_task_t *t, const char *path);

/* Give a container that runs as uid:gid its writable dirs: the attempt
 * dir itself (progress.jsonl) and work/, outputs/, checkpoint/ with what
 * they hold. Nothing for root. */
void rt_chown_writable(const rt_task_t *t, unsigned uid, unsigned gid);

/* GPU device nodes for the task's GPUs (+ nvidiactl, nvidia-uvm, …, those
 * that exist). NULL-terminated; rt_strv_free. */
char **rt_gpu_devices(const rt_task_t *t);

/* The absolute path of an executable on PATH, or NULL. The caller frees. */
char *rt_which(const char *name);

/* "64Mi", "1Gi", "1500000" (bytes). */
void rt_format_bytes(uint64_t n, char *buf, size_t len);

/* The environment for the container tools and shims the agent runs: its
 * own without NOTIFY_SOCKET / WATCHDOG_* (those are for the agent only). */
char **rt_tool_env(void);

#endif /* RT_DRIVER_INTERNAL */

#endif
