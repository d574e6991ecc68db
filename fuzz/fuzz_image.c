/* fuzz_image — the container image reader and layer unpacker
 * (agent/image.h): untrusted bytes unpacked as root.
 *
 * The first byte of an input picks what the rest is:
 *   even  a layer blob (tar; plain, gzip, zstd, bzip2 or xz). The harness
 *         wraps it in a one-layer OCI layout whose digests match, so the
 *         input reaches the unpacker (a mismatch would stop it first);
 *   odd   an image archive (an OCI layout or docker-save tar), opened as
 *         it is and, when it opens, unpacked.
 * Everything happens in a fresh box directory under /dev/shm (or /tmp):
 *   box/img or box/img.tar   the image
 *   box/cache                the layer cache
 *   box/canary/secret        a file the image must never reach
 *
 * Checked after every input (fz_fail otherwise): image_open and
 * image_unpack return 0 / an image, or an error that is one line and
 * names the image; the working directory is the one before; the box
 * holds nothing but the three entries above; the canary directory holds
 * only its secret, unchanged, with one link (no hard link reached it);
 * the cache holds only layers/sha256/<64 hex> directories (no half-unpacked
 * .tmp-* left); and no layer holds a device node other than an overlayfs
 * whiteout (a 0/0 character device).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "digest.h"
#include "fuzz_common.h"
#include "image.h"
#include "util.h"

static char *base; /* the directory the boxes are made in */
static char cwd0[4096];

static void remove_base(void)
{
    util_rm_rf(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    base = xasprintf("%s/drover-fuzz-image.%d", root, (int)getpid());
    util_rm_rf(base);
    if (util_mkdir_p(base, 0700) < 0)
        fz_fail("mkdir %s: %s", base, strerror(errno));
    if (!getcwd(cwd0, sizeof cwd0))
        fz_fail("getcwd: %s", strerror(errno));
    atexit(remove_base);
    return 0;
}

static void put(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
        fz_fail("write %s: %s", path, strerror(errno));
}

static void hex_of(const void *data, size_t len, char out[DIGEST_HEX_LEN + 1])
{
    uint8_t d[DIGEST_LEN];
    digest_buffer(data, len, d);
    digest_hex(d, out);
}

/* A one-layer OCI layout at dir around the layer bytes. */
static void write_layout(const char *dir, const uint8_t *layer, size_t len)
{
    char *blobs = xasprintf("%s/blobs/sha256", dir);
    if (util_mkdir_p(blobs, 0755) < 0)
        fz_fail("mkdir %s", blobs);
    char hl[DIGEST_HEX_LEN + 1], hc[DIGEST_HEX_LEN + 1], hm[DIGEST_HEX_LEN + 1];
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":"
                      "{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]}}";
    hex_of(layer, len, hl);
    hex_of(cfg, strlen(cfg), hc);
    char *man = xasprintf("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\"},"
                          "\"layers\":[{\"digest\":\"sha256:%s\"}]}",
                          hc, hl);
    hex_of(man, strlen(man), hm);
    char *p = xasprintf("%s/%s", blobs, hl);
    put(p, layer, len);
    free(p);
    p = xasprintf("%s/%s", blobs, hc);
    put(p, cfg, strlen(cfg));
    free(p);
    p = xasprintf("%s/%s", blobs, hm);
    put(p, man, strlen(man));
    free(p);
    char *index = xasprintf("{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:%s\"}]}", hm);
    p = xasprintf("%s/index.json", dir);
    put(p, index, strlen(index));
    free(p);
    free(index);
    free(man);
    free(blobs);
}

static int check_layer_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (S_ISBLK(st->st_mode))
        fz_fail("a block device was created: %s", path);
    if (S_ISCHR(st->st_mode) && st->st_rdev != makedev(0, 0))
        fz_fail("a character device %u:%u was created: %s", major(st->st_rdev), minor(st->st_rdev),
                path);
    return 0;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != DIGEST_HEX_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

/* Every name in dir is one of want[] (NULL-terminated). */
static void only(const char *dir, const char *const *want)
{
    DIR *d = opendir(dir);
    if (!d)
        fz_fail("opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        bool ok = false;
        for (const char *const *w = want; *w && !ok; w++)
            ok = strcmp(e->d_name, *w) == 0;
        if (!ok)
            fz_fail("%s/%s was written outside the layer cache", dir, e->d_name);
    }
    closedir(d);
}

static void check_box(const char *box, const char *img_name)
{
    const char *top[] = {img_name, "cache", "canary", NULL};
    only(box, top);
    char *canary = xasprintf("%s/canary", box), *secret = xasprintf("%s/canary/secret", box);
    const char *in_canary[] = {"secret", NULL};
    only(canary, in_canary);
    struct stat st;
    char buf[16] = "";
    int fd = open(secret, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || read(fd, buf, sizeof buf - 1) != 6 ||
        strcmp(buf, "secret") != 0 || st.st_nlink != 1 || !S_ISREG(st.st_mode))
        fz_fail("the canary %s was reached (links %lu)", secret, (unsigned long)st.st_nlink);
    close(fd);
    free(canary);
    free(secret);

    char *cache = xasprintf("%s/cache", box);
    const char *in_cache[] = {"layers", NULL}, *in_layers[] = {"sha256", NULL};
    only(cache, in_cache);
    char *layers = xasprintf("%s/layers", cache), *sha = xasprintf("%s/layers/sha256", cache);
    if (access(layers, F_OK) == 0)
        only(layers, in_layers);
    DIR *d = opendir(sha);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!is_hex64(e->d_name))
            fz_fail("%s/%s left in the layer cache", sha, e->d_name);
        char *l = xasprintf("%s/%s", sha, e->d_name);
        nftw(l, check_layer_entry, 16, FTW_PHYS);
        free(l);
    }
    if (d)
        closedir(d);
    free(layers);
    free(sha);
    free(cache);
}

