/* util — small helpers every program uses: clocks, checked allocation,
 * files and directories, free space and system errors, status names,
 * "k=v,k=v" lists. */
#ifndef DROVER_UTIL_H
#define DROVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"

/* Wall clock in milliseconds since the epoch (what records store). */
int64_t util_now_ms(void);

/* Monotonic clock in milliseconds (for timeouts). */
int64_t util_mono_ms(void);

/* Allocation that aborts the process on out-of-memory; the caller frees. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lowercase hex of the n bytes at d into out, which holds 2n+1 bytes
 * (NUL-terminated). Returns out. */
char *util_hex(const uint8_t *d, size_t n, char *out);

/* A new random identifier: 32 lowercase hex digits from the kernel's
 * random source (getrandom), into out[33]. Returns out. */
char *util_random_id(char out[33]);

/* mkdir -p with the given mode for created directories. 0 or -errno. */
int util_mkdir_p(const char *path, unsigned mode);

/* rm -rf. 0 or -errno (a missing path is not an error). */
int util_rm_rf(const char *path);

/* Read a whole file, at most max bytes. On success *out is a NUL-terminated
 * buffer the caller frees and *len its length. -EFBIG when larger than max,
 * else -errno. */
int util_read_file(const char *path, size_t max, char **out, size_t *len);

/* Space left for this process on the file system holding path (root may
 * use the blocks reserved for it, others may not): bytes and inodes
 * (UINT64_MAX where the file system does not count them). 0 or -errno. */
int util_disk_free(const char *path, uint64_t *bytes, uint64_t *inodes);

/* Fewer bytes than this left, or no inode, and a file system is full. */
#define UTIL_DISK_LOW (1u << 20)

/* Whether the file system holding path is full (UTIL_DISK_LOW). If so,
 * note gets "no space left on device (WHAT PATH: N bytes free)" (", no
 * inode free" when that is what ran out). For deciding that a failure was
 * the machine's rather than its job's: a disk does not fill by itself
 * between the failure and the check often enough to matter. */
bool util_disk_full(const char *path, const char *what, char *note, size_t len);

/* Whether err says the machine ran short (memory, processes, open files,
 * disk space or quota, I/O) rather than that the request itself was wrong
 * (ENOENT, EACCES, ENOEXEC, EINVAL, ...): a system error, not a job's. */
bool util_errno_is_system(int err);

/* Whether s[0..len) is 1..max characters of [A-Za-z0-9_.-] plus any in
 * extra (NUL never counts as valid): agent, run, step and label names. */
int util_valid_name(const char *s, size_t len, size_t max, const char *extra);

/* Replace a protobuf-c string field with a copy of value. Unpacked
 * messages use a shared static "" for empty strings, which must not be
 * freed; this handles both. */
void util_pb_set_str(char **field, const char *value);

/* A deep copy of any protobuf-c message (pack, then unpack), owned by the
 * caller: free it with its type's free_unpacked. Aborts when out of
 * memory. */
void *util_pb_copy(const void *message);

/* Names used in every output: "SUCCEEDED", "RUNNING", ... */
const char *util_task_status_name(Drover__TaskStatus s);
const char *util_run_status_name(Drover__RunStatus s);

/* Parse "k=v,k2=v2" into newly allocated KeyValue messages (caller frees
 * with util_free_kvs). Keys must match [A-Za-z0-9_.-/]+, at most 63 bytes;
 * values at most 255 bytes. 0 or -EINVAL (with *count 0). */
int util_parse_kv_list(const char *s, Drover__KeyValue ***out, size_t *count);
Drover__KeyValue *util_kv_new(const char *key, const char *value);
void util_free_kvs(Drover__KeyValue **kvs, size_t count);

/* A container destructor (czmq's zhashx_set_destructor) for items that are
 * one malloc'd block: frees *item and NULLs it. */
void util_free_item(void **item);

#endif
