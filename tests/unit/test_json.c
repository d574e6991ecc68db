/* test_json — the strict JSON list reader, json_text_member and the writer.
 *
 * Tables of good lists with the exact strings each element becomes
 * (unescaped strings, literal numbers, compact containers), tables of bad
 * texts with the byte offset and reason of each error, the depth and item
 * limits, round trips through json_text_quote/json_text_list_of, then a seeded fuzz:
 * every prefix of valid texts, mutations, and 3,000 random strings give 0
 * or a negative errno with a one-line message, never a crash (run it under
 * ASan/UBSan too).
 */
#include "helpers.h"

#include <errno.h>

#include "json.h"

#define ERRLEN 256

static char err[ERRLEN];

typedef struct {
    const char *text;
    size_t n;
    const char *items[8];
} good_t;

static const good_t GOOD[] = {
    {"[]", 0, {NULL}},
    {" \t\n\r[ \n ]\r\n ", 0, {NULL}},
    {"[\"a\"]", 1, {"a"}},
    {"[\"a\",\"b\" ,\n \"c\"]", 3, {"a", "b", "c"}},
    {"[\"\"]", 1, {""}},
    {"[1, -0, 0.5, -1.5e+10, 2E-3, 10, 0e0]",
     7,
     {"1", "-0", "0.5", "-1.5e+10", "2E-3", "10", "0e0"}},
    {"[true,false,null]", 3, {"true", "false", "null"}},
    {"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", 1, {"\"\\/\b\f\n\r\t"}},
    {"[\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"]", 1, {"A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}},
    {"[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]", 1, {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}},
    {"[{\"a\": 1, \"b\" : [true, {\"c\":\"d\"}]}]", 1, {"{\"a\":1,\"b\":[true,{\"c\":\"d\"}]}"}},
    {"[[], {}, [ ], { }]", 4, {"[]", "{}", "[]", "{}"}},
    /* containers are re-serialized: escapes normalized as json_text_quote does */
    {"[[\"x\\u0041\\n\\/\"]]", 1, {"[\"xA\\u000a/\"]"}},
    {"[[\"\\u0000\"]]", 1, {"[\"\\u0000\"]"}},
    {"[{\"k\\u00e9\": \"\\\"q\\\"\"}]", 1, {"{\"k\xc3\xa9\":\"\\\"q\\\"\"}"}},
    {"[\"a\", 1, [2], {\"b\": null}]", 4, {"a", "1", "[2]", "{\"b\":null}"}},
    {"[\"{{item}}\", \"[not json]\"]", 2, {"{{item}}", "[not json]"}},
};

typedef struct {
    const char *text;
    size_t off;
    const char *why;
} bad_t;

