/* spot — progress, checkpoints and preemption on the agent side
 * (docs/architecture.md, "Checkpoints and preemption").
 *
 * Progress: every PROGRESS_POLL_S the agent reads what each running task
 * appended to $DROVER_PROGRESS and parses it line by line (common/
 * progress.c). The latest fraction rides on the next heartbeat.
 *
 * Checkpoints: when the agent reads a {"checkpoint":true} line (within
 * PROGRESS_POLL_S of its writing) it captures $DROVER_CHECKPOINT_DIR as
 * it is then into a snapshot, <attempt dir>/snap-<n>/checkpoint
 * (xfer_snapshot: reflink clones, else hard links, else copies; dot-files
 * and *.tmp left out), and the commit uploads the snapshot, never the
 * live directory: a save that replaces last.pt during an upload cannot
 * change what is being sent. The snapshot is scanned into a manifest of
 * content digests and offered to droverd, which asks only for the blobs
 * it lacks (transfer.c), so an unchanged file is never sent twice. Once
 * every blob is stored, a CHECKPOINT report goes through the outbox;
 * droverd records it in LMDB and only then is it the task's latest. One
 * upload at a time per attempt (the attempt's transfer channel is shared
 * with its outputs); a line that arrives during an upload, or within
 * checkpoint.min_interval of the last commit, is captured but not
 * committed then: it is the one pending snapshot, and a newer line
 * replaces it (only the newest is ever uploaded next), so a rebalance
 * notice, the end of the upload or the final commit after a preemption
 * takes it. After droverd killed the attempt (cancel), nothing more is
 * captured or uploaded.
 *
 * Preemption: a notice (a cloud's, SIGTERM, or droverd's drill) is kept on
 * the agent and repeated in every heartbeat. A terminating notice drains
 * the node: queued and not-yet-started attempts are handed back at once;
 * each running task gets its preemption signal, then SIGKILL at
 * min(grace, deadline - upload margin); when it has exited, the checkpoint
 * it left (if it wrote a checkpoint line since the last commit) is
 * committed and the attempt reported PREEMPTED with it. A rebalance notice
 * only commits pending checkpoints at once and marks the node at risk.
 *
 * Several notices: the node keeps one. A terminating notice overrides an
 * at-risk one; a later terminating notice with an earlier deadline (GCP's
 * preempted=TRUE after systemd's SIGTERM, Azure Preempt after Terminate)
 * moves the deadline earlier and brings every planned SIGKILL forward, so
 * the last checkpoint still has the upload margin; a later deadline is
 * ignored. An at-risk notice is withdrawn when its source says so (GCP
 * maintenance-event back to NONE): the node takes work as before. The
 * stop timer of SIGTERM (--stop-timeout) is left as it is: it only bounds
 * how long the agent lingers, and the steps are killed by their own plan.
 *
 * A drill (droverd's, drover agent preempt) is a terminating notice of
 * source "drill" that ends: at its deadline the agent exits (--drill-exit,
 * what a reclaimed node does) or returns to service, and drover agent
 * undrain ends it at once. A real notice arriving during a drill takes
 * over (its source replaces "drill"), and then nothing ends it.
 */
#include "agent_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define PROGRESS_POLL_S   0.25
#define PROGRESS_READ_MAX (64 * 1024) /* bytes read per attempt per poll */

/* ------------------------------------------------------------ progress */

static void try_commit(attempt_t *at, bool now);

