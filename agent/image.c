/* image — see image.h.
 *
 * Three pieces, each on a library: the image's JSON documents (index,
 * manifest, config) are read with jansson; an image archive (an OCI or
 * docker-save tar) is indexed and read with libarchive; and each layer is
 * streamed through libarchive's tar reader into archive_write_disk, hashed
 * on the way (common/digest.h). A "source" hides whether members come from
 * a directory or from an archive: either way a member is a file, plus for
 * an archive the index of its entry.
 *
 * Layers are untrusted input unpacked as root. The extraction refuses, and
 * fails the whole layer with an error naming the entry, anything that
 * would leave the layer directory: ".." components, absolute paths, paths
 * through a symlink, hard links out of the layer (libarchive's
 * ARCHIVE_EXTRACT_SECURE_* flags, which also check hard link targets), and
 * whiteouts of "." or "..". Device nodes are skipped, never created (the
 * runtime gives a container its own /dev; a block device in a layer would
 * be a way to the host's disks). Extended attributes, ACLs and file flags
 * are not restored (as `tar -x` did not): a trusted.overlay.* xattr from a
 * layer would steer overlayfs. Owners are restored by number (root only),
 * modes and times always.
 */
#include "image.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "digest.h"
/* the runtime layer's helpers (rt_strv_free): image is part of it */
#define RT_DRIVER_INTERNAL
#include "runtime.h"
#include "util.h"

#define JSON_MAX    (4 << 20)
#define TAR_MEMBERS 200000
#define MAX_LAYERS  256
#define CHUNK       (256 * 1024)
#define INDEX_DEPTH 4
#define LINK_HOPS   8
#define PASSWD_MAX  (1 << 20)

/* Control characters (an entry name is any bytes) as '?': an error
 * message is one line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* ------------------------------------------------------------ JSON */

static const char *jstr(const json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* A JSON array of strings as a NULL-terminated vector (NULL if absent or
 * not such an array; other items are left out). rt_strv_free. */
static char **jstrv(const json_t *j)
{
    if (!json_is_array(j))
        return NULL;
    char **v = xcalloc(json_array_size(j) + 1, sizeof *v);
    size_t n = 0, i;
    const json_t *item;
    json_array_foreach(j, i, item)
    {
        if (json_is_string(item))
            v[n++] = xstrdup(json_string_value(item));
    }
    return v;
}

/* ------------------------------------------------------------ archives */

/* One entry of an image archive. */
typedef struct {
    char *name;     /* normalized: no leading "./" or "/", no trailing "/" */
    char *linkname; /* symlink target, or hard link target (normalized) */
    bool hardlink;
    mode_t type; /* AE_IFREG, AE_IFLNK, AE_IFDIR, ... */
    uint64_t size;
} member_t;

typedef struct {
    member_t *m; /* m[i] is the archive's entry number i */
    size_t count, cap;
} tarindex_t;

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

static void tarindex_free(tarindex_t *ti)
{
    for (size_t i = 0; i < ti->count; i++) {
        free(ti->m[i].name);
        free(ti->m[i].linkname);
    }
    free(ti->m);
    memset(ti, 0, sizeof *ti);
}

/* A reader for the uncompressed tar at path (image archives are never
 * compressed: see tar_scan). NULL with why. */
static struct archive *tar_open(const char *path, char *why, size_t whylen)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, CHUNK) != ARCHIVE_OK) {
        snprintf(why, whylen, "%s", archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Index the entries of the tar at path (size bytes on disk): names,
 * types, links and sizes, skipping over the data. 0, or -1 with why. */
static int tar_scan(const char *path, uint64_t size, tarindex_t *ti, char *why, size_t whylen)
{
    unsigned char magic[2] = {0, 0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, magic, 2);
        close(fd);
        if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
            snprintf(why, whylen, "a gzip-compressed archive (decompress it first)");
            return -1;
        }
    }
    if (size < 512) {
        snprintf(why, whylen, "not a tar archive (too short)");
        return -1;
    }
    char msg[256];
    struct archive *a = tar_open(path, msg, sizeof msg);
    if (!a) {
        snprintf(why, whylen, "not a tar archive (%s)", msg);
        return -1;
    }
    int rc = -1;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            const char *m = archive_error_string(a);
            if (ti->count == 0)
                snprintf(why, whylen, "not a tar archive (%s)", m ? m : "unreadable");
            else
                snprintf(why, whylen, "corrupt or truncated tar archive after entry %zu (%s)",
                         ti->count, m ? m : "unreadable");
            goto cleanup;
        }
        /* Only the headers are read here: an entry whose data would run
         * past the end of the file is a cut archive. */
        uint64_t data = (uint64_t)archive_filter_bytes(a, 0);
        int64_t esize = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (esize < 0 || data + (uint64_t)esize > size) {
            snprintf(why, whylen, "truncated tar archive (entry %.200s runs past the end)",
                     archive_entry_pathname(e) ? archive_entry_pathname(e) : "?");
            goto cleanup;
        }
        if (ti->count >= TAR_MEMBERS) {
            snprintf(why, whylen, "too many members (more than %d)", TAR_MEMBERS);
            goto cleanup;
        }
        if (ti->count == ti->cap) {
            ti->cap = ti->cap ? ti->cap * 2 : 64;
            ti->m = xrealloc(ti->m, ti->cap * sizeof *ti->m);
        }
        member_t *m = &ti->m[ti->count++];
        const char *name = archive_entry_pathname(e), *hl = archive_entry_hardlink(e);
        const char *sl = archive_entry_symlink(e);
        m->name = normalize_name(name ? name : "");
        m->hardlink = hl != NULL;
        m->linkname = hl ? normalize_name(hl) : sl ? xstrdup(sl) : NULL;
        m->type = archive_entry_filetype(e);
        m->size = (uint64_t)esize;
    }
    rc = 0;
