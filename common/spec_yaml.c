/* spec_yaml — YAML text -> the spec compiler's node tree (spec_internal.h).
 *
 * libyaml's event API feeds a small tree of our own (node_t: map, sequence
 * or scalar, each with its 1-based line and column). Building the tree
 * ourselves, rather than using yaml_parser_load(), lets us refuse aliases
 * as they arrive (no billion laughs), bound nesting depth and node count,
 * and catch duplicate keys in every mapping in one place. The only file of
 * drover that calls libyaml for specs (config.c reads daemon config files).
 */
#include "spec_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

void node_free(node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->str);
    free(n);
}

bool is_null(const node_t *n)
{
    return n->type == N_SCALAR && n->plain &&
           (n->len == 0 || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
            !strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

/* Line and column (1-based) of byte offset off in text. */
void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, cl = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            cl = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            cl++;
        }
    }
    *line = l;
    *col = cl;
}

/* True when text holds only blank lines and comments (libyaml itself
 * rejects some of these, e.g. a tab on an otherwise empty line). */
bool blank_text(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        i = 3; /* UTF-8 byte order mark */
    while (i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
            i++;
        if (i < len && text[i] == '#') {
            while (i < len && text[i] != '\n')
                i++;
        }
        if (i < len && text[i] != '\n')
            return false;
        i++;
    }
    return true;
}

int cmp_key(const void *a, const void *b)
{
    const node_t *x = *(node_t *const *)a, *y = *(node_t *const *)b;
    int r = strcmp(x->str, y->str);
    if (r)
        return r;
    /* same text: file order, so the later one is reported */
    return (x->line != y->line) ? (x->line < y->line ? -1 : 1)
                                : (x->col < y->col ? -1 : (x->col > y->col));
}

/* Every key of a finished mapping is a scalar and appears once. */
static int check_map_keys(ctx_t *c, node_t *m)
{
    size_t n = map_len(m);
    node_t **keys = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (map_key(m, i)->type != N_SCALAR)
            return fail(c, map_key(m, i), "mapping keys must be plain strings");
    }
    if (n < 2)
        return 0;
    keys = xmalloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++)
        keys[i] = map_key(m, i);
    qsort(keys, n, sizeof *keys, cmp_key);
    const node_t *dup = NULL;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i - 1]->str, keys[i]->str))
            continue;
        if (!dup || keys[i]->line < dup->line ||
            (keys[i]->line == dup->line && keys[i]->col < dup->col))
            dup = keys[i];
    }
    if (dup)
        rc = fail(c, dup, "duplicate key '%s'", show(c, dup->str));
    free(keys);
    return rc;
}

static void node_add(node_t *parent, node_t *kid)
{
    if (parent->nkids == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 4;
        parent->kids = xrealloc(parent->kids, parent->cap * sizeof *parent->kids);
    }
    parent->kids[parent->nkids++] = kid;
}

/* Parse text into *root (NULL for an empty stream). 0 or -EINVAL. */
int load_tree(ctx_t *c, const char *text, size_t len, node_t **root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    node_t *stack[SPEC_MAX_DEPTH];
    int depth = 0, docs = 0, rc = 0;
    bool have_event = false, done = false;
    node_t *top = NULL;

    if (!yaml_parser_initialize(&p))
        return fail_at(c, 1, 1, "cannot start the YAML parser (out of memory)");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            int line = (int)p.problem_mark.line + 1, col = (int)p.problem_mark.column + 1;
            if (p.error == YAML_READER_ERROR)
                offset_pos(text, len, p.problem_offset, &line, &col);
            rc = fail_at(c, line, col, "not YAML: %s", p.problem ? p.problem : "parse error");
            goto cleanup;
        }
        have_event = true;
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        node_t *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = fail_at(c, line, col, "only one YAML document is allowed in a spec");
                goto cleanup;
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(c, line, col, "aliases are not allowed (*%s)",
                         show(c, (const char *)ev.data.alias.anchor));
            goto cleanup;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++c->nodes > SPEC_MAX_NODES) {
                rc = fail_at(c, line, col, "spec is too large (more than %u YAML nodes)",
                             SPEC_MAX_NODES);
                goto cleanup;
            }
            n = xcalloc(1, sizeof *n);
            n->line = line;
            n->col = col;
            n->file = c->file;
            if (ev.type == YAML_SCALAR_EVENT) {
                n->type = N_SCALAR;
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->len = ev.data.scalar.length;
                n->str = xstrndup((const char *)ev.data.scalar.value, n->len);
                if (memchr(ev.data.scalar.value, '\0', n->len)) {
                    node_free(n);
                    rc = fail_at(c, line, col, "strings may not contain NUL characters");
                    goto cleanup;
                }
            } else {
                n->type = ev.type == YAML_MAPPING_START_EVENT ? N_MAP : N_SEQ;
            }
            if (depth > 0)
                node_add(stack[depth - 1], n);
            else
                top = n; /* one document has one root */
            if (n->type != N_SCALAR) {
                if (depth == SPEC_MAX_DEPTH) {
                    rc = fail_at(c, line, col, "nesting is deeper than %d levels", SPEC_MAX_DEPTH);
                    goto cleanup;
                }
                stack[depth++] = n;
            }
            break;
        case YAML_MAPPING_END_EVENT:
            if (depth > 0 && check_map_keys(c, stack[depth - 1]) < 0) {
                rc = -EINVAL;
                goto cleanup;
            }
            depth--;
            break;
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        have_event = false;
    }
    *root = top;
    top = NULL;
cleanup:
    if (have_event)
        yaml_event_delete(&ev);
    node_free(top);
    yaml_parser_delete(&p);
    return rc;
}
