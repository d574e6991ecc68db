/* context — named clusters for the CLI, as kubectl and gh keep them:
 * `drover context add NAME --api ENDPOINT [--key FILE] [--server-key
 * FILE]`, `context use NAME`, `context list`, `context remove NAME`.
 *
 * Storage: $XDG_CONFIG_HOME/drover (default ~/.config/drover), mode 0700:
 * contexts/NAME.yaml, one flat YAML mapping per context (api, key,
 * server-key; read with config_load, written with the YAML writer, so
 * every value is a quoted string), and `current`, the name of the context
 * in use. Key paths are stored absolute. Files are replaced by rename, so
 * a reader never sees half of one.
 *
 * Which settings a command uses (api.c asks context_setting): a flag, else
 * the environment ($DROVER_API, $DROVER_KEY, $DROVER_SERVER_KEY), else the
 * context chosen by --context, else $DROVER_CONTEXT, else `current`, else
 * the defaults. A context's keys are used only with its own endpoint (keys
 * for one droverd mean nothing to another). A context chosen by name that
 * does not exist is an error; a `current` naming a removed one is ignored
 * with a note.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "cli.h"
#include "config.h"
#include "doc.h"
#include "log.h"
#include "table.h"
#include "util.h"

#define CONTEXT_NAME_MAX 63

typedef struct {
    char *api, *key, *server_key; /* owned; NULL when unset */
} context_t;

static const char *context_flag; /* --context NAME */
static bool loaded;
static context_t chosen;      /* the context in use, once loaded */
static char chosen_name[128]; /* "" when none */

void context_set_flag(const char *name)
{
    context_flag = name;
}

/* $XDG_CONFIG_HOME/drover or ~/.config/drover, into buf. 0 or -ENOENT. */
static int config_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg == '/')
        snprintf(buf, len, "%s/drover", xdg);
    else if (home && *home)
        snprintf(buf, len, "%s/.config/drover", home);
    else
        return -ENOENT;
    return 0;
}

static void context_free(context_t *c)
{
    free(c->api);
    free(c->key);
    free(c->server_key);
    memset(c, 0, sizeof *c);
}

static int apply(const char *key, const char *value, void *arg)
{
    context_t *c = arg;
    char **slot = strcmp(key, "api") == 0          ? &c->api
                  : strcmp(key, "key") == 0        ? &c->key
                  : strcmp(key, "server-key") == 0 ? &c->server_key
                                                   : NULL;
    if (!slot)
        return -ENOENT;
    free(*slot);
    *slot = *value ? xstrdup(value) : NULL;
    return 0;
}

static bool valid_name(const char *name)
{
    return name[0] != '.' && util_valid_name(name, strlen(name), CONTEXT_NAME_MAX, NULL);
}

/* Read context name into *c. 0, -ENOENT when there is none, or another
 * -errno with the error printed. */
static int load(const char *name, context_t *c)
{
    char dir[PATH_MAX], path[PATH_MAX + 128], err[512];
    memset(c, 0, sizeof *c);
    if (!valid_name(name) || config_dir(dir, sizeof dir) < 0)
        return -ENOENT;
    snprintf(path, sizeof path, "%s/contexts/%s.yaml", dir, name);
    if (access(path, F_OK) < 0)
        return -ENOENT;
    int rc = config_load(path, apply, c, err, sizeof err);
    if (rc < 0) {
        log_error("context %s: %s", name, err);
        context_free(c);
    }
    return rc;
}

/* The name in `current`, into buf ("" when none). */
static void read_current(char *buf, size_t len)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], *text = NULL;
    size_t n;
    buf[0] = '\0';
    if (config_dir(dir, sizeof dir) < 0)
        return;
    snprintf(path, sizeof path, "%s/current", dir);
    if (util_read_file(path, 256, &text, &n) < 0)
        return;
    text[strcspn(text, "\r\n")] = '\0';
    if (valid_name(text))
        snprintf(buf, len, "%s", text);
    free(text);
}