static const bad_t BAD[] = {
    {"", 0, "expected '[' (a JSON list), found end of text"},
    {"   ", 3, "expected '[' (a JSON list), found end of text"},
    {"{}", 0, "expected '[' (a JSON list), found '{'"},
    {"\"a\"", 0, "expected '['"},
    {"1", 0, "expected '['"},
    {"\xef\xbb\xbf[]", 0, "found byte 0xef"},
    {"[", 1, "expected a value, found end of text"},
    {"[1,]", 3, "expected a value, found ']'"},
    {"[,1]", 1, "expected a value, found ','"},
    {"[1 2]", 3, "expected ',' or ']', found '2'"},
    {"[1}", 2, "expected ',' or ']', found '}'"},
    {"[1]x", 3, "expected end of text after the list, found 'x'"},
    {"[1] [2]", 4, "expected end of text after the list"},
    {"[1]]", 3, "expected end of text after the list"},
    {"[01]", 1, "leading zeros"},
    {"[-01]", 1, "leading zeros"},
    {"[1.]", 3, "expected a digit after '.'"},
    {"[-]", 2, "expected a digit"},
    {"[+1]", 1, "expected a value, found '+'"},
    {"[.5]", 1, "expected a value, found '.'"},
    {"[1e]", 3, "expected a digit in the exponent"},
    {"[1e+]", 4, "expected a digit in the exponent"},
    {"[0x10]", 2, "expected ',' or ']', found 'x'"},
    {"[NaN]", 1, "expected a value, found 'N'"},
    {"[Infinity]", 1, "expected a value"},
    {"[tru]", 1, "expected a value, found 't'"},
    {"[True]", 1, "expected a value"},
    {"[nul]", 1, "expected a value"},
    {"[truex]", 5, "expected ',' or ']', found 'x'"},
    {"['a']", 1, "expected a value, found '''"},
    {"[\"abc]", 1, "unterminated string"},
    {"[\"a\nb\"]", 3, "control character 0x0a in a string"},
    {"[\"a\tb\"]", 3, "control character 0x09"},
    {"[\"\\x\"]", 2, "bad escape in a string: backslash then 'x'"},
    {"[\"\\", 2, "bad escape in a string: backslash then end of text"},
    {"[\"\\u12\"]", 2, "\\u needs four hex digits"},
    {"[\"\\u12g4\"]", 2, "\\u needs four hex digits"},
    {"[\"\\ud800\"]", 2, "unpaired surrogate \\ud800"},
    {"[\"\\udc00\"]", 2, "unpaired surrogate \\udc00"},
    {"[\"\\ud800\\u0041\"]", 2, "unpaired surrogate \\ud800"},
    {"[\"\\ud800\\ud800\"]", 2, "unpaired surrogate"},
    {"[\"x\\u0000\"]", 3, "\\u0000 (NUL) cannot be part of this value"},
    {"[\"\xff\"]", 2, "invalid UTF-8 in a string"},
    {"[\"\xc0\xaf\"]", 2, "invalid UTF-8"},         /* overlong '/' */
    {"[\"\xe0\x80\xaf\"]", 2, "invalid UTF-8"},     /* overlong, 3 bytes */
    {"[\"\xed\xa0\x80\"]", 2, "invalid UTF-8"},     /* UTF-8 surrogate */
    {"[\"\xf4\x90\x80\x80\"]", 2, "invalid UTF-8"}, /* above U+10FFFF */
    {"[\"ab\xe2\x82\"]", 4, "invalid UTF-8"},       /* truncated */
    {"[\"\x80\"]", 2, "invalid UTF-8"},             /* lone continuation */
    {"[{1:2}]", 2, "expected a string key, found '1'"},
    {"[{\"a\" 1}]", 6, "expected ':', found '1'"},
    {"[{\"a\":1,}]", 8, "expected a string key, found '}'"},
    {"[{\"a\":1 \"b\":2}]", 8, "expected ',' or '}', found '\"'"},
    {"[{\"a\":}]", 6, "expected a value, found '}'"},
    {"[[1, 2]", 7, "expected ',' or ']', found end of text"},
    {"[1,\n2 // c\n]", 6, "expected ',' or ']', found '/'"},
    {"[1,\x01]", 3, "expected a value, found byte 0x01"},
};

static void check_good(const good_t *g)
{
    char **items = (char **)0x1;
    size_t n = 99;
    int rc = json_text_list(g->text, strlen(g->text), 100, &items, &n, err, sizeof err);
    cr_assert_eq(rc, 0, "'%s' refused: %s", g->text, err);
    cr_assert_eq(n, g->n, "'%s': %zu items", g->text, n);
    if (n == 0)
        cr_assert_null(items);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(items[i], g->items[i], "'%s' item %zu", g->text, i);
    json_text_list_free(items, n);
}

Test(json, good_lists)
{
    for (size_t i = 0; i < sizeof GOOD / sizeof GOOD[0]; i++)
        check_good(&GOOD[i]);
}

Test(json, bad_lists)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char **items = (char **)0x1;
        size_t n = 99;
        const bad_t *b = &BAD[i];
        int rc = json_text_list(b->text, strlen(b->text), 100, &items, &n, err, sizeof err);
        cr_assert_eq(rc, -EINVAL, "case %zu '%s' accepted", i, b->text);
        cr_assert_null(items);
        cr_assert_eq(n, 0);
        char want[64];
        snprintf(want, sizeof want, "offset %zu: ", b->off);
        cr_assert(strncmp(err, want, strlen(want)) == 0, "case %zu: want '%s' got '%s'", i, want,
                  err);
        cr_assert(strstr(err, b->why), "case %zu: '%s' lacks '%s'", i, err, b->why);
    }
}

