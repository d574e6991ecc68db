/* drover — the command line users type: `drover submit`, `runs`, `run get`,
 * `run watch`, `run cancel`, `run delete`, `run spec`, `logs`, `artifacts`, `artifact
 * get`, `cache clear`, `agents`, `agent drain`, `agent undrain`.
 *
 * main() reads the global flags and the command words ("run get" is a
 * group and a subcommand), then hands the remaining words to the command's
 * function (cli.h). Each command talks to droverd over the API socket
 * (api.h) and prints a table or JSON. Errors are one "drover: error: ..."
 * line; the exit status tells their kind (cli.h, CLI_EXIT_*), recorded
 * where the error is found (cli_set_failure) and applied here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "log.h"
#include "suggest.h"

typedef int (*cmd_fn)(cli_t *cli, int argc, char **argv);

typedef struct {
    const char *group; /* "run", "agent", ..., or NULL for a top-level command */
    const char *name;
    cmd_fn fn;
    const char *synopsis; /* after "drover [GROUP] NAME" */
    const char *summary;
    /* For shell completion (`drover __complete`): what each positional
     * argument is (run, step, artifact, agent, context, command, file), and
     * the flags, "-o=fmt" for one taking a value of a kind (fmt, status,
     * file; none after '=': anything). Keep in step with the command's own
     * option table: a test checks every flag here is in its --help. */
    const char *args;
    const char *flags;
} command_t;

