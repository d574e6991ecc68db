/* store — see store.h.
 *
 * One LMDB environment, nine named databases. The environment is opened
 * with default (fully durable) sync settings: a commit returns only once
 * the data is on disk. The map is sized generously up front (it is sparse)
 * and MDB_MAP_FULL surfaces as -ENOSPC.
 *
 * Schema versions: 1 kept a run's compiled steps inside its RunRecord
 * (field legacy_steps), so every rewrite of the run wrote them again; 2
 * keeps them in the steps database, written once. Opening a version-1
 * state dir migrates it in the opening transaction (every run record
 * rewritten without its steps, the steps stored apart, the version set to
 * 2): a crash midway leaves version 1 as it was.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define STORE_MAP_SIZE (64ULL << 30)
#define KEY_MAX        512

struct store {
    char *dir;   /* the state dir */
    int lock_fd; /* flock'd: one droverd per state dir */
    MDB_env *env;
    MDB_dbi meta, runs, steps, tasks, agents, logs, blobs, cache, specs, schedules, tokens, pools,
        pool_nodes, events;
    MDB_txn *txn;                  /* the open write transaction, or NULL */
    uint64_t txn_bytes, bytes_put; /* value bytes put: in txn, by committed ones */
    /* The blob records' sizes summed (store_blob_totals), once known: the
     * committed total and the open transaction's change. */
    bool blob_bytes_known;
    uint64_t blob_bytes;
    int64_t txn_blob_bytes;
};

static int lmdb_errno(int rc)
{
    if (rc == MDB_MAP_FULL)
        return -ENOSPC;
    return rc > 0 ? -rc : -EIO;
}

/* Pack msg and put it under key in dbi of txn (MDB_RESERVE: packed
 * straight into the page, no intermediate buffer). *bytes += its size.
 * 0 or an LMDB error. */
static int put_packed_flags(MDB_txn *txn, MDB_dbi dbi, const void *kdata, size_t klen,
                            const ProtobufCMessage *msg, uint64_t *bytes, unsigned flags)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    MDB_val key = {.mv_size = klen, .mv_data = (void *)kdata};
    MDB_val val = {.mv_size = n, .mv_data = NULL};
    int rc = mdb_put(txn, dbi, &key, &val, MDB_RESERVE | flags);
    if (rc)
        return rc;
    protobuf_c_message_pack(msg, val.mv_data);
    *bytes += n;
    return 0;
}

static int put_packed(MDB_txn *txn, MDB_dbi dbi, const void *kdata, size_t klen,
                      const ProtobufCMessage *msg, uint64_t *bytes)
{
    return put_packed_flags(txn, dbi, kdata, klen, msg, bytes, 0);
}

/* Schema 1 → 2 inside txn: move each run's compiled steps out of its
 * RunRecord into the steps database. *runs gets how many were moved.
 * 0 or an LMDB error (err set). */
static int migrate_1_to_2(store_t *s, MDB_txn *txn, size_t *runs, char *err, size_t errlen)
{
    MDB_cursor *cur;
    MDB_val key, val;
    char **ids = NULL;
    size_t n = 0, cap = 0;
    uint64_t bytes = 0;
    *runs = 0;
    /* The run ids first: the records are rewritten after the walk. */
    int rc = mdb_cursor_open(txn, s->runs, &cur);
    if (rc == 0) {
        for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                ids = xrealloc(ids, cap * sizeof *ids);
            }
            ids[n++] = xstrndup(key.mv_data, key.mv_size);
        }
        mdb_cursor_close(cur);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        key.mv_size = strlen(ids[i]);
        key.mv_data = ids[i];
        if ((rc = mdb_get(txn, s->runs, &key, &val)))
            break;
        Drover__RunRecord *r = drover__run_record__unpack(NULL, val.mv_size, val.mv_data);
        if (!r) {
            log_warn("store: migration: run %s has an undecodable record; left as it is", ids[i]);
            continue;
        }
        Drover__RunSteps steps = DROVER__RUN_STEPS__INIT;
        steps.n_steps = r->n_legacy_steps;
        steps.steps = r->legacy_steps;
        rc = put_packed(txn, s->steps, key.mv_data, key.mv_size, &steps.base, &bytes);
        if (rc == 0) {
            size_t was = r->n_legacy_steps;
            r->n_legacy_steps = 0;
            rc = put_packed(txn, s->runs, key.mv_data, key.mv_size, &r->base, &bytes);
            r->n_legacy_steps = was; /* freed with the record */
        }
        drover__run_record__free_unpacked(r, NULL);
        *runs += rc == 0;
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    if (rc)
        snprintf(err, errlen, "migrating the state dir to schema 2: %s", mdb_strerror(rc));
    return rc;
}

/* A fresh dir gets the current version; version 1 is migrated (*migrated
 * = how many runs, else -1); any other is refused (a newer droverd wrote
 * it, or it is not ours). 0 or -errno with err set. */
