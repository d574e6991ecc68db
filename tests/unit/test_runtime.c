/* test_runtime — step attempts through the runtime drivers, for real.
 *
 * Containers run busybox-static images from scripts/make-test-image.sh
 * (rootfs dir, OCI layout, OCI tar, docker-save tar) with the oci driver
 * (runc or crun, whichever works here) and, where it works, podman. Each
 * test runs the default libev loop until on_exit, up to a deadline
 * (helpers.h's agent fixture).
 * Checked: output and exit codes, signals, the environment and mounts a
 * container sees (outputs written inside appear on the host, inputs are
 * read-only), a read-only root, memory limits reported as OOMKilled (for
 * plain processes too), kill/timeout leaving no container, bundle or
 * cgroup, an artifact passed between two container steps, cleanup of what
 * a crashed agent left, and clear errors for bad images and runtimes.
 * Tests that need root, runc or podman skip with the reason when those are
 * truly unavailable.
 */
#define DROVER_TEST_AGENT
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime.h"

#define IMAGES "/tmp/drover-test-images"

static h_agent_t fx;
static char *state, *adir;
static int seq;

static void build_images(void)
{
    char *src = xstrdup(__FILE__);
    char *cmd = xasprintf("%s/../../scripts/make-test-image.sh %s", dirname(src), IMAGES);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "%s failed", cmd);
    free(cmd);
    free(src);
}

/* A fresh attempt dir: work/ inputs/ outputs/ checkpoint/. */
static char *make_attempt(const char *name)
{
    char *a = xasprintf("%s/runs/%s", fx.dir, name);
    static const char *const subs[] = {"work", "inputs", "outputs", "checkpoint"};
    for (int i = 0; i < 4; i++) {
        char *d = xasprintf("%s/%s", a, subs[i]);
        cr_assert_eq(util_mkdir_p(d, 0755), 0);
        free(d);
    }
    return a;
}

static void setup(void)
{
    h_agent_init(&fx, false);
    chmod(fx.dir, 0755);
    state = xasprintf("%s/state", fx.dir);
    adir = make_attempt("a");
    build_images();
}

static void teardown(void)
{
    h_agent_fini(&fx);
    free(state);
    free(adir);
}

TestSuite(runtime, .init = setup, .fini = teardown, .timeout = 120);

static runtime_t *need_runtime(const char *driver)
{
    char err[1024] = "";
    if (strcmp(driver, "process") != 0 && geteuid() != 0)
        cr_skip_test("%s runtime needs root (uid %d)", driver, (int)geteuid());
    runtime_t *rt = runtime_new(driver, state, err, sizeof err);
    if (!rt)
        cr_skip_test("%s runtime unusable here: %s", driver, err);
    cr_log_info("%s", runtime_describe(rt));
    return rt;
}

typedef struct {
    const char *image;
    const char *script; /* sh -c script, or NULL for argv */
    char **argv;
    char **env;
    const char *attempt;
    uint64_t memory;
    uint64_t timeout_ms, grace_ms;
    bool writable;
    const char *user;
} opts_t;

static char *next_id(void)
{
    return xasprintf("t%d-%d", (int)getpid(), ++seq);
}

static rt_task_t *start(runtime_t *rt, const opts_t *o, h_proc_t *res, char **id_out)
{
    char err[1024] = "";
    char *id = next_id();
    const char *a = o->attempt ? o->attempt : adir;
    char *script_argv[] = {"sh", "-c", (char *)o->script, NULL};
    char *e_in = xasprintf("DROVER_INPUTS=%s/inputs", a);
    char *e_out = xasprintf("DROVER_OUTPUTS=%s/outputs", a);
    char *e_ck = xasprintf("DROVER_CHECKPOINT_DIR=%s/checkpoint", a);
    char *e_wd = xasprintf("DROVER_WORK_DIR=%s/work", a);
    char *default_env[] = {e_in, e_out, e_ck, e_wd, "STEP_VAR=from-step", NULL};
    rt_spec_t spec = {.id = id,
                      .image = o->image,
                      .argv = o->script ? script_argv : o->argv,
                      .envp = o->env ? o->env : default_env,
                      .attempt_dir = a,
                      .user = o->user,
                      .memory_bytes = o->memory,
                      .writable_rootfs = o->writable,
                      .timeout_ms = o->timeout_ms,
                      .kill_grace_ms = o->grace_ms ? o->grace_ms : 2000,
                      .on_output = h_proc_output,
                      .on_exit = h_proc_exit,
                      .arg = res};
    res->start_ms = util_mono_ms();
    rt_task_t *t = runtime_start(rt, fx.loop, &spec, err, sizeof err);
    cr_assert_not_null(t, "runtime_start: %s", err);
    free(e_in);
    free(e_out);
    free(e_ck);
    free(e_wd);
    if (id_out)
        *id_out = id;
    else
        free(id);
    return t;
}

/* Start, run to the end, destroy. Returns the id (caller frees). */
static char *run(runtime_t *rt, const opts_t *o, h_proc_t *res)
{
    char *id;
    rt_task_t *t = start(rt, o, res, &id);
    cr_assert(h_pump_until(fx.loop, h_proc_exited, res, 60000),
              "step %s did not finish (output so far: %s)", id, res->out ? res->out : "");
    cr_assert_eq(res->exits, 1);
    rt_task_destroy(&t);
    cr_assert_null(t);
    return id;
}

