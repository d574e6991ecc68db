/* image — see image.h.
 *
 * Three small pieces: a JSON reader (a DOM of at most JSON_MAX bytes and
 * JSON_DEPTH levels, enough for index, manifest and config documents), a
 * tar header scanner (ustar, GNU long names, pax paths and sizes,
 * symlinks, base-256 sizes), and the layer unpacker. A "source" hides
 * whether members come from a directory or from an archive: either way a
 * member is a (file, offset, size) triple.
 */
#include "image.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util.h"

#define JSON_MAX    (4 << 20)
#define JSON_DEPTH  64
#define TAR_MEMBERS 200000
#define MAX_LAYERS  256
#define CHUNK       (256 * 1024)
#define INDEX_DEPTH 4
#define LINK_HOPS   8
#define PASSWD_MAX  (1 << 20)

extern char **environ;

/* ------------------------------------------------------------ JSON */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype_t;

typedef struct json json_t;
struct json {
    jtype_t t;
    bool b;
    double n;
    char *s;    /* J_STR */
    json_t **v; /* J_ARR items, J_OBJ values */
    char **k;   /* J_OBJ keys */
    size_t count;
};

typedef struct {
    const char *p, *end;
    const char *err;
} jparser_t;

static void json_free(json_t *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->count; i++) {
        json_free(j->v[i]);
        if (j->k)
            free(j->k[i]);
    }
    free(j->v);
    free(j->k);
    free(j->s);
    free(j);
}

static void jskip(jparser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void put_utf8(char **o, unsigned cp)
{
    char *q = *o;
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xC0 | (cp >> 6));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18));
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* A string at ps->p (after the opening quote); NUL-terminated copy. */
static char *jstring(jparser_t *ps)
{
    const char *start = ps->p;
    size_t cap = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\')
            ps->p++;
        ps->p++;
        cap++;
    }
    if (ps->p >= ps->end) {
        ps->err = "unterminated string";
        return NULL;
    }
    char *out = xmalloc(cap * 4 + 1), *o = out;
    for (const char *p = start; p < ps->p; p++) {
        if (*p != '\\') {
            if ((unsigned char)*p < 0x20) {
                ps->err = "control character in string";
                free(out);
                return NULL;
            }
            *o++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (ps->p - p < 5 || hex4(p + 1, &cp) < 0)
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && ps->p - p >= 7 && p[1] == '\\' && p[2] == 'u' &&
                hex4(p + 3, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (cp == 0)
                goto bad; /* no NULs inside C strings */
            put_utf8(&o, cp);
            break;
        }
        default:
            goto bad;
        }
    }
    *o = '\0';
    ps->p++; /* closing quote */
    return out;
bad:
    ps->err = "bad escape in string";
    free(out);
    return NULL;
}

static json_t *jvalue(jparser_t *ps, int depth);

static json_t *jcontainer(jparser_t *ps, int depth, bool obj)
{
    json_t *j = xcalloc(1, sizeof *j);
    j->t = obj ? J_OBJ : J_ARR;
    size_t cap = 0;
    char close = obj ? '}' : ']';
    ps->p++;
    jskip(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return j;
    }
    for (;;) {
        char *key = NULL;
        jskip(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"') {
                ps->err = "expected a key";
                goto fail;
            }
            ps->p++;
            key = jstring(ps);
            if (!key)
                goto fail;
            jskip(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                ps->err = "expected ':'";
                goto fail;
            }
            ps->p++;
        }
        json_t *v = jvalue(ps, depth + 1);
        if (!v) {
            free(key);
            goto fail;
        }
        if (j->count == cap) {
            cap = cap ? cap * 2 : 8;
            j->v = xrealloc(j->v, cap * sizeof *j->v);
            if (obj)
                j->k = xrealloc(j->k, cap * sizeof *j->k);
        }
        j->v[j->count] = v;
        if (obj)
            j->k[j->count] = key;
        j->count++;
        jskip(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return j;
        }
        ps->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
        goto fail;
    }
fail:
    json_free(j);
    return NULL;
}

static json_t *jvalue(jparser_t *ps, int depth)
{
    if (depth > JSON_DEPTH) {
        ps->err = "nested too deeply";
        return NULL;
    }
    jskip(ps);
    if (ps->p >= ps->end) {
        ps->err = "unexpected end";
        return NULL;
    }
    char c = *ps->p;
    if (c == '{' || c == '[')
        return jcontainer(ps, depth, c == '{');
    json_t *j = xcalloc(1, sizeof *j);
    if (c == '"') {
        ps->p++;
        j->t = J_STR;
        j->s = jstring(ps);
        if (!j->s) {
            free(j);
            return NULL;
        }
        return j;
    }
    static const struct {
        const char *word;
        jtype_t t;
        bool b;
    } words[] = {{"true", J_BOOL, true}, {"false", J_BOOL, false}, {"null", J_NULL, false}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i].word, n) == 0) {
            ps->p += n;
            j->t = words[i].t;
            j->b = words[i].b;
            return j;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (ps->p < ps->end && n < sizeof buf - 1 && *ps->p && strchr("+-0123456789.eE", *ps->p))
            buf[n++] = *ps->p++;
        buf[n] = '\0';
        char *end;
        j->t = J_NUM;
        j->n = strtod(buf, &end);
        if (*end == '\0')
            return j;
    }
    ps->err = "unexpected character";
    free(j);
    return NULL;
}

