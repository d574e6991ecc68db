/* expr — the `when:` condition language of pipeline steps, and {{ }}
 * template expansion.
 *
 * Grammar (README.md, "Pipeline spec"):
 *   or      := and ('||' and)*
 *   and     := unary ('&&' unary)*
 *   unary   := '!' unary | primary
 *   primary := '(' or ')' | cmp
 *   cmp     := operand (('=='|'!='|'<'|'>'|'<='|'>=') operand)?
 * So '!' binds tighter than '&&', '&&' tighter than '||', and a comparison
 * tighter than '!': "!a == b" is "!(a == b)". Comparisons do not chain, and
 * only operands are compared ("(a) == b" is an error).
 *
 * Operands: a template reference {{ ref }} (one token whatever it holds);
 * a '...' or "..." string (escapes \\ \" \' only; a {{ ref }} inside is
 * replaced by the resolved text, so a string cannot hold a literal "{{");
 * a number (decimal: optional sign, digits, fraction, exponent); a bare
 * word [A-Za-z0-9_.:/-]+. Every operand is text once resolved: a resolved
 * value is never re-parsed, whatever operators or spaces it contains.
 *
 * Comparison is numeric when BOTH values are decimal numbers in full (the
 * number syntax above, finite as strtod reads it; no surrounding spaces, no
 * hex, inf or nan), else byte-wise string comparison. Quoting does not
 * matter: '10' > '9' is true, as is "{{params.n}}" > 9 for n = 10, since a
 * resolved value cannot say whether it was quoted. A lone operand is true
 * for "true"/"yes" (any case) or a non-zero number, false for
 * "false"/"no" (any case), a zero number or "", and an error otherwise.
 *
 * '&&' and '||' short-circuit: references in a branch that is not taken
 * are not resolved. They are still syntax-checked: the whole expression is
 * parsed before anything is resolved, and a lone literal that is not a
 * boolean ("true || maybe") is an error wherever it stands.
 *
 * Errors are -EINVAL (whatever a callback returned) with one line in err:
 * "col N: reason", N the 1-based byte offset in the expression. Nesting
 * depth counts every '(' and '!'. No global state: reentrant.
 */
/*
 * Templates: a text with {{ ref }} references in it (argv, env values,
 * for_each strings, `when`). The one grammar of a template, used by the
 * spec compiler (common/spec.c), droverd's expansion (scheduler/flow.c)
 * and its per-item decision (scheduler/dag.c), is here:
 *   template := (literal | '{{' ws* ref ws* '}}')*
 * A reference ends at the first "}}" after its "{{" (there is no escape
 * for a literal "{{" and references do not nest); ws is any of " \t\n\r\f\v",
 * so "{{ item }}" and "{{item}}" are the same reference. The trimmed
 * inside is one of (expr_ref_parse):
 *   params.NAME                  NAME: any bytes (the spec says which exist)
 *   steps.S.outputs.params.P     S and P: [A-Za-z0-9_.-]+; S ends at the
 *                                first ".outputs.params."
 *   steps.S.outputs.result       S's standard output (captured)
 *   steps.S.status               succeeded|failed|skipped|cached|cancelled
 *   steps.S.exit_code            S: [A-Za-z0-9_.-]+, before the suffix
 *   item | item.KEY              KEY: [A-Za-z0-9_.-]+
 *   run.id | run.name | run.status
 *   run.scheduled_at | run.interval_start | run.interval_end
 *   schedule.name | trigger.run_id | trigger.outputs.STEP.PARAM
 *                                facts of a scheduled or triggered run
 *                                (EXPR_REF_RUN; "" in a run submitted by hand)
 *   exit_code | reason | signal | attempt
 *                                the failed attempt: only in retries.when
 *   run.failures | run.duration  exit handlers only
 *   inputs.params.NAME           a DAG template's input (its steps, its
 *                                outputs, a using step's `with`)
 * Anything else is a bad reference, with the forms to use in `why`.
 */
#ifndef DROVER_EXPR_H
#define DROVER_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#define EXPR_MAX_TEXT    4096      /* bytes of expression text */
#define EXPR_MAX_DEPTH   64        /* nested '(' and '!' */
#define EXPR_MAX_VALUE   65536     /* bytes of one resolved reference */
#define EXPR_MAX_OPERAND (1 << 20) /* bytes of one quoted string after substitution */

/* Resolve the text inside {{ }} (trimmed of surrounding whitespace, e.g.
 * "steps.eval.outputs.params.better"). Return 0 and set *value (the callee
 * keeps ownership; it must stay valid until the expr_ call returns), or a
 * negative errno and write a reason to err (errlen bytes, may be left
 * empty). */
typedef int (*expr_resolve_fn)(const char *ref, const char **value, void *arg, char *err,
                               size_t errlen);

/* Evaluate text (at most EXPR_MAX_TEXT bytes), resolving references through
 * resolve(ref, &value, arg, ...). Returns 0 and sets *result, or -EINVAL
 * with a one-line reason in err (when err is non-NULL and errlen > 0), e.g.
 * "col 14: expected an operand after '&&', found end of expression",
 * "col 3: unterminated string", "col 1: unknown reference: <resolver's
 * reason>", "col 1: 'maybe' is not a boolean". A syntax error is reported
 * before any call to resolve. Resolved values longer than EXPR_MAX_VALUE
 * are an error. resolve may be NULL when text holds no reference. */
