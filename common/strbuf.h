/* strbuf — the one growable string of the tree.
 *
 * A strbuf_t starts zeroed ({0}) and is always NUL-terminated once anything
 * was added; it grows by doubling (allocation failure aborts, as xmalloc).
 * sb_take hands the string to the caller and leaves the buffer empty, so a
 * buffer is either taken or freed with sb_free, never both.
 */
#ifndef DROVER_STRBUF_H
#define DROVER_STRBUF_H

#include <stddef.h>

typedef struct {
    char *buf; /* owned; NULL until the first add */
    size_t len, cap;
} strbuf_t;

/* Append n bytes of s (which may hold NULs; the buffer stays terminated). */
void sb_add(strbuf_t *b, const char *s, size_t n);

/* Append one character / a C string / printf-formatted text. */
void sb_putc(strbuf_t *b, char ch);
void sb_puts(strbuf_t *b, const char *s);
void sb_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text as a string the caller frees (never NULL: "" when nothing was
 * added); b is left empty and may be reused. */
char *sb_take(strbuf_t *b);

/* Free the text; b is left empty. */
void sb_free(strbuf_t *b);

#endif
