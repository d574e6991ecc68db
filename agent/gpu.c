/* gpu — see gpu.h.
 *
 * nvidia-smi runs with stdout on a pipe; we read with poll() under an
 * overall deadline, then reap it (killing it first when it overran). The
 * pool is a bitmap over the detected devices, in index order.
 */
#include "gpu.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define SMI_TIMEOUT_MS 8000
#define SMI_OUT_MAX    (64 * 1024)

extern char **environ;

struct gpu_pool {
    gpu_info_t info;
    bool used[GPU_MAX];
    size_t n_used;
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int cmp_dev(const void *a, const void *b)
{
    return ((const gpu_dev_t *)a)->index - ((const gpu_dev_t *)b)->index;
}

static void add_dev(gpu_info_t *out, int index, const char *model)
{
    if (out->count >= GPU_MAX || index < 0 || index > 4095)
        return;
    for (size_t i = 0; i < out->count; i++)
        if (out->dev[i].index == index)
            return;
    gpu_dev_t *d = &out->dev[out->count++];
    d->index = index;
    snprintf(d->model, sizeof d->model, "%s", model && *model ? model : "unknown");
}

/* Run nvidia-smi; 0 with the GPUs it listed, -ENOENT when it is not on
 * PATH, another -errno when it failed. */
static int detect_smi(gpu_info_t *out)
{
    char *argv[] = {"nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader", NULL};
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return -rc;
    }
    char *buf = xmalloc(SMI_OUT_MAX + 1);
    size_t len = 0;
    int64_t end = util_mono_ms() + SMI_TIMEOUT_MS;
    bool timed_out = false;
    for (;;) {
        int64_t left = end - util_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            timed_out = n == 0;
            break;
        }
        ssize_t r = read(pfd[0], buf + len, SMI_OUT_MAX - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == SMI_OUT_MAX)
            break;
    }
    close(pfd[0]);
    buf[len] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    rc = 0;
    if (timed_out)
        rc = -ETIMEDOUT;
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = -EIO; /* no driver loaded, or no devices */
    if (rc == 0) {
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *comma = strchr(line, ',');
            if (!comma)
                continue;
            *comma = '\0';
            char *idx = trim(line), *end2;
            long index = strtol(idx, &end2, 10);
            if (end2 == idx || *end2)
                continue;
            add_dev(out, (int)index, trim(comma + 1));
        }
    }
    free(buf);
    return rc;
}

int gpu_detect_proc(const char *proc_dir, gpu_info_t *out)
{
    DIR *d = opendir(proc_dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s/information", proc_dir, e->d_name), *text = NULL;
        size_t len = 0;
        int rc = util_read_file(path, 65536, &text, &len);
        free(path);
        if (rc < 0)
            continue;
        char model[96] = "";
        int minor = -1;
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            *colon = '\0';
            char *key = trim(line), *value = trim(colon + 1);
            if (strcmp(key, "Model") == 0)
                snprintf(model, sizeof model, "%s", value);
            else if (strcmp(key, "Device Minor") == 0)
                minor = atoi(value);
        }
        free(text);
        if (minor >= 0)
            add_dev(out, minor, model);
    }
    closedir(d);
    qsort(out->dev, out->count, sizeof *out->dev, cmp_dev);
    return 0;
}

int gpu_detect(gpu_info_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = detect_smi(out);
    if (rc == 0 && out->count > 0) {
        qsort(out->dev, out->count, sizeof *out->dev, cmp_dev);
        snprintf(out->source, sizeof out->source, "nvidia-smi");
        return 0;
    }
    out->count = 0;
    int prc = gpu_detect_proc("/proc/driver/nvidia/gpus", out);
    if (prc == 0 && out->count > 0) {
        snprintf(out->source, sizeof out->source, "/proc");
        return 0;
    }
    snprintf(out->source, sizeof out->source, "none");
    /* No nvidia-smi and no /proc entries: simply no GPUs. */
    if (rc == -ENOENT && prc == -ENOENT)
        return 0;
    return rc == -ENOENT ? (prc == -ENOENT ? 0 : prc) : rc;
}

