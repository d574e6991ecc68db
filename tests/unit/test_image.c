/* test_image — container images from local paths: every supported layout,
 * unpacking into the per-digest cache, whiteouts, users, and bad input.
 *
 * Images come from scripts/make-test-image.sh (busybox-static; built once
 * into /tmp/drover-test-images, idempotent). Unpacking needs root (device
 * whiteouts, trusted.* xattrs, file owners): those tests skip with a
 * printed reason otherwise.
 */
#include "helpers.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <libgen.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "digest.h"
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
    cr_assert(strstr(err, "digest mismatch"), "a flipped byte is a digest mismatch: %s", err);
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

/* ------------------------------------------------------------ hostile layers
 *
 * Layers are untrusted input unpacked as root. Each case below builds a
 * one-layer OCI layout (written with libarchive, so any header a hostile
 * tool could write) whose entries aim outside the layer directory, at
 * dir/outside (a directory of the test's own: a broken unpacker damages
 * nothing else) or at /etc/shadow (linked, never written). The choice the
 * unpacker makes, and these tests pin: an entry that would leave the layer
 * ("..", an absolute path, a path or hard link through a symlink, a hard
 * link out) fails the whole layer with an error naming the entry, and
 * nothing is left in the cache; a device node is skipped (never created:
 * the runtime gives containers their own /dev); a whiteout of "." or ".."
 * is an error. */

static int put_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -EIO;
}

typedef struct {
    char type; /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c'/'b' device */
    const char *path;
    const char *arg;       /* file contents, link target */
    unsigned major, minor; /* devices; for 'd', major is the mode (0: 0755) */
} hentry_t;

/* Write entries as a tar (compressed with filter: ARCHIVE_FILTER_*) and
 * wrap it in an OCI layout at dir/NAME. Returns the layout path. */
static char *hostile_image(const char *name, const hentry_t *entries, size_t n, int filter)
{
    size_t cap = 1 << 20, used = 0;
    char *buf = xmalloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter == ARCHIVE_FILTER_GZIP)
        archive_write_add_filter_gzip(a);
    else if (filter == ARCHIVE_FILTER_ZSTD)
        archive_write_add_filter_zstd(a);
    cr_assert_eq(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        const hentry_t *e = &entries[i];
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e->path);
        archive_entry_set_mode(ae, 0644);
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        switch (e->type) {
        case 'f':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_size(ae, (la_int64_t)strlen(e->arg));
            break;
        case 'd':
            archive_entry_set_filetype(ae, AE_IFDIR);
            archive_entry_set_perm(ae, e->major ? e->major : 0755);
            archive_entry_set_mtime(ae, 1000000000, 0);
            break;
        case 'l':
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e->arg);
            break;
        case 'h':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e->arg);
            break;
        default:
            archive_entry_set_filetype(ae, e->type == 'c' ? AE_IFCHR : AE_IFBLK);
            archive_entry_set_rdev(ae, makedev(e->major, e->minor));
            break;
        }
        cr_assert_eq(archive_write_header(a, ae), ARCHIVE_OK, "%s: %s", e->path,
                     archive_error_string(a));
        if (e->type == 'f')
            cr_assert_eq(archive_write_data(a, e->arg, strlen(e->arg)), (ssize_t)strlen(e->arg));
        archive_entry_free(ae);
    }
    cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);

    char *layout = xasprintf("%s/%s", dir, name);
    char *blobs = xasprintf("%s/blobs/sha256", layout);
    cr_assert_eq(util_mkdir_p(blobs, 0755), 0);
    uint8_t d[DIGEST_LEN];
    char hl[DIGEST_HEX_LEN + 1], hc[DIGEST_HEX_LEN + 1], hm[DIGEST_HEX_LEN + 1];
    digest_buffer(buf, used, d);
    digest_hex(d, hl);
    char *cfg = xstrdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{}}");
    digest_buffer(cfg, strlen(cfg), d);
    digest_hex(d, hc);
    char *man = xasprintf("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\"},"
                          "\"layers\":[{\"digest\":\"sha256:%s\"}]}",
                          hc, hl);
    digest_buffer(man, strlen(man), d);
    digest_hex(d, hm);
    char *index = xasprintf("{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:%s\"}]}", hm);
    struct {
        const char *hex, *text;
        size_t len;
    } files[] = {{hl, buf, used}, {hc, cfg, strlen(cfg)}, {hm, man, strlen(man)}};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", blobs, files[i].hex);
        cr_assert_eq(put_file(p, files[i].text, files[i].len), 0, "%s", p);
        free(p);
    }
    char *ip = xasprintf("%s/index.json", layout);
    cr_assert_eq(put_file(ip, index, strlen(index)), 0);
    free(ip);
    free(index);
    free(man);
    free(cfg);
    free(blobs);
    free(buf);
    return layout;
}

/* dir/outside with one file, "victim"; the cases aim at it. */
static char *make_outside(void)
{
    char *out = xasprintf("%s/outside", dir), *victim = xasprintf("%s/victim", out);
    cr_assert_eq(util_mkdir_p(out, 0755), 0);
    cr_assert_eq(put_file(victim, "intact\n", 7), 0);
    free(victim);
    return out;
}