/* Parse text; NULL with *why set on error. */
static json_t *json_parse(const char *text, size_t len, const char **why)
{
    jparser_t ps = {.p = text, .end = text + len, .err = NULL};
    json_t *j = jvalue(&ps, 0);
    if (j) {
        jskip(&ps);
        if (ps.p != ps.end) {
            ps.err = "trailing characters";
            json_free(j);
            j = NULL;
        }
    }
    *why = ps.err;
    return j;
}

static const json_t *jget(const json_t *j, const char *key)
{
    if (!j || j->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < j->count; i++)
        if (strcmp(j->k[i], key) == 0)
            return j->v[i];
    return NULL;
}

static const char *jstr(const json_t *j, const char *key)
{
    const json_t *v = jget(j, key);
    return v && v->t == J_STR ? v->s : NULL;
}

/* A JSON array of strings as a NULL-terminated vector (NULL if absent or
 * not such an array). */
static char **jstrv(const json_t *j)
{
    if (!j || j->t != J_ARR)
        return NULL;
    char **v = xcalloc(j->count + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < j->count; i++)
        if (j->v[i]->t == J_STR)
            v[n++] = xstrdup(j->v[i]->s);
    return v;
}

static void strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* ------------------------------------------------------------ tar scanning */

typedef struct {
    char *name;     /* normalized: no leading "./" or "/" */
    char *linkname; /* symlinks */
    uint64_t offset, size;
    char type; /* '0' file, '2' symlink, '5' dir, ... */
} member_t;

typedef struct {
    member_t *m;
    size_t count, cap;
} tarindex_t;

static uint64_t tar_number(const unsigned char *p, size_t n, bool *ok)
{
    uint64_t v = 0;
    *ok = true;
    if (p[0] & 0x80) { /* base-256 (GNU) for large sizes */
        for (size_t i = 1; i < n; i++)
            v = (v << 8) | p[i];
        return v;
    }
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\0'))
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    if (i < n && p[i] != ' ' && p[i] != '\0')
        *ok = false;
    return v;
}

static bool tar_checksum_ok(const unsigned char *h)
{
    bool ok;
    uint64_t want = tar_number(h + 148, 8, &ok);
    if (!ok)
        return false;
    uint64_t sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return sum == want;
}

static char *normalize_name(const char *in)
{
    while (in[0] == '.' && in[1] == '/')
        in += 2;
    while (in[0] == '/')
        in++;
    char *s = xstrdup(in);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

/* Parse pax records "len key=value\n" for path, linkpath and size. */
static void pax_parse(const char *data, size_t len, char **path, char **linkpath, uint64_t *size,
                      bool *have_size)
{
    const char *p = data, *end = data + len;
    while (p < end) {
        char *e;
        unsigned long rl = strtoul(p, &e, 10);
        if (e == p || *e != ' ' || rl == 0 || rl > (size_t)(end - p))
            return;
        const char *rec = e + 1, *rend = p + rl - 1; /* rend at '\n' */
        const char *eq = memchr(rec, '=', (size_t)(rend - rec));
        if (eq) {
            size_t kl = (size_t)(eq - rec);
            char *value = xstrndup(eq + 1, (size_t)(rend - eq - 1));
            if (kl == 4 && memcmp(rec, "path", 4) == 0) {
                free(*path);
                *path = value;
            } else if (kl == 8 && memcmp(rec, "linkpath", 8) == 0) {
                free(*linkpath);
                *linkpath = value;
            } else if (kl == 4 && memcmp(rec, "size", 4) == 0) {
                *size = strtoull(value, NULL, 10);
                *have_size = true;
                free(value);
            } else {
                free(value);
            }
        }
        p += rl;
    }
}

static void tarindex_free(tarindex_t *ti)
{
    for (size_t i = 0; i < ti->count; i++) {
        free(ti->m[i].name);
        free(ti->m[i].linkname);
    }
    free(ti->m);
    memset(ti, 0, sizeof *ti);
}

static int read_full_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* short: truncated */
        got += (size_t)n;
    }
    return 0;
}

