/* cli — what every `drover` subcommand shares: the parsed global options,
 * the argument iterator, usage and help output, and the subcommands.
 *
 * Each subcommand is `int cmd_x(cli_t *cli, int argc, char **argv)`, given
 * the words after its name, returning the process exit status. Arguments
 * are read with args_next(), which knows the command's own flags and the
 * global ones (--api, --key, --server-key, --context, --token, -h/--help,
 * -V/--version), so a
 * global flag may sit before or after the subcommand. Options look like "--limit 5", "--limit=5",
 * "-o json" or
 * "-ojson"; "--" ends them.
 */
#ifndef DROVER_CLI_CLI_H
#define DROVER_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses, one per kind of outcome a script may branch on (listed in
 * `drover --help` and README: keep the three in step). */
#define CLI_EXIT_OK          0
#define CLI_EXIT_FAILED      1 /* the command worked; what it watched failed */
#define CLI_EXIT_USAGE       2 /* bad command line: unknown command or flag, bad value */
#define CLI_EXIT_NOT_FOUND   3 /* no such run, step, attempt, agent or artifact */
#define CLI_EXIT_UNREACHABLE 4 /* droverd cannot be reached, or did not answer in time */
#define CLI_EXIT_DENIED      5 /* droverd refused it: the caller's role may not */
#define CLI_EXIT_REFUSED     6 /* droverd refused it: invalid spec, wrong state */
#define CLI_EXIT_ERROR       7 /* any other error (a local file, a garbled answer) */

/* Record why the command is failing: the exit status main() returns instead
 * of CLI_EXIT_ERROR (the first one recorded wins). The API client records
 * its failures here, so commands only return CLI_EXIT_ERROR. */
void cli_set_failure(int status);

/* The recorded status, or fallback when none was recorded. */
int cli_failure(int fallback);

/* Returned by argument parsers: stop now, successfully (help or the version
 * was printed). */
#define CLI_STOP (-1)

/* The exit status for a parser's non-zero result. */
static inline int cli_status(int parse_rc)
{
    return parse_rc == CLI_STOP ? CLI_EXIT_OK : parse_rc;
}

/* The parsed global options (the program's only mutable state). */
typedef struct {
    const char *api; /* --api ENDPOINT, or NULL for $DROVER_API / default */
} cli_t;

/* One flag of a command. The table ends with an entry whose id is 0. */
typedef struct {
    const char *name; /* long name without "--", or NULL */
    char short_name;  /* 'o' for -o, or 0 */
    bool has_arg;
    int id; /* > 0, what args_next returns for it */
} cli_opt_t;

/* What args_next returns besides a flag id. */
enum {
    ARGS_END = 0,
    ARGS_POSITIONAL = -1, /* a.value is the word */
    ARGS_HELP = -2,       /* -h or --help */
    ARGS_ERROR = -3,      /* usage error already printed */
};

typedef struct {
    cli_t *cli;
    int argc;
    char **argv;
    int i;
    bool only_positional; /* after "--" */
    const cli_opt_t *opts;
    const char *usage; /* "drover runs [-o json|table] [--limit N]" */
    const char *value; /* the flag's argument or the positional word */
} args_t;

/* Start iterating argv[0..argc) of a command whose flags are opts and whose
 * one-line usage is usage (both static). */
void args_init(args_t *a, cli_t *cli, int argc, char **argv, const cli_opt_t *opts,
               const char *usage);

/* The next flag id, ARGS_POSITIONAL, ARGS_HELP, ARGS_END, or ARGS_ERROR
 * (an unknown flag or a missing value; the error, a "did you mean" and the
 * usage are printed). Global flags are consumed here and never returned;
 * -V/--version prints the version and ends the process (status 0), as
 * --version does in any program, wherever it stands. */
int args_next(args_t *a);

/* Print "drover: error: MESSAGE" and "usage: USAGE" to stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print help text (usage line, then text) to stdout; returns CLI_EXIT_OK. */
int cli_help(const char *usage, const char *text);

/* Print "drover VERSION" to stdout (--version, -V). */
void cli_print_version(void);

/* `-o FORMAT` of every listing: an aligned table, the same with more
 * columns, JSON, YAML (the same document), or one name (id) per line. */
typedef enum { CLI_OUT_TABLE, CLI_OUT_WIDE, CLI_OUT_JSON, CLI_OUT_YAML, CLI_OUT_NAME } cli_output_t;

#define CLI_OUTPUTS "table|wide|json|yaml|name"
#define CLI_OUTPUT_HELP                                                                            \
    "  -o, --output FORMAT  table (default), wide (more columns), json, yaml, or\n"                \
    "                       name (one per line, for scripts)\n"

/* Parse an -o value into *out. 0, or -EINVAL with the usage error printed. */
int cli_parse_output(const char *usage, const char *s, cli_output_t *out);

/* The command line of a listing that takes only `-o FORMAT` (schedules,
 * tokens, context list) into *out: 0 to go on, CLI_STOP after --help, or
 * CLI_EXIT_USAGE with the error printed. Callers return cli_status(rc). */
int cli_output_only_args(cli_t *cli, int argc, char **argv, const char *usage, const char *help,
                         cli_output_t *out);

/* Whether o is a document format (json or yaml). */
static inline bool cli_output_doc(cli_output_t o)
{
    return o == CLI_OUT_JSON || o == CLI_OUT_YAML;
}

struct doc;