static const command_t commands[] = {
    {NULL, "submit", cmd_submit, "FILE [-p KEY=VALUE]... [--watch] [--no-cache]",
     "submit a pipeline as a new run", "file", "-p= --param= -w --watch --no-cache"},
    {NULL, "runs", cmd_runs, "[-o FORMAT] [--status S] [--name N] [--since DUR] [-w]",
     "list recent runs (filters: see runs --help)", "",
     "-o=fmt --output=fmt --limit= --status=status --name= --since= --owner= -w --watch"},
    {"run", "get", cmd_run_get, "ID [-o FORMAT]", "show a run, its steps and output params", "run",
     "-o=fmt --output=fmt"},
    {"run", "watch", cmd_run_watch, "ID", "follow a run until it ends", "run", ""},
    {"run", "cancel", cmd_run_cancel, "ID", "cancel a run", "run", ""},
    {"run", "resume", cmd_run_resume, "RUN STEP [--reject] [-p KEY=VALUE]...",
     "approve (or --reject) a suspended approval gate", "run step", "--reject -p= --param="},
    {"run", "delete", cmd_run_delete, "ID", "delete an ended run, its logs and artifacts", "run",
     ""},
    {"run", "spec", cmd_run_spec, "ID [-o DIR]",
     "print (or write to DIR) the spec and imports a run was submitted from", "run",
     "-o=file --output=file"},
    {NULL, "logs", cmd_logs, "ID STEP [--attempt N] [-f]", "print a step's output", "run step",
     "--attempt= -f --follow"},
    {NULL, "artifacts", cmd_artifacts, "RUN [STEP] [-o FORMAT]",
     "list the artifacts a run's steps produced", "run step", "-o=fmt --output=fmt"},
    {"artifact", "get", cmd_artifact_get, "RUN STEP NAME -o PATH [--force]",
     "download an artifact to a file or directory", "run step artifact",
     "-o=file --output=file -f --force"},
    {"cache", "clear", cmd_cache_clear, "", "forget cached step results", "", ""},
    {NULL, "schedules", cmd_schedules, "[-o FORMAT]",
     "list schedules: cadence, next fire, last run", "", "-o=fmt --output=fmt"},
    {"schedule", "create", cmd_schedule_create,
     "NAME FILE [-p KEY=VALUE]... (--cron EXPR [--timezone TZ] | --every DUR | --after NAME "
     "[--on WHEN]) [--concurrency P] [--catchup C] [--start T] [--end T] [--max-active N]",
     "start runs of a pipeline on a cron, an interval, or after other runs", "schedule file",
     "-p= --param= --cron= --timezone= --every= --after= --on= --concurrency= --catchup= "
     "--start= --end= --max-active="},
    {"schedule", "update", cmd_schedule_update, "NAME FILE [same flags as create]",
     "replace a schedule's spec and settings", "schedule file",
     "-p= --param= --cron= --timezone= --every= --after= --on= --concurrency= --catchup= "
     "--start= --end= --max-active="},
    {"schedule", "pause", cmd_schedule_pause, "NAME", "stop a schedule firing", "schedule", ""},
    {"schedule", "resume", cmd_schedule_resume, "NAME", "let a paused schedule fire again",
     "schedule", ""},
    {"schedule", "delete", cmd_schedule_delete, "NAME", "delete a schedule (its runs stay)",
     "schedule", ""},
    {"schedule", "trigger", cmd_schedule_trigger, "NAME", "start a run of a schedule now",
     "schedule", ""},
    {"schedule", "backfill", cmd_schedule_backfill, "NAME --from TIME --to TIME [--rerun]",
     "start runs for past intervals", "schedule", "--from= --to= --rerun"},
    {NULL, "agents", cmd_agents, "[-o FORMAT] [-l KEY=VALUE]... [-w]",
     "list agents and their resources", "", "-o=fmt --output=fmt -l= --label= -w --watch"},
    {"agent", "drain", cmd_agent_drain, "NAME", "stop placing steps on an agent", "agent", ""},
    {"agent", "undrain", cmd_agent_undrain, "NAME", "put a drained agent back in service", "agent",
     ""},
    {"agent", "forget", cmd_agent_forget, "NAME",
     "forget a disconnected agent with no steps (admin)", "agent", ""},
    {"agent", "preempt", cmd_agent_preempt, "NAME [--deadline DUR]",
     "drill a preemption: the agent hands its steps back", "agent", "--deadline="},
    {NULL, "tokens", cmd_tokens, "[-o FORMAT]", "list join and API tokens, without secrets (admin)",
     "", "-o=fmt --output=fmt"},
    {"token", "create", cmd_token_create,
     "--pool NAME --ttl DUR [--uses N] [--name-prefix P | --node NAME] | NAME --role ROLE "
     "[--ttl DUR]",
     "make a join token for new nodes, or an API token; printed once (admin)", "",
     "--pool= --ttl= --uses= --name-prefix= --node= --role=role"},
    {"token", "revoke", cmd_token_revoke, "ID|NAME",
     "revoke a join token (and the keys it admitted) or an API token", "", ""},
    {NULL, "pools", cmd_pools, "[-o FORMAT]",
     "list node pools: nodes by state, demand, cost, provider errors", "", "-o=fmt --output=fmt"},
    {"pool", "scale", cmd_pool_scale, "NAME N",
     "keep N nodes in a pool: grow now, drain the surplus (admin)", "pool", ""},
    {"pool", "drain", cmd_pool_drain, "NAME",
     "no new nodes; drain and remove a pool's nodes (admin)", "pool", ""},
    {NULL, "events", cmd_events, "[-f] [--run ID] [--since N] [-o FORMAT]",
     "droverd's event log: transitions, agents, checkpoints, pool nodes", "",
     "-f --follow --run=run --since= -o=fmt --output=fmt"},
    {NULL, "metrics", cmd_metrics, "",
     "droverd's metrics in the Prometheus text format (as drover-web's /metrics)", "", ""},
    {"context", "add", cmd_context_add, "NAME --api ENDPOINT [--key F] [--server-key F]",
     "save a cluster's endpoint and keys as a context", "",
     "--api= --key=file --server-key=file --use"},
    {"context", "use", cmd_context_use, "NAME", "talk to context NAME's cluster by default",
     "context", ""},
    {"context", "list", cmd_context_list, "[-o FORMAT]", "list contexts, * the current", "",
     "-o=fmt --output=fmt"},
    {"context", "remove", cmd_context_remove, "NAME", "delete a context", "context", ""},
    {NULL, "status", cmd_status, "[-o table|json|yaml]",
     "droverd's keys, limits and what it refused", "", "-o=fmt --output=fmt"},
    {NULL, "keygen", cmd_keygen, "NAME [--dir DIR] [--role ROLE]",
     "write a CURVE key pair (droverd, an agent, an API user)", "", "--dir=file --role=role"},
};

