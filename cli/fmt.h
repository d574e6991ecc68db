/* fmt — how values look in human output: times, durations, quantities,
 * status colours, exit codes. Every formatter writes into a caller buffer
 * of FMT_BUF bytes and returns it, so calls nest inside printf arguments
 * without allocation. */
#ifndef DROVER_CLI_FMT_H
#define DROVER_CLI_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drover.pb-c.h"

#define FMT_BUF 64

/* Local date and time with the zone, "2024-05-01 12:00:01 CEST"; "-" for 0
 * (unset). */
char *fmt_local_time(int64_t ms, char *buf);

/* RFC 3339 in UTC with milliseconds, "2024-05-01T10:00:01.250Z" (ms > 0),
 * for JSON next to the epoch milliseconds. */
char *fmt_rfc3339(int64_t ms, char *buf);

/* How long ago ms was at now_ms, as fmt_duration ("3m12s"); "-" for 0. */
char *fmt_age(int64_t ms, int64_t now_ms, char *buf);

/* Local time of day with milliseconds, "12:00:01.250". */
char *fmt_clock(int64_t ms, char *buf);

/* A duration: "850ms", "4.2s", "3m12s", "2h05m", "3d4h". Negative → "0ms". */
char *fmt_duration(int64_t ms, char *buf);

/* Memory with binary units, at most one decimal: "0", "512Mi", "1.5Gi". */
char *fmt_bytes(uint64_t bytes, char *buf);

/* A file size: "0B", "812B", "3.9KiB", "1.5GiB". */
char *fmt_size(uint64_t bytes, char *buf);

/* A count with thousands separators: 1000000 → "1,000,000". */
char *fmt_count(uint64_t n, char *buf);

/* CPU cores from millicores, one decimal: 1500 → "1.5". */
char *fmt_cpu(uint32_t milli, char *buf);

/* The EXIT cell of a task: "sig 9" when signaled, the exit code when it
 * exited, else "-". */
char *fmt_task_exit(const Drover__TaskView *t, char *buf);

/* A task's reported progress as "[######....] 60%". */
char *fmt_progress(float progress, char *buf);

/* The STATUS cell of a task: its name, "RUNNING [###.......] 30%" with
 * reported progress, or "FAILED (retry in 3s)" while a retry is pending
 * at now_ms. */
char *fmt_task_status(const Drover__TaskView *t, int64_t now_ms, char *buf);

/* SGR colour code for a status (green success, red failure, yellow
 * running, "2" = dim for skipped/cancelled), or NULL for none. */
const char *fmt_task_color(Drover__TaskStatus s);
const char *fmt_run_color(Drover__RunStatus s);

/* Whether output to f may use ANSI colour: a terminal, NO_COLOR unset or
 * empty, TERM not "dumb". */
bool fmt_color_ok(FILE *f);

/* Whether f is a terminal that understands cursor movement. */
bool fmt_is_terminal(FILE *f);

/* Write s with control characters shown as '?' (line breaks and tabs as
 * a space): for text from specs and agents printed outside a table. */
void fmt_put_clean(FILE *out, const char *s);

/* A copy of s for one line of output: control characters shown as '?'
 * (line breaks and tabs as a space) and, when max > 0 and s is longer
 * than max characters, cut to max - 1 characters followed by "…". The
 * caller frees the result. */
char *fmt_clean(const char *s, size_t max);

/* "k=v,k2=v2" (sep between items) from n key/values; "" when n is 0. The
 * caller frees the result. */
char *fmt_kvs(Drover__KeyValue *const *kvs, size_t n, const char *sep);

#endif
