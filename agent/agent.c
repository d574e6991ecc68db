/* agent — see agent.h.
 *
 * Loop structure mirrors droverd's: handlers (socket, process output,
 * process exit, timers) only queue work; a high-priority ev_prepare sends
 * one batched AgentMessage per iteration (assignment acks + due reports)
 * and frees finished attempts. Log output is buffered per attempt and sent
 * as LOG reports of up to LOG_CHUNK bytes, or every LOG_FLUSH_S.
 */
#include "agent_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "path.h"
#include "sdnotify.h"
#include "util.h"

#define LOG_CHUNK            (64 * 1024)
#define LOG_FLUSH_S          0.1
#define RESEND_MS            3000
#define BATCH_REPORTS        1024
#define BATCH_BYTES          (4 << 20)
#define MAX_MESSAGE          (64 << 20)
#define NAME_COMPONENT_MAX   128
#define STARTS_PER_ITERATION 16
#define SPARE_DIRS           1024 /* clean attempt dirs kept for reuse */

/* ------------------------------------------------------------ config */

void agent_config_defaults(agent_config_t *cfg)
{
    static char host[64];
    memset(cfg, 0, sizeof *cfg);
    cfg->scheduler = "tcp://127.0.0.1:7070";
    cfg->work_dir = "/var/lib/drover-agent";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        snprintf(host, sizeof host, "agent");
    cfg->name = host;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->cpu_milli = (uint32_t)(cpus > 0 ? cpus : 1) * 1000;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    cfg->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    cfg->runtime = "auto";
    cfg->heartbeat_ms = 1000;
    cfg->kill_grace_ms = 10000;
    cfg->log_limit = 8u << 20;
    cfg->spot = -1;
    cfg->metadata_poll_ms = 1000;
    cfg->stop_timeout_ms = 90000; /* systemd's default TimeoutStopSec */
    cfg->upload_margin_ms = 10000;
}

/* ------------------------------------------------------------ sending */

static void send_message(agent_t *a, const Drover__AgentMessage *m)
{
    size_t n = drover__agent_message__get_packed_size(m);
    uint8_t *buf = xmalloc(n);
    drover__agent_message__pack(m, buf);
    zframe_t *f = zframe_new(buf, n);
    free(buf);
    if (!a->sock || zframe_send(&f, a->sock, 0) < 0) {
        /* Not connected (ZMQ_IMMEDIATE) or queue full: the outbox and the
         * next heartbeat cover it. */
        log_debug("send to droverd: %s", zmq_strerror(zmq_errno()));
        zframe_destroy(&f);
    }
}

static void collect_held(uint64_t id, void *value, void *arg)
{
    Drover__Register *reg = arg;
    reg->attempts[reg->n_attempts++] = id;
}

static void collect_exit(uint64_t id, void *arg)
{
    Drover__Register *reg = arg;
    reg->attempts[reg->n_attempts++] = id;
}

/* --join-token: the key pair is made here, never copied. --key must name
 * NAME.key_secret; an existing one is used as it is. 0, or -1 logged. */
static int make_join_key(const agent_config_t *cfg)
{
    if (access(cfg->key, F_OK) == 0)
        return 0;
    const char *suffix = ".key_secret";
    size_t n = strlen(cfg->key), sl = strlen(suffix);
    const char *slash = strrchr(cfg->key, '/');
    if (n <= sl || strcmp(cfg->key + n - sl, suffix) != 0 || !slash) {
        log_error("--key %s: with --join-token the key is made here and its file must be "
                  "DIR/NAME.key_secret",
                  cfg->key);
        return -1;
    }
    char *dir = xstrndup(cfg->key, (size_t)(slash - cfg->key));
    char *base = xstrndup(slash + 1, n - sl - (size_t)(slash + 1 - cfg->key));
    char err[512];
    int rc = util_mkdir_p(dir, 0700);
    if (rc < 0)
        snprintf(err, sizeof err, "mkdir %s: %s", dir, strerror(-rc));
    else
        rc = keys_generate(dir, base, NULL, err, sizeof err);
    if (rc < 0)
        log_error("making this agent's key pair for --join-token: %s", err);
    else
        log_info("made this agent's key pair %s (to join with a token)", cfg->key);
    free(dir);
    free(base);
    return rc < 0 ? -1 : 0;
}

static void send_register(agent_t *a)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Register reg = DROVER__REGISTER__INIT;
    Drover__Resources cap = DROVER__RESOURCES__INIT;
    cap.cpu_milli = a->cfg.cpu_milli;
    cap.memory_bytes = a->cfg.memory_bytes;
    cap.gpus = (uint32_t)gpu_pool_size(a->gpus);
    reg.name = (char *)a->cfg.name;
    reg.labels = a->labels;
    reg.n_labels = a->n_labels;
    reg.runtime = (char *)runtime_name(a->rt);
    reg.images = runtime_can_run_images(a->rt);
    reg.capacity = &cap;
    reg.version = DROVER_VERSION;
    reg.spot = a->cfg.spot == 1;
    reg.price = a->cfg.price;
    reg.incarnation = a->incarnation;
    Drover__PreemptNotice notice;
    reg.preempt = spot_notice_message(a, &notice);
    /* Held attempts: running ones, and finished ones whose exit report has
     * not been acknowledged (it will be re-sent once registered). */
    reg.attempts =
        xcalloc(idmap_size(a->attempts) + outbox_count(a->outbox) + 1, sizeof *reg.attempts);
    idmap_each(a->attempts, collect_held, &reg);
    outbox_each_exit(a->outbox, collect_exit, &reg);
    m.register_ = &reg;
    Drover__Join join = DROVER__JOIN__INIT;
    if (a->cfg.join_token && a->cert && !a->joined) {
        /* droverd checks it only while our key is unknown to it */
        join.token = (char *)a->cfg.join_token;
        join.name = (char *)a->cfg.name;
        join.public_key = (char *)zcert_public_txt(a->cert);
        m.join = &join;
    }
    send_message(a, &m);
    free(reg.attempts);
}

static void collect_running(uint64_t id, void *value, void *arg)
{
    Drover__Heartbeat *hb = arg;
    const attempt_t *at = value;
    if (!at->exited) {
        hb->progress[hb->n_running] = at->progress;
        hb->running[hb->n_running++] = id;
    }
}

