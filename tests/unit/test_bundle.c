/* test_bundle — a spec and the files it imports (common/bundle.c) and what
 * droverd does with them (scheduler/api.c, store.c, commit.c).
 *
 * bundle: `drover submit`'s walk reads each imported file once, breadth
 * first, whatever cycles; a file that cannot be read is an error at the
 * entry's line in the importing file; more than SPEC_MAX_IMPORTS files or
 * one over BUNDLE_MAX_FILE is refused; `run spec -o DIR` writes nothing
 * when one path would leave DIR, and never writes through a symlink.
 * droverd (a real one on a temp state dir, requests through api_handle):
 * a submit's imports are bounded again (count, paths, total bytes against
 * --max-spec); the spec is kept on the run until the commit creating it
 * writes it, then read from the store, across a restart, and gone with the
 * run; SpecError.file names the file an error is in, the path given for
 * the main spec included; tasks are listed as a tree (items after their
 * step).
 */
#define DROVER_TEST_SCHED
#include "helpers.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "strbuf.h"

/* Write text to dir/rel (its directories made). */
static void put(const char *dir, const char *rel, const char *text)
{
    char *path = xasprintf("%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    cr_assert_eq(util_mkdir_p(path, 0755), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    free(path);
}

static char *slurp(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel), *text = NULL;
    size_t len;
    int rc = util_read_file(path, 1 << 20, &text, &len);
    free(path);
    return rc == 0 ? text : NULL;
}

/* bundle_collect on dir/main.yaml. */
static int collect(const char *dir, Drover__SpecFile ***files, size_t *n, char *err, size_t len)
{
    char *main_path = xasprintf("%s/main.yaml", dir), *text = slurp(dir, "main.yaml");
    cr_assert_not_null(text);
    int rc = bundle_collect(main_path, text, strlen(text), files, n, err, len);
    free(text);
    free(main_path);
    return rc;
}

TestSuite(bundle, .timeout = 60);

Test(bundle, collect_reads_each_import_once_breadth_first)
{
    char *d = h_tmpdir(), err[1024] = "";
    put(d, "main.yaml",
        "name: m\nimports:\n  - lib/a.yaml\n  - {path: lib/b.yaml, as: bee}\nsteps: []\n");
    put(d, "lib/a.yaml", "imports: [b.yaml, c.yaml]\ntemplates: {}\n");
    put(d, "lib/b.yaml", "imports: [a.yaml]\ntemplates: {}\n"); /* a cycle: read once */
    put(d, "lib/c.yaml", "templates: {}\n");
    Drover__SpecFile **files = NULL;
    size_t n = 0;
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 3);
    const char *want[] = {"lib/a.yaml", "lib/b.yaml", "lib/c.yaml"};
    for (size_t i = 0; i < 3; i++) {
        char *text = slurp(d, want[i]);
        cr_expect_str_eq(files[i]->path, want[i]);
        cr_expect_eq(files[i]->text.len, strlen(text));
        cr_expect(memcmp(files[i]->text.data, text, strlen(text)) == 0, "%s", want[i]);
        free(text);
    }
    bundle_free(files, n);
    util_rm_rf(d);
    free(d);
}

Test(bundle, collect_main_imported_back_is_sent_with_its_text)
{
    char *d = h_tmpdir(), err[1024] = "";
    put(d, "main.yaml", "name: m\nimports: [lib/a.yaml]\nsteps: []\n");
    put(d, "lib/a.yaml", "imports: [../main.yaml]\ntemplates: {}\n");
    Drover__SpecFile **files = NULL;
    size_t n = 0;
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(files[1]->path, "main.yaml");
    cr_expect_eq(files[1]->text.len, strlen("name: m\nimports: [lib/a.yaml]\nsteps: []\n"));
    bundle_free(files, n);
    util_rm_rf(d);
    free(d);
}