int expr_eval(const char *text, expr_resolve_fn resolve, void *arg, bool *result, char *err,
              size_t errlen);

/* Check text's syntax (everything expr_eval checks before resolving), then
 * call visit(ref, arg, err, errlen) for every template reference, those
 * inside quoted strings too, in text order. visit returns 0 to accept or a
 * negative errno with a reason in err to reject (e.g. an unknown step);
 * the first rejection stops the walk and is returned as -EINVAL with
 * "col N: <visit's reason>". visit may be NULL (syntax only). 0 when the
 * expression is valid and every reference accepted. */
int expr_check(const char *text, int (*visit)(const char *ref, void *arg, char *err, size_t errlen),
               void *arg, char *err, size_t errlen);

/* Expand every {{ ref }} in text via resolve into a newly allocated string:
 * on success *out is the result (the caller frees); on error *out is NULL.
 * Text without templates is copied; resolved values are inserted as they
 * are (never expanded again); there is no escape for a literal "{{".
 * Returns 0; -EINVAL for "col N: unterminated '{{'", an empty reference or
 * a failed resolve ("col N: unknown reference: <reason>"); -E2BIG when the
 * result would be longer than max_out bytes (not counting the NUL). */
int expr_expand(const char *text, expr_resolve_fn resolve, void *arg, size_t max_out, char **out,
                char *err, size_t errlen);

/* ---- references and templates ---- */

typedef enum {
    EXPR_REF_BAD,    /* none of the forms below, or empty; why says what to write */
    EXPR_REF_PARAM,  /* params.NAME */
    EXPR_REF_STEP,   /* steps.S.outputs.params.P */
    EXPR_REF_ITEM,   /* item, item.KEY */
    EXPR_REF_RUN,    /* run.id, run.name, the schedule's and trigger's facts (a: after "run."
                      * for run.*, else the whole reference) */
    EXPR_REF_STATUS, /* run.status */
    EXPR_REF_INPUTS, /* inputs.params.NAME: a is NAME */
    EXPR_REF_RETRY,  /* exit_code, reason, signal, attempt: retries.when only */
    /* A step's outcome: a is S, b the field ("status", "exit_code",
     * "outputs.result"). */
    EXPR_REF_STEP_STATUS, /* steps.S.status */
    EXPR_REF_STEP_EXIT,   /* steps.S.exit_code */
    EXPR_REF_STEP_RESULT, /* steps.S.outputs.result */
    EXPR_REF_FINAL,       /* run.failures, run.duration: a is the word (exit handlers) */
} expr_ref_kind_t;

/* A parsed reference. a and b are borrowed: they point into the text it
 * was parsed from, which must outlive them. They are spans, not strings;
 * but steps' b and the a of params, item and run end where the reference
 * ends, so in a NUL-terminated reference (a resolver's ref) they are
 * NUL-terminated too. */
typedef struct {
    expr_ref_kind_t kind;
    const char *a; /* params, inputs: NAME; steps: S; item: KEY (alen 0: the whole item);
                    * run: the word; retry: the whole reference */
    size_t alen;
    const char *b; /* steps: P */
    size_t blen;
    const char *why; /* EXPR_REF_BAD: the forms to use (static text) */
} expr_ref_t;

/* Parse the inside of a reference, in[0..n), already trimmed of
 * whitespace (as expr_resolve_fn and expr_check's visit receive it).
 * Never fails: what matches no form is EXPR_REF_BAD with why set. */
expr_ref_t expr_ref_parse(const char *in, size_t n);

/* One piece of a template: a literal span, or a reference. */
typedef struct {
    bool is_ref;
    size_t off, len; /* in the text: the literal, or the whole "{{ ... }}" */
    const char *in;  /* reference: its inside, trimmed (not NUL-terminated) */
    size_t inlen;
    expr_ref_t ref; /* reference: expr_ref_parse(in, inlen) */
} expr_piece_t;

/* An iterator over a template's pieces; text must outlive it. */
typedef struct {
    const char *text;
    size_t pos;
} expr_tmpl_t;

/* Start iterating over the NUL-terminated text. */
void expr_tmpl_init(expr_tmpl_t *it, const char *text);

/* The next piece of the template into *p: 1, or 0 at the end of the text,
 * or -EINVAL for a "{{" with no "}}" after it (p->off is the offset of the
 * "{{", for a "col N" of p->off + 1; the iterator stays there). Literal
 * pieces are never empty; an empty reference "{{ }}" is a reference piece
 * with inlen 0 (kind EXPR_REF_BAD). */
int expr_tmpl_next(expr_tmpl_t *it, expr_piece_t *p);

/* Whether the condition when refers to the item of a for_each step
 * ({{item}} or {{item.KEY}}, spaced or not, anywhere: in any branch or
 * inside a quoted string). Such a `when` is decided for each item; any
 * other for the step as a whole, before its items exist. false for NULL,
 * "" and text that is not a valid expression (its error is then reported
 * once, for the whole step). */
bool expr_when_per_item(const char *when);

#endif