void agent_send_heartbeat(agent_t *a)
{
    Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
    Drover__Heartbeat hb = DROVER__HEARTBEAT__INIT;
    Drover__PreemptNotice notice;
    hb.running = xcalloc(idmap_size(a->attempts) + 1, sizeof *hb.running);
    hb.progress = xcalloc(idmap_size(a->attempts) + 1, sizeof *hb.progress);
    idmap_each(a->attempts, collect_running, &hb);
    hb.n_progress = hb.n_running;
    hb.preempt = spot_notice_message(a, &notice);
    m.heartbeat = &hb;
    send_message(a, &m);
    free(hb.running);
    free(hb.progress);
}

/* ------------------------------------------------------------ reports */

Drover__Report *agent_report_new(const attempt_t *at, Drover__ReportKind kind)
{
    Drover__Report *r = xmalloc(sizeof *r);
    drover__report__init(r);
    r->attempt_id = at->id;
    r->kind = kind;
    r->time_ms = util_now_ms();
    return r;
}

void agent_queue_report(agent_t *a, Drover__Report *r)
{
    outbox_add(a->outbox, r);
    if (r->kind == DROVER__REPORT_KIND__REPORT_EXITED)
        exits_save(a->exits, r);
    a->want_send = true;
}

static void flush_log(attempt_t *at)
{
    if (at->loglen == 0)
        return;
    Drover__Report *r = agent_report_new(at, DROVER__REPORT_KIND__REPORT_LOG);
    r->offset = at->log_start;
    r->data.data = at->logbuf;
    r->data.len = at->loglen;
    at->log_start += at->loglen;
    at->logbuf = NULL;
    at->loglen = 0;
    agent_queue_report(at->agent, r);
}

static void on_stdout(void *arg, const uint8_t *data, size_t len)
{
    attempt_t *at = arg;
    result_add(&at->result_out, data, len);
}

static void on_output(void *arg, const uint8_t *data, size_t len)
{
    attempt_t *at = arg;
    /* One byte past the limit is sent so droverd can tell it truncated. */
    uint64_t limit = at->agent->cfg.log_limit + 1;
    while (len > 0) {
        uint64_t pos = at->log_start + at->loglen;
        if (pos >= limit)
            return;
        if (!at->logbuf)
            at->logbuf = xmalloc(LOG_CHUNK);
        size_t room = LOG_CHUNK - at->loglen;
        if (room > limit - pos)
            room = (size_t)(limit - pos);
        size_t take = len < room ? len : room;
        memcpy(at->logbuf + at->loglen, data, take);
        at->loglen += take;
        data += take;
        len -= take;
        if (at->loglen == LOG_CHUNK)
            flush_log(at);
        if (take == 0)
            break;
    }
}

static void remember_finished(agent_t *a, uint64_t id)
{
    uint64_t old = a->finished_ring[a->finished_pos];
    if (old)
        idmap_del(a->finished, old);
    a->finished_ring[a->finished_pos] = id;
    a->finished_pos = (a->finished_pos + 1) % FINISHED_MEMORY;
    idmap_put(a->finished, id, (void *)1);
}

void agent_retire(agent_t *a, attempt_t *at)
{
    idmap_del(a->attempts, at->id);
    remember_finished(a, at->id);
    at->dead_next = a->dead;
    a->dead = at;
}

/* A system error's reason: the agent, and the cause. The caller frees. */
static char *system_reason(const attempt_t *at)
{
    return xasprintf("system error on agent %s (not the step's failure): %s", at->agent->cfg.name,
                     at->system_error);
}

/* The attempt failed for the agent's own reasons: why (with the disk's
 * state when the work dir is full, the likeliest cause of all). */
static void set_system_error(attempt_t *at, const char *why)
{
    char note[512];
    free(at->system_error);
    if (util_disk_full(at->agent->cfg.work_dir, "work dir", note, sizeof note))
        at->system_error = xasprintf("%s; %s", note, why);
    else
        at->system_error = xstrdup(why);
}

/* A step that failed while the agent's work dir is full failed because of
 * it, whatever its exit code says (a write refused with ENOSPC ends most
 * programs with some error): a system error. Not for an attempt stopped on
 * purpose (timeout, kill) or already classified. */
static void check_disk_full(attempt_t *at)
{
    const runner_exit_t *ex = &at->result;
    char note[512], end[400];
    bool failed = ex->exit_code != 0 || ex->term_signal != 0 || ex->reason[0];
    if (!failed || ex->killed || ex->timed_out || at->system_error ||
        !util_disk_full(at->agent->cfg.work_dir, "work dir", note, sizeof note))
        return;
    if (ex->reason[0])
        snprintf(end, sizeof end, "%s", ex->reason);
    else if (ex->term_signal)
        snprintf(end, sizeof end, "killed by signal %d", ex->term_signal);
    else
        snprintf(end, sizeof end, "exit code %d", ex->exit_code);
    at->system_error = xasprintf("%s; the step ended with: %s", note, end);
}

/* The attempt is over: send its EXITED report (with outputs, if any). */
static void report_exit(attempt_t *at, Drover__Artifact **arts, size_t n_arts,
                        Drover__KeyValue **params, size_t n_params)
{
    agent_t *a = at->agent;
    const runner_exit_t *ex = &at->result;
    check_disk_full(at);
    Drover__Report *r = agent_report_new(at, DROVER__REPORT_KIND__REPORT_EXITED);
    r->exit_code = ex->exit_code;
    r->term_signal = ex->term_signal;
    r->timed_out = ex->timed_out;
    if (at->system_error) {
        r->system_error = true;
        r->reason = system_reason(at);
        log_warn("attempt %" PRIu64 " (%s/%s #%u): %s", at->id, at->run_id, at->task, at->number,
                 r->reason);
    } else if (ex->reason[0]) {
        r->reason = xstrdup(ex->reason);
    }
    r->outputs = xcalloc(n_arts, sizeof *r->outputs);
    for (size_t i = 0; i < n_arts; i++)
        r->outputs[r->n_outputs++] = util_pb_copy(arts[i]);
    r->out_params = xcalloc(n_params, sizeof *r->out_params);
    for (size_t i = 0; i < n_params; i++)
        r->out_params[r->n_out_params++] = util_kv_new(params[i]->key, params[i]->value);
    if (at->captured) { /* the journal (exits.c) keeps it with the rest of the report */
        r->has_result = true;
        r->result = at->captured;
        at->captured = NULL;
    }
    agent_queue_report(a, r);
    log_info("attempt %" PRIu64 " (%s/%s #%u) exited: code %d signal %d%s%s", at->id, at->run_id,
             at->task, at->number, ex->exit_code, ex->term_signal, ex->reason[0] ? ", " : "",
             ex->reason);
    agent_retire(a, at);
}

