/* gpu — NVIDIA GPUs of this node: detection and per-step allocation.
 *
 * Detection asks `nvidia-smi --query-gpu=index,name --format=csv,noheader`
 * (found on PATH; killed after a few seconds if the driver hangs) and
 * falls back to /proc/driver/nvidia/gpus/<bus>/information. It runs a
 * child process and waits for it: call it at agent start, not from the
 * event loop. The operator can override the result (--gpus).
 *
 * The pool hands out specific device indexes, so no two steps share a
 * GPU: a step's indexes become CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES
 * and, in containers, the /dev/nvidia<N> nodes passed in (runtime.h).
 */
#ifndef DROVER_GPU_H
#define DROVER_GPU_H

#include <stddef.h>

#define GPU_MAX 64

typedef struct {
    int index;      /* nvidia-smi index = /dev/nvidia<minor> on one-driver nodes */
    char model[96]; /* "NVIDIA A100-SXM4-40GB" */
} gpu_dev_t;

typedef struct {
    size_t count;
    gpu_dev_t dev[GPU_MAX]; /* sorted by index */
    char source[32];        /* "nvidia-smi", "/proc", "override" or "none" */
} gpu_info_t;

/* Detect GPUs (see above). Always fills out (count 0 when there are none or
 * detection failed); returns 0, or -errno when a source existed but could
 * not be read (out then holds what the fallback found). */
int gpu_detect(gpu_info_t *out);

/* The /proc fallback on its own, reading proc_dir (normally
 * "/proc/driver/nvidia/gpus"); for tests. 0 or -errno. */
int gpu_detect_proc(const char *proc_dir, gpu_info_t *out);

/* Apply an operator override (--gpus): "none" or "0" → no GPUs; "N" → the
 * first N detected (or, with fewer detected, indexes 0..N-1 of an unknown
 * model); "2,3" → exactly those indexes (models kept where detected).
 * 0 or -EINVAL (info unchanged). */
int gpu_override(gpu_info_t *info, const char *spec);

/* The model shared by all GPUs ("NVIDIA A100-SXM4-40GB"), "mixed", or ""
 * when there are none; for the agent's resources and labels. */
const char *gpu_model(const gpu_info_t *info);

typedef struct gpu_pool gpu_pool_t;

/* A pool of the GPUs in info (copied), all free. */
gpu_pool_t *gpu_pool_new(const gpu_info_t *info);

/* Take n free GPUs (lowest indexes first) and write their indexes to
 * indexes[0..n). 0; -ENOSPC when fewer than n are free now (the step
 * waits); -EINVAL when the node has fewer than n at all. n == 0 is a no-op. */
int gpu_alloc(gpu_pool_t *pool, size_t n, int *indexes);

/* Mark specific GPUs as taken (an attempt that survived an agent
 * restart). 0, -EBUSY if one is taken, -ENOENT if one is not in the pool. */
int gpu_reserve(gpu_pool_t *pool, const int *indexes, size_t n);

/* Give GPUs back; unknown or already free indexes are ignored. */
void gpu_free(gpu_pool_t *pool, const int *indexes, size_t n);

/* How many GPUs are free / exist. */
size_t gpu_pool_free_count(const gpu_pool_t *pool);
size_t gpu_pool_size(const gpu_pool_t *pool);

/* Accepts NULL; NULLs the pointer. */
void gpu_pool_destroy(gpu_pool_t **pool);

#endif
