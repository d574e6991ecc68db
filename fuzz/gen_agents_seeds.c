/* gen_agents_seeds — write the fuzz_agents seed corpus.
 *
 *   gen_agents_seeds DIR
 *
 * Plays a fleet of well-behaved agents (and a CLI) against the harness's
 * scheduler (agents_harness.h) and records each conversation as one seed
 * file in the harness's record format, every message packed with
 * protobuf-c exactly as drover-agent sends it. Each agent acknowledges its
 * assignments, reports STARTED, fetches its inputs, logs, uploads its
 * outputs (offer, chunks) and reports EXITED with outputs and params;
 * scenarios add failures and retries, lost and re-registering agents,
 * strangers, API calls, log limits and malformed transfers. The harness
 * is deterministic, so replaying a seed in fuzz_agents takes the same
 * path. Run it again (make -C build-fuzz gen_agents_seeds) after the
 * harness or the protocol changes.
 */
#include "agents_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "strbuf.h"
#include "util.h"

#define MAX_ATTEMPTS 4096
#define MAX_PARTS    64

/* ------------------------------------------------------------ recording */

static fz_t *f;
static strbuf_t conv; /* the conversation: records */

static void record(uint8_t sel, const uint8_t *body, size_t len)
{
    if (len > 0xffff) {
        fprintf(stderr, "gen: a %zu-byte message does not fit a record\n", len);
        exit(1);
    }
    sb_putc(&conv, (char)sel);
    sb_putc(&conv, (char)(len & 0xff));
    sb_putc(&conv, (char)(len >> 8));
    sb_add(&conv, (const char *)body, len);
    fz_deliver(f, sel, body, len);
}

/* ------------------------------------------------------------ raw protobuf
 * Fields that came with checkpoints and preemption are written by hand and
 * appended to a packed message (protobuf allows any field order), so the
 * generator builds against any version of drover.proto: where a field
 * does not exist, droverd's decoder skips it as unknown. */

typedef strbuf_t pb_t; /* bytes, in strbuf's growable buffer */

static void pb_raw(pb_t *p, const void *data, size_t len)
{
    sb_add(p, data, len);
}

static void pb_varint(pb_t *p, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_raw(p, b, n);
}

static void pb_uint(pb_t *p, unsigned field, uint64_t v)
{
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}

static void pb_bytes(pb_t *p, unsigned field, const void *data, size_t len)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, len);
    pb_raw(p, data, len);
}

static void pb_free(pb_t *p)
{
    sb_free(p);
}

/* Pack m, append the hand-written fields in extra, record. */
static void send_agent_extra(uint8_t sel, const Drover__AgentMessage *m, const pb_t *extra)
{
    size_t n = drover__agent_message__get_packed_size(m);
    uint8_t *buf = xmalloc(n + (extra ? extra->len : 0) + 1);
    drover__agent_message__pack(m, buf);
    if (extra && extra->len)
        memcpy(buf + n, extra->buf, extra->len);
    record(sel, buf, n + (extra ? extra->len : 0));
    free(buf);
}

static void send_agent(uint8_t sel, const Drover__AgentMessage *m)
{
    send_agent_extra(sel, m, NULL);
}

static void send_api(const Drover__ApiRequest *r)
{
    size_t n = drover__api_request__get_packed_size(r);
    uint8_t *buf = xmalloc(n ? n : 1);
    drover__api_request__pack(r, buf);
    record(FZ_API, buf, n);
    free(buf);
}

/* ------------------------------------------------------------ scratch
 * Everything a message points to comes from here and is freed after the
 * message is sent. */

static void *scratch[4096];
static size_t n_scratch;

static void *sc(size_t n)
{
    if (n_scratch == sizeof scratch / sizeof scratch[0]) {
        fprintf(stderr, "gen: scratch full\n");
        exit(1);
    }
    return scratch[n_scratch++] = xcalloc(1, n ? n : 1);
}

static char *sc_str(const char *s)
{
    char *p = sc(strlen(s) + 1);
    memcpy(p, s, strlen(s));
    return p;
}