const char *context_setting(const char *which)
{
    if (!loaded) {
        const char *env = getenv("DROVER_CONTEXT");
        const char *name = context_flag ? context_flag : env && *env ? env : NULL;
        loaded = true;
        if (!name)
            read_current(chosen_name, sizeof chosen_name);
        else
            snprintf(chosen_name, sizeof chosen_name, "%s", name);
        if (*chosen_name) {
            int rc = load(chosen_name, &chosen);
            if (rc == -ENOENT && name) {
                log_error("no context '%s' (drover context list shows them)", name);
                cli_set_failure(CLI_EXIT_NOT_FOUND);
                exit(cli_failure(CLI_EXIT_ERROR));
            }
            if (rc == -ENOENT)
                fprintf(stderr,
                        "drover: note: the current context '%s' is gone; using the "
                        "defaults\n",
                        chosen_name);
            if (rc < 0)
                exit(cli_failure(CLI_EXIT_ERROR));
        }
    }
    if (strcmp(which, "api") == 0)
        return chosen.api;
    if (strcmp(which, "key") == 0)
        return chosen.key;
    return chosen.server_key;
}

/* ---------------------------------------------------------------- commands */

#define ADD_USAGE "drover context add NAME --api ENDPOINT [--key FILE] [--server-key FILE] [--use]"
#define ADD_HELP                                                                                   \
    "Save a cluster as context NAME: its API endpoint and, for a tcp:// endpoint\n"                \
    "with CURVE, your secret key and droverd's public key (stored as absolute\n"                   \
    "paths). Replaces a context of that name.\n"                                                   \
    "  --api ENDPOINT     droverd's API socket (ipc://PATH or tcp://HOST:PORT)\n"                  \
    "  --key FILE         your secret key (drover keygen NAME)\n"                                  \
    "  --server-key FILE  droverd's public key (droverd.key)\n"                                    \
    "  --use              make it the current context too\n"                                       \
    "Contexts live in $XDG_CONFIG_HOME/drover (default ~/.config/drover). What a\n"                \
    "command uses: flags, else $DROVER_API/$DROVER_KEY/$DROVER_SERVER_KEY, else\n"                 \
    "the context (--context NAME, else $DROVER_CONTEXT, else the current one),\n"                  \
    "else the defaults.\n"
#define USE_USAGE    "drover context use NAME"
#define USE_HELP     "Make NAME the current context: the cluster commands talk to by default.\n"
#define REMOVE_USAGE "drover context remove NAME"
#define REMOVE_HELP  "Delete context NAME (the current one too: then none is current).\n"
#define LIST_USAGE   "drover context list [-o " CLI_OUTPUTS "]"
#define LIST_HELP    "List the saved contexts; the current one is marked with '*'.\n" CLI_OUTPUT_HELP

enum { OPT_API = 1, OPT_KEY, OPT_SERVER_KEY, OPT_USE, OPT_OUTPUT };

/* Write text to dir/name through a temporary file and rename (mode 0600).
 * 0 or -errno (printed). */
static int write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[PATH_MAX + 128], tmp[PATH_MAX + 160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && write(fd, text, len) != (ssize_t)len)
        rc = -EIO;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        log_error("cannot write %s: %s", path, strerror(-rc));
    }
    return rc;
}

/* The config directory (with contexts/), created 0700. 0 or -errno. */
static int make_dir(char *dir, size_t len)
{
    char sub[PATH_MAX + 16];
    if (config_dir(dir, len) < 0) {
        log_error("neither $XDG_CONFIG_HOME nor $HOME is set: nowhere to keep contexts");
        return -ENOENT;
    }
    snprintf(sub, sizeof sub, "%s/contexts", dir);
    int rc = util_mkdir_p(sub, 0700);
    if (rc < 0)
        log_error("cannot create %s: %s", sub, strerror(-rc));
    return rc;
}

/* path made absolute into out, checked readable. 0 or a usage error. */
static int absolute_file(const char *flag, const char *path, char *out, size_t len)
{
    if (!realpath(path, out) || access(out, R_OK) < 0) {
        cli_usage_error(ADD_USAGE, "%s %s: %s", flag, path, strerror(errno));
        return -EINVAL;
    }
    (void)len;
    return 0;
}