static void on_progress_line(void *arg, const progress_line_t *line, const char *error)
{
    attempt_t *at = arg;
    if (!line) {
        log_warn("attempt %" PRIu64 " (%s/%s): progress line ignored: %s", at->id, at->run_id,
                 at->task, error);
        return;
    }
    if (line->has_progress)
        at->progress = (float)line->progress;
    if (!line->checkpoint)
        return;
    if (!at->as->checkpoint) {
        if (!at->ck_warned)
            log_warn("attempt %" PRIu64 " (%s/%s): checkpoint line ignored: the step has no "
                     "'checkpoint' setting",
                     at->id, at->run_id, at->task);
        at->ck_warned = true;
        return;
    }
    if (at->kill_logged) /* cancelled or superseded: it ends now */
        return;
    uint64_t step = line->has_step ? line->step : at->ck_step + 1;
    char err[512];
    char *snap = xasprintf("%s/snap-%u", at->dir, ++at->snap_seq);
    char *ckdir = xasprintf("%s/checkpoint", at->dir);
    char *dest = xasprintf("%s/checkpoint", snap);
    int rc = mkdir(snap, 0755) < 0 ? -errno : 0;
    if (rc < 0)
        snprintf(err, sizeof err, "%s: %s", snap, strerror(-rc));
    else
        rc = xfer_snapshot(ckdir, dest, err, sizeof err);
    free(ckdir);
    free(dest);
    if (rc < 0) {
        log_warn("attempt %" PRIu64 " (%s/%s): checkpoint of step %" PRIu64 " not captured: %s",
                 at->id, at->run_id, at->task, step, err);
        util_rm_rf(snap);
        free(snap);
        return;
    }
    if (at->ck_snap) { /* superseded before it was uploaded */
        log_debug("attempt %" PRIu64 ": checkpoint of step %" PRIu64 " superseded by step %" PRIu64
                  " before its upload",
                  at->id, at->ck_step, step);
        util_rm_rf(at->ck_snap);
        free(at->ck_snap);
    }
    at->ck_snap = snap;
    at->ck_pending = true;
    at->ck_step = step;
    at->ck_time_ms = util_now_ms();
    if (!at->exited) /* after the end only a preempted task's last one counts */
        try_commit(at, false);
}

void spot_read_progress(attempt_t *at)
{
    char buf[8192];
    size_t total = 0;
    if (at->progress_fd < 0)
        return;
    while (total < PROGRESS_READ_MAX) {
        ssize_t n = pread(at->progress_fd, buf, sizeof buf, (off_t)at->progress_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        at->progress_off += (uint64_t)n;
        total += (size_t)n;
        progress_feed(at->progress_rd, buf, (size_t)n, on_progress_line, at);
    }
}

void spot_attempt_started(attempt_t *at)
{
    char *path = xasprintf("%s/" WORKDIRS_PROGRESS, at->dir);
    /* Created by the agent so it exists before the task writes; anyone
     * may append (a container may run as another user). */
    at->progress_fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
    if (at->progress_fd >= 0)
        fchmod(at->progress_fd, 0666);
    else
        log_warn("attempt %" PRIu64 ": %s: %s (progress not followed)", at->id, path,
                 strerror(errno));
    free(path);
    at->progress_rd = xcalloc(1, sizeof *at->progress_rd);
}

void spot_attempt_free(attempt_t *at)
{
    if (at->progress_fd >= 0)
        close(at->progress_fd);
    at->progress_fd = -1;
    free(at->progress_rd);
    at->progress_rd = NULL;
    xfer_memo_release(&at->agent->xfer, at->ck_memo); /* after its scans */
    at->ck_memo = NULL;
    /* The snapshot dirs go with the attempt dir (workdirs_release). */
    free(at->ck_snap);
    free(at->up_snap);
    at->ck_snap = at->up_snap = NULL;
}

/* Remove the snapshot just uploaded (or dropped). */
static void drop_upload_snapshot(attempt_t *at)
{
    if (at->up_snap)
        util_rm_rf(at->up_snap);
    free(at->up_snap);
    at->up_snap = NULL;
}

void spot_drop_checkpoints(attempt_t *at)
{
    if (at->xout || at->ck_pending)
        log_info("attempt %" PRIu64 " (%s/%s): checkpoint upload dropped: killed by droverd",
                 at->id, at->run_id, at->task);
    xfer_out_cancel(&at->xout);
    drop_upload_snapshot(at);
    if (at->ck_snap)
        util_rm_rf(at->ck_snap);
    free(at->ck_snap);
    at->ck_snap = NULL;
    at->ck_pending = false;
}

static void poll_one(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    if (!at->exited)
        spot_read_progress(at);
}

static void on_progress_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    agent_t *a = w->data;
    idmap_each(a->attempts, poll_one, NULL);
}