static void sc_free(void)
{
    while (n_scratch)
        free(scratch[--n_scratch]);
}

static ProtobufCBinaryData bin(const void *data, size_t len)
{
    ProtobufCBinaryData b = {len, sc(len)};
    memcpy(b.data, data, len);
    return b;
}

static Drover__KeyValue *kv(const char *k, const char *v)
{
    Drover__KeyValue *p = sc(sizeof *p);
    drover__key_value__init(p);
    p->key = sc_str(k);
    p->value = sc_str(v);
    return p;
}

/* ------------------------------------------------------------ the fleet */

typedef struct {
    const char *fail_step;  /* its first attempt exits 1 */
    const char *score;      /* prep's score param ("0.9": eval runs) */
    const char *list;       /* prep's list param (dyn's items) */
    const char *bad_digest; /* this step uploads content that does not match */
    bool no_upload;         /* report outputs without uploading them */
    bool chunked;           /* upload in 3-byte chunks, one re-sent */
    bool preempt;           /* gpu-1 is preempted during gpu's first attempt */
} seed_fleet_t;

#define CKPT_STEP "gpu" /* the harness's checkpointing step */

static int stage[MAX_ATTEMPTS];
static uint64_t seq[FZ_AGENTS + 1]; /* the agents and the ghost */

static char *content(const task_t *t, const char *artifact)
{
    return xasprintf("%s of %s, %s attempt\n", artifact, t->name, t->run->rec->id);
}

/* What attempt at of t uploads: its output artifacts, and a checkpoint
 * file for the checkpointing step. Returns how many; names[i] is NULL for
 * the checkpoint; contents are the caller's to free. */
static size_t uploads(const task_t *t, const Drover__AttemptRecord *at, const char **names,
                      char **contents, size_t max)
{
    size_t n = 0;
    for (size_t k = 0; k < t->step->n_out_artifacts && n < max; k++, n++) {
        names[n] = t->step->out_artifacts[k];
        contents[n] = content(t, names[n]);
    }
    if (!strcmp(t->step->name, CKPT_STEP) && n < max) {
        names[n] = NULL;
        contents[n++] = xasprintf("checkpoint of %s attempt %u\n", t->name, at->number);
    }
    return n;
}

/* A Checkpoint message (by hand: see pb_t) for at's checkpoint file. */
static void checkpoint_msg(pb_t *out, const task_t *t, const Drover__AttemptRecord *at)
{
    const char *names[8];
    char *contents[8];
    size_t n = uploads(t, at, names, contents, 8);
    char *c = contents[n - 1];
    uint8_t d[DIGEST_LEN];
    digest_buffer(c, strlen(c), d);
    Drover__FileEntry fe = DROVER__FILE_ENTRY__INIT, *fes = &fe;
    fe.path = "state.bin";
    fe.mode = 0600;
    fe.digest.data = d;
    fe.digest.len = DIGEST_LEN;
    fe.size = strlen(c);
    Drover__Artifact art = DROVER__ARTIFACT__INIT;
    art.name = "checkpoint";
    art.is_dir = true;
    art.files = &fes;
    art.n_files = 1;
    art.digest = fe.digest;
    art.size = fe.size;
    size_t len = drover__artifact__get_packed_size(&art);
    uint8_t *buf = xmalloc(len + 1);
    drover__artifact__pack(&art, buf);
    pb_bytes(out, 1, buf, len);                     /* artifact */
    pb_uint(out, 2, 100 * at->number);              /* step */
    pb_uint(out, 3, 1700000000000ULL + at->number); /* time_ms */
    pb_uint(out, 4, at->number);                    /* attempt */
    free(buf);
    for (size_t i = 0; i < n; i++)
        free(contents[i]);
}

/* Append report r to extra as AgentMessage.reports, with the raw fields
 * in tail appended to it. */
static void raw_report(pb_t *extra, const Drover__Report *r, const pb_t *tail)
{
    size_t len = drover__report__get_packed_size(r);
    uint8_t *buf = xmalloc(len + tail->len + 1);
    drover__report__pack(r, buf);
    memcpy(buf + len, tail->buf, tail->len);
    pb_bytes(extra, 3, buf, len + tail->len);
    free(buf);
}

