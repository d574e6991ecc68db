/* Tests for common/progress.c: the lines a task appends to
 * $DROVER_PROGRESS, and the reader that splits the stream into them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "progress.h"

static char err[256];

static int parse(const char *s, progress_line_t *out)
{
    err[0] = '\0';
    return progress_parse_line(s, strlen(s), out, err, sizeof err);
}

Test(progress, progress_and_checkpoint_lines)
{
    progress_line_t l;
    cr_assert_eq(parse("{\"progress\":0.42}", &l), 0, "%s", err);
    cr_assert(l.has_progress);
    cr_assert_float_eq(l.progress, 0.42, 1e-9);
    cr_assert_not(l.checkpoint);
    cr_assert_eq(parse(" {\"checkpoint\": true, \"step\": 1200, \"loss\": [1,2]}\r", &l), 0, "%s",
                 err);
    cr_assert(l.checkpoint);
    cr_assert(l.has_step);
    cr_assert_eq(l.step, 1200);
    cr_assert_not(l.has_progress, "unknown members are ignored");
    cr_assert_eq(parse("{\"checkpoint\":false,\"progress\":1}", &l), 0);
    cr_assert_not(l.checkpoint);
    cr_assert_float_eq(l.progress, 1.0, 1e-9);
    cr_assert_eq(parse("   ", &l), -ENODATA, "a blank line is no error");
}

Test(progress, bad_lines_are_rejected_with_a_reason)
{
    progress_line_t l;
    static const struct {
        const char *line, *why;
    } bad[] = {
        {"progress 0.5", "not a JSON object"},
        {"{\"progress\":1.5}", "\"progress\" must be a number from 0 to 1"},
        {"{\"progress\":\"half\"}", "\"progress\" must be a number"},
        {"{\"progress\":-0.1}", "from 0 to 1"},
        {"{\"checkpoint\":\"yes\"}", "\"checkpoint\" must be true or false"},
        {"{\"checkpoint\":true,\"step\":-3}", "\"step\" must be a non-negative integer"},
        {"{\"checkpoint\":true,\"step\":1.5}", "non-negative integer"},
        {"{\"step\":1e300}", "non-negative integer"},
        {"{\"progress\":0.5", "not a JSON object"},
        {"[0.5]", "not a JSON object"},
        {"{\"progress\":0.1,\"progress\":0.2}", "not a JSON object"}, /* ambiguous */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(parse(bad[i].line, &l), -EINVAL, "accepted: %s", bad[i].line);
        cr_assert(strstr(err, bad[i].why), "%s: got '%s'", bad[i].line, err);
    }
    char nul[] = "{\"progress\":0.5}";
    nul[3] = '\0';
    cr_assert_eq(progress_parse_line(nul, sizeof nul - 1, &l, err, sizeof err), -EINVAL);
}

typedef struct {
    int lines, errors;
    double last;
    uint64_t step;
} seen_t;

static void on_line(void *arg, const progress_line_t *line, const char *error)
{
    seen_t *s = arg;
    if (!line) {
        s->errors++;
        return;
    }
    s->lines++;
    if (line->has_progress)
        s->last = line->progress;
    if (line->has_step)
        s->step = line->step;
}

Test(progress, reader_keeps_partial_lines_until_their_newline)
{
    progress_reader_t r = {0};
    seen_t s = {0};
    const char *stream = "{\"progress\":0.1}\n{\"progr";
    progress_feed(&r, stream, strlen(stream), on_line, &s);
    cr_assert_eq(s.lines, 1);
    progress_feed(&r, "ess\":0.2}", 9, on_line, &s);
    cr_assert_eq(s.lines, 1, "no newline yet: the task may be mid-write");
    progress_feed(&r, "\n\n{\"checkpoint\":true,\"step\":7}\n", 32, on_line, &s);
    cr_assert_eq(s.lines, 2 + 0 + 1);
    cr_assert_float_eq(s.last, 0.2, 1e-9);
    cr_assert_eq(s.step, 7);
    cr_assert_eq(s.errors, 0);
}

Test(progress, reader_drops_an_overlong_line_whole)
{
    progress_reader_t r = {0};
    seen_t s = {0};
    static char big[PROGRESS_LINE_MAX + 100];
    memset(big, ' ', sizeof big);
    for (int i = 0; i < 3; i++) /* in pieces, as a slow writer would */
        progress_feed(&r, big, sizeof big / 3, on_line, &s);
    progress_feed(&r, "{\"progress\":0.9}\n{\"progress\":0.3}\n", 34, on_line, &s);
    cr_assert_eq(s.errors, 1, "one error for the long line");
    cr_assert_eq(s.lines, 1, "its tail is not mistaken for a line; the next one counts");
    cr_assert_float_eq(s.last, 0.3, 1e-9);
}
