/* log — see log.h. Formats into a local buffer so each line is written by
 * a single stdio call and lines from threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *log_program = "drover";
static int log_debug_on;
static int log_stamp; /* log_daemon_timestamps, not under journald */

void log_daemon_timestamps(void)
{
    const char *j = getenv("JOURNAL_STREAM");
    log_stamp = !(j && *j);
}

void log_init(const char *program)
{
    log_program = program;
}

const char *log_program_name(void)
{
    return log_program;
}

void log_set_debug(int on)
{
    log_debug_on = on;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    va_list ap;

    if (level == LVL_DEBUG && !log_debug_on)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (log_stamp) {
        struct timespec ts;
        struct tm tm;
        char when[40];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03dZ ", (int)(ts.tv_nsec / 1000000));
        fprintf(stderr, "%s%s: %s: %s\n", when, log_program, names[level], line);
    } else {
        fprintf(stderr, "%s: %s: %s\n", log_program, names[level], line);
    }
}
