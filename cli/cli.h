/* cli — what every `drover` subcommand shares: the parsed global options,
 * the argument iterator, usage and help output, and the subcommands.
 *
 * Each subcommand is `int cmd_x(cli_t *cli, int argc, char **argv)`, given
 * the words after its name, returning the process exit status. Arguments
 * are read with args_next(), which knows the command's own flags and the
 * global ones (--api, -h/--help), so a global flag may sit before or after
 * the subcommand. Options look like "--limit 5", "--limit=5", "-o json" or
 * "-ojson"; "--" ends them.
 */
#ifndef DROVER_CLI_CLI_H
#define DROVER_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define CLI_EXIT_OK     0
#define CLI_EXIT_FAILED 1 /* the command worked; what it watched failed */
#define CLI_EXIT_ERROR  2 /* usage error, unreachable droverd, error answer */

/* Returned by argument parsers: stop now, successfully (help was printed). */
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
 * (an unknown flag or a missing value; the error and usage are printed).
 * Global flags are consumed here and never returned. */
int args_next(args_t *a);

/* Print "drover: error: MESSAGE" and "usage: USAGE" to stderr; returns
 * CLI_EXIT_ERROR. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print help text (usage line, then text) to stdout; returns CLI_EXIT_OK. */
int cli_help(const char *usage, const char *text);

/* Parse "-o" values: "json" → *json true, "table" → false. 0 or -EINVAL. */
int cli_parse_output(const char *s, bool *json);

/* Parse a decimal number in [0, UINT32_MAX]. 0 or -EINVAL. */
int cli_parse_u32(const char *s, uint32_t *out);

/* Sleep for ms milliseconds (restarting after signals). */
void cli_sleep_ms(int64_t ms);

/* The subcommands (see each file for details). */
int cmd_submit(cli_t *cli, int argc, char **argv);
int cmd_runs(cli_t *cli, int argc, char **argv);
int cmd_run_get(cli_t *cli, int argc, char **argv);
int cmd_run_watch(cli_t *cli, int argc, char **argv);
int cmd_run_cancel(cli_t *cli, int argc, char **argv);
int cmd_run_delete(cli_t *cli, int argc, char **argv);
int cmd_logs(cli_t *cli, int argc, char **argv);
int cmd_artifacts(cli_t *cli, int argc, char **argv);
int cmd_artifact_get(cli_t *cli, int argc, char **argv);
int cmd_cache_clear(cli_t *cli, int argc, char **argv);
int cmd_agents(cli_t *cli, int argc, char **argv);
int cmd_agent_drain(cli_t *cli, int argc, char **argv);
int cmd_agent_undrain(cli_t *cli, int argc, char **argv);
int cmd_agent_preempt(cli_t *cli, int argc, char **argv);
int cmd_keygen(cli_t *cli, int argc, char **argv);
int cmd_status(cli_t *cli, int argc, char **argv);

/* Follow run_id until it reaches a final status, as `drover run watch`
 * does; returns 0 if it SUCCEEDED, 1 if it ended otherwise, 2 on error. */
int run_watch(cli_t *cli, const char *run_id);

#endif