static void on_outputs(void *arg, Drover__Artifact **arts, size_t n_arts, Drover__KeyValue **params,
                       size_t n_params, const char *error)
{
    attempt_t *at = arg;
    if (error)
        snprintf(at->result.reason, sizeof at->result.reason, "%s", error);
    report_exit(at, arts, n_arts, params, n_params);
}

static void on_exit_cb(void *arg, const runner_exit_t *ex)
{
    attempt_t *at = arg;
    agent_t *a = at->agent;
    at->exited = true;
    at->result = *ex;
    ev_timer_stop(a->loop, &at->preempt_w);
    if (a->forced) {
        agent_retire(a, at); /* no report: droverd sees the agent go and requeues */
        return;
    }
    flush_log(at);
    if (at->as->capture_result && !at->preempted) {
        char why[256];
        /* Too much output fails a step that would have succeeded; a
         * failure keeps its own reason. */
        if (result_take(&at->result_out, &at->captured, why, sizeof why) < 0 &&
            !at->result.reason[0])
            snprintf(at->result.reason, sizeof at->result.reason, "%s", why);
    }
    spot_read_progress(at); /* a checkpoint line written just before the end */
    agent_finish_attempt(at);
}

void agent_finish_attempt(attempt_t *at)
{
    agent_t *a = at->agent;
    const runner_exit_t *ex = &at->result;
    if (at->xout)
        return; /* a checkpoint upload: its end calls here again (at->exited) */
    if (at->preempted) {
        spot_finish_preempted(at);
        return;
    }
    bool clean = ex->exit_code == 0 && ex->term_signal == 0 && !ex->reason[0];
    if (clean && at->as->n_out_artifacts + at->as->n_out_params > 0) {
        char *outputs = xasprintf("%s/outputs", at->dir);
        at->xout = xfer_out_start(&a->xfer, at->id, outputs, at->as->out_artifacts,
                                  at->as->n_out_artifacts, at->as->out_params, at->as->n_out_params,
                                  on_outputs, at);
        free(outputs);
        return;
    }
    report_exit(at, NULL, 0, NULL, 0);
}

static void free_attempt(attempt_t *at)
{
    ev_timer_stop(at->agent->loop, &at->preempt_w);
    spot_attempt_free(at);
    if (at->n_gpus)
        gpu_free(at->agent->gpus, at->gpus, at->n_gpus);
    xfer_in_cancel(&at->xin);
    xfer_out_cancel(&at->xout);
    if (at->as)
        drover__assignment__free_unpacked(at->as, NULL);
    if (at->dir_made && at->agent->workdirs) {
        /* Emptied for reuse or removed on the worker; it takes the path. */
        workdirs_release(at->agent->workdirs, at->dir, !at->proc || rt_task_contained(at->proc));
        at->dir = NULL;
    }
    rt_task_destroy(&at->proc);
    free(at->logbuf);
    result_free(&at->result_out);
    free(at->captured);
    free(at->system_error);
    free(at->run_id);
    free(at->task);
    free(at->dir);
    free(at);
}

/* ------------------------------------------------------------ assignments */

/* A run id or task name ("step", "step[3]", "group[2].step") is a path
 * component: no "..", no '/'. Task names inside deep groups grow with
 * the depth (a recursion 100 deep: thousands of bytes), so a name is
 * accepted up to TASK_NAME_MAX and its directory is task_dir_name's. */
#define TASK_NAME_MAX (256 * 1024)
static bool safe_component(const char *s, size_t max)
{
    return path_is_component(s, max, "[]");
}

/* The directory component of task name t (caller frees): t itself when
 * it fits a file name comfortably, else its first bytes and a digest of
 * the whole ("a.b.b.b...~3f2a9c0e11d4b7a2"), distinct per name. */
static char *task_dir_name(const char *t)
{
    size_t len = strlen(t);
    if (len <= NAME_COMPONENT_MAX)
        return xstrdup(t);
    uint8_t d[DIGEST_LEN];
    char hex[2 * DIGEST_LEN + 1];
    digest_buffer(t, len, d);
    util_hex(d, 8, hex);
    return xasprintf("%.96s~%s", t, hex);
}

static char **build_env(const agent_t *a, const Drover__Assignment *as, const attempt_t *at);
static void report_start_failure(agent_t *a, attempt_t *at, const char *why, bool system);
static void spawn(attempt_t *at);

