/* table — aligned text tables for the CLI's human output.
 *
 * Cells are added left to right, row after row; the table copies them, so
 * callers may pass temporaries. Control characters in a cell (a reason or a
 * label coming from the network) become '?' and line breaks a space, so one
 * row is always one line and nothing reaches the terminal as an escape.
 * Widths count UTF-8 characters, not bytes. Columns are separated by two
 * spaces; the last column is not padded. A cell may carry an SGR colour
 * ("32" = green) used only when printing with colour on.
 */
#ifndef DROVER_CLI_TABLE_H
#define DROVER_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct table table_t;

/* A table with ncols columns titled by headers (ncols strings, copied).
 * Never NULL (aborts on OOM). */
table_t *table_new(size_t ncols, const char *const *headers);

/* Free the table and NULL the pointer; accepts NULL. */
void table_destroy(table_t **t);

/* Append the next cell (a new row starts after every ncols cells). text
 * NULL or "" shows as "-". sgr: an ANSI colour code such as "32", or NULL. */
void table_add(table_t *t, const char *text, const char *sgr);
void table_addf(table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print no header line (rows added to an earlier table's output). */
void table_hide_header(table_t *t);

/* Rows added so far (the header not counted). */
size_t table_rows(const table_t *t);

/* Print the header and at most max_rows rows (0 = all) to out. Lines are
 * cut at max_width characters when max_width > 0. Returns the number of
 * lines printed. */
size_t table_print(const table_t *t, FILE *out, size_t max_rows, size_t max_width, bool color);

/* Display width of a UTF-8 string: its count of non-continuation bytes. */
size_t table_text_width(const char *s);

/* Cut s in place to at most width characters (at a character boundary). */
void table_clip(char *s, size_t width);

#endif