static char *capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char *buf = xcalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, p);
    buf[n] = '\0';
    pclose(p);
    return buf;
}

/* Nothing of container drover-<id> remains: runc state, bundle, cgroup. */
static void assert_gone_oci(const char *id)
{
    char *cmd = xasprintf("runc --root %s/runtime/runc list -q 2>/dev/null", state);
    char *list = capture(cmd);
    char *name = xasprintf("drover-%s", id);
    cr_assert_null(strstr(list, name), "%s still listed by runc: %s", name, list);
    char *bundle = xasprintf("%s/runtime/bundles/%s", state, name);
    cr_assert_neq(access(bundle, F_OK), 0, "bundle %s left behind", bundle);
    char *cg = xasprintf("ls -d /sys/fs/cgroup/*/drover/*/%s /sys/fs/cgroup/unified/drover/*/%s "
                         "2>/dev/null",
                         name, name);
    char *cgs = capture(cg);
    cr_assert_str_eq(cgs, "", "cgroups left behind: %s", cgs);
    free(cmd);
    free(list);
    free(name);
    free(bundle);
    free(cg);
    free(cgs);
}

static void assert_gone_podman(const char *id)
{
    char *cmd = xasprintf("podman ps -a --filter name=drover-%s --format '{{.Names}}'", id);
    char *list = capture(cmd);
    cr_assert_str_eq(list, "", "podman still has: %s", list);
    char *bundle = xasprintf("%s/runtime/bundles/drover-%s", state, id);
    cr_assert_neq(access(bundle, F_OK), 0, "scratch dir %s left behind", bundle);
    char *cg = xasprintf("ls -d /sys/fs/cgroup/*/drover/*/drover-%s 2>/dev/null", id);
    char *cgs = capture(cg);
    cr_assert_str_eq(cgs, "", "cgroups left behind: %s", cgs);
    free(cmd);
    free(list);
    free(bundle);
    free(cg);
    free(cgs);
}

static char *read_host(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(util_read_file(path, 1 << 20, &text, &len), 0, "read %s", path);
    return text;
}