static int check_schema(store_t *s, MDB_txn *txn, long *migrated, char *err, size_t errlen)
{
    MDB_val key = {.mv_size = 6, .mv_data = "schema"}, val;
    char want[16];
    snprintf(want, sizeof want, "%d", STORE_SCHEMA_VERSION);
    int rc = mdb_get(txn, s->meta, &key, &val);
    bool migrate = rc == 0 && val.mv_size == 1 && memcmp(val.mv_data, "1", 1) == 0;
    *migrated = -1;
    if (migrate) {
        size_t runs;
        if ((rc = migrate_1_to_2(s, txn, &runs, err, errlen)))
            return lmdb_errno(rc);
        *migrated = (long)runs;
    }
    if (rc == MDB_NOTFOUND || migrate) {
        val.mv_size = strlen(want);
        val.mv_data = want;
        rc = mdb_put(txn, s->meta, &key, &val, 0);
        if (rc)
            snprintf(err, errlen, "mdb_put(schema): %s", mdb_strerror(rc));
        return rc ? lmdb_errno(rc) : 0;
    }
    if (rc) {
        snprintf(err, errlen, "mdb_get(schema): %s", mdb_strerror(rc));
        return lmdb_errno(rc);
    }
    if (val.mv_size != strlen(want) || memcmp(val.mv_data, want, val.mv_size) != 0) {
        snprintf(err, errlen,
                 "state dir has schema version %.*s; this droverd reads version %s (and migrates "
                 "version 1)",
                 (int)(val.mv_size > 16 ? 16 : val.mv_size), (const char *)val.mv_data, want);
        return -EPROTO;
    }
    return 0;
}

/* Take the state dir's lock file; LMDB itself would let two droverds
 * share the environment and each believe it owns every run. */
static int lock_dir(store_t *s, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/droverd.lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "open(%s): %s", path, strerror(errno));
        return -errno;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen, "%s is in use by another droverd%s%s%s", dir, pid[0] ? " (pid " : "",
                 pid, pid[0] ? ")" : "");
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%d\n", (int)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 || pwrite(s->lock_fd, line, (size_t)len, 0) < 0)
        log_warn("writing %s: %s", path, strerror(errno));
    return 0;
}

store_t *store_new(const char *dir, char *err, size_t errlen)
{
    store_t *s = xcalloc(1, sizeof *s);
    MDB_txn *txn = NULL;
    s->lock_fd = -1;
    s->dir = xstrdup(dir);
    int rc = util_mkdir_p(dir, 0750);
    if (rc < 0) {
        snprintf(err, errlen, "mkdir(%s): %s", dir, strerror(-rc));
        goto fail;
    }
    if (lock_dir(s, dir, err, errlen) < 0)
        goto fail;
    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 16)) ||
        (rc = mdb_env_set_mapsize(s->env, STORE_MAP_SIZE))) {
        snprintf(err, errlen, "mdb_env_create: %s", mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0640))) {
        snprintf(err, errlen, "mdb_env_open(%s): %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
        snprintf(err, errlen, "mdb_txn_begin: %s", mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) ||
        (rc = mdb_dbi_open(txn, "runs", MDB_CREATE, &s->runs)) ||
        (rc = mdb_dbi_open(txn, "steps", MDB_CREATE, &s->steps)) ||
        (rc = mdb_dbi_open(txn, "tasks", MDB_CREATE, &s->tasks)) ||
        (rc = mdb_dbi_open(txn, "agents", MDB_CREATE, &s->agents)) ||
        (rc = mdb_dbi_open(txn, "logs", MDB_CREATE, &s->logs)) ||
        (rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &s->blobs)) ||
        (rc = mdb_dbi_open(txn, "cache", MDB_CREATE, &s->cache)) ||
        (rc = mdb_dbi_open(txn, "specs", MDB_CREATE, &s->specs)) ||
        (rc = mdb_dbi_open(txn, "schedules", MDB_CREATE, &s->schedules)) ||
        (rc = mdb_dbi_open(txn, "tokens", MDB_CREATE, &s->tokens)) ||
        (rc = mdb_dbi_open(txn, "pools", MDB_CREATE, &s->pools)) ||
        (rc = mdb_dbi_open(txn, "pool_nodes", MDB_CREATE, &s->pool_nodes)) ||
        (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &s->events))) {
        snprintf(err, errlen, "mdb_dbi_open: %s", mdb_strerror(rc));
        goto fail;
    }
    long migrated;
    if (check_schema(s, txn, &migrated, err, errlen) < 0)
        goto fail;
    if ((rc = mdb_txn_commit(txn))) {
        txn = NULL;
        snprintf(err, errlen, "%smdb_txn_commit: %s",
                 migrated >= 0 ? "migrating the state dir to schema 2: " : "", mdb_strerror(rc));
        goto fail;
    }
    if (migrated >= 0)
        log_info("store: %s migrated from schema 1 to %d: the compiled steps of %ld runs moved "
                 "out of their run records",
                 dir, STORE_SCHEMA_VERSION, migrated);
    return s;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->dir);
    free(s);
    return NULL;
}

void store_destroy(store_t **store)
{
    if (!store || !*store)
        return;
    store_abort(*store);
    mdb_env_close((*store)->env);
    close((*store)->lock_fd);
    free((*store)->dir);
    free(*store);
    *store = NULL;
}