static Drover__Report *report(int who, uint64_t attempt, Drover__ReportKind kind)
{
    Drover__Report *r = sc(sizeof *r);
    drover__report__init(r);
    r->seq = ++seq[who];
    r->attempt_id = attempt;
    r->kind = kind;
    r->time_ms = 1700000000000LL + (int64_t)r->seq;
    return r;
}

/* The files of an input artifact (a single file is one entry, path ""). */
static size_t input_files(const Drover__Artifact *art, const Drover__FileEntry **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < art->n_files && n < max; i++)
        out[n++] = art->files[i];
    return n;
}

/* One message per agent with work; whether anything was sent. Per
 * attempt: 0 acknowledge, STARTED, fetch inputs; 1 LOG, acknowledge the
 * fetched chunks, offer uploads; 2 upload; 3 CHECKPOINT (checkpointing
 * step); 4 EXITED with outputs and params. The heartbeat lists the running
 * attempts with their progress. */
static bool fleet_round(const seed_fleet_t *fl)
{
    sched_t *s = fz_sched(f);
    bool sent = false;
    for (int who = 0; who <= FZ_GHOST; who++) {
        agent_t *a = fleet_find(&s->fleet, who == FZ_GHOST ? "ghost" : fz_agent_names[who]);
        if (!a || !a->connected || !a->n_tasks)
            continue;
        Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
        Drover__Report *reps[MAX_PARTS];
        Drover__UploadOffer *offers[MAX_PARTS];
        Drover__BlobChunk *chunks[MAX_PARTS];
        Drover__ChunkAck *acks[MAX_PARTS];
        Drover__FetchRequest *fetches[MAX_PARTS];
        uint64_t assign_acks[MAX_PARTS];
        pb_t extra = {0}, running = {0}, progress = {0}, notice = {0};
        m.reports = reps;
        m.offers = offers;
        m.chunks = chunks;
        m.chunk_acks = acks;
        m.fetches = fetches;
        m.assign_acks = assign_acks;
        for (size_t i = 0; i < a->n_tasks && m.n_reports + 4 < MAX_PARTS; i++) {
            task_t *t = a->tasks[i];
            Drover__AttemptRecord *at = dag_current_attempt(t);
            if (!at || at->id >= MAX_ATTEMPTS)
                continue;
            const Drover__StepSpec *st = t->step;
            bool ckpt = !strcmp(st->name, CKPT_STEP);
            const char *names[8];
            char *contents[8];
            size_t n_up = 0;
            int *sg = &stage[at->id];
            if (*sg >= 1) {
                float p = 0.25f * (float)*sg;
                pb_varint(&running, at->id);
                pb_raw(&progress, &p, sizeof p); /* fixed32, little-endian */
            }
            switch (*sg) {
            case 0: /* acknowledge, start, fetch the inputs */
                m.assign_acks[m.n_assign_acks++] = at->id;
                m.reports[m.n_reports++] = report(who, at->id, DROVER__REPORT_KIND__REPORT_STARTED);
                for (size_t k = 0; k < st->n_inputs; k++) {
                    const Drover__Artifact *art = flow_input_artifact(t, st->inputs[k]);
                    const Drover__FileEntry *files[8];
                    size_t nf = art ? input_files(art, files, 8) : 0;
                    for (size_t j = 0; j < nf && m.n_fetches < MAX_PARTS; j++) {
                        Drover__FetchRequest *fr = sc(sizeof *fr);
                        drover__fetch_request__init(fr);
                        fr->attempt_id = at->id;
                        fr->digest = bin(files[j]->digest.data, files[j]->digest.len);
                        m.fetches[m.n_fetches++] = fr;
                    }
                }
                *sg = 1;
                break;
            case 1: { /* log, acknowledge what was fetched, offer uploads */
                Drover__Report *r = report(who, at->id, DROVER__REPORT_KIND__REPORT_LOG);
                char *line = xasprintf("running %s\n", t->name);
                r->data = bin(line, strlen(line));
                free(line);
                m.reports[m.n_reports++] = r;
                for (size_t k = 0; k < st->n_inputs; k++) {
                    const Drover__Artifact *art = flow_input_artifact(t, st->inputs[k]);
                    const Drover__FileEntry *files[8];
                    size_t nf = art ? input_files(art, files, 8) : 0;
                    for (size_t j = 0; j < nf && m.n_chunk_acks < MAX_PARTS; j++) {
                        Drover__ChunkAck *ck = sc(sizeof *ck);
                        drover__chunk_ack__init(ck);
                        ck->attempt_id = at->id;
                        ck->digest = bin(files[j]->digest.data, files[j]->digest.len);
                        ck->end = files[j]->size;
                        m.chunk_acks[m.n_chunk_acks++] = ck;
                    }
                }
                n_up = fl->no_upload ? 0 : uploads(t, at, names, contents, 8);
                if (n_up) {
                    Drover__UploadOffer *o = sc(sizeof *o);
                    drover__upload_offer__init(o);
                    o->attempt_id = at->id;
                    o->digests = sc(n_up * sizeof *o->digests);
                    o->sizes = sc(n_up * sizeof *o->sizes);
                    for (size_t k = 0; k < n_up; k++) {
                        uint8_t d[DIGEST_LEN];
                        digest_buffer(contents[k], strlen(contents[k]), d);
                        o->digests[o->n_digests++] = bin(d, DIGEST_LEN);
                        o->sizes[o->n_sizes++] = strlen(contents[k]);
                    }
                    m.offers[m.n_offers++] = o;
                    *sg = 2;
                } else {
                    *sg = 4;
                }
                break;
            }
            case 2: /* upload */
                n_up = uploads(t, at, names, contents, 8);
                for (size_t k = 0; k < n_up; k++) {
                    char *c = contents[k];
                    size_t len = strlen(c);
                    uint8_t d[DIGEST_LEN];
                    digest_buffer(c, len, d);
                    if (fl->bad_digest && !strcmp(fl->bad_digest, st->name))
                        c[0] ^= 1;
                    size_t step = fl->chunked ? 3 : len;
                    for (size_t off = 0; off < len && m.n_chunks + 1 < MAX_PARTS; off += step) {
                        Drover__BlobChunk *ch = sc(sizeof *ch);
                        drover__blob_chunk__init(ch);
                        ch->attempt_id = at->id;
                        ch->digest = bin(d, DIGEST_LEN);
                        ch->offset = off;
                        ch->data = bin(c + off, off + step < len ? step : len - off);
                        ch->size = len;
                        m.chunks[m.n_chunks++] = ch;
                        if (fl->chunked && off == step) /* a re-send */
                            m.chunks[m.n_chunks++] = ch;
                    }
                }
                *sg = ckpt ? 3 : 4;
                break;
            case 3: { /* a checkpoint (REPORT_CHECKPOINT = 3, field 14) */
                Drover__Report *r = report(who, at->id, (Drover__ReportKind)3);
                pb_t ck = {0}, tail = {0};
                checkpoint_msg(&ck, t, at);
                pb_bytes(&tail, 14, ck.buf, ck.len);
                raw_report(&extra, r, &tail);
                pb_free(&ck);
                pb_free(&tail);
                *sg = 4;
                break;
            }
            case 4: { /* exit, with outputs and params */
                Drover__Report *r = report(who, at->id, DROVER__REPORT_KIND__REPORT_EXITED);
                bool fail = fl->fail_step && !strcmp(fl->fail_step, st->name) && at->number == 1;
                if (fl->preempt && ckpt && at->number == 1) {
                    /* the node is reclaimed: a notice in the heartbeat, and
                     * the attempt ends preempted (field 13) with its final
                     * checkpoint (field 14) */
                    pb_uint(&notice, 1, 1); /* terminate */
                    pb_uint(&notice, 2, 1700000060000ULL);
                    pb_bytes(&notice, 3, "spot reclaim", 12);
                    r->term_signal = 15;
                    r->reason = sc_str("preempted");
                    pb_t ck = {0}, tail = {0};
                    checkpoint_msg(&ck, t, at);
                    pb_uint(&tail, 13, 1);
                    pb_bytes(&tail, 14, ck.buf, ck.len);
                    raw_report(&extra, r, &tail);
                    pb_free(&ck);
                    pb_free(&tail);
                    *sg = 5;
                    break;
                }
                r->exit_code = fail ? 1 : 0;
                r->reason = sc_str(fail ? "exit status 1" : "");
                n_up = fail ? 0 : uploads(t, at, names, contents, 8);
                r->outputs = sc(n_up * sizeof *r->outputs);
                for (size_t k = 0; k < n_up; k++) {
                    if (!names[k])
                        continue; /* the checkpoint */
                    uint8_t d[DIGEST_LEN];
                    digest_buffer(contents[k], strlen(contents[k]), d);
                    Drover__Artifact *art = sc(sizeof *art);
                    drover__artifact__init(art);
                    art->name = sc_str(names[k]);
                    art->digest = bin(d, DIGEST_LEN);
                    art->size = strlen(contents[k]);
                    Drover__FileEntry *fe = sc(sizeof *fe);
                    drover__file_entry__init(fe);
                    fe->path = sc_str("");
                    fe->mode = 0644;
                    fe->digest = bin(d, DIGEST_LEN);
                    fe->size = art->size;
                    art->files = sc(sizeof *art->files);
                    art->files[art->n_files++] = fe;
                    r->outputs[r->n_outputs++] = art;
                }
                if (!fail) {
                    r->out_params = sc(st->n_out_params * sizeof *r->out_params);
                    for (size_t k = 0; k < st->n_out_params; k++) {
                        const char *p = st->out_params[k];
                        const char *v = !strcmp(p, "score")  ? fl->score
                                        : !strcmp(p, "list") ? fl->list
                                                             : "1";
                        r->out_params[r->n_out_params++] = kv(p, v);
                    }
                }
                m.reports[m.n_reports++] = r;
                *sg = 5;
                break;
            }
            default:
                break;
            }
            for (size_t k = 0; k < n_up; k++)
                free(contents[k]);
        }
        /* Heartbeat (field 2): running (1, packed), progress (2, packed
         * floats), preemption notice (3). */
        pb_t hb = {0};
        if (running.len) {
            pb_bytes(&hb, 1, running.buf, running.len);
            pb_bytes(&hb, 2, progress.buf, progress.len);
        }
        if (notice.len)
            pb_bytes(&hb, 3, notice.buf, notice.len);
        pb_bytes(&extra, 2, hb.buf, hb.len);
        send_agent_extra((uint8_t)who, &m, &extra);
        pb_free(&hb);
        pb_free(&extra);
        pb_free(&running);
        pb_free(&progress);
        pb_free(&notice);
        sc_free();
        sent = true;
    }
    return sent;
}