Test(json, exact_message)
{
    char **items;
    size_t n;
    const char *t = "[\"a\", \"b\", \"c\" \"d\"]";
    cr_assert_eq(json_text_list(t, strlen(t), 10, &items, &n, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "offset 15: expected ',' or ']', found '\"'");
}

Test(json, length_not_nul)
{
    /* text need not be NUL-terminated; a NUL inside len is an error */
    char **items;
    size_t n;
    cr_assert_eq(json_text_list("[1,2]garbage", 5, 10, &items, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 2);
    json_text_list_free(items, n);
    static const char nul[] = "[1,\0 2]";
    cr_assert_eq(json_text_list(nul, sizeof nul - 1, 10, &items, &n, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "offset 3: expected a value, found byte 0x00");
    static const char nul_str[] = "[\"a\0b\"]";
    cr_assert_eq(json_text_list(nul_str, sizeof nul_str - 1, 10, &items, &n, err, sizeof err),
                 -EINVAL);
    cr_assert_str_eq(err, "offset 3: control character 0x00 in a string (escape it)");
    /* the text stops at len even inside a string */
    cr_assert_eq(json_text_list("[\"abc\"]", 4, 10, &items, &n, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "offset 1: unterminated string");
    /* NULL text with len 0 is empty text */
    cr_assert_eq(json_text_list(NULL, 0, 10, &items, &n, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "offset 0: expected '[' (a JSON list), found end of text");
}

Test(json, bad_arguments_and_small_err)
{
    size_t n = 5;
    char **items = (char **)0x1;
    cr_assert_eq(json_text_list("[]", 2, 1, NULL, &n, err, sizeof err), -EINVAL);
    cr_assert_eq(n, 0);
    cr_assert_eq(json_text_list("[]", 2, 1, &items, NULL, err, sizeof err), -EINVAL);
    cr_assert_null(items);
    /* err may be NULL, and a short buffer is never overrun */
    cr_assert_eq(json_text_list("[x]", 3, 1, &items, &n, NULL, 0), -EINVAL);
    char small[10];
    memset(small, 'Z', sizeof small);
    cr_assert_eq(json_text_list("[x]", 3, 1, &items, &n, small, 6), -EINVAL);
    cr_assert_str_eq(small, "offse");
    cr_assert_eq(small[6], 'Z');
    cr_assert_eq(json_text_list("[1,2]", 5, 1, &items, &n, small, 6), -E2BIG);
    cr_assert_str_eq(small, "more ");
    json_text_list_free(NULL, 3);
}

Test(json, depth_limit)
{
    char buf[2 * (JSON_READ_MAX_DEPTH + 1) + 1];
    char **items;
    size_t n;
    /* exactly JSON_READ_MAX_DEPTH levels, the outer list included */
    size_t d = JSON_READ_MAX_DEPTH;
    memset(buf, '[', d);
    memset(buf + d, ']', d);
    cr_assert_eq(json_text_list(buf, 2 * d, 1, &items, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_eq(strlen(items[0]), 2 * (d - 1));
    json_text_list_free(items, n);
    d++;
    memset(buf, '[', d);
    memset(buf + d, ']', d);
    cr_assert_eq(json_text_list(buf, 2 * d, 1, &items, &n, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "offset 64: nesting deeper than 64 levels");
    /* objects count too */
    char obj[1024];
    size_t o = 0;
    obj[o++] = '[';
    for (int i = 0; i < JSON_READ_MAX_DEPTH; i++)
        o += (size_t)snprintf(obj + o, sizeof obj - o, "{\"k\":");
    cr_assert_eq(json_text_list(obj, o, 1, &items, &n, err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "nesting deeper than 64 levels"), "%s", err);
}

Test(json, item_limit)
{
    char **items;
    size_t n;
    cr_assert_eq(json_text_list("[1,2,3]", 7, 3, &items, &n, err, sizeof err), 0);
    cr_assert_eq(n, 3);
    json_text_list_free(items, n);
    cr_assert_eq(json_text_list("[1,2,3]", 7, 2, &items, &n, err, sizeof err), -E2BIG);
    cr_assert_str_eq(err, "more than 2 items");
    cr_assert_null(items);
    cr_assert_eq(n, 0);
    cr_assert_eq(json_text_list("[]", 2, 0, &items, &n, err, sizeof err), 0);
    cr_assert_eq(json_text_list("[[1,2,3]]", 9, 1, &items, &n, err, sizeof err), 0,
                 "only the outer list counts");
    json_text_list_free(items, n);
    cr_assert_eq(json_text_list("[1]", 3, 0, &items, &n, err, sizeof err), -E2BIG);
    cr_assert_str_eq(err, "more than 0 items");
    /* an earlier syntax error wins over the limit */
    cr_assert_eq(json_text_list("[1 x, 2, 3]", 11, 1, &items, &n, err, sizeof err), -EINVAL);

    /* 100,000 items */
    size_t cap = 100001 * 4 + 8, o = 0;
    char *big = malloc(cap);
    big[o++] = '[';
    for (int i = 0; i < 100000; i++)
        o += (size_t)snprintf(big + o, cap - o, "%s%d", i ? "," : "", i % 10);
    big[o++] = ']';
    cr_assert_eq(json_text_list(big, o, 100000, &items, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 100000);
    cr_assert_str_eq(items[99999], "9");
    json_text_list_free(items, n);
    cr_assert_eq(json_text_list(big, o, 99999, &items, &n, err, sizeof err), -E2BIG);
    free(big);
}

Test(json, quote)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", "\"\""},
        {"abc", "\"abc\""},
        {"a\"b\\c", "\"a\\\"b\\\\c\""},
        {"\n\t\x01\x1f", "\"\\u000a\\u0009\\u0001\\u001f\""},
        {"/ \x7f", "\"/ \x7f\""},
        {"\xc3\xa9\xf0\x9f\x98\x80", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
        {"a\xff"
         "b",
         "\"a\xef\xbf\xbd"
         "b\""},                                      /* invalid byte → U+FFFD */
        {"\xe2\x82", "\"\xef\xbf\xbd\xef\xbf\xbd\""}, /* truncated sequence */
        {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *q = json_text_quote(cases[i].in);
        cr_assert_str_eq(q, cases[i].out, "case %zu", i);
        free(q);
    }
    char *q = json_text_quote(NULL);
    cr_assert_str_eq(q, "null");
    free(q);
}

Test(json, list_of)
{
    char *vals[] = {"a", "b\"c", NULL, "{\"x\":1}"};
    char *s = json_text_list_of(vals, 4, false);
    cr_assert_str_eq(s, "[\"a\",\"b\\\"c\",null,\"{\\\"x\\\":1}\"]");
    free(s);
    s = json_text_list_of(vals + 3, 1, true);
    cr_assert_str_eq(s, "[{\"x\":1}]");
    free(s);
    s = json_text_list_of(NULL, 0, false);
    cr_assert_str_eq(s, "[]");
    free(s);
}

Test(json, round_trips)
{
    /* quoted: strings come back exactly */
    char *strs[] = {"",
                    "plain",
                    "q\"uote",
                    "back\\slash",
                    "nl\ncr\rtab\t",
                    "\x01\x02\x1f",
                    "{{item}}",
                    "\xc3\xa9t\xc3\xa9",
                    "\xf0\x9f\x98\x80",
                    "[1,2]",
                    "null",
                    "/"};
    size_t ns = sizeof strs / sizeof strs[0];
    char *text = json_text_list_of(strs, ns, false);
    char **items;
    size_t n;
    cr_assert_eq(json_text_list(text, strlen(text), 100, &items, &n, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(n, ns);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(items[i], strs[i]);
    /* and writing them again gives the same text */
    char *again = json_text_list_of(items, n, false);
    cr_assert_str_eq(again, text);
    free(again);
    json_text_list_free(items, n);
    free(text);

    /* raw: compact containers and literals come back as they went */
    const char *in =
        " [ {\"a\" : [1, 2.5e3, \"x\\ty\"]} , [ ] , 7 , true , {\"b\":{\"c\":null}} ] ";
    cr_assert_eq(json_text_list(in, strlen(in), 100, &items, &n, err, sizeof err), 0, "%s", err);
    text = json_text_list_of(items, n, true);
    cr_assert_str_eq(text, "[{\"a\":[1,2.5e3,\"x\\u0009y\"]},[],7,true,{\"b\":{\"c\":null}}]");
    char **items2;
    size_t n2;
    cr_assert_eq(json_text_list(text, strlen(text), 100, &items2, &n2, err, sizeof err), 0);
    cr_assert_eq(n2, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(items2[i], items[i]);
    json_text_list_free(items, n);
    json_text_list_free(items2, n2);
    free(text);

    /* random valid UTF-8 strings */
    uint64_t st = 0xabcdef12345ull;
    for (int iter = 0; iter < 500; iter++) {
        char s[64];
        size_t o = 0, want = h_rand(&st) % 40;
        while (o < want) {
            uint64_t r = h_rand(&st);
            switch (r % 4) {
            case 0:
                s[o++] = (char)(1 + (r >> 8) % 0x7f); /* any ASCII but NUL */
                break;
            case 1:
                s[o++] = "\"\\/\n{}[]"[(r >> 8) % 8];
                break;
            case 2:
                memcpy(s + o, "\xc3\xa9", 2);
                o += 2;
                break;
            default:
                memcpy(s + o, "\xf0\x9f\x98\x80", 4);
                o += 4;
                break;
            }
        }
        s[o] = '\0';
        char *one[] = {s};
        text = json_text_list_of(one, 1, false);
        cr_assert_eq(json_text_list(text, strlen(text), 1, &items, &n, err, sizeof err), 0,
                     "%s: %s", text, err);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(items[0], s);
        json_text_list_free(items, n);
        free(text);
    }
}

Test(json, object_get)
{
    const char *obj = "{\"a\":\"x\\ny\",\"b\":1,\"c\":[1, 2],\"d\":{\"e\":null},\"f\":true,"
                      "\"k\\u00e9\":\"v\",\"\":5,\"n\":\"\\u0000\",\"s\":\"\\u0041\"}";
    static const struct {
        const char *key, *value;
    } hits[] = {{"a", "x\ny"}, {"b", "1"},         {"c", "[1,2]"}, {"d", "{\"e\":null}"},
                {"f", "true"}, {"k\xc3\xa9", "v"}, {"", "5"},      {"s", "A"}};
    for (size_t i = 0; i < sizeof hits / sizeof hits[0]; i++) {
        char *v = (char *)0x1;
        cr_assert_eq(json_text_member(obj, hits[i].key, &v), 0, "key '%s'", hits[i].key);
        cr_assert_str_eq(v, hits[i].value);
        free(v);
    }
    char *v = (char *)0x1;
    cr_assert_eq(json_text_member(obj, "zz", &v), -ENOENT);
    cr_assert_null(v);
    cr_assert_eq(json_text_member(obj, "n", &v), -EINVAL, "NUL in the value");
    cr_assert_null(v);
    cr_assert_eq(json_text_member("{}", "a", &v), -ENOENT);
    cr_assert_eq(json_text_member(" { \"a\" : 1 } ", "a", &v), 0);
    cr_assert_str_eq(v, "1");
    free(v);
    /* a duplicate of the key asked for is ambiguous; of another is fine */
    cr_assert_eq(json_text_member("{\"a\":1,\"a\":2}", "a", &v), -EINVAL);
    cr_assert_eq(json_text_member("{\"a\":1,\"a\":2,\"b\":3}", "b", &v), 0);
    free(v);

    static const char *not_objects[] = {"",
                                        "[1]",
                                        "\"s\"",
                                        "1",
                                        "{",
                                        "{\"a\":1",
                                        "{\"a\":1}x",
                                        "{\"a\" 1}",
                                        "{a:1}",
                                        "{\"a\":1,}",
                                        "{\"a\":tru}",
                                        "{\"b\":[1,}",
                                        "{\"a\":1}{}",
                                        "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        v = (char *)0x1;
        cr_assert_eq(json_text_member(not_objects[i], "a", &v), -EINVAL, "'%s'", not_objects[i]);
        cr_assert_null(v);
    }
    cr_assert_eq(json_text_member(NULL, "a", &v), -EINVAL);
    cr_assert_eq(json_text_member("{}", NULL, &v), -EINVAL);
    cr_assert_eq(json_text_member("{}", "a", NULL), -EINVAL);
}

Test(json, object_get_of_list_items)
{
    /* the fan-out use: items of a list are objects, read a member of each */
    const char *t = "[{\"shard\": \"a\", \"rows\": 10}, {\"shard\": \"b\\u00e9\", \"rows\": 20}]";
    char **items;
    size_t n;
    cr_assert_eq(json_text_list(t, strlen(t), 10, &items, &n, err, sizeof err), 0);
    char *v;
    cr_assert_eq(json_text_member(items[1], "shard", &v), 0);
    cr_assert_str_eq(v, "b\xc3\xa9");
    free(v);
    cr_assert_eq(json_text_member(items[0], "rows", &v), 0);
    cr_assert_str_eq(v, "10");
    free(v);
    json_text_list_free(items, n);
}

/* ---- fuzz-style robustness ---- */

static void fuzz_one(const char *buf, size_t len)
{
    char **items = (char **)0x1;
    size_t n = 77;
    char e[128];
    memset(e, 0, sizeof e);
    int rc = json_text_list(buf, len, 50, &items, &n, e, sizeof e);
    cr_assert(rc == 0 || rc == -EINVAL || rc == -E2BIG, "rc %d", rc);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            cr_assert_not_null(items[i]);
        /* what came back re-reads: containers and literals as raw JSON */
        json_text_list_free(items, n);
    } else {
        cr_assert_null(items);
        cr_assert_eq(n, 0);
        cr_assert(rc == -E2BIG ? strncmp(e, "more than ", 10) == 0 : strncmp(e, "offset ", 7) == 0,
                  "bad message '%s'", e);
        cr_assert_null(strchr(e, '\n'), "message spans lines: %s", e);
    }
    /* the same bytes as an object, NUL-terminated */
    char *z = malloc(len + 1);
    memcpy(z, buf, len);
    z[len] = '\0';
    char *v = (char *)0x1;
    rc = json_text_member(z, "a", &v);
    cr_assert(rc == 0 || rc == -EINVAL || rc == -ENOENT, "rc %d", rc);
    if (rc == 0)
        free(v);
    else
        cr_assert_null(v);
    free(z);
}

Test(json, fuzz, .timeout = 120)
{
    static const char *bases[] = {
        "[\"a\", 1, -2.5e+3, true, false, null, [\"b\", {\"c\": [1, {}]}], {\"a\": \"x\\u00e9\\n"
        "\\ud83d\\ude00\"}, \"\xc3\xa9\"]",
        "{\"a\": [1, 2, {\"b\": \"\\\"\"}], \"c\": null, \"a2\": \"\\u0041\"}",
    };
    for (size_t b = 0; b < 2; b++) {
        size_t len = strlen(bases[b]);
        for (size_t n = 0; n <= len; n++)
            fuzz_one(bases[b], n);
    }
    /* the full list is valid, and only it among its prefixes */
    char **items;
    size_t n;
    cr_assert_eq(json_text_list(bases[0], strlen(bases[0]), 50, &items, &n, err, sizeof err), 0,
                 "%s", err);
    json_text_list_free(items, n);

    static const char *tokens[] = {
        "[",    "]",       "{",    "}",    ",",    ":",    "\"",      "\"a\"", "1",    "-",
        "0",    ".5",      "e",    "E+",   "true", "null", " ",       "\n",    "\\",   "\\u",
        "d83d", "\\ude00", "\xc3", "\xa9", "\xff", "\x00", "\"\\n\"", "[[[[",  "]]]]", "fals"};
    uint64_t st = 0x5eedf00dull;
    char buf[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        if (iter % 3 == 0) {
            len = (size_t)(h_rand(&st) % sizeof buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)(h_rand(&st) & 0xff);
        } else if (iter % 3 == 1) {
            size_t count = (size_t)(h_rand(&st) % 80);
            for (size_t t = 0; t < count; t++) {
                const char *tok = tokens[h_rand(&st) % (sizeof tokens / sizeof tokens[0])];
                size_t tl = tok[0] ? strlen(tok) : 1; /* "\x00" is one NUL byte */
                if (len + tl >= sizeof buf)
                    break;
                memcpy(buf + len, tok, tl);
                len += tl;
            }
        } else {
            /* a valid text with a few bytes changed */
            const char *base = bases[h_rand(&st) % 2];
            len = strlen(base);
            memcpy(buf, base, len);
            for (int k = 0, edits = 1 + (int)(h_rand(&st) % 3); k < edits; k++)
                buf[h_rand(&st) % len] = tokens[h_rand(&st) % 8][0];
        }
        fuzz_one(buf, len);
    }
}
