/* agents_harness — see agents_harness.h. */
#include "agents_harness.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "util.h"

#define HOUR_MS (3600 * 1000)

const char *const fz_agent_names[FZ_AGENTS] = {"gpu-1", "cpu-1", "cpu-2"};

/* A printf format: %s is where GPU_EXTRA goes. */
static const char *const RUN_SPEC = "name: fuzz\n"
                                    "params:\n"
                                    "  greeting: hello\n"
                                    "defaults:\n"
                                    "  retries: {limit: 1, backoff: 1s}\n"
                                    "steps:\n"
                                    "  - name: prep\n"
                                    "    command: [echo, \"{{params.greeting}}\"]\n"
                                    "    outputs: {artifacts: [data], params: [score, list]}\n"
                                    "  - name: train\n"
                                    "    needs: [prep]\n"
                                    "    for_each: [\"a\", \"b\", {\"lr\": 0.1}]\n"
                                    "    parallelism: 2\n"
                                    "    inputs: {artifacts: {d: prep.data}}\n"
                                    "    outputs: {artifacts: [model]}\n"
                                    "    script: echo \"{{item}}\"\n"
                                    "  - name: dyn\n"
                                    "    needs: [prep]\n"
                                    "    for_each: \"{{steps.prep.outputs.params.list}}\"\n"
                                    "    command: [echo, \"{{item}}\"]\n"
                                    "  - name: gpu\n"
                                    "    resources: {cpu: 1, memory: 1Gi, gpu: 1}\n"
                                    "%s" /* GPU_EXTRA, or nothing */
                                    "    placement: {labels: {zone: a}}\n"
                                    "    retries: {limit: 2, backoff: 1s}\n"
                                    "    timeout: 1m\n"
                                    "    command: [nvidia-smi]\n"
                                    "  - name: eval\n"
                                    "    needs: [train, prep]\n"
                                    "    when: \"{{steps.prep.outputs.params.score}} > 0.5\"\n"
                                    "    inputs: {artifacts: {models: train.model}}\n"
                                    "    command: [echo, \"{{steps.prep.outputs.params.score}}\"]\n"
                                    "  - name: img\n"
                                    "    image: alpine\n"
                                    "    command: [\"true\"]\n"
                                    "finally:\n"
                                    "  - name: notify\n"
                                    "    command: [echo, \"{{run.status}}\"]\n";

/* Spliced into the gpu step: checkpoints and preemption settings. When
 * the spec parser refuses them (a version without the feature), the run
 * is submitted without. */
static const char *const GPU_EXTRA = "    checkpoint: {keep: 2}\n"
                                     "    preemption: {grace: 5s, max_preemptions: 3}\n";

struct fz {
    sched_t *s;
    sched_config_t cfg;
    run_t *run;
    char *dir;
    char *listen, *api;
};

static char *base_dir; /* one per process, removed at exit */
static unsigned opened;

static void remove_base(void)
{
    if (base_dir)
        util_rm_rf(base_dir);
}

/* State dirs of harness processes that died without cleaning up (a crash
 * exits at once): ROOT/drover-fuzz-PID-XXXXXX whose PID is gone. */
static void remove_stale(const char *root)
{
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid;
        if (sscanf(e->d_name, "drover-fuzz-%ld-", &pid) != 1 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* still running (or not ours to ask) */
        char *path = xasprintf("%s/%s", root, e->d_name);
        util_rm_rf(path);
        free(path);
    }
    if (d)
        closedir(d);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz harness: %s\n", what);
    abort();
}

static void send_register(sched_t *s, const char *name, uint32_t cpu, uint64_t mem, uint32_t gpus,
                          const char *labels, const char *runtime, bool images)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    Drover__KeyValue **kvs = NULL;
    size_t n_kvs = 0;
    if (util_parse_kv_list(labels, &kvs, &n_kvs) < 0)
        die("bad labels");
    cap.cpu_milli = cpu;
    cap.memory_bytes = mem;
    cap.gpus = gpus;
    reg.name = (char *)name;
    reg.capacity = &cap;
    reg.labels = kvs;
    reg.n_labels = n_kvs;
    reg.version = "fuzz";
    reg.runtime = (char *)runtime;
    reg.images = images;
    m.register_ = &reg;
    size_t n = drover__agent_message__get_packed_size(&m);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__agent_message__pack(&m, buf);
    zframe_t *id = zframe_new(name, strlen(name));
    agents_handle(s, id, NULL, buf, n);
    zframe_destroy(&id);
    free(buf);
    util_free_kvs(kvs, n_kvs);
    agent_t *a = fleet_find(&s->fleet, name);
    if (!a || !a->connected)
        die("an agent did not register");
}

