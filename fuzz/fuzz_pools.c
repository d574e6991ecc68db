/* fuzz_pools — `pools:` as droverd reads it at start (scheduler/
 * pools_config.c, README "Autoscaling node pools"): the bytes are the JSON
 * text the config file's nested value becomes, or --pools' argument.
 *
 * pools_config_parse must return 0 or -EINVAL; a refusal says what is
 * wrong (a message starting "pools"); an accepted list keeps every
 * promise droverd relies on: at most 64 pools, unique names, 1 <= max,
 * min <= max, cpu > 0, an absolute provider command, a fallback naming
 * another pool, every duration > 0.
 */
#include "scheduler.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *text = fz_strndup(data, size);
    char err[512] = "";
    pool_config_t *pools;
    size_t n;
    int rc = pools_config_parse(text, &pools, &n, err, sizeof err);
    if (rc != 0 && rc != -EINVAL)
        fz_fail("pools_config_parse returned %d", rc);
    if (rc < 0 && strncmp(err, "pools", 5) != 0)
        fz_fail("a refusal without its reason: '%s'", err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const pool_config_t *p = &pools[i];
        if (n > 64 || !p->name || !*p->name || p->max < 1 || p->min > p->max || p->cpu_milli == 0 ||
            !p->command || p->command[0] != '/' || !p->idle_ms || !p->boot_timeout_ms ||
            !p->call_timeout_ms)
            fz_fail("pool %zu accepted with a broken promise", i);
        bool fallback_ok = !p->fallback;
        for (size_t j = 0; j < n; j++) {
            if (j != i && !strcmp(pools[j].name, p->name))
                fz_fail("two pools named '%s' accepted", p->name);
            if (j != i && p->fallback && !strcmp(pools[j].name, p->fallback))
                fallback_ok = true;
        }
        if (!fallback_ok)
            fz_fail("pool '%s' accepted with fallback '%s'", p->name, p->fallback);
    }
    if (rc == 0)
        pools_config_free(pools, n);
    free(text);
    return 0;
}
