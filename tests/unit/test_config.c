/* test_config — `--config FILE` parsing.
 *
 * A good file hands every pair to apply in file order with '_' in keys
 * turned into '-'; errors (unknown key, bad value, nested or list values,
 * a top-level scalar, broken YAML, a missing file) come back as -errno and
 * a "FILE:LINE:COL: reason" message whose line is where the problem is.
 */
#include "helpers.h"

#include <errno.h>

#include "config.h"

static char *dir;
static char err[512];

typedef struct {
    char *keys[16];
    char *values[16];
    size_t n;
    int fail_with; /* apply returns this for key "bogus" / value "bad" */
} seen_t;

static void setup(void)
{
    dir = h_tmpdir();
    memset(err, 0, sizeof err);
}

static void teardown(void)
{
    util_rm_rf(dir);
    free(dir);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 30);

static void seen_free(seen_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->keys[i]);
        free(s->values[i]);
    }
}

/* Knows the settings the daemons have; "bad" is never a valid value. */
static int apply(const char *key, const char *value, void *arg)
{
    static const char *known[] = {"state-dir", "listen", "agent-timeout",
                                  "log-limit", "api",    "debug"};
    seen_t *s = arg;
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(key, known[i]) == 0)
            ok = true;
    if (!ok)
        return -ENOENT;
    if (strcmp(value, "bad") == 0)
        return -EINVAL;
    cr_assert_lt(s->n, 16);
    s->keys[s->n] = xstrdup(key);
    s->values[s->n] = xstrdup(value);
    s->n++;
    return 0;
}

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Load text, expecting failure rc with a message that starts
 * "PATH:LINE:" and contains want. */
static void expect_error(const char *text, int want_rc, int line, const char *want)
{
    char *path = write_file("bad.yaml", text);
    seen_t s = {0};
    int rc = config_load(path, apply, &s, err, sizeof err);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:%d:", path, line);
    free(path); /* free before asserting: a failure must not look like a leak */
    seen_free(&s);
    cr_assert_eq(rc, want_rc, "rc %d, want %d (err: %s) for:\n%s", rc, want_rc, err, text);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "message should start '%s': %s", prefix,
              err);
    cr_assert(strstr(err, want) != NULL, "message lacks '%s': %s", want, err);
}

Test(config, good_file_applies_every_pair_in_order)
{
    char *path = write_file("good.yaml", "# droverd settings\n"
                                         "state-dir: /var/lib/drover\n"
                                         "listen: tcp://0.0.0.0:7070\n"
                                         "agent_timeout: 5s\n"
                                         "log_limit: \"8388608\"\n"
                                         "\n"
                                         "api: 'ipc:///run/drover/api.sock'\n");
    seen_t s = {0};
    int rc = config_load(path, apply, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "config_load: %s", err);
    cr_assert_eq(s.n, 5);
    cr_assert_str_eq(s.keys[0], "state-dir");
    cr_assert_str_eq(s.values[0], "/var/lib/drover");
    cr_assert_str_eq(s.keys[1], "listen");
    cr_assert_str_eq(s.values[1], "tcp://0.0.0.0:7070");
    cr_assert_str_eq(s.keys[2], "agent-timeout", "'_' becomes '-'");
    cr_assert_str_eq(s.values[2], "5s");
    cr_assert_str_eq(s.keys[3], "log-limit");
    cr_assert_str_eq(s.values[3], "8388608");
    cr_assert_str_eq(s.keys[4], "api");
    cr_assert_str_eq(s.values[4], "ipc:///run/drover/api.sock");
    seen_free(&s);
    free(path);
}