fz_t *fz_open(void)
{
    return fz_open_fleet(true);
}

fz_t *fz_open_fleet(bool with_run)
{
    if (!base_dir) {
        const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        remove_stale(root);
        base_dir = xasprintf("%s/drover-fuzz-%ld-XXXXXX", root, (long)getpid());
        if (!mkdtemp(base_dir))
            die("mkdtemp failed");
        atexit(remove_base);
    }
    fz_t *f = xcalloc(1, sizeof *f);
    f->dir = xasprintf("%s/s%u", base_dir, opened++);
    f->listen = xasprintf("ipc://%s/agents.sock", f->dir);
    f->api = xasprintf("ipc://%s/api.sock", f->dir);
    if (util_mkdir_p(f->dir, 0700) < 0)
        die("mkdir state dir failed");

    sched_config_t *cfg = &f->cfg;
    sched_config_defaults(cfg);
    cfg->state_dir = f->dir;
    cfg->listen = f->listen;
    cfg->api = f->api;
    cfg->agent_timeout_ms = 60 * 1000; /* only an aged agent is lost */
    cfg->assign_resend_ms = 30 * 1000;
    cfg->log_limit = 4096; /* small: log truncation is reachable */
    cfg->max_items = 64;
    cfg->max_depth = 8;        /* a recursion of templates: a few levels are enough */
    cfg->max_run_tasks = 4096; /* and a fan-out of them stays small */
    f->s = sched_new(cfg);
    if (!f->s)
        die("sched_new failed (DROVER_FUZZ_LOG=1 shows why)");
    ev_timer_stop(f->s->loop, &f->s->tick_w);

    send_register(f->s, fz_agent_names[0], 4000, 16ULL << 30, 1, "zone=a,gpu=a100", "process",
                  false);
    send_register(f->s, fz_agent_names[1], 2000, 4ULL << 30, 0, "zone=b", "process", false);
    send_register(f->s, fz_agent_names[2], 2000, 4ULL << 30, 0, "zone=b,pool=img", "oci", true);

    if (!with_run)
        return f;
    char err[512];
    spec_t *spec = NULL;
    for (int plain = 0; plain < 2 && !spec; plain++) {
        char *yaml = xasprintf(RUN_SPEC, plain ? "" : GPU_EXTRA);
        if (spec_parse("fuzz.yaml", yaml, strlen(yaml), NULL, 0, &spec, err, sizeof err) < 0 &&
            plain) {
            fprintf(stderr, "fuzz harness: the run's spec: %s\n", err);
            abort();
        }
        free(yaml);
    }
    f->run = dag_create_run(f->s, spec, "fuzz.yaml", false);
    spec_destroy(&spec);
    if (!f->run)
        die("dag_create_run failed");
    fz_flush(f);
    return f;
}

void fz_close(fz_t **fp)
{
    fz_t *f = *fp;
    if (!f)
        return;
    sched_destroy(&f->s);
    util_rm_rf(f->dir);
    free(f->dir);
    free(f->listen);
    free(f->api);
    free(f);
    *fp = NULL;
}

sched_t *fz_sched(fz_t *f)
{
    return f->s;
}

run_t *fz_run(fz_t *f)
{
    /* The run may have been deleted through the API. */
    return f->run && dag_find_run(f->s, "r000001") == f->run ? f->run : NULL;
}

void fz_flush(fz_t *f)
{
    sched_t *s = f->s;
    for (int round = 0; round < 64; round++) {
        while (worker_pending(s->worker))
            ev_run(s->loop, EVRUN_ONCE);
        ev_run(s->loop, EVRUN_NOWAIT); /* prepare: place, commit, send */
        if (!worker_pending(s->worker))
            return;
    }
}