/* A writer on stdout for a document format: JSON or YAML. The caller ends
 * it with doc_finish. */
struct doc *cli_doc_writer(cli_output_t o);

/* Parse a decimal number in [0, UINT32_MAX]. 0 or -EINVAL. */
int cli_parse_u32(const char *s, uint32_t *out);

/* "-p KEY=VALUE" (split at the first '=') appended to *params (*n of them;
 * the caller frees with util_free_kvs). 0, or the usage error printed and
 * CLI_EXIT_USAGE. */

struct Drover__KeyValue;
int cli_param(const char *usage, const char *kv, struct Drover__KeyValue ***params, size_t *n);

/* A spec FILE ("-": standard input) and the files it imports, as `drover
 * submit` sends them (cmd_submit.c): *text (caller frees), and *imports
 * (bundle_free). 0, or -errno with the error printed and the exit status
 * recorded (cli_failure). */

struct Drover__SpecFile;
int cli_read_spec(const char *file, char **text, size_t *len, struct Drover__SpecFile ***imports,
                  size_t *n_imports);

/* Sleep for ms milliseconds (restarting after signals). */
void cli_sleep_ms(int64_t ms);

/* The subcommands (see each file for details). */
int cmd_submit(cli_t *cli, int argc, char **argv);
int cmd_runs(cli_t *cli, int argc, char **argv);
int cmd_schedules(cli_t *cli, int argc, char **argv);
int cmd_schedule_create(cli_t *cli, int argc, char **argv);
int cmd_schedule_update(cli_t *cli, int argc, char **argv);
int cmd_schedule_pause(cli_t *cli, int argc, char **argv);
int cmd_schedule_resume(cli_t *cli, int argc, char **argv);
int cmd_schedule_delete(cli_t *cli, int argc, char **argv);
int cmd_schedule_trigger(cli_t *cli, int argc, char **argv);
int cmd_schedule_backfill(cli_t *cli, int argc, char **argv);
int cmd_run_get(cli_t *cli, int argc, char **argv);
int cmd_run_watch(cli_t *cli, int argc, char **argv);
int cmd_run_cancel(cli_t *cli, int argc, char **argv);
int cmd_run_delete(cli_t *cli, int argc, char **argv);
int cmd_run_resume(cli_t *cli, int argc, char **argv);
int cmd_run_spec(cli_t *cli, int argc, char **argv);
int cmd_logs(cli_t *cli, int argc, char **argv);
int cmd_artifacts(cli_t *cli, int argc, char **argv);
int cmd_artifact_get(cli_t *cli, int argc, char **argv);
int cmd_cache_clear(cli_t *cli, int argc, char **argv);
int cmd_agents(cli_t *cli, int argc, char **argv);
int cmd_agent_drain(cli_t *cli, int argc, char **argv);
int cmd_agent_undrain(cli_t *cli, int argc, char **argv);
int cmd_agent_preempt(cli_t *cli, int argc, char **argv);
int cmd_agent_forget(cli_t *cli, int argc, char **argv);
int cmd_tokens(cli_t *cli, int argc, char **argv);
int cmd_token_create(cli_t *cli, int argc, char **argv);
int cmd_token_revoke(cli_t *cli, int argc, char **argv);
int cmd_pools(cli_t *cli, int argc, char **argv);
int cmd_events(cli_t *cli, int argc, char **argv);
int cmd_metrics(cli_t *cli, int argc, char **argv);
int cmd_pool_scale(cli_t *cli, int argc, char **argv);
int cmd_pool_drain(cli_t *cli, int argc, char **argv);
int cmd_context_add(cli_t *cli, int argc, char **argv);
int cmd_context_use(cli_t *cli, int argc, char **argv);
int cmd_context_list(cli_t *cli, int argc, char **argv);
int cmd_context_remove(cli_t *cli, int argc, char **argv);

/* --context NAME (a global flag): the context to use instead of $DROVER_CONTEXT
 * or the current one (context.c). name is not copied. */
void context_set_flag(const char *name);

/* The saved contexts' names, sorted, into *names (the caller frees each and
 * the array); returns how many. */
size_t context_names(char ***names);

/* Shell completion (complete.c): print the names starting with prefix, one
 * a line; nothing on any failure. */
void complete_runs(cli_t *cli, const char *prefix);
void complete_steps(cli_t *cli, const char *run, const char *prefix);
void complete_artifacts(cli_t *cli, const char *run, const char *step, const char *prefix);
void complete_agents(cli_t *cli, const char *prefix);
void complete_schedules(cli_t *cli, const char *prefix);
void complete_pools(cli_t *cli, const char *prefix);
void complete_contexts(const char *prefix);

/* A setting of the context in use ("api", "key" or "server-key"), or NULL
 * when no context is in use or it does not set it. Loads the context on the
 * first call; a context named by --context or $DROVER_CONTEXT that does not
 * exist, or one that cannot be read, ends the process with the error
 * printed. The result lives until exit. */
const char *context_setting(const char *which);
int cmd_keygen(cli_t *cli, int argc, char **argv);
int cmd_status(cli_t *cli, int argc, char **argv);

/* Follow run_id until it reaches a final status, as `drover run watch`
 * does; returns CLI_EXIT_OK if it SUCCEEDED, CLI_EXIT_FAILED if it ended
 * otherwise, CLI_EXIT_ERROR on error (the reason recorded, cli_failure). */
int run_watch(cli_t *cli, const char *run_id);

#endif