static int set_current(const char *dir, const char *name)
{
    char line[CONTEXT_NAME_MAX + 2];
    int n = snprintf(line, sizeof line, "%s\n", name);
    return write_file(dir, "current", line, (size_t)n);
}

/* One positional NAME and no flags but help; for use and remove. */
static int parse_name(cli_t *cli, int argc, char **argv, const char *usage, const char *help,
                      const char **name)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    args_t a;
    int opt;
    *name = NULL;
    args_init(&a, cli, argc, argv, none, usage);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(usage, help), CLI_STOP;
        if (*name)
            return cli_usage_error(usage, "unexpected argument '%s'", a.value);
        *name = a.value;
    }
    if (!*name)
        return cli_usage_error(usage, "missing context NAME");
    return 0;
}

int cmd_context_add(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {{"api", 0, true, OPT_API},
                                     {"key", 0, true, OPT_KEY},
                                     {"server-key", 0, true, OPT_SERVER_KEY},
                                     {"use", 0, false, OPT_USE},
                                     {NULL, 0, false, 0}};
    const char *name = NULL, *api = NULL, *key = NULL, *server = NULL;
    char key_abs[PATH_MAX] = "", server_abs[PATH_MAX] = "", dir[PATH_MAX];
    bool use = false;
    args_t a;
    int opt;
    /* --api, --key and --server-key are global flags too: this command's
     * own table comes first, so they are the context's here. */
    args_init(&a, cli, argc, argv, opts, ADD_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(ADD_USAGE, ADD_HELP);
        if (opt == OPT_API)
            api = a.value;
        else if (opt == OPT_KEY)
            key = a.value;
        else if (opt == OPT_SERVER_KEY)
            server = a.value;
        else if (opt == OPT_USE)
            use = true;
        else if (name)
            return cli_usage_error(ADD_USAGE, "unexpected argument '%s'", a.value);
        else
            name = a.value;
    }
    if (!name)
        return cli_usage_error(ADD_USAGE, "missing context NAME");
    if (!valid_name(name))
        return cli_usage_error(
            ADD_USAGE, "context name '%s': expected 1-%d of [A-Za-z0-9_.-], not starting with '.'",
            name, CONTEXT_NAME_MAX);
    if (!api || (strncmp(api, "ipc://", 6) != 0 && strncmp(api, "tcp://", 6) != 0))
        return cli_usage_error(ADD_USAGE, "--api expects ipc://PATH or tcp://HOST:PORT%s%s%s",
                               api ? ", got '" : "", api ? api : "", api ? "'" : "");
    if (key && absolute_file("--key", key, key_abs, sizeof key_abs) < 0)
        return CLI_EXIT_USAGE;
    if (server && absolute_file("--server-key", server, server_abs, sizeof server_abs) < 0)
        return CLI_EXIT_USAGE;
    if (make_dir(dir, sizeof dir) < 0)
        return CLI_EXIT_ERROR;

    char *text = NULL, file[CONTEXT_NAME_MAX + 32];
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return CLI_EXIT_ERROR;
    doc_t *j = doc_new_yaml(m);
    doc_object_begin(j);
    doc_field_str(j, "api", api);
    doc_field_str(j, "key", key_abs);
    doc_field_str(j, "server-key", server_abs);
    doc_object_end(j);
    doc_finish(&j);
    fclose(m);
    snprintf(file, sizeof file, "contexts/%s.yaml", name);
    int rc = write_file(dir, file, text, len);
    free(text);
    if (rc == 0 && use)
        rc = set_current(dir, name);
    if (rc < 0)
        return CLI_EXIT_ERROR;
    printf("saved context %s%s\n", name, use ? " (current)" : "");
    return CLI_EXIT_OK;
}