static void write_host(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

#define HOG "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"

/* ------------------------------------------------------------ bad input */

Test(runtime, unknown_runtime_is_refused)
{
    char err[512] = "";
    cr_assert_null(runtime_new("foo", state, err, sizeof err));
    cr_assert_str_eq(err, "unknown runtime 'foo' (known: process, oci, podman, docker, auto)");
    cr_assert_null(runtime_new("process:/bin/x", state, err, sizeof err));
    cr_assert(strstr(err, "unknown runtime"), "%s", err);
}

Test(runtime, process_runtime_cannot_run_images)
{
    runtime_t *rt = need_runtime("process");
    cr_assert_not(runtime_can_run_images(rt));
    cr_assert_str_eq(runtime_name(rt), "process");
    char err[512] = "";
    char *argv[] = {"true", NULL}, *envp[] = {NULL};
    rt_spec_t spec = {.id = "x",
                      .image = IMAGES "/oci",
                      .argv = argv,
                      .envp = envp,
                      .attempt_dir = adir,
                      .on_output = h_proc_output,
                      .on_exit = h_proc_exit};
    cr_assert_null(runtime_start(rt, fx.loop, &spec, err, sizeof err));
    cr_assert(strstr(err, "runtime 'process' cannot run images"), "%s", err);
    spec.image = NULL;
    spec.id = "../x";
    cr_assert_null(runtime_start(rt, fx.loop, &spec, err, sizeof err));
    cr_assert(strstr(err, "bad attempt id"), "%s", err);
    spec.id = "ok";
    char *missing[] = {"/nonexistent/program", NULL};
    spec.argv = missing;
    cr_assert_null(runtime_start(rt, fx.loop, &spec, err, sizeof err));
    cr_assert(strstr(err, "cannot run '/nonexistent/program'"), "%s", err);
    runtime_destroy(&rt);
    cr_assert_null(rt);
}

Test(runtime, bad_images_fail_the_step_not_the_agent)
{
    runtime_t *rt = need_runtime("oci");
    char err[512] = "";
    char *argv[] = {"true", NULL}, *envp[] = {NULL};
    rt_spec_t spec = {.id = "bad",
                      .argv = argv,
                      .envp = envp,
                      .attempt_dir = adir,
                      .on_output = h_proc_output,
                      .on_exit = h_proc_exit};
    spec.image = "/nonexistent/image.tar";
    cr_assert_null(runtime_start(rt, fx.loop, &spec, err, sizeof err));
    cr_assert_str_eq(err, "image /nonexistent/image.tar: No such file or directory");

    char *junk = xasprintf("%s/corrupt.tar", fx.dir);
    char *cmd = xasprintf("head -c 300000 %s/docker.tar > %s", IMAGES, junk);
    cr_assert_eq(system(cmd), 0);
    spec.image = junk;
    cr_assert_null(runtime_start(rt, fx.loop, &spec, err, sizeof err));
    cr_assert(strstr(err, "truncated tar archive"), "%s", err);
    cr_log_info("corrupt tar: %s", err);

    char *plain = xasprintf("%s/plain.tar", fx.dir);
    free(cmd);
    cmd = xasprintf("tar -C %s/rootfs -cf %s etc", IMAGES, plain);
    cr_assert_eq(system(cmd), 0);
    spec.image = plain;
    cr_assert_null(runtime_start(rt, fx.loop, &spec, err, sizeof err));
    char *want = xasprintf("image %s: not an OCI layout or docker-save archive (no index.json or "
                           "manifest.json)",
                           plain);
    cr_assert_str_eq(err, want);

    /* The runtime still works afterwards. */
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/rootfs", .script = "echo still fine"};
    char *id = run(rt, &o, &res);
    cr_assert_str_eq(res.out, "still fine\n");
    free(id);
    free(res.out);
    free(junk);
    free(plain);
    free(cmd);
    free(want);
    runtime_destroy(&rt);
}

/* ------------------------------------------------------------ oci */

Test(runtime, oci_output_and_exit_code)
{
    runtime_t *rt = need_runtime("oci");
    cr_assert(runtime_can_run_images(rt));
    cr_assert_str_eq(runtime_name(rt), "oci");
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/rootfs", .script = "echo hi; echo oops >&2; exit 3"};
    char *id = run(rt, &o, &res);
    cr_assert_str_eq(res.out, "hi\noops\n");
    cr_assert_eq(res.ex.exit_code, 3);
    cr_assert_eq(res.ex.term_signal, 0);
    cr_assert_not(res.ex.killed);
    cr_assert_not(res.ex.oom_killed);
    cr_assert_str_eq(res.ex.reason, "");
    assert_gone_oci(id);
    cr_log_info("oci echo+exit took %lld ms", (long long)(res.exit_ms - res.start_ms));
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_env_mounts_and_cwd)
{
    runtime_t *rt = need_runtime("oci");
    char *in = xasprintf("%s/inputs/data.txt", adir);
    write_host(in, "input-data\n");
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/oci",
                .script = "cat $DROVER_INPUTS/data.txt; echo result > $DROVER_OUTPUTS/x; pwd; "
                          "echo $DROVER_OUTPUTS $DROVER_WORK_DIR $IMAGE_VAR $STEP_VAR; "
                          "(echo no > $DROVER_INPUTS/y) 2>/dev/null || echo inputs-read-only; "
                          "echo ck > $DROVER_CHECKPOINT_DIR/c; id -u; echo $PATH"};
    char *id = run(rt, &o, &res);
    cr_assert_eq(res.ex.exit_code, 0, "output: %s", res.out);
    cr_assert_str_eq(res.out, "input-data\n/drover/work\n/drover/outputs /drover/work from-image "
                              "from-step\ninputs-read-only\n0\n/bin\n");
    char *outx = xasprintf("%s/outputs/x", adir), *ck = xasprintf("%s/checkpoint/c", adir);
    char *text = read_host(outx);
    cr_assert_str_eq(text, "result\n");
    free(text);
    text = read_host(ck);
    cr_assert_str_eq(text, "ck\n");
    free(text);
    assert_gone_oci(id);
    free(id);
    free(in);
    free(outx);
    free(ck);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_user_and_entrypoint_from_image)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *argv[] = {NULL};
    opts_t o = {.image = IMAGES "/oci.tar", .argv = argv}; /* the image's Cmd */
    char *id = run(rt, &o, &res);
    cr_assert_str_eq(res.out, "default-cmd\n");
    free(id);
    free(res.out);
    h_proc_t r2 = {0};
    opts_t o2 = {.image = IMAGES "/oci.tar",
                 .script = "id -u; id -g; echo mine > $DROVER_OUTPUTS/by-step && echo wrote",
                 .user = "step"};
    id = run(rt, &o2, &r2);
    cr_assert_str_eq(r2.out, "1000\n1000\nwrote\n");
    free(id);
    free(r2.out);
    h_proc_t r3 = {0};
    opts_t o3 = {.image = IMAGES "/oci.tar", .script = "true", .user = "ghost"};
    id = run(rt, &o3, &r3);
    cr_assert_eq(r3.ex.exit_code, 127);
    cr_assert(strstr(r3.ex.reason, "user 'ghost'"), "%s", r3.ex.reason);
    assert_gone_oci(id);
    free(id);
    free(r3.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_root_is_read_only_by_default)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/rootfs",
                .script = "(echo x > /written) 2>&1 | sed 's/.*: //'; echo tmp > /tmp/t && cat "
                          "/tmp/t"};
    char *id = run(rt, &o, &res);
    cr_assert_str_eq(res.out, "Read-only file system\ntmp\n");
    free(id);
    h_proc_t w = {0};
    opts_t ow = {
        .image = IMAGES "/rootfs", .script = "echo x > /written && cat /written", .writable = true};
    id = run(rt, &ow, &w);
    cr_assert_str_eq(w.out, "x\n");
    cr_assert_neq(access(IMAGES "/rootfs/written", F_OK), 0, "the image itself is untouched");
    assert_gone_oci(id);
    free(id);
    free(res.out);
    free(w.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_image_formats_and_layers)
{
    runtime_t *rt = need_runtime("oci");
    const char *images[] = {IMAGES "/oci", IMAGES "/oci.tar", IMAGES "/docker.tar"};
    for (int i = 0; i < 3; i++) {
        h_proc_t res = {0};
        opts_t o = {.image = images[i],
                    .script = "cat /etc/layer2; ls /opq; test -e /etc/removed-by-layer2 && echo "
                              "present || echo whited-out"};
        char *id = run(rt, &o, &res);
        cr_assert_eq(res.ex.exit_code, 0, "%s: %s %s", images[i], res.out, res.ex.reason);
        cr_assert_str_eq(res.out, "from layer 2\nb\nwhited-out\n", "%s", images[i]);
        assert_gone_oci(id);
        free(id);
        free(res.out);
    }
    char *layers = xasprintf("%s/runtime/cache/layers/sha256", state);
    DIR *d = opendir(layers);
    cr_assert_not_null(d, "layer cache %s", layers);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    /* OCI (gzip digest + layer 2) and docker-save (diff_id of layer 1;
     * layer 2's is the same): three layers unpacked, shared by all runs. */
    cr_assert_eq(n, 3, "cached layers: %d", n);
    free(layers);
    runtime_destroy(&rt);
}