/* ------------------------------------------------------------ checkpoints */

static Drover__Checkpoint *checkpoint_new(const attempt_t *at, const Drover__Artifact *art)
{
    Drover__Checkpoint *ck = xmalloc(sizeof *ck);
    drover__checkpoint__init(ck);
    ck->artifact = util_pb_copy(art);
    ck->step = at->up_step;
    ck->time_ms = at->up_time_ms;
    ck->attempt = at->number;
    return ck;
}

static void report_preempted(attempt_t *at, Drover__Checkpoint *ck)
{
    agent_t *a = at->agent;
    Drover__Report *r = agent_report_new(at, DROVER__REPORT_KIND__REPORT_EXITED);
    r->preempted = true;
    r->exit_code = at->result.exit_code;
    r->term_signal = at->result.term_signal;
    r->reason = xasprintf("preempted: %s", a->notice_reason);
    r->checkpoint = ck;
    agent_queue_report(a, r);
    log_info("attempt %" PRIu64 " (%s/%s #%u) handed back: preempted%s", at->id, at->run_id,
             at->task, at->number, ck ? ", with its last checkpoint" : "");
    agent_retire(a, at);
    spot_check_drained(a);
}

static void on_checkpoint_uploaded(void *arg, Drover__Artifact **arts, size_t n_arts,
                                   Drover__KeyValue **params, size_t n_params, const char *error)
{
    attempt_t *at = arg;
    Drover__Checkpoint *ck = NULL;
    if (!error && n_arts == 1)
        ck = checkpoint_new(at, arts[0]); /* arts are the session's: copy first */
    xfer_out_t *x = at->xout;
    at->xout = NULL;
    xfer_out_cancel(&x); /* done with it (freed once its jobs are back) */
    drop_upload_snapshot(at);
    if (!ck)
        log_warn("attempt %" PRIu64 " (%s/%s): checkpoint of step %" PRIu64 " not committed: %s",
                 at->id, at->run_id, at->task, at->up_step, error ? error : "nothing scanned");
    if (at->final_commit) {
        report_preempted(at, ck);
        return;
    }
    if (ck) {
        Drover__Report *r = agent_report_new(at, DROVER__REPORT_KIND__REPORT_CHECKPOINT);
        r->checkpoint = ck;
        agent_queue_report(at->agent, r);
        log_debug("attempt %" PRIu64 ": checkpoint of step %" PRIu64 " uploaded", at->id,
                  at->up_step);
    }
    if (at->exited) /* the process ended during the upload */
        agent_finish_attempt(at);
    else if (at->ck_pending)
        try_commit(at, false);
}

/* Commit the pending snapshot, unless an upload is running or (without
 * now) the last commit is more recent than min_interval. */
static void try_commit(attempt_t *at, bool now)
{
    int64_t mono = util_mono_ms();
    if (at->xout || !at->ck_pending)
        return;
    if (!now && at->ck_last_mono &&
        mono - at->ck_last_mono < (int64_t)at->as->checkpoint_min_interval_ms)
        return; /* remembered: a later line, a notice or the end commits it */
    agent_t *a = at->agent;
    at->ck_pending = false;
    at->ck_last_mono = mono;
    at->up_step = at->ck_step;
    at->up_time_ms = at->ck_time_ms;
    if (!at->ck_memo)
        at->ck_memo = xfer_memo_new(2);
    at->up_snap = at->ck_snap;
    at->ck_snap = NULL;
    at->xout = xfer_checkpoint_start(&a->xfer, at->id, at->up_snap, at->ck_memo,
                                     on_checkpoint_uploaded, at);
}

void spot_finish_preempted(attempt_t *at)
{
    if (at->as->checkpoint && at->ck_pending) {
        at->final_commit = true;
        try_commit(at, true);
        return;
    }
    report_preempted(at, NULL);
}

void spot_report_unstarted(attempt_t *at)
{
    agent_t *a = at->agent;
    idmap_put(a->attempts, at->id, at);
    at->exited = true;
    at->result.exit_code = 0;
    report_preempted(at, NULL);
}

