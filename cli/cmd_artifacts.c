/* cmd_artifacts — `drover artifacts RUN [STEP]` lists the artifacts steps
 * produced; `drover artifact get RUN STEP NAME -o PATH [--force]` downloads
 * one.
 *
 * A download asks droverd for the step's artifacts (one ArtifactsRequest),
 * then reads each file's blob in pages of ARTIFACT_PAGE bytes (read_blob),
 * hashing while writing, and gives up on the first size or digest
 * mismatch. Everything is written under a temporary name next to PATH
 * (".NAME.drover-XXXXXX", a file or a directory) and renamed into place
 * only when complete, so PATH never holds a partial download; a failed one
 * removes its temporary. Without --force an existing PATH is refused
 * (checked before downloading, and again atomically by renameat2's
 * RENAME_NOREPLACE where the filesystem has it); with --force a directory
 * at PATH is swapped out (RENAME_EXCHANGE) and then removed.
 *
 * File paths inside a directory artifact come from the network: absolute
 * ones and ones with empty, "." or ".." components are refused before
 * anything is written, files are created with O_EXCL | O_NOFOLLOW inside a
 * directory this process has just made (mode 0700 until it is complete),
 * and modes keep only the permission bits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "cli.h"
#include "digest.h"
#include "fmt.h"
#include "doc.h"
#include "log.h"
#include "path.h"
#include "strbuf.h"
#include "table.h"
#include "util.h"

/* Bytes asked for per read_blob request. */
#define ARTIFACT_PAGE (1u << 20)

/* Characters of the digest shown in the table. */
#define SHORT_DIGEST 12

enum { OPT_OUTPUT = 1, OPT_FORCE };

static const cli_opt_t list_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {NULL, 0, false, 0},
};

static const cli_opt_t get_opts[] = {
    {"output", 'o', true, OPT_OUTPUT},
    {"force", 'f', false, OPT_FORCE},
    {NULL, 0, false, 0},
};

#define LIST_USAGE "drover artifacts RUN [STEP] [-o " CLI_OUTPUTS "]"
#define LIST_HELP                                                                                  \
    "List the artifacts the steps of run RUN produced (only STEP's with STEP; a\n"                 \
    "fan-out item is named like shard[2]): kind (file or dir), number of files,\n"                 \
    "total size and SHA-256 digest (a directory's is its manifest's; its first 12\n"               \
    "characters, all of it with -o wide). -o name prints \"STEP NAME\" lines.\n" CLI_OUTPUT_HELP
#define GET_USAGE "drover artifact get RUN STEP NAME -o PATH [--force]"
#define GET_HELP                                                                                   \
    "Download artifact NAME of step STEP of run RUN to PATH: a file artifact\n"                    \
    "becomes the file PATH, a directory artifact the directory PATH with each\n"                   \
    "file at its relative path and mode. Every file's SHA-256 is checked; PATH\n"                  \
    "appears only when everything was downloaded and checked.\n"                                   \
    "  -o, --output PATH  where to write it (its directory must exist)\n"                          \
    "  -f, --force        replace PATH if it exists\n"

/* ---------------------------------------------------------------- common */

/* Ask droverd for the artifacts of run (of step only, unless NULL). */
static int request_artifacts(api_t *api, const char *run, const char *step,
                             Drover__ApiResponse **resp)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__ArtifactsRequest ar = DROVER__ARTIFACTS_REQUEST__INIT;
    ar.run_id = (char *)run;
    ar.task = (char *)(step ? step : "");
    req.op_case = DROVER__API_REQUEST__OP_ARTIFACTS;
    req.artifacts = &ar;
    return api_call(api, &req, resp);
}

/* The hex digest, or "" when d is not a SHA-256 digest. */
static void hex_or_empty(const ProtobufCBinaryData *d, char out[DIGEST_HEX_LEN + 1])
{
    if (d->len == DIGEST_LEN)
        digest_hex(d->data, out);
    else
        out[0] = '\0';
}

/* ---------------------------------------------------------------- listing */