cleanup:
    archive_read_free(a);
    return rc;
}

/* A reader of one blob: a whole plain file, or entry `member` of the tar
 * archive at path. */
typedef struct {
    int fd;
    struct archive *ar;
} blob_t;

/* 0, or -errno with why. */
static int blob_open(blob_t *b, const char *path, long member, char *why, size_t whylen)
{
    b->fd = -1;
    b->ar = NULL;
    if (member < 0) {
        b->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (b->fd < 0) {
            snprintf(why, whylen, "open %s: %s", path, strerror(errno));
            return -errno;
        }
        return 0;
    }
    char msg[256];
    b->ar = tar_open(path, msg, sizeof msg);
    if (!b->ar) {
        snprintf(why, whylen, "%s: %s", path, msg);
        return -EIO;
    }
    for (long i = 0; i <= member; i++) {
        struct archive_entry *e;
        if (archive_read_next_header(b->ar, &e) < ARCHIVE_WARN) {
            const char *m = archive_error_string(b->ar);
            snprintf(why, whylen, "%s: entry %ld: %s", path, member, m ? m : "missing");
            archive_read_free(b->ar);
            b->ar = NULL;
            return -EIO;
        }
    }
    return 0;
}

/* Up to len bytes; 0 at the end; -errno with why. */
static ssize_t blob_read(blob_t *b, void *buf, size_t len, char *why, size_t whylen)
{
    if (b->ar) {
        la_ssize_t n = archive_read_data(b->ar, buf, len);
        if (n < 0) {
            snprintf(why, whylen, "read: %s", archive_error_string(b->ar));
            return -EIO;
        }
        return n;
    }
    for (;;) {
        ssize_t n = read(b->fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            snprintf(why, whylen, "read: %s", strerror(errno));
        return n < 0 ? -errno : n;
    }
}

static void blob_close(blob_t *b)
{
    if (b->fd >= 0)
        close(b->fd);
    if (b->ar)
        archive_read_free(b->ar);
    b->fd = -1;
    b->ar = NULL;
}

/* ------------------------------------------------------------ sources */

typedef struct {
    char *root; /* directory, or the archive's path */
    bool is_tar;
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

/* The entry number of a regular member (following symlinks and hard links
 * inside the archive), or -1. */
static long find_member(const source_t *src, const char *name)
{
    char *want = normalize_name(name);
    long found = -1;
    for (int hop = 0; hop <= LINK_HOPS; hop++) {
        found = -1;
        for (size_t i = src->ti.count; i-- > 0;) /* the last one of a name wins */
            if (strcmp(src->ti.m[i].name, want) == 0) {
                found = (long)i;
                break;
            }
        if (found < 0 || !src->ti.m[found].linkname)
            break;
        const member_t *m = &src->ti.m[found];
        char *next = m->hardlink ? xstrdup(m->linkname) : resolve_link(m->name, m->linkname);
        free(want);
        want = next;
        found = -1;
    }
    free(want);
    return found >= 0 && src->ti.m[found].type == AE_IFREG ? found : -1;
}

/* Locate a member: the file to read, the archive entry (-1: the whole
 * file) and its size. 0 or -ENOENT. */
static int src_locate(const source_t *src, const char *name, char **path, long *member,
                      uint64_t *size)
{
    if (strstr(name, "..") || name[0] == '/')
        return -EINVAL;
    if (src->is_tar) {
        long i = find_member(src, name);
        if (i < 0)
            return -ENOENT;
        *path = xstrdup(src->root);
        *member = i;
        *size = src->ti.m[i].size;
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
    *member = -1;
    *size = (uint64_t)st.st_size;
    return 0;
}

static bool src_has(const source_t *src, const char *name)
{
    char *path = NULL;
    long member;
    uint64_t size;
    int rc = src_locate(src, name, &path, &member, &size);
    free(path);
    return rc == 0;
}

/* Read and parse a JSON member. NULL with err. json_decref. */
static json_t *src_json(const source_t *src, const char *name, const char *what, char *err,
                        size_t errlen)
{
    char *path = NULL, why[256] = "";
    long member;
    uint64_t size;
    json_t *j = NULL;
    if (src_locate(src, name, &path, &member, &size) < 0) {
        snprintf(err, errlen, "%s %s is missing", what, name);
        return NULL;
    }
    if (size > JSON_MAX) {
        snprintf(err, errlen, "%s %s is too large (%" PRIu64 " bytes)", what, name, size);
        free(path);
        return NULL;
    }
    char *buf = xmalloc(size + 1);
    size_t got = 0;
    blob_t b;
    int rc = blob_open(&b, path, member, why, sizeof why);
    while (rc == 0 && got < size) {
        ssize_t n = blob_read(&b, buf + got, size - got, why, sizeof why);
        if (n < 0)
            rc = (int)n;
        else if (n == 0)
            break;
        else
            got += (size_t)n;
    }
    blob_close(&b);
    if (rc == 0 && got < size) {
        rc = -EIO;
        snprintf(why, sizeof why, "short read");
    }
    if (rc < 0) {
        snprintf(err, errlen, "read %s %s: %s", what, name, why);
        goto cleanup;
    }
    json_error_t jerr;
    j = json_loadb(buf, size, 0, &jerr);
    if (!j)
        snprintf(err, errlen, "%s %s is not valid JSON (%s at line %d)", what, name, jerr.text,
                 jerr.line);
cleanup:
    free(buf);
    free(path);
    return j;
}

static void src_close(source_t *src)
{
    tarindex_free(&src->ti);
    free(src->root);
    memset(src, 0, sizeof *src);
}

/* ------------------------------------------------------------ images */

typedef struct {
    char digest[72]; /* "sha256:<64 hex>": the cache key */
    char *path;      /* file holding the blob */
    long member;     /* its entry in the archive at path; -1: the whole file */
    uint64_t size;
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
    const json_t *c = json_object_get(cfgdoc, "config");
    if (!json_is_object(c))
        return;
    char **env = jstrv(json_object_get(c, "Env"));
    if (env) {
        rt_strv_free(img->cfg.env);
        img->cfg.env = env;
    }
    img->cfg.entrypoint = jstrv(json_object_get(c, "Entrypoint"));
    img->cfg.cmd = jstrv(json_object_get(c, "Cmd"));
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
    if (src_locate(src, blob, &l->path, &l->member, &l->size) < 0) {
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
    const json_t *ms = json_object_get(index, "manifests"), *m;
    size_t i;
    if (json_array_size(ms) == 0) {
        snprintf(err, errlen, "index lists no manifests");
        return NULL;
    }
    if (json_array_size(ms) == 1)
        return json_array_get(ms, 0);
    const char *arch = host_arch();
    json_array_foreach(ms, i, m)
    {
        const json_t *pf = json_object_get(m, "platform");
        const char *os = jstr(pf, "os"), *a = jstr(pf, "architecture");
        if (os && a && strcmp(os, "linux") == 0 && strcmp(a, arch) == 0)
            return m;
    }
    /* No platform info (docker's export lists one manifest per tag): the
     * first one. */
    json_array_foreach(ms, i, m)
    {
        if (!json_object_get(m, "platform"))
            return m;
    }
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
                        json_object_get(next, "manifests");
        if (!is_index) {
            manifest = next;
            break;
        }
        json_decref(doc);
        doc = next;
        cur = doc;
        if (depth >= INDEX_DEPTH) {
            snprintf(err, errlen, "indexes nested too deeply");
            goto cleanup;
        }
    }
    const json_t *layers = json_object_get(manifest, "layers"), *layer;
    const char *cfg_digest = jstr(json_object_get(manifest, "config"), "digest");
    size_t i;
    if (!json_is_array(layers)) {
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
    json_array_foreach(layers, i, layer)
    {
        const char *digest = jstr(layer, "digest");
        char *name = valid_digest(digest) ? blob_name(digest) : xstrdup("-");
        rc = add_layer(img, src, digest, name, true, err, errlen);
        free(name);
        if (rc < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref(index);
    json_decref(doc);
    json_decref(manifest);
    json_decref(cfg);
    return rc;
}

static int open_docker(image_t *img, const source_t *src, char *err, size_t errlen)
{
    int rc = -EINVAL;
    json_t *mf = src_json(src, "manifest.json", "manifest", err, errlen), *cfg = NULL;
    if (!mf)
        return -EINVAL;
    if (json_array_size(mf) == 0) {
        snprintf(err, errlen, "manifest.json lists no images");
        goto cleanup;
    }
    /* An archive of several images: the first one (like `docker load` of
     * one tag). */
    const json_t *entry = json_array_get(mf, 0);
    const char *config = jstr(entry, "Config");
    const json_t *layers = json_object_get(entry, "Layers");
    if (!config || !json_is_array(layers)) {
        snprintf(err, errlen, "manifest.json entry has no Config or Layers");
        goto cleanup;
    }
    cfg = src_json(src, config, "config", err, errlen);
    if (!cfg)
        goto cleanup;
    load_config(img, cfg);
    const json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (!json_is_array(diff_ids) || json_array_size(diff_ids) != json_array_size(layers)) {
        snprintf(err, errlen, "config %s: rootfs.diff_ids does not match the %zu layers", config,
                 json_array_size(layers));
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *blob = json_string_value(json_array_get(layers, i));
        const char *id = json_string_value(json_array_get(diff_ids, i));
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
    json_decref(mf);
    json_decref(cfg);
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
    source_t src = {0};
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
        if (access(real, R_OK) < 0) {
            snprintf(why, sizeof why, "%s", strerror(errno));
            goto cleanup;
        }
        if (tar_scan(real, (uint64_t)st.st_size, &src.ti, why, sizeof why) < 0)
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
        one_line(err);
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
 * trusted.overlay.opaque xattr on the directory. Everything is relative to
 * dfd and subdirectories are opened O_NOFOLLOW, so a symlink in the layer
 * is never followed. A whiteout of "", "." or ".." is an error. */
static int convert_whiteouts(int dfd, const char *dir, int depth, char *why, size_t whylen)
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
                snprintf(why, whylen, "opaque whiteout %s%s: %s", dir, n, strerror(errno));
            }
            continue;
        }
        if (strncmp(n, ".wh.", 4) == 0) {
            const char *target = n + 4;
            if (!*target || strcmp(target, ".") == 0 || strcmp(target, "..") == 0) {
                rc = -EINVAL;
                snprintf(why, whylen, "whiteout entry '%s%s' names no file (invalid layer)", dir,
                         n);
                continue;
            }
            if (unlinkat(dfd, n, 0) < 0) {
                rc = -errno;
                snprintf(why, whylen, "whiteout %s%.200s: %s", dir, n, strerror(errno));
                continue;
            }
            /* The layer may also hold the name itself (it should not): the
             * whiteout wins over a file of the same layer. */
            unlinkat(dfd, target, 0);
            if (mknodat(dfd, target, S_IFCHR | 0000, makedev(0, 0)) < 0 && errno != EEXIST) {
                rc = -errno;
                snprintf(why, whylen, "whiteout %s%.200s: mknod: %s", dir, target, strerror(errno));
            }
            continue;
        }
        if (e->d_type == DT_DIR) {
            int sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                continue;
            char *subdir = xasprintf("%s%s/", dir, n);
            rc = convert_whiteouts(sub, subdir, depth + 1, why, whylen);
            free(subdir);
            close(sub);
        }
    }
    closedir(d);
    return rc;
}

/* The layer's bytes as libarchive reads them: hashed on the way, the
 * cancel callback polled between chunks. */
typedef struct {
    blob_t blob;
    digest_ctx_t *md;
    unsigned char *buf;
    uint64_t left; /* bytes of the blob not read yet */
    bool (*cancelled)(void);
    int err; /* -errno of a failed read, -ECANCELED */
    char why[256];
} layer_in_t;

static la_ssize_t layer_read(struct archive *a, void *arg, const void **out)
{
    layer_in_t *in = arg;
    if (in->err < 0)
        return -1;
    if (in->cancelled && in->cancelled()) {
        in->err = -ECANCELED;
        archive_set_error(a, ECANCELED, "cancelled");
        return -1;
    }
    if (in->left == 0)
        return 0;
    size_t want = in->left < CHUNK ? (size_t)in->left : CHUNK;
    ssize_t n = blob_read(&in->blob, in->buf, want, in->why, sizeof in->why);
    if (n == 0 && in->left > 0) {
        n = -EIO;
        snprintf(in->why, sizeof in->why, "the blob is shorter than its %" PRIu64 " bytes",
                 in->left);
    }
    if (n < 0) {
        in->err = (int)n;
        archive_set_error(a, EIO, "%s", in->why);
        return -1;
    }
    digest_update(in->md, in->buf, (size_t)n);
    in->left -= (uint64_t)n;
    *out = in->buf;
    return n;
}

/* Copy the entries of layer `in` into the current directory (see the
 * top of the file for what is refused). 0, or -errno with why. */
static int extract_entries(struct archive *in, char *why, size_t whylen)
{
    int flags = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
                ARCHIVE_EXTRACT_TIME;
    if (geteuid() == 0)
        flags |= ARCHIVE_EXTRACT_OWNER; /* by number: no name lookup is set */
    struct archive *out = archive_write_disk_new();
    archive_write_disk_set_options(out, flags);
    int rc = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(in, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = -EIO;
            snprintf(why, whylen, "corrupt layer (%s)", archive_error_string(in));
            break;
        }
        const char *name = archive_entry_pathname(e);
        if (!name)
            name = "";
        mode_t type = archive_entry_filetype(e);
        if (type == AE_IFCHR || type == AE_IFBLK)
            continue; /* device nodes are never created */
        char *norm = normalize_name(name);
        bool root = strcmp(norm, "") == 0 || strcmp(norm, ".") == 0;
        free(norm);
        if (root && name[0] != '/')
            continue; /* "./": the layer directory itself */
        r = archive_write_header(out, e);
        if (r >= ARCHIVE_WARN && archive_entry_size(e) > 0) {
            const void *buf;
            size_t len;
            la_int64_t off;
            while ((r = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK) {
                if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN) {
                    r = ARCHIVE_FAILED;
                    snprintf(why, whylen, "entry '%.200s': %s", name, archive_error_string(out));
                    break;
                }
            }
            if (r == ARCHIVE_EOF) {
                r = ARCHIVE_OK;
            } else if (r < ARCHIVE_WARN && !why[0]) {
                snprintf(why, whylen, "corrupt layer at entry '%.200s' (%s)", name,
                         archive_error_string(in));
            }
        } else if (r < ARCHIVE_WARN) {
            const char *hl = archive_entry_hardlink(e);
            snprintf(why, whylen, "unsafe or unusable entry '%.200s'%s%.200s%s: %s", name,
                     hl ? " (hard link to '" : "", hl ? hl : "", hl ? "')" : "",
                     archive_error_string(out));
        }
        if (r >= ARCHIVE_WARN)
            r = archive_write_finish_entry(out);
        if (r < ARCHIVE_WARN) {
            if (!why[0])
                snprintf(why, whylen, "entry '%.200s': %s", name, archive_error_string(out));
            rc = -EIO;
            break;
        }
    }
    /* Directory modes and times are set last (close), as tar does. */
    if (archive_write_close(out) < ARCHIVE_WARN && rc == 0) {
        rc = -EIO;
        snprintf(why, whylen, "%s", archive_error_string(out));
    }
    archive_write_free(out);
    return rc;
}

/* Stream one blob through libarchive into tmp, hashing it on the way,
 * then turn its whiteouts into overlayfs ones. */
static int unpack_layer(const image_t *img, const layer_t *l, const char *tmp,
                        bool (*cancelled)(void), char *why, size_t whylen)
{
    layer_in_t in = {.left = l->size, .cancelled = cancelled};
    struct archive *a = NULL;
    int rc = 0, cwd = -1;
    char xwhy[512] = "";
    in.md = digest_begin();
    if (!in.md) {
        snprintf(why, whylen, "cannot start SHA-256");
        return -ENOMEM;
    }
    in.buf = xmalloc(CHUNK);
    rc = blob_open(&in.blob, l->path, l->member, why, whylen);
    if (rc < 0)
        goto cleanup;
    /* archive_write_disk works relative to the working directory (it has
     * no directory-fd form): the layer directory for the time of the
     * extraction. Callers are single-threaded shims and tests. */
    cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0 || chdir(tmp) < 0) {
        rc = -errno;
        snprintf(why, whylen, "chdir %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_format_empty(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    if (archive_read_open(a, &in, NULL, layer_read, NULL) != ARCHIVE_OK) {
        rc = -EIO;
        snprintf(xwhy, sizeof xwhy, "not a tar layer (%s)", archive_error_string(a));
    } else {
        rc = extract_entries(a, xwhy, sizeof xwhy);
    }
    if (fchdir(cwd) < 0 && rc == 0) {
        rc = -errno;
        snprintf(xwhy, sizeof xwhy, "fchdir: %s", strerror(errno));
    }
    if (in.err == -ECANCELED) {
        rc = -ECANCELED;
        snprintf(why, whylen, "cancelled");
        goto cleanup;
    }
    /* Hash what the tar reader left (the end blocks, trailing bytes): a
     * digest mismatch explains a failure better than the reader does. */
    while (in.err == 0 && in.left > 0) {
        const void *p;
        if (layer_read(a, &in, &p) <= 0)
            break;
    }
    if (in.err == -ECANCELED) {
        rc = -ECANCELED;
        snprintf(why, whylen, "cancelled");
        goto cleanup;
    }
    if (in.err < 0) {
        rc = in.err;
        snprintf(why, whylen, "layer %s: read %s: %s", l->digest, l->path, in.why);
        goto cleanup;
    }
    uint8_t dig[DIGEST_LEN];
    char hex[DIGEST_HEX_LEN + 1];
    digest_final(in.md, dig);
    in.md = NULL;
    digest_hex(dig, hex);
    /* A docker-save diff_id hashes the uncompressed tar: only checkable
     * here when the layer is stored uncompressed (as docker save does). */
    bool docker = img->kind == IMAGE_DOCKER_DIR || img->kind == IMAGE_DOCKER_TAR;
    bool compressed = archive_filter_count(a) > 1;
    bool verify = l->verify && !(docker && compressed);
    if (verify && strcmp(hex, l->digest + 7) != 0) {
        rc = -EBADMSG;
        snprintf(why, whylen, "layer %s: digest mismatch (corrupt image; got sha256:%.12s…)",
                 l->digest, hex);
        goto cleanup;
    }
    if (rc < 0) {
        snprintf(why, whylen, "layer %s: %s", l->digest, xwhy);
        goto cleanup;
    }
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        snprintf(why, whylen, "open %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    char wwhy[512] = "";
    rc = convert_whiteouts(dfd, "", 0, wwhy, sizeof wwhy);
    close(dfd);
    if (rc < 0)
        snprintf(why, whylen, "layer %s: %s", l->digest, wwhy);
cleanup:
    if (a)
        archive_read_free(a);
    if (cwd >= 0)
        close(cwd);
    blob_close(&in.blob);
    digest_abort(in.md);
    free(in.buf);
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
            one_line(err);
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
    rt_strv_free(img->cfg.env);
    rt_strv_free(img->cfg.entrypoint);
    rt_strv_free(img->cfg.cmd);
    free(img->cfg.workdir);
    free(img->cfg.user);
    free(img->rootfs);
    free(img->layers_dir);
    free(img->ref);
    free(img);
    *imgp = NULL;
}