static void tick(fz_t *f, agent_t *aged, bool gc)
{
    sched_t *s = f->s;
    if (aged) {
        aged->last_seen_mono -= HOUR_MS;
        for (size_t i = 0; i < aged->n_tasks; i++)
            aged->tasks[i]->assign_sent_mono -= HOUR_MS;
    }
    int64_t now = util_now_ms();
    dag_retry_due(s, now + 24LL * HOUR_MS);
    agents_tick(s);
    if (gc) { /* droverd's hourly pass, as if the retention time had passed */
        dag_retention(s, now + (int64_t)s->cfg.retention_ms + HOUR_MS);
        blobstore_sweep(s);
    }
}

void fz_restart(fz_t *f)
{
    sched_destroy(&f->s);
    f->s = sched_new(&f->cfg);
    if (!f->s)
        die("sched_new failed on restart (DROVER_FUZZ_LOG=1 shows why)");
    ev_timer_stop(f->s->loop, &f->s->tick_w);
    f->run = f->run ? dag_find_run(f->s, "r000001") : NULL;
}

void fz_deliver(fz_t *f, uint8_t sel, const uint8_t *body, size_t len)
{
    static const char *const bad_ids[] = {
        "", "a123456789b123456789c123456789d123456789e123456789f123456789wxyz", "has space"};
    unsigned who = sel & 7;
    const char *name = who < FZ_AGENTS   ? fz_agent_names[who]
                       : who == FZ_GHOST ? "ghost"
                       : who < FZ_API    ? bad_ids[who - 4]
                                         : "cli-1";
    if (sel & FZ_RESTART)
        fz_restart(f);
    if (sel & (FZ_AGE | FZ_TICK)) {
        agent_t *a = (sel & FZ_AGE) && who < FZ_API ? fleet_find(&f->s->fleet, name) : NULL;
        tick(f, a, (sel & (FZ_AGE | FZ_TICK)) == (FZ_AGE | FZ_TICK));
    }
    /* The body in a buffer of its exact size: overreads are ASan reports. */
    uint8_t *copy = xmalloc(len ? len : 1);
    if (len)
        memcpy(copy, body, len);
    zframe_t *id = zframe_new(name, strlen(name));
    if (who == FZ_API) {
        api_handle(f->s, id, copy, len); /* takes id */
    } else {
        agents_handle(f->s, id, NULL, copy, len);
        zframe_destroy(&id);
    }
    free(copy);
    if (!(sel & FZ_NO_FLUSH))
        fz_flush(f);
}

void fz_converse(fz_t *f, const uint8_t *data, size_t size)
{
    while (size >= 3) {
        uint8_t sel = data[0];
        size_t len = data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        fz_deliver(f, sel, data, len);
        data += len;
        size -= len;
    }
    fz_flush(f);
}

/* ------------------------------------------------------------ fz_drive */

static void deliver_msg(fz_t *f, const char *name, const Drover__AgentMessage *m)
{
    size_t n = drover__agent_message__get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__agent_message__pack(m, buf);
    zframe_t *id = zframe_new(name, strlen(name));
    agents_handle(f->s, id, NULL, buf, n);
    zframe_destroy(&id);
    free(buf);
    fz_flush(f);
}

/* One round for one agent: STARTED (+ the blob, for steps with output
 * artifacts), then EXITED 0 with every declared output. */