Test(runtime, oci_artifact_passes_between_two_container_steps)
{
    runtime_t *rt = need_runtime("oci");
    char *a1 = make_attempt("produce"), *a2 = make_attempt("consume");
    h_proc_t r1 = {0}, r2 = {0};
    opts_t o1 = {
        .image = IMAGES "/oci", .attempt = a1, .script = "echo weights-v1 > $DROVER_OUTPUTS/model"};
    char *id = run(rt, &o1, &r1);
    cr_assert_eq(r1.ex.exit_code, 0, "%s %s", r1.out, r1.ex.reason);
    free(id);
    /* What the agent does between steps: the artifact becomes an input. */
    char *from = xasprintf("%s/outputs/model", a1), *to = xasprintf("%s/inputs/model", a2);
    char *text = read_host(from);
    write_host(to, text);
    free(text);
    opts_t o2 = {.image = IMAGES "/docker.tar",
                 .attempt = a2,
                 .script = "read w < $DROVER_INPUTS/model; echo \"evaluated $w\" | tee "
                           "$DROVER_OUTPUTS/report"};
    id = run(rt, &o2, &r2);
    cr_assert_eq(r2.ex.exit_code, 0, "%s %s", r2.out, r2.ex.reason);
    cr_assert_str_eq(r2.out, "evaluated weights-v1\n");
    char *report = xasprintf("%s/outputs/report", a2);
    text = read_host(report);
    cr_assert_str_eq(text, "evaluated weights-v1\n");
    free(text);
    free(report);
    free(id);
    free(from);
    free(to);
    free(a1);
    free(a2);
    free(r1.out);
    free(r2.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_memory_limit_reports_oomkilled)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/rootfs", .script = HOG, .memory = 32 << 20};
    char *id = run(rt, &o, &res);
    cr_assert(res.ex.oom_killed, "not OOMKilled: code %d signal %d reason '%s' out '%s'",
              res.ex.exit_code, res.ex.term_signal, res.ex.reason, res.out ? res.out : "");
    cr_assert_str_eq(res.ex.reason, "OOMKilled: memory limit 32Mi exceeded");
    cr_assert_eq(res.ex.term_signal, SIGKILL, "code %d", res.ex.exit_code);
    assert_gone_oci(id);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_kill_leaves_nothing_behind)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *id;
    /* sh as the container's pid 1 ignores SIGTERM: SIGKILL follows. */
    opts_t o = {.image = IMAGES "/rootfs", .script = "echo up; sleep 30", .grace_ms = 300};
    rt_task_t *t = start(rt, &o, &res, &id);
    while (!res.out && res.exits == 0)
        ev_run(fx.loop, EVRUN_ONCE);
    cr_assert_gt(rt_task_pid(t), 1);
    char *name = xasprintf("drover-%s", id);
    cr_assert_str_eq(rt_task_name(t), name);
    char *cmd = xasprintf("runc --root %s/runtime/runc list -q", state);
    char *list = capture(cmd);
    cr_assert(strstr(list, name), "running container listed: %s", list);
    int64_t t0 = util_mono_ms();
    rt_task_kill(t, "cancelled by test");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 20000));
    cr_assert(res.ex.killed);
    cr_assert_eq(res.ex.term_signal, SIGKILL);
    cr_assert_str_eq(res.ex.reason, "cancelled by test");
    cr_assert_lt(util_mono_ms() - t0, 5000);
    cr_assert_eq(rt_task_signal(t, SIGTERM), -ESRCH);
    assert_gone_oci(id);
    rt_task_destroy(&t);
    free(list);
    free(cmd);
    free(name);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_kill_before_the_container_starts)
{
    runtime_t *rt = need_runtime("oci");
    /* A fresh layer cache: the shim is still unpacking when the kill
     * comes, and must stop there (or, if it was quicker, the container is
     * stopped): either way one on_exit, killed, and nothing left. */
    h_proc_t res = {0};
    char *id;
    opts_t o = {.image = IMAGES "/oci.tar", .script = "echo ran; sleep 30", .grace_ms = 500};
    rt_task_t *t = start(rt, &o, &res, &id);
    rt_task_kill(t, "cancelled early");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 20000));
    cr_assert(res.ex.killed);
    cr_assert_str_eq(res.ex.reason, "cancelled early");
    cr_assert(res.ex.term_signal == SIGTERM || res.ex.term_signal == SIGKILL, "signal %d code %d",
              res.ex.term_signal, res.ex.exit_code);
    cr_log_info("killed before start: signal %d, output '%s'", res.ex.term_signal,
                res.out ? res.out : "");
    rt_task_destroy(&t);
    assert_gone_oci(id);
    char *tmp =
        xasprintf("ls -a %s/runtime/cache/layers/sha256 2>/dev/null | grep -c '^\\.tmp-'", state);
    char *n = capture(tmp);
    cr_assert_eq(atoi(n), 0, "half-unpacked layers left: %s", n);
    free(n);
    free(tmp);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_signals_are_delivered_and_exit_codes_kept)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *id;
    opts_t o = {.image = IMAGES "/rootfs",
                .script = "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 7' TERM; "
                          "echo ready; while :; do sleep 0.05; done"};
    rt_task_t *t = start(rt, &o, &res, &id);
    while (!(res.out && strstr(res.out, "ready")) && res.exits == 0)
        ev_run(fx.loop, EVRUN_ONCE);
    cr_assert_eq(rt_task_signal(t, SIGUSR1), 0);
    while (!strstr(res.out, "got USR1") && res.exits == 0)
        ev_run(fx.loop, EVRUN_ONCE);
    rt_task_kill(t, "stop");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 20000));
    cr_assert_eq(res.ex.exit_code, 7, "out: %s", res.out);
    cr_assert_eq(res.ex.term_signal, 0);
    cr_assert(res.ex.killed);
    cr_assert(strstr(res.out, "got TERM"));
    rt_task_destroy(&t);
    assert_gone_oci(id);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_timeout)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    opts_t o = {
        .image = IMAGES "/rootfs", .script = "sleep 30", .timeout_ms = 500, .grace_ms = 200};
    char *id = run(rt, &o, &res);
    cr_assert(res.ex.timed_out);
    cr_assert_not(res.ex.killed);
    cr_assert_str_eq(res.ex.reason, "timeout after 0.5s");
    /* sh as pid 1 ignores SIGTERM: SIGKILL after the grace period (or
     * SIGTERM when a slow machine timed out before the container ran). */
    cr_assert(res.ex.term_signal == SIGKILL || res.ex.term_signal == SIGTERM, "signal %d",
              res.ex.term_signal);
    assert_gone_oci(id);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_missing_executable_is_a_clear_failure)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *argv[] = {"no-such-program", NULL};
    opts_t o = {.image = IMAGES "/rootfs", .argv = argv};
    char *id = run(rt, &o, &res);
    cr_assert_eq(res.ex.exit_code, 127);
    cr_assert(strstr(res.ex.reason, "no-such-program"), "%s", res.ex.reason);
    cr_log_info("missing executable: %s", res.ex.reason);
    assert_gone_oci(id);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