static void check_err(const char *what, const char *err, size_t errlen)
{
    if (!err[0])
        fz_fail("%s failed with no message", what);
    if (!fz_one_line(err, errlen))
        fz_fail("%s: the message is not one line: %s", what, err);
    if (strncmp(err, "image ", 6) != 0)
        fz_fail("%s: the message does not name the image: %s", what, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool archive = data[0] & 1;
    data++;
    size--;
    char *box = xasprintf("%s/box", base);
    char *canary = xasprintf("%s/canary", box), *secret = xasprintf("%s/canary/secret", box);
    char *cache = xasprintf("%s/cache", box);
    const char *img_name = archive ? "img.tar" : "img";
    char *img = xasprintf("%s/%s", box, img_name);
    util_rm_rf(box);
    if (util_mkdir_p(canary, 0755) < 0 || util_mkdir_p(cache, 0755) < 0)
        fz_fail("mkdir %s", box);
    put(secret, "secret", 6);
    if (archive)
        put(img, data, size);
    else
        write_layout(img, data, size);

    char err[512] = "";
    image_t *im = image_open(img, cache, err, sizeof err);
    if (!im) {
        check_err("image_open", err, sizeof err);
    } else {
        if (image_kind(im) == IMAGE_ROOTFS_DIR)
            fz_fail("%s opened as a rootfs directory", img);
        const image_config_t *cfg = image_config(im);
        if (!cfg->env)
            fz_fail("no env vector");
        err[0] = '\0';
        int rc = image_unpack(im, NULL, err, sizeof err);
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, cwd0) != 0)
            fz_fail("image_unpack left the working directory at %s", cwd);
        if (rc > 0)
            fz_fail("image_unpack returned %d", rc);
        if (rc < 0) {
            check_err("image_unpack", err, sizeof err);
            if (!archive && image_cached(im))
                fz_fail("a failed one-layer unpack left the layer cached: %s", err);
        } else if (!image_cached(im)) {
            fz_fail("image_unpack succeeded and the image is not cached");
        }
        unsigned uid, gid;
        image_resolve_user(im, "root", &uid, &gid);
        image_destroy(&im);
    }
    if (getenv("DROVER_FUZZ_LOG"))
        fprintf(stderr, "fuzz_image: %s: %s\n", archive ? "archive" : "layer",
                err[0] ? err : "unpacked");
    check_box(box, img_name);
    if (access("/tmp/drover-fuzz-absolute", F_OK) == 0) /* the seed's absolute path */
        fz_fail("/tmp/drover-fuzz-absolute was written");
    util_rm_rf(box);
    free(img);
    free(cache);
    free(secret);
    free(canary);
    free(box);
    return 0;
}
