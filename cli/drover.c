/* drover — the command line users type: `drover submit`, `runs`, `run get`,
 * `run watch`, `run cancel`, `run delete`, `logs`, `artifacts`, `artifact
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

#include "cli.h"
#include "log.h"

typedef int (*cmd_fn)(cli_t *cli, int argc, char **argv);

typedef struct {
    const char *group; /* "run", "agent", ..., or NULL for a top-level command */
    const char *name;
    cmd_fn fn;
    const char *synopsis; /* after "drover [GROUP] NAME" */
    const char *summary;
} command_t;

static const command_t commands[] = {
    {NULL, "submit", cmd_submit, "FILE [-p KEY=VALUE]... [--watch] [--no-cache]",
     "submit a pipeline as a new run"},
    {NULL, "runs", cmd_runs, "[-o FORMAT] [--status S] [--name N] [--since DUR] [-w]",
     "list recent runs (filters: see runs --help)"},
    {"run", "get", cmd_run_get, "ID [-o FORMAT]", "show a run, its steps and output params"},
    {"run", "watch", cmd_run_watch, "ID", "follow a run until it ends"},
    {"run", "cancel", cmd_run_cancel, "ID", "cancel a run"},
    {"run", "delete", cmd_run_delete, "ID", "delete an ended run, its logs and artifacts"},
    {NULL, "logs", cmd_logs, "ID STEP [--attempt N] [-f]", "print a step's output"},
    {NULL, "artifacts", cmd_artifacts, "RUN [STEP] [-o FORMAT]",
     "list the artifacts a run's steps produced"},
    {"artifact", "get", cmd_artifact_get, "RUN STEP NAME -o PATH [--force]",
     "download an artifact to a file or directory"},
    {"cache", "clear", cmd_cache_clear, "", "forget cached step results"},
    {NULL, "agents", cmd_agents, "[-o FORMAT] [-l KEY=VALUE]... [-w]",
     "list agents and their resources"},
    {"agent", "drain", cmd_agent_drain, "NAME", "stop placing steps on an agent"},
    {"agent", "undrain", cmd_agent_undrain, "NAME", "put a drained agent back in service"},
    {"agent", "forget", cmd_agent_forget, "NAME",
     "forget a disconnected agent with no steps (admin)"},
    {"agent", "preempt", cmd_agent_preempt, "NAME [--deadline DUR]",
     "drill a preemption: the agent hands its steps back"},
    {"context", "add", cmd_context_add, "NAME --api ENDPOINT [--key F] [--server-key F]",
     "save a cluster's endpoint and keys as a context"},
    {"context", "use", cmd_context_use, "NAME", "talk to context NAME's cluster by default"},
    {"context", "list", cmd_context_list, "[-o FORMAT]", "list contexts, * the current"},
    {"context", "remove", cmd_context_remove, "NAME", "delete a context"},
    {NULL, "status", cmd_status, "[-o table|json|yaml]",
     "droverd's keys, limits and what it refused"},
    {NULL, "keygen", cmd_keygen, "NAME [--dir DIR] [--role ROLE]",
     "write a CURVE key pair (droverd, an agent, an API user)"},
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
           "  -h, --help      show help; `drover COMMAND --help` for one command\n"
           "  -V, --version   print drover's version (`drover status`: droverd's too)\n"
           "\nListings take -o table|wide|json|yaml|name (FORMAT above).\n"
           "\nEnvironment: DROVER_API, DROVER_API_TIMEOUT_MS (default 10000), DROVER_KEY,\n"
           "DROVER_SERVER_KEY, DROVER_CONTEXT, XDG_CONFIG_HOME (contexts), NO_COLOR.\n"
           "\nExit status:\n"
           "  0  success\n"
           "  1  the command worked; the run it watched did not succeed\n"
           "  2  usage error: unknown command or flag, bad or missing value\n"
           "  3  not found: no such run, step, attempt, agent or artifact\n"
           "  4  cannot reach droverd: no socket, no permission on it, no answer\n"
           "  5  refused by role: your API key's role may not do this\n"
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
    const char *hint = cli_suggest(word, strlen(word), words);
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
