/* cmd_schedule — recurring runs (README "Schedules"):
 *   drover schedule create|update NAME FILE [-p K=V]... (--cron EXPR
 *       [--timezone TZ] | --every DUR | --after NAME [--on WHEN]) [--concurrency
 *       allow|forbid|replace] [--catchup all|latest|none] [--start T] [--end T]
 *       [--max-active N]
 *   drover schedules [-o FORMAT]
 *   drover schedule pause|resume|delete|trigger NAME
 *   drover schedule backfill NAME --from T --to T [--rerun]
 * The spec is read with its imports as `drover submit` reads it and sent
 * whole; droverd validates it (and the cron expression and zone) when the
 * schedule is created or updated and keeps it, so later edits of the files
 * change nothing until `schedule update`. Times are RFC 3339
 * ("2026-12-01T03:00:00+01:00", "...Z") or a date (midnight UTC).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "bundle.h"
#include "cli.h"
#include "doc.h"
#include "fmt.h"
#include "log.h"
#include "table.h"
#include "units.h"
#include "util.h"

enum {
    OPT_PARAM = 1,
    OPT_CRON,
    OPT_TZ,
    OPT_EVERY,
    OPT_AFTER,
    OPT_ON,
    OPT_CONC,
    OPT_CATCHUP,
    OPT_START,
    OPT_END,
    OPT_MAX_ACTIVE,
    OPT_FROM,
    OPT_TO,
    OPT_RERUN,
    OPT_OUTPUT,
};

#define PUT_USAGE                                                                                  \
    "drover schedule create|update NAME FILE [-p KEY=VALUE]... (--cron EXPR [--timezone TZ] |\n"   \
    "       --every DUR | --after NAME [--on succeeded|failed|done]) [--concurrency\n"             \
    "       allow|forbid|replace] [--catchup all|latest|none] [--start TIME] [--end TIME]\n"       \
    "       [--max-active N]"
#define PUT_HELP                                                                                   \
    "Create (update: replace the spec and settings of) a schedule that starts runs of\n"           \
    "FILE. The spec and the files it imports are checked and stored now.\n"                        \
    "  -p, --param KEY=VALUE  a param of every run (repeatable)\n"                                 \
    "      --cron EXPR        5 fields: minute hour day-of-month month day-of-week\n"              \
    "                         (names, ranges, steps, lists; @daily, @hourly...)\n"                 \
    "      --timezone TZ      the zone the cron is read in (Europe/Berlin) [UTC]\n"                \
    "      --every DUR        an interval (30m, 1h; at least 1s) from --start\n"                   \
    "      --after NAME       start a run when a run of schedule or pipeline NAME\n"               \
    "                         ends as --on says (succeeded, failed, done) [succeeded]\n"           \
    "      --concurrency P    allow (up to --max-active), forbid (skip a fire while a\n"           \
    "                         run goes), replace (cancel it) [allow]\n"                            \
    "      --catchup C        after downtime: all missed fires, the latest, none [all]\n"          \
    "      --start, --end T   fire only between these (RFC 3339 or a date)\n"                      \
    "      --max-active N     runs of the schedule at once [1]\n"
#define LIST_USAGE "drover schedules [-o " CLI_OUTPUTS "]"
#define LIST_HELP                                                                                  \
    "List the schedules: cadence, next and last fire, the last run and its status,\n"              \
    "runs going, fires skipped.\n" CLI_OUTPUT_HELP
#define NAME_USAGE     "drover schedule pause|resume|delete|trigger NAME"
#define BACKFILL_USAGE "drover schedule backfill NAME --from TIME --to TIME [--rerun]"
#define BACKFILL_HELP                                                                              \
    "Start runs for the schedule's fires between --from and --to (at most 1000), oldest\n"         \
    "first, as --max-active allows; each has its logical time. Intervals that already\n"           \
    "have a successful run are left out unless --rerun.\n"

/* "2026-12-01T03:00:00Z", "...+01:00", "2026-12-01T03:00" (UTC), "2026-12-01". */
static int parse_time(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) {
        memset(&tm, 0, sizeof tm);
        rest = strptime(s, "%Y-%m-%dT%H:%M", &tm);
    }
    if (!rest) {
        memset(&tm, 0, sizeof tm);
        rest = strptime(s, "%Y-%m-%d", &tm);
    }
    if (!rest)
        return -EINVAL;
    int64_t t = (int64_t)timegm(&tm), off = 0;
    if (*rest == 'Z' || *rest == 'z') {
        rest++;
    } else if (*rest == '+' || *rest == '-') {
        int hh, mm;
        char sign = *rest;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
            return -EINVAL;
        off = (hh * 3600 + mm * 60) * (sign == '+' ? 1 : -1);
        rest += 6;
    }
    if (*rest)
        return -EINVAL;
    *ms = (t - off) * 1000;
    return 0;
}

