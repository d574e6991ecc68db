/* trigger — when a step's dependencies count as met: Airflow's trigger
 * rules over counts of its needs' outcomes, and Argo's `depends`
 * expressions (README.md, "Pipeline spec": trigger, depends, continue_on).
 *
 * Pure functions, libc only: the spec compiler checks with them
 * (common/spec_trigger.c) and droverd decides with them (scheduler/dag.c),
 * so both read one grammar.
 *
 * Outcomes of a need: SUCCEEDED (CACHED counts as succeeded), FAILED
 * (failed for good; a step SKIPPED because a failure upstream broke its
 * rule counts as FAILED for the rules, as Airflow's upstream_failed),
 * SKIPPED, CANCELLED. A rule is decided as soon as its result is certain
 * (one_success holds at the first success, all_success breaks at the first
 * failure), as Airflow does; a `depends` expression is decided once every
 * need has ended, as Argo does.
 *
 * depends grammar:
 *   or    := and ('||' and)*
 *   and   := unary ('&&' unary)*
 *   unary := '!' unary | '(' or ')' | atom
 *   atom  := STEP '.' ('succeeded'|'failed'|'skipped'|'done'|'cached'|
 *            'cancelled')  |  STEP
 * STEP is [A-Za-z0-9_.-]+ (the suffix is the part after the last '.' and is
 * matched in any case, so Argo's `.Succeeded` reads too). A bare STEP is
 * Argo's: succeeded or skipped (not skipped because of a failure upstream),
 * or failed when that step has continue_on failed. Errors: -EINVAL with "col N: reason" (1-based
 * byte offset).
 */
#ifndef DROVER_TRIGGER_H
#define DROVER_TRIGGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drover.pb-c.h"

/* What one need ended as (TRIG_PENDING: not ended yet). TRIG_TOLERATED
 * may be or-ed into TRIG_FAILED: the need has continue_on failed;
 * TRIG_UPSTREAM_FAILED into TRIG_SKIPPED: a failure upstream skipped it
 * (Argo's omitted: .skipped holds, a bare name does not). */
typedef enum {
    TRIG_PENDING = 0,
    TRIG_SUCCEEDED,
    TRIG_CACHED,
    TRIG_FAILED,
    TRIG_SKIPPED,
    TRIG_CANCELLED,
    TRIG_TOLERATED = 0x10,
    TRIG_UPSTREAM_FAILED = 0x20,
} trigger_outcome_t;

/* A step's needs by outcome: failed includes upstream-failed skips,
 * skipped excludes them; ended - ok - failed - skipped were cancelled. */
typedef struct {
    uint32_t total, ended, ok, failed, skipped;
} trigger_counts_t;

typedef enum { TRIGGER_UNDECIDED, TRIGGER_HOLDS, TRIGGER_BROKEN } trigger_verdict_t;

/* The rule named name[0..len) into *out; false for an unknown name. */
bool trigger_rule_parse(const char *name, size_t len, Drover__TriggerRule *out);
/* The rule's spec name ("all_success"); "depends" for TRIGGER_RULE_DEPENDS. */
const char *trigger_rule_name(Drover__TriggerRule rule);
/* The names trigger_rule_parse accepts, for messages: "all_success | ...". */
const char *trigger_rule_names(void);

/* Decide rule over counts c (any rule but DEPENDS). A step with no needs
 * always HOLDS. On BROKEN, *by_failure says whether a failure broke it (the
 * step then counts as failed for its own dependants); may be NULL. */
trigger_verdict_t trigger_rule_decide(Drover__TriggerRule rule, const trigger_counts_t *c,
                                      bool *by_failure);

/* Called for each STEP of a depends expression (name not NUL-terminated);
 * col is its 1-based offset. Return 0, or -1 with a reason in err. */
typedef int (*trigger_visit_fn)(const char *name, size_t len, int col, void *arg, char *err,
                                size_t errlen);
/* The outcome of need name[0..len) (with TRIG_TOLERATED or-ed in). */
typedef int (*trigger_lookup_fn)(const char *name, size_t len, void *arg);

/* Check expression text: syntax, and visit (may be NULL) on every STEP in
 * order. 0 or -EINVAL with "col N: reason" in err. */
int trigger_depends_check(const char *text, trigger_visit_fn visit, void *arg, char *err,
                          size_t errlen);
/* Evaluate text with each STEP's outcome from lookup into *result.
 * 0 or -EINVAL (a syntax error) with err. */
int trigger_depends_eval(const char *text, trigger_lookup_fn lookup, void *arg, bool *result,
                         char *err, size_t errlen);

#endif