static char **build_env(const agent_t *a, const Drover__Assignment *as, const attempt_t *at)
{
    static const char *const passthrough[] = {"PATH", "HOME", "LANG",    "LC_ALL",
                                              "TZ",   "USER", "LOGNAME", "TMPDIR"};
    size_t cap = 8 + as->n_env + 14, n = 0;
    char **env = xcalloc(cap + 1, sizeof *env);
    /* A container step gets its image's environment, not the agent's. */
    bool container = as->image && *as->image;
    for (size_t i = 0; !container && i < sizeof passthrough / sizeof *passthrough; i++) {
        const char *v = getenv(passthrough[i]);
        if (v)
            env[n++] = xasprintf("%s=%s", passthrough[i], v);
        else if (strcmp(passthrough[i], "PATH") == 0)
            env[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
    }
    for (size_t i = 0; i < as->n_env; i++)
        env[n++] = xasprintf("%s=%s", as->env[i]->key, as->env[i]->value);
    env[n++] = xasprintf("DROVER_RUN_ID=%s", at->run_id);
    env[n++] = xasprintf("DROVER_TASK=%s", at->task);
    env[n++] = xasprintf("DROVER_ATTEMPT=%u", at->number);
    env[n++] = xasprintf("DROVER_AGENT=%s", a->cfg.name);
    env[n++] = xasprintf("DROVER_INPUTS=%s/inputs", at->dir);
    env[n++] = xasprintf("DROVER_OUTPUTS=%s/outputs", at->dir);
    env[n++] = xasprintf("DROVER_CHECKPOINT_DIR=%s/checkpoint", at->dir);
    env[n++] = xasprintf("DROVER_PROGRESS=%s/" WORKDIRS_PROGRESS, at->dir);
    env[n++] = xasprintf("DROVER_WORK_DIR=%s/work", at->dir);
    if (as->resume_from && as->resume_from->artifact) {
        env[n++] = xstrdup("DROVER_RESUMED=1");
        env[n++] = xasprintf("DROVER_CHECKPOINT_STEP=%" PRIu64, as->resume_from->step);
    }
    env[n] = NULL;
    return env;
}

/* Report an attempt that could not start as exited with code 127.
 * system: for the agent's own reasons (work dir, inputs, GPUs, no process
 * to be had), not the step's (a bad assignment, a missing command). */
static void report_start_failure(agent_t *a, attempt_t *at, const char *why, bool system)
{
    Drover__Report *r = agent_report_new(at, DROVER__REPORT_KIND__REPORT_EXITED);
    r->exit_code = 127;
    if (system) {
        set_system_error(at, why);
        r->system_error = true;
        r->reason = system_reason(at);
    } else {
        r->reason = xstrdup(why);
    }
    log_warn("attempt %" PRIu64 " (%s/%s): %s", at->id, at->run_id, at->task, r->reason);
    agent_queue_report(a, r);
    idmap_put(a->attempts, at->id, at);
    agent_retire(a, at);
}

static void on_inputs(void *arg, const char *error)
{
    attempt_t *at = arg;
    xfer_in_cancel(&at->xin); /* done with it (freed once its jobs are back) */
    if (error) {
        char *why = xasprintf("inputs: %s", error);
        report_start_failure(at->agent, at, why, true);
        free(why);
        return;
    }
    spawn(at);
}

static void fetch_inputs(attempt_t *at)
{
    agent_t *a = at->agent;
    if (at->as->n_inputs == 0) {
        spawn(at);
        return;
    }
    char *inputs = xasprintf("%s/inputs", at->dir);
    at->xin =
        xfer_in_start(&a->xfer, at->id, at->as->inputs, at->as->n_inputs, inputs, on_inputs, at);
    free(inputs);
}

/* The checkpoint to resume from is in $DROVER_CHECKPOINT_DIR: inputs next. */
static void on_checkpoint_restored(void *arg, const char *error)
{
    attempt_t *at = arg;
    xfer_in_cancel(&at->xin);
    if (error) {
        char *why = xasprintf("restoring checkpoint: %s", error);
        report_start_failure(at->agent, at, why, true);
        free(why);
        return;
    }
    log_info("attempt %" PRIu64 " (%s/%s #%u): checkpoint of step %" PRIu64 " restored", at->id,
             at->run_id, at->task, at->number, at->as->resume_from->step);
    fetch_inputs(at);
}

/* Start the attempt's process (inputs, if any, are in place). */
static void spawn(attempt_t *at)
{
    char err[512];
    agent_t *a = at->agent;
    const Drover__Assignment *as = at->as;
    uint32_t want_gpus = as->resources ? as->resources->gpus : 0;
    if (want_gpus && (want_gpus > GPU_MAX || gpu_alloc(a->gpus, want_gpus, at->gpus) < 0)) {
        snprintf(err, sizeof err, "no %u free GPUs on this agent (%zu of %zu free)", want_gpus,
                 gpu_pool_free_count(a->gpus), gpu_pool_size(a->gpus));
        report_start_failure(a, at, err, true);
        return;
    }
    at->n_gpus = want_gpus;
    char **argv = xcalloc(as->n_argv + 1, sizeof *argv);
    for (size_t i = 0; i < as->n_argv; i++)
        argv[i] = as->argv[i];
    char **envp = build_env(a, as, at);
    /* Attempt ids are per droverd: with the agent's name the container name
     * stays unique when agents of several droverds share one podman. */
    char *id = xasprintf("%.40s-%" PRIu64, a->cfg.name, at->id);
    rt_spec_t spec = {.id = id,
                      .image = as->image,
                      .argv = argv,
                      .envp = envp,
                      .attempt_dir = at->dir,
                      .cpu_milli = as->resources ? as->resources->cpu_milli : 0,
                      .memory_bytes = as->resources ? as->resources->memory_bytes : 0,
                      .gpus = at->gpus,
                      .n_gpus = at->n_gpus,
                      .hide_gpus = gpu_pool_size(a->gpus) > 0,
                      .timeout_ms = as->timeout_ms,
                      .kill_grace_ms = a->cfg.kill_grace_ms,
                      .on_output = on_output,
                      .on_stdout = as->capture_result ? on_stdout : NULL,
                      .on_exit = on_exit_cb,
                      .arg = at};
    at->proc = runtime_start(a->rt, a->loop, &spec, err, sizeof err);
    int start_errno = errno;
    free(argv);
    rt_strv_free(envp);
    free(id);
    if (!at->proc) {
        /* A missing or unrunnable command is the step's failure; no
         * process to be had (EAGAIN, ENOMEM, EMFILE, ENOSPC...) or its
         * directory gone is the agent's. */
        char *work = xasprintf("%s/work", at->dir);
        bool system = util_errno_is_system(start_errno) || access(work, X_OK) < 0;
        free(work);
        report_start_failure(a, at, err, system);
        return;
    }
    agent_queue_report(a, agent_report_new(at, DROVER__REPORT_KIND__REPORT_STARTED));
    spot_attempt_started(at);
    log_info("attempt %" PRIu64 " (%s/%s #%u) started: pid %d", at->id, at->run_id, at->task,
             at->number, (int)rt_task_pid(at->proc));
}

/* Accept an assignment: validate and queue it; start_pending starts it. */
static void start_attempt(agent_t *a, const Drover__Assignment *as)
{
    attempt_t *at = xcalloc(1, sizeof *at);
    at->agent = a;
    at->id = as->attempt_id;
    at->run_id = xstrdup(as->run_id);
    at->task = xstrdup(as->task);
    at->number = as->attempt;
    at->progress_fd = -1;
    at->progress = -1;
    if (!safe_component(as->run_id, NAME_COMPONENT_MAX) ||
        !safe_component(as->task, TASK_NAME_MAX) || as->n_argv == 0) {
        report_start_failure(a, at, "invalid assignment: bad run id, task name or empty command",
                             false);
        return;
    }
    char *task_dir = task_dir_name(at->task);
    at->dir = xasprintf("%s/runs/%s/%s/%u", a->cfg.work_dir, at->run_id, task_dir, at->number);
    free(task_dir);
    at->as = util_pb_copy(as);
    idmap_put(a->attempts, at->id, at);
    at->queued = true;
    if (a->pending_tail)
        a->pending_tail->pending_next = at;
    else
        a->pending_head = at;
    a->pending_tail = at;
    ev_idle_start(a->loop, &a->starts_w);
}

/* Make the attempt's directories, then fetch its inputs or spawn it. */
static void begin_attempt(attempt_t *at)
{
    char err[512];
    agent_t *a = at->agent;
    at->dir_made = true;
    int rc = workdirs_make(a->workdirs, at->dir, at->number);
    if (rc < 0) {
        snprintf(err, sizeof err, "cannot create work dir %s: %s", at->dir, strerror(-rc));
        report_start_failure(a, at, err, true);
        return;
    }
    if (a->terminating) { /* the node is going away: hand it back unstarted */
        spot_report_unstarted(at);
        return;
    }
    const Drover__Checkpoint *ck = at->as->resume_from;
    if (!ck || !ck->artifact) {
        fetch_inputs(at);
        return;
    }
    /* Restored first, as input "checkpoint" of the attempt dir (so into
     * $DROVER_CHECKPOINT_DIR), through the same verified cache. */
    Drover__InputArtifact in = DROVER__INPUT_ARTIFACT__INIT, *ins[1] = {&in};
    in.local = (char *)"checkpoint";
    in.artifact = ck->artifact;
    at->xin = xfer_in_start(&a->xfer, at->id, ins, 1, at->dir, on_checkpoint_restored, at);
}

/* Take a queued attempt out of the start queue (it will never start). */
void agent_unqueue(agent_t *a, attempt_t *at)
{
    attempt_t **pp = &a->pending_head, *prev = NULL;
    while (*pp && *pp != at) {
        prev = *pp;
        pp = &(*pp)->pending_next;
    }
    if (*pp) {
        *pp = at->pending_next;
        if (a->pending_tail == at)
            a->pending_tail = prev;
    }
    at->pending_next = NULL;
    at->queued = false;
}

/* Start queued attempts, a bounded number per loop iteration: spawning is
 * a few hundred microseconds each, and a burst of thousands must not keep
 * heartbeats and droverd's messages waiting. */
static void start_pending(agent_t *a)
{
    for (int i = 0; i < STARTS_PER_ITERATION && a->pending_head; i++) {
        attempt_t *at = a->pending_head;
        a->pending_head = at->pending_next;
        if (!a->pending_head)
            a->pending_tail = NULL;
        at->pending_next = NULL;
        at->queued = false;
        begin_attempt(at);
    }
    if (a->pending_head)
        ev_idle_start(a->loop, &a->starts_w);
}

static void on_starts(struct ev_loop *loop, ev_idle *w, int revents)
{
    agent_t *a = w->data;
    ev_idle_stop(loop, w);
    start_pending(a);
}

static void handle_assignment(agent_t *a, const Drover__Assignment *as)
{
    a->acks = xrealloc(a->acks, (a->n_acks + 1) * sizeof *a->acks);
    a->acks[a->n_acks++] = as->attempt_id;
    a->want_send = true;
    if (as->attempt_id == 0 || idmap_get(a->attempts, as->attempt_id) ||
        idmap_get(a->finished, as->attempt_id))
        return; /* a re-send: already running or done */
    start_attempt(a, as);
}

/* ------------------------------------------------------------ transfer I/O */

#define APPEND(list, n, item)                                                                      \
    do {                                                                                           \
        (list) = xrealloc((list), ((n) + 1) * sizeof *(list));                                     \
        (list)[(n)++] = (item);                                                                    \
    } while (0)

static void host_offer(void *host, Drover__UploadOffer *m)
{
    agent_t *a = host;
    APPEND(a->offers, a->n_offers, m);
    a->want_send = true;
}

static void host_chunk(void *host, Drover__BlobChunk *m)
{
    agent_t *a = host;
    APPEND(a->chunks, a->n_chunks, m);
    a->want_send = true;
}

static void host_chunk_ack(void *host, Drover__ChunkAck *m)
{
    agent_t *a = host;
    APPEND(a->chunk_acks, a->n_chunk_acks, m);
    a->want_send = true;
}

static void host_fetch(void *host, Drover__FetchRequest *m)
{
    agent_t *a = host;
    APPEND(a->fetches, a->n_fetches, m);
    a->want_send = true;
}

static void free_transfer_messages(agent_t *a)
{
    for (size_t i = 0; i < a->n_offers; i++)
        drover__upload_offer__free_unpacked(a->offers[i], NULL);
    for (size_t i = 0; i < a->n_chunks; i++)
        drover__blob_chunk__free_unpacked(a->chunks[i], NULL);
    for (size_t i = 0; i < a->n_chunk_acks; i++)
        drover__chunk_ack__free_unpacked(a->chunk_acks[i], NULL);
    for (size_t i = 0; i < a->n_fetches; i++)
        drover__fetch_request__free_unpacked(a->fetches[i], NULL);
    free(a->offers);
    free(a->chunks);
    free(a->chunk_acks);
    free(a->fetches);
    a->offers = NULL;
    a->chunks = NULL;
    a->chunk_acks = NULL;
    a->fetches = NULL;
    a->n_offers = a->n_chunks = a->n_chunk_acks = a->n_fetches = 0;
}

/* ------------------------------------------------------------ receiving */

static void restart_transfer(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    if (at->xin)
        xfer_in_restart(at->xin);
    if (at->xout)
        xfer_out_restart(at->xout);
}

static void handle_message(agent_t *a, const Drover__SchedulerMessage *m)
{
    a->last_rx_mono = util_mono_ms();
    if (m->refused && *m->refused) {
        /* Retried with backoff: an admin may authorize the key any time. */
        a->refused_backoff_ms = a->refused_backoff_ms ? a->refused_backoff_ms * 2 : 1000;
        if (a->refused_backoff_ms > 60000)
            a->refused_backoff_ms = 60000;
        a->refused_until_mono = util_mono_ms() + a->refused_backoff_ms;
        log_error("droverd refused this agent: %s (trying again in %.0fs)", m->refused,
                  a->refused_backoff_ms / 1000.0);
        a->registered = false;
        return;
    }
    if (m->reregister && a->registered) {
        log_info("droverd asks to register again (it restarted?)");
        a->registered = false;
    }
    if (m->reregister)
        send_register(a);
    if (m->registered && !a->registered) {
        log_info("registered with droverd at %s", a->cfg.scheduler);
        a->registered = true;
        a->joined = true;
        a->refused_backoff_ms = 0;
        a->silence_warn_ms = a->silence_warn_mono = 0;
        outbox_mark_unsent(a->outbox); /* droverd may have lost any of them */
        a->want_send = true;
        idmap_each(a->attempts, restart_transfer, NULL); /* droverd dropped them */
    }
    uint64_t id;
    for (size_t i = 0; i < m->n_acks; i++)
        if ((id = outbox_ack(a->outbox, m->acks[i])) != 0)
            exits_drop(a->exits, id);
    for (size_t i = 0; i < m->n_assigns; i++)
        handle_assignment(a, m->assigns[i]);
    for (size_t i = 0; i < m->n_kills; i++) {
        attempt_t *at = idmap_get(a->attempts, m->kills[i]);
        if (!at)
            continue;
        if (!at->kill_logged) /* droverd repeats the kill until the step is gone */
            log_info("attempt %" PRIu64 " (%s/%s): killed on droverd's request", at->id, at->run_id,
                     at->task);
        at->kill_logged = true;
        if (at->queued) {
            agent_unqueue(a, at);
            snprintf(at->result.reason, sizeof at->result.reason, "killed by droverd");
            at->result.exit_code = 127;
            at->result.killed = true;
            report_exit(at, NULL, 0, NULL, 0);
        } else if (at->proc && !at->exited) {
            spot_drop_checkpoints(at); /* its end is reported at once */
            rt_task_kill(at->proc, "killed by droverd (cancelled or superseded)");
        } else if (at->xin || at->xout) { /* no process to kill: drop the transfer */
            xfer_in_cancel(&at->xin);
            xfer_out_cancel(&at->xout);
            snprintf(at->result.reason, sizeof at->result.reason, "killed by droverd");
            at->result.killed = true;
            report_exit(at, NULL, 0, NULL, 0);
        }
    }
    if (m->preempt && m->preempt->withdraw)
        spot_drill_end(a, "drover agent undrain");
    else if (m->preempt)
        spot_drill(a, m->preempt->deadline_ms,
                   m->preempt->reason && *m->preempt->reason ? m->preempt->reason : "droverd");
    for (size_t i = 0; i < m->n_wants; i++) {
        attempt_t *at = idmap_get(a->attempts, m->wants[i]->attempt_id);
        if (at && at->xout)
            xfer_out_want(at->xout, m->wants[i]);
    }
    for (size_t i = 0; i < m->n_chunk_acks; i++) {
        attempt_t *at = idmap_get(a->attempts, m->chunk_acks[i]->attempt_id);
        if (at && at->xout)
            xfer_out_chunk_ack(at->xout, m->chunk_acks[i]);
    }
    for (size_t i = 0; i < m->n_chunks; i++) {
        attempt_t *at = idmap_get(a->attempts, m->chunks[i]->attempt_id);
        if (at && at->xin)
            xfer_in_chunk(at->xin, m->chunks[i]);
    }
    for (size_t i = 0; i < m->n_blob_done; i++) {
        attempt_t *at = idmap_get(a->attempts, m->blob_done[i]->attempt_id);
        /* Both may be set (inputs stay until the attempt ends); each checks
         * the digest against the blob it is moving. */
        if (at && at->xin)
            xfer_in_blob_done(at->xin, m->blob_done[i]);
        if (at && at->xout)
            xfer_out_blob_done(at->xout, m->blob_done[i]);
    }
}

static void on_readable(void *arg)
{
    agent_t *a = arg;
    for (int i = 0; i < 256; i++) {
        zframe_t *f = zframe_recv(a->sock);
        if (!f)
            break;
        Drover__SchedulerMessage *m =
            drover__scheduler_message__unpack(NULL, zframe_size(f), zframe_data(f));
        if (m) {
            handle_message(a, m);
            drover__scheduler_message__free_unpacked(m, NULL);
        } else {
            log_warn("undecodable message of %zu bytes from droverd dropped", zframe_size(f));
        }
        zframe_destroy(&f);
    }
}

/* ------------------------------------------------------------ loop */

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    agent_t *a = w->data;
    Drover__Report *batch[BATCH_REPORTS];
    if (a->want_send && !a->forced) {
        Drover__AgentMessage m = DROVER__AGENT_MESSAGE__INIT;
        m.assign_acks = a->acks;
        m.n_assign_acks = a->n_acks;
        /* Unregistered, droverd would drop reports: keep them for later. */
        bool more = false;
        if (a->registered)
            m.n_reports = outbox_collect(a->outbox, util_mono_ms(), RESEND_MS, false, batch,
                                         BATCH_REPORTS, BATCH_BYTES, &more);
        m.reports = batch;
        /* Transfers only make sense to a droverd that knows us; while
         * unregistered they are dropped and restart after registration. */
        if (a->registered) {
            m.offers = a->offers;
            m.n_offers = a->n_offers;
            m.chunks = a->chunks;
            m.n_chunks = a->n_chunks;
            m.chunk_acks = a->chunk_acks;
            m.n_chunk_acks = a->n_chunk_acks;
            m.fetches = a->fetches;
            m.n_fetches = a->n_fetches;
        }
        if (m.n_reports || m.n_assign_acks || m.n_offers || m.n_chunks || m.n_chunk_acks ||
            m.n_fetches)
            send_message(a, &m);
        free_transfer_messages(a);
        a->n_acks = 0;
        /* A full batch means more is due: stay in send mode next time. */
        a->want_send = more;
    }
    for (attempt_t *at = a->dead, *next; at; at = next) {
        next = at->dead_next;
        free_attempt(at);
    }
    a->dead = NULL;
    /* Stopping: once every step is handed back and droverd has the reports
     * (or there is no droverd to tell). */
    if (a->stopping && idmap_size(a->attempts) == 0 &&
        (outbox_count(a->outbox) == 0 || !a->registered))
        ev_break(loop, EVBREAK_ALL);
}

