/* test_digest — SHA-256 content digests (common/digest.c).
 *
 * Known answers from FIPS 180-2 ("", "abc", the two-block message, a
 * million 'a'); incremental hashing in arbitrary pieces equals one-shot;
 * digest_file on a multi-MiB file that is not a multiple of its read size
 * equals digest_buffer and reports the size; errors for files that cannot
 * be read; hex round trip (lowercase out, either case in) and rejection of
 * anything that is not exactly 64 hex digits.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"

TestSuite(digest, .timeout = 60);

static void expect_hex(const uint8_t d[DIGEST_LEN], const char *want, const char *what)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    cr_assert_str_eq(hex, want, "%s: got %s", what, hex);
}

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_2BLK  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA_MILLA "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define MSG_2BLK  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

Test(digest, known_vectors_one_shot)
{
    uint8_t d[DIGEST_LEN];
    digest_buffer("", 0, d);
    expect_hex(d, SHA_EMPTY, "\"\"");
    digest_buffer("abc", 3, d);
    expect_hex(d, SHA_ABC, "\"abc\"");
    digest_buffer(MSG_2BLK, strlen(MSG_2BLK), d);
    expect_hex(d, SHA_2BLK, "two-block message");
    char *million = xmalloc(1000000);
    memset(million, 'a', 1000000);
    digest_buffer(million, 1000000, d);
    expect_hex(d, SHA_MILLA, "a million 'a'");
    free(million);
}

Test(digest, known_vectors_incremental)
{
    uint8_t d[DIGEST_LEN];
    digest_ctx_t *c = digest_begin();
    cr_assert_not_null(c);
    digest_final(c, d);
    expect_hex(d, SHA_EMPTY, "no update");

    c = digest_begin();
    digest_update(c, "a", 1);
    digest_update(c, "", 0);
    digest_update(c, "bc", 2);
    digest_final(c, d);
    expect_hex(d, SHA_ABC, "\"a\" + \"\" + \"bc\"");

    /* a million 'a' fed in uneven pieces */
    char buf[4099];
    memset(buf, 'a', sizeof buf);
    c = digest_begin();
    size_t left = 1000000, step = 1;
    while (left) {
        size_t n = step < left ? step : left;
        digest_update(c, buf, n);
        left -= n;
        step = step * 3 % sizeof buf + 1;
    }
    digest_final(c, d);
    expect_hex(d, SHA_MILLA, "a million 'a' in pieces");

    /* abort frees without a result; NULL is accepted */
    c = digest_begin();
    digest_update(c, "abc", 3);
    digest_abort(c);
    digest_abort(NULL);
}

Test(digest, incremental_equals_one_shot_on_random_data)
{
    uint64_t seed = 42;
    size_t len = 3 * 1024 * 1024 + 777;
    uint8_t *data = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)h_rand(&seed);
    uint8_t one[DIGEST_LEN], inc[DIGEST_LEN];
    digest_buffer(data, len, one);
    for (int round = 0; round < 4; round++) {
        digest_ctx_t *c = digest_begin();
        size_t off = 0;
        while (off < len) {
            size_t n = (size_t)(h_rand(&seed) % 200000);
            if (n > len - off)
                n = len - off;
            digest_update(c, data + off, n);
            off += n;
        }
        digest_final(c, inc);
        cr_assert_arr_eq(inc, one, DIGEST_LEN, "round %d: incremental != one-shot", round);
    }
    /* a single changed byte changes the digest */
    data[len / 2] ^= 1;
    digest_buffer(data, len, inc);
    cr_assert_arr_neq(inc, one, DIGEST_LEN);
    free(data);
}

static char *write_file(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}

Test(digest, file_equals_buffer)
{
    char *dir = h_tmpdir();
    uint64_t seed = 7;
    /* several MiB, not a multiple of the 1 MiB read size */
    size_t sizes[] = {5 * 1024 * 1024 + 12345, 1 << 20, (1 << 20) + 1, 1, 0};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t len = sizes[k];
        uint8_t *data = xmalloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            data[i] = (uint8_t)h_rand(&seed);
        char name[32];
        snprintf(name, sizeof name, "f%zu", k);
        char *path = write_file(dir, name, data, len);
        uint8_t want[DIGEST_LEN], got[DIGEST_LEN];
        uint64_t size = 12345678;
        digest_buffer(data, len, want);
        cr_assert_eq(digest_file(path, got, &size), 0, "digest_file(%s)", path);
        cr_assert_arr_eq(got, want, DIGEST_LEN, "file of %zu bytes", len);
        cr_assert_eq(size, len, "size %lu, want %zu", (unsigned long)size, len);
        free(path);
        free(data);
    }
    char *abc = write_file(dir, "abc", (const uint8_t *)"abc", 3);
    uint8_t d[DIGEST_LEN];
    uint64_t size = 0;
    cr_assert_eq(digest_file(abc, d, &size), 0);
    expect_hex(d, SHA_ABC, "file \"abc\"");
    cr_assert_eq(size, 3);
    free(abc);
    util_rm_rf(dir);
    free(dir);
}