static int word_of(const char *usage, const char *flag, const char *v, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (!strcasecmp(v, words[i]))
            return i;
    return cli_usage_error(usage, "%s expects %s%s%s%s%s, got '%s'", flag, words[0],
                           words[1] ? ", " : "", words[1] ? words[1] : "", words[2] ? " or " : "",
                           words[2] ? words[2] : "", v),
           -1;
}

static int schedule_put(cli_t *cli, int argc, char **argv, bool update)
{
    static const cli_opt_t opts[] = {
        {"param", 'p', true, OPT_PARAM},         {"cron", 0, true, OPT_CRON},
        {"timezone", 0, true, OPT_TZ},           {"every", 0, true, OPT_EVERY},
        {"after", 0, true, OPT_AFTER},           {"on", 0, true, OPT_ON},
        {"concurrency", 0, true, OPT_CONC},      {"catchup", 0, true, OPT_CATCHUP},
        {"start", 0, true, OPT_START},           {"end", 0, true, OPT_END},
        {"max-active", 0, true, OPT_MAX_ACTIVE}, {NULL, 0, false, 0}};
    static const char *const concs[] = {"allow", "forbid", "replace", NULL};
    static const char *const catchups[] = {"all", "latest", "none", NULL};
    static const char *const ons[] = {"succeeded", "failed", "done", NULL};
    Drover__ScheduleRecord rec = DROVER__SCHEDULE_RECORD__INIT;
    Drover__KeyValue **params = NULL;
    Drover__SpecFile **imports = NULL;
    size_t n_params = 0, n_imports = 0, len = 0;
    const char *pos[2] = {0};
    size_t n_pos = 0;
    char *text = NULL;
    int rc = 0, opt, w;
    uint64_t every = 0;
    args_t a;
    args_init(&a, cli, argc, argv, opts, PUT_USAGE);
    while (rc == 0 && (opt = args_next(&a)) != ARGS_END) {
        switch (opt) {
        case ARGS_ERROR:
            rc = CLI_EXIT_USAGE;
            break;
        case ARGS_HELP:
            cli_help(PUT_USAGE, PUT_HELP);
            rc = CLI_STOP;
            break;
        case ARGS_POSITIONAL:
            if (n_pos == 2)
                rc = cli_usage_error(PUT_USAGE, "unexpected argument '%s'", a.value);
            else
                pos[n_pos++] = a.value;
            break;
        case OPT_PARAM:
            rc = cli_param(PUT_USAGE, a.value, &params, &n_params);
            break;
        case OPT_CRON:
            rec.cron = (char *)a.value;
            break;
        case OPT_TZ:
            rec.timezone = (char *)a.value;
            break;
        case OPT_EVERY:
            if (spec_parse_duration(a.value, &every) < 0 || every < 1000)
                rc = cli_usage_error(PUT_USAGE,
                                     "--every expects a duration of 1s or more, got '%s'", a.value);
            rec.every_ms = every;
            break;
        case OPT_AFTER:
            rec.after = (char *)a.value;
            break;
        case OPT_ON:
            if ((w = word_of(PUT_USAGE, "--on", a.value, ons)) < 0)
                rc = CLI_EXIT_USAGE;
            rec.after_on = (Drover__AfterOn)w;
            break;
        case OPT_CONC:
            if ((w = word_of(PUT_USAGE, "--concurrency", a.value, concs)) < 0)
                rc = CLI_EXIT_USAGE;
            rec.concurrency = (Drover__Concurrency)w;
            break;
        case OPT_CATCHUP:
            if ((w = word_of(PUT_USAGE, "--catchup", a.value, catchups)) < 0)
                rc = CLI_EXIT_USAGE;
            rec.catchup = (Drover__Catchup)w;
            break;
        case OPT_START:
        case OPT_END:
            if (parse_time(a.value, opt == OPT_START ? &rec.start_ms : &rec.end_ms) < 0)
                rc = cli_usage_error(PUT_USAGE,
                                     "%s expects RFC 3339 (2026-12-01T03:00:00+01:00) or a date "
                                     "(2026-12-01), got '%s'",
                                     opt == OPT_START ? "--start" : "--end", a.value);
            break;
        case OPT_MAX_ACTIVE:
            if (cli_parse_u32(a.value, &rec.max_active) < 0 || rec.max_active == 0)
                rc = cli_usage_error(PUT_USAGE, "--max-active expects a positive number, got '%s'",
                                     a.value);
            break;
        }
    }
    if (rc == 0 && n_pos < 2)
        rc = cli_usage_error(PUT_USAGE, "missing %s", n_pos < 1 ? "NAME and FILE" : "FILE");
    if (rc == 0 && cli_read_spec(pos[1], &text, &len, &imports, &n_imports) < 0)
        rc = cli_failure(CLI_EXIT_ERROR);
    if (rc == 0) {
        Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
        Drover__ScheduleRequest sr = DROVER__SCHEDULE_REQUEST__INIT;
        Drover__ApiResponse *resp = NULL;
        rec.name = (char *)pos[0];
        rec.spec_file = (char *)(strcmp(pos[1], "-") == 0 ? "<stdin>" : pos[1]);
        rec.spec.data = (uint8_t *)text;
        rec.spec.len = len;
        rec.imports = imports;
        rec.n_imports = n_imports;
        rec.params = params;
        rec.n_params = n_params;
        sr.op =
            update ? DROVER__SCHEDULE_REQUEST__OP__UPDATE : DROVER__SCHEDULE_REQUEST__OP__CREATE;
        sr.schedule = &rec;
        req.op_case = DROVER__API_REQUEST__OP_SCHEDULE;
        req.schedule = &sr;
        if (api_call_once(cli->api, &req, &resp) < 0) {
            rc = CLI_EXIT_ERROR;
        } else {
            printf("schedule %s %s\n", pos[0], update ? "updated" : "created");
            drover__api_response__free_unpacked(resp, NULL);
        }
    }
    free(text);
    bundle_free(imports, n_imports);
    util_free_kvs(params, n_params);
    return cli_status(rc);
}