/* Rounds until the run ends; a round with nothing to say is a tick (the
 * retry backoff passes), two in a row end the play. */
static void play(const seed_fleet_t *fl, int max_rounds)
{
    int idle = 0;
    for (int i = 0; i < max_rounds && idle < 2; i++) {
        run_t *r = fz_run(f);
        if (!r || dag_run_final(r))
            return;
        if (fleet_round(fl)) {
            idle = 0;
            continue;
        }
        idle++;
        Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
        Drover__Heartbeat hb = DROVER__HEARTBEAT__INIT;
        m.heartbeat = &hb;
        send_agent(0 | FZ_TICK, &m);
    }
}

static const seed_fleet_t HAPPY = {.score = "0.9", .list = "[\"x\",\"y\",{\"k\":1}]"};

/* ------------------------------------------------------------ messages */

static void heartbeat(uint8_t sel, const uint64_t *running, size_t n)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat hb = DROVER__HEARTBEAT__INIT;
    hb.running = (uint64_t *)running;
    hb.n_running = n;
    m.heartbeat = &hb;
    send_agent(sel, &m);
}

static void reg_gpus(uint8_t sel, const char *name, const char *labels, uint32_t gpus,
                     const uint64_t *held, size_t n)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register r = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    Drover__KeyValue **kvs = NULL;
    size_t n_kvs = 0;
    util_parse_kv_list(labels, &kvs, &n_kvs);
    cap.cpu_milli = 2000;
    cap.memory_bytes = 4ULL << 30;
    cap.gpus = gpus;
    r.name = (char *)name;
    r.capacity = &cap;
    r.labels = kvs;
    r.n_labels = n_kvs;
    r.attempts = (uint64_t *)held;
    r.n_attempts = n;
    r.version = "0.1.0";
    r.runtime = "process";
    m.register_ = &r;
    send_agent(sel, &m);
    util_free_kvs(kvs, n_kvs);
}