static void flush_one_log(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    if (!at->exited)
        flush_log(at);
}

static void on_logflush(struct ev_loop *loop, ev_timer *w, int revents)
{
    agent_t *a = w->data;
    idmap_each(a->attempts, flush_one_log, NULL);
}

static void tick_transfer(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    int64_t now = util_mono_ms();
    if (at->xin)
        xfer_in_tick(at->xin, now);
    if (at->xout)
        xfer_out_tick(at->xout, now);
}

/* exits_load: a finished attempt's report from before a restart. */
static void load_exit(Drover__Report *rep, void *arg)
{
    agent_t *a = arg;
    remember_finished(a, rep->attempt_id); /* a re-sent assignment never runs it again */
    outbox_add(a->outbox, rep);
}

/* A new socket to droverd (replacing the old one, if any). No routing id
 * of our own: droverd's ROUTER names the connection, so nobody can take
 * it over by claiming our name. 0 or -1 (logged). */
static int connect_scheduler(agent_t *a)
{
    zev_destroy(&a->zev);
    zsock_destroy(&a->sock);
    a->sock = zsock_new(ZMQ_DEALER);
    if (!a->sock)
        return -1;
    zsock_set_immediate(a->sock, 1);
    zsock_set_rcvtimeo(a->sock, 0);
    zsock_set_sndtimeo(a->sock, 0);
    zsock_set_linger(a->sock, 0);
    zsock_set_sndhwm(a->sock, 10000);
    zsock_set_maxmsgsize(a->sock, MAX_MESSAGE);
    zsock_set_reconnect_ivl(a->sock, 100);
    zsock_set_reconnect_ivl_max(a->sock, 1000);
    if (a->cert) {
        zcert_apply(a->cert, a->sock);
        zsock_set_curve_serverkey(a->sock, zcert_public_txt(a->scheduler_cert));
    }
    if (zsock_connect(a->sock, "%s", a->cfg.scheduler) < 0) {
        log_error("zmq_connect(%s): %s", a->cfg.scheduler, zmq_strerror(zmq_errno()));
        return -1;
    }
    a->zev = zev_new(a->loop, zsock_resolve(a->sock), on_readable, a);
    a->connected_mono = a->last_rx_mono = util_mono_ms();
    return a->zev ? 0 : -1;
}