int cmd_schedule_create(cli_t *cli, int argc, char **argv)
{
    return schedule_put(cli, argc, argv, false);
}

int cmd_schedule_update(cli_t *cli, int argc, char **argv)
{
    return schedule_put(cli, argc, argv, true);
}

/* "0 3 * * * Europe/Berlin", "every 30m", "after nightly (succeeded)". */
static char *cadence_text(const Drover__ScheduleRecord *r)
{
    static const char *const ons[] = {"succeeded", "failed", "done"};
    char buf[FMT_BUF];
    if (r->cron && *r->cron)
        return xasprintf("%s%s%s", r->cron, r->timezone && *r->timezone ? " " : "",
                         r->timezone ? r->timezone : "");
    if (r->every_ms)
        return xasprintf("every %s", fmt_duration((int64_t)r->every_ms, buf));
    return xasprintf("after %s (%s)", r->after, ons[r->after_on % 3]);
}

static void print_schedules(const Drover__ApiResponse *resp, cli_output_t o)
{
    static const char *const concs[] = {"allow", "forbid", "replace"};
    static const char *const catchups[] = {"all", "latest", "none"};
    if (cli_output_doc(o)) {
        doc_t *j = cli_doc_writer(o);
        doc_array_begin(j);
        for (size_t i = 0; i < resp->n_schedules; i++) {
            const Drover__ScheduleView *v = resp->schedules[i];
            const Drover__ScheduleRecord *r = v->schedule;
            doc_object_begin(j);
            doc_field_str(j, "name", r->name);
            doc_field_str(j, "pipeline", r->pipeline);
            doc_field_str(j, "file", r->spec_file);
            doc_field_str(j, "cron", r->cron);
            doc_field_str(j, "timezone", r->timezone);
            doc_field_uint(j, "every_ms", r->every_ms);
            doc_field_str(j, "after", r->after);
            doc_field_str(j, "concurrency", concs[r->concurrency % 3]);
            doc_field_str(j, "catchup", catchups[r->catchup % 3]);
            doc_field_uint(j, "max_active", r->max_active ? r->max_active : 1);
            doc_field_bool(j, "paused", r->paused);
            doc_key(j, "params");
            doc_kv_object(j, r->params, r->n_params);
            doc_field_time(j, "next_fire", v->next_fire_ms);
            doc_field_time(j, "last_fire", r->last_fire_ms);
            doc_field_str(j, "last_run", r->last_run_id);
            if (v->has_last)
                doc_field_str(j, "last_status", util_run_status_name(v->last_status));
            else
                doc_key(j, "last_status"), doc_null(j);
            doc_field_uint(j, "active", v->active);
            doc_field_uint(j, "skipped", r->skipped);
            doc_field_str(j, "last_skip", r->last_skip);
            doc_field_str(j, "last_error", r->last_error);
            doc_field_uint(j, "queued", r->n_queued_ms);
            doc_field_str(j, "owner", r->owner);
            doc_object_end(j);
        }
        doc_array_end(j);
        doc_finish(&j);
        return;
    }
    if (o == CLI_OUT_NAME) {
        for (size_t i = 0; i < resp->n_schedules; i++)
            printf("%s\n", resp->schedules[i]->schedule->name);
        return;
    }
    static const char *const headers[] = {"NAME",   "CADENCE", "NEXT",    "LAST RUN",
                                          "STATUS", "ACTIVE",  "SKIPPED", "POLICY"};
    table_t *t = table_new(o == CLI_OUT_WIDE ? 8 : 6, headers);
    char buf[FMT_BUF];
    for (size_t i = 0; i < resp->n_schedules; i++) {
        const Drover__ScheduleView *v = resp->schedules[i];
        const Drover__ScheduleRecord *r = v->schedule;
        char *cad = cadence_text(r);
        table_add(t, r->name, NULL);
        table_add(t, cad, NULL);
        table_add(t,
                  r->paused         ? "paused"
                  : v->next_fire_ms ? fmt_local_time(v->next_fire_ms, buf)
                                    : "-",
                  NULL);
        table_add(t, r->last_run_id && *r->last_run_id ? r->last_run_id : "-", NULL);
        table_add(t, v->has_last ? util_run_status_name(v->last_status) : "-",
                  v->has_last ? fmt_run_color(v->last_status) : NULL);
        table_addf(t, "%u/%u", v->active, r->max_active ? r->max_active : 1);
        if (o == CLI_OUT_WIDE) {
            table_addf(t, "%u", r->skipped);
            table_addf(t, "%s, catchup %s", concs[r->concurrency % 3], catchups[r->catchup % 3]);
        }
        free(cad);
    }
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
    for (size_t i = 0; i < resp->n_schedules; i++) {
        const Drover__ScheduleRecord *r = resp->schedules[i]->schedule;
        if (r->last_error && *r->last_error)
            fprintf(stderr, "schedule %s: last fire failed: %s\n", r->name, r->last_error);
    }
}

