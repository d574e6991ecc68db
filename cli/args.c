/* args — the argument iterator and usage helpers declared in cli.h. The
 * iterator is getopt_long without its global state and argv permutation:
 * flags and positionals come back in the order given. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "doc.h"
#include "suggest.h"
#include "util.h"

enum {
    GLOBAL_API = -100,
    GLOBAL_HELP = -101,
    GLOBAL_KEY = -102,
    GLOBAL_SERVER_KEY = -103,
    GLOBAL_VERSION = -104,
    GLOBAL_CONTEXT = -105,
    GLOBAL_TOKEN = -106
};

static const cli_opt_t global_opts[] = {
    {"api", 0, true, GLOBAL_API},
    {"key", 0, true, GLOBAL_KEY},
    {"server-key", 0, true, GLOBAL_SERVER_KEY},
    {"context", 0, true, GLOBAL_CONTEXT},
    {"token", 0, true, GLOBAL_TOKEN},
    {"help", 'h', false, GLOBAL_HELP},
    {"version", 'V', false, GLOBAL_VERSION},
    {NULL, 0, false, 0},
};

void args_init(args_t *a, cli_t *cli, int argc, char **argv, const cli_opt_t *opts,
               const char *usage)
{
    memset(a, 0, sizeof *a);
    a->cli = cli;
    a->argc = argc;
    a->argv = argv;
    a->opts = opts;
    a->usage = usage;
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("drover: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n", usage);
    return CLI_EXIT_USAGE;
}

static int failure_status; /* 0: none recorded */

void cli_set_failure(int status)
{
    if (!failure_status)
        failure_status = status;
}

int cli_failure(int fallback)
{
    return failure_status ? failure_status : fallback;
}

int cli_help(const char *usage, const char *text)
{
    printf("usage: %s\n%s%s", usage, text && *text ? "\n" : "", text ? text : "");
    return CLI_EXIT_OK;
}

void cli_print_version(void)
{
    printf("drover %s\n", DROVER_VERSION);
}

static const cli_opt_t *find_long(const cli_opt_t *opts, const char *name, size_t len)
{
    for (; opts->id != 0; opts++)
        if (opts->name && strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

static const cli_opt_t *find_short(const cli_opt_t *opts, char c)
{
    for (; opts->id != 0; opts++)
        if (opts->short_name == c)
            return opts;
    return NULL;
}

/* Take the flag's value from "--x=V", "-xV" or the next word. */
static int take_value(args_t *a, const cli_opt_t *o, const char *word, const char *attached)
{
    if (!o->has_arg) {
        if (attached) {
            cli_usage_error(a->usage, "flag %s takes no value", word);
            return ARGS_ERROR;
        }
        a->value = NULL;
        return o->id;
    }
    if (attached) {
        a->value = attached;
        return o->id;
    }
    if (a->i >= a->argc) {
        cli_usage_error(a->usage, "flag %s needs a value", word);
        return ARGS_ERROR;
    }
    a->value = a->argv[a->i++];
    return o->id;
}

/* Global flags are handled here; command flags are returned. */
static int handle(args_t *a, const cli_opt_t *o, const char *word, const char *attached)
{
    int id = take_value(a, o, word, attached);
    if (id == GLOBAL_KEY || id == GLOBAL_SERVER_KEY) {
        api_set_key_flag(id == GLOBAL_SERVER_KEY, a->value);
        return args_next(a);
    }
    if (id == GLOBAL_TOKEN) {
        api_set_token_flag(a->value);
        return args_next(a);
    }
    if (id == GLOBAL_CONTEXT) {
        context_set_flag(a->value);
        return args_next(a);
    }
    if (id == GLOBAL_API) {
        a->cli->api = a->value;
        return args_next(a);
    }
    if (id == GLOBAL_HELP)
        return ARGS_HELP;
    if (id == GLOBAL_VERSION) {
        cli_print_version();
        exit(fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR);
    }
    return id;
}

static int next_long(args_t *a, const char *word)
{
    const char *name = word + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_opt_t *o = find_long(a->opts, name, len);
    if (!o)
        o = find_long(global_opts, name, len);
    if (!o) {
        const char *names[64], *hint;
        size_t n = 0;
        for (const cli_opt_t *t = a->opts; t->id != 0 && n < 32; t++)
            if (t->name)
                names[n++] = t->name;
        for (const cli_opt_t *t = global_opts; t->id != 0; t++)
            names[n++] = t->name;
        names[n] = NULL;
        if ((hint = suggest_closest(name, len, names)))
            cli_usage_error(a->usage, "unknown flag '--%.*s'; did you mean '--%s'?", (int)len, name,
                            hint);
        else
            cli_usage_error(a->usage, "unknown flag '--%.*s'", (int)len, name);
        return ARGS_ERROR;
    }
    return handle(a, o, word, eq ? eq + 1 : NULL);
}

static int next_short(args_t *a, const char *word)
{
    const cli_opt_t *o = find_short(a->opts, word[1]);
    if (!o)
        o = find_short(global_opts, word[1]);
    if (!o) {
        cli_usage_error(a->usage, "unknown flag '%s'", word);
        return ARGS_ERROR;
    }
    if (word[2] && !o->has_arg) {
        cli_usage_error(a->usage, "unknown flag '%s'", word);
        return ARGS_ERROR;
    }
    return handle(a, o, word, word[2] ? word + 2 : NULL);
}

int args_next(args_t *a)
{
    if (a->i >= a->argc)
        return ARGS_END;
    const char *word = a->argv[a->i++];
    if (a->only_positional || word[0] != '-' || word[1] == '\0') {
        a->value = word;
        return ARGS_POSITIONAL;
    }
    if (strcmp(word, "--") == 0) {
        a->only_positional = true;
        return args_next(a);
    }
    if (word[1] == '-')
        return next_long(a, word);
    return next_short(a, word);
}

int cli_parse_output(const char *usage, const char *s, cli_output_t *out)
{
    static const char *const names[] = {"table", "wide", "json", "yaml", "name", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (cli_output_t)i;
            return 0;
        }
    cli_usage_error(usage, "-o expects table, wide, json, yaml or name, got '%s'", s);
    return -EINVAL;
}

int cli_output_only_args(cli_t *cli, int argc, char **argv, const char *usage, const char *help,
                         cli_output_t *out)
{
    static const cli_opt_t opts[] = {{"output", 'o', true, 1}, {NULL, 0, false, 0}};
    args_t a;
    int opt;
    *out = CLI_OUT_TABLE;
    args_init(&a, cli, argc, argv, opts, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, help), CLI_STOP;
        if (opt == ARGS_POSITIONAL)
            return cli_usage_error(usage, "unexpected argument '%s'", a.value);
        if (cli_parse_output(usage, a.value, out) < 0)
            return CLI_EXIT_USAGE;
    }
    return 0;
}

struct doc *cli_doc_writer(cli_output_t o)
{
    return o == CLI_OUT_YAML ? doc_new_yaml(stdout) : doc_new(stdout);
}

int cli_parse_u32(const char *s, uint32_t *out)
{
    char *end = NULL;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

void cli_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}
