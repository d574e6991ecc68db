/* test_image — container images from local paths: every supported layout,
 * unpacking into the per-digest cache, whiteouts, users, and bad input.
 *
 * Images come from scripts/make-test-image.sh (busybox-static; built once
 * into /tmp/drover-test-images, idempotent). Unpacking needs root (device
 * whiteouts, trusted.* xattrs, file owners): those tests skip with a
 * printed reason otherwise.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image.h"

#define IMAGES "/tmp/drover-test-images"

static char *dir;

static void build_images(void)
{
    char *src = xstrdup(__FILE__);
    char *cmd = xasprintf("%s/../../scripts/make-test-image.sh %s", dirname(src), IMAGES);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "%s failed", cmd);
    free(cmd);
    free(src);
}

static void setup(void)
{
    dir = h_tmpdir();
    build_images();
}

static void teardown(void)
{
    util_rm_rf(dir);
    free(dir);
}

TestSuite(image, .init = setup, .fini = teardown, .timeout = 60);

static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("unpacking layers needs root (device whiteouts, owners); uid is %d",
                     (int)geteuid());
}

static image_t *open_ok(const char *ref, const char *cache)
{
    char err[512] = "";
    image_t *img = image_open(ref, cache, err, sizeof err);
    cr_assert_not_null(img, "image_open(%s): %s", ref, err);
    return img;
}

static void open_fails(const char *ref, const char *want)
{
    char err[512] = "";
    image_t *img = image_open(ref, dir, err, sizeof err);
    cr_assert_null(img, "image_open(%s) should fail", ref);
    cr_assert(strstr(err, want), "image_open(%s): got '%s', want '%s'", ref, err, want);
    cr_assert(strstr(err, "image "), "message names the image: %s", err);
}

static bool has_env(const image_t *img, const char *kv)
{
    for (char **e = image_config(img)->env; e && *e; e++)
        if (strcmp(*e, kv) == 0)
            return true;
    return false;
}

Test(image, rootfs_directory_is_used_in_place)
{
    image_t *img = open_ok(IMAGES "/rootfs", dir);
    cr_assert_eq(image_kind(img), IMAGE_ROOTFS_DIR);
    cr_assert(image_cached(img));
    cr_assert_eq(image_layer_count(img), 0);
    char err[256];
    cr_assert_eq(image_unpack(img, NULL, err, sizeof err), 0);
    char *lower = image_lowerdirs(img, false);
    cr_assert_str_eq(lower, IMAGES "/rootfs");
    free(lower);
    unsigned uid = 1, gid = 1;
    cr_assert_eq(image_resolve_user(img, "step", &uid, &gid), 0);
    cr_assert_eq(uid, 1000);
    cr_assert_eq(gid, 1000);
    image_destroy(&img);
    cr_assert_null(img);
}

static void check_layers(const char *cache, const image_t *img)
{
    cr_assert_eq(image_layer_count(img), 2);
    cr_assert_not(image_cached(img));
    char err[512] = "";
    int rc = image_unpack(img, NULL, err, sizeof err);
    cr_assert_eq(rc, 0, "unpack: %s", err);
    cr_assert(image_cached(img));
    /* Layers named by digest, topmost first; layer 1 holds busybox. */
    char *lower = image_lowerdirs(img, false);
    char *colon = strchr(lower, ':');
    cr_assert_not_null(colon, "two layers: %s", lower);
    *colon = '\0';
    const char *top = lower, *bottom = colon + 1;
    char *bb = xasprintf("%s/bin/busybox", bottom);
    struct stat st;
    cr_assert_eq(stat(bb, &st), 0, "%s", bb);
    cr_assert(st.st_mode & S_IXUSR);
    /* OCI whiteout → overlay whiteout (0/0 char device); opaque dir xattr. */
    char *wh = xasprintf("%s/etc/removed-by-layer2", top);
    cr_assert_eq(lstat(wh, &st), 0, "%s", wh);
    cr_assert(S_ISCHR(st.st_mode));
    cr_assert_eq(st.st_rdev, makedev(0, 0));
    char *whfile = xasprintf("%s/etc/.wh.removed-by-layer2", top);
    cr_assert_neq(access(whfile, F_OK), 0, "the .wh. file is gone");
    char *opq = xasprintf("%s/opq", top), val[8] = "";
    cr_assert_eq(getxattr(opq, "trusted.overlay.opaque", val, sizeof val), 1);
    cr_assert_eq(val[0], 'y');
    cr_assert(strncmp(lower, cache, strlen(cache)) == 0, "layers live in the cache: %s", lower);
    free(bb);
    free(wh);
    free(whfile);
    free(opq);
    free(lower);
    /* A second unpack has nothing to do. */
    cr_assert_eq(image_unpack(img, NULL, err, sizeof err), 0);
}