/* dir/outside still holds exactly "victim", unchanged. */
static void outside_unchanged(const char *out, const char *what)
{
    DIR *d = opendir(out);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        cr_assert(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                      strcmp(e->d_name, "victim") == 0,
                  "%s: wrote %s/%s outside the layer", what, out, e->d_name);
    closedir(d);
    char *victim = xasprintf("%s/victim", out), *text = NULL;
    size_t len = 0;
    cr_assert_eq(util_read_file(victim, 4096, &text, &len), 0, "%s: victim gone", what);
    cr_assert_str_eq(text, "intact\n", "%s: victim changed", what);
    free(text);
    free(victim);
}

/* No file under root shares its inode with /etc/shadow. */
static void no_link_to_shadow(const char *root, const char *what)
{
    struct stat sh, st;
    if (stat("/etc/shadow", &sh) < 0)
        return;
    char *cmd =
        xasprintf("find %s -xdev -inum %ju 2>/dev/null | grep -q .", root, (uintmax_t)sh.st_ino);
    cr_assert_neq(system(cmd), 0, "%s: a file under %s is /etc/shadow", what, root);
    free(cmd);
    cr_assert_eq(stat("/etc/shadow", &st), 0);
    cr_assert_eq(st.st_nlink, sh.st_nlink);
}

/* Unpack a hostile one-layer image: it fails naming want_entry and leaves
 * nothing outside or in the cache. */
static void hostile_fails(const char *name, const hentry_t *entries, size_t n, const char *want)
{
    char *out = make_outside();
    char *layout = hostile_image(name, entries, n, ARCHIVE_FILTER_NONE);
    char *cache = xasprintf("%s/cache-%s", dir, name);
    image_t *img = open_ok(layout, cache);
    char err[512] = "";
    int rc = image_unpack(img, NULL, err, sizeof err);
    cr_log_info("%s: %s", name, err);
    outside_unchanged(out, name);
    no_link_to_shadow(cache, name);
    cr_assert_lt(rc, 0, "%s: the layer unpacked", name);
    cr_assert(strstr(err, want), "%s: got '%s', want '%s'", name, err, want);
    cr_assert(strstr(err, "layer sha256:"), "%s: names the layer: %s", name, err);
    cr_assert_null(strchr(err, '\n'), "%s: the message is one line: %s", name, err);
    cr_assert_not(image_cached(img), "%s: nothing half-unpacked is left", name);
    image_destroy(&img);
    free(cache);
    free(layout);
    free(out);
}

Test(image, hostile_dotdot_entry)
{
    need_root();
    /* the layer is unpacked in cache/layers/sha256/.tmp-*: four levels up
     * is dir */
    hentry_t e[] = {{'d', "ok", NULL, 0, 0},
                    {'f', "../../../../outside/dotdot", "pwned\n", 0, 0},
                    {'f', "ok/../../../../../outside/dotdot2", "pwned\n", 0, 0}};
    hostile_fails("dotdot", e, 3, "outside/dotdot");
    /* an entry name is any bytes: the message stays one line */
    hentry_t nl[] = {{'f', "new\nline/../../../../../outside/nl", "pwned\n", 0, 0}};
    hostile_fails("dotdot-newline", nl, 1, "new?line/");
}

Test(image, hostile_absolute_path)
{
    need_root();
    char *abs = xasprintf("%s/outside/absolute", dir);
    hentry_t e[] = {{'f', abs, "pwned\n", 0, 0}};
    hostile_fails("absolute", e, 1, abs);
    free(abs);
}

Test(image, hostile_write_through_symlink)
{
    need_root();
    char *out = xasprintf("%s/outside", dir);
    hentry_t e[] = {{'l', "lnk", out, 0, 0},
                    {'f', "lnk/through", "pwned\n", 0, 0},
                    {'f', "lnk/victim", "pwned\n", 0, 0}};
    hostile_fails("symlink-abs", e, 3, "lnk/");
    hentry_t r[] = {{'d', "a", NULL, 0, 0},
                    {'l', "a/up", "../../../../../outside", 0, 0},
                    {'f', "a/up/victim", "pwned\n", 0, 0}};
    hostile_fails("symlink-rel", r, 3, "a/up/victim");
    free(out);
}

/* A directory's mode and time are set when the extraction closes (after
 * its contents): a later entry replacing it with a symlink must not
 * redirect them outside. Whether the layer fails or unpacks, the outside
 * directory keeps its mode and time. */
Test(image, hostile_directory_fixup_through_symlink)
{
    need_root();
    char *out = make_outside();
    struct stat before, after;
    cr_assert_eq(chmod(out, 0750), 0);
    cr_assert_eq(stat(out, &before), 0);
    hentry_t e[] = {{'d', "d", NULL, 0777, 0}, {'l', "d", out, 0, 0}};
    char *layout = hostile_image("fixup", e, 2, ARCHIVE_FILTER_NONE);
    image_t *img = open_ok(layout, dir);
    char err[512] = "";
    int rc = image_unpack(img, NULL, err, sizeof err);
    cr_log_info("fixup: rc %d %s", rc, err);
    outside_unchanged(out, "fixup");
    cr_assert_eq(stat(out, &after), 0);
    cr_assert_eq(after.st_mode, before.st_mode, "mode %o became %o", before.st_mode, after.st_mode);
    cr_assert_eq(after.st_mtime, before.st_mtime, "the time was changed");
    image_destroy(&img);
    free(layout);
    free(out);
}