/* wide shows the whole digest, table its first SHORT_DIGEST characters. */
static void print_list_table(const Drover__ApiResponse *resp, bool wide)
{
    static const char *const headers[] = {"STEP", "ARTIFACT", "KIND", "FILES", "SIZE", "DIGEST"};
    table_t *t = table_new(6, headers);
    char buf[FMT_BUF], hex[DIGEST_HEX_LEN + 1];
    for (size_t i = 0; i < resp->n_artifacts; i++) {
        const Drover__ArtifactView *v = resp->artifacts[i];
        const Drover__Artifact *a = v->artifact;
        if (!a)
            continue;
        hex_or_empty(&a->digest, hex);
        if (!wide)
            hex[SHORT_DIGEST] = '\0';
        table_add(t, v->task, NULL);
        table_add(t, a->name, NULL);
        table_add(t, a->is_dir ? "dir" : "file", NULL);
        table_addf(t, "%zu", a->n_files);
        table_add(t, fmt_size(a->size, buf), NULL);
        table_add(t, hex, NULL);
    }
    table_print(t, stdout, 0, 0, fmt_color_ok(stdout));
    table_destroy(&t);
}

static void json_file(doc_t *j, const Drover__FileEntry *f)
{
    char mode[16], hex[DIGEST_HEX_LEN + 1];
    snprintf(mode, sizeof mode, "%04" PRIo32, f->mode & 07777);
    hex_or_empty(&f->digest, hex);
    doc_object_begin(j);
    doc_field_str(j, "path", f->path);
    doc_field_str(j, "mode", mode);
    doc_field_uint(j, "size", f->size);
    doc_field_str(j, "digest", hex);
    doc_object_end(j);
}

/* "STEP NAME" per artifact: the words `drover artifact get RUN` takes. */
static void print_list_names(const Drover__ApiResponse *resp)
{
    for (size_t i = 0; i < resp->n_artifacts; i++)
        if (resp->artifacts[i]->artifact) {
            fmt_put_clean(stdout, resp->artifacts[i]->task);
            fputc(' ', stdout);
            fmt_put_clean(stdout, resp->artifacts[i]->artifact->name);
            fputc('\n', stdout);
        }
}

static void print_list_doc(const Drover__ApiResponse *resp, cli_output_t o)
{
    char hex[DIGEST_HEX_LEN + 1];
    doc_t *j = cli_doc_writer(o);
    doc_array_begin(j);
    for (size_t i = 0; i < resp->n_artifacts; i++) {
        const Drover__ArtifactView *v = resp->artifacts[i];
        const Drover__Artifact *a = v->artifact;
        if (!a)
            continue;
        hex_or_empty(&a->digest, hex);
        doc_object_begin(j);
        doc_field_str(j, "step", v->task);
        doc_field_str(j, "name", a->name);
        doc_field_str(j, "kind", a->is_dir ? "dir" : "file");
        doc_field_uint(j, "size", a->size);
        doc_field_str(j, "digest", hex);
        doc_key(j, "files");
        doc_array_begin(j);
        for (size_t k = 0; k < a->n_files; k++)
            json_file(j, a->files[k]);
        doc_array_end(j);
        doc_object_end(j);
    }
    doc_array_end(j);
    doc_finish(&j);
}

int cmd_artifacts(cli_t *cli, int argc, char **argv)
{
    const char *run = NULL, *step = NULL;
    cli_output_t out = CLI_OUT_TABLE;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, list_opts, LIST_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(LIST_USAGE, LIST_HELP);
        if (opt == OPT_OUTPUT && cli_parse_output(LIST_USAGE, a.value, &out) < 0)
            return CLI_EXIT_USAGE;
        if (opt != ARGS_POSITIONAL)
            continue;
        if (run && step)
            return cli_usage_error(LIST_USAGE, "unexpected argument '%s'", a.value);
        *(run ? &step : &run) = a.value;
    }
    if (!run)
        return cli_usage_error(LIST_USAGE, "missing RUN");

    api_t *api = api_new(api_endpoint(cli->api));
    Drover__ApiResponse *resp = NULL;
    if (!api)
        return CLI_EXIT_ERROR;
    int rc = request_artifacts(api, run, step, &resp);
    api_destroy(&api);
    if (rc < 0)
        return CLI_EXIT_ERROR;
    if (cli_output_doc(out))
        print_list_doc(resp, out);
    else if (out == CLI_OUT_NAME)
        print_list_names(resp);
    else
        print_list_table(resp, out == CLI_OUT_WIDE);
    drover__api_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- get */

