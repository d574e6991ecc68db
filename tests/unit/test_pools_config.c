/* test_pools_config — `pools:` (scheduler/pools_config.c): what a good
 * list gives droverd, and that each mistake is named with its pool and key
 * (the text droverd prints before it refuses to start). */
#include "helpers.h"

#include <errno.h>

#include "scheduler.h"

static char err[512];

TestSuite(pools_config, .timeout = 30);

Test(pools_config, a_full_pool_from_yaml_strings_or_json_numbers)
{
    /* the config file hands every scalar over as a string; --pools may use numbers */
    const char *texts[] = {
        "[{\"name\":\"gpu-spot\",\"node\":{\"cpu\":\"8\",\"memory\":\"60Gi\",\"gpu\":\"1\","
        "\"labels\":{\"gpu.model\":\"A10G\",\"pool\":\"train\"}},\"spot\":\"true\",\"price\":"
        "\"0.45\",\"min\":\"0\",\"max\":\"20\",\"idle\":\"10m\",\"boot_timeout\":\"5m\","
        "\"fallback\":\"od\",\"provider\":{\"command\":\"/usr/lib/drover/providers/aws\","
        "\"args\":[\"--launch-template\",\"lt-123\"],\"timeout\":\"2m\"}},"
        "{\"name\":\"od\",\"node\":{\"cpu\":\"8\"},\"max\":\"2\",\"provider\":{\"command\":\"/"
        "x\"}}]",
        "[{\"name\":\"gpu-spot\",\"node\":{\"cpu\":8,\"memory\":\"60Gi\",\"gpu\":1,"
        "\"labels\":{\"gpu.model\":\"A10G\",\"pool\":\"train\"}},\"spot\":true,\"price\":0.45,"
        "\"min\":0,\"max\":20,\"idle\":\"10m\",\"boot-timeout\":\"5m\",\"fallback\":\"od\","
        "\"provider\":{\"command\":\"/usr/lib/drover/providers/aws\",\"args\":"
        "[\"--launch-template\",\"lt-123\"],\"timeout\":\"2m\"}},"
        "{\"name\":\"od\",\"node\":{\"cpu\":8},\"max\":2,\"provider\":{\"command\":\"/x\"}}]"};
    for (size_t k = 0; k < 2; k++) {
        pool_config_t *p;
        size_t n;
        cr_assert_eq(pools_config_parse(texts[k], &p, &n, err, sizeof err), 0, "%s", err);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(p[0].name, "gpu-spot");
        cr_assert_eq(p[0].cpu_milli, 8000);
        cr_assert_eq(p[0].memory_bytes, 60ull << 30);
        cr_assert_eq(p[0].gpus, 1);
        cr_assert_eq(p[0].n_labels, 2);
        cr_assert(p[0].spot);
        cr_assert_float_eq(p[0].price, 0.45, 1e-9);
        cr_assert_eq(p[0].min, 0);
        cr_assert_eq(p[0].max, 20);
        cr_assert_eq(p[0].idle_ms, 600000);
        cr_assert_eq(p[0].boot_timeout_ms, 300000);
        cr_assert_str_eq(p[0].fallback, "od");
        cr_assert_str_eq(p[0].command, "/usr/lib/drover/providers/aws");
        cr_assert_eq(p[0].n_args, 2);
        cr_assert_str_eq(p[0].args[1], "lt-123");
        cr_assert_eq(p[0].call_timeout_ms, 120000);
        /* defaults */
        cr_assert_eq(p[1].idle_ms, 600000);
        cr_assert_eq(p[1].boot_timeout_ms, 600000);
        cr_assert_eq(p[1].call_timeout_ms, 300000);
        cr_assert(!p[1].spot);
        cr_assert_null(p[1].fallback);
        pools_config_free(p, n);
    }
}