static void reg(uint8_t sel, const char *name, const char *labels, const uint64_t *held, size_t n)
{
    reg_gpus(sel, name, labels, 0, held, n);
}

/* Attempt ids an agent holds now. */
static size_t held(int who, uint64_t *ids, size_t max)
{
    agent_t *a = fleet_find(&fz_sched(f)->fleet, fz_agent_names[who]);
    size_t n = 0;
    for (size_t i = 0; a && i < a->n_tasks && n < max; i++)
        ids[n++] = dag_current_attempt(a->tasks[i])->id;
    return n;
}

static void api_run_op(int op, const char *id)
{
    Drover__ApiRequest r = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = (char *)id;
    r.op_case = op;
    if (op == DROVER__API_REQUEST__OP_GET_RUN)
        r.get_run = &rr;
    else if (op == DROVER__API_REQUEST__OP_CANCEL_RUN)
        r.cancel_run = &rr;
    else
        r.delete_run = &rr;
    send_api(&r);
}

static void api_logs(const char *task, uint64_t offset)
{
    Drover__ApiRequest r = DROVER__API_REQUEST__INIT;
    Drover__LogsRequest l = DROVER__LOGS_REQUEST__INIT;
    l.run_id = "r000001";
    l.task = (char *)task;
    l.offset = offset;
    l.max_bytes = 1000;
    r.op_case = DROVER__API_REQUEST__OP_LOGS;
    r.logs = &l;
    send_api(&r);
}