#define N_COMMANDS (sizeof commands / sizeof *commands)
#define TOP_USAGE  "drover [--api ENDPOINT] COMMAND [ARGS]... (drover --help lists commands)"

/* Width of the "COMMAND ARGS" column of the help; longer ones put their
 * summary on the next line. */
#define HELP_COL 46

static void print_commands(const char *group)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command_t *c = &commands[i];
        char words[128];
        if (group && (!c->group || strcmp(c->group, group) != 0))
            continue;
        snprintf(words, sizeof words, "%s%s%s%s%s", c->group ? c->group : "", c->group ? " " : "",
                 c->name, *c->synopsis ? " " : "", c->synopsis);
        if (strlen(words) > HELP_COL)
            printf("  %s\n  %-*s %s\n", words, HELP_COL, "", c->summary);
        else
            printf("  %-*s %s\n", HELP_COL, words, c->summary);
    }
}

static int top_help(void)
{
    printf("usage: drover [--api ENDPOINT] COMMAND [ARGS]...\n"
           "\nCommands:\n");
    print_commands(NULL);
    printf("\nGlobal flags (before or after the command):\n"
           "  --api ENDPOINT  droverd's API socket; default $DROVER_API, else\n"
           "                  ipc:///run/drover/api.sock (the systemd unit's)\n"
           "  --key FILE      your secret key, for a tcp:// API (CURVE); $DROVER_KEY\n"
           "  --server-key FILE  droverd's public key (droverd.key); $DROVER_SERVER_KEY\n"
           "  --context NAME  use context NAME (drover context list); $DROVER_CONTEXT;\n"
           "                  flags and the variables above win over a context\n"
           "  --token TOKEN   act as API token TOKEN (drover token create): its role and\n"
           "                  name; $DROVER_TOKEN\n"
           "  -h, --help      show help; `drover COMMAND --help` for one command\n"
           "  -V, --version   print drover's version (`drover status`: droverd's too)\n"
           "\nListings take -o table|wide|json|yaml|name (FORMAT above).\n"
           "\nEnvironment: DROVER_API, DROVER_API_TIMEOUT_MS (default 10000), DROVER_KEY,\n"
           "DROVER_SERVER_KEY, DROVER_CONTEXT, DROVER_TOKEN, XDG_CONFIG_HOME (contexts),\n"
           "NO_COLOR.\n"
           "\nExit status:\n"
           "  0  success\n"
           "  1  the command worked; the run it watched did not succeed\n"
           "  2  usage error: unknown command or flag, bad or missing value\n"
           "  3  not found: no such run, step, attempt, agent or artifact\n"
           "  4  cannot reach droverd: no socket, no permission on it, no answer\n"
           "  5  refused by role: your API key's or token's role may not do this, or the\n"
           "     API token is refused (unknown, revoked, expired)\n"
           "  6  refused by droverd: invalid spec, or not in this state (still running,\n"
           "     already ended)\n"
           "  7  any other error (a local file, a garbled answer)\n");
    return CLI_EXIT_OK;
}

static int group_help(const char *group)
{
    printf("usage: drover %s SUBCOMMAND [ARGS]...\n", group);
    print_commands(group);
    return CLI_EXIT_OK;
}

/* The command words at one level: the subcommands of group, or the
 * top-level commands and the groups (each once) when group is NULL; NULL
 * ends the list. */