int store_begin(store_t *s)
{
    if (s->txn)
        return -EBUSY;
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc) {
        s->txn = NULL;
        log_error("mdb_txn_begin: %s", mdb_strerror(rc));
        return lmdb_errno(rc);
    }
    return 0;
}

int store_commit(store_t *s)
{
    if (!s->txn)
        return -EINVAL;
    int rc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    if (rc == 0)
        s->bytes_put += s->txn_bytes;
    if (rc == 0 && s->blob_bytes_known)
        s->blob_bytes += (uint64_t)s->txn_blob_bytes;
    s->txn_bytes = 0;
    s->txn_blob_bytes = 0;
    if (rc) {
        log_error("mdb_txn_commit: %s", mdb_strerror(rc));
        return lmdb_errno(rc);
    }
    return 0;
}

void store_abort(store_t *s)
{
    if (s->txn)
        mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->txn_bytes = 0;
    s->txn_blob_bytes = 0;
}

uint64_t store_bytes_put(const store_t *s)
{
    return s->bytes_put;
}

const char *store_strerror(const store_t *s, int err, char *buf, size_t len)
{
    uint64_t bytes, inodes;
    bool space = err == -EIO || err == -ENOSPC || err == -EDQUOT;
    if (space && util_disk_full(s->dir, "state dir", buf, len))
        return buf;
    if (space && util_disk_free(s->dir, &bytes, &inodes) == 0)
        snprintf(buf, len, "%s (state dir %s: %" PRIu64 " bytes free)", strerror(-err), s->dir,
                 bytes);
    else
        snprintf(buf, len, "%s", strerror(-err));
    return buf;
}

/* Pack msg and put it under key in dbi of the open transaction. */
static int put_message(store_t *s, MDB_dbi dbi, const void *kdata, size_t klen,
                       const ProtobufCMessage *msg)
{
    if (!s->txn)
        return -EINVAL;
    int rc = put_packed(s->txn, dbi, kdata, klen, msg, &s->txn_bytes);
    if (rc) {
        log_error("mdb_put: %s", mdb_strerror(rc));
        return lmdb_errno(rc);
    }
    return 0;
}

static size_t task_key(uint8_t *buf, const char *run_id, uint32_t index)
{
    size_t n = strnlen(run_id, 128);
    memcpy(buf, run_id, n);
    buf[n++] = 0;
    for (int i = 3; i >= 0; i--)
        buf[n++] = (uint8_t)(index >> (i * 8));
    return n;
}

static size_t log_key(uint8_t *buf, const char *run_id, uint32_t task, uint32_t attempt,
                      uint64_t offset)
{
    size_t n = task_key(buf, run_id, task);
    for (int i = 3; i >= 0; i--)
        buf[n++] = (uint8_t)(attempt >> (i * 8));
    for (int i = 7; i >= 0; i--)
        buf[n++] = (uint8_t)(offset >> (i * 8));
    return n;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int store_put_run(store_t *s, const Drover__RunRecord *run)
{
    if (run->n_legacy_steps)
        return -EINVAL; /* the steps go to store_put_steps, once */
    return put_message(s, s->runs, run->id, strlen(run->id), &run->base);
}

int store_put_steps(store_t *s, const char *run_id, const Drover__RunSteps *steps)
{
    return put_message(s, s->steps, run_id, strlen(run_id), &steps->base);
}

int store_put_spec(store_t *s, const char *run_id, const Drover__RunSpecRecord *spec)
{
    return put_message(s, s->specs, run_id, strlen(run_id), &spec->base);
}

int store_get_spec(store_t *s, const char *run_id, Drover__RunSpecRecord **out)
{
    MDB_txn *txn;
    *out = NULL;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    MDB_val key = {.mv_size = strlen(run_id), .mv_data = (void *)run_id}, val;
    rc = mdb_get(txn, s->specs, &key, &val);
    if (rc == 0 && !(*out = drover__run_spec_record__unpack(NULL, val.mv_size, val.mv_data))) {
        log_error("store: run %s has an undecodable spec record", run_id);
        rc = MDB_CORRUPTED;
    }
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? -ENOENT : rc ? lmdb_errno(rc) : 0;
}

int store_put_task(store_t *s, const char *run_id, const Drover__TaskRecord *task)
{
    uint8_t key[KEY_MAX];
    size_t n = task_key(key, run_id, task->index);
    return put_message(s, s->tasks, key, n, &task->base);
}

int store_put_agent(store_t *s, const Drover__AgentRecord *agent)
{
    return put_message(s, s->agents, agent->name, strlen(agent->name), &agent->base);
}

int store_put_schedule(store_t *s, const Drover__ScheduleRecord *sc)
{
    return put_message(s, s->schedules, sc->name, strlen(sc->name), &sc->base);
}

int store_put_token(store_t *s, const Drover__TokenRecord *tok)
{
    return put_message(s, s->tokens, tok->id, strlen(tok->id), &tok->base);
}

/* Delete dbi's record named name in the open transaction (absent: fine). */
static int delete_named(store_t *s, MDB_dbi dbi, const char *name)
{
    if (!s->txn)
        return -EINVAL;
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name};
    int rc = mdb_del(s->txn, dbi, &key, NULL);
    return rc && rc != MDB_NOTFOUND ? lmdb_errno(rc) : 0;
}