int cmd_schedules(cli_t *cli, int argc, char **argv)
{
    cli_output_t out;
    int rc = cli_output_only_args(cli, argc, argv, LIST_USAGE, LIST_HELP, &out);
    if (rc != 0)
        return cli_status(rc);
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ScheduleRequest sr = DROVER__SCHEDULE_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    sr.op = DROVER__SCHEDULE_REQUEST__OP__LIST;
    req.op_case = DROVER__API_REQUEST__OP_SCHEDULE;
    req.schedule = &sr;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    print_schedules(resp, out);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* pause | resume | delete | trigger NAME, and backfill NAME --from --to. */
static int schedule_op(cli_t *cli, int argc, char **argv, const char *word)
{
    static const cli_opt_t opts[] = {{"from", 0, true, OPT_FROM},
                                     {"to", 0, true, OPT_TO},
                                     {"rerun", 0, false, OPT_RERUN},
                                     {NULL, 0, false, 0}};
    static const struct {
        const char *word;
        Drover__ScheduleRequest__Op op;
    } ops[] = {{"pause", DROVER__SCHEDULE_REQUEST__OP__PAUSE},
               {"resume", DROVER__SCHEDULE_REQUEST__OP__RESUME},
               {"delete", DROVER__SCHEDULE_REQUEST__OP__DELETE},
               {"trigger", DROVER__SCHEDULE_REQUEST__OP__TRIGGER},
               {"backfill", DROVER__SCHEDULE_REQUEST__OP__BACKFILL}};
    Drover__ScheduleRequest sr = DROVER__SCHEDULE_REQUEST__INIT;
    const char *pos[1] = {0};
    size_t n_pos = 0;
    bool has_from = false, has_to = false;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, !strcmp(word, "backfill") ? BACKFILL_USAGE : NAME_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(BACKFILL_USAGE, BACKFILL_HELP);
        if (opt == ARGS_POSITIONAL) {
            if (n_pos == 1)
                return cli_usage_error(NAME_USAGE, "unexpected argument '%s'", a.value);
            pos[n_pos++] = a.value;
        }
        if ((opt == OPT_FROM || opt == OPT_TO) &&
            parse_time(a.value, opt == OPT_FROM ? &sr.from_ms : &sr.to_ms) < 0)
            return cli_usage_error(BACKFILL_USAGE,
                                   "%s expects RFC 3339 or a date (2026-12-01), got '%s'",
                                   opt == OPT_FROM ? "--from" : "--to", a.value);
        has_from |= opt == OPT_FROM;
        has_to |= opt == OPT_TO;
        if (opt == OPT_RERUN)
            sr.rerun = true;
    }
    if (n_pos < 1)
        return cli_usage_error(NAME_USAGE, "missing NAME");
    size_t k = 0;
    while (k < sizeof ops / sizeof *ops && strcmp(ops[k].word, word) != 0)
        k++;
    bool backfill = ops[k].op == DROVER__SCHEDULE_REQUEST__OP__BACKFILL;
    if (backfill && (!has_from || !has_to))
        return cli_usage_error(BACKFILL_USAGE, "backfill needs --from and --to");
    if (!backfill && (has_from || has_to || sr.rerun))
        return cli_usage_error(NAME_USAGE, "--from, --to and --rerun go with backfill");
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    sr.op = ops[k].op;
    sr.name = (char *)pos[0];
    req.op_case = DROVER__API_REQUEST__OP_SCHEDULE;
    req.schedule = &sr;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (sr.op == DROVER__SCHEDULE_REQUEST__OP__TRIGGER && resp->n_run_ids)
        printf("%s\n", resp->run_ids[0]);
    else if (backfill)
        printf("schedule %s: %u runs queued, %u intervals already succeeded\n", pos[0],
               resp->backfill_queued, resp->backfill_done);
    else
        printf("schedule %s %s%s\n", pos[0], word, word[strlen(word) - 1] == 'e' ? "d" : "ed");
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_schedule_pause(cli_t *cli, int argc, char **argv)
{
    return schedule_op(cli, argc, argv, "pause");
}

int cmd_schedule_resume(cli_t *cli, int argc, char **argv)
{
    return schedule_op(cli, argc, argv, "resume");
}

int cmd_schedule_delete(cli_t *cli, int argc, char **argv)
{
    return schedule_op(cli, argc, argv, "delete");
}

int cmd_schedule_trigger(cli_t *cli, int argc, char **argv)
{
    return schedule_op(cli, argc, argv, "trigger");
}

int cmd_schedule_backfill(cli_t *cli, int argc, char **argv)
{
    return schedule_op(cli, argc, argv, "backfill");
}