/* droverd has said nothing for `silence` ms while we are not registered:
 * say so (after 5 heartbeats, then at growing intervals up to 5 minutes)
 * with the likely cause. */
static void warn_silence(agent_t *a, int64_t silence)
{
    int64_t now = util_mono_ms();
    if (now < a->silence_warn_mono)
        return;
    a->silence_warn_ms = a->silence_warn_ms ? a->silence_warn_ms * 2 : 10000;
    if (a->silence_warn_ms > 300000)
        a->silence_warn_ms = 300000;
    a->silence_warn_mono = now + a->silence_warn_ms;
    if (a->cert)
        log_warn("droverd at %s has not answered for %.0fs: if it is running and reachable, a "
                 "CURVE handshake failure is the likely cause: check that --scheduler-key is "
                 "droverd's public key (droverd counts failed handshakes in `drover status`)",
                 a->cfg.scheduler, silence / 1000.0);
    else
        log_warn("droverd at %s has not answered for %.0fs: if it is running and reachable, it "
                 "probably requires keys (CURVE): start this agent with --key and "
                 "--scheduler-key",
                 a->cfg.scheduler, silence / 1000.0);
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    agent_t *a = w->data;
    int64_t silence = util_mono_ms() - a->last_rx_mono;
    int64_t limit = (int64_t)a->cfg.heartbeat_ms * 5;
    if (limit < 3000)
        limit = 3000;
    if (silence > limit) {
        if (a->registered)
            log_warn("no word from droverd for %" PRId64 " ms: reconnecting and registering "
                     "again",
                     silence);
        else
            warn_silence(a, silence);
        a->registered = false;
        /* A dead connection (or one droverd dropped) is not revived by
         * re-sending on it: make a new one. */
        if (util_mono_ms() - a->connected_mono > limit && connect_scheduler(a) < 0)
            return; /* logged; tried again at the next heartbeat */
    }
    idmap_each(a->attempts, tick_transfer, NULL);
    if (a->registered) {
        agent_send_heartbeat(a);
        a->want_send = a->want_send || outbox_count(a->outbox) > 0; /* re-send due reports */
    } else if (util_mono_ms() >= a->refused_until_mono) {
        send_register(a);
    }
}