static bool drive_agent(fz_t *f, agent_t *a, uint64_t *seq)
{
    static const char blob[] = "fuzz artifact\n";
    uint8_t digest[32];
    digest_buffer(blob, sizeof blob - 1, digest);
    size_t n = a->n_tasks < 64 ? a->n_tasks : 64;
    if (!n)
        return false;
    uint64_t ids[64];
    for (size_t i = 0; i < n; i++)
        ids[i] = dag_current_attempt(a->tasks[i])->id;

    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Report reps[64], *rp[64];
    Drover__BlobChunk chunks[64], *cp[64];
    m.reports = rp;
    m.chunks = cp;
    for (size_t i = 0; i < n; i++) {
        drover__report__init(&reps[i]);
        reps[i].seq = ++*seq;
        reps[i].attempt_id = ids[i];
        reps[i].kind = DROVER__REPORT_KIND__REPORT_STARTED;
        rp[m.n_reports++] = &reps[i];
        drover__blob_chunk__init(&chunks[i]);
        chunks[i].attempt_id = ids[i];
        chunks[i].digest.data = digest;
        chunks[i].digest.len = sizeof digest;
        chunks[i].data.data = (uint8_t *)blob;
        chunks[i].data.len = sizeof blob - 1;
        chunks[i].size = sizeof blob - 1;
        cp[m.n_chunks++] = &chunks[i];
    }
    deliver_msg(f, a->name, &m);

    /* EXITED: outputs as the step declares them (the task may be gone). */
    Drover__AgentMessage e = DROVER__AGENT_MESSAGE__INIT;
    Drover__FileEntry fe = DROVER__FILE_ENTRY__INIT, *fep = &fe;
    fe.path = "";
    fe.digest.data = digest;
    fe.digest.len = sizeof digest;
    fe.size = sizeof blob - 1;
    Drover__Artifact arts[64][4], *ap[64][4];
    Drover__KeyValue kvs[64][4], *kp[64][4];
    e.reports = rp;
    for (size_t i = 0; i < n; i++) {
        task_t *t = idmap_get(f->s->dag.attempts, ids[i]);
        drover__report__init(&reps[i]);
        reps[i].seq = ++*seq;
        reps[i].attempt_id = ids[i];
        reps[i].kind = DROVER__REPORT_KIND__REPORT_EXITED;
        for (size_t k = 0; t && k < t->step->n_out_artifacts && k < 4; k++) {
            drover__artifact__init(&arts[i][k]);
            arts[i][k].name = t->step->out_artifacts[k];
            arts[i][k].files = &fep;
            arts[i][k].n_files = 1;
            arts[i][k].digest = fe.digest;
            arts[i][k].size = fe.size;
            ap[i][k] = &arts[i][k];
            reps[i].n_outputs = k + 1;
        }
        reps[i].outputs = ap[i];
        for (size_t k = 0; t && k < t->step->n_out_params && k < 4; k++) {
            drover__key_value__init(&kvs[i][k]);
            kvs[i][k].key = t->step->out_params[k];
            kvs[i][k].value = "[\"1\",\"b\"]";
            kp[i][k] = &kvs[i][k];
            reps[i].n_out_params = k + 1;
        }
        reps[i].out_params = kp[i];
        rp[e.n_reports++] = &reps[i];
    }
    deliver_msg(f, a->name, &e);
    return true;
}

/* An agent droverd lost (or forgot in a restart) connects again, holding
 * the attempts droverd had given it. */
static void reregister(fz_t *f, agent_t *a)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    uint64_t held[64];
    size_t n = 0;
    for (size_t i = 0; i < a->n_tasks && n < 64; i++)
        held[n++] = dag_current_attempt(a->tasks[i])->id;
    cap = a->capacity;
    reg.name = a->name;
    reg.capacity = &cap;
    reg.labels = a->labels;
    reg.n_labels = a->n_labels;
    reg.attempts = held;
    reg.n_attempts = n;
    reg.runtime = a->runtime ? a->runtime : "process";
    reg.images = a->images;
    m.register_ = &reg;
    deliver_msg(f, a->name, &m);
}

void fz_drive(fz_t *f, int rounds)
{
    uint64_t seq = 0;
    for (int r = 0; r < rounds; r++) {
        bool any = false;
        for (int who = 0; who < FZ_AGENTS; who++) {
            agent_t *a = fleet_find(&f->s->fleet, fz_agent_names[who]);
            if (a && !a->connected)
                reregister(f, a);
            if (a && a->connected)
                any |= drive_agent(f, a, &seq);
        }
        if (!any) { /* retries waiting out their backoff? */
            tick(f, NULL, false);
            fz_flush(f);
            if (!f->s->dag.n_ready)
                return;
        }
    }
}
