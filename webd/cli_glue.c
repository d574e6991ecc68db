/* cli_glue — what cli/api.c (the one client of droverd's API socket,
 * shared with the CLI) asks of the CLI around it, for drover-web: no
 * contexts (settings come from flags and drover-web.yaml), no exit
 * statuses (web_call reads every failure from api_call's result). */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "cli.h"
#include "units.h"

void cli_set_failure(int status)
{
    (void)status;
}

const char *context_setting(const char *which)
{
    (void)which;
    return NULL;
}

int cli_parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (spec_parse_uint(s, UINT32_MAX, &v) < 0)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

void cli_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}
