/* cmd_logs — `drover logs ID STEP [--attempt N] [-f]`: copy a step
 * attempt's output to stdout.
 *
 * The API hands out logs in pages (offset → data, next_offset); this reads
 * pages of LOGS_PAGE bytes until one comes back empty. With -f it then
 * keeps asking every LOGS_POLL_MS until droverd says the attempt has ended
 * and everything was returned (done), which also covers a step that has
 * not started yet. When following the latest attempt, the attempt number
 * from the first answer that names one is pinned, so a retry starting
 * meanwhile does not splice two attempts' output together. With -f a
 * droverd restart is waited out: pages that get no answer are retried for
 * up to LOGS_PATIENCE_MS. With -f a step droverd does not know yet (a
 * fan-out item appears when its fan-out expands) is waited for, with one
 * note on stderr, for as long as the run goes on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "log.h"
#include "runview.h"
#include "util.h"

#define LOGS_PAGE        (1u << 20)
#define LOGS_POLL_MS     200
#define LOGS_PATIENCE_MS 60000

enum { OPT_ATTEMPT = 1, OPT_FOLLOW };

static const cli_opt_t logs_opts[] = {
    {"attempt", 0, true, OPT_ATTEMPT},
    {"follow", 'f', false, OPT_FOLLOW},
    {NULL, 0, false, 0},
};

#define LOGS_USAGE "drover logs ID STEP [--attempt N] [-f]"
#define LOGS_HELP                                                                                  \
    "Print the output (stdout and stderr together) of a step of run ID.\n"                         \
    "      --attempt N  that attempt (1 is the first), instead of the latest\n"                    \
    "  -f, --follow     keep printing until the attempt ends (waits for the step to\n"             \
    "                   appear, as a fan-out item does, and for it to start,\n"                    \
    "                   and for up to 60s for a restarting droverd)\n"

typedef struct {
    const char *run_id, *step;
    uint32_t attempt; /* 0 = latest */
    bool follow;
} logs_args_t;

static int positional(logs_args_t *l, const char *word)
{
    if (!l->run_id)
        l->run_id = word;
    else if (!l->step)
        l->step = word;
    else
        return cli_usage_error(LOGS_USAGE, "unexpected argument '%s'", word);
    return 0;
}

static int parse_logs_args(cli_t *cli, int argc, char **argv, logs_args_t *l)
{
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, logs_opts, LOGS_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(LOGS_USAGE, LOGS_HELP), CLI_STOP;
        if (opt == ARGS_POSITIONAL && positional(l, a.value) != 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_ATTEMPT && (cli_parse_u32(a.value, &l->attempt) < 0 || l->attempt == 0))
            return cli_usage_error(LOGS_USAGE, "--attempt expects a number from 1, got '%s'",
                                   a.value);
        if (opt == OPT_FOLLOW)
            l->follow = true;
    }
    if (!l->run_id || !l->step)
        return cli_usage_error(LOGS_USAGE, "missing %s", l->run_id ? "STEP" : "run ID and STEP");
    return 0;
}

/* Where the copy stands between pages. */
typedef struct {
    uint64_t offset;
    uint32_t attempt;
    bool truncated;
} cursor_t;

/* Fetch one page at c->offset and write it out. *got is its size, *done
 * the server's done flag. */
static int page(api_t *api, const logs_args_t *l, cursor_t *c, size_t *got, bool *done)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__LogsRequest lr = DROVER__LOGS_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    lr.run_id = (char *)l->run_id;
    lr.task = (char *)l->step;
    lr.attempt = c->attempt;
    lr.offset = c->offset;
    lr.max_bytes = LOGS_PAGE;
    req.op_case = DROVER__API_REQUEST__OP_LOGS;
    req.logs = &lr;
    int rc = api_call(api, &req, &resp);
    if (rc < 0)
        return rc == -EREMOTEIO ? rc : -EIO;
    const Drover__LogsView *v = resp->logs;
    *got = v ? v->data.len : 0;
    *done = v ? v->done : true; /* no view: nothing will ever come */
    if (v && *got && fwrite(v->data.data, 1, *got, stdout) != *got) {
        drover__api_response__free_unpacked(resp, NULL);
        return -EIO; /* stdout is gone; main reports it */
    }
    if (v) {
        /* Trust next_offset unless it would not move past what we got. */
        c->offset = v->next_offset >= c->offset + *got ? v->next_offset : c->offset + *got;
        c->truncated |= v->truncated;
        if (!c->attempt)
            c->attempt = v->attempt;
    }
    drover__api_response__free_unpacked(resp, NULL);
    return 0;
}

/* -f on a step droverd does not know (yet): a fan-out item appears when its
 * fan-out expands, so while the run goes on, wait (saying so once). 0 to
 * try again, or -EIO with the error printed: the run has ended without
 * such a step, or another error. */
static int wait_for_step(api_t *api, const logs_args_t *l, bool *noted)
{
    const char *text;
    Drover__ApiResponse *resp = NULL;
    if (api_last_error(api, &text) != DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND ||
        !strstr(text, "has no step")) {
        api_report_last_error(api);
        return -EIO;
    }
    char *saved = xstrdup(text);
    api_set_quiet_errors(api, false);
    int rc = api_get_run(api, l->run_id, &resp); /* a run that is gone: said there */
    api_set_quiet_errors(api, true);
    if (rc == 0 && runview_run_final(resp->run->status)) {
        fprintf(stderr, "drover: error: %s (the run has ended %s)\n", saved,
                util_run_status_name(resp->run->status));
        cli_set_failure(CLI_EXIT_NOT_FOUND);
        rc = -EIO;
    } else if (rc == 0 && !*noted) {
        fprintf(stderr, "drover: note: %s yet; waiting for it (Ctrl-C stops)\n", saved);
        *noted = true;
    }
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
    free(saved);
    if (rc == 0)
        cli_sleep_ms(LOGS_POLL_MS);
    return rc < 0 ? -EIO : 0;
}

static int copy_logs(api_t *api, const logs_args_t *l, cursor_t *c)
{
    bool noted = false;
    for (;;) {
        size_t got;
        bool done;
        int rc = page(api, l, c, &got, &done);
        if (rc == -EREMOTEIO && l->follow && c->offset == 0) {
            if (wait_for_step(api, l, &noted) < 0)
                return -EIO;
            continue;
        }
        if (rc == -EREMOTEIO)
            api_report_last_error(api);
        if (rc < 0)
            return -EIO;
        if (got > 0)
            continue;
        fflush(stdout);
        if (done || !l->follow)
            return 0;
        cli_sleep_ms(LOGS_POLL_MS);
    }
}

int cmd_logs(cli_t *cli, int argc, char **argv)
{
    logs_args_t l = {0};
    int rc = parse_logs_args(cli, argc, argv, &l);
    if (rc != 0)
        return cli_status(rc);
    api_t *api = api_new(api_endpoint(cli->api));
    if (!api)
        return CLI_EXIT_ERROR;
    if (l.follow) {
        api_set_patience(api, LOGS_PATIENCE_MS);
        api_set_quiet_errors(api, true); /* copy_logs decides: a step may come */
    }
    cursor_t c = {.attempt = l.attempt};
    rc = copy_logs(api, &l, &c) < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
    api_destroy(&api);
    fflush(stdout);
    if (c.truncated)
        fprintf(stderr, "drover: note: log truncated at %" PRIu64 " bytes (limit)\n", c.offset);
    return rc;
}