Test(image, oci_layout_directory)
{
    need_root();
    image_t *img = open_ok(IMAGES "/oci", dir);
    cr_assert_eq(image_kind(img), IMAGE_OCI_DIR);
    cr_assert(has_env(img, "IMAGE_VAR=from-image"));
    cr_assert(has_env(img, "PATH=/bin"));
    const image_config_t *cfg = image_config(img);
    cr_assert_not_null(cfg->cmd);
    cr_assert_str_eq(cfg->cmd[0], "sh");
    cr_assert_str_eq(cfg->workdir, "/");
    check_layers(dir, img);
    unsigned uid, gid;
    cr_assert_eq(image_resolve_user(img, "nobody:nogroup", &uid, &gid), 0);
    cr_assert_eq(uid, 65534);
    cr_assert_eq(gid, 65534);
    cr_assert_eq(image_resolve_user(img, "1000:5", &uid, &gid), 0);
    cr_assert_eq(uid, 1000);
    cr_assert_eq(gid, 5);
    cr_assert_eq(image_resolve_user(img, "ghost", &uid, &gid), -ENOENT);
    cr_assert_eq(image_resolve_user(img, "1000", &uid, &gid), 0);
    cr_assert_eq(gid, 1000, "a bare uid takes its primary group from /etc/passwd");
    cr_assert_eq(image_resolve_user(img, "4242", &uid, &gid), 0);
    cr_assert_eq(uid, 4242);
    cr_assert_eq(gid, 0, "unknown uid: group 0");
    cr_assert_eq(image_resolve_user(img, ":5", &uid, &gid), -EINVAL);
    image_destroy(&img);
}

Test(image, oci_archive_shares_the_cache_with_the_layout)
{
    need_root();
    image_t *a = open_ok(IMAGES "/oci", dir);
    char err[512];
    cr_assert_eq(image_unpack(a, NULL, err, sizeof err), 0, "%s", err);
    image_t *b = open_ok(IMAGES "/oci.tar", dir);
    cr_assert_eq(image_kind(b), IMAGE_OCI_TAR);
    cr_assert(image_cached(b), "same digests: nothing to unpack again");
    char *la = image_lowerdirs(a, true), *lb = image_lowerdirs(b, true);
    cr_assert_str_eq(la, lb);
    free(la);
    free(lb);
    image_destroy(&a);
    image_destroy(&b);
    /* And from a fresh cache, the archive unpacks on its own. */
    char *cache2 = xasprintf("%s/c2", dir);
    image_t *c = open_ok(IMAGES "/oci.tar", cache2);
    check_layers(cache2, c);
    image_destroy(&c);
    free(cache2);
}

Test(image, docker_save_archive)
{
    need_root();
    image_t *img = open_ok(IMAGES "/docker.tar", dir);
    cr_assert_eq(image_kind(img), IMAGE_DOCKER_TAR);
    cr_assert(has_env(img, "IMAGE_VAR=from-image"));
    check_layers(dir, img);
    image_destroy(&img);
}