typedef struct {
    const char *run, *step, *name;
    const char *path; /* as given */
    bool force;
} get_args_t;

static int parse_get_args(cli_t *cli, int argc, char **argv, get_args_t *g)
{
    const char **slots[] = {&g->run, &g->step, &g->name};
    size_t n = 0;
    args_t a;
    int opt;
    args_init(&a, cli, argc, argv, get_opts, GET_USAGE);
    while ((opt = args_next(&a)) != ARGS_END) {
        if (opt == ARGS_ERROR)
            return CLI_EXIT_USAGE;
        if (opt == ARGS_HELP)
            return cli_help(GET_USAGE, GET_HELP), CLI_STOP;
        if (opt == OPT_OUTPUT)
            g->path = a.value;
        if (opt == OPT_FORCE)
            g->force = true;
        if (opt != ARGS_POSITIONAL)
            continue;
        if (n == 3)
            return cli_usage_error(GET_USAGE, "unexpected argument '%s'", a.value);
        *slots[n++] = a.value;
    }
    if (n < 3)
        return cli_usage_error(GET_USAGE, "missing %s",
                               n == 0   ? "RUN, STEP and NAME"
                               : n == 1 ? "STEP and NAME"
                                        : "NAME");
    if (!g->path || !*g->path)
        return cli_usage_error(GET_USAGE, "missing -o PATH");
    return 0;
}

/* Find g->name among the step's artifacts; the error (naming the ones
 * there are) is printed here. */
static const Drover__Artifact *find_artifact(const Drover__ApiResponse *resp, const get_args_t *g)
{
    for (size_t i = 0; i < resp->n_artifacts; i++) {
        const Drover__Artifact *a = resp->artifacts[i]->artifact;
        if (a && strcmp(resp->artifacts[i]->task, g->step) == 0 && strcmp(a->name, g->name) == 0)
            return a;
    }
    strbuf_t b = {0};
    for (size_t i = 0, k = 0; i < resp->n_artifacts; i++) {
        const Drover__Artifact *a = resp->artifacts[i]->artifact;
        if (a)
            sb_printf(&b, "%s%s", k++ ? ", " : "", a->name);
    }
    char *names = sb_take(&b);
    char *shown = fmt_clean(names, 0), *name = fmt_clean(g->name, 0);
    if (*shown)
        log_error("step %s of run %s has no artifact '%s'; its artifacts: %s", g->step, g->run,
                  name, shown);
    else
        log_error("step %s of run %s has no artifact '%s'; it has no artifacts", g->step, g->run,
                  name);
    cli_set_failure(CLI_EXIT_NOT_FOUND);
    free(name);
    free(shown);
    free(names);
    return NULL;
}