Test(image, hostile_hard_link_to_etc_shadow)
{
    need_root();
    hentry_t abs[] = {{'h', "shadow", "/etc/shadow", 0, 0}};
    hostile_fails("hardlink-abs", abs, 1, "shadow");
    hentry_t up[] = {{'h', "shadow", "../../../../../../../../../../etc/shadow", 0, 0}};
    hostile_fails("hardlink-dotdot", up, 1, "shadow");
    hentry_t via[] = {{'l', "etc", "/etc", 0, 0}, {'h', "shadow", "etc/shadow", 0, 0}};
    hostile_fails("hardlink-symlink", via, 2, "shadow");
    char *victim = xasprintf("%s/outside/victim", dir);
    hentry_t out[] = {{'h', "v", victim, 0, 0}, {'f', "v", "pwned\n", 0, 0}};
    hostile_fails("hardlink-victim", out, 2, "v");
    free(victim);
}

Test(image, hostile_whiteout_of_dotdot)
{
    need_root();
    hentry_t e[] = {{'d', "a", NULL, 0, 0}, {'f', "a/.wh..", "", 0, 0}};
    hostile_fails("whiteout-dotdot", e, 2, "a/.wh..");
    hentry_t top[] = {{'f', ".wh..", "", 0, 0}};
    hostile_fails("whiteout-dotdot-top", top, 1, ".wh..");
}

Test(image, device_nodes_are_not_created)
{
    need_root();
    char *out = make_outside();
    hentry_t e[] = {{'d', "dev", NULL, 0, 0},
                    {'b', "dev/sda", NULL, 8, 0},
                    {'c', "dev/mem", NULL, 1, 1},
                    {'c', "dev/fake-whiteout", NULL, 0, 0},
                    {'f', "dev/regular", "kept\n", 0, 0}};
    char *layout = hostile_image("devices", e, 5, ARCHIVE_FILTER_NONE);
    image_t *img = open_ok(layout, dir);
    char err[512] = "";
    cr_assert_eq(image_unpack(img, NULL, err, sizeof err), 0, "%s", err);
    outside_unchanged(out, "devices");
    char *lower = image_lowerdirs(img, false);
    const char *gone[] = {"dev/sda", "dev/mem", "dev/fake-whiteout"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", lower, gone[i]);
        struct stat st;
        cr_assert_neq(lstat(p, &st), 0, "%s was created (mode %o)", p, st.st_mode);
        free(p);
    }
    char *kept = xasprintf("%s/dev/regular", lower);
    cr_assert_eq(access(kept, F_OK), 0, "the rest of the layer is unpacked: %s", kept);
    free(kept);
    free(lower);
    free(layout);
    free(out);
    image_destroy(&img);
}

/* Plain, gzip and zstd layers unpack alike (the compression is sniffed). */
Test(image, plain_gzip_and_zstd_layers)
{
    need_root();
    const int filters[] = {ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD};
    const char *names[] = {"plain", "gzip", "zstd"};
    for (size_t i = 0; i < 3; i++) {
        hentry_t e[] = {{'d', "./etc", NULL, 0, 0},
                        {'f', "./etc/hello", "hello\n", 0, 0},
                        {'l', "./etc/hi", "hello", 0, 0},
                        {'h', "./etc/hello2", "./etc/hello", 0, 0},
                        {'f', "etc/.wh.gone", "", 0, 0}};
        char *layout = hostile_image(names[i], e, 5, filters[i]);
        image_t *img = open_ok(layout, dir);
        char err[512] = "";
        cr_assert_eq(image_unpack(img, NULL, err, sizeof err), 0, "%s: %s", names[i], err);
        char *lower = image_lowerdirs(img, false);
        char *hello = xasprintf("%s/etc/hello", lower), *hello2 = xasprintf("%s/etc/hello2", lower);
        char *hi = xasprintf("%s/etc/hi", lower), *gone = xasprintf("%s/etc/gone", lower);
        char *text = NULL;
        size_t len;
        cr_assert_eq(util_read_file(hi, 64, &text, &len), 0, "%s: %s", names[i], hi);
        cr_assert_str_eq(text, "hello\n");
        struct stat a, b;
        cr_assert_eq(stat(hello, &a), 0);
        cr_assert_eq(stat(hello2, &b), 0);
        cr_assert_eq(a.st_ino, b.st_ino, "%s: the hard link is one file", names[i]);
        cr_assert_eq(lstat(gone, &a), 0, "%s: whiteout %s", names[i], gone);
        cr_assert(S_ISCHR(a.st_mode) && a.st_rdev == makedev(0, 0));
        free(text);
        free(hello);
        free(hello2);
        free(hi);
        free(gone);
        free(lower);
        free(layout);
        image_destroy(&img);
    }
}
