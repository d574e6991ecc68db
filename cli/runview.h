/* runview — how runs look, shared by `runs`, `run get`, `run watch`:
 * the step table and the JSON forms of RunView, TaskView and
 * AttemptRecord. Nothing here talks to droverd. */
#ifndef DROVER_CLI_RUNVIEW_H
#define DROVER_CLI_RUNVIEW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "drover.pb-c.h"
#include "doc.h"
#include "table.h"

/* The step table of a run (STEP STATUS ATTEMPTS AGENT EXIT REASON), with
 * statuses as at now_ms: the n steps run->tasks[idx[i]], or every step
 * when idx is NULL. A CACHED step's reason is "reused RUN/STEP". A
 * group's member is indented two spaces per depth (at most
 * RUNVIEW_MAX_INDENT levels) under its group, whose status is the
 * group's. The caller frees it with table_destroy. */
#define RUNVIEW_MAX_INDENT 32
table_t *runview_task_table(const Drover__RunView *run, const size_t *idx, size_t n,
                            int64_t now_ms);

/* The OUTPUTS section of `run get`: a blank line, "OUTPUTS", then one
 * "STEP.PARAM = VALUE" line per output param (values cut to
 * RUNVIEW_MAX_VALUE characters, control characters replaced). Nothing
 * when no step has output params. */
#define RUNVIEW_MAX_VALUE 60
void runview_print_outputs(FILE *out, const Drover__RunView *run);
/* The approval gates of the run (steps with suspend:, once activated):
 * since when, the timeout, who approved or rejected and when; nothing
 * when the run has none. */
void runview_print_gates(FILE *out, const Drover__RunView *run, bool color);

/* Per step, when any ran on spot nodes, was preempted or checkpointed:
 * preemptions, retries, latest checkpoint, time on spot and on-demand
 * nodes, work lost, estimated cost (from the agents' prices); then the
 * run's total. */
void runview_print_spot(FILE *out, const Drover__RunView *run, bool color);

/* A run as one JSON object: id, name, status, params, created_ms,
 * finished_ms, task_count, tasks_done and tasks[] (each with history[],
 * outputs {"params": {...}}, cached_from and item, null when unset, and
 * group (the enclosing instance, null at the top), depth, is_group and
 * template (null when none)). */
void runview_json_run(doc_t *j, const Drover__RunView *run);

/* A run in a listing: {"id","name","status","created_ms","finished_ms",
 * "tasks","done"}. */
/* A run's schedule fields (schedule: null for a run submitted by hand). */
void runview_json_schedule(doc_t *j, const Drover__RunView *run);
void runview_json_summary(doc_t *j, const Drover__RunView *run);

/* Whether a run status is final (SUCCEEDED, FAILED, CANCELLED). */
bool runview_run_final(Drover__RunStatus s);

#endif