/* A child process plays an agent that starts a container and dies. */
static void crash_agent_with_running_step(const char *driver, const char *image, char **id_out)
{
    char *id = next_id();
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        ev_loop_fork(EV_DEFAULT);
        char err[512];
        runtime_t *rt = runtime_new(driver, state, err, sizeof err);
        if (!rt)
            _exit(2);
        char *argv[] = {"sh", "-c", "echo up; sleep 60", NULL}, *envp[] = {NULL};
        h_proc_t res = {0};
        rt_spec_t spec = {.id = id,
                          .image = image,
                          .argv = argv,
                          .envp = envp,
                          .attempt_dir = adir,
                          .kill_grace_ms = 1000,
                          .on_output = h_proc_output,
                          .on_exit = h_proc_exit,
                          .arg = &res};
        rt_task_t *t = runtime_start(rt, EV_DEFAULT, &spec, err, sizeof err);
        if (!t)
            _exit(3);
        int64_t end = util_mono_ms() + 30000;
        while (!res.out && util_mono_ms() < end)
            ev_run(EV_DEFAULT, EVRUN_ONCE);
        ssize_t w = write(pfd[1], res.out ? "1" : "0", 1);
        (void)w;
        _exit(0); /* "crash": no cleanup at all */
    }
    close(pfd[1]);
    char c = 0;
    cr_assert_eq(read(pfd[0], &c, 1), 1, "fake agent died early");
    close(pfd[0]);
    cr_assert_eq(c, '1', "the step never started in the fake agent");
    int st;
    waitpid(pid, &st, 0);
    *id_out = id;
}

Test(runtime, oci_agent_restart_removes_leftovers)
{
    runtime_t *probe = need_runtime("oci");
    runtime_destroy(&probe);
    char *id;
    crash_agent_with_running_step("oci", IMAGES "/rootfs", &id);
    char *cmd = xasprintf("runc --root %s/runtime/runc list -q", state);
    char *list = capture(cmd);
    char *name = xasprintf("drover-%s", id);
    cr_assert(strstr(list, name), "the crashed agent's container runs on: %s", list);
    free(list);

    char err[512];
    runtime_t *rt = runtime_new("oci", state, err, sizeof err);
    cr_assert_not_null(rt, "%s", err);
    cr_assert_geq(runtime_cleanup_orphans(rt), 1);
    list = capture(cmd);
    cr_assert_null(strstr(list, name), "still listed: %s", list);
    char *bundles = xasprintf("%s/runtime/bundles", state);
    DIR *d = opendir(bundles);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        cr_assert(e->d_name[0] == '.', "bundle left: %s", e->d_name);
    if (d)
        closedir(d);
    assert_gone_oci(id);
    free(bundles);
    free(list);
    free(cmd);
    free(name);
    free(id);
    runtime_destroy(&rt);
}

