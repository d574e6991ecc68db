/* cmd_submit — `drover submit FILE [-p KEY=VALUE]... [--watch] [--no-cache]`:
 * send a pipeline spec to droverd, which parses and validates it (errors
 * come back naming FILE:LINE:COL), print the new run's id, optionally
 * follow it. The spec travels as bytes, with the files it imports
 * (`imports:`, transitively), read here (bundle.h: the compiler's
 * spec_imports finds the entries; droverd compiles from what is sent and
 * reads nothing from disk). An import that cannot be read is an error
 * naming the importing file and the entry's line, exit status 6 as for an
 * invalid spec. --no-cache asks droverd to run every step even where an
 * identical one already succeeded (SubmitRequest.no_cache). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bundle.h"
#include "cli.h"
#include "log.h"
#include "util.h"

/* Largest spec file accepted. */
#define SUBMIT_MAX_SPEC BUNDLE_MAX_FILE

enum { OPT_PARAM = 1, OPT_WATCH, OPT_NO_CACHE };

static const cli_opt_t submit_opts[] = {
    {"param", 'p', true, OPT_PARAM},
    {"watch", 'w', false, OPT_WATCH},
    {"no-cache", 0, false, OPT_NO_CACHE},
    {NULL, 0, false, 0},
};

#define SUBMIT_USAGE "drover submit FILE [-p KEY=VALUE]... [--watch] [--no-cache]"
#define SUBMIT_HELP                                                                                \
    "Submit a pipeline spec (YAML) as a new run and print the run's id.\n"                         \
    "FILE may be - for standard input. The files it imports (imports:) are read and\n"             \
    "sent with it (at most 100, 1 MiB each); droverd keeps them with the run\n"                    \
    "(`drover run spec ID`).\n"                                                                    \
    "  -p, --param KEY=VALUE  override a parameter declared under params: (repeatable)\n"          \
    "  -w, --watch            then follow the run as `drover run watch` does; the exit\n"          \
    "                         status is 0 only if the run succeeds\n"                              \
    "      --no-cache         run every step, even one identical to a step that\n"                 \
    "                         already succeeded (by default its outputs are reused)\n"

typedef struct {
    const char *file;
    Drover__KeyValue **params;
    size_t n_params;
    bool watch;
    bool no_cache;
} submit_args_t;

static void submit_args_free(submit_args_t *s)
{
    util_free_kvs(s->params, s->n_params);
    s->params = NULL;
    s->n_params = 0;
}

int cli_param(const char *usage, const char *kv, Drover__KeyValue ***params, size_t *n)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return cli_usage_error(usage, "-p expects KEY=VALUE, got '%s'", kv);
    char *key = xstrndup(kv, (size_t)(eq - kv));
    *params = xrealloc(*params, (*n + 1) * sizeof **params);
    (*params)[(*n)++] = util_kv_new(key, eq + 1);
    free(key);
    return 0;
}

static int parse_submit_args(cli_t *cli, int argc, char **argv, submit_args_t *s)
{
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, submit_opts, SUBMIT_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(SUBMIT_USAGE, SUBMIT_HELP), CLI_STOP;
        if (opt == ARGS_POSITIONAL && s->file)
            return cli_usage_error(SUBMIT_USAGE, "unexpected argument '%s'", a.value);
        if (opt == ARGS_POSITIONAL)
            s->file = a.value;
        if (opt == OPT_PARAM && cli_param(SUBMIT_USAGE, a.value, &s->params, &s->n_params) != 0)
            return CLI_EXIT_USAGE;
        if (opt == OPT_WATCH)
            s->watch = true;
        if (opt == OPT_NO_CACHE)
            s->no_cache = true;
    }
    if (!s->file)
        return cli_usage_error(SUBMIT_USAGE, "missing FILE");
    return 0;
}

/* Read the spec; errors name the file. */
static int read_spec(const char *file, char **text, size_t *len)
{
    const char *path = strcmp(file, "-") == 0 ? "/dev/stdin" : file;
    int rc = util_read_file(path, SUBMIT_MAX_SPEC, text, len);
    if (rc == -EFBIG)
        log_error("%s: larger than %u MiB, the limit for a pipeline spec", file,
                  SUBMIT_MAX_SPEC >> 20);
    else if (rc < 0)
        log_error("cannot read %s: %s", file, strerror(-rc));
    return rc;
}

/* The files the spec imports (bundle_collect); errors printed, the exit
 * status that of an invalid spec. */
static int read_imports(const char *file, const char *text, size_t len, Drover__SpecFile ***files,
                        size_t *n)
{
    char err[1024];
    int rc =
        bundle_collect(strcmp(file, "-") == 0 ? NULL : file, text, len, files, n, err, sizeof err);
    if (rc < 0) {
        log_error("%s", err);
        cli_set_failure(CLI_EXIT_REFUSED);
    }
    return rc;
}

int cli_read_spec(const char *file, char **text, size_t *len, Drover__SpecFile ***imports,
                  size_t *n_imports)
{
    int rc = read_spec(file, text, len);
    if (rc == 0 && (rc = read_imports(file, *text, *len, imports, n_imports)) < 0) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

/* Send the submit request; on success *run_id is the new id (caller frees). */
static int submit(cli_t *cli, const submit_args_t *s, const char *text, size_t len,
                  Drover__SpecFile **imports, size_t n_imports, char **run_id)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__SubmitRequest sub = DROVER__SUBMIT_REQUEST__INIT;
    Drover__ApiResponse *resp = NULL;
    sub.file = (char *)(strcmp(s->file, "-") == 0 ? "<stdin>" : s->file);
    sub.spec.data = (uint8_t *)text;
    sub.spec.len = len;
    sub.params = s->params;
    sub.n_params = s->n_params;
    sub.no_cache = s->no_cache;
    sub.imports = imports;
    sub.n_imports = n_imports;
    req.op_case = DROVER__API_REQUEST__OP_SUBMIT;
    req.submit = &sub;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return -EIO;
    if (!*resp->run_id) {
        log_error("droverd accepted the run but sent no run id");
        drover__api_response__free_unpacked(resp, NULL);
        return -EPROTO;
    }
    *run_id = xstrdup(resp->run_id);
    drover__api_response__free_unpacked(resp, NULL);
    return 0;
}

int cmd_submit(cli_t *cli, int argc, char **argv)
{
    submit_args_t s = {0};
    char *text = NULL, *run_id = NULL;
    Drover__SpecFile **imports = NULL;
    size_t len = 0, n_imports = 0;
    int rc = parse_submit_args(cli, argc, argv, &s);
    if (rc != 0)
        goto cleanup;
    rc = CLI_EXIT_ERROR;
    if (cli_read_spec(s.file, &text, &len, &imports, &n_imports) < 0 ||
        submit(cli, &s, text, len, imports, n_imports, &run_id) < 0)
        goto cleanup;
    printf("%s\n", run_id);
    fflush(stdout);
    rc = s.watch ? run_watch(cli, run_id) : CLI_EXIT_OK;
cleanup:
    free(run_id);
    bundle_free(imports, n_imports);
    free(text);
    submit_args_free(&s);
    return cli_status(rc);
}
