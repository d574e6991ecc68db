/* fuzz_progress — the task → agent progress protocol (common/progress.h).
 *
 * The input is a byte stream as a task would append it to
 * $DROVER_PROGRESS. It is parsed as one line by progress_parse_line, then
 * fed through progress_feed twice: whole, and cut into pieces whose sizes
 * come from the input itself (a task writing in arbitrary fragments). Both
 * feeds must report exactly the same lines and errors, and every accepted
 * line must hold values in the documented ranges.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "progress.h"

#define MAX_EVENTS 256

typedef struct {
    progress_line_t lines[MAX_EVENTS];
    char errors[MAX_EVENTS][160];
    bool is_error[MAX_EVENTS];
    size_t n, total;
} events_t;

static void check_line(const progress_line_t *l)
{
    if (l->has_progress && !(l->progress >= 0 && l->progress <= 1))
        fz_fail("progress %g out of [0, 1]", l->progress);
    if (!l->has_progress && l->progress != 0)
        fz_fail("progress set without has_progress");
    if (l->has_step && l->step >= (1ULL << 53))
        fz_fail("step %llu not below 2^53", (unsigned long long)l->step);
    if (!l->has_step && l->step != 0)
        fz_fail("step set without has_step");
}

static void on_line(void *arg, const progress_line_t *line, const char *error)
{
    events_t *ev = arg;
    if ((line == NULL) == (error == NULL))
        fz_fail("callback with line %p and error %p", (void *)line, (void *)error);
    if (line)
        check_line(line);
    else if (!*error || strchr(error, '\n'))
        fz_fail("empty or multi-line error '%s'", error);
    ev->total++;
    if (ev->n == MAX_EVENTS)
        return;
    ev->is_error[ev->n] = line == NULL;
    if (line)
        ev->lines[ev->n] = *line;
    else
        snprintf(ev->errors[ev->n], sizeof ev->errors[ev->n], "%s", error);
    ev->n++;
}

static bool same_line(const progress_line_t *a, const progress_line_t *b)
{
    return a->has_progress == b->has_progress && a->progress == b->progress &&
           a->checkpoint == b->checkpoint && a->has_step == b->has_step && a->step == b->step;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One line, exactly as given (no NUL terminator: ASan sees overreads). */
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    progress_line_t line;
    size_t errlen = size % 11 == 3 ? 7 : 160;
    char *err = malloc(errlen);
    err[0] = '\0';
    int rc = progress_parse_line(copy, size, &line, err, errlen);
    if (rc == 0)
        check_line(&line);
    else if (rc != -EINVAL && rc != -ENODATA)
        fz_fail("progress_parse_line = %d", rc);
    else if (rc == -EINVAL && (!err[0] || !fz_one_line(err, errlen)))
        fz_fail("progress_parse_line = -EINVAL without a one-line reason");
    free(err);
    free(copy);

    /* The stream, whole and in pieces. */
    static events_t whole, pieces;
    progress_reader_t *r = malloc(sizeof *r);
    memset(r, 0, sizeof *r);
    whole.n = whole.total = 0;
    progress_feed(r, (const char *)data, size, on_line, &whole);

    memset(r, 0, sizeof *r);
    pieces.n = pieces.total = 0;
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        seed = (seed ^ data[i]) * 16777619u;
    for (size_t off = 0; off < size;) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % ((seed & 1) ? 8 : 700);
        if (n > size - off)
            n = size - off;
        char *piece = malloc(n); /* exact size: overreads are caught */
        memcpy(piece, data + off, n);
        progress_feed(r, piece, n, on_line, &pieces);
        free(piece);
        off += n;
    }
    if (r->len > sizeof r->buf)
        fz_fail("reader holds %zu bytes in a %zu-byte buffer", r->len, sizeof r->buf);
    free(r);

    if (whole.total != pieces.total)
        fz_fail("%zu events fed whole, %zu fed in pieces", whole.total, pieces.total);
    for (size_t i = 0; i < whole.n; i++) {
        if (whole.is_error[i] != pieces.is_error[i])
            fz_fail("event %zu: error in one feed, a line in the other", i);
        if (whole.is_error[i] ? strcmp(whole.errors[i], pieces.errors[i]) != 0
                              : !same_line(&whole.lines[i], &pieces.lines[i]))
            fz_fail("event %zu differs between the feeds", i);
    }
    return 0;
}
