/* cmd_tokens — join tokens (README "Join tokens") and API tokens (README
 * "API tokens"): `drover token create` (the token is printed once, on
 * stdout alone, for a script to hand to a new node or a CI job): with
 * --pool a join token, with NAME --role an API token; `drover token
 * revoke ID|NAME` (a join token admits no one more, and the keys it
 * admitted are revoked; an API token's next request is refused) and
 * `drover tokens` (every token of both kinds without its secret: state
 * valid / expired / used / revoked, the nodes a join token admitted, an
 * API token's role and last use). All three need role admin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "doc.h"
#include "fmt.h"
#include "table.h"
#include "units.h"
#include "util.h"

enum { OPT_OUTPUT = 1, OPT_POOL, OPT_TTL, OPT_USES, OPT_PREFIX, OPT_NODE, OPT_ROLE };

#define CREATE_USAGE                                                                               \
    "drover token create --pool NAME --ttl DUR [--uses N] [--name-prefix P | --node NAME]\n"       \
    "       drover token create NAME --role read|submit|admin [--ttl DUR]"
#define CREATE_HELP                                                                                \
    "Make a join token (admin): a node started with `drover-agent --join-token TOKEN`\n"           \
    "makes its own key pair and droverd authorizes that key for the node's name.\n"                \
    "  --pool NAME         the pool the nodes join (recorded with the token)\n"                    \
    "  --ttl DUR           how long it may be used (e.g. 1h, 30m)\n"                               \
    "  --uses N            how many nodes it may admit [1]\n"                                      \
    "  --name-prefix P     only node names starting with P\n"                                      \
    "  --node NAME         only the node named NAME (bound to it)\n"                               \
    "\n"                                                                                           \
    "Or make an API token NAME (admin): a request carrying it (drover --token TOKEN,\n"            \
    "$DROVER_TOKEN, drover-web's Authorization: Bearer) acts as NAME with the role:\n"             \
    "  --role ROLE         read (look), submit (also run and cancel its own runs) or\n"            \
    "                      admin (everything)\n"                                                   \
    "  --ttl DUR           how long it is valid [no expiry]\n"                                     \
    "\n"                                                                                           \
    "Either token is printed once, on stdout alone, and stored only as a hash.\n"
#define REVOKE_USAGE "drover token revoke ID|NAME"
#define REVOKE_HELP                                                                                \
    "Revoke a token (admin). Join token ID: it admits no one more, and the keys of\n"              \
    "the nodes it admitted are revoked (a connected one is dropped at once). API\n"                \
    "token ID or NAME: its very next request is refused.\n"
#define LIST_USAGE "drover tokens [-o " CLI_OUTPUTS "]"
#define LIST_HELP                                                                                  \
    "List join and API tokens (admin), never their secrets: kind, state (valid,\n"                 \
    "expired, used, revoked), expiry; a join token's pool, uses left and the nodes it\n"           \
    "admitted; an API token's name, role and last use.\n" CLI_OUTPUT_HELP

static int call(cli_t *cli, Drover__TokenRequest *tr, Drover__ApiResponse **resp)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    req.op_case = DROVER__API_REQUEST__OP_TOKEN;
    req.token = tr;
    return api_call_once(cli->api, &req, resp);
}

/* `drover token create NAME --role R [--ttl DUR]`. */
static int create_api_token(cli_t *cli, Drover__TokenRequest *tr)
{
    if (!*tr->name)
        return cli_usage_error(CREATE_USAGE, "missing the API token's NAME");
    if (!*tr->role)
        return cli_usage_error(CREATE_USAGE, "missing --role read|submit|admin");
    if (*tr->pool || tr->uses || *tr->name_prefix || *tr->node)
        return cli_usage_error(CREATE_USAGE,
                               "--pool, --uses, --name-prefix and --node are for join tokens, "
                               "not API tokens");
    Drover__ApiResponse *resp = NULL;
    if (call(cli, tr, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("%s\n", resp->token ? resp->token : "");
    if (resp->n_tokens && resp->tokens[0]->record) {
        const Drover__TokenRecord *r = resp->tokens[0]->record;
        char buf[FMT_BUF];
        fprintf(stderr, "API token %s '%s', role %s, %s%s (shown only now)\n", r->id, r->name,
                r->role, r->expires_ms ? "expires " : "no expiry",
                r->expires_ms ? fmt_local_time(r->expires_ms, buf) : "");
    }
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_token_create(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {
        {"pool", 0, true, OPT_POOL}, {"ttl", 0, true, OPT_TTL},
        {"uses", 0, true, OPT_USES}, {"name-prefix", 0, true, OPT_PREFIX},
        {"node", 0, true, OPT_NODE}, {"role", 0, true, OPT_ROLE},
        {NULL, 0, false, 0}};
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    tr.op = DROVER__TOKEN_OP__TOKEN_CREATE;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, CREATE_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(CREATE_USAGE, CREATE_HELP);
        if (opt == OPT_POOL)
            tr.pool = (char *)a.value;
        else if (opt == OPT_TTL) {
            if (spec_parse_duration(a.value, &tr.ttl_ms) < 0 || tr.ttl_ms == 0)
                return cli_usage_error(
                    CREATE_USAGE, "--ttl expects a duration such as 1h or 30m, got '%s'", a.value);
        } else if (opt == OPT_USES) {
            char *end;
            unsigned long n = strtoul(a.value, &end, 10);
            if (!*a.value || *end || n == 0 || n > 100000 || a.value[0] == '-')
                return cli_usage_error(
                    CREATE_USAGE, "--uses expects a number from 1 to 100000, got '%s'", a.value);
            tr.uses = (uint32_t)n;
        } else if (opt == OPT_PREFIX)
            tr.name_prefix = (char *)a.value;
        else if (opt == OPT_NODE)
            tr.node = (char *)a.value;
        else if (opt == OPT_ROLE) {
            if (strcmp(a.value, "read") && strcmp(a.value, "submit") && strcmp(a.value, "admin"))
                return cli_usage_error(CREATE_USAGE,
                                       "--role expects read, submit or admin, got '%s'", a.value);
            tr.role = (char *)a.value;
        } else if (opt == ARGS_POSITIONAL && !*tr.name)
            tr.name = (char *)a.value;
        else
            return cli_usage_error(CREATE_USAGE, "unexpected argument '%s'", a.value);
    }
    if (*tr.name || *tr.role)
        return create_api_token(cli, &tr);
    if (!*tr.pool)
        return cli_usage_error(CREATE_USAGE, "missing --pool NAME");
    if (!tr.ttl_ms)
        return cli_usage_error(CREATE_USAGE, "missing --ttl DUR");
    if (*tr.node && *tr.name_prefix)
        return cli_usage_error(CREATE_USAGE, "--node and --name-prefix exclude each other");
    Drover__ApiResponse *resp = NULL;
    if (call(cli, &tr, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("%s\n", resp->token ? resp->token : "");
    if (resp->n_tokens && resp->tokens[0]->record) {
        char buf[FMT_BUF];
        fprintf(stderr, "join token %s for pool %s: %u uses, expires %s (shown only now)\n",
                resp->tokens[0]->record->id, resp->tokens[0]->record->pool,
                resp->tokens[0]->record->uses,
                fmt_local_time(resp->tokens[0]->record->expires_ms, buf));
    }
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cmd_token_revoke(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t opts[] = {{NULL, 0, false, 0}};
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    tr.op = DROVER__TOKEN_OP__TOKEN_REVOKE;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, opts, REVOKE_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(REVOKE_USAGE, REVOKE_HELP);
        if (*tr.id)
            return cli_usage_error(REVOKE_USAGE, "unexpected argument '%s'", a.value);
        tr.id = (char *)a.value;
    }
    if (!*tr.id)
        return cli_usage_error(REVOKE_USAGE, "missing token ID or NAME");
    Drover__ApiResponse *resp = NULL;
    if (call(cli, &tr, &resp) < 0)
        return CLI_EXIT_ERROR;
    const Drover__TokenRecord *r = resp->n_tokens ? resp->tokens[0]->record : NULL;
    if (r && strcmp(resp->tokens[0]->kind, "api") == 0)
        printf("revoked API token %s '%s'\n", r->id, r->name);
    else
        printf("revoked join token %s (and the keys of the nodes it admitted)\n", tr.id);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

static char *admitted_list(const Drover__TokenRecord *r)
{
    size_t len = 1;
    for (size_t i = 0; i < r->n_admitted; i++)
        len += strlen(r->admitted[i]->name) + 1;
    char *out = xcalloc(1, len);
    for (size_t i = 0; i < r->n_admitted; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, r->admitted[i]->name);
    }
    return out;
}

static void print_table(const Drover__ApiResponse *resp, bool wide)
{
    static const char *const headers[] = {"ID",        "KIND",      "NAME",    "ROLE",  "POOL",
                                          "STATE",     "USES LEFT", "EXPIRES", "NODES", "NAMES",
                                          "LAST USED", "BY",        "CREATED"};
    table_t *t = table_new(wide ? 13 : 10, headers);
    char buf[FMT_BUF];
    for (size_t i = 0; i < resp->n_tokens; i++) {
        const Drover__TokenRecord *r = resp->tokens[i]->record;
        if (!r)
            continue;
        bool api = strcmp(resp->tokens[i]->kind, "api") == 0;
        table_add(t, r->id, NULL);
        table_add(t, api ? "api" : "join", NULL);
        table_add(t, api ? r->name : "-", NULL);
        table_add(t, api ? r->role : "-", NULL);
        table_add(t, api ? "-" : r->pool, NULL);
        const char *st = resp->tokens[i]->state;
        table_add(t, st, strcmp(st, "valid") == 0 ? "32" : "33");
        if (api)
            table_add(t, "-", NULL);
        else
            table_addf(t, "%u/%u", r->uses_left, r->uses);
        table_add(t, api && !r->expires_ms ? "never" : fmt_local_time(r->expires_ms, buf), NULL);
        if (api) {
            table_add(t, "-", NULL);
            table_add(t, "-", NULL);
            if (wide) {
                table_add(t, fmt_local_time(r->last_used_ms, buf), NULL);
                table_add(t, r->created_by, NULL);
                table_add(t, fmt_local_time(r->created_ms, buf), NULL);
            }
            continue;
        }
        char *nodes = admitted_list(r);
        table_add(t, *nodes ? nodes : "-", NULL);
        free(nodes);
        if (r->bound_name && *r->bound_name)
            table_add(t, r->bound_name, NULL);
        else if (r->name_prefix && *r->name_prefix)
            table_addf(t, "%s*", r->name_prefix);
        else
            table_add(t, "*", NULL);
        if (wide) {
            table_add(t, "-", NULL);
            table_add(t, r->created_by, NULL);
            table_add(t, fmt_local_time(r->created_ms, buf), NULL);
        }
    }
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
}

static void doc_token(doc_t *j, const Drover__TokenView *v)
{
    const Drover__TokenRecord *r = v->record;
    doc_object_begin(j);
    doc_field_str(j, "id", r->id);
    doc_field_str(j, "kind", v->kind);
    doc_field_str(j, "name", r->name);
    doc_field_str(j, "role", r->role);
    doc_field_time(j, "last_used", r->last_used_ms);
    doc_field_str(j, "pool", r->pool);
    doc_field_str(j, "state", v->state);
    doc_field_uint(j, "uses", r->uses);
    doc_field_uint(j, "uses_left", r->uses_left);
    doc_field_time(j, "created", r->created_ms);
    doc_field_time(j, "expires", r->expires_ms);
    doc_field_str(j, "created_by", r->created_by);
    doc_field_bool(j, "revoked", r->revoked);
    doc_field_str(j, "name_prefix", r->name_prefix);
    doc_field_str(j, "bound_name", r->bound_name);
    doc_key(j, "admitted");
    doc_array_begin(j);
    for (size_t i = 0; i < r->n_admitted; i++) {
        doc_object_begin(j);
        doc_field_str(j, "name", r->admitted[i]->name);
        doc_field_str(j, "key", r->admitted[i]->key);
        doc_field_time(j, "at", r->admitted[i]->at_ms);
        doc_object_end(j);
    }
    doc_array_end(j);
    doc_object_end(j);
}

int cmd_tokens(cli_t *cli, int argc, char **argv)
{
    cli_output_t out;
    int rc = cli_output_only_args(cli, argc, argv, LIST_USAGE, LIST_HELP, &out);
    if (rc != 0)
        return cli_status(rc);
    Drover__TokenRequest tr = DROVER__TOKEN_REQUEST__INIT;
    tr.op = DROVER__TOKEN_OP__TOKEN_LIST;
    Drover__ApiResponse *resp = NULL;
    if (call(cli, &tr, &resp) < 0)
        return CLI_EXIT_ERROR;
    if (out == CLI_OUT_TABLE || out == CLI_OUT_WIDE) {
        print_table(resp, out == CLI_OUT_WIDE);
    } else if (out == CLI_OUT_NAME) {
        for (size_t i = 0; i < resp->n_tokens; i++)
            printf("%s\n", resp->tokens[i]->record ? resp->tokens[i]->record->id : "");
    } else {
        doc_t *j = cli_doc_writer(out);
        doc_array_begin(j);
        for (size_t i = 0; i < resp->n_tokens; i++)
            if (resp->tokens[i]->record)
                doc_token(j, resp->tokens[i]);
        doc_array_end(j);
        doc_finish(&j);
    }
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}