int store_delete_schedule(store_t *s, const char *name)
{
    return delete_named(s, s->schedules, name);
}

int store_put_pool(store_t *s, const Drover__PoolRecord *p)
{
    return put_message(s, s->pools, p->name, strlen(p->name), &p->base);
}

int store_put_pool_node(store_t *s, const Drover__PoolNodeRecord *n)
{
    return put_message(s, s->pool_nodes, n->name, strlen(n->name), &n->base);
}

int store_delete_pool_node(store_t *s, const char *name)
{
    return delete_named(s, s->pool_nodes, name);
}

int store_put_counter(store_t *s, const char *name, uint64_t value)
{
    if (!s->txn)
        return -EINVAL;
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val val = {.mv_size = sizeof value, .mv_data = &value};
    int rc = mdb_put(s->txn, s->meta, &key, &val, 0);
    s->txn_bytes += rc ? 0 : sizeof value;
    return rc ? lmdb_errno(rc) : 0;
}

int store_put_log(store_t *s, const char *run_id, uint32_t task, uint32_t attempt, uint64_t offset,
                  const uint8_t *data, size_t len)
{
    if (!s->txn)
        return -EINVAL;
    uint8_t kbuf[KEY_MAX];
    MDB_val key = {.mv_size = log_key(kbuf, run_id, task, attempt, offset), .mv_data = kbuf};
    MDB_val val = {.mv_size = len, .mv_data = (void *)data};
    int rc = mdb_put(s->txn, s->logs, &key, &val, 0);
    s->txn_bytes += rc ? 0 : len;
    return rc ? lmdb_errno(rc) : 0;
}

uint64_t store_get_counter(store_t *s, const char *name)
{
    MDB_txn *txn;
    uint64_t value = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
        return 0;
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name}, val;
    if (mdb_get(txn, s->meta, &key, &val) == 0 && val.mv_size == sizeof value)
        memcpy(&value, val.mv_data, sizeof value);
    mdb_txn_abort(txn);
    return value;
}

/* Walk one database, unpacking each value with desc and calling fn. */
static int load_db(store_t *s, MDB_txn *txn, MDB_dbi dbi, const ProtobufCMessageDescriptor *desc,
                   void (*fn)(const MDB_val *key, const ProtobufCMessage *msg, void *arg),
                   void *arg)
{
    MDB_cursor *cur;
    MDB_val key, val;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return lmdb_errno(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, val.mv_size, val.mv_data);
        if (!msg) {
            log_error("store: undecodable record of %zu bytes in %s; skipped", val.mv_size,
                      desc->name);
            continue;
        }
        fn(&key, msg, arg);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}

/* load_db's callback for runs: the run with its steps record. */
typedef struct {
    store_t *s;
    MDB_txn *txn;
    const store_loader_t *l;
} run_loader_t;

static void load_run(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    const run_loader_t *rl = arg;
    const Drover__RunRecord *run = (const Drover__RunRecord *)msg;
    Drover__RunSteps none = DROVER__RUN_STEPS__INIT, *steps = NULL;
    MDB_val k = *key, val;
    int rc = mdb_get(rl->txn, rl->s->steps, &k, &val);
    if (rc == 0)
        steps = drover__run_steps__unpack(NULL, val.mv_size, val.mv_data);
    if (!steps)
        log_error("store: run %s has %s steps record; loaded without steps", run->id,
                  rc == 0 ? "an undecodable" : "no");
    rl->l->run(run, steps ? steps : &none, rl->l->arg);
    if (steps)
        drover__run_steps__free_unpacked(steps, NULL);
}

static void load_task(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    const store_loader_t *l = arg;
    const char *run_id = key->mv_data;
    if (!memchr(run_id, 0, key->mv_size))
        return;
    l->task(run_id, (const Drover__TaskRecord *)msg, l->arg);
}

static void load_schedule(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    (void)key;
    const store_loader_t *l = arg;
    l->schedule((const Drover__ScheduleRecord *)msg, l->arg);
}

typedef struct {
    void (*fn)(const Drover__TokenRecord *tok, void *arg);
    void *arg;
} token_loader_t;

static void load_token(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    (void)key;
    const token_loader_t *l = arg;
    l->fn((const Drover__TokenRecord *)msg, l->arg);
}

int store_load_tokens(store_t *s, void (*fn)(const Drover__TokenRecord *tok, void *arg), void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    token_loader_t l = {fn, arg};
    rc = load_db(s, txn, s->tokens, &drover__token_record__descriptor, load_token, &l);
    mdb_txn_abort(txn);
    return rc;
}

typedef struct {
    void (*pool)(const Drover__PoolRecord *p, void *arg);
    void (*node)(const Drover__PoolNodeRecord *n, void *arg);
    void *arg;
} pools_loader_t;

static void load_pool(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    (void)key;
    const pools_loader_t *l = arg;
    l->pool((const Drover__PoolRecord *)msg, l->arg);
}

static void load_pool_node(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    (void)key;
    const pools_loader_t *l = arg;
    l->node((const Drover__PoolNodeRecord *)msg, l->arg);
}

