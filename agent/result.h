/* result — a step's standard output kept as {{steps.S.outputs.result}}.
 *
 * The agent feeds every read of the step's stdout (runner.h's on_stdout)
 * to result_add while it also streams it to the log. At most
 * RESULT_MAX + 1 bytes are kept, so memory stays bounded whatever the step
 * writes, and one byte past the limit tells that it was over. result_take
 * then gives the text with one trailing newline dropped, or refuses output
 * over the limit or holding a NUL byte (a template value is text), with a
 * reason that fails the attempt.
 */
#ifndef DROVER_RESULT_H
#define DROVER_RESULT_H

#include <stdint.h>
#include <stddef.h>

#include "strbuf.h"

#define RESULT_MAX 65536 /* bytes of a kept result, after the newline is dropped */

typedef struct {
    strbuf_t buf; /* at most RESULT_MAX + 2 bytes (a trailing newline may follow) */
    size_t seen;  /* bytes read in all */
} result_t;

/* Keep data[0..len) (as far as the bound allows). r starts zeroed. */
void result_add(result_t *r, const uint8_t *data, size_t len);

/* The kept text: 0 and *out (the caller frees; r is emptied), or -E2BIG
 * (over RESULT_MAX bytes) / -EINVAL (a NUL byte) with the reason in err,
 * naming the template and the size, and *out NULL. */
int result_take(result_t *r, char **out, char *err, size_t errlen);

/* Free what r holds; r is zeroed. */
void result_free(result_t *r);

#endif