/* ------------------------------------------------------------ preemption */

static void on_preempt_kill(struct ev_loop *loop, ev_timer *w, int revents)
{
    attempt_t *at = w->data;
    if (at->proc && !at->exited) {
        log_warn("attempt %" PRIu64 " (%s/%s): still running at its preemption deadline: killed",
                 at->id, at->run_id, at->task);
        rt_task_kill_now(at->proc);
    }
}

/* ms until a running task's SIGKILL: grace, or less to leave the upload
 * margin before the notice's deadline. */
static int64_t kill_delay(const agent_t *a, int64_t grace)
{
    if (a->notice_deadline_ms) {
        int64_t left = a->notice_deadline_ms - (int64_t)a->cfg.upload_margin_ms - util_now_ms();
        if (left < grace)
            grace = left > 0 ? left : 0;
    }
    return grace;
}

/* The deadline moved earlier: bring at's planned SIGKILL forward. */
static void replan_kill(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    agent_t *a = at->agent;
    if (!ev_is_active(&at->preempt_w) || at->exited)
        return; /* no SIGKILL planned (not signalled, or already killed) */
    int64_t planned = (int64_t)(ev_timer_remaining(a->loop, &at->preempt_w) * 1000.0);
    int64_t now = kill_delay(a, planned);
    if (now >= planned)
        return;
    ev_timer_stop(a->loop, &at->preempt_w);
    ev_timer_set(&at->preempt_w, (double)now / 1000.0, 0.);
    ev_timer_start(a->loop, &at->preempt_w);
    log_info("attempt %" PRIu64 " (%s/%s): deadline moved earlier: SIGKILL in %.1fs (was %.1fs) "
             "if still running",
             at->id, at->run_id, at->task, now / 1000.0, planned / 1000.0);
}

/* Hand one attempt back: at once if it has not started; a running task
 * gets its signal and a deadline; one already ended finishes its upload. */
static void drain_one(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    agent_t *a = at->agent;
    if (at->preempted || at->exited)
        return;
    at->preempted = true;
    if (at->queued) {
        agent_unqueue(a, at);
        spot_report_unstarted(at);
        return;
    }
    if (!at->proc) { /* restoring its checkpoint or fetching inputs */
        xfer_in_cancel(&at->xin);
        spot_report_unstarted(at);
        return;
    }
    int sig = at->as->preempt_signal ? at->as->preempt_signal : SIGTERM;
    int64_t grace = kill_delay(a, at->as->preempt_grace_ms ? (int64_t)at->as->preempt_grace_ms
                                                           : (int64_t)a->cfg.kill_grace_ms);
    log_info("attempt %" PRIu64 " (%s/%s): %s, SIGKILL in %.1fs if still running", at->id,
             at->run_id, at->task, strsignal(sig), grace / 1000.0);
    spot_read_progress(at); /* a checkpoint line already written counts */
    rt_task_signal(at->proc, sig);
    ev_timer_init(&at->preempt_w, on_preempt_kill, (double)grace / 1000.0, 0.);
    at->preempt_w.data = at;
    ev_timer_start(a->loop, &at->preempt_w);
}

static void commit_pending(uint64_t id, void *value, void *arg)
{
    attempt_t *at = value;
    if (!at->exited && at->as->checkpoint && at->ck_pending) {
        log_info("attempt %" PRIu64 " (%s/%s): committing its checkpoint of step %" PRIu64 " now",
                 at->id, at->run_id, at->task, at->ck_step);
        try_commit(at, true);
    }
}

/* "deadline in 12.3s" or "no deadline" into buf. */
static void deadline_text(char *buf, size_t size, int64_t deadline_ms)
{
    if (deadline_ms)
        snprintf(buf, size, "deadline in %.1fs", (double)(deadline_ms - util_now_ms()) / 1000.0);
    else
        snprintf(buf, size, "no deadline");
}

/* Whether deadline b (0 = none) is earlier than a. */
static bool earlier(int64_t b, int64_t a)
{
    return b > 0 && (a == 0 || b < a);
}