Test(pools_config, each_mistake_names_the_pool_and_the_key)
{
#define POOL(extra)                                                                                \
    "{\"name\":\"a\",\"node\":{\"cpu\":4},\"max\":2,\"provider\":{\"command\":\"/x\"}" extra "}"
    const struct {
        const char *text, *want;
    } cases[] = {
        {"{}", "pools: expected a list"},
        {"[1", "pools: not JSON"},
        {"[3]", "pools[0]: expected a mapping"},
        {"[{\"node\":{\"cpu\":4}}]", "pools[0]: name: missing"},
        {"[{\"name\":\"a b\"}]", "pools[0]: name: expected 1-48"},
        {"[" POOL(",\"idel\":\"5m\"") "]",
         "pools[0] (a): idel: unknown key (did you mean 'idle'?)"},
        {"[" POOL(",\"min\":3") "]",
         "pools[0] (a): max: 2: must be at least 1 and at least min (3)"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":4},\"max\":\"-1\",\"provider\":{\"command\":\"/x\"}}]",
         "pools[0] (a): max: expected a whole number"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":0},\"max\":1,\"provider\":{\"command\":\"/x\"}}]",
         "pools[0] (a): node.cpu"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":1,\"memory\":\"lots\"},\"max\":1,\"provider\":"
         "{\"command\":\"/x\"}}]",
         "pools[0] (a): node.memory: expected a size"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":1,\"labels\":{\"k\":\"v w\"}},\"max\":1,"
         "\"provider\":{\"command\":\"/x\"}}]",
         "pools[0] (a): node.labels: 'k' is not a label"},
        {"[" POOL(",\"price\":\"-1\"") "]", "pools[0] (a): price"},
        {"[" POOL(",\"spot\":\"maybe\"") "]", "pools[0] (a): spot: expected true or false"},
        {"[" POOL(",\"idle\":\"soon\"") "]", "pools[0] (a): idle: expected a duration"},
        {"[" POOL(",\"fallback\":\"a\"") "]", "pools[0] (a): fallback: 'a' is this pool"},
        {"[" POOL(",\"fallback\":\"b\"") "]", "pools[0] (a): fallback: 'b' is no other pool"},
        {"[" POOL("") "," POOL("") "]", "pools[1] (a): name: a pool of that name is pools[0]"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":4},\"max\":2,\"provider\":{\"command\":\"x\"}}]",
         "pools[0] (a): provider.command: expected the provider program's absolute path"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":4},\"max\":2}]", "pools[0] (a): provider: missing"},
        {"[{\"name\":\"a\",\"node\":{\"cpu\":4},\"max\":2,\"provider\":{\"command\":\"/x\","
         "\"args\":[{}]}}]",
         "pools[0] (a): provider.args: item 0 is not a plain value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pool_config_t *p = (pool_config_t *)1;
        size_t n = 7;
        memset(err, 0, sizeof err);
        int rc = pools_config_parse(cases[i].text, &p, &n, err, sizeof err);
        cr_assert_eq(rc, -EINVAL, "case %zu: %s", i, cases[i].text);
        cr_assert_null(p, "case %zu", i);
        cr_assert_eq(n, 0, "case %zu", i);
        cr_assert(strstr(err, cases[i].want) != NULL, "case %zu: want '%s', got '%s'", i,
                  cases[i].want, err);
    }
}

Test(pools_config, bounds_hold_for_hostile_input)
{
    /* 65 pools, a huge max, 33 labels: refused, not allocated without end */
    char *many = xstrdup("[");
    for (int i = 0; i < 65; i++) {
        char *next = xasprintf("%s%s{\"name\":\"p%d\",\"node\":{\"cpu\":1},\"max\":1,"
                               "\"provider\":{\"command\":\"/x\"}}",
                               many, i ? "," : "", i);
        free(many);
        many = next;
    }
    char *text = xasprintf("%s]", many);
    free(many);
    pool_config_t *p;
    size_t n;
    cr_assert_eq(pools_config_parse(text, &p, &n, err, sizeof err), -EINVAL);
    free(text);
    cr_assert(strstr(err, "at most 64 pools") != NULL, "%s", err);
    cr_assert_eq(pools_config_parse("[{\"name\":\"a\",\"node\":{\"cpu\":1},\"max\":99999999999,"
                                    "\"provider\":{\"command\":\"/x\"}}]",
                                    &p, &n, err, sizeof err),
                 -EINVAL);
    cr_assert(strstr(err, "max") != NULL, "%s", err);
}
