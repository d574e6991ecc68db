/* fuzz_common — what every fuzz target shares.
 *
 * Log lines: the targets link with -Wl,--wrap=log_msg, so every log_msg
 * call in the code under test lands in __wrap_log_msg here. The line is
 * still formatted (so a bad format argument is still caught by the
 * sanitizers) but printed only when DROVER_FUZZ_LOG is set: a fuzzer that
 * writes a warning per input spends its time in write(2).
 */
#ifndef DROVER_FUZZ_COMMON_H
#define DROVER_FUZZ_COMMON_H

#include <stddef.h>

/* An invariant of the code under test does not hold: print the reason
 * and abort, so libFuzzer saves the input as a crash. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A NUL-terminated copy of data[0..len) (caller frees). */
char *fz_strndup(const void *data, size_t len);

/* Whether err is one line (no '\n') and NUL-terminated within errlen. */
int fz_one_line(const char *err, size_t errlen);

#endif