static void kill_now(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    if (at->proc)
        rt_task_kill_now(at->proc);
}

static void on_stop_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    agent_t *a = w->data;
    idmap_each(a->attempts, kill_now, NULL);
    ev_break(loop, EVBREAK_ALL);
}

/* SIGTERM/SIGINT (systemd stopping the node) is a preemption notice
 * whose deadline is the unit's stop timeout: the steps are handed back
 * with their checkpoints, then the agent exits. A second signal: now. */
static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    agent_t *a = w->data;
    if (a->stopping) {
        if (!a->forced)
            log_warn("signal %d again: killing %zu steps and exiting now", w->signum,
                     idmap_size(a->attempts));
        a->forced = true;
        idmap_each(a->attempts, kill_now, NULL);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    a->stopping = true;
    sdnotify_stopping();
    char why[64];
    snprintf(why, sizeof why, "agent stopping (%s)", strsignal(w->signum));
    spot_notice(a, true, util_now_ms() + (int64_t)a->cfg.stop_timeout_ms, why);
    ev_timer_init(&a->stop_w, on_stop_deadline, (double)a->cfg.stop_timeout_ms / 1000.0, 0.);
    a->stop_w.data = a;
    ev_timer_start(loop, &a->stop_w);
}

agent_t *agent_new(const agent_config_t *cfg)
{
    agent_t *a = xcalloc(1, sizeof *a);
    a->cfg = *cfg;
    util_random_id(a->incarnation);
    a->outbox = outbox_new();
    a->attempts = idmap_new();
    a->finished = idmap_new();
    zsys_init();
    zsys_handler_set(NULL);
    char err[512];
    int rc = util_mkdir_p(cfg->work_dir, 0755);
    if (rc < 0) {
        log_error("mkdir(%s): %s", cfg->work_dir, strerror(-rc));
        goto fail;
    }
    /* Detect first: --gpus picks among the detected devices (keeping their
     * models) rather than replacing them. */
    rc = gpu_detect(&a->gpu_info);
    if (rc < 0)
        log_warn("GPU detection: %s (offering %zu GPUs)", strerror(-rc), a->gpu_info.count);
    if (cfg->gpus)
        gpu_override(&a->gpu_info, cfg->gpus);
    a->gpus = gpu_pool_new(&a->gpu_info);
    /* Labels: the configured ones, plus the GPU model so steps can ask
     * for one with placement.labels. */
    a->labels = xcalloc(cfg->n_labels + 1, sizeof *a->labels);
    for (size_t i = 0; i < cfg->n_labels; i++)
        a->labels[a->n_labels++] = util_kv_new(cfg->labels[i]->key, cfg->labels[i]->value);
    if (a->gpu_info.count && gpu_model(&a->gpu_info)[0])
        a->labels[a->n_labels++] = util_kv_new("gpu.model", gpu_model(&a->gpu_info));
    a->rt = runtime_new(cfg->runtime, cfg->work_dir, err, sizeof err);
    if (!a->rt) {
        log_error("runtime %s: %s", cfg->runtime, err);
        goto fail;
    }
    int orphans = runtime_cleanup_orphans(a->rt);
    if (orphans > 0)
        log_info("removed %d containers/cgroups left by a previous agent", orphans);
    if ((cfg->key != NULL) != (cfg->scheduler_key != NULL)) {
        log_error("--key and --scheduler-key go together (CURVE needs both)");
        goto fail;
    }
    if (cfg->join_token && (!cfg->key || make_join_key(cfg) < 0)) {
        if (!cfg->key)
            log_error("--join-token needs --key FILE (made here if absent) and --scheduler-key");
        goto fail;
    }
    if (cfg->key) {
        if (keys_load_secret(cfg->key, &a->cert, err, sizeof err) < 0 ||
            keys_load_public(cfg->scheduler_key, &a->scheduler_cert, err, sizeof err) < 0) {
            log_error("%s", err);
            goto fail;
        }
        log_info("CURVE on: agent key %s, droverd key %s", zcert_public_txt(a->cert),
                 zcert_public_txt(a->scheduler_cert));
    } else if (!keys_endpoint_is_local(cfg->scheduler)) {
        log_warn("INSECURE: talking to %s without keys: anyone on the path can read steps and "
                 "pose as droverd (use --key and --scheduler-key)",
                 cfg->scheduler);
    }
    a->loop = EV_DEFAULT;
    a->worker = worker_new(a->loop);
    if (!a->worker)
        goto fail;
    a->workdirs = workdirs_new(cfg->work_dir, a->worker, SPARE_DIRS, cfg->keep_work_dirs);
    if (!a->workdirs)
        goto fail;
    a->exits = exits_open(cfg->work_dir, a->worker);
    size_t kept = exits_load(a->exits, load_exit, a);
    if (kept)
        log_info("%zu attempts finished before this agent restarted: their exit reports go to "
                 "droverd now",
                 kept);
    a->cache_dir = xasprintf("%s/cache", cfg->work_dir);
    char *tmp = xasprintf("%s/tmp", a->cache_dir);
    util_rm_rf(tmp); /* partial downloads of a previous agent process */
    free(tmp);
    uint64_t cache_size = cfg->cache_size;
    struct statvfs vfs;
    if (!cache_size && statvfs(cfg->work_dir, &vfs) == 0)
        cache_size = (uint64_t)vfs.f_blocks * vfs.f_frsize / 4; /* a quarter of its disk */
    a->cache = xfer_cache_new(a->cache_dir, cache_size);
    log_info("blob cache %s: bound %.0f MiB", a->cache_dir, cache_size / 1048576.0);
    a->xfer = (xfer_host_t){.worker = a->worker,
                            .cache_dir = a->cache_dir,
                            .cache = a->cache,
                            .send_offer = host_offer,
                            .send_chunk = host_chunk,
                            .send_chunk_ack = host_chunk_ack,
                            .send_fetch = host_fetch,
                            .host = a};
    if (connect_scheduler(a) < 0)
        goto fail;
    ev_prepare_init(&a->flush_w, on_flush);
    ev_set_priority(&a->flush_w, EV_MAXPRI);
    a->flush_w.data = a;
    ev_prepare_start(a->loop, &a->flush_w);
    double hb = (double)cfg->heartbeat_ms / 1000.0;
    ev_timer_init(&a->heartbeat_w, on_heartbeat, 0., hb);
    a->heartbeat_w.data = a;
    ev_timer_start(a->loop, &a->heartbeat_w);
    ev_idle_init(&a->starts_w, on_starts);
    a->starts_w.data = a;
    spot_start(a);
    ev_timer_init(&a->logflush_w, on_logflush, LOG_FLUSH_S, LOG_FLUSH_S);
    a->logflush_w.data = a;
    ev_timer_start(a->loop, &a->logflush_w);
    ev_signal_init(&a->sigint_w, on_stop_signal, SIGINT);
    ev_signal_init(&a->sigterm_w, on_stop_signal, SIGTERM);
    a->sigint_w.data = a->sigterm_w.data = a;
    ev_signal_start(a->loop, &a->sigint_w);
    ev_signal_start(a->loop, &a->sigterm_w);
    signal(SIGPIPE, SIG_IGN);
    return a;
fail:
    agent_destroy(&a);
    return NULL;
}