Test(bundle, collect_unreadable_import_names_file_line_and_path)
{
    char *d = h_tmpdir(), err[1024] = "";
    put(d, "main.yaml",
        "name: m\nimports:\n  - lib/a.yaml\n  - {path: lib/a2.yaml, as: x}\nsteps: []\n");
    put(d, "lib/a.yaml", "# one\nimports:\n  - ok.yaml\n  - missing.yaml\ntemplates: {}\n");
    put(d, "lib/ok.yaml", "templates: {}\n");
    put(d, "lib/a2.yaml", "templates: {}\n");
    Drover__SpecFile **files = (Drover__SpecFile **)1;
    size_t n = 7;
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), -ENOENT);
    cr_expect_null(files);
    cr_expect_eq(n, 0);
    char *want = xasprintf("%s/lib/a.yaml:4:5: cannot read imported file 'lib/missing.yaml' "
                           "(%s/lib/missing.yaml): No such file or directory",
                           d, d);
    cr_expect_str_eq(err, want);
    free(want);
    /* the main spec's own entry: its path as given, the entry's column */
    char *a2 = xasprintf("%s/lib/a2.yaml", d);
    unlink(a2);
    free(a2);
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), -ENOENT);
    want = xasprintf("%s/main.yaml:4:12: cannot read imported file 'lib/a2.yaml'", d);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "%s", err);
    free(want);
    util_rm_rf(d);
    free(d);
}

Test(bundle, collect_bounds_count_and_size)
{
    char *d = h_tmpdir(), err[1024] = "";
    strbuf_t b = {0};
    sb_puts(&b, "name: m\nimports:\n");
    for (unsigned i = 0; i <= SPEC_MAX_IMPORTS; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "f%03u.yaml", i);
        sb_printf(&b, "  - %s\n", rel);
        put(d, rel, "templates: {}\n");
    }
    sb_puts(&b, "steps: []\n");
    put(d, "main.yaml", b.buf);
    sb_free(&b);
    Drover__SpecFile **files = NULL;
    size_t n = 0;
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), -E2BIG);
    cr_expect(strstr(err, "main.yaml:103:5: too many imports") != NULL, "%s", err);

    /* one byte over BUNDLE_MAX_FILE */
    char *big = xmalloc(BUNDLE_MAX_FILE + 2);
    memset(big, '#', BUNDLE_MAX_FILE + 1);
    big[BUNDLE_MAX_FILE + 1] = '\0';
    put(d, "main.yaml", "name: m\nimports: [big.yaml]\nsteps: []\n");
    put(d, "big.yaml", big);
    free(big);
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), -EFBIG);
    cr_expect(strstr(err, "main.yaml:2:11: imported file 'big.yaml'") != NULL, "%s", err);
    cr_expect(strstr(err, "larger than 1 MiB") != NULL, "%s", err);
    util_rm_rf(d);
    free(d);
}