int store_load_pools(store_t *s, void (*pool)(const Drover__PoolRecord *p, void *arg),
                     void (*node)(const Drover__PoolNodeRecord *n, void *arg), void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    pools_loader_t l = {pool, node, arg};
    rc = load_db(s, txn, s->pools, &drover__pool_record__descriptor, load_pool, &l);
    if (rc == 0)
        rc = load_db(s, txn, s->pool_nodes, &drover__pool_node_record__descriptor, load_pool_node,
                     &l);
    mdb_txn_abort(txn);
    return rc;
}

static void load_agent(const MDB_val *key, const ProtobufCMessage *msg, void *arg)
{
    const store_loader_t *l = arg;
    l->agent((const Drover__AgentRecord *)msg, l->arg);
}

int store_load(store_t *s, const store_loader_t *loader)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    store_loader_t *l = (store_loader_t *)loader;
    run_loader_t rl = {.s = s, .txn = txn, .l = loader};
    if ((rc = load_db(s, txn, s->runs, &drover__run_record__descriptor, load_run, &rl)) == 0 &&
        (rc = load_db(s, txn, s->tasks, &drover__task_record__descriptor, load_task, l)) == 0 &&
        (rc = load_db(s, txn, s->agents, &drover__agent_record__descriptor, load_agent, l)) == 0 &&
        loader->schedule)
        rc = load_db(s, txn, s->schedules, &drover__schedule_record__descriptor, load_schedule, l);
    mdb_txn_abort(txn);
    return rc;
}

int store_get_log(store_t *s, const char *run_id, uint32_t task, uint32_t attempt, uint64_t offset,
                  size_t max, uint8_t **out, size_t *len)
{
    uint8_t kbuf[KEY_MAX];
    size_t prefix = log_key(kbuf, run_id, task, attempt, 0) - 8;
    MDB_val key = {.mv_size = prefix + 8, .mv_data = kbuf}, val;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc;

    log_key(kbuf, run_id, task, attempt, offset);
    *out = NULL;
    *len = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) ||
        (rc = mdb_cursor_open(txn, s->logs, &cur))) {
        rc = lmdb_errno(rc);
        goto cleanup;
    }
    /* The chunk holding offset starts at or before it: find the first chunk
     * starting after offset, then step back one. */
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (rc == 0 && key.mv_size == prefix + 8 && memcmp(key.mv_data, kbuf, prefix) == 0 &&
        be64((uint8_t *)key.mv_data + prefix) == offset) {
        /* exact hit */
    } else {
        rc = rc == 0 ? mdb_cursor_get(cur, &key, &val, MDB_PREV)
                     : mdb_cursor_get(cur, &key, &val, MDB_LAST);
    }
    buf = xmalloc(max ? max : 1);
    while (rc == 0 && n < max) {
        if (key.mv_size != prefix + 8 || memcmp(key.mv_data, kbuf, prefix) != 0)
            break;
        uint64_t start = be64((uint8_t *)key.mv_data + prefix);
        uint64_t end = start + val.mv_size;
        uint64_t want = offset + n;
        if (start > want)
            break; /* a gap: stop at what is contiguous */
        if (end > want) {
            size_t take = (size_t)(end - want);
            if (take > max - n)
                take = max - n;
            memcpy(buf + n, (uint8_t *)val.mv_data + (want - start), take);
            n += take;
        }
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    rc = 0;
    *out = buf;
    *len = n;
    buf = NULL;
cleanup:
    free(buf);
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* ------------------------------------------------------------ blobs */

int store_blob_get(store_t *s, const uint8_t digest[32], uint64_t *size, uint64_t *refs)
{
    MDB_txn *txn = s->txn;
    int rc = 0;
    if (!txn && (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)))
        return lmdb_errno(rc);
    MDB_val key = {.mv_size = 32, .mv_data = (void *)digest}, val;
    rc = mdb_get(txn, s->blobs, &key, &val);
    if (rc == 0) {
        Drover__BlobRecord *b = drover__blob_record__unpack(NULL, val.mv_size, val.mv_data);
        if (b) {
            *size = b->size;
            *refs = b->refs;
            drover__blob_record__free_unpacked(b, NULL);
        } else {
            rc = MDB_CORRUPTED;
        }
    }
    if (txn != s->txn)
        mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? -ENOENT : rc ? lmdb_errno(rc) : 0;
}

int store_blob_adjust(store_t *s, const uint8_t digest[32], int64_t delta, uint64_t size,
                      uint64_t *refs)
{
    uint64_t cur_size = 0, cur_refs = 0;
    int rc = store_blob_get(s, digest, &cur_size, &cur_refs);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    bool existed = rc == 0;
    if (!existed && delta < 0) {
        *refs = 0;
        return 0;
    }
    int64_t n = (int64_t)cur_refs + delta;
    *refs = n > 0 ? (uint64_t)n : 0;
    if (existed && *refs == 0 && delta < 0) {
        MDB_val key = {.mv_size = 32, .mv_data = (void *)digest};
        rc = mdb_del(s->txn, s->blobs, &key, NULL);
        if (rc == 0)
            s->txn_blob_bytes -= (int64_t)cur_size;
        return rc ? lmdb_errno(rc) : 0;
    }
    Drover__BlobRecord b = DROVER__BLOB_RECORD__INIT;
    b.size = existed ? cur_size : size;
    b.refs = *refs;
    b.created_ms = util_now_ms();
    rc = put_message(s, s->blobs, digest, 32, &b.base);
    if (rc == 0 && !existed)
        s->txn_blob_bytes += (int64_t)size;
    return rc;
}

