/* test_exits — EXITED reports kept on disk until droverd acknowledges them.
 *
 * A real worker thread appends to the journal. Checked: a saved report
 * comes back whole after a "restart" (a new store on the same work dir), a
 * dropped one does not, whatever else is in the journal (a record cut
 * short by a crash, a report under another attempt's id, one that is not
 * an EXITED report) is never reported, and the journal is rewritten small
 * once most of it is dropped records.
 */
#include "helpers.h"

#include <ev.h>
#include <sys/stat.h>

#include "exits.h"
#include "worker.h"

static char *dir;
static worker_t *worker;
static exits_t *ex;

static void setup(void)
{
    dir = h_tmpdir();
    worker = worker_new(EV_DEFAULT);
    ex = exits_open(dir, worker);
    cr_assert_not_null(ex);
}

static void teardown(void)
{
    worker_destroy(&worker);
    exits_close(&ex);
    util_rm_rf(dir);
    free(dir);
}

TestSuite(exits, .init = setup, .fini = teardown, .timeout = 60);

/* Let the worker finish what was queued (destroy runs queued jobs). */
static void settle(void)
{
    worker_destroy(&worker);
    worker = worker_new(EV_DEFAULT);
    exits_close(&ex);
    ex = exits_open(dir, worker);
}

typedef struct {
    Drover__Report *got[8];
    size_t n;
} loaded_t;

static void collect(Drover__Report *rep, void *arg)
{
    loaded_t *l = arg;
    cr_assert_lt(l->n, 8);
    l->got[l->n++] = rep;
}

static void free_loaded(loaded_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        drover__report__free_unpacked(l->got[i], NULL);
}

static void save(uint64_t attempt, int exit_code, const char *reason)
{
    Drover__Report r = DROVER__REPORT__INIT;
    r.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    r.attempt_id = attempt;
    r.exit_code = exit_code;
    r.reason = (char *)reason;
    exits_save(ex, &r);
}

static char *journal(void)
{
    return xasprintf("%s/exits.journal", dir);
}

/* Append one raw record {kind, id, length, payload} to the journal. */
static void append_record(uint8_t kind, uint64_t id, const void *payload, uint32_t len,
                          uint32_t claimed)
{
    char *p = journal();
    FILE *f = fopen(p, "a");
    cr_assert_not_null(f, "fopen %s", p);
    fwrite(&kind, 1, 1, f);
    fwrite(&id, 8, 1, f);
    fwrite(&claimed, 4, 1, f);
    fwrite(payload, 1, len, f);
    fclose(f);
    free(p);
}

static size_t journal_size(void)
{
    char *p = journal();
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    free(p);
    return (size_t)st.st_size;
}

Test(exits, a_saved_report_survives_a_restart_until_dropped)
{
    save(41, 3, "exit 3");
    save(42, 0, "");
    exits_drop(ex, 41);
    settle();
    loaded_t l = {0};
    cr_assert_eq(exits_load(ex, collect, &l), 1);
    cr_assert_eq(l.got[0]->attempt_id, 42);
    cr_assert_eq(l.got[0]->kind, DROVER__REPORT_KIND__REPORT_EXITED);
    cr_assert_eq(l.got[0]->exit_code, 0);
    free_loaded(&l);
    exits_drop(ex, 42);
    settle();
    loaded_t none = {0};
    cr_assert_eq(exits_load(ex, collect, &none), 0, "an acknowledged report came back");
}

Test(exits, what_is_not_a_whole_exit_report_is_never_reported)
{
    save(7, 1, "exit 1");
    settle();
    /* attempt 7's report filed under 10, a STARTED report, and a record
     * cut short (the agent died mid-append) */
    Drover__Report r = DROVER__REPORT__INIT;
    r.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    r.attempt_id = 7;
    uint8_t buf[128];
    append_record(1, 10, buf, (uint32_t)drover__report__pack(&r, buf),
                  (uint32_t)drover__report__get_packed_size(&r));
    Drover__Report started = DROVER__REPORT__INIT;
    started.kind = DROVER__REPORT_KIND__REPORT_STARTED;
    started.attempt_id = 11;
    size_t n = drover__report__pack(&started, buf);
    append_record(1, 11, buf, (uint32_t)n, (uint32_t)n);
    append_record(1, 12, "half", 4, 400);
    settle();
    loaded_t l = {0};
    cr_assert_eq(exits_load(ex, collect, &l), 1, "only attempt 7's report is one");
    cr_assert_eq(l.got[0]->attempt_id, 7);
    cr_assert_eq(l.got[0]->exit_code, 1);
    free_loaded(&l);
    settle(); /* the load rewrote the journal with attempt 7 alone */
    loaded_t again = {0};
    cr_assert_eq(exits_load(ex, collect, &again), 1);
    free_loaded(&again);
}

Test(exits, the_journal_stays_small)
{
    /* Thousands of steps saved and acknowledged: the journal is rewritten
     * with the live reports instead of growing with every step. */
    char reason[200];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    for (uint64_t id = 1; id <= 20000; id++) {
        save(id, 0, reason);
        if (id > 2)
            exits_drop(ex, id - 2);
    }
    settle();
    cr_assert_lt(journal_size(), 2u << 20, "the journal grew to %zu bytes", journal_size());
    loaded_t l = {0};
    cr_assert_eq(exits_load(ex, collect, &l), 2, "the two unacknowledged reports");
    free_loaded(&l);
}

/* issue 15: {{steps.S.outputs.result}} travels in the EXITED report, so
 * the journal keeps it across an agent restart. */
Test(exits, a_captured_result_comes_back)
{
    Drover__Report r = DROVER__REPORT__INIT;
    r.kind = DROVER__REPORT_KIND__REPORT_EXITED;
    r.attempt_id = 7;
    r.has_result = true;
    r.result = "tails";
    exits_save(ex, &r);
    settle();
    loaded_t l = {0};
    cr_assert_eq(exits_load(ex, collect, &l), 1);
    cr_assert(l.got[0]->has_result);
    cr_assert_str_eq(l.got[0]->result, "tails");
    free_loaded(&l);
}