Test(image, bad_references_fail_clearly)
{
    open_fails("/nonexistent/image.tar", "No such file or directory");
    char *empty = xasprintf("%s/empty", dir);
    util_mkdir_p(empty, 0755);
    open_fails(empty, "empty directory");
    free(empty);

    char *junk = xasprintf("%s/junk.tar", dir);
    FILE *f = fopen(junk, "w");
    for (int i = 0; i < 2048; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    open_fails(junk, "not a tar archive");

    char *gz = xasprintf("%s/img.tar.gz", dir), *cmd;
    cmd = xasprintf("gzip -c %s/oci.tar > %s", IMAGES, gz);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    open_fails(gz, "gzip-compressed");

    char *cut = xasprintf("%s/cut.tar", dir);
    cmd = xasprintf("head -c 600000 %s/oci.tar > %s", IMAGES, cut);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    open_fails(cut, "truncated");

    char *plain = xasprintf("%s/plain.tar", dir);
    cmd = xasprintf("tar -C %s/rootfs -cf %s etc", IMAGES, plain);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    open_fails(plain, "not an OCI layout or docker-save archive (no index.json or manifest.json)");

    free(junk);
    free(gz);
    free(cut);
    free(plain);
}

/* A copy of the OCI layout to break. */
static char *copy_layout(void)
{
    char *copy = xasprintf("%s/layout", dir);
    char *cmd = xasprintf("cp -a %s/oci %s", IMAGES, copy);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    return copy;
}

Test(image, broken_layouts_fail_clearly)
{
    char *copy = copy_layout();
    char *index = xasprintf("%s/index.json", copy), *text = NULL;
    size_t len;
    cr_assert_eq(util_read_file(index, 65536, &text, &len), 0);

    FILE *f = fopen(index, "w");
    fputs("{\"manifests\": [", f);
    fclose(f);
    open_fails(copy, "not valid JSON");

    /* Valid index, but a manifest blob that is not there. */
    f = fopen(index, "w");
    fputs("{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:"
          "0000000000000000000000000000000000000000000000000000000000000000\"}]}",
          f);
    fclose(f);
    open_fails(copy, "is missing");
    f = fopen(index, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    free(index);
    util_rm_rf(copy);
    free(copy);
}

Test(image, missing_and_corrupt_layers)
{
    need_root();
    char *copy = copy_layout();
    image_t *img = open_ok(copy, dir);
    char *lower = image_lowerdirs(img, true);
    image_destroy(&img);
    /* lower = "<top hex>:<bottom gz hex>" — the bottom one is the blob. */
    char *bottom = strchr(lower, ':') + 1;
    char *blob = xasprintf("%s/blobs/sha256/%s", copy, bottom);

    /* A flipped byte: the digest no longer matches. */
    int fd = open(blob, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char c;
    cr_assert_eq(pread(fd, &c, 1, 100), 1);
    c ^= 0xff;
    cr_assert_eq(pwrite(fd, &c, 1, 100), 1);
    close(fd);
    img = open_ok(copy, dir);
    char err[512] = "";
    cr_assert_lt(image_unpack(img, NULL, err, sizeof err), 0);
    cr_assert(strstr(err, "digest mismatch") || strstr(err, "tar failed"), "%s", err);
    cr_assert_not(image_cached(img), "nothing half-unpacked is left in the cache");
    image_destroy(&img);

    /* A missing blob is found at open time. */
    cr_assert_eq(unlink(blob), 0);
    open_fails(copy, "is missing");
    free(blob);
    free(lower);
    util_rm_rf(copy);
    free(copy);
}

Test(image, cache_clean_removes_dead_unpackers)
{
    char *stale = xasprintf("%s/layers/sha256/.tmp-abc-999999999", dir);
    char *live = xasprintf("%s/layers/sha256/.tmp-def-%d", dir, (int)getpid());
    cr_assert_eq(util_mkdir_p(stale, 0755), 0);
    cr_assert_eq(util_mkdir_p(live, 0755), 0);
    cr_assert_eq(image_cache_clean(dir), 1);
    cr_assert_neq(access(stale, F_OK), 0);
    cr_assert_eq(access(live, F_OK), 0);
    free(stale);
    free(live);
}
