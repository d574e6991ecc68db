/* fuzz_common — see fuzz_common.h. */
#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void __wrap_log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void __wrap_log_msg(enum log_level level, const char *fmt, ...)
{
    static int show = -1;
    char line[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (show < 0)
        show = getenv("DROVER_FUZZ_LOG") != NULL;
    if (show)
        fprintf(stderr, "log[%d]: %s\n", (int)level, line);
}

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

char *fz_strndup(const void *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        abort();
    if (len)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

int fz_one_line(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    return n < errlen && memchr(err, '\n', n) == NULL;
}
