/* test_gpu — GPU detection with faked devices, the allocator, and the
 * variables a step sees.
 *
 * A fake nvidia-smi (a shell script first on PATH) reports two GPUs; a
 * fake /proc/driver/nvidia/gpus tree tests the fallback. The allocator
 * must never hand out one index twice. End to end: two 1-GPU process
 * steps on a 2-GPU agent see different CUDA_VISIBLE_DEVICES, and a third
 * finds no free GPU (it waits).
 */
#include "helpers.h"

#include <errno.h>
#include <ev.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu.h"
#include "runtime.h"

static char *dir, *old_path;

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "fopen %s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* A fake nvidia-smi printing the given CSV for the index,name query. */
static void fake_smi(const char *csv, int exit_code)
{
    char *bin = xasprintf("%s/bin", dir), *smi = xasprintf("%s/nvidia-smi", bin);
    util_mkdir_p(bin, 0755);
    char *script = xasprintf("#!/bin/sh\n"
                             "case \"$*\" in\n"
                             "*--query-gpu=index,name*--format=csv,noheader*) printf '%s' ;;\n"
                             "*) echo \"fake nvidia-smi: unexpected $*\" >&2; exit 2 ;;\n"
                             "esac\nexit %d\n",
                             csv, exit_code);
    write_file(smi, script, 0755);
    char *path = xasprintf("%s:%s", bin, old_path);
    setenv("PATH", path, 1);
    free(path);
    free(script);
    free(smi);
    free(bin);
}

static void setup(void)
{
    dir = h_tmpdir();
    old_path = xstrdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
}

static void teardown(void)
{
    setenv("PATH", old_path, 1);
    free(old_path);
    util_rm_rf(dir);
    free(dir);
}

TestSuite(gpu, .init = setup, .fini = teardown, .timeout = 30);

Test(gpu, nvidia_smi_is_parsed)
{
    fake_smi("0, NVIDIA Fake A100-SXM4-40GB\\n1, NVIDIA Fake A100-SXM4-40GB\\n", 0);
    gpu_info_t info;
    cr_assert_eq(gpu_detect(&info), 0);
    cr_assert_eq(info.count, 2);
    cr_assert_eq(info.dev[0].index, 0);
    cr_assert_eq(info.dev[1].index, 1);
    cr_assert_str_eq(info.dev[1].model, "NVIDIA Fake A100-SXM4-40GB");
    cr_assert_str_eq(gpu_model(&info), "NVIDIA Fake A100-SXM4-40GB");
    cr_assert_str_eq(info.source, "nvidia-smi");
}

Test(gpu, mixed_models_and_unsorted_output)
{
    fake_smi("3, NVIDIA B\\n1, NVIDIA A\\ngarbage line\\n", 0);
    gpu_info_t info;
    cr_assert_eq(gpu_detect(&info), 0);
    cr_assert_eq(info.count, 2);
    cr_assert_eq(info.dev[0].index, 1);
    cr_assert_eq(info.dev[1].index, 3);
    cr_assert_str_eq(gpu_model(&info), "mixed");
}

Test(gpu, failing_nvidia_smi_means_no_gpus_here)
{
    fake_smi("", 9); /* what nvidia-smi does without a driver */
    gpu_info_t info;
    gpu_detect(&info);
    cr_assert_eq(info.count, 0);
    cr_assert_str_eq(gpu_model(&info), "");
}

Test(gpu, proc_fallback)
{
    const char *names[] = {"0000:3b:00.0", "0000:86:00.0"};
    for (int i = 0; i < 2; i++) {
        char *d = xasprintf("%s/gpus/%s", dir, names[i]), *f = xasprintf("%s/information", d);
        char *text = xasprintf("Model: \t\t NVIDIA Tesla T4\nIRQ:   \t\t 42\n"
                               "Device Minor: \t %d\nBus Location: \t %s\n",
                               1 - i, names[i]);
        util_mkdir_p(d, 0755);
        write_file(f, text, 0644);
        free(d);
        free(f);
        free(text);
    }
    gpu_info_t info;
    memset(&info, 0, sizeof info);
    char *gpus = xasprintf("%s/gpus", dir);
    cr_assert_eq(gpu_detect_proc(gpus, &info), 0);
    free(gpus);
    cr_assert_eq(info.count, 2);
    cr_assert_eq(info.dev[0].index, 0);
    cr_assert_eq(info.dev[1].index, 1);
    cr_assert_str_eq(info.dev[0].model, "NVIDIA Tesla T4");
}

Test(gpu, overrides)
{
    fake_smi("0, NVIDIA X\\n1, NVIDIA X\\n2, NVIDIA X\\n", 0);
    gpu_info_t info;
    gpu_detect(&info);
    gpu_info_t a = info;
    cr_assert_eq(gpu_override(&a, "2"), 0);
    cr_assert_eq(a.count, 2);
    cr_assert_str_eq(a.dev[1].model, "NVIDIA X");
    gpu_info_t b = info;
    cr_assert_eq(gpu_override(&b, "2,0"), 0);
    cr_assert_eq(b.count, 2);
    cr_assert_eq(b.dev[0].index, 0);
    cr_assert_eq(b.dev[1].index, 2);
    gpu_info_t c = info;
    cr_assert_eq(gpu_override(&c, "none"), 0);
    cr_assert_eq(c.count, 0);
    gpu_info_t d = info;
    cr_assert_eq(gpu_override(&d, "5"), 0, "more than detected: unknown models");
    cr_assert_eq(d.count, 5);
    cr_assert_str_eq(d.dev[4].model, "unknown");
    gpu_info_t e = info;
    cr_assert_eq(gpu_override(&e, "1,1"), -EINVAL);
    cr_assert_eq(gpu_override(&e, "x"), -EINVAL);
    cr_assert_eq(gpu_override(&e, "-1"), -EINVAL);
    cr_assert_eq(e.count, 3, "unchanged after a bad override");
}