static void api_misc(void)
{
    Drover__ApiRequest r = DROVER__API_REQUEST__INIT;
    Drover__ListRunsRequest lr = DROVER__LIST_RUNS_REQUEST__INIT;
    lr.limit = 10;
    r.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    r.list_runs = &lr;
    send_api(&r);

    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    ar.name = "";
    r.op_case = DROVER__API_REQUEST__OP_LIST_AGENTS;
    r.list_agents = &ar;
    send_api(&r);

    Drover__ArtifactsRequest art = DROVER__ARTIFACTS_REQUEST__INIT;
    art.run_id = "r000001";
    art.task = "";
    r.op_case = DROVER__API_REQUEST__OP_ARTIFACTS;
    r.artifacts = &art;
    send_api(&r);
}

/* ------------------------------------------------------------ scenarios */

static void begin(void)
{
    f = fz_open();
    sb_free(&conv);
    memset(stage, 0, sizeof stage);
    memset(seq, 0, sizeof seq);
}

/* What the play reached, for whoever regenerates the seeds. */
static void summary(const char *name)
{
    run_t *r = fz_run(f);
    printf("%-24s run %s:", name, r ? util_run_status_name(r->rec->status) : "deleted");
    for (size_t i = 0; r && i < r->n_tasks; i++)
        printf(" %s=%s", r->tasks[i]->name, util_task_status_name(r->tasks[i]->status));
    printf("\n");
}