/* Refuse what cannot be written safely, before writing anything. */
static int check_artifact(const Drover__Artifact *a)
{
    if (!a->is_dir && a->n_files != 1) {
        log_error("artifact '%s' is a file with %zu entries in its listing; refusing it", a->name,
                  a->n_files);
        return -EPROTO;
    }
    for (size_t i = 0; i < a->n_files; i++) {
        const Drover__FileEntry *f = a->files[i];
        if (a->is_dir && !path_is_safe_relative(f->path)) {
            char *shown = fmt_clean(f->path, 0);
            log_error("artifact '%s' has a file at '%s', which is not a plain relative path "
                      "(absolute, or with an empty, '.' or '..' component); refusing it",
                      a->name, shown);
            free(shown);
            return -EPERM;
        }
        if (f->digest.len != DIGEST_LEN) {
            log_error("artifact '%s': a file has no SHA-256 digest in its listing", a->name);
            return -EPROTO;
        }
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Download f's blob into fd (at its current position), checking its size
 * and digest. what names the file in messages; dest is where it goes. */
static int fetch_file(api_t *api, const Drover__FileEntry *f, int fd, const char *what,
                      const char *dest)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__BlobRequest br = DROVER__BLOB_REQUEST__INIT;
    uint8_t got[DIGEST_LEN];
    uint64_t off = 0;
    int rc = 0;
    digest_ctx_t *dc = digest_begin();
    if (!dc) {
        log_error("digest_begin: cannot start a SHA-256 computation");
        return -ENOMEM;
    }
    br.digest = f->digest;
    req.op_case = DROVER__API_REQUEST__OP_READ_BLOB;
    req.read_blob = &br;
    while (off < f->size && rc == 0) {
        Drover__ApiResponse *resp = NULL;
        uint64_t left = f->size - off;
        br.offset = off;
        br.max_bytes = left < ARTIFACT_PAGE ? (uint32_t)left : ARTIFACT_PAGE;
        if (api_call(api, &req, &resp) < 0) {
            rc = -EIO;
            break;
        }
        size_t n = resp->blob.len;
        if (n == 0 || n > left) {
            log_error("%s: droverd sent %zu bytes at offset %" PRIu64 " of %" PRIu64, what, n, off,
                      f->size);
            rc = -EPROTO;
        } else {
            digest_update(dc, resp->blob.data, n);
            rc = write_all(fd, resp->blob.data, n);
            if (rc < 0)
                log_error("write %s: %s", dest, strerror(-rc));
            off += n;
        }
        drover__api_response__free_unpacked(resp, NULL);
    }
    if (rc < 0) {
        digest_abort(dc);
        return rc;
    }
    digest_final(dc, got);
    if (memcmp(got, f->digest.data, DIGEST_LEN) != 0) {
        char want_hex[DIGEST_HEX_LEN + 1], got_hex[DIGEST_HEX_LEN + 1];
        digest_hex(f->digest.data, want_hex);
        digest_hex(got, got_hex);
        log_error("%s: digest mismatch: expected sha256 %s, got %s", what, want_hex, got_hex);
        return -EBADMSG;
    }
    return 0;
}

/* Download f into the open file fd, then give it f's mode and flush it.
 * Closes fd. */
static int write_file(api_t *api, const Drover__FileEntry *f, int fd, const char *what,
                      const char *dest)
{
    int rc = fetch_file(api, f, fd, what, dest);
    mode_t mode = f->mode & 0777 ? f->mode & 0777 : 0644;
    if (rc == 0 && fchmod(fd, mode) < 0) {
        rc = -errno;
        log_error("fchmod %s: %s", dest, strerror(errno));
    }
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
        log_error("fsync %s: %s", dest, strerror(errno));
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
        log_error("close %s: %s", dest, strerror(errno));
    }
    return rc;
}

/* Every file of directory artifact a under the new directory tmp. */
static int write_dir(api_t *api, const Drover__Artifact *a, const char *tmp)
{
    int rc = 0;
    for (size_t i = 0; i < a->n_files && rc == 0; i++) {
        const Drover__FileEntry *f = a->files[i];
        char *dest = xasprintf("%s/%s", tmp, f->path);
        char *slash = strrchr(dest, '/'), *shown = fmt_clean(f->path, 0);
        char *what = xasprintf("artifact '%s', file '%s'", a->name, shown);
        *slash = '\0';
        rc = util_mkdir_p(dest, 0755);
        if (rc < 0)
            log_error("%s: mkdir %s: %s", what, dest, strerror(-rc));
        *slash = '/';
        if (rc == 0) {
            int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0) {
                rc = -errno;
                log_error("%s: create %s: %s", what, dest, strerror(errno));
            } else {
                rc = write_file(api, f, fd, what, dest);
            }
        }
        free(what);
        free(shown);
        free(dest);
    }
    if (rc == 0) {
        mode_t mask = umask(0);
        umask(mask);
        if (chmod(tmp, 0777 & ~mask) < 0) {
            rc = -errno;
            log_error("chmod %s: %s", tmp, strerror(errno));
        }
    }
    return rc;
}

/* Split path into the directory it is in and its last component
 * (trailing slashes dropped); both are allocated. -EINVAL (printed) when
 * it names no new file: "/", ".", "..". */
static int split_path(const char *path, char **dir, char **base)
{
    char *p = xstrdup(path);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    char *slash = strrchr(p, '/');
    const char *b = slash ? slash + 1 : p;
    if (!*b || strcmp(b, ".") == 0 || strcmp(b, "..") == 0) {
        log_error("-o %s: expected the path of a file or directory to create", path);
        free(p);
        return -EINVAL;
    }
    *base = xstrdup(b);
    if (!slash)
        *dir = xstrdup(".");
    else if (slash == p)
        *dir = xstrdup("/");
    else
        *dir = xstrndup(p, (size_t)(slash - p));
    free(p);
    return 0;
}