static void command_words(const char *group, const char *words[N_COMMANDS + 2])
{
    size_t n = 0;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command_t *c = &commands[i];
        const char *w = group ? (c->group && strcmp(c->group, group) == 0 ? c->name : NULL)
                              : (c->group ? c->group : c->name);
        bool seen = false;
        for (size_t k = 0; w && k < n; k++)
            seen |= strcmp(words[k], w) == 0;
        if (w && !seen)
            words[n++] = w;
    }
    if (!group)
        words[n++] = "help";
    words[n] = NULL;
}

/* "unknown command 'WORDS'", with the closest command when one is close. */
static int unknown_command(const char *usage, const char *group, const char *word)
{
    const char *words[N_COMMANDS + 2];
    command_words(group, words);
    const char *hint = suggest_closest(word, strlen(word), words);
    if (hint)
        return cli_usage_error(usage, "unknown command '%s%s%s'; did you mean '%s%s%s'?",
                               group ? group : "", group ? " " : "", word, group ? group : "",
                               group ? " " : "", hint);
    return cli_usage_error(usage, "unknown command '%s%s%s'", group ? group : "", group ? " " : "",
                           word);
}

/* A usage error inside a group, naming its subcommands: sub is the unknown
 * subcommand, or NULL when it is missing. */
static int group_usage_error(const char *group, const char *sub)
{
    char usage[128], subs[64] = "";
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (!commands[i].group || strcmp(commands[i].group, group) != 0)
            continue;
        snprintf(subs + strlen(subs), sizeof subs - strlen(subs), "%s%s", *subs ? "|" : "",
                 commands[i].name);
    }
    snprintf(usage, sizeof usage, "drover %s %s [ARGS]...", group, subs);
    if (!sub)
        return cli_usage_error(usage, "missing subcommand after '%s'", group);
    return unknown_command(usage, group, sub);
}

static bool is_group(const char *word)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].group && strcmp(commands[i].group, word) == 0)
            return true;
    return false;
}

