/* keys — see keys.h. */
#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static int check_file(const char *path, bool secret, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "key file %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s: not a regular file", path);
        return -EINVAL;
    }
    if (secret && (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "key file %s is readable by group or others (mode %04o): refused; "
                 "run chmod 600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
        return -EPERM;
    }
    return 0;
}

static int load(const char *path, bool secret, zcert_t **cert, char *err, size_t errlen)
{
    *cert = NULL;
    int rc = check_file(path, secret, err, errlen);
    if (rc < 0)
        return rc;
    /* zcert_load tries PATH_secret first: name the file we mean exactly. */
    zconfig_t *root = zconfig_load(path);
    const char *pub = root ? zconfig_get(root, "/curve/public-key", NULL) : NULL;
    const char *sec = root ? zconfig_get(root, "/curve/secret-key", NULL) : NULL;
    if (!pub || strlen(pub) != 40 || (secret && (!sec || strlen(sec) != 40))) {
        snprintf(err, errlen, "key file %s: no valid CURVE %s key (make one with drover keygen)",
                 path, secret ? "secret" : "public");
        zconfig_destroy(&root);
        return -EINVAL;
    }
    uint8_t pub_bin[32], sec_bin[32] = {0};
    if (zmq_z85_decode(pub_bin, pub) && (!secret || zmq_z85_decode(sec_bin, sec)))
        *cert = zcert_new_from(pub_bin, sec_bin);
    zconfig_t *meta = zconfig_locate(root, "metadata");
    for (zconfig_t *m = meta ? zconfig_child(meta) : NULL; m && *cert; m = zconfig_next(m))
        zcert_set_meta(*cert, zconfig_name(m), "%s", zconfig_value(m));
    zconfig_destroy(&root);
    if (!*cert) {
        snprintf(err, errlen, "key file %s: invalid key text", path);
        return -EINVAL;
    }
    return 0;
}

int keys_load_secret(const char *path, zcert_t **cert, char *err, size_t errlen)
{
    return load(path, true, cert, err, errlen);
}

int keys_load_public(const char *path, zcert_t **cert, char *err, size_t errlen)
{
    return load(path, false, cert, err, errlen);
}

int keys_load_dir(const char *dir, zhashx_t **out, char *err, size_t errlen)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "key directory %s: %s", dir, strerror(e));
        return -e;
    }
    zhashx_t *h = zhashx_new();
    zhashx_set_destructor(h, util_free_item);
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".key") != 0)
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        char why[512];
        zcert_t *cert = NULL;
        if (keys_load_public(path, &cert, why, sizeof why) < 0) {
            log_warn("%s (skipped)", why);
            free(path);
            continue;
        }
        keys_entry_t *k = xcalloc(1, sizeof *k);
        snprintf(k->key, sizeof k->key, "%s", zcert_public_txt(cert));
        const char *name = zcert_meta(cert, "name");
        if (name && *name)
            snprintf(k->name, sizeof k->name, "%s", name);
        else
            snprintf(k->name, sizeof k->name, "%.*s", (int)(n - 4), e->d_name);
        const char *role = zcert_meta(cert, "role");
        snprintf(k->role, sizeof k->role, "%s", role ? role : "");
        if (zhashx_insert(h, k->key, k) != 0) {
            log_warn("key file %s: the same key as another file (skipped)", path);
            free(k);
        }
        zcert_destroy(&cert);
        free(path);
    }
    closedir(d);
    *out = h;
    return 0;
}

static int write_private(const char *path, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path,
                 e == EEXIST ? "exists (remove it first to make a new key)" : strerror(e));
        return -e;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rc = w == (ssize_t)len && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (rc < 0)
        snprintf(err, errlen, "%s: write failed", path);
    return rc;
}

int keys_generate(const char *dir, const char *name, const char *role, char *err, size_t errlen)
{
    zcert_t *cert = zcert_new();
    if (!cert) {
        snprintf(err, errlen, "cannot make a key pair (libsodium)");
        return -EIO;
    }
    char *meta = role ? xasprintf("    name = \"%s\"\n    role = \"%s\"\n", name, role)
                      : xasprintf("    name = \"%s\"\n", name);
    /* What the public half is for: droverd's own key goes to agents and
     * CLI users, never into its own authorized-keys. */
    const char *use =
        strcmp(name, "droverd") == 0 && !role
            ? "#   drover public key of droverd (the scheduler): agents' scheduler-key,\n"
              "#   CLI users' --server-key; not for droverd's authorized-keys\n"
        : role ? "#   drover public key of CLI user %s: copy it to droverd's api-keys directory\n"
               : "#   drover public key of agent %s: copy it to droverd's authorized-keys\n"
                 "#   directory (a CLI user's key, made with --role, goes to api-keys)\n";
    char *head = xasprintf(use, name);
    char *pub = xasprintf("%smetadata\n%scurve\n    public-key = \"%s\"\n", head, meta,
                          zcert_public_txt(cert));
    free(head);
    char *sec = xasprintf("#   drover SECRET key of %s: keep it on its machine, mode 0600\n"
                          "metadata\n%scurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
                          name, meta, zcert_public_txt(cert), zcert_secret_txt(cert));
    char *pub_path = xasprintf("%s/%s.key", dir, name);
    char *sec_path = xasprintf("%s/%s.key_secret", dir, name);
    int rc = write_private(sec_path, sec, err, errlen);
    if (rc == 0 && (rc = write_private(pub_path, pub, err, errlen)) < 0)
        unlink(sec_path);
    free(meta);
    free(pub);
    free(sec);
    free(pub_path);
    free(sec_path);
    zcert_destroy(&cert);
    return rc;
}

bool keys_endpoint_is_local(const char *ep)
{
    static const char *const local[] = {"ipc://",           "inproc://",    "tcp://127.",
                                        "tcp://localhost:", "tcp://[::1]:", "tcp://lo:"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        if (strncmp(ep, local[i], strlen(local[i])) == 0)
            return true;
    }
    return false;
}