Test(bundle, collect_sends_a_file_it_cannot_scan)
{
    /* not YAML: sent as it is, the compiler in droverd says what is wrong */
    char *d = h_tmpdir(), err[1024] = "";
    put(d, "main.yaml", "name: m\nimports: [bad.yaml]\nsteps: []\n");
    put(d, "bad.yaml", "imports: [unclosed\n");
    Drover__SpecFile **files = NULL;
    size_t n = 0;
    cr_assert_eq(collect(d, &files, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(files[0]->path, "bad.yaml");
    bundle_free(files, n);
    util_rm_rf(d);
    free(d);
}

Test(bundle, collect_from_standard_input_is_relative_to_the_current_directory)
{
    char *d = h_tmpdir(), err[1024] = "";
    put(d, "lib/a.yaml", "templates: {}\n");
    const char *text = "name: m\nimports: [lib/a.yaml, lib/none.yaml]\nsteps: []\n";
    cr_assert_eq(chdir(d), 0);
    Drover__SpecFile **files = NULL;
    size_t n = 0;
    cr_assert_eq(bundle_collect(NULL, text, strlen(text), &files, &n, err, sizeof err), -ENOENT);
    const char *want = "<stdin>:2:23: cannot read imported file 'lib/none.yaml' (lib/none.yaml)";
    cr_expect(strncmp(err, want, strlen(want)) == 0, "%s", err);
    text = "name: m\nimports: [lib/a.yaml]\nsteps: []\n";
    cr_assert_eq(bundle_collect(NULL, text, strlen(text), &files, &n, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(files[0]->path, "lib/a.yaml");
    bundle_free(files, n);
    util_rm_rf(d);
    free(d);
}

Test(bundle, import_paths)
{
    const char *ok[] = {"a.yaml", "lib/a.yaml", "../a.yaml", "../../lib/x:1.yaml", NULL};
    const char *bad[] = {"",    "/etc/passwd", "a/../b.yaml", "./a.yaml",  "a//b.yaml", "..",
                         "../", "../..",       "a/",          "a\nb.yaml", "\x1b[2J",   NULL};
    for (size_t i = 0; ok[i]; i++)
        cr_expect(bundle_path_ok(ok[i]), "'%s' should be accepted", ok[i]);
    for (size_t i = 0; bad[i]; i++)
        cr_expect(!bundle_path_ok(bad[i]), "'%s' should be refused", bad[i]);
    cr_expect(!bundle_path_ok(NULL));
}

static Drover__SpecFile *file(const char *path, const char *text)
{
    Drover__SpecFile *f = xmalloc(sizeof *f);
    drover__spec_file__init(f);
    f->path = xstrdup(path);
    f->text.data = (uint8_t *)xstrdup(text);
    f->text.len = strlen(text);
    return f;
}

Test(bundle, write_round_trip_and_refusals)
{
    char *d = h_tmpdir(), err[1024] = "";
    char *out = xasprintf("%s/out", d);
    Drover__SpecFile *files[3] = {file("lib/a.yaml", "A\n"), file("b.yaml", "B\n"),
                                  file("../up.yaml", "U\n")};
    const uint8_t main_text[] = "M\n";
    cr_assert_eq(bundle_write(out, "main.yaml", main_text, 2, files, 2, err, sizeof err), 0, "%s",
                 err);
    char *got = slurp(out, "main.yaml");
    cr_expect_str_eq(got, "M\n");
    free(got);
    got = slurp(out, "lib/a.yaml");
    cr_expect_str_eq(got, "A\n");
    free(got);

    /* a path leaving DIR: refused, nothing written */
    char *out2 = xasprintf("%s/out2", d);
    cr_assert_eq(bundle_write(out2, "main.yaml", main_text, 2, files, 3, err, sizeof err), -EPERM);
    cr_expect(strstr(err, "'../up.yaml' would be written outside") != NULL, "%s", err);
    struct stat st;
    cr_expect_neq(stat(out2, &st), 0, "-o DIR was made although a path was refused");
    cr_expect_eq(bundle_write(out2, "..", main_text, 2, files, 1, err, sizeof err), -EPERM);
    cr_expect_eq(bundle_write(out2, "a/b.yaml", main_text, 2, files, 1, err, sizeof err), -EPERM);

    /* a symlink where a file goes: not followed */
    put(d, "victim", "keep\n");
    char *victim = xasprintf("%s/victim", d), *link = xasprintf("%s/lib/a.yaml", out);
    unlink(link);
    cr_assert_eq(symlink(victim, link), 0);
    cr_expect_eq(bundle_write(out, "main.yaml", main_text, 2, files, 2, err, sizeof err), -ELOOP);
    got = slurp(d, "victim");
    cr_expect_str_eq(got, "keep\n");
    free(got);
    for (size_t i = 0; i < 3; i++)
        drover__spec_file__free_unpacked(files[i], NULL);
    free(link);
    free(victim);
    free(out2);
    free(out);
    util_rm_rf(d);
    free(d);
}

/* ------------------------------------------------------------ droverd */

TestSuite(spec_api, .init = h_sched_setup, .fini = h_sched_teardown, .timeout = 60);

/* One API request as role; the reply (caller frees). */
static Drover__ApiResponse *call_as(api_role_t role, const Drover__ApiRequest *req)
{
    api_caller_t who = {.role = role, .name = "tester"};
    size_t len = drover__api_request__get_packed_size(req);
    uint8_t *buf = xmalloc(len ? len : 1);
    drover__api_request__pack(req, buf);
    api_handle_as(s, &who, zframe_new("cli-1", 5), buf, len);
    free(buf);
    api_reply_t *last = s->replies.head;
    cr_assert_not_null(last, "no reply queued");
    while (last->next)
        last = last->next;
    Drover__ApiResponse *resp = drover__api_response__unpack(NULL, last->len, last->data);
    cr_assert_not_null(resp);
    return resp;
}

static Drover__ApiResponse *submit(const char *file, const char *spec, Drover__SpecFile **imports,
                                   size_t n)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__SubmitRequest sub = DROVER__SUBMIT_REQUEST__INIT;
    Drover__KeyValue kv = DROVER__KEY_VALUE__INIT, *kvs[1] = {&kv};
    kv.key = "who";
    kv.value = "me";
    sub.file = (char *)file;
    sub.spec.data = (uint8_t *)spec;
    sub.spec.len = strlen(spec);
    sub.imports = imports;
    sub.n_imports = n;
    sub.params = kvs;
    sub.n_params = strstr(spec, "params:") ? 1 : 0;
    req.op_case = DROVER__API_REQUEST__OP_SUBMIT;
    req.submit = &sub;
    return call_as(API_ROLE_SUBMIT, &req);
}

static Drover__ApiResponse *get_spec(const char *id)
{
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = (char *)id;
    req.op_case = DROVER__API_REQUEST__OP_GET_SPEC;
    req.get_spec = &rr;
    return call_as(API_ROLE_READ, &req); /* read may */
}

static const char *MAIN = "name: m\nparams: {who: x}\nimports: [lib/a.yaml]\n"
                          "steps:\n  - {name: s, command: ['true']}\n";

static void expect_source(const Drover__RunSpecRecord *rec)
{
    cr_assert_not_null(rec);
    cr_expect_str_eq(rec->file, "dir/main.yaml");
    cr_expect_eq(rec->text.len, strlen(MAIN));
    cr_expect(memcmp(rec->text.data, MAIN, rec->text.len) == 0);
    cr_assert_eq(rec->n_imports, 1);
    cr_expect_str_eq(rec->imports[0]->path, "lib/a.yaml");
    cr_expect_eq(rec->imports[0]->text.len, strlen("templates: {}\n"));
    cr_assert_eq(rec->n_params, 1);
    cr_expect_str_eq(rec->params[0]->value, "me");
}

Test(spec_api, spec_kept_with_the_run_until_deleted)
{
    Drover__SpecFile *imports[1] = {file("lib/a.yaml", "templates: {}\n")};
    Drover__ApiResponse *resp = submit("dir/main.yaml", MAIN, imports, 1);
    cr_assert_str_eq(resp->error, "");
    char *id = xstrdup(resp->run_id);
    drover__api_response__free_unpacked(resp, NULL);
    run_t *r = dag_find_run(s, id);
    cr_assert_not_null(r);
    cr_assert_not_null(r->source, "kept on the run until the commit");
    Drover__RunSpecRecord *stored = NULL;
    cr_expect_eq(store_get_spec(s->store, id, &stored), -ENOENT);
    resp = get_spec(id); /* before the commit: from the run */
    expect_source(resp->spec);
    drover__api_response__free_unpacked(resp, NULL);

    cr_assert_eq(commit_journal(s), 0);
    cr_expect_null(r->source, "freed once stored");
    cr_assert_eq(store_get_spec(s->store, id, &stored), 0);
    expect_source(stored);
    drover__run_spec_record__free_unpacked(stored, NULL);

    h_sched_restart();
    resp = get_spec(id);
    cr_expect_str_eq(resp->error, "");
    expect_source(resp->spec);
    drover__api_response__free_unpacked(resp, NULL);

    /* deleted with the run, in the same commit */
    r = dag_find_run(s, id);
    dag_cancel_run(s, r); /* end it */
    cr_assert_eq(r->unfinished, 0);
    cr_assert_eq(commit_journal(s), 0);
    cr_assert_eq(dag_delete_run(s, r), 0);
    cr_assert_eq(commit_journal(s), 0);
    cr_expect_eq(store_get_spec(s->store, id, &stored), -ENOENT);
    resp = get_spec(id);
    cr_expect_eq(resp->error_code, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND);
    drover__api_response__free_unpacked(resp, NULL);
    drover__spec_file__free_unpacked(imports[0], NULL);
    free(id);
}

Test(spec_api, errors_name_their_file)
{
    /* the main spec's errors keep the name it was submitted as */
    Drover__ApiResponse *resp = submit("x/y/m.yaml", "name: m\nsteps: 3\n", NULL, 0);
    cr_expect_eq(resp->error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
    cr_expect(strncmp(resp->error, "x/y/m.yaml:2:", 13) == 0, "%s", resp->error);
    cr_assert_eq(resp->n_spec_errors, 1, "%s", resp->error);
    cr_expect_str_eq(resp->spec_errors[0]->file, "x/y/m.yaml");
    cr_expect_eq(resp->spec_errors[0]->line, 2);
    drover__api_response__free_unpacked(resp, NULL);

    /* an imported file's, its path, ':' in it or not */
    Drover__SpecFile *imports[1] = {file("lib/x:1.yaml", "templates: [unclosed\n")};
    resp = submit("a:2:3.yaml",
                  "name: m\nimports: [{path: 'lib/x:1.yaml', as: x}]\n"
                  "steps:\n  - {name: s, command: ['true']}\n",
                  imports, 1);
    cr_expect_eq(resp->error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
    bool found = false;
    for (size_t i = 0; i < resp->n_spec_errors; i++)
        found |= strcmp(resp->spec_errors[i]->file, "lib/x:1.yaml") == 0 &&
                 resp->spec_errors[i]->line > 0;
    cr_expect(found, "no SpecError names lib/x:1.yaml: %s", resp->error);
    drover__api_response__free_unpacked(resp, NULL);
    drover__spec_file__free_unpacked(imports[0], NULL);
    cr_expect_eq(s->dag.n_runs, 0);
}

Test(spec_api, imports_bounded_whatever_the_client)
{
    const char *spec = "name: m\nsteps:\n  - {name: s, command: ['true']}\n";
    Drover__SpecFile *many[SPEC_MAX_IMPORTS + 1];
    for (size_t i = 0; i <= SPEC_MAX_IMPORTS; i++) {
        char p[32];
        snprintf(p, sizeof p, "f%zu.yaml", i);
        many[i] = file(p, "");
    }
    Drover__ApiResponse *resp = submit("m.yaml", spec, many, SPEC_MAX_IMPORTS + 1);
    cr_expect(strstr(resp->error, "imports 101 files; the limit is 100") != NULL, "%s",
              resp->error);
    drover__api_response__free_unpacked(resp, NULL);
    for (size_t i = 0; i <= SPEC_MAX_IMPORTS; i++)
        drover__spec_file__free_unpacked(many[i], NULL);

    const char *bad[] = {"/etc/passwd", "a/../../b", "", NULL};
    for (size_t i = 0; bad[i]; i++) {
        Drover__SpecFile *f[1] = {file(bad[i], "")};
        resp = submit("m.yaml", spec, f, 1);
        cr_expect_eq(resp->error_code, DROVER__API_ERROR_CODE__API_ERROR_INVALID);
        cr_expect(strstr(resp->error, "not a relative path") != NULL, "%s", resp->error);
        drover__api_response__free_unpacked(resp, NULL);
        drover__spec_file__free_unpacked(f[0], NULL);
    }
    Drover__SpecFile *twice[2] = {file("a.yaml", ""), file("a.yaml", "")};
    resp = submit("m.yaml", spec, twice, 2);
    cr_expect(strstr(resp->error, "'a.yaml' is sent twice") != NULL, "%s", resp->error);
    drover__api_response__free_unpacked(resp, NULL);

    /* all the bytes together against --max-spec */
    s->cfg.spec_limits.max_bytes = 100;
    Drover__SpecFile *big[1] = {
        file("a.yaml", "# sixty bytes of comment or more: the spec and it pass 100\n")};
    resp = submit("m.yaml", spec, big, 1);
    cr_expect(strstr(resp->error, "bytes together; the limit is 100") != NULL, "%s", resp->error);
    drover__api_response__free_unpacked(resp, NULL);
    cr_expect_eq(s->counters.over_limits, 6);
    cr_expect_eq(s->dag.n_runs, 0);
    for (size_t i = 0; i < 2; i++)
        drover__spec_file__free_unpacked(twice[i], NULL);
    drover__spec_file__free_unpacked(big[0], NULL);
}

Test(spec_api, get_spec_of_no_run)
{
    Drover__ApiResponse *resp = get_spec("r999999");
    cr_expect_eq(resp->error_code, DROVER__API_ERROR_CODE__API_ERROR_NOT_FOUND);
    cr_expect_str_eq(resp->error, "no run 'r999999'");
    cr_expect_null(resp->spec);
    drover__api_response__free_unpacked(resp, NULL);
}

Test(spec_api, tasks_listed_as_a_tree)
{
    run_t *r = h_submit(s, "name: t\nsteps:\n"
                           "  - {name: fan, for_each: [a, b, c], command: ['true']}\n"
                           "  - {name: mid, command: ['true']}\n"
                           "  - {name: after, needs: [fan], for_each: [x], command: ['true']}\n");
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = r->rec->id;
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    Drover__ApiResponse *resp = call_as(API_ROLE_READ, &req);
    cr_assert_not_null(resp->run);
    const char *want[] = {"fan", "fan[0]", "fan[1]", "fan[2]", "mid", "after"};
    cr_assert_eq(resp->run->n_tasks, 6);
    for (size_t i = 0; i < 6; i++) {
        const Drover__TaskView *tv = resp->run->tasks[i];
        cr_expect_str_eq(tv->name, want[i]);
        cr_expect_str_eq(tv->group, "");
        cr_expect_eq(tv->depth, 0);
        cr_expect(!tv->is_group);
        cr_expect_str_eq(tv->template_, "");
    }
    drover__api_response__free_unpacked(resp, NULL);
}

Test(spec_api, group_members_listed_under_their_group)
{
    const char *yaml = "name: t\n"
                       "templates:\n"
                       "  pair:\n"
                       "    inputs: {params: {x: null}}\n"
                       "    steps:\n"
                       "      - {name: a, command: [echo, '{{inputs.params.x}}']}\n"
                       "      - {name: b, needs: [a], command: ['true']}\n"
                       "steps:\n"
                       "  - {name: g, uses: pair, for_each: [p, q], with: {x: '{{item}}'}}\n"
                       "  - {name: s, needs: [g], command: ['true']}\n";
    char err[2048] = "";
    spec_t *spec = NULL;
    cr_assert_eq(spec_parse("t.yaml", yaml, strlen(yaml), NULL, 0, &spec, err, sizeof err), 0, "%s",
                 err);
    run_t *r = dag_create_run(s, spec, "t.yaml", false);
    spec_destroy(&spec);
    Drover__ApiRequest req = DROVER__API_REQUEST__INIT;
    Drover__RunRequest rr = DROVER__RUN_REQUEST__INIT;
    rr.id = r->rec->id;
    req.op_case = DROVER__API_REQUEST__OP_GET_RUN;
    req.get_run = &rr;
    Drover__ApiResponse *resp = call_as(API_ROLE_READ, &req);
    cr_assert_not_null(resp->run);
    static const struct {
        const char *name, *group;
        uint32_t depth;
        bool is_group;
    } want[] = {{"g", "", 0, true},           {"g[0]", "", 0, true}, {"g[0].a", "g[0]", 1, false},
                {"g[0].b", "g[0]", 1, false}, {"g[1]", "", 0, true}, {"g[1].a", "g[1]", 1, false},
                {"g[1].b", "g[1]", 1, false}, {"s", "", 0, false}};
    cr_assert_eq(resp->run->n_tasks, 8);
    for (size_t i = 0; i < 8; i++) {
        const Drover__TaskView *tv = resp->run->tasks[i];
        cr_expect_str_eq(tv->name, want[i].name);
        cr_expect_str_eq(tv->group, want[i].group, "%s", tv->name);
        cr_expect_eq(tv->depth, want[i].depth, "%s", tv->name);
        cr_expect_eq(tv->is_group, want[i].is_group, "%s", tv->name);
        cr_expect_str_eq(tv->template_, want[i].is_group ? "pair" : "", "%s", tv->name);
    }
    drover__api_response__free_unpacked(resp, NULL);
}