Test(runtime, oci_binary_is_chosen_by_trying_it)
{
    if (geteuid() != 0)
        cr_skip_test("oci runtime needs root (uid %d)", (int)geteuid());
    char err[1024] = "";
    runtime_t *rt = runtime_new("auto", state, err, sizeof err);
    cr_assert_not_null(rt, "%s", err);
    cr_log_info("auto: %s", runtime_describe(rt));
    runtime_destroy(&rt);
    char *runc = xstrdup("/usr/sbin/runc");
    if (access(runc, X_OK) == 0) {
        char *drv = xasprintf("oci:%s", runc);
        rt = runtime_new(drv, state, err, sizeof err);
        cr_assert_not_null(rt, "%s", err);
        cr_assert(strstr(runtime_describe(rt), runc), "%s", runtime_describe(rt));
        runtime_destroy(&rt);
        free(drv);
    }
    free(runc);
    rt = runtime_new("oci:/bin/false", state, err, sizeof err);
    cr_assert_null(rt);
    cr_assert(strstr(err, "oci: no working OCI runtime (/bin/false:"), "%s", err);
    if (access("/usr/bin/crun", X_OK) == 0) {
        rt = runtime_new("oci:/usr/bin/crun", state, err, sizeof err);
        if (rt) {
            cr_log_info("crun works here: %s", runtime_describe(rt));
            runtime_destroy(&rt);
        } else {
            cr_log_info("crun refused, as expected on this host: %s", err);
            cr_assert(strstr(err, "crun"), "%s", err);
        }
    }
    rt = runtime_new("docker", state, err, sizeof err);
    if (rt) {
        cr_log_info("docker works here: %s", runtime_describe(rt));
        runtime_destroy(&rt);
    } else {
        cr_log_info("docker unusable: %s", err);
        cr_assert(strncmp(err, "docker: ", 8) == 0, "%s", err);
    }
}

Test(runtime, oci_limits_and_gpu_variables_inside)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *id = next_id();
    char *e_out = xasprintf("DROVER_OUTPUTS=%s/outputs", adir);
    char *envp[] = {e_out, NULL};
    char *argv[] = {
        "sh", "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max "
        "/sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
        "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max; "
        "echo \"gpus=$NVIDIA_VISIBLE_DEVICES/$DROVER_GPUS/${CUDA_VISIBLE_DEVICES-unset}\"",
        NULL};
    int gpus[] = {1};
    rt_spec_t spec = {.id = id,
                      .image = IMAGES "/rootfs",
                      .argv = argv,
                      .envp = envp,
                      .attempt_dir = adir,
                      .cpu_milli = 500,
                      .memory_bytes = 96 << 20,
                      .pids_max = 64,
                      .gpus = gpus,
                      .n_gpus = 1,
                      .kill_grace_ms = 1000,
                      .on_output = h_proc_output,
                      .on_exit = h_proc_exit,
                      .arg = &res};
    char err[512];
    rt_task_t *t = runtime_start(rt, fx.loop, &spec, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 30000));
    cr_assert_eq(res.ex.exit_code, 0, "%s %s", res.out, res.ex.reason);
    cr_assert(strstr(res.out, "50000\n64\n100663296\n") ||
                  strstr(res.out, "50000 100000\n64\n100663296\n"),
              "limits seen inside: %s", res.out);
    cr_assert(strstr(res.out, "gpus=1/1/unset\n"), "%s", res.out);
    rt_task_destroy(&t);
    assert_gone_oci(id);
    free(e_out);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, oci_destroy_while_running_cleans_up_in_the_background)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *id;
    opts_t o = {.image = IMAGES "/rootfs", .script = "echo up; sleep 30"};
    rt_task_t *t = start(rt, &o, &res, &id);
    while (!res.out && res.exits == 0)
        ev_run(fx.loop, EVRUN_ONCE);
    /* Agent shutdown: SIGKILL now, then free without waiting for on_exit. */
    rt_task_kill_now(t);
    rt_task_destroy(&t);
    cr_assert_eq(res.exits, 0, "on_exit is not called after destroy");
    char *cmd = xasprintf("runc --root %s/runtime/runc list -q", state);
    char *name = xasprintf("drover-%s", id);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        ev_run(fx.loop, EVRUN_NOWAIT); /* reap the cleanup child */
        char *list = capture(cmd);
        char *bundle = xasprintf("%s/runtime/bundles/%s", state, name);
        gone = !strstr(list, name) && access(bundle, F_OK) != 0;
        free(list);
        free(bundle);
        if (!gone)
            usleep(50 * 1000);
    }
    cr_assert(gone, "container or bundle of %s still there", name);
    assert_gone_oci(id);
    free(cmd);
    free(name);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

/* ------------------------------------------------------------ processes */

Test(runtime, process_memory_limit_reports_oomkilled)
{
    runtime_t *rt = need_runtime("process");
    if (!runtime_has_limits(rt))
        cr_skip_test("no cgroups for process limits: %s", runtime_describe(rt));
    h_proc_t res = {0};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    opts_t o = {.script = HOG, .memory = 32 << 20, .env = envp};
    char *id = run(rt, &o, &res);
    cr_assert(res.ex.oom_killed, "not OOMKilled: code %d signal %d reason '%s'", res.ex.exit_code,
              res.ex.term_signal, res.ex.reason);
    cr_assert_str_eq(res.ex.reason, "OOMKilled: memory limit 32Mi exceeded");
    assert_gone_oci(id); /* no cgroup left */
    free(id);
    free(res.out);

    /* Within the limit, and without limits, nothing changes. */
    h_proc_t ok = {0};
    opts_t o2 = {.script = "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo ${#x}; exit 4",
                 .memory = 64 << 20,
                 .env = envp};
    id = run(rt, &o2, &ok);
    cr_assert_str_eq(ok.out, "1000000\n");
    cr_assert_eq(ok.ex.exit_code, 4);
    cr_assert_not(ok.ex.oom_killed);
    cr_assert_str_eq(ok.ex.reason, "");
    free(id);
    free(ok.out);
    runtime_destroy(&rt);
}

