/* test_path — the path check (common/path.c): what may be joined under a
 * directory. Every way out of it is refused (absolute, "..", "." and empty
 * components, a trailing '/'), names that merely contain dots are not, and
 * single components refuse '/' even when extra characters are allowed.
 */
#include "helpers.h"

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