int cmd_context_use(cli_t *cli, int argc, char **argv)
{
    const char *name;
    char dir[PATH_MAX];
    context_t c;
    int rc = parse_name(cli, argc, argv, USE_USAGE, USE_HELP, &name);
    if (rc != 0)
        return cli_status(rc);
    rc = load(name, &c);
    context_free(&c);
    if (rc == -ENOENT) {
        log_error("no context '%s' (drover context list shows them)", name);
        return cli_set_failure(CLI_EXIT_NOT_FOUND), CLI_EXIT_ERROR;
    }
    if (rc < 0 || make_dir(dir, sizeof dir) < 0 || set_current(dir, name) < 0)
        return CLI_EXIT_ERROR;
    printf("using context %s\n", name);
    return CLI_EXIT_OK;
}

int cmd_context_remove(cli_t *cli, int argc, char **argv)
{
    const char *name;
    char dir[PATH_MAX], path[PATH_MAX + 128], current[128];
    int rc = parse_name(cli, argc, argv, REMOVE_USAGE, REMOVE_HELP, &name);
    if (rc != 0)
        return cli_status(rc);
    if (!valid_name(name) || config_dir(dir, sizeof dir) < 0)
        rc = -ENOENT;
    else {
        snprintf(path, sizeof path, "%s/contexts/%s.yaml", dir, name);
        rc = unlink(path) < 0 ? -errno : 0;
    }
    if (rc == -ENOENT) {
        log_error("no context '%s' (drover context list shows them)", name);
        return cli_set_failure(CLI_EXIT_NOT_FOUND), CLI_EXIT_ERROR;
    }
    if (rc < 0) {
        log_error("cannot remove %s: %s", path, strerror(-rc));
        return CLI_EXIT_ERROR;
    }
    read_current(current, sizeof current);
    if (strcmp(current, name) == 0) {
        snprintf(path, sizeof path, "%s/current", dir);
        unlink(path);
    }
    printf("removed context %s\n", name);
    return CLI_EXIT_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t context_names(char ***out)
{
    char dir[PATH_MAX], sub[PATH_MAX + 16];
    char **names = NULL;
    size_t n = 0;
    DIR *d = NULL;
    if (config_dir(dir, sizeof dir) == 0) {
        snprintf(sub, sizeof sub, "%s/contexts", dir);
        d = opendir(sub);
    }
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0 && e->d_name[0] != '.') {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xstrndup(e->d_name, len - 5);
        }
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    *out = names;
    return n;
}

int cmd_context_list(cli_t *cli, int argc, char **argv)
{
    cli_output_t out;
    char current[128];
    char **names = NULL;
    size_t n = 0;
    int rc = cli_output_only_args(cli, argc, argv, LIST_USAGE, LIST_HELP, &out);
    if (rc != 0)
        return cli_status(rc);
    read_current(current, sizeof current);
    n = context_names(&names);

    static const char *const headers[] = {"CURRENT", "NAME", "API", "KEY", "SERVER KEY"};
    table_t *t = out == CLI_OUT_TABLE || out == CLI_OUT_WIDE ? table_new(5, headers) : NULL;
    doc_t *j = cli_output_doc(out) ? cli_doc_writer(out) : NULL;
    if (j)
        doc_array_begin(j);
    for (size_t i = 0; i < n; i++) {
        context_t c;
        bool cur = strcmp(names[i], current) == 0;
        if (load(names[i], &c) < 0)
            continue;
        if (t) {
            table_add(t, cur ? "*" : "", NULL);
            table_add(t, names[i], NULL);
            table_add(t, c.api, NULL);
            table_add(t, c.key, NULL);
            table_add(t, c.server_key, NULL);
        } else if (j) {
            doc_object_begin(j);
            doc_field_str(j, "name", names[i]);
            doc_field_bool(j, "current", cur);
            doc_field_str(j, "api", c.api ? c.api : "");
            doc_field_str(j, "key", c.key ? c.key : "");
            doc_field_str(j, "server_key", c.server_key ? c.server_key : "");
            doc_object_end(j);
        } else {
            printf("%s\n", names[i]);
        }
        context_free(&c);
    }
    if (j) {
        doc_array_end(j);
        doc_finish(&j);
    }
    if (t) {
        table_print(t, stdout, 0, 0, false);
        table_destroy(&t);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return CLI_EXIT_OK;
}