/* Index the members of the tar at fd (size bytes). 0, or -1 with why. */
static int tar_scan(int fd, uint64_t size, tarindex_t *ti, char *why, size_t whylen)
{
    unsigned char h[512];
    uint64_t off = 0;
    char *long_name = NULL, *long_link = NULL, *pax_path = NULL, *pax_link = NULL;
    uint64_t pax_size = 0;
    bool have_pax_size = false;
    int rc = -1;
    if (size < 512) {
        snprintf(why, whylen, "not a tar archive (too short)");
        return -1;
    }
    if (read_full_at(fd, h, 2, 0) == 0 && h[0] == 0x1f && h[1] == 0x8b) {
        snprintf(why, whylen, "a gzip-compressed archive (decompress it first)");
        return -1;
    }
    for (;;) {
        if (off + 512 > size) {
            /* Archives may end without the two zero blocks; but a header
             * cut short is corruption. */
            if (off != size) {
                snprintf(why, whylen, "truncated tar archive at offset %" PRIu64, off);
                goto cleanup;
            }
            break;
        }
        int rrc = read_full_at(fd, h, 512, off);
        if (rrc < 0) {
            snprintf(why, whylen, "read at offset %" PRIu64 ": %s", off, strerror(-rrc));
            goto cleanup;
        }
        bool zero = true;
        for (int i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            break;
        if (!tar_checksum_ok(h)) {
            if (off == 0)
                snprintf(why, whylen, "not a tar archive (bad header checksum)");
            else
                snprintf(why, whylen,
                         "corrupt tar archive (bad header checksum at offset %" PRIu64 ")", off);
            goto cleanup;
        }
        bool ok;
        uint64_t msize = tar_number(h + 124, 12, &ok);
        if (!ok) {
            snprintf(why, whylen, "corrupt tar archive (bad size at offset %" PRIu64 ")", off);
            goto cleanup;
        }
        char type = (char)h[156];
        if (have_pax_size && type != 'x' && type != 'g')
            msize = pax_size;
        uint64_t data = off + 512;
        if (msize > size || data + msize > size) {
            snprintf(why, whylen,
                     "truncated tar archive (member at offset %" PRIu64 " runs past the end)", off);
            goto cleanup;
        }
        uint64_t next = data + ((msize + 511) & ~(uint64_t)511);
        if (type == 'L' || type == 'K' || type == 'x') {
            if (msize > 1 << 20) {
                snprintf(why, whylen, "corrupt tar archive (huge extended header)");
                goto cleanup;
            }
            char *buf = xmalloc(msize + 1);
            if (read_full_at(fd, buf, msize, data) < 0) {
                free(buf);
                snprintf(why, whylen, "truncated tar archive");
                goto cleanup;
            }
            buf[msize] = '\0';
            if (type == 'L') {
                free(long_name);
                long_name = buf;
            } else if (type == 'K') {
                free(long_link);
                long_link = buf;
            } else {
                pax_parse(buf, msize, &pax_path, &pax_link, &pax_size, &have_pax_size);
                free(buf);
            }
            off = next;
            continue;
        }
        if (type != 'g') {
            char name[257];
            if (memcmp(h + 257, "ustar", 6) == 0 && h[345]) /* POSIX only: GNU has no prefix */
                snprintf(name, sizeof name, "%.155s/%.100s", (const char *)h + 345,
                         (const char *)h + 0);
            else
                snprintf(name, sizeof name, "%.100s", (const char *)h);
            char link[101];
            snprintf(link, sizeof link, "%.100s", (const char *)h + 157);
            if (ti->count >= TAR_MEMBERS) {
                snprintf(why, whylen, "too many members (more than %d)", TAR_MEMBERS);
                goto cleanup;
            }
            if (ti->count == ti->cap) {
                ti->cap = ti->cap ? ti->cap * 2 : 64;
                ti->m = xrealloc(ti->m, ti->cap * sizeof *ti->m);
            }
            member_t *m = &ti->m[ti->count++];
            m->name = normalize_name(pax_path ? pax_path : long_name ? long_name : name);
            const char *ln = pax_link ? pax_link : long_link ? long_link : link;
            m->linkname = ln[0] ? xstrdup(ln) : NULL;
            m->offset = data;
            m->size = msize;
            m->type = type == '\0' ? '0' : type;
        }
        free(long_name);
        free(long_link);
        free(pax_path);
        free(pax_link);
        long_name = long_link = pax_path = pax_link = NULL;
        have_pax_size = false;
        off = next;
    }
    rc = 0;
cleanup:
    free(long_name);
    free(long_link);
    free(pax_path);
    free(pax_link);
    return rc;
}

/* ------------------------------------------------------------ sources */

typedef struct {
    char *root; /* directory, or the archive's path */
    bool is_tar;
    int fd; /* the archive */
    tarindex_t ti;
} source_t;

/* Join a symlink target to the directory of name ("a/b/c" + "../d" → "a/d"). */
static char *resolve_link(const char *name, const char *target)
{
    char *base;
    if (target[0] == '/') {
        base = xstrdup("");
    } else {
        const char *slash = strrchr(name, '/');
        base = slash ? xstrndup(name, (size_t)(slash - name)) : xstrdup("");
    }
    char *joined = xasprintf("%s%s%s", base, base[0] ? "/" : "", target);
    free(base);
    /* Collapse "." and ".." components. */
    char *out = xcalloc(strlen(joined) + 1, 1), *save = NULL;
    for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            char *s = strrchr(out, '/');
            if (s)
                *s = '\0';
            else
                out[0] = '\0';
            continue;
        }
        if (out[0])
            strcat(out, "/");
        strcat(out, c);
    }
    free(joined);
    return out;
}

/* Find a regular member (following symlinks inside the archive). */
static const member_t *find_member(const source_t *src, const char *name)
{
    char *want = normalize_name(name);
    const member_t *found = NULL;
    for (int hop = 0; hop <= LINK_HOPS; hop++) {
        found = NULL;
        for (size_t i = src->ti.count; i-- > 0;) /* the last one of a name wins */
            if (strcmp(src->ti.m[i].name, want) == 0) {
                found = &src->ti.m[i];
                break;
            }
        if (!found || found->type != '2' || !found->linkname)
            break;
        char *next = resolve_link(found->name, found->linkname);
        free(want);
        want = next;
        found = NULL;
    }
    free(want);
    return found && (found->type == '0' || found->type == '7') ? found : NULL;
}