Test(runtime, process_leftovers_die_with_the_step)
{
    runtime_t *rt = need_runtime("process");
    if (!runtime_has_limits(rt))
        cr_skip_test("no cgroups for process limits: %s", runtime_describe(rt));
    char *pidfile = xasprintf("%s/daemon.pid", fx.dir);
    char *script = xasprintf(
        "setsid sh -c 'echo $$ > %s; exec sleep 60' >/dev/null 2>&1 & sleep 0.2; echo done",
        pidfile);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    h_proc_t res = {0};
    opts_t o = {.script = script, .memory = 256 << 20, .env = envp};
    char *id = run(rt, &o, &res);
    cr_assert_str_eq(res.out, "done\n");
    char *text = read_host(pidfile);
    pid_t pid = (pid_t)atoi(text);
    cr_assert_gt(pid, 1);
    /* It left the process group, but not the cgroup: killed with it. */
    bool dead = false;
    for (int i = 0; i < 100 && !dead; i++) {
        char *stat = xasprintf("/proc/%d/stat", (int)pid), *st = NULL;
        size_t len;
        dead = util_read_file(stat, 4096, &st, &len) < 0 || strstr(st, ") Z ");
        free(st);
        free(stat);
        if (!dead)
            usleep(20 * 1000);
    }
    cr_assert(dead, "the setsid'd daemon %d outlived its step", (int)pid);
    assert_gone_oci(id);
    free(text);
    free(pidfile);
    free(script);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, container_runtime_runs_plain_steps_as_processes)
{
    runtime_t *rt = need_runtime("oci");
    h_proc_t res = {0};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    opts_t o = {.script = "echo host $(pwd)", .env = envp};
    char *id = run(rt, &o, &res);
    char *want = xasprintf("host %s/work\n", adir);
    cr_assert_str_eq(res.out, want);
    free(want);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

/* ------------------------------------------------------------ podman */

static runtime_t *need_podman(void)
{
    runtime_t *rt = need_runtime("podman");
    cr_assert(runtime_can_run_images(rt));
    return rt;
}

Test(runtime, podman_output_env_mounts)
{
    runtime_t *rt = need_podman();
    char *in = xasprintf("%s/inputs/data.txt", adir);
    write_host(in, "input-data\n");
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/oci.tar",
                .script = "cat $DROVER_INPUTS/data.txt; echo result > $DROVER_OUTPUTS/x; pwd; "
                          "echo $IMAGE_VAR $STEP_VAR; cat /etc/layer2; "
                          "(echo no > $DROVER_INPUTS/y) 2>/dev/null || echo inputs-read-only; "
                          "(echo x > /written) 2>/dev/null || echo root-read-only; exit 5"};
    char *id = run(rt, &o, &res);
    cr_assert_eq(res.ex.exit_code, 5, "out: %s reason: %s", res.out, res.ex.reason);
    cr_assert_str_eq(res.out, "input-data\n/drover/work\nfrom-image from-step\nfrom layer "
                              "2\ninputs-read-only\nroot-read-only\n");
    char *outx = xasprintf("%s/outputs/x", adir);
    char *text = read_host(outx);
    cr_assert_str_eq(text, "result\n");
    assert_gone_podman(id);
    cr_log_info("podman run took %lld ms", (long long)(res.exit_ms - res.start_ms));
    free(text);
    free(outx);
    free(in);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, podman_artifact_and_rootfs_dir)
{
    runtime_t *rt = need_podman();
    char *a1 = make_attempt("p1"), *a2 = make_attempt("p2");
    h_proc_t r1 = {0}, r2 = {0};
    opts_t o1 = {.image = IMAGES "/rootfs",
                 .attempt = a1,
                 .script = "echo weights-v2 > $DROVER_OUTPUTS/model"};
    char *id = run(rt, &o1, &r1);
    cr_assert_eq(r1.ex.exit_code, 0, "%s %s", r1.out, r1.ex.reason);
    free(id);
    char *from = xasprintf("%s/outputs/model", a1), *to = xasprintf("%s/inputs/model", a2);
    char *text = read_host(from);
    write_host(to, text);
    free(text);
    opts_t o2 = {.image = IMAGES "/docker.tar",
                 .attempt = a2,
                 .script = "read w < $DROVER_INPUTS/model; echo \"evaluated $w\""};
    id = run(rt, &o2, &r2);
    cr_assert_str_eq(r2.out, "evaluated weights-v2\n", "%s", r2.ex.reason);
    cr_assert_neq(access(IMAGES "/rootfs/drover", F_OK), 0, "rootfs image untouched");
    assert_gone_podman(id);
    free(id);
    free(from);
    free(to);
    free(a1);
    free(a2);
    free(r1.out);
    free(r2.out);
    runtime_destroy(&rt);
}

