/* complete — the names `drover __complete` offers that only droverd or the
 * config directory knows: run ids, a run's step names, a step's artifact
 * names, agent names, schedule names, pool names and context names. Each prints the ones that start
 * with prefix, one per line; any failure (no droverd, no such run) prints
 * nothing, as a shell completion must never complain. The engine that
 * decides which to call is in drover.c, next to the command table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"

/* Print name when it starts with prefix. */
static void offer(const char *name, const char *prefix)
{
    if (name && *name && strncmp(name, prefix, strlen(prefix)) == 0)
        printf("%s\n", name);
}

/* One request on the endpoint the command line chose; NULL on failure. */
static Drover__ApiResponse *ask(cli_t *cli, Drover__ApiRequest *req)
{
    Drover__ApiResponse *resp = NULL;
    if (api_call_once(cli->api, req, &resp) < 0)
        return NULL;
    return resp;
}

void complete_runs(cli_t *cli, const char *prefix)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ListRunsRequest lr = DROVER__LIST_RUNS_REQUEST__INIT;
    lr.limit = 200;
    req.op_case = DROVER__API_REQUEST__OP_LIST_RUNS;
    req.list_runs = &lr;
    Drover__ApiResponse *resp = ask(cli, &req);
    for (size_t i = 0; resp && i < resp->n_runs; i++)
        offer(resp->runs[i]->id, prefix);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

void complete_steps(cli_t *cli, const char *run, const char *prefix)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = (char *)run;
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    Drover__ApiResponse *resp = ask(cli, &req);
    for (size_t i = 0; resp && resp->run && i < resp->run->n_tasks; i++)
        offer(resp->run->tasks[i]->name, prefix);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

void complete_artifacts(cli_t *cli, const char *run, const char *step, const char *prefix)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ArtifactsRequest ar = DROVER__ARTIFACTS_REQUEST__INIT;
    ar.run_id = (char *)run;
    ar.task = (char *)step;
    req.op_case = DROVER__API_REQUEST__OP_ARTIFACTS;
    req.artifacts = &ar;
    Drover__ApiResponse *resp = ask(cli, &req);
    for (size_t i = 0; resp && i < resp->n_artifacts; i++)
        if (resp->artifacts[i]->artifact)
            offer(resp->artifacts[i]->artifact->name, prefix);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

void complete_agents(cli_t *cli, const char *prefix)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__AgentRequest ar = DROVER__AGENT_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_LIST_AGENTS;
    req.list_agents = &ar;
    Drover__ApiResponse *resp = ask(cli, &req);
    for (size_t i = 0; resp && i < resp->n_agents; i++)
        offer(resp->agents[i]->name, prefix);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

void complete_schedules(cli_t *cli, const char *prefix)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ScheduleRequest sr = DROVER__SCHEDULE_REQUEST__INIT;
    sr.op = DROVER__SCHEDULE_REQUEST__OP__LIST;
    req.op_case = DROVER__API_REQUEST__OP_SCHEDULE;
    req.schedule = &sr;
    Drover__ApiResponse *resp = ask(cli, &req);
    for (size_t i = 0; resp && i < resp->n_schedules; i++)
        offer(resp->schedules[i]->schedule->name, prefix);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

void complete_pools(cli_t *cli, const char *prefix)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__PoolRequest pr = DROVER__POOL_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_POOL;
    req.pool = &pr;
    Drover__ApiResponse *resp = ask(cli, &req);
    for (size_t i = 0; resp && i < resp->n_pools; i++)
        offer(resp->pools[i]->name, prefix);
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
}

void complete_contexts(const char *prefix)
{
    char **names = NULL;
    size_t n = context_names(&names);
    for (size_t i = 0; i < n; i++) {
        offer(names[i], prefix);
        free(names[i]);
    }
    free(names);
}