int gpu_override(gpu_info_t *info, const char *spec)
{
    gpu_info_t out;
    memset(&out, 0, sizeof out);
    snprintf(out.source, sizeof out.source, "override");
    if (!spec || !*spec)
        return -EINVAL;
    if (strcmp(spec, "none") == 0) {
        *info = out;
        return 0;
    }
    char *end;
    if (!strchr(spec, ',')) {
        long n = strtol(spec, &end, 10);
        if (end == spec || *end || n < 0 || n > GPU_MAX)
            return -EINVAL;
        int next = 0; /* synthetic GPUs take indexes after the detected ones */
        for (long i = 0; i < n; i++) {
            if ((size_t)i < info->count) {
                out.dev[out.count++] = info->dev[i];
                if (info->dev[i].index >= next)
                    next = info->dev[i].index + 1;
            } else {
                add_dev(&out, next++, "unknown");
            }
        }
        qsort(out.dev, out.count, sizeof *out.dev, cmp_dev);
        *info = out;
        return 0;
    }
    const char *p = spec;
    while (*p) {
        long idx = strtol(p, &end, 10);
        if (end == p || idx < 0 || idx > 4095 || (*end && *end != ','))
            return -EINVAL;
        const char *model = "unknown";
        for (size_t i = 0; i < info->count; i++)
            if (info->dev[i].index == idx)
                model = info->dev[i].model;
        size_t before = out.count;
        add_dev(&out, (int)idx, model);
        if (out.count == before)
            return -EINVAL; /* duplicate or too many */
        p = *end ? end + 1 : end;
    }
    qsort(out.dev, out.count, sizeof *out.dev, cmp_dev);
    *info = out;
    return 0;
}

const char *gpu_model(const gpu_info_t *info)
{
    if (info->count == 0)
        return "";
    for (size_t i = 1; i < info->count; i++)
        if (strcmp(info->dev[i].model, info->dev[0].model) != 0)
            return "mixed";
    return info->dev[0].model;
}

gpu_pool_t *gpu_pool_new(const gpu_info_t *info)
{
    gpu_pool_t *p = xcalloc(1, sizeof *p);
    p->info = *info;
    return p;
}

int gpu_alloc(gpu_pool_t *pool, size_t n, int *indexes)
{
    if (n == 0)
        return 0;
    if (n > pool->info.count)
        return -EINVAL;
    if (n > pool->info.count - pool->n_used)
        return -ENOSPC;
    size_t got = 0;
    for (size_t i = 0; i < pool->info.count && got < n; i++) {
        if (pool->used[i])
            continue;
        pool->used[i] = true;
        indexes[got++] = pool->info.dev[i].index;
    }
    pool->n_used += got;
    return 0;
}

static int slot_of(const gpu_pool_t *pool, int index)
{
    for (size_t i = 0; i < pool->info.count; i++)
        if (pool->info.dev[i].index == index)
            return (int)i;
    return -1;
}

int gpu_reserve(gpu_pool_t *pool, const int *indexes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int s = slot_of(pool, indexes[i]);
        if (s < 0)
            return -ENOENT;
        if (pool->used[s])
            return -EBUSY;
        for (size_t j = 0; j < i; j++)
            if (indexes[j] == indexes[i])
                return -EBUSY;
    }
    for (size_t i = 0; i < n; i++)
        pool->used[slot_of(pool, indexes[i])] = true;
    pool->n_used += n;
    return 0;
}

void gpu_free(gpu_pool_t *pool, const int *indexes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int s = slot_of(pool, indexes[i]);
        if (s >= 0 && pool->used[s]) {
            pool->used[s] = false;
            pool->n_used--;
        }
    }
}

size_t gpu_pool_free_count(const gpu_pool_t *pool)
{
    return pool->info.count - pool->n_used;
}

size_t gpu_pool_size(const gpu_pool_t *pool)
{
    return pool->info.count;
}

void gpu_pool_destroy(gpu_pool_t **pool)
{
    if (!pool || !*pool)
        return;
    free(*pool);
    *pool = NULL;
}