Test(runtime, podman_memory_limit_reports_oomkilled)
{
    runtime_t *rt = need_podman();
    h_proc_t res = {0};
    opts_t o = {.image = IMAGES "/oci.tar", .script = HOG, .memory = 32 << 20};
    char *id = run(rt, &o, &res);
    cr_assert(res.ex.oom_killed, "not OOMKilled: code %d signal %d reason '%s' out '%s'",
              res.ex.exit_code, res.ex.term_signal, res.ex.reason, res.out ? res.out : "");
    cr_assert_str_eq(res.ex.reason, "OOMKilled: memory limit 32Mi exceeded");
    cr_assert_eq(res.ex.term_signal, SIGKILL);
    assert_gone_podman(id);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, podman_kill_and_bad_image)
{
    runtime_t *rt = need_podman();
    h_proc_t res = {0};
    char *id;
    opts_t o = {.image = IMAGES "/oci.tar",
                .script = "trap 'echo got TERM; exit 9' TERM; echo up; "
                          "while :; do sleep 0.05; done",
                .grace_ms = 3000};
    rt_task_t *t = start(rt, &o, &res, &id);
    while (!res.out && res.exits == 0)
        ev_run(fx.loop, EVRUN_ONCE);
    rt_task_kill(t, "cancelled by test");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 30000));
    cr_assert(res.ex.killed);
    cr_assert_eq(res.ex.exit_code, 9, "out %s, signal %d", res.out, res.ex.term_signal);
    cr_assert(strstr(res.out, "got TERM"));
    rt_task_destroy(&t);
    assert_gone_podman(id);
    free(id);
    free(res.out);

    /* SIGKILL after the grace period: reported as the signal. */
    h_proc_t r2 = {0};
    opts_t o2 = {.image = IMAGES "/oci.tar", .script = "echo up; sleep 30", .grace_ms = 300};
    t = start(rt, &o2, &r2, &id);
    while (!r2.out && r2.exits == 0)
        ev_run(fx.loop, EVRUN_ONCE);
    rt_task_kill(t, "stop");
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &r2, 30000));
    cr_assert_eq(r2.ex.term_signal, SIGKILL, "code %d", r2.ex.exit_code);
    rt_task_destroy(&t);
    assert_gone_podman(id);
    free(id);
    free(r2.out);

    /* An image podman cannot find: the step fails with podman's message. */
    h_proc_t r3 = {0};
    opts_t o3 = {.image = "localhost/drover-no-such-image:1", .script = "true"};
    id = run(rt, &o3, &r3);
    cr_assert_eq(r3.ex.exit_code, 127);
    cr_assert(strstr(r3.ex.reason, "podman create:"), "%s", r3.ex.reason);
    cr_log_info("podman bad image: %s", r3.ex.reason);
    assert_gone_podman(id);
    free(id);
    free(r3.out);
    runtime_destroy(&rt);
}

Test(runtime, podman_never_removes_another_agents_container)
{
    runtime_t *rt = need_podman();
    char *id = next_id();
    char *cmd = xasprintf("podman create -q --name drover-%s --label drover.owner=someone-else "
                          "oci-archive:%s/oci.tar true >/dev/null 2>&1",
                          id, IMAGES);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    h_proc_t res = {0};
    char *argv[] = {"true", NULL}, *envp[] = {NULL}, err[512];
    rt_spec_t spec = {.id = id,
                      .image = IMAGES "/oci.tar",
                      .argv = argv,
                      .envp = envp,
                      .attempt_dir = adir,
                      .kill_grace_ms = 1000,
                      .on_output = h_proc_output,
                      .on_exit = h_proc_exit,
                      .arg = &res};
    rt_task_t *t = runtime_start(rt, fx.loop, &spec, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cr_assert(h_pump_until(fx.loop, h_proc_exited, &res, 60000));
    cr_assert_eq(res.ex.exit_code, 127);
    cr_assert(strstr(res.ex.reason, "is taken by a container this agent does not own"), "%s",
              res.ex.reason);
    rt_task_destroy(&t);
    char *ps = xasprintf("podman ps -a --filter name=drover-%s --format '{{.Labels}}'", id);
    char *list = capture(ps);
    cr_assert(strstr(list, "someone-else"), "the other agent's container is still there: %s", list);
    free(cmd);
    cmd = xasprintf("podman rm -f drover-%s >/dev/null 2>&1", id);
    system(cmd);
    free(cmd);
    free(ps);
    free(list);
    free(id);
    free(res.out);
    runtime_destroy(&rt);
}

Test(runtime, podman_agent_restart_removes_leftovers)
{
    runtime_t *probe = need_podman();
    runtime_destroy(&probe);
    char *id;
    crash_agent_with_running_step("podman", IMAGES "/oci.tar", &id);
    char *cmd = xasprintf("podman ps -a --filter name=drover-%s --format '{{.Names}}'", id);
    char *list = capture(cmd);
    cr_assert_neq(list[0], '\0', "the crashed agent's container runs on");
    free(list);
    char err[512];
    runtime_t *rt = runtime_new("podman", state, err, sizeof err);
    cr_assert_not_null(rt, "%s", err);
    cr_assert_geq(runtime_cleanup_orphans(rt), 1);
    /* The crashed agent's shim may still be finishing its own cleanup. */
    for (int i = 0; i < 50; i++) {
        list = capture(cmd);
        bool empty = list[0] == '\0';
        free(list);
        if (empty)
            break;
        usleep(100 * 1000);
    }
    assert_gone_podman(id);
    free(cmd);
    free(id);
    runtime_destroy(&rt);
}