static const command_t *find_command(const char *group, const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command_t *c = &commands[i];
        bool same_group = group ? c->group && strcmp(c->group, group) == 0 : !c->group;
        if (same_group && strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

/* The next command word, skipping global flags. 0 with *word set (NULL
 * at the end), CLI_STOP when help was printed, or CLI_EXIT_ERROR. */
static int next_word(args_t *a, const char *usage_group, const char **word)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    a->opts = none;
    *word = NULL;
    int opt = args_next(a);
    if (opt == ARGS_ERROR)
        return CLI_EXIT_USAGE;
    if (opt == ARGS_HELP) {
        if (usage_group)
            group_help(usage_group);
        else
            top_help();
        return CLI_STOP;
    }
    if (opt == ARGS_POSITIONAL)
        *word = a->value;
    return 0;
}

/* "drover help [COMMAND...]": the same as COMMAND --help. */
static int help_command(cli_t *cli, int argc, char **argv)
{
    static char help_flag[] = "--help";
    char *args[] = {help_flag};
    if (argc == 0)
        return top_help();
    if (!is_group(argv[0])) {
        const command_t *c = find_command(NULL, argv[0]);
        if (!c)
            return unknown_command(TOP_USAGE, NULL, argv[0]);
        return c->fn(cli, 1, args);
    }
    if (argc == 1)
        return group_help(argv[0]);
    const command_t *c = find_command(argv[0], argv[1]);
    if (!c)
        return group_usage_error(argv[0], argv[1]);
    return c->fn(cli, 1, args);
}

/* ---------------------------------------------------------- completion */

/* Global flags that take a value, for completion's walk over the words. */
static const char *const global_value_flags[] = {"--api",     "--key",   "--server-key",
                                                 "--context", "--token", NULL};
static const char *const global_flags[] = {"--api",   "--key",  "--server-key", "--context",
                                           "--token", "--help", "-h",           "--version",
                                           "-V",      NULL};

static void offer(const char *word, const char *prefix)
{
    if (strncmp(word, prefix, strlen(prefix)) == 0)
        printf("%s\n", word);
}

/* The kind of the value flag takes in c's flags ("" for anything), or NULL
 * when c has no such flag taking a value. */
static const char *flag_value_kind(const command_t *c, const char *flag, char *buf, size_t len)
{
    size_t n = strlen(flag);
    for (const char *p = c ? c->flags : ""; *p;) {
        size_t w = strcspn(p, " ");
        if (w > n && strncmp(p, flag, n) == 0 && p[n] == '=') {
            snprintf(buf, len, "%.*s", (int)(w - n - 1), p + n + 1);
            return buf;
        }
        p += w;
        p += *p == ' ';
    }
    return NULL;
}

static void offer_kind(cli_t *cli, const char *kind, const char *const *pos, size_t npos,
                       const char *prefix)
{
    static const char *const fmts[] = {"table", "wide", "json", "yaml", "name", NULL};
    static const char *const statuses[] = {"pending", "running",   "succeeded",
                                           "failed",  "cancelled", NULL};
    static const char *const roles[] = {"admin", "submit", "read", NULL};
    const char *const *list = strcmp(kind, "fmt") == 0      ? fmts
                              : strcmp(kind, "status") == 0 ? statuses
                              : strcmp(kind, "role") == 0   ? roles
                                                            : NULL;
    for (size_t i = 0; list && list[i]; i++)
        offer(list[i], prefix);
    if (strcmp(kind, "file") == 0)
        printf(":files\n"); /* the shell completes file names itself */
    else if (strcmp(kind, "run") == 0)
        complete_runs(cli, prefix);
    else if (strcmp(kind, "step") == 0 && npos >= 1)
        complete_steps(cli, pos[0], prefix);
    else if (strcmp(kind, "artifact") == 0 && npos >= 2)
        complete_artifacts(cli, pos[0], pos[1], prefix);
    else if (strcmp(kind, "agent") == 0)
        complete_agents(cli, prefix);
    else if (strcmp(kind, "schedule") == 0)
        complete_schedules(cli, prefix);
    else if (strcmp(kind, "pool") == 0)
        complete_pools(cli, prefix);
    else if (strcmp(kind, "context") == 0)
        complete_contexts(prefix);
}

/* `drover __complete WORD... PARTIAL` (hidden; the bash and zsh scripts in
 * completions/ call it): the words after "drover" up to the one being
 * completed, and that one (maybe ""). Prints the candidates that start with
 * it, one a line, or ":files" where the shell should complete file names.
 * Runs, steps, artifacts and agents come from droverd (--api, --context
 * and the environment are honoured); errors are silent. */
static int complete(cli_t *cli, int argc, char **argv)
{
    const char *partial = argc > 0 ? argv[argc - 1] : "", *group = NULL, *value_kind = NULL;
    const char *pos[8];
    const command_t *c = NULL;
    size_t npos = 0;
    bool only_positional = false, help = false;
    char kind_buf[32];
    FILE *quiet = freopen("/dev/null", "w", stderr);
    (void)quiet;
    for (int i = 0; i < argc - 1; i++) {
        const char *w = argv[i];
        if (value_kind) {
            value_kind = NULL;
            continue;
        }
        if (!only_positional && strcmp(w, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (!only_positional && w[0] == '-' && w[1]) {
            bool global = false;
            for (size_t k = 0; global_value_flags[k]; k++)
                if (strcmp(w, global_value_flags[k]) == 0 && i + 1 < argc - 1) {
                    global = true;
                    if (strcmp(w, "--api") == 0)
                        cli->api = argv[i + 1];
                    else if (strcmp(w, "--context") == 0)
                        context_set_flag(argv[i + 1]);
                    else if (strcmp(w, "--token") == 0)
                        api_set_token_flag(argv[i + 1]);
                    else
                        api_set_key_flag(strcmp(w, "--server-key") == 0, argv[i + 1]);
                    i++;
                }
            if (!global && !strchr(w, '='))
                value_kind = flag_value_kind(c, w, kind_buf, sizeof kind_buf);
            continue;
        }
        if (!c && !help && strcmp(w, "help") == 0 && !group)
            help = true;
        else if (!c && !group && is_group(w))
            group = w;
        else if (!c && !help && (c = find_command(group, w)) != NULL)
            ;
        else if (!c && !help)
            return CLI_EXIT_OK; /* an unknown command: nothing to offer */
        else if (npos < sizeof pos / sizeof *pos)
            pos[npos++] = w;
    }
    if (value_kind) {
        offer_kind(cli, value_kind, pos, npos, partial);
        return CLI_EXIT_OK;
    }
    if (partial[0] == '-' && !only_positional) {
        for (const char *p = c ? c->flags : ""; *p;) {
            size_t w = strcspn(p, " "), eq = strcspn(p, "= ");
            char flag[64];
            snprintf(flag, sizeof flag, "%.*s", (int)(eq < w ? eq : w), p);
            offer(flag, partial);
            p += w;
            p += *p == ' ';
        }
        for (size_t k = 0; global_flags[k]; k++)
            offer(global_flags[k], partial);
        return CLI_EXIT_OK;
    }
    if (help || (!c && !group)) {
        const char *words[N_COMMANDS + 2];
        command_words(help ? group : NULL, words);
        for (size_t k = 0; words[k]; k++)
            if (!(help && strcmp(words[k], "help") == 0))
                offer(words[k], partial);
        return CLI_EXIT_OK;
    }
    if (!c) {
        const char *words[N_COMMANDS + 2];
        command_words(group, words);
        for (size_t k = 0; words[k]; k++)
            offer(words[k], partial);
        return CLI_EXIT_OK;
    }
    const char *kind = c->args;
    for (size_t k = 0; k < npos && *kind; k++) { /* the kind of positional npos */
        kind += strcspn(kind, " ");
        kind += *kind == ' ';
    }
    if (*kind) {
        char k1[32];
        snprintf(k1, sizeof k1, "%.*s", (int)strcspn(kind, " "), kind);
        offer_kind(cli, k1, pos, npos, partial);
    }
    return CLI_EXIT_OK;
}

static int dispatch(cli_t *cli, int argc, char **argv)
{
    args_t a;
    const char *word, *sub = NULL;
    args_init(&a, cli, argc - 1, argv + 1, NULL, TOP_USAGE);
    int rc = next_word(&a, NULL, &word);
    if (rc != 0)
        return cli_status(rc);
    if (!word)
        return cli_usage_error(TOP_USAGE, "missing command");
    if (strcmp(word, "help") == 0)
        return help_command(cli, argc - 1 - a.i, argv + 1 + a.i);
    if (strcmp(word, "__complete") == 0) /* global flags before it are applied */
        return complete(cli, argc - 1 - a.i, argv + 1 + a.i);
    if (is_group(word)) {
        if ((rc = next_word(&a, word, &sub)) != 0)
            return cli_status(rc);
        if (!sub)
            return group_usage_error(word, NULL);
    }
    const command_t *c = find_command(sub ? word : NULL, sub ? sub : word);
    if (!c && sub)
        return group_usage_error(word, sub);
    if (!c)
        return unknown_command(TOP_USAGE, NULL, word);
    return c->fn(cli, argc - 1 - a.i, argv + 1 + a.i);
}

int main(int argc, char **argv)
{
    cli_t cli = {0};
    log_init("drover");
    int rc = dispatch(&cli, argc, argv);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        log_error("write to stdout: %s", strerror(errno ? errno : EIO));
        return CLI_EXIT_ERROR;
    }
    return rc == CLI_EXIT_ERROR ? cli_failure(CLI_EXIT_ERROR) : rc;
}
