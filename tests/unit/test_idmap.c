/* test_idmap — the open-addressing id → pointer map.
 *
 * Checked against a plain reference array: 100k random ids put, got,
 * replaced and deleted in random order (through several growths);
 * sequential ids (what attempt ids are); many small maps kept near their
 * load limit and emptied in random orders, so deletions hit long, wrapping
 * probe runs and the backward shift must keep every other key reachable;
 * size and each.
 */
#include "helpers.h"

#include "idmap.h"

static idmap_t *m;

static void setup(void)
{
    m = idmap_new();
    cr_assert_not_null(m);
}

static void teardown(void)
{
    idmap_destroy(&m);
    cr_assert_null(m);
}

TestSuite(idmap, .init = setup, .fini = teardown, .timeout = 120);

/* A distinct pointer value for each index (never dereferenced). */
static void *val(size_t i)
{
    return (void *)(uintptr_t)(0x1000 + i * 8);
}

Test(idmap, empty_map)
{
    cr_assert_eq(idmap_size(m), 0);
    cr_assert_null(idmap_get(m, 1));
    cr_assert_null(idmap_get(m, UINT64_MAX));
    cr_assert_null(idmap_del(m, 1));
    cr_assert_eq(idmap_size(m), 0);
    idmap_destroy(NULL);
}

Test(idmap, put_get_replace_del)
{
    idmap_put(m, 42, val(1));
    idmap_put(m, UINT64_MAX, val(2));
    idmap_put(m, 1, val(3));
    cr_assert_eq(idmap_size(m), 3);
    cr_assert_eq(idmap_get(m, 42), val(1));
    cr_assert_eq(idmap_get(m, UINT64_MAX), val(2));
    cr_assert_eq(idmap_get(m, 1), val(3));
    cr_assert_null(idmap_get(m, 43));

    idmap_put(m, 42, val(9)); /* replace: size unchanged */
    cr_assert_eq(idmap_size(m), 3);
    cr_assert_eq(idmap_get(m, 42), val(9));

    cr_assert_eq(idmap_del(m, 42), val(9));
    cr_assert_null(idmap_get(m, 42));
    cr_assert_null(idmap_del(m, 42), "deleting twice returns NULL");
    cr_assert_eq(idmap_size(m), 2);
    cr_assert_eq(idmap_get(m, UINT64_MAX), val(2));
    cr_assert_eq(idmap_get(m, 1), val(3));

    /* A NULL value is stored (get cannot tell it from absent, size can). */
    idmap_put(m, 77, NULL);
    cr_assert_eq(idmap_size(m), 3);
}

/* The reference: ids[i] is in the map with val(i) iff present[i]. */
typedef struct {
    uint64_t *ids;
    bool *present;
    size_t n, count;
} ref_t;

static void check_all(const ref_t *r)
{
    cr_assert_eq(idmap_size(m), r->count);
    for (size_t i = 0; i < r->n; i++) {
        void *got = idmap_get(m, r->ids[i]);
        if (r->present[i])
            cr_assert_eq(got, val(i), "id %#lx (index %zu) lost", (unsigned long)r->ids[i], i);
        else
            cr_assert_null(got, "deleted id %#lx (index %zu) still found", (unsigned long)r->ids[i],
                           i);
    }
}

/* ids: n distinct non-zero values from the generator. */
static void fill_random_ids(ref_t *r, size_t n, uint64_t seed)
{
    r->ids = xcalloc(n, sizeof *r->ids);
    r->present = xcalloc(n, sizeof *r->present);
    r->n = n;
    r->count = 0;
    uint64_t state = seed;
    idmap_t *seen = idmap_new(); /* only for uniqueness of the test data */
    for (size_t i = 0; i < n;) {
        uint64_t id = h_rand(&state);
        if (id == 0 || idmap_get(seen, id))
            continue;
        idmap_put(seen, id, (void *)1);
        r->ids[i++] = id;
    }
    idmap_destroy(&seen);
}

static void ref_free(ref_t *r)
{
    free(r->ids);
    free(r->present);
}

