/* pools — node pools: droverd grows and shrinks its fleet through
 * provider programs (README "Autoscaling node pools").
 *
 * Being built: for now only the placer's hook, which knows no pools.
 */
#include "sched_internal.h"

bool pools_explain(sched_t *s, const task_t *t, bool fallback, char *buf, size_t len)
{
    (void)s, (void)t, (void)fallback, (void)buf, (void)len;
    return false;
}
