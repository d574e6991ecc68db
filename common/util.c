/* util — see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *oom_check(void *p)
{
    if (!p) {
        log_error("out of memory");
        abort();
    }
    return p;
}

void *xmalloc(size_t n)
{
    return oom_check(malloc(n ? n : 1));
}

void *xcalloc(size_t count, size_t size)
{
    return oom_check(calloc(count ? count : 1, size ? size : 1));
}

void *xrealloc(void *p, size_t n)
{
    return oom_check(realloc(p, n ? n : 1));
}

char *xstrdup(const char *s)
{
    return oom_check(strdup(s ? s : ""));
}

char *xstrndup(const char *s, size_t n)
{
    return oom_check(strndup(s, n));
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0)
        oom_check(NULL);
    return s;
}

/* Try the directory itself first and walk up only on ENOENT: creating
 * WORK/runs/R/T/N/outputs costs one mkdir when its parent exists, not one
 * per path component. */
char *util_hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

char *util_random_id(char out[33])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            abort(); /* cannot happen on Linux >= 3.17 once booted */
    }
    return util_hex(b, sizeof b, out);
}

int util_mkdir_p(const char *path, unsigned mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -errno;
    char *parent = xstrdup(path);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    int rc = -ENOENT;
    if (slash && slash > parent) {
        *slash = '\0';
        rc = util_mkdir_p(parent, mode);
    }
    free(parent);
    if (rc < 0)
        return rc;
    return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -errno;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int util_disk_free(const char *path, uint64_t *bytes, uint64_t *inodes)
{
    struct statvfs st;
    if (statvfs(path, &st) < 0)
        return -errno;
    bool root = geteuid() == 0;
    uint64_t blocks = root ? st.f_bfree : st.f_bavail;
    *bytes = (uint64_t)blocks * (st.f_frsize ? st.f_frsize : st.f_bsize);
    *inodes = st.f_files == 0 ? UINT64_MAX : (uint64_t)(root ? st.f_ffree : st.f_favail);
    return 0;
}

bool util_disk_full(const char *path, const char *what, char *note, size_t len)
{
    uint64_t bytes = 0, inodes = 0; /* -errno may be 0 to the compiler */
    if (util_disk_free(path, &bytes, &inodes) < 0 || (bytes >= UTIL_DISK_LOW && inodes > 0))
        return false;
    snprintf(note, len, "no space left on device (%s %s: %" PRIu64 " bytes free%s)", what, path,
             bytes, inodes == 0 ? ", no inode free" : "");
    return true;
}

bool util_errno_is_system(int err)
{
    switch (err) {
    case EAGAIN:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case ENOBUFS:
        return true;
    default:
        return false;
    }
}

int util_rm_rf(const char *path)
{
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int util_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap + 1);
    int rc = 0;
    for (;;) {
        if (n == cap) {
            if (cap > max) { /* read one byte past max: it is larger */
                rc = -EFBIG;
                goto cleanup;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto cleanup;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        rc = -EFBIG;
        goto cleanup;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    free(buf);
    close(fd);
    return rc;
}

const char *util_task_status_name(Drover__TaskStatus s)
{
    switch (s) {
    case DROVER__TASK_STATUS__TASK_WAITING:
        return "WAITING";
    case DROVER__TASK_STATUS__TASK_READY:
        return "READY";
    case DROVER__TASK_STATUS__TASK_ASSIGNED:
        return "ASSIGNED";
    case DROVER__TASK_STATUS__TASK_RUNNING:
        return "RUNNING";
    case DROVER__TASK_STATUS__TASK_SUCCEEDED:
        return "SUCCEEDED";
    case DROVER__TASK_STATUS__TASK_FAILED:
        return "FAILED";
    case DROVER__TASK_STATUS__TASK_PREEMPTED:
        return "PREEMPTED";
    case DROVER__TASK_STATUS__TASK_LOST:
        return "LOST";
    case DROVER__TASK_STATUS__TASK_SKIPPED:
        return "SKIPPED";
    case DROVER__TASK_STATUS__TASK_CANCELLED:
        return "CANCELLED";
    case DROVER__TASK_STATUS__TASK_CACHED:
        return "CACHED";
    case DROVER__TASK_STATUS__TASK_SUSPENDED:
        return "SUSPENDED";
    default:
        return "UNKNOWN";
    }
}

const char *util_run_status_name(Drover__RunStatus s)
{
    switch (s) {
    case DROVER__RUN_STATUS__RUN_PENDING:
        return "PENDING";
    case DROVER__RUN_STATUS__RUN_RUNNING:
        return "RUNNING";
    case DROVER__RUN_STATUS__RUN_SUCCEEDED:
        return "SUCCEEDED";
    case DROVER__RUN_STATUS__RUN_FAILED:
        return "FAILED";
    case DROVER__RUN_STATUS__RUN_CANCELLED:
        return "CANCELLED";
    default:
        return "UNKNOWN";
    }
}

void *util_pb_copy(const void *message)
{
    const ProtobufCMessage *m = message;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    if (!copy)
        abort(); /* we just packed it: only memory can be missing */
    return copy;
}

void util_pb_set_str(char **field, const char *value)
{
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = xstrdup(value);
}

Drover__KeyValue *util_kv_new(const char *key, const char *value)
{
    Drover__KeyValue *kv = xmalloc(sizeof *kv);
    drover__key_value__init(kv);
    kv->key = xstrdup(key);
    kv->value = xstrdup(value);
    return kv;
}

void util_free_item(void **item)
{
    free(*item);
    *item = NULL;
}

void util_free_kvs(Drover__KeyValue **kvs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(kvs[i]->key);
        free(kvs[i]->value);
        free(kvs[i]);
    }
    free(kvs);
}

int util_valid_name(const char *s, size_t len, size_t max, const char *extra)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
            c != '_' && c != '.' && c != '-' && (c == 0 || !extra || !strchr(extra, c)))
            return 0;
    }
    return 1;
}

int util_parse_kv_list(const char *s, Drover__KeyValue ***out, size_t *count)
{
    Drover__KeyValue **kvs = NULL;
    size_t n = 0;
    *out = NULL;
    *count = 0;
    if (!s || !*s)
        return 0;
    char *copy = xstrdup(s), *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || !util_valid_name(item, (size_t)(eq - item), 63, "/") || strlen(eq + 1) > 255) {
            util_free_kvs(kvs, n);
            free(copy);
            return -EINVAL;
        }
        *eq = '\0';
        kvs = xrealloc(kvs, (n + 1) * sizeof *kvs);
        kvs[n++] = util_kv_new(item, eq + 1);
    }
    free(copy);
    *out = kvs;
    *count = n;
    return 0;
}
