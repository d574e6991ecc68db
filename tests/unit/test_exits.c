/* test_exits — EXITED reports kept on disk until droverd acknowledges them.
 *
 * A real worker thread writes and removes the files. Checked: a saved
 * report comes back whole after a "restart" (a new store on the same work
 * dir), a dropped one does not, and whatever else lies in the directory
 * (a temporary cut short, garbage, a report under another attempt's name,
 * one that is not an EXITED report) is removed, never reported.
 */
#include "helpers.h"

#include <ev.h>

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

static void write_file(const char *name, const void *data, size_t len)
{
    char *p = xasprintf("%s/exits/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "fopen %s", p);
    fwrite(data, 1, len, f);
    fclose(f);
    free(p);
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

Test(exits, what_is_not_a_whole_exit_report_is_removed)
{
    save(7, 1, "exit 1");
    settle();
    /* a temporary of a write cut short, garbage, a report filed under
     * another attempt's id, a report that is not EXITED */
    write_file("8.tmp", "half", 4);
    write_file("9", "\xff\xff\xff\xff garbage", 13);
    char *seven = xasprintf("%s/exits/7", dir);
    char *data = NULL;
    size_t len = 0;
    cr_assert_eq(util_read_file(seven, 1 << 20, &data, &len), 0);
    write_file("10", data, len); /* attempt 7's report under 10 */
    Drover__Report started = DROVER__REPORT__INIT;
    started.kind = DROVER__REPORT_KIND__REPORT_STARTED;
    started.attempt_id = 11;
    uint8_t buf[64];
    write_file("11", buf, drover__report__pack(&started, buf));
    write_file("not-a-number", "x", 1);
    loaded_t l = {0};
    cr_assert_eq(exits_load(ex, collect, &l), 1, "only attempt 7's report is one");
    cr_assert_eq(l.got[0]->attempt_id, 7);
    free_loaded(&l);
    const char *gone[] = {"8.tmp", "9", "10", "11", "not-a-number"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
        char *p = xasprintf("%s/exits/%s", dir, gone[i]);
        cr_assert_neq(access(p, F_OK), 0, "%s was left in place", gone[i]);
        free(p);
    }
    free(data);
    free(seven);
}