Test(config, empty_file_applies_nothing)
{
    char *path = write_file("empty.yaml", "# nothing set\n");
    seen_t s = {0};
    cr_assert_eq(config_load(path, apply, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(s.n, 0);
    free(path);
}

Test(config, unknown_key_names_file_and_line)
{
    expect_error("listen: tcp://127.0.0.1:7070\n"
                 "bogus_setting: 1\n",
                 -ENOENT, 2, "unknown setting 'bogus-setting'");
}

Test(config, unknown_key_on_first_line)
{
    expect_error("bogus: 1\n", -ENOENT, 1, "bogus");
}

Test(config, pairs_before_an_error_were_applied_and_later_ones_not)
{
    char *path = write_file("partial.yaml", "listen: a\nbogus: 1\napi: b\n");
    seen_t s = {0};
    cr_assert_eq(config_load(path, apply, &s, err, sizeof err), -ENOENT);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.keys[0], "listen");
    seen_free(&s);
    free(path);
}

Test(config, bad_value_is_reported_with_key_and_value)
{
    expect_error("listen: x\n"
                 "\n"
                 "agent-timeout: bad\n",
                 -EINVAL, 3, "'bad'");
    cr_assert(strstr(err, "agent-timeout") != NULL, "names the key: %s", err);
}

Test(config, nested_value_is_refused)
{
    expect_error("listen: x\n"
                 "state-dir:\n"
                 "  path: /var/lib/drover\n",
                 -EINVAL, 3, "nested");
}

Test(config, flow_mapping_value_is_refused)
{
    expect_error("listen: {a: b}\n", -EINVAL, 1, "nested");
}

Test(config, list_value_is_refused)
{
    expect_error("state-dir: x\n"
                 "listen: [a, b]\n",
                 -EINVAL, 2, "plain value");
}

Test(config, alias_is_refused)
{
    expect_error("listen: &x tcp://a\n"
                 "api: *x\n",
                 -EINVAL, 2, "plain value");
}

Test(config, top_level_must_be_a_mapping)
{
    expect_error("just a string\n", -EINVAL, 1, "key: value");
}

Test(config, top_level_list_is_refused)
{
    expect_error("- listen\n- api\n", -EINVAL, 1, "plain value");
}

Test(config, broken_yaml_reports_position)
{
    expect_error("listen: x\n"
                 "api: \"unterminated\n",
                 -EINVAL, 3, "not YAML");
}

Test(config, bad_indentation_reports_position)
{
    expect_error("listen: x\n"
                 "  api: y\n"
                 "debug: 1\n",
                 -EINVAL, 2, "not YAML");
}

Test(config, missing_file_is_named)
{
    char *path = xasprintf("%s/does-not-exist.yaml", dir);
    seen_t s = {0};
    int rc = config_load(path, apply, &s, err, sizeof err);
    cr_assert_eq(rc, -ENOENT);
    cr_assert(strstr(err, path) != NULL, "message names the file: %s", err);
    cr_assert(strstr(err, "No such file") != NULL, "message says why: %s", err);
    cr_assert_eq(s.n, 0);
    free(path);
}

Test(config, directory_instead_of_file_is_an_error)
{
    seen_t s = {0};
    int rc = config_load(dir, apply, &s, err, sizeof err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, dir) != NULL, "message names the path: %s", err);
}

/* ---- nested values for the settings that take them (droverd's pools:) */

static int apply_nested(const char *key, const char *value, void *arg)
{
    seen_t *s = arg;
    if (strcmp(key, "pools") != 0 && strcmp(key, "listen") != 0)
        return -ENOENT;
    if (strstr(value, "\"bad\"")) {
        config_explain("pools[0]: max: not a number");
        return -EINVAL;
    }
    cr_assert_lt(s->n, 16);
    s->keys[s->n] = xstrdup(key);
    s->values[s->n] = xstrdup(value);
    s->n++;
    return 0;
}

static const char *const NESTED[] = {"pools", NULL};

Test(config, a_nested_setting_gets_its_value_as_json)
{
    char *path = write_file("pools.yaml", "listen: x\n"
                                          "pools:\n"
                                          "  - name: gpu\n"
                                          "    node: {cpu: 8, labels: {pool: train}}\n"
                                          "    provider:\n"
                                          "      args: [--a, \"b c\"]\n"
                                          "  - name: cpu\n");
    seen_t s = {0};
    int rc = config_load_nested(path, apply_nested, &s, NESTED, err, sizeof err);
    free(path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.keys[1], "pools");
    cr_assert_str_eq(s.values[1], "[{\"name\":\"gpu\",\"node\":{\"cpu\":\"8\",\"labels\":{\"pool\":"
                                  "\"train\"}},\"provider\":{\"args\":[\"--a\",\"b c\"]}},"
                                  "{\"name\":\"cpu\"}]");
    seen_free(&s);
}

Test(config, a_nested_value_elsewhere_is_still_refused)
{
    char *path = write_file("n.yaml", "listen: {a: b}\n");
    seen_t s = {0};
    cr_assert_eq(config_load_nested(path, apply_nested, &s, NESTED, err, sizeof err), -EINVAL);
    free(path);
    cr_assert(strstr(err, "nested") != NULL, "%s", err);
    cr_assert_eq(s.n, 0);
}

Test(config, a_refused_nested_value_says_why_and_where)
{
    char *path = write_file("n.yaml", "listen: x\npools:\n  - max: bad\n");
    seen_t s = {0};
    int rc = config_load_nested(path, apply_nested, &s, NESTED, err, sizeof err);
    char *want = xasprintf("%s:3:", path);
    free(path);
    seen_free(&s);
    cr_assert_eq(rc, -EINVAL);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    free(want);
    cr_assert(strstr(err, "bad value for 'pools': pools[0]: max: not a number") != NULL, "%s", err);
}

Test(config, nested_values_are_bounded_and_plain)
{
    char deep[256] = "pools: ";
    for (int i = 0; i < 20; i++)
        strcat(deep, "[");
    for (int i = 0; i < 20; i++)
        strcat(deep, "]");
    strcat(deep, "\n");
    const struct {
        const char *text;
        const char *want;
    } cases[] = {{deep, "nested more than 16 deep"},
                 {"pools: [{a: 1, a: 2}]\n", "'a' given twice"},
                 {"listen: &y 1\npools: [*y]\n", "alias"},
                 {"pools: [{[a]: 1}]\n", "a key must be a plain value"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *path = write_file("n.yaml", cases[i].text);
        seen_t s = {0};
        int rc = config_load_nested(path, apply_nested, &s, NESTED, err, sizeof err);
        free(path);
        seen_free(&s);
        cr_assert_lt(rc, 0, "case %zu", i);
        cr_assert(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
    }
}