int store_blob_totals(store_t *s, uint64_t *count, uint64_t *bytes)
{
    MDB_txn *txn;
    MDB_stat st;
    MDB_cursor *cur;
    MDB_val key, val;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    if ((rc = mdb_stat(txn, s->blobs, &st)) == 0)
        *count = st.ms_entries;
    if (rc == 0 && !s->blob_bytes_known && (rc = mdb_cursor_open(txn, s->blobs, &cur)) == 0) {
        uint64_t sum = 0;
        for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
            Drover__BlobRecord *b = drover__blob_record__unpack(NULL, val.mv_size, val.mv_data);
            sum += b ? b->size : 0;
            drover__blob_record__free_unpacked(b, NULL);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            s->blob_bytes = sum;
            s->blob_bytes_known = true;
        }
    }
    mdb_txn_abort(txn);
    *bytes = s->blob_bytes;
    return rc ? lmdb_errno(rc) : 0;
}

uint64_t store_used_bytes(store_t *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st))
        return 0;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int store_blob_unreferenced(store_t *s, int64_t before_ms,
                            void (*fn)(const uint8_t digest[32], void *arg), void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val key, val;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    if ((rc = mdb_cursor_open(txn, s->blobs, &cur))) {
        mdb_txn_abort(txn);
        return lmdb_errno(rc);
    }
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        Drover__BlobRecord *b = drover__blob_record__unpack(NULL, val.mv_size, val.mv_data);
        if (b && b->refs == 0 && b->created_ms < before_ms && key.mv_size == 32)
            fn(key.mv_data, arg);
        drover__blob_record__free_unpacked(b, NULL);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

/* ------------------------------------------------------------ cache */

int store_cache_get(store_t *s, const uint8_t key32[32], char *run_id, size_t run_id_len,
                    uint32_t *task)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    MDB_val key = {.mv_size = 32, .mv_data = (void *)key32}, val;
    rc = mdb_get(txn, s->cache, &key, &val);
    if (rc == 0) {
        Drover__CacheRecord *c = drover__cache_record__unpack(NULL, val.mv_size, val.mv_data);
        if (c) {
            snprintf(run_id, run_id_len, "%s", c->run_id);
            *task = c->task;
            drover__cache_record__free_unpacked(c, NULL);
        } else {
            rc = MDB_NOTFOUND;
        }
    }
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? -ENOENT : rc ? lmdb_errno(rc) : 0;
}

int store_cache_put(store_t *s, const uint8_t key[32], const char *run_id, uint32_t task)
{
    Drover__CacheRecord c = DROVER__CACHE_RECORD__INIT;
    c.run_id = (char *)run_id;
    c.task = task;
    return put_message(s, s->cache, key, 32, &c.base);
}

int store_cache_clear(store_t *s, uint64_t *count)
{
    MDB_stat st;
    if (!s->txn)
        return -EINVAL;
    int rc = mdb_stat(s->txn, s->cache, &st);
    if (rc == 0)
        rc = mdb_drop(s->txn, s->cache, 0);
    *count = rc == 0 ? st.ms_entries : 0;
    return rc ? lmdb_errno(rc) : 0;
}

int store_cache_prune(store_t *s, bool (*keep)(const char *run_id, void *arg), void *arg,
                      uint64_t *count)
{
    MDB_cursor *cur;
    MDB_val key, val;
    *count = 0;
    if (!s->txn)
        return -EINVAL;
    int rc = mdb_cursor_open(s->txn, s->cache, &cur);
    if (rc)
        return lmdb_errno(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        Drover__CacheRecord *c = drover__cache_record__unpack(NULL, val.mv_size, val.mv_data);
        bool gone = !c || !keep(c->run_id, arg);
        if (c)
            drover__cache_record__free_unpacked(c, NULL);
        if (gone) {
            if ((rc = mdb_cursor_del(cur, 0)))
                break;
            (*count)++;
        }
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}

/* ------------------------------------------------------------ deletion */

/* Delete every key of dbi starting with prefix. */
static int delete_prefix(store_t *s, MDB_dbi dbi, const uint8_t *prefix, size_t n)
{
    MDB_cursor *cur;
    MDB_val key = {.mv_size = n, .mv_data = (void *)prefix}, val;
    int rc = mdb_cursor_open(s->txn, dbi, &cur);
    if (rc)
        return lmdb_errno(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size < n || memcmp(key.mv_data, prefix, n) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)))
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}

int store_delete_agent(store_t *s, const char *name)
{
    return delete_named(s, s->agents, name);
}