Test(idmap, hundred_thousand_random_ids)
{
    ref_t r;
    const size_t n = 100000;
    fill_random_ids(&r, n, 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < n; i++) {
        idmap_put(m, r.ids[i], val(i));
        r.present[i] = true;
        r.count++;
    }
    check_all(&r);

    /* Random mixture of deletes, re-puts and gets. */
    uint64_t state = 12345;
    for (size_t step = 0; step < 300000; step++) {
        size_t i = (size_t)(h_rand(&state) % n);
        switch (h_rand(&state) % 3) {
        case 0: {
            void *old = idmap_del(m, r.ids[i]);
            cr_assert_eq(old, r.present[i] ? val(i) : NULL);
            if (r.present[i])
                r.count--;
            r.present[i] = false;
            break;
        }
        case 1:
            idmap_put(m, r.ids[i], val(i));
            if (!r.present[i])
                r.count++;
            r.present[i] = true;
            break;
        default:
            cr_assert_eq(idmap_get(m, r.ids[i]), r.present[i] ? val(i) : NULL);
        }
        cr_assert_eq(idmap_size(m), r.count);
    }
    check_all(&r);

    /* Delete everything in random order, checking periodically. */
    size_t *order = xcalloc(n, sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(h_rand(&state) % (i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        cr_assert_eq(idmap_del(m, r.ids[i]), r.present[i] ? val(i) : NULL);
        if (r.present[i])
            r.count--;
        r.present[i] = false;
        if (k % 20000 == 0)
            check_all(&r);
    }
    check_all(&r);
    cr_assert_eq(idmap_size(m), 0);
    free(order);
    ref_free(&r);
}

Test(idmap, sequential_ids)
{
    const uint64_t n = 50000;
    for (uint64_t id = 1; id <= n; id++)
        idmap_put(m, id, val(id));
    cr_assert_eq(idmap_size(m), n);
    for (uint64_t id = 1; id <= n; id += 2)
        cr_assert_eq(idmap_del(m, id), val(id));
    cr_assert_eq(idmap_size(m), n / 2);
    for (uint64_t id = 1; id <= n; id++)
        cr_assert_eq(idmap_get(m, id), id % 2 ? NULL : val(id), "id %lu", (unsigned long)id);
    /* Reuse after deletes. */
    for (uint64_t id = n + 1; id <= n + 1000; id++)
        idmap_put(m, id, val(id));
    cr_assert_eq(idmap_size(m), n / 2 + 1000);
    cr_assert_eq(idmap_get(m, n + 500), val(n + 500));
    cr_assert_eq(idmap_get(m, 2), val(2));
}

/* Deletions in a full small table: every order of removal must leave the
 * rest reachable. 44 entries stay below the 70% growth threshold of the
 * initial 64 slots, so probe runs are long and wrap around the end. */
Test(idmap, deletes_keep_other_keys_reachable)
{
    uint64_t state = 777;
    for (int round = 0; round < 2000; round++) {
        idmap_t *small = idmap_new();
        uint64_t ids[44];
        bool present[44];
        for (size_t i = 0; i < 44; i++) {
            do {
                ids[i] = h_rand(&state);
                for (size_t j = 0; j < i; j++)
                    if (ids[j] == ids[i])
                        ids[i] = 0;
            } while (ids[i] == 0);
            idmap_put(small, ids[i], val(i));
            present[i] = true;
        }
        /* Remove in a random order; after each removal all survivors must
         * still be found and the removed one must not. */
        for (size_t k = 44; k > 0; k--) {
            size_t pick = (size_t)(h_rand(&state) % k), i = 0;
            for (;; i++)
                if (present[i] && pick-- == 0)
                    break;
            cr_assert_eq(idmap_del(small, ids[i]), val(i));
            present[i] = false;
            cr_assert_eq(idmap_size(small), k - 1);
            for (size_t j = 0; j < 44; j++)
                cr_assert_eq(idmap_get(small, ids[j]), present[j] ? val(j) : NULL,
                             "round %d: id %#lx %s after deleting %#lx", round,
                             (unsigned long)ids[j], present[j] ? "lost" : "resurrected",
                             (unsigned long)ids[i]);
            /* Re-insert now and then: holes get reused correctly. */
            if (k % 7 == 0) {
                idmap_put(small, ids[i], val(i));
                cr_assert_eq(idmap_get(small, ids[i]), val(i));
                cr_assert_eq(idmap_del(small, ids[i]), val(i));
            }
        }
        idmap_destroy(&small);
    }
}

typedef struct {
    size_t calls;
    uint64_t sum_ids;
    uintptr_t sum_vals;
} each_acc_t;

static void each_fn(uint64_t id, void *value, void *arg)
{
    each_acc_t *acc = arg;
    cr_assert_eq(value, val((size_t)id), "each passes the value stored under id");
    acc->calls++;
    acc->sum_ids += id;
    acc->sum_vals += (uintptr_t)value;
}

Test(idmap, each_visits_every_entry_once)
{
    each_acc_t acc = {0};
    idmap_each(m, each_fn, &acc);
    cr_assert_eq(acc.calls, 0);
    uint64_t want_ids = 0;
    uintptr_t want_vals = 0;
    for (uint64_t id = 1; id <= 1000; id++) {
        idmap_put(m, id, val(id));
        want_ids += id;
        want_vals += (uintptr_t)val(id);
    }
    for (uint64_t id = 1; id <= 1000; id += 3) {
        idmap_del(m, id);
        want_ids -= id;
        want_vals -= (uintptr_t)val(id);
    }
    idmap_each(m, each_fn, &acc);
    cr_assert_eq(acc.calls, idmap_size(m));
    cr_assert_eq(acc.sum_ids, want_ids);
    cr_assert_eq(acc.sum_vals, want_vals);
}