/* Locate a member: the file to read and the byte range. 0 or -ENOENT. */
static int src_locate(const source_t *src, const char *name, char **path, uint64_t *offset,
                      uint64_t *size)
{
    if (strstr(name, "..") || name[0] == '/')
        return -EINVAL;
    if (src->is_tar) {
        const member_t *m = find_member(src, name);
        if (!m)
            return -ENOENT;
        *path = xstrdup(src->root);
        *offset = m->offset;
        *size = m->size;
        return 0;
    }
    char *p = xasprintf("%s/%s", src->root, name);
    struct stat st;
    int rc = stat(p, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EISDIR;
    if (rc < 0) {
        free(p);
        return rc;
    }
    *path = p;
    *offset = 0;
    *size = (uint64_t)st.st_size;
    return 0;
}

static bool src_has(const source_t *src, const char *name)
{
    char *path = NULL;
    uint64_t off, size;
    int rc = src_locate(src, name, &path, &off, &size);
    free(path);
    return rc == 0;
}

/* Read and parse a JSON member. NULL with err. */
static json_t *src_json(const source_t *src, const char *name, const char *what, char *err,
                        size_t errlen)
{
    char *path = NULL;
    uint64_t off, size;
    json_t *j = NULL;
    if (src_locate(src, name, &path, &off, &size) < 0) {
        snprintf(err, errlen, "%s %s is missing", what, name);
        return NULL;
    }
    if (size > JSON_MAX) {
        snprintf(err, errlen, "%s %s is too large (%" PRIu64 " bytes)", what, name, size);
        free(path);
        return NULL;
    }
    char *buf = xmalloc(size + 1);
    int fd = src->is_tar ? src->fd : open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : read_full_at(fd, buf, size, off);
    if (fd >= 0 && !src->is_tar)
        close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "read %s %s: %s", what, name, strerror(-rc));
        goto cleanup;
    }
    const char *why;
    j = json_parse(buf, size, &why);
    if (!j)
        snprintf(err, errlen, "%s %s is not valid JSON (%s)", what, name, why);
cleanup:
    free(buf);
    free(path);
    return j;
}

static void src_close(source_t *src)
{
    if (src->fd >= 0)
        close(src->fd);
    tarindex_free(&src->ti);
    free(src->root);
    memset(src, 0, sizeof *src);
    src->fd = -1;
}

/* ------------------------------------------------------------ images */

typedef struct {
    char digest[72]; /* "sha256:<64 hex>": the cache key */
    char *path;      /* file holding the blob */
    uint64_t offset, size;
    bool verify; /* the digest is the SHA-256 of the blob bytes */
} layer_t;

struct image {
    image_kind_t kind;
    char *ref;
    char *layers_dir; /* <cache>/layers/sha256 */
    char *rootfs;     /* IMAGE_ROOTFS_DIR */
    layer_t layers[MAX_LAYERS];
    size_t n_layers;
    image_config_t cfg;
};

