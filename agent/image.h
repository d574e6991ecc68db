/* image — container images from local paths, unpacked into a per-digest
 * layer cache.
 *
 * An image reference is a path to one of:
 *   - a root filesystem directory (used as it is, never copied);
 *   - an OCI image layout: a directory with index.json and blobs/, or a
 *     tar of one;
 *   - a `docker save` archive (manifest.json + <id>/layer.tar + config),
 *     or a directory holding its unpacked contents.
 * Archives are read in place with libarchive: a scan of the tar headers
 * (seeking over the data) indexes the members, so nothing is extracted to
 * open one.
 *
 * image_open() is the cheap, synchronous part: it reads the small JSON
 * documents (index, manifest, config), checks that every blob is present,
 * and reports a bad reference at once with a clear message ("image
 * /x/y.tar: not an OCI layout or docker-save archive (no index.json or
 * manifest.json)"). image_unpack() is the blocking part: each layer not yet
 * in <cache>/layers/sha256/<hex> is streamed (verifying its SHA-256)
 * through libarchive into a temporary directory, with its secure-extraction
 * flags (a layer is untrusted input unpacked as root: an entry that would
 * land outside the layer fails it, device nodes are skipped; image.c says
 * exactly what), its OCI whiteouts are turned into overlayfs ones, and the
 * directory is renamed into place, so concurrent attempts and crashes
 * never see a half-unpacked layer. Drivers call it in their shim process,
 * never on the agent's loop; the union of the layers is mounted with
 * overlayfs by the driver (image_lowerdirs()).
 */
#ifndef DROVER_IMAGE_H
#define DROVER_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    IMAGE_ROOTFS_DIR,
    IMAGE_OCI_DIR,
    IMAGE_OCI_TAR,
    IMAGE_DOCKER_DIR,
    IMAGE_DOCKER_TAR,
} image_kind_t;

/* What the image's config says about running it; every field may be
 * empty. Arrays are NULL-terminated. */
typedef struct {
    char **env;        /* "K=V" */
    char **entrypoint; /* NULL when unset */
    char **cmd;        /* NULL when unset */
    char *workdir;     /* NULL when unset */
    char *user;        /* NULL when unset */
} image_config_t;

typedef struct image image_t;

/* Open the image at ref (see above). cache_dir is where layers are
 * unpacked (NULL: the image can be inspected but not unpacked). Returns
 * NULL with err set ("image <ref>: <why>") for a missing path, a corrupt or
 * foreign archive, a missing blob or an unusable manifest. */
image_t *image_open(const char *ref, const char *cache_dir, char *err, size_t errlen);

image_kind_t image_kind(const image_t *img);

/* "rootfs directory", "OCI layout", "OCI archive", "docker-save directory",
 * "docker-save archive". */
const char *image_kind_name(image_kind_t kind);

/* The reference as opened (an absolute path). */
const char *image_ref(const image_t *img);

/* The image's config (owned by img). */
const image_config_t *image_config(const image_t *img);

/* Number of layers (0 for a rootfs directory). */
size_t image_layer_count(const image_t *img);

/* Whether every layer is already in the cache (always true for a rootfs
 * directory): then image_unpack() has nothing to do. */
bool image_cached(const image_t *img);

/* Unpack the layers that are not cached yet (blocking; see above). The
 * optional cancelled() is polled between chunks; when it returns true the
 * work stops with -ECANCELED. 0, or -errno with err set ("image <ref>:
 * layer sha256:…: digest mismatch (corrupt image)", "… unsafe or unusable
 * entry '../x': Path contains '..'"). Changes the working directory of the
 * process for the time of each extraction (libarchive writes relative to
 * it) and restores it: call it from a single-threaded process (a shim, a
 * test), never from the agent's loop. */
int image_unpack(const image_t *img, bool (*cancelled)(void), char *err, size_t errlen);

/* The overlayfs lowerdir option for the image: layer directories topmost
 * first, separated by ':'. With relative, layers are named relative to
 * image_layers_dir() (shorter options for many layers: mount from there).
 * A rootfs directory gives its own absolute path. The caller frees. */
char *image_lowerdirs(const image_t *img, bool relative);

/* <cache>/layers/sha256 (owned by img), or NULL without a cache. */
const char *image_layers_dir(const image_t *img);

/* Look a user up in the image's /etc/passwd and /etc/group (the topmost
 * layer that has them; the rootfs directory). "uid[:gid]" numbers are taken
 * as they are (a bare uid gets its primary group from /etc/passwd, else 0);
 * "name[:group]" needs the layers unpacked. img may be NULL: numbers only.
 * 0, -ENOENT (no such user) or -EINVAL. */
int image_resolve_user(const image_t *img, const char *user, unsigned *uid, unsigned *gid);

/* Remove unpack leftovers (.tmp-* directories of processes that are gone)
 * from cache_dir. Returns how many were removed. */
int image_cache_clean(const char *cache_dir);

/* Accepts NULL; NULLs the pointer. */
void image_destroy(image_t **img);

#endif
