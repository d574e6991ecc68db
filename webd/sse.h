/* sse — server-sent events (text/event-stream) framing for drover-web's
 * streams (/events, logs with ?follow=1). */
#ifndef DROVER_WEBD_SSE_H
#define DROVER_WEBD_SSE_H

#include "strbuf.h"

/* Append one event to out: "id: ID\n" (when id is not NULL), "event:
 * NAME\n" (when name is not NULL), one "data: " line per line of data (a
 * "\r\n", "\r" or "\n" ends a line; data may be empty), then the blank
 * line that ends the event. id and name must not hold line breaks. */
void sse_event(strbuf_t *out, const char *id, const char *name, const char *data, size_t len);

/* Append a comment line (": TEXT\n\n"): keeps a quiet connection alive. */
void sse_comment(strbuf_t *out, const char *text);

#endif
