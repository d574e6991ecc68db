/* cmd_cache — `drover cache clear`: forget every cached step result, so
 * the next run of an identical step runs it again. Artifacts of existing
 * runs are untouched; only the lookup from a step's inputs to an earlier
 * result is dropped. */
#include <stdio.h>

#include "api.h"
#include "cli.h"

#define CLEAR_USAGE "drover cache clear"
#define CLEAR_HELP                                                                                 \
    "Clear the step cache: a step identical to one that already succeeded runs\n"                  \
    "again instead of reusing that step's outputs. Existing runs keep theirs.\n"

int cmd_cache_clear(cli_t *cli, int argc, char **argv)
{
    static const cli_opt_t none[] = {{NULL, 0, false, 0}};
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, none, CLEAR_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(CLEAR_USAGE, CLEAR_HELP);
        return cli_usage_error(CLEAR_USAGE, "unexpected argument '%s'", a.value);
    }

    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__Empty empty = DROVER__EMPTY__INIT;
    Drover__ApiResponse *resp = NULL;
    req.op_case = DROVER__API_REQUEST__OP_CLEAR_CACHE;
    req.clear_cache = &empty;
    if (api_call_once(cli->api, &req, &resp) < 0)
        return CLI_EXIT_ERROR;
    printf("cache cleared\n");
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}