int store_delete_run(store_t *s, const char *run_id)
{
    if (!s->txn)
        return -EINVAL;
    uint8_t prefix[KEY_MAX];
    size_t n = strnlen(run_id, 128);
    memcpy(prefix, run_id, n);
    prefix[n++] = 0; /* tasks and logs keys: run id, NUL, ... */
    int rc = delete_prefix(s, s->tasks, prefix, n);
    if (rc == 0)
        rc = delete_prefix(s, s->logs, prefix, n);
    MDB_dbi records[] = {s->steps, s->specs, s->runs};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        MDB_val key = {.mv_size = n - 1, .mv_data = (void *)run_id};
        int r = mdb_del(s->txn, records[i], &key, NULL);
        rc = r && r != MDB_NOTFOUND ? lmdb_errno(r) : 0;
    }
    return rc;
}

/* ------------------------------------------------------------ events */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
        p[7 - i] = (uint8_t)(v >> (i * 8));
}

/* The event batch's encoding, by hand: the bytes protobuf-c's generic
 * packer writes for an EventBatch (proto3: a field at its default is left
 * out; fields in number order), without its descriptor walk — the commit
 * phase puts one batch a commit, and this was most of the log's cost
 * (bench/README.md). tests/unit/test_events.c checks it byte for byte
 * against protobuf-c. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* The EventRecord's string fields with their numbers, in order. */
#define EVENT_STRINGS(e)                                                                           \
    {                                                                                              \
        {4, (e)->run_id}, {5, (e)->task}, {6, (e)->from}, {7, (e)->to}, {9, (e)->agent},           \
            {10, (e)->reason}, {11, (e)->pool},                                                    \
        {                                                                                          \
            12, (e)->node                                                                          \
        }                                                                                          \
    }

typedef struct {
    unsigned field;
    const char *s;
} event_str_t;

/* One scalar field (varint wire type): its tag and value, when not 0. */
#define SCALAR_LEN(field, v) ((v) ? 1 + varint_len((uint64_t)(v)) : 0)
#define PUT_SCALAR(p, field, v)                                                                    \
    do {                                                                                           \
        if (v) {                                                                                   \
            *(p)++ = (uint8_t)((field) << 3);                                                      \
            (p) = put_varint((p), (uint64_t)(v));                                                  \
        }                                                                                          \
    } while (0)

/* The encoded size of e's body (without its own tag and length). */
static size_t event_body_len(const Drover__EventRecord *e)
{
    size_t n = SCALAR_LEN(1, e->seq) + SCALAR_LEN(2, e->time_ms) + SCALAR_LEN(3, e->kind) +
               SCALAR_LEN(8, e->attempt) + SCALAR_LEN(13, e->has_exit) +
               SCALAR_LEN(14, (int64_t)e->exit_code) + SCALAR_LEN(15, e->checkpoint_step);
    event_str_t str[] = EVENT_STRINGS(e);
    for (size_t i = 0; i < sizeof str / sizeof *str; i++) {
        size_t len = str[i].s ? strlen(str[i].s) : 0;
        if (len)
            n += 1 + varint_len(len) + len;
    }
    return n;
}

static uint8_t *put_event_body(uint8_t *p, const Drover__EventRecord *e)
{
    event_str_t str[] = EVENT_STRINGS(e);
    PUT_SCALAR(p, 1, e->seq);
    PUT_SCALAR(p, 2, e->time_ms);
    PUT_SCALAR(p, 3, e->kind);
    for (size_t i = 0; i < sizeof str / sizeof *str; i++) {
        if (str[i].field == 9)
            PUT_SCALAR(p, 8, e->attempt); /* number order: 8 between to (7) and agent (9) */
        size_t len = str[i].s ? strlen(str[i].s) : 0;
        if (!len)
            continue;
        *p++ = (uint8_t)(str[i].field << 3 | 2);
        p = put_varint(p, len);
        memcpy(p, str[i].s, len);
        p += len;
    }
    PUT_SCALAR(p, 13, e->has_exit);
    PUT_SCALAR(p, 14, (int64_t)e->exit_code); /* int32: a negative one sign-extended */
    PUT_SCALAR(p, 15, e->checkpoint_step);
    return p;
}

size_t store_events_encode(Drover__EventRecord **evs, size_t n, uint8_t *out, size_t *lens)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        lens[i] = event_body_len(evs[i]);
        total += 1 + varint_len(lens[i]) + lens[i];
    }
    if (!out)
        return total;
    uint8_t *p = out;
    for (size_t i = 0; i < n; i++) {
        *p++ = 1 << 3 | 2; /* EventBatch.events */
        p = put_varint(p, lens[i]);
        p = put_event_body(p, evs[i]);
    }
    return (size_t)(p - out);
}

int store_put_events(store_t *s, Drover__EventRecord **evs, size_t n)
{
    uint8_t key[8];
    if (!s->txn)
        return -EINVAL;
    if (!n)
        return 0;
    put_be64(key, evs[0]->seq);
    size_t *lens = xmalloc(n * sizeof *lens);
    MDB_val k = {.mv_size = sizeof key, .mv_data = key};
    MDB_val val = {.mv_size = store_events_encode(evs, n, NULL, lens), .mv_data = NULL};
    /* seq only grows: appended at the B-tree's end, no search, pages
     * filled full (a seq not above the last is MDB_KEYEXIST: refused);
     * encoded straight into the reserved value */
    int rc = mdb_put(s->txn, s->events, &k, &val, MDB_RESERVE | MDB_APPEND);
    if (rc == 0) {
        store_events_encode(evs, n, val.mv_data, lens);
        s->txn_bytes += val.mv_size;
    }
    free(lens);
    if (rc) {
        log_error("mdb_put (events): %s", mdb_strerror(rc));
        return lmdb_errno(rc);
    }
    return 0;
}