Test(gpu, allocator_never_shares_a_gpu)
{
    gpu_info_t info = {0};
    cr_assert_eq(gpu_override(&info, "4"), 0);
    gpu_pool_t *pool = gpu_pool_new(&info);
    cr_assert_eq(gpu_pool_size(pool), 4);
    int a[2], b[1], c[2], d[1];
    cr_assert_eq(gpu_alloc(pool, 2, a), 0);
    cr_assert_eq(gpu_alloc(pool, 1, b), 0);
    cr_assert_eq(gpu_alloc(pool, 2, c), -ENOSPC, "only one left");
    cr_assert_eq(gpu_alloc(pool, 5, c), -EINVAL, "more than the node has");
    cr_assert_eq(gpu_alloc(pool, 1, d), 0);
    cr_assert_eq(gpu_pool_free_count(pool), 0);
    int all[4] = {a[0], a[1], b[0], d[0]};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            cr_assert_neq(all[i], all[j], "index %d handed out twice", all[i]);
    gpu_free(pool, a, 2);
    gpu_free(pool, a, 2); /* twice: ignored */
    cr_assert_eq(gpu_pool_free_count(pool), 2);
    cr_assert_eq(gpu_reserve(pool, b, 1), -EBUSY);
    int nine = 9;
    cr_assert_eq(gpu_reserve(pool, &nine, 1), -ENOENT);
    cr_assert_eq(gpu_reserve(pool, a, 1), 0);
    cr_assert_eq(gpu_alloc(pool, 1, c), 0);
    cr_assert_eq(c[0], a[1]);
    cr_assert_eq(gpu_alloc(pool, 0, c), 0);
    gpu_pool_destroy(&pool);
    cr_assert_null(pool);
}

/* ------------------------------------------------------------ end to end */

typedef struct {
    char out[4096];
    size_t len;
    int exits;
    runner_exit_t ex;
} result_t;

static void on_output(void *arg, const uint8_t *data, size_t len)
{
    result_t *r = arg;
    size_t take = len < sizeof r->out - 1 - r->len ? len : sizeof r->out - 1 - r->len;
    memcpy(r->out + r->len, data, take);
    r->len += take;
    r->out[r->len] = '\0';
}

static void on_exit_cb(void *arg, const runner_exit_t *ex)
{
    result_t *r = arg;
    r->exits++;
    r->ex = *ex;
}

Test(gpu, two_steps_get_different_devices_and_a_third_waits)
{
    fake_smi("0, NVIDIA Fake H100\\n1, NVIDIA Fake H100\\n", 0);
    gpu_info_t info;
    cr_assert_eq(gpu_detect(&info), 0);
    cr_assert_eq(info.count, 2);
    gpu_pool_t *pool = gpu_pool_new(&info);
    char err[512] = "";
    runtime_t *rt = runtime_new("process", dir, err, sizeof err);
    cr_assert_not_null(rt, "%s", err);
    struct ev_loop *loop = EV_DEFAULT;
    result_t res[2];
    memset(res, 0, sizeof res);
    rt_task_t *tasks[2];
    int idx[2][1];
    char *argv[] = {"sh", "-c", "echo \"$CUDA_VISIBLE_DEVICES|$NVIDIA_VISIBLE_DEVICES\"", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(gpu_alloc(pool, 1, idx[i]), 0);
        char id[32];
        snprintf(id, sizeof id, "gpu-%d", i);
        rt_spec_t spec = {.id = id,
                          .argv = argv,
                          .envp = envp,
                          .attempt_dir = dir,
                          .cwd = dir,
                          .gpus = idx[i],
                          .n_gpus = 1,
                          .kill_grace_ms = 1000,
                          .on_output = on_output,
                          .on_exit = on_exit_cb,
                          .arg = &res[i]};
        tasks[i] = runtime_start(rt, loop, &spec, err, sizeof err);
        cr_assert_not_null(tasks[i], "%s", err);
    }
    int third[1];
    cr_assert_eq(gpu_alloc(pool, 1, third), -ENOSPC, "a third 1-GPU step must wait");
    int64_t end = util_mono_ms() + 10000;
    while ((res[0].exits == 0 || res[1].exits == 0) && util_mono_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(res[i].exits, 1);
        cr_assert_eq(res[i].ex.exit_code, 0);
        char want[32];
        snprintf(want, sizeof want, "%d|%d\n", idx[i][0], idx[i][0]);
        cr_assert_str_eq(res[i].out, want);
        rt_task_destroy(&tasks[i]);
    }
    cr_assert_str_neq(res[0].out, res[1].out);
    gpu_free(pool, idx[0], 1);
    cr_assert_eq(gpu_alloc(pool, 1, third), 0, "freed: the waiting step gets it");
    cr_assert_eq(third[0], idx[0][0]);

    /* A step given no GPU on a GPU node sees none. */
    result_t none = {0};
    rt_spec_t spec = {.id = "gpu-none",
                      .argv = argv,
                      .envp = envp,
                      .attempt_dir = dir,
                      .cwd = dir,
                      .hide_gpus = true,
                      .on_output = on_output,
                      .on_exit = on_exit_cb,
                      .arg = &none};
    rt_task_t *t = runtime_start(rt, loop, &spec, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    while (none.exits == 0 && util_mono_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    cr_assert_str_eq(none.out, "|void\n");
    rt_task_destroy(&t);
    runtime_destroy(&rt);
    gpu_pool_destroy(&pool);
}