static void end(const char *dir, const char *name)
{
    fz_flush(f);
    summary(name);
    fz_close(&f);
    char *path = xasprintf("%s/%s", dir, name);
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(conv.buf, 1, conv.len, out) != conv.len || fclose(out) != 0) {
        fprintf(stderr, "gen: writing %s: %s\n", path, strerror(errno));
        exit(1);
    }
    printf("%-24s %zu bytes\n", "", conv.len);
    free(path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_agents_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    if (util_mkdir_p(dir, 0755) < 0) {
        fprintf(stderr, "gen: mkdir %s failed\n", dir);
        return 1;
    }

    /* A whole run, every step succeeding. */
    begin();
    play(&HAPPY, 60);
    end(dir, "happy-run");

    /* The first rounds only: short seeds the fuzzer can extend. */
    for (int rounds = 1; rounds <= 3; rounds++) {
        begin();
        play(&HAPPY, rounds);
        char name[32];
        snprintf(name, sizeof name, "first-%d-rounds", rounds);
        end(dir, name);
    }

    /* A failure and its retry; `when` false (eval skipped). */
    begin();
    seed_fleet_t retry = HAPPY;
    retry.fail_step = "gpu";
    retry.score = "0.1";
    play(&retry, 60);
    end(dir, "retry-and-skip");

    /* gpu-1 is reclaimed during gpu's first attempt, which ends preempted
     * with a final checkpoint; the notice is withdrawn and the step
     * resumes from its checkpoint. */
    begin();
    seed_fleet_t pre = HAPPY;
    pre.preempt = true;
    reg_gpus(FZ_GHOST, "ghost", "zone=a", 1, NULL, 0); /* where gpu resumes */
    play(&pre, 60);
    end(dir, "preempt-resume");

    /* Fan-out lists that are too long or not JSON; chunked uploads. */
    begin();
    seed_fleet_t lists = HAPPY;
    lists.list = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,"
                 "29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,"
                 "55,56,57,58,59,60,61,62,63,64,65]";
    lists.chunked = true;
    play(&lists, 60);
    end(dir, "too-many-items-chunked");
    begin();
    lists.list = "{not json";
    lists.score = "high";
    play(&lists, 60);
    end(dir, "bad-items-bad-score");

    /* Uploads that fail: a digest mismatch, outputs never uploaded. */
    begin();
    seed_fleet_t bad = HAPPY;
    bad.bad_digest = "prep";
    play(&bad, 10);
    end(dir, "bad-digest");
    begin();
    bad = HAPPY;
    bad.no_upload = true;
    play(&bad, 10);
    end(dir, "outputs-not-uploaded");

    /* cpu-1 misses its heartbeats and is lost, comes back, registers
     * again holding its old attempts (they get killed), work goes on. */
    begin();
    play(&HAPPY, 2);
    uint64_t ids[64];
    size_t n = held(1, ids, 64);
    heartbeat(1 | FZ_AGE, ids, n);
    heartbeat(1, ids, n); /* answered "register first" */
    reg(1, "cpu-1", "zone=b", ids, n);
    play(&HAPPY, 60);
    end(dir, "lost-and-back");

    /* droverd restarts mid-run (everything reloaded from LMDB); the
     * agents are told to register again and do, holding their attempts. */
    begin();
    play(&HAPPY, 3);
    heartbeat(0 | FZ_RESTART, NULL, 0);
    for (int who = 0; who < FZ_AGENTS; who++) {
        n = held(who, ids, 64);
        reg_gpus((uint8_t)who, fz_agent_names[who], who ? "zone=b" : "zone=a,gpu=a100", who ? 0 : 1,
                 ids, n);
    }
    play(&HAPPY, 60);
    end(dir, "droverd-restart");

    /* gpu-1 restarts mid-run: registers again holding its attempts and a
     * stale one; heartbeats name unknown attempts; a report is re-sent. */
    begin();
    play(&HAPPY, 2);
    n = held(0, ids, 63);
    ids[n++] = 999;
    reg(0, "gpu-1", "zone=a,gpu=a100", ids, n);
    uint64_t unknown[] = {12345, ids[0], 0};
    heartbeat(0, unknown, 3);
    play(&HAPPY, 60);
    end(dir, "reregister-stale");

    /* Strangers: a ghost talks before registering, then registers; bad
     * routing ids; a registration whose name is not its routing id; one
     * with too many labels. */
    begin();
    heartbeat(FZ_GHOST, NULL, 0);
    reg(FZ_GHOST, "ghost", "zone=c,pool=gpu", NULL, 0);
    uint64_t nope[] = {7, 8};
    heartbeat(FZ_GHOST, nope, 2);
    heartbeat(4, NULL, 0);
    heartbeat(5, NULL, 0);
    heartbeat(6 | FZ_NO_FLUSH, NULL, 0);
    reg(2, "not-cpu-2", "zone=b", NULL, 0);
    char many[65 * 8] = "";
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d=v", i ? "," : "", i);
    reg(FZ_GHOST, "ghost", many, NULL, 0);
    play(&HAPPY, 60);
    end(dir, "strangers");

    /* The CLI meanwhile: views, logs, drain, cancel, delete, cache. */
    begin();
    api_misc();
    play(&HAPPY, 3);
    api_run_op(DROVER__API_REQUEST__OP_GET_RUN, "r000001");
    api_logs("prep", 0);
    api_logs("train[1]", 5);
    {
        Drover__ApiRequest r = DROVER__API_REQUEST__INIT;
        Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
        ar.name = "cpu-2";
        r.op_case = DROVER__API_REQUEST__OP_DRAIN_AGENT;
        r.drain_agent = &ar;
        send_api(&r);
    }
    api_run_op(DROVER__API_REQUEST__OP_CANCEL_RUN, "r000001");
    play(&HAPPY, 20);
    heartbeat(2 | FZ_AGE | FZ_TICK, NULL, 0); /* a month later: retention */
    api_run_op(DROVER__API_REQUEST__OP_DELETE_RUN, "r000001");
    {
        Drover__ApiRequest r = DROVER__API_REQUEST__INIT;
        Drover__Empty e = DROVER__EMPTY__INIT;
        r.op_case = DROVER__API_REQUEST__OP_CLEAR_CACHE;
        r.clear_cache = &e;
        send_api(&r);
        Drover__SubmitRequest sub = DROVER__SUBMIT_REQUEST__INIT;
        static const char spec[] = "name: again\nparams: {n: \"1\"}\nsteps:\n"
                                   "  - {name: a, command: [echo, \"{{params.n}}\"]}\n";
        sub.file = "again.yaml";
        sub.spec.data = (uint8_t *)spec;
        sub.spec.len = sizeof spec - 1;
        Drover__KeyValue p = DROVER__KEY_VALUE__INIT;
        Drover__KeyValue *pp = &p;
        p.key = "n";
        p.value = "2";
        sub.params = &pp;
        sub.n_params = 1;
        r.op_case = DROVER__API_REQUEST__OP_SUBMIT;
        r.submit = &sub;
        send_api(&r);
        Drover__BlobRequest br = DROVER__BLOB_REQUEST__INIT;
        uint8_t d[DIGEST_LEN];
        static const char data[] = "data of prep, r000001 attempt\n"; /* content() */
        digest_buffer(data, sizeof data - 1, d);
        br.digest.data = d;
        br.digest.len = DIGEST_LEN;
        br.max_bytes = 100;
        r.op_case = DROVER__API_REQUEST__OP_READ_BLOB;
        r.read_blob = &br;
        send_api(&r);
    }
    end(dir, "api-cancel-delete");

    /* Logs around the stored limit (4096 bytes per attempt), out of order
     * and overlapping. */
    begin();
    play(&HAPPY, 1);
    n = held(1, ids, 64);
    if (n) {
        static const uint64_t offsets[] = {0, 3000, 100, 4090, 1ULL << 40, UINT64_MAX - 2};
        static char text[3000];
        memset(text, 'l', sizeof text);
        Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
        Drover__Report *reps[6];
        for (size_t i = 0; i < 6; i++) {
            reps[i] = report(1, ids[0], DROVER__REPORT_KIND__REPORT_LOG);
            reps[i]->offset = offsets[i];
            reps[i]->data.data = (uint8_t *)text;
            reps[i]->data.len = i == 2 ? 10 : sizeof text;
        }
        m.reports = reps;
        m.n_reports = 6;
        send_agent(1, &m);
        sc_free();
    }
    play(&HAPPY, 60);
    end(dir, "logs-over-limit");
    return 0;
}
