/* progress — the task → agent progress protocol ($DROVER_PROGRESS).
 *
 * A task appends JSON lines to the file named by $DROVER_PROGRESS:
 *   {"progress":0.42}                 fraction done, shown by `run watch`
 *   {"checkpoint":true,"step":1200}   commit $DROVER_CHECKPOINT_DIR now
 * Both may appear in one line. Other members are ignored (room to grow);
 * a line that is not one JSON object, or whose known members have the
 * wrong type or range, is rejected with a reason and changes nothing.
 *
 * The reader splits a byte stream into lines: it keeps a partial last line
 * until its newline arrives (the task may be mid-write), and a line longer
 * than PROGRESS_LINE_MAX is dropped whole with one error. Nothing here
 * allocates per line beyond the JSON reader's scratch; no global state.
 */
#ifndef DROVER_PROGRESS_H
#define DROVER_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_LINE_MAX 4096

typedef struct {
    bool has_progress;
    double progress; /* in [0, 1] */
    bool checkpoint; /* "checkpoint": true */
    bool has_step;
    uint64_t step; /* "step": a non-negative integer below 2^53 */
} progress_line_t;

/* Parse one line (text[0..len), no newline, need not be NUL-terminated).
 * 0 and *out filled, or -EINVAL with a one-line reason in err. A blank
 * line is -ENODATA (not an error worth reporting). */
int progress_parse_line(const char *text, size_t len, progress_line_t *out, char *err,
                        size_t errlen);

typedef struct {
    char buf[PROGRESS_LINE_MAX];
    size_t len;
    bool overflow; /* the current line is too long: skip to its newline */
} progress_reader_t;

/* Called for each complete line: line is NULL and error set when the line
 * was rejected. */
typedef void (*progress_line_fn)(void *arg, const progress_line_t *line, const char *error);

/* Feed the next bytes of the stream; calls fn for every line they end. */
void progress_feed(progress_reader_t *r, const char *data, size_t len, progress_line_fn fn,
                   void *arg);

#endif