static bool valid_digest(const char *d)
{
    if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static const char *host_arch(void)
{
    static struct utsname u;
    if (uname(&u) < 0)
        return "amd64";
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    if (strncmp(u.machine, "armv7", 5) == 0)
        return "arm";
    return u.machine;
}

static void load_config(image_t *img, const json_t *cfgdoc)
{
    const json_t *c = jget(cfgdoc, "config");
    if (!c)
        return;
    char **env = jstrv(jget(c, "Env"));
    if (env) {
        strv_free(img->cfg.env);
        img->cfg.env = env;
    }
    img->cfg.entrypoint = jstrv(jget(c, "Entrypoint"));
    img->cfg.cmd = jstrv(jget(c, "Cmd"));
    const char *wd = jstr(c, "WorkingDir"), *user = jstr(c, "User");
    if (wd && *wd)
        img->cfg.workdir = xstrdup(wd);
    if (user && *user)
        img->cfg.user = xstrdup(user);
}

static int add_layer(image_t *img, const source_t *src, const char *digest, const char *blob,
                     bool verify, char *err, size_t errlen)
{
    if (img->n_layers >= MAX_LAYERS) {
        snprintf(err, errlen, "more than %d layers", MAX_LAYERS);
        return -E2BIG;
    }
    if (!valid_digest(digest)) {
        snprintf(err, errlen, "unsupported layer digest '%s' (sha256 only)",
                 digest ? digest : "(none)");
        return -EINVAL;
    }
    layer_t *l = &img->layers[img->n_layers];
    if (src_locate(src, blob, &l->path, &l->offset, &l->size) < 0) {
        snprintf(err, errlen, "layer %s is missing (%s)", digest, blob);
        return -ENOENT;
    }
    snprintf(l->digest, sizeof l->digest, "%s", digest);
    l->verify = verify;
    img->n_layers++;
    return 0;
}

/* Pick the manifest for this machine out of an index's manifests. */
static const json_t *pick_manifest(const json_t *index, char *err, size_t errlen)
{
    const json_t *ms = jget(index, "manifests");
    if (!ms || ms->t != J_ARR || ms->count == 0) {
        snprintf(err, errlen, "index lists no manifests");
        return NULL;
    }
    if (ms->count == 1)
        return ms->v[0];
    const char *arch = host_arch();
    for (size_t i = 0; i < ms->count; i++) {
        const json_t *pf = jget(ms->v[i], "platform");
        const char *os = jstr(pf, "os"), *a = jstr(pf, "architecture");
        if (os && a && strcmp(os, "linux") == 0 && strcmp(a, arch) == 0)
            return ms->v[i];
    }
    /* No platform info (docker's export lists one manifest per tag): the
     * first one. */
    for (size_t i = 0; i < ms->count; i++)
        if (!jget(ms->v[i], "platform"))
            return ms->v[i];
    snprintf(err, errlen, "no manifest for linux/%s", arch);
    return NULL;
}

static char *blob_name(const char *digest)
{
    return xasprintf("blobs/sha256/%s", digest + 7);
}

static int open_oci(image_t *img, const source_t *src, char *err, size_t errlen)
{
    char sub[512];
    int rc = -EINVAL;
    json_t *index = src_json(src, "index.json", "index", err, errlen), *doc = NULL;
    json_t *manifest = NULL, *cfg = NULL;
    if (!index)
        return -EINVAL;
    const json_t *desc = NULL, *cur = index;
    for (int depth = 0;; depth++) {
        desc = pick_manifest(cur, err, errlen);
        if (!desc)
            goto cleanup;
        const char *digest = jstr(desc, "digest"), *mt = jstr(desc, "mediaType");
        if (!valid_digest(digest)) {
            snprintf(err, errlen, "manifest digest '%s' is not sha256:<hex>",
                     digest ? digest : "(none)");
            goto cleanup;
        }
        char *name = blob_name(digest);
        json_t *next = src_json(src, name, "manifest", sub, sizeof sub);
        free(name);
        if (!next) {
            snprintf(err, errlen, "%s", sub);
            goto cleanup;
        }
        bool is_index = (mt && strstr(mt, "index")) || (mt && strstr(mt, "manifest.list")) ||
                        jget(next, "manifests");
        if (!is_index) {
            manifest = next;
            break;
        }
        json_free(doc);
        doc = next;
        cur = doc;
        if (depth >= INDEX_DEPTH) {
            snprintf(err, errlen, "indexes nested too deeply");
            goto cleanup;
        }
    }
    const json_t *layers = jget(manifest, "layers");
    const char *cfg_digest = jstr(jget(manifest, "config"), "digest");
    if (!layers || layers->t != J_ARR) {
        snprintf(err, errlen, "manifest has no layers");
        goto cleanup;
    }
    if (valid_digest(cfg_digest)) {
        char *name = blob_name(cfg_digest);
        cfg = src_json(src, name, "config", err, errlen);
        free(name);
        if (!cfg)
            goto cleanup;
        load_config(img, cfg);
    }
    for (size_t i = 0; i < layers->count; i++) {
        const char *digest = jstr(layers->v[i], "digest");
        char *name = valid_digest(digest) ? blob_name(digest) : xstrdup("-");
        rc = add_layer(img, src, digest, name, true, err, errlen);
        free(name);
        if (rc < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    json_free(index);
    json_free(doc);
    json_free(manifest);
    json_free(cfg);
    return rc;
}

static int open_docker(image_t *img, const source_t *src, char *err, size_t errlen)
{
    int rc = -EINVAL;
    json_t *mf = src_json(src, "manifest.json", "manifest", err, errlen), *cfg = NULL;
    if (!mf)
        return -EINVAL;
    if (mf->t != J_ARR || mf->count == 0) {
        snprintf(err, errlen, "manifest.json lists no images");
        goto cleanup;
    }
    /* An archive of several images: the first one (like `docker load` of
     * one tag). */
    const json_t *entry = mf->v[0];
    const char *config = jstr(entry, "Config");
    const json_t *layers = jget(entry, "Layers");
    if (!config || !layers || layers->t != J_ARR) {
        snprintf(err, errlen, "manifest.json entry has no Config or Layers");
        goto cleanup;
    }
    cfg = src_json(src, config, "config", err, errlen);
    if (!cfg)
        goto cleanup;
    load_config(img, cfg);
    const json_t *diff_ids = jget(jget(cfg, "rootfs"), "diff_ids");
    if (!diff_ids || diff_ids->t != J_ARR || diff_ids->count != layers->count) {
        snprintf(err, errlen, "config %s: rootfs.diff_ids does not match the %zu layers", config,
                 layers->count);
        goto cleanup;
    }
    for (size_t i = 0; i < layers->count; i++) {
        const char *blob = layers->v[i]->t == J_STR ? layers->v[i]->s : NULL;
        const char *id = diff_ids->v[i]->t == J_STR ? diff_ids->v[i]->s : NULL;
        if (!blob) {
            snprintf(err, errlen, "manifest.json: layer %zu is not a path", i);
            goto cleanup;
        }
        /* diff_id = SHA-256 of the uncompressed layer tar, which is what
         * docker save writes: verifiable while streaming. */
        rc = add_layer(img, src, id, blob, true, err, errlen);
        if (rc < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    json_free(mf);
    json_free(cfg);
    return rc;
}

const char *image_kind_name(image_kind_t kind)
{
    switch (kind) {
    case IMAGE_ROOTFS_DIR:
        return "rootfs directory";
    case IMAGE_OCI_DIR:
        return "OCI layout";
    case IMAGE_OCI_TAR:
        return "OCI archive";
    case IMAGE_DOCKER_DIR:
        return "docker-save directory";
    case IMAGE_DOCKER_TAR:
        return "docker-save archive";
    }
    return "?";
}

image_t *image_open(const char *ref, const char *cache_dir, char *err, size_t errlen)
{
    char why[512] = "", real[PATH_MAX];
    source_t src = {.fd = -1};
    image_t *img = NULL;
    struct stat st;
    int rc = -EINVAL;

    if (!ref || !*ref) {
        snprintf(err, errlen, "image: empty reference");
        return NULL;
    }
    if (!realpath(ref, real) || stat(real, &st) < 0) {
        snprintf(err, errlen, "image %s: %s", ref, strerror(errno));
        return NULL;
    }
    img = xcalloc(1, sizeof *img);
    img->ref = xstrdup(real);
    img->cfg.env = xcalloc(1, sizeof *img->cfg.env);
    if (cache_dir)
        img->layers_dir = xasprintf("%s/layers/sha256", cache_dir);
    src.root = xstrdup(real);
    if (S_ISDIR(st.st_mode)) {
        if (src_has(&src, "index.json")) {
            img->kind = IMAGE_OCI_DIR;
        } else if (src_has(&src, "manifest.json")) {
            img->kind = IMAGE_DOCKER_DIR;
        } else {
            DIR *d = opendir(real);
            struct dirent *e;
            bool empty = true;
            while (d && (e = readdir(d)) != NULL)
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                    empty = false;
            if (d)
                closedir(d);
            if (empty) {
                snprintf(why, sizeof why,
                         "empty directory (not a rootfs, OCI layout or "
                         "docker-save directory)");
                goto cleanup;
            }
            if (strpbrk(real, ",:")) {
                snprintf(why, sizeof why, "a rootfs path must not contain ',' or ':'");
                goto cleanup;
            }
            img->kind = IMAGE_ROOTFS_DIR;
            img->rootfs = xstrdup(real);
            rc = 0;
            goto cleanup;
        }
    } else if (S_ISREG(st.st_mode)) {
        src.is_tar = true;
        src.fd = open(real, O_RDONLY | O_CLOEXEC);
        if (src.fd < 0) {
            snprintf(why, sizeof why, "%s", strerror(errno));
            goto cleanup;
        }
        if (tar_scan(src.fd, (uint64_t)st.st_size, &src.ti, why, sizeof why) < 0)
            goto cleanup;
        if (src_has(&src, "index.json")) {
            img->kind = IMAGE_OCI_TAR;
        } else if (src_has(&src, "manifest.json")) {
            img->kind = IMAGE_DOCKER_TAR;
        } else {
            snprintf(why, sizeof why,
                     "not an OCI layout or docker-save archive (no index.json or manifest.json)");
            goto cleanup;
        }
    } else {
        snprintf(why, sizeof why, "not a directory or a tar archive");
        goto cleanup;
    }
    if (img->kind == IMAGE_OCI_DIR || img->kind == IMAGE_OCI_TAR)
        rc = open_oci(img, &src, why, sizeof why);
    else
        rc = open_docker(img, &src, why, sizeof why);
    if (rc == 0 && img->n_layers == 0) {
        snprintf(why, sizeof why, "the image has no layers");
        rc = -EINVAL;
    }
cleanup:
    src_close(&src);
    if (rc < 0) {
        snprintf(err, errlen, "image %s: %s", ref, why[0] ? why : "cannot open");
        image_destroy(&img);
    }
    return img;
}

image_kind_t image_kind(const image_t *img)
{
    return img->kind;
}

const char *image_ref(const image_t *img)
{
    return img->ref;
}

const image_config_t *image_config(const image_t *img)
{
    return &img->cfg;
}

size_t image_layer_count(const image_t *img)
{
    return img->n_layers;
}

const char *image_layers_dir(const image_t *img)
{
    return img->layers_dir;
}

static bool layer_cached(const image_t *img, const layer_t *l)
{
    if (!img->layers_dir)
        return false;
    char *dir = xasprintf("%s/%s", img->layers_dir, l->digest + 7);
    struct stat st;
    bool ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    free(dir);
    return ok;
}

bool image_cached(const image_t *img)
{
    for (size_t i = 0; i < img->n_layers; i++)
        if (!layer_cached(img, &img->layers[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------ unpacking */

/* Turn OCI whiteouts into overlayfs ones under the directory fd dfd:
 * ".wh.NAME" → a 0/0 character device NAME; ".wh..wh..opq" → the
 * trusted.overlay.opaque xattr on the directory. */
static int convert_whiteouts(int dfd, int depth, char *why, size_t whylen)
{
    if (depth > 256)
        return 0;
    int dup_fd = dup(dfd);
    if (dup_fd < 0)
        return -errno;
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        close(dup_fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        if (strcmp(n, ".wh..wh..opq") == 0) {
            if (unlinkat(dfd, n, 0) < 0 ||
                fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0) {
                rc = -errno;
                snprintf(why, whylen, "opaque whiteout: %s", strerror(errno));
            }
            continue;
        }
        if (strncmp(n, ".wh.", 4) == 0) {
            const char *target = n + 4;
            if (unlinkat(dfd, n, 0) < 0) {
                rc = -errno;
                snprintf(why, whylen, "whiteout %.200s: %s", n, strerror(errno));
                continue;
            }
            /* The layer may also hold the name itself (it should not): the
             * whiteout wins over a file of the same layer. */
            unlinkat(dfd, target, 0);
            if (mknodat(dfd, target, S_IFCHR | 0000, makedev(0, 0)) < 0 && errno != EEXIST) {
                rc = -errno;
                snprintf(why, whylen, "whiteout %.200s: mknod: %s", target, strerror(errno));
            }
            continue;
        }
        if (e->d_type == DT_DIR) {
            int sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                continue;
            rc = convert_whiteouts(sub, depth + 1, why, whylen);
            close(sub);
        }
    }
    closedir(d);
    return rc;
}

static void last_line(const char *path, char *out, size_t outlen)
{
    char *text = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (util_read_file(path, 1 << 16, &text, &len) < 0)
        return;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    char *nl = strrchr(text, '\n');
    snprintf(out, outlen, "%s", nl ? nl + 1 : text);
    free(text);
}

static int write_all_sock(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Stream one blob into `tar -x` in tmp, hashing it on the way. */
static int unpack_layer(const image_t *img, const layer_t *l, const char *tmp,
                        bool (*cancelled)(void), char *why, size_t whylen)
{
    int rc = 0, fd = -1, sv[2] = {-1, -1};
    pid_t pid = -1;
    unsigned char *buf = xmalloc(CHUNK);
    char *errfile = xasprintf("%s.err", tmp);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);

    fd = open(l->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, whylen, "open %s: %s", l->path, strerror(errno));
        goto cleanup;
    }
    /* Sniff the compression from the first bytes. */
    size_t first = l->size < CHUNK ? (size_t)l->size : CHUNK;
    rc = read_full_at(fd, buf, first, l->offset);
    if (rc < 0) {
        snprintf(why, whylen, "read %s: %s", l->path, strerror(-rc));
        goto cleanup;
    }
    const char *zflag = NULL;
    if (first >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
        zflag = "-z";
    else if (first >= 4 && buf[0] == 0x28 && buf[1] == 0xb5 && buf[2] == 0x2f && buf[3] == 0xfd)
        zflag = "--zstd";
    else if (first >= 3 && memcmp(buf, "BZh", 3) == 0)
        zflag = "-j";
    else if (first >= 6 && memcmp(buf,
                                  "\xfd"
                                  "7zXZ",
                                  5) == 0)
        zflag = "-J";
    char *argv[12];
    int a = 0;
    argv[a++] = "tar";
    argv[a++] = "-x";
    argv[a++] = "--numeric-owner";
    argv[a++] = "--no-same-owner"; /* replaced below when root */
    if (geteuid() == 0)
        argv[a - 1] = "--same-owner";
    argv[a++] = "-p";
    if (zflag)
        argv[a++] = (char *)zflag;
    argv[a++] = "-f";
    argv[a++] = "-";
    argv[a++] = "-C";
    argv[a++] = (char *)tmp;
    argv[a] = NULL;
    /* A socket, not a pipe: if tar dies early, send() fails with EPIPE
     * (MSG_NOSIGNAL) instead of raising SIGPIPE in the caller. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        snprintf(why, whylen, "socketpair: %s", strerror(errno));
        goto cleanup;
    }
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int src = posix_spawnp(&pid, "tar", &fa, NULL, argv, environ);
    close(sv[1]);
    sv[1] = -1;
    if (src != 0) {
        rc = -src;
        pid = -1;
        snprintf(why, whylen, "cannot run tar: %s", strerror(src));
        goto cleanup;
    }
    uint64_t done = 0;
    bool tar_gone = false;
    while (done < l->size) {
        size_t want = l->size - done < CHUNK ? (size_t)(l->size - done) : CHUNK;
        if (done > 0 || want != first) {
            rc = read_full_at(fd, buf, want, l->offset + done);
            if (rc < 0) {
                snprintf(why, whylen, "read %s: %s", l->path, strerror(-rc));
                goto cleanup;
            }
        }
        EVP_DigestUpdate(md, buf, want);
        if (!tar_gone && write_all_sock(sv[0], buf, want) < 0)
            tar_gone = true; /* keep hashing: a digest mismatch explains more */
        done += want;
        if (cancelled && cancelled()) {
            rc = -ECANCELED;
            snprintf(why, whylen, "cancelled");
            goto cleanup;
        }
    }
    close(sv[0]);
    sv[0] = -1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_DigestFinal_ex(md, dig, &dlen);
    char hex[65];
    for (unsigned i = 0; i < 32 && i < dlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    /* A docker-save diff_id hashes the uncompressed tar: only checkable
     * here when the layer is stored uncompressed (as docker save does). */
    bool docker = img->kind == IMAGE_DOCKER_DIR || img->kind == IMAGE_DOCKER_TAR;
    bool verify = l->verify && !(docker && zflag);
    if (verify && strcmp(hex, l->digest + 7) != 0) {
        rc = -EBADMSG;
        snprintf(why, whylen, "layer %s: digest mismatch (corrupt image; got sha256:%.12s…)",
                 l->digest, hex);
        goto cleanup;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[256];
        last_line(errfile, line, sizeof line);
        rc = -EIO;
        snprintf(why, whylen, "layer %s: tar failed: %s", l->digest,
                 line[0] ? line : "(no message)");
        goto cleanup;
    }
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        snprintf(why, whylen, "open %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    char wwhy[256] = "";
    rc = convert_whiteouts(dfd, 0, wwhy, sizeof wwhy);
    close(dfd);
    if (rc < 0)
        snprintf(why, whylen, "layer %s: %s", l->digest, wwhy);
cleanup:
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (fd >= 0)
        close(fd);
    unlink(errfile);
    free(errfile);
    posix_spawn_file_actions_destroy(&fa);
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

int image_unpack(const image_t *img, bool (*cancelled)(void), char *err, size_t errlen)
{
    char why[512] = "";
    int rc = 0;
    if (img->kind == IMAGE_ROOTFS_DIR)
        return 0;
    if (!img->layers_dir) {
        snprintf(err, errlen, "image %s: no layer cache", img->ref);
        return -EINVAL;
    }
    rc = util_mkdir_p(img->layers_dir, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "image %s: mkdir %s: %s", img->ref, img->layers_dir, strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < img->n_layers; i++) {
        const layer_t *l = &img->layers[i];
        if (layer_cached(img, l))
            continue;
        char *final = xasprintf("%s/%s", img->layers_dir, l->digest + 7);
        char *tmp = xasprintf("%s/.tmp-%s-%d", img->layers_dir, l->digest + 7, (int)getpid());
        util_rm_rf(tmp);
        rc = mkdir(tmp, 0755) < 0 ? -errno : 0;
        if (rc < 0)
            snprintf(why, sizeof why, "mkdir %s: %s", tmp, strerror(-rc));
        if (rc == 0)
            rc = unpack_layer(img, l, tmp, cancelled, why, sizeof why);
        if (rc == 0 && rename(tmp, final) < 0) {
            /* Another attempt unpacked the same layer meanwhile: use it. */
            if (errno != EEXIST && errno != ENOTEMPTY) {
                rc = -errno;
                snprintf(why, sizeof why, "rename %s: %s", tmp, strerror(errno));
            }
        }
        util_rm_rf(tmp);
        free(tmp);
        free(final);
        if (rc < 0) {
            snprintf(err, errlen, "image %s: %s", img->ref, why);
            return rc;
        }
    }
    return 0;
}

char *image_lowerdirs(const image_t *img, bool relative)
{
    if (img->kind == IMAGE_ROOTFS_DIR)
        return xstrdup(img->rootfs);
    size_t cap = 1;
    for (size_t i = 0; i < img->n_layers; i++)
        cap += strlen(img->layers_dir) + 70;
    char *s = xcalloc(cap, 1);
    for (size_t i = img->n_layers; i-- > 0;) {
        size_t n = strlen(s);
        snprintf(s + n, cap - n, "%s%s%s%s", n ? ":" : "", relative ? "" : img->layers_dir,
                 relative ? "" : "/", img->layers[i].digest + 7);
    }
    return s;
}

/* ------------------------------------------------------------ users */

/* The path of a file in the image as the union would show it: the topmost
 * layer that has it (whiteouts are not followed: passwd files are not
 * deleted in practice). */
static char *image_file(const image_t *img, const char *rel)
{
    struct stat st;
    if (img->kind == IMAGE_ROOTFS_DIR) {
        char *p = xasprintf("%s/%s", img->rootfs, rel);
        if (stat(p, &st) == 0)
            return p;
        free(p);
        return NULL;
    }
    for (size_t i = img->n_layers; i-- > 0;) {
        char *p = xasprintf("%s/%s/%s", img->layers_dir, img->layers[i].digest + 7, rel);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            return p;
        free(p);
    }
    return NULL;
}

/* Find name in a passwd/group style file: field 2 (id) and, for passwd,
 * field 3 (primary gid). */
static int lookup_db(const image_t *img, const char *file, const char *name, unsigned *id,
                     unsigned *gid)
{
    char *path = image_file(img, file), *text = NULL;
    size_t len = 0;
    if (!path)
        return -ENOENT;
    int rc = util_read_file(path, PASSWD_MAX, &text, &len);
    free(path);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {NULL, NULL, NULL, NULL}, *fs = NULL;
        int k = 0;
        for (char *t = strtok_r(line, ":", &fs); t && k < 4; t = strtok_r(NULL, ":", &fs))
            f[k++] = t;
        if (k >= 3 && strcmp(f[0], name) == 0) {
            *id = (unsigned)strtoul(f[2], NULL, 10);
            if (gid && k >= 4)
                *gid = (unsigned)strtoul(f[3], NULL, 10);
            rc = 0;
            break;
        }
    }
    free(text);
    return rc;
}

/* The primary gid of uid in the image's /etc/passwd (unchanged if absent). */
static void lookup_uid_gid(const image_t *img, unsigned uid, unsigned *gid)
{
    char *path = image_file(img, "etc/passwd"), *text = NULL;
    size_t len = 0;
    if (!path || util_read_file(path, PASSWD_MAX, &text, &len) < 0) {
        free(path);
        return;
    }
    free(path);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {NULL, NULL, NULL, NULL}, *fs = NULL;
        int k = 0;
        for (char *t = strtok_r(line, ":", &fs); t && k < 4; t = strtok_r(NULL, ":", &fs))
            f[k++] = t;
        if (k == 4 && strtoul(f[2], NULL, 10) == uid) {
            *gid = (unsigned)strtoul(f[3], NULL, 10);
            break;
        }
    }
    free(text);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

int image_resolve_user(const image_t *img, const char *user, unsigned *uid, unsigned *gid)
{
    char *u = xstrdup(user), *g = strchr(u, ':');
    int rc = 0;
    if (g)
        *g++ = '\0';
    if (!*u || (g && !*g)) {
        rc = -EINVAL;
        goto cleanup;
    }
    *gid = 0;
    if (all_digits(u)) {
        *uid = (unsigned)strtoul(u, NULL, 10);
        if (!g && img) /* a bare uid: its primary group when the image knows it */
            lookup_uid_gid(img, *uid, gid);
    } else if (!img || (rc = lookup_db(img, "etc/passwd", u, uid, gid)) < 0) {
        rc = rc ? rc : -ENOENT;
        goto cleanup;
    }
    if (g) {
        if (all_digits(g))
            *gid = (unsigned)strtoul(g, NULL, 10);
        else if (!img || (rc = lookup_db(img, "etc/group", g, gid, NULL)) < 0)
            rc = rc ? rc : -ENOENT;
    }
cleanup:
    free(u);
    return rc;
}

int image_cache_clean(const char *cache_dir)
{
    char *dir = xasprintf("%s/layers/sha256", cache_dir);
    DIR *d = opendir(dir);
    int count = 0;
    if (!d) {
        free(dir);
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".tmp-", 5) != 0)
            continue;
        const char *dash = strrchr(e->d_name, '-');
        int pid = dash ? atoi(dash + 1) : 0;
        if (pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH))
            continue; /* its unpacker still runs */
        char *p = xasprintf("%s/%s", dir, e->d_name);
        if (util_rm_rf(p) == 0)
            count++;
        free(p);
    }
    closedir(d);
    free(dir);
    return count;
}

void image_destroy(image_t **imgp)
{
    if (!imgp || !*imgp)
        return;
    image_t *img = *imgp;
    for (size_t i = 0; i < img->n_layers; i++)
        free(img->layers[i].path);
    strv_free(img->cfg.env);
    strv_free(img->cfg.entrypoint);
    strv_free(img->cfg.cmd);
    free(img->cfg.workdir);
    free(img->cfg.user);
    free(img->rootfs);
    free(img->layers_dir);
    free(img->ref);
    free(img);
    *imgp = NULL;
}