int agent_run(agent_t *a)
{
    char status[256];
    snprintf(status, sizeof status, "agent %s → %s", a->cfg.name, a->cfg.scheduler);
    log_info("%s: cpu %.1f, memory %" PRIu64 " MiB, gpus %zu (%s), runtime %s, work dir %s", status,
             a->cfg.cpu_milli / 1000.0, a->cfg.memory_bytes >> 20, gpu_pool_size(a->gpus),
             a->gpu_info.source, runtime_describe(a->rt), a->cfg.work_dir);
    sdnotify_ready(a->loop, &a->watchdog_w, status);
    ev_run(a->loop, 0);
    return 0;
}

static void destroy_attempt(uint64_t id, void *value, void *arg)
{
    free_attempt(value);
}

void agent_destroy(agent_t **ap)
{
    if (!ap || !*ap)
        return;
    agent_t *a = *ap;
    if (a->loop) {
        ev_prepare_stop(a->loop, &a->flush_w);
        ev_timer_stop(a->loop, &a->heartbeat_w);
        ev_timer_stop(a->loop, &a->logflush_w);
        ev_idle_stop(a->loop, &a->starts_w);
        ev_timer_stop(a->loop, &a->stop_w);
        ev_timer_stop(a->loop, &a->watchdog_w);
        ev_signal_stop(a->loop, &a->sigint_w);
        ev_signal_stop(a->loop, &a->sigterm_w);
        spot_stop(a);
    }
    if (a->workdirs)
        workdirs_close(a->workdirs); /* the worker stops below */
    for (attempt_t *at = a->dead, *next; at; at = next) {
        next = at->dead_next;
        free_attempt(at);
    }
    if (a->attempts)
        idmap_each(a->attempts, destroy_attempt, NULL);
    worker_destroy(&a->worker); /* runs the cancelled transfers' last jobs */
    exits_close(&a->exits);
    workdirs_destroy(&a->workdirs);
    free_transfer_messages(a);
    if (a->cache) {
        xfer_cache_stats_t st;
        xfer_cache_stats(a->cache, &st);
        log_info("blob cache: hits %" PRIu64 ", misses %" PRIu64 ", evictions %" PRIu64
                 " (%.1f MiB)",
                 st.hits, st.misses, st.evictions, st.evicted_bytes / 1048576.0);
    }
    xfer_cache_destroy(&a->cache); /* after the worker: its jobs prune */
    free(a->cache_dir);
    runtime_destroy(&a->rt);
    gpu_pool_destroy(&a->gpus);
    util_free_kvs(a->labels, a->n_labels);
    idmap_destroy(&a->attempts);
    idmap_destroy(&a->finished);
    outbox_destroy(&a->outbox);
    zev_destroy(&a->zev);
    zsock_destroy(&a->sock);
    zcert_destroy(&a->cert);
    zcert_destroy(&a->scheduler_cert);
    free(a->acks);
    free(a);
    *ap = NULL;
}