static int exists_error(const char *path)
{
    log_error("%s already exists (use --force to replace it)", path);
    return -EEXIST;
}

/* Report a failed rename of tmp to path (errno says why). */
static int rename_error(const char *tmp, const char *path)
{
    int err = errno;
    log_error("rename %s to %s: %s", tmp, path, strerror(err));
    return -err;
}

/* Move the complete download tmp to path. */
static int place(const char *tmp, const char *path, bool is_dir, bool force)
{
    struct stat st;
    bool exists = lstat(path, &st) == 0;
    if (!force) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            return exists_error(path);
        if (errno != EINVAL && errno != ENOSYS)
            return rename_error(tmp, path);
        if (exists) /* a filesystem without RENAME_NOREPLACE */
            return exists_error(path);
    } else if (exists && (is_dir || S_ISDIR(st.st_mode))) {
        /* rename() cannot replace a directory: swap, then remove the old one */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0) {
            int rc = util_rm_rf(tmp);
            if (rc < 0)
                log_warn("removing the old %s (now %s): %s", path, tmp, strerror(-rc));
            return 0;
        }
        if (errno != EINVAL && errno != ENOSYS)
            return rename_error(tmp, path);
        int rc = util_rm_rf(path);
        if (rc < 0) {
            log_error("removing %s: %s", path, strerror(-rc));
            return rc;
        }
    }
    if (rename(tmp, path) < 0)
        return rename_error(tmp, path);
    return 0;
}

/* Download a to g->path through a temporary next to it. */
static int download(api_t *api, const Drover__Artifact *a, const get_args_t *g)
{
    char *dir = NULL, *base = NULL, *tmp = NULL;
    bool made = false;
    int rc = split_path(g->path, &dir, &base);
    if (rc < 0)
        goto cleanup;
    tmp = xasprintf("%s/.%.100s.drover-XXXXXX", dir, base);
    if (a->is_dir) {
        made = mkdtemp(tmp) != NULL;
        rc = made ? write_dir(api, a, tmp) : -errno;
    } else {
        int fd = mkstemp(tmp);
        made = fd >= 0;
        rc = made ? 0 : -errno;
        if (made) {
            char *what = xasprintf("artifact '%s'", a->name);
            rc = write_file(api, a->files[0], fd, what, tmp);
            free(what);
        }
    }
    if (!made)
        log_error("cannot create a temporary %s in %s: %s", a->is_dir ? "directory" : "file", dir,
                  strerror(-rc));
    if (rc == 0)
        rc = place(tmp, g->path, a->is_dir, g->force);
    if (rc < 0 && made)
        util_rm_rf(tmp);
cleanup:
    free(tmp);
    free(base);
    free(dir);
    return rc;
}

int cmd_artifact_get(cli_t *cli, int argc, char **argv)
{
    get_args_t g = {0};
    struct stat st;
    int rc = parse_get_args(cli, argc, argv, &g);
    if (rc != 0)
        return cli_status(rc);
    if (!g.force && lstat(g.path, &st) == 0)
        return exists_error(g.path), CLI_EXIT_ERROR;

    api_t *api = api_new(api_endpoint(cli->api));
    Drover__ApiResponse *resp = NULL;
    if (!api)
        return CLI_EXIT_ERROR;
    rc = CLI_EXIT_ERROR;
    if (request_artifacts(api, g.run, g.step, &resp) < 0)
        goto cleanup;
    const Drover__Artifact *a = find_artifact(resp, &g);
    if (!a || check_artifact(a) < 0 || download(api, a, &g) < 0)
        goto cleanup;
    char size[FMT_BUF];
    printf("wrote %s (%zu file%s, %s)\n", g.path, a->n_files, a->n_files == 1 ? "" : "s",
           fmt_size(a->size, size));
    rc = CLI_EXIT_OK;
cleanup:
    if (resp)
        drover__api_response__free_unpacked(resp, NULL);
    api_destroy(&api);
    return rc;
}