/* Unpack the batch in val (NULL, logged, when undecodable). */
static Drover__EventBatch *unpack_batch(const MDB_val *key, const MDB_val *val)
{
    Drover__EventBatch *b = drover__event_batch__unpack(NULL, val->mv_size, val->mv_data);
    if (!b)
        log_warn("store: the undecodable event batch at %" PRIu64 " skipped",
                 key->mv_size == 8 ? be64(key->mv_data) : 0);
    return b;
}

int store_read_events(store_t *s, uint64_t since, const char *run_id, size_t max,
                      Drover__EventRecord ***out, size_t *n, uint64_t *first_seq)
{
    uint64_t last;
    return store_scan_events(s, since, run_id, max, SIZE_MAX, out, n, first_seq, &last);
}

int store_scan_events(store_t *s, uint64_t since, const char *run_id, size_t max, size_t scan_max,
                      Drover__EventRecord ***out, size_t *n, uint64_t *first_seq,
                      uint64_t *last_seen)
{
    MDB_txn *txn;
    size_t scanned = 0;
    MDB_cursor *cur = NULL;
    uint8_t kbuf[8];
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    *first_seq = 0;
    *last_seen = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return lmdb_errno(rc);
    MDB_val key, val;
    if ((rc = mdb_cursor_open(txn, s->events, &cur)) == 0 &&
        (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST)) == 0 && key.mv_size == 8)
        *first_seq = be64(key.mv_data);
    uint64_t want = since == UINT64_MAX ? since : since + 1;
    put_be64(kbuf, want);
    key.mv_size = sizeof kbuf;
    key.mv_data = kbuf;
    /* the batch holding want starts at or before it */
    if (rc == 0) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (rc == 0 && key.mv_size == 8 && be64(key.mv_data) > want &&
            mdb_cursor_get(cur, &key, &val, MDB_PREV) == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); /* want was pruned */
        else if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    }
    for (; rc == 0 && *n < max; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        Drover__EventBatch *b = unpack_batch(&key, &val);
        for (size_t i = 0; b && i < b->n_events; i++) {
            Drover__EventRecord *ev = b->events[i];
            bool look = ev->seq >= want && *n < max;
            if (look) {
                *last_seen = ev->seq;
                scanned++;
            }
            if (!look || (run_id && *run_id && strcmp(ev->run_id, run_id) != 0)) {
                drover__event_record__free_unpacked(ev, NULL);
                continue;
            }
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                *out = xrealloc(*out, cap * sizeof **out);
            }
            (*out)[(*n)++] = ev; /* taken out of the batch */
        }
        if (b) {
            free(b->events); /* every event was taken or freed */
            b->events = NULL;
            b->n_events = 0;
            drover__event_batch__free_unpacked(b, NULL);
        }
        if (scanned >= scan_max)
            break; /* the rest is the next request's */
    }
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}

void store_events_free(Drover__EventRecord **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        drover__event_record__free_unpacked(evs[i], NULL);
    free(evs);
}

int store_prune_events(store_t *s, uint64_t keep_from, uint64_t end_seq, int64_t before_ms,
                       size_t limit, uint64_t *pruned, bool *more)
{
    MDB_cursor *cur;
    MDB_val key, val, nkey, nval;
    size_t batches = 0;
    *pruned = 0;
    *more = false;
    if (!s->txn)
        return -EINVAL;
    int rc = mdb_cursor_open(s->txn, s->events, &cur);
    if (rc)
        return lmdb_errno(rc);
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        /* a batch goes whole: when the next one (end_seq after the last)
         * starts at or before keep_from (so all of this one is below it),
         * or its newest event is older than before_ms */
        if (key.mv_size != 8)
            break;
        uint8_t kb[8];
        memcpy(kb, key.mv_data, 8);
        uint64_t first = be64(kb);
        nkey = key;
        bool last = mdb_cursor_get(cur, &nkey, &nval, MDB_NEXT) != 0;
        uint64_t next = !last && nkey.mv_size == 8 ? be64(nkey.mv_data) : end_seq;
        key.mv_size = 8;
        key.mv_data = kb;
        if ((rc = mdb_cursor_get(cur, &key, &val, MDB_SET_KEY)))
            break;
        bool old = next <= keep_from;
        if (!old) {
            Drover__EventBatch *b = unpack_batch(&key, &val);
            old = !b || !b->n_events || b->events[b->n_events - 1]->time_ms < before_ms;
            if (b)
                drover__event_batch__free_unpacked(b, NULL);
        }
        if (!old)
            break;
        if (batches == limit) {
            *more = true;
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0)))
            break;
        batches++;
        *pruned += next > first ? next - first : 1;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_errno(rc);
}
