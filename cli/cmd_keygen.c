/* cmd_keygen — `drover keygen NAME`: a CURVE key pair for droverd, an
 * agent or a CLI user (common/keys.c), written 0600. Needs no droverd. */
#include "keys.h" /* czmq first */

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define KEYGEN_USAGE "drover keygen NAME [--dir DIR] [--role admin|submit|read]"
#define KEYGEN_HELP                                                                                \
    "Write a key pair: DIR/NAME.key (public: give it to droverd's authorized-keys\n"               \
    "directory for an agent, or api-keys for a CLI user) and DIR/NAME.key_secret\n"                \
    "(keep it on its machine). Both are mode 0600; existing files are not replaced.\n"             \
    "  --dir DIR    where to write them, made (0700) if missing [.]\n"                             \
    "  --role ROLE  for API users: admin (everything), submit (submit, watch, logs,\n"             \
    "               cancel own runs) or read (get, list, logs)\n"

enum { OPT_DIR = 1, OPT_ROLE };

int cmd_keygen(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {
        {"dir", 0, true, OPT_DIR}, {"role", 0, true, OPT_ROLE}, {NULL, 0, false, 0}};
    const char *name = NULL, *dir = ".", *role = NULL;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, KEYGEN_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(KEYGEN_USAGE, KEYGEN_HELP);
        if (opt == OPT_DIR)
            dir = a.value;
        else if (opt == OPT_ROLE)
            role = a.value;
        else if (name)
            return cli_usage_error(KEYGEN_USAGE, "unexpected argument '%s'", a.value);
        else
            name = a.value;
    }
    if (!name)
        return cli_usage_error(KEYGEN_USAGE, "missing NAME");
    if (!util_valid_name(name, strlen(name), 63, NULL))
        return cli_usage_error(KEYGEN_USAGE,
                               "bad NAME '%s' (1-63 of letters, digits, '_', '.', '-')", name);
    if (role && strcmp(role, "admin") && strcmp(role, "submit") && strcmp(role, "read"))
        return cli_usage_error(KEYGEN_USAGE, "--role must be admin, submit or read, not '%s'",
                               role);
    char err[512];
    int rc = util_mkdir_p(dir, 0700); /* a new directory of keys: private */
    if (rc < 0) {
        fprintf(stderr, "drover: error: cannot create key directory %s: %s\n", dir, strerror(-rc));
        return CLI_EXIT_ERROR;
    }
    if (keys_generate(dir, name, role, err, sizeof err) < 0) {
        fprintf(stderr, "drover: error: %s\n", err);
        return CLI_EXIT_ERROR;
    }
    printf("%s/%s.key\n%s/%s.key_secret\n", dir, name, dir, name);
    return CLI_EXIT_OK;
}