Test(digest, file_errors)
{
    char *dir = h_tmpdir();
    uint8_t d[DIGEST_LEN];
    uint64_t size = 99;
    char *missing = xasprintf("%s/nope", dir);
    cr_assert_eq(digest_file(missing, d, &size), -ENOENT);
    cr_assert_eq(size, 99, "size untouched on failure");
    /* a directory opens but cannot be read */
    cr_assert_eq(digest_file(dir, d, &size), -EISDIR);
    cr_assert_eq(size, 99);
    if (geteuid() != 0) {
        char *locked = write_file(dir, "locked", (const uint8_t *)"x", 1);
        cr_assert_eq(chmod(locked, 0), 0);
        cr_assert_eq(digest_file(locked, d, &size), -EACCES);
        free(locked);
    }
    free(missing);
    util_rm_rf(dir);
    free(dir);
}

Test(digest, hex_round_trip)
{
    uint64_t seed = 1234;
    for (int round = 0; round < 100; round++) {
        uint8_t d[DIGEST_LEN], back[DIGEST_LEN];
        for (int i = 0; i < DIGEST_LEN; i++)
            d[i] = (uint8_t)h_rand(&seed);
        char hex[DIGEST_HEX_LEN + 1];
        memset(hex, 'X', sizeof hex);
        digest_hex(d, hex);
        cr_assert_eq(strlen(hex), DIGEST_HEX_LEN, "NUL-terminated at 64");
        for (int i = 0; i < DIGEST_HEX_LEN; i++)
            cr_assert(strchr("0123456789abcdef", hex[i]) != NULL, "'%c' is not lowercase hex",
                      hex[i]);
        cr_assert_eq(digest_from_hex(hex, back), 0);
        cr_assert_arr_eq(back, d, DIGEST_LEN);
        /* uppercase input is accepted too */
        for (int i = 0; i < DIGEST_HEX_LEN; i++)
            if (hex[i] >= 'a')
                hex[i] = (char)(hex[i] - 'a' + 'A');
        memset(back, 0, sizeof back);
        cr_assert_eq(digest_from_hex(hex, back), 0, "uppercase %s", hex);
        cr_assert_arr_eq(back, d, DIGEST_LEN);
    }
    uint8_t d[DIGEST_LEN];
    cr_assert_eq(digest_from_hex(SHA_ABC, d), 0);
    uint8_t abc[DIGEST_LEN];
    digest_buffer("abc", 3, abc);
    cr_assert_arr_eq(d, abc, DIGEST_LEN);
    uint8_t edge[DIGEST_LEN];
    memset(edge, 0, sizeof edge);
    edge[31] = 0xff;
    expect_hex(edge, "00000000000000000000000000000000000000000000000000000000000000ff",
               "zeros and 0xff");
}

Test(digest, bad_hex_is_rejected)
{
    uint8_t d[DIGEST_LEN];
    const char *bad[] = {
        "",
        "abc",
        SHA_ABC "0",                                                        /* 65 */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",  /* 63 */
        "ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", /* g */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a ", /* space */
        " a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015:d", /* ':' after '9' */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015@d", /* '@' before 'A' */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015`d", /* '`' before 'a' */
        "0xa7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
        "ba7816bf8f01cfea414140de5dae2223-00361a396177a9cb410ff61f20015ad",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(digest_from_hex(bad[i], d), -EINVAL, "accepted '%s'", bad[i]);
    /* a string with an embedded NUL is only its first part: too short */
    char nul[DIGEST_HEX_LEN + 1];
    memcpy(nul, SHA_ABC, sizeof nul);
    nul[10] = '\0';
    cr_assert_eq(digest_from_hex(nul, d), -EINVAL);
}