static void take_notice(agent_t *a, bool terminate, int64_t deadline_ms, const char *reason,
                        const char *source)
{
    char when[48];
    deadline_text(when, sizeof when, deadline_ms);
    if (a->terminating) {
        if (!terminate || !earlier(deadline_ms, a->notice_deadline_ms)) {
            log_info("%s notice ignored: %s (%s): the node is already going away (%s)",
                     terminate ? "preemption" : "rebalance", reason, when, a->notice_reason);
            return;
        }
        log_warn("preemption notice: %s (%s): earlier than the deadline so far (%s)", reason, when,
                 a->notice_reason);
        a->notice_deadline_ms = deadline_ms;
        snprintf(a->notice_reason, sizeof a->notice_reason, "%s", reason);
        snprintf(a->notice_source, sizeof a->notice_source, "%s", source);
        if (a->registered)
            agent_send_heartbeat(a); /* droverd shows the new deadline */
        idmap_each(a->attempts, replan_kill, NULL);
        return;
    }
    if (a->noticed && !terminate)
        return; /* at risk already */
    a->noticed = true;
    a->terminating = terminate;
    a->notice_deadline_ms = deadline_ms;
    snprintf(a->notice_reason, sizeof a->notice_reason, "%s", reason);
    snprintf(a->notice_source, sizeof a->notice_source, "%s", source);
    log_warn("%s notice: %s (%s)", terminate ? "preemption" : "rebalance", reason, when);
    if (a->registered)
        agent_send_heartbeat(a); /* droverd stops placing work here at once */
    if (terminate)
        idmap_each(a->attempts, drain_one, NULL);
    else
        idmap_each(a->attempts, commit_pending, NULL);
    spot_check_drained(a);
}

void spot_notice(agent_t *a, bool terminate, int64_t deadline_ms, const char *reason)
{
    take_notice(a, terminate, deadline_ms, reason, "");
}

/* source says its earlier notice no longer holds: an at-risk mark it set
 * is dropped (the next heartbeat carries no notice, so droverd places
 * work here as before); a drain once begun goes on. */
static void clear_notice(agent_t *a);

static void withdraw_notice(agent_t *a, const char *source, const char *reason)
{
    if (!a->noticed || strcmp(a->notice_source, source) != 0) {
        log_info("%s: no %s notice to withdraw", reason, source);
        return;
    }
    if (a->terminating) {
        log_info("%s: the node is draining already (%s): it goes on", reason, a->notice_reason);
        return;
    }
    log_info("rebalance notice withdrawn: %s (it was: %s): the node takes work as before", reason,
             a->notice_reason);
    clear_notice(a);
}

/* The notice is over: the node takes work again (droverd sees no notice
 * in the next heartbeat and places work here). */
static void clear_notice(agent_t *a)
{
    a->noticed = a->terminating = false;
    a->notice_deadline_ms = 0;
    a->notice_reason[0] = '\0';
    a->notice_source[0] = '\0';
    a->drained_logged = false;
    ev_timer_stop(a->loop, &a->drill_w);
    if (a->registered)
        agent_send_heartbeat(a);
}

static void on_drill_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    agent_t *a = w->data;
    if (strcmp(a->notice_source, "drill") != 0)
        return; /* a real notice took over: it goes on */
    if (a->cfg.drill_exit) {
        log_warn("drill deadline: the agent exits, as a reclaimed node would (--drill-exit)");
        a->stopping = true; /* exits once its steps are handed back */
        return;
    }
    spot_drill_end(a, "its deadline passed");
}

void spot_drill(agent_t *a, int64_t deadline_ms, const char *reason)
{
    if (a->noticed && strcmp(a->notice_source, "drill") != 0 && a->terminating) {
        log_info("drill ignored: the node is already going away (%s)", a->notice_reason);
        return;
    }
    char why[200];
    snprintf(why, sizeof why, "%.120s; at the deadline %s", reason,
             a->cfg.drill_exit ? "the agent exits" : "it returns to service");
    take_notice(a, true, deadline_ms, why, "drill");
    if (strcmp(a->notice_source, "drill") != 0)
        return;
    double in = (double)(a->notice_deadline_ms - util_now_ms()) / 1000.0;
    ev_timer_stop(a->loop, &a->drill_w);
    ev_timer_init(&a->drill_w, on_drill_deadline, in > 0 ? in : 0., 0.);
    a->drill_w.data = a;
    ev_timer_start(a->loop, &a->drill_w);
}

