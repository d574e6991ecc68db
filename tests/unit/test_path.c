/* test_path — the path check (common/path.c): what may be joined under a
 * directory. Every way out of it is refused (absolute, "..", "." and empty
 * components, a trailing '/'), names that merely contain dots are not, and
 * single components refuse '/' even when extra characters are allowed;
 * relative paths made absolute against the current directory.
 */
#include "helpers.h"

#include <unistd.h>

#include "path.h"

TestSuite(path, .timeout = 30);

Test(path, safe_relative_accepts_plain_paths)
{
    const char *ok[] = {"a",       "a/b",       "a/b/c.txt", "..a", "a..",
                        "a/..b/c", ".hidden/x", "a b/c",     "...", NULL};
    for (size_t i = 0; ok[i]; i++)
        cr_expect(path_is_safe_relative(ok[i]), "'%s' should be safe", ok[i]);
}

Test(path, safe_relative_refuses_every_way_out)
{
    const char *bad[] = {"",       "/",      "/etc/passwd", "..",    "../x", "a/..",
                         "a/../b", ".",      "./a",         "a/.",   "a//b", "a/",
                         "//a",    "a/b/..", "../..",       "x/./y", NULL};
    for (size_t i = 0; bad[i]; i++)
        cr_expect(!path_is_safe_relative(bad[i]), "'%s' should be refused", bad[i]);
    cr_expect(!path_is_safe_relative(NULL));
}

Test(path, component)
{
    cr_expect(path_is_component("r000001", 64, NULL));
    cr_expect(path_is_component("step[3]", 64, "[]"));
    cr_expect(path_is_component("a.b", 64, NULL));
    cr_expect(!path_is_component("step[3]", 64, NULL), "[] only when allowed");
    cr_expect(!path_is_component(".", 64, NULL));
    cr_expect(!path_is_component("..", 64, "[]"));
    cr_expect(!path_is_component("", 64, NULL));
    cr_expect(!path_is_component(NULL, 64, NULL));
    cr_expect(!path_is_component("a/b", 64, NULL));
    cr_expect(!path_is_component("a/b", 64, "/"), "a component never holds '/'");
    cr_expect(!path_is_component("abcdef", 5, NULL), "longer than max");
    cr_expect(path_is_component("abcde", 5, NULL));
}

Test(path, absolute)
{
    char *dir = h_tmpdir(), *real = realpath(dir, NULL);
    cr_assert_not_null(real);
    cr_assert_eq(chdir(real), 0);
    struct {
        const char *in, *want; /* want: relative to real, or absolute when it starts with '/' */
    } cases[] = {{"w1", "w1"}, {"./w1", "w1"},   {"a/b/", "a/b/"}, {"../x", "../x"},      {".", ""},
                 {"./", ""},   {"/etc", "/etc"}, {"/", "/"},       {"././k.key", "k.key"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = path_absolute(cases[i].in);
        char *want = cases[i].want[0] == '/' ? xstrdup(cases[i].want)
                     : cases[i].want[0]      ? xasprintf("%s/%s", real, cases[i].want)
                                             : xstrdup(real);
        cr_expect_str_eq(got, want, "'%s'", cases[i].in);
        free(got);
        free(want);
    }
    cr_assert_eq(chdir("/"), 0);
    char *top = path_absolute("etc");
    cr_expect_str_eq(top, "/etc", "no '//' at the root");
    free(top);
    rmdir(real);
    free(real);
    free(dir);
}
