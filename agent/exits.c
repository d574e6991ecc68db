/* exits — see exits.h. One file per unacknowledged EXITED report, named
 * by its attempt id; the worker writes and removes them. */
#include "exits.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define MAX_REPORT (64u << 20) /* an EXITED report is far smaller */

struct exits {
    char *dir;
    worker_t *worker;
};

typedef struct {
    exits_t *e;
    uint64_t attempt_id;
    uint8_t *data; /* packed report; NULL: remove */
    size_t len;
} job_t;

static char *path_of(const exits_t *e, uint64_t id, const char *suffix)
{
    return xasprintf("%s/%" PRIu64 "%s", e->dir, id, suffix);
}

static void work(void *arg)
{
    job_t *j = arg;
    char *final = path_of(j->e, j->attempt_id, "");
    if (!j->data) {
        if (unlink(final) < 0 && errno != ENOENT)
            log_warn("exits: unlink %s: %s", final, strerror(errno));
        free(final);
        return;
    }
    char *tmp = path_of(j->e, j->attempt_id, ".tmp");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, j->data, j->len) == (ssize_t)j->len;
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (!ok || rename(tmp, final) < 0) {
        /* Not fatal: only a crash before the ack would need it. */
        log_warn("exits: keeping %s: %s", final, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(final);
}

static void done(void *arg)
{
    job_t *j = arg;
    free(j->data);
    free(j);
}

static void submit(exits_t *e, uint64_t id, uint8_t *data, size_t len)
{
    job_t *j = xmalloc(sizeof *j);
    *j = (job_t){e, id, data, len};
    worker_submit(e->worker, work, done, j);
}

exits_t *exits_open(const char *work_dir, worker_t *worker)
{
    char *dir = xasprintf("%s/exits", work_dir);
    int rc = util_mkdir_p(dir, 0700);
    if (rc < 0) {
        log_warn("exits: mkdir %s: %s (exit reports are kept in memory only)", dir, strerror(-rc));
        free(dir);
        return NULL;
    }
    exits_t *e = xcalloc(1, sizeof *e);
    e->dir = dir;
    e->worker = worker;
    return e;
}

void exits_save(exits_t *e, const Drover__Report *rep)
{
    if (!e)
        return;
    size_t len = drover__report__get_packed_size(rep);
    uint8_t *data = xmalloc(len ? len : 1);
    drover__report__pack(rep, data);
    submit(e, rep->attempt_id, data, len);
}

void exits_drop(exits_t *e, uint64_t attempt_id)
{
    if (e)
        submit(e, attempt_id, NULL, 0);
}

size_t exits_load(exits_t *e, void (*fn)(Drover__Report *rep, void *arg), void *arg)
{
    if (!e)
        return 0;
    DIR *d = opendir(e->dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s", e->dir, ent->d_name);
        char *text = NULL;
        size_t len = 0;
        char *end = NULL;
        uint64_t id = strtoull(ent->d_name, &end, 10);
        Drover__Report *rep = NULL;
        if (id && end && !*end && util_read_file(path, MAX_REPORT, &text, &len) == 0)
            rep = drover__report__unpack(NULL, len, (const uint8_t *)text);
        free(text);
        if (rep && rep->attempt_id == id && rep->kind == DROVER__REPORT_KIND__REPORT_EXITED) {
            fn(rep, arg);
            n++;
        } else {
            /* A temporary of a write cut short, or something that is not
             * ours: nothing to report from it. */
            if (!strstr(ent->d_name, ".tmp"))
                log_warn("exits: %s is not an exit report: removed", path);
            if (rep)
                drover__report__free_unpacked(rep, NULL);
            unlink(path);
        }
        free(path);
    }
    closedir(d);
    return n;
}

void exits_close(exits_t **ep)
{
    if (!ep || !*ep)
        return;
    free((*ep)->dir);
    free(*ep);
    *ep = NULL;
}