void spot_drill_end(agent_t *a, const char *why)
{
    if (!a->noticed || strcmp(a->notice_source, "drill") != 0) {
        log_info("drill end (%s): no drill in progress%s%s", why,
                 a->noticed ? ": the notice is " : "", a->noticed ? a->notice_reason : "");
        return;
    }
    log_info("drill over (%s): back in service", why);
    clear_notice(a);
}

Drover__PreemptNotice *spot_notice_message(agent_t *a, Drover__PreemptNotice *buf)
{
    if (!a->noticed)
        return NULL;
    drover__preempt_notice__init(buf);
    buf->terminate = a->terminating;
    buf->deadline_ms = a->notice_deadline_ms;
    buf->reason = a->notice_reason;
    return buf;
}

void spot_check_drained(agent_t *a)
{
    if (!a->terminating || a->drained_logged || idmap_size(a->attempts) > 0)
        return;
    a->drained_logged = true;
    log_info("drained: every step handed back to droverd");
    preempt_watch_ack(a->watch); /* Azure: the platform may go ahead */
}

static void on_cloud_notice(void *arg, const preempt_notice_t *n)
{
    if (n->kind == PREEMPT_WITHDRAWN)
        withdraw_notice(arg, n->source, n->detail);
    else
        take_notice(arg, n->kind == PREEMPT_TERMINATE, n->deadline_ms, n->detail, n->source);
}

/* ------------------------------------------------------------ set-up */

void spot_start(agent_t *a)
{
    const agent_config_t *c = &a->cfg;
    preempt_config_t pc = {.aws_url = c->aws_url,
                           .gcp_url = c->gcp_url,
                           .azure_url = c->azure_url,
                           .poll_ms = (uint32_t)c->metadata_poll_ms};
    bool any = (c->aws_url && *c->aws_url) || (c->gcp_url && *c->gcp_url) ||
               (c->azure_url && *c->azure_url);
    for (size_t i = 0; i < a->n_labels && a->cfg.spot < 0; i++) {
        if (strcmp(a->labels[i]->key, "spot") == 0)
            a->cfg.spot = strcmp(a->labels[i]->value, "true") == 0;
    }
    if (any && a->cfg.spot < 0) {
        char err[512];
        bool spot = false;
        if (preempt_detect_spot(&pc, &spot, err, sizeof err) == 0) {
            a->cfg.spot = spot;
            log_info("metadata says this is %s node", spot ? "a spot" : "an on-demand");
        } else {
            log_warn("could not tell from metadata whether this is a spot node (%s): on-demand",
                     err);
        }
    }
    if (a->cfg.spot < 0)
        a->cfg.spot = 0;
    /* Steps can also select with placement.labels {spot: "true"}. */
    bool labelled = false;
    for (size_t i = 0; i < a->n_labels; i++) {
        if (strcmp(a->labels[i]->key, "spot") == 0) {
            util_pb_set_str(&a->labels[i]->value, a->cfg.spot ? "true" : "false");
            labelled = true;
        }
    }
    if (!labelled) {
        a->labels = xrealloc(a->labels, (a->n_labels + 1) * sizeof *a->labels);
        a->labels[a->n_labels++] = util_kv_new("spot", a->cfg.spot ? "true" : "false");
    }
    if (any)
        a->watch = preempt_watch_new(a->loop, &pc, on_cloud_notice, a);
    ev_timer_init(&a->progress_w, on_progress_poll, PROGRESS_POLL_S, PROGRESS_POLL_S);
    a->progress_w.data = a;
    ev_timer_start(a->loop, &a->progress_w);
}

void spot_stop(agent_t *a)
{
    ev_timer_stop(a->loop, &a->drill_w);
    preempt_watch_destroy(&a->watch);
    ev_timer_stop(a->loop, &a->progress_w);
}
