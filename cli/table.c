/* table — see table.h. Cells live in one growing array, row-major; the
 * header is row 0. Widths are computed at print time. */
#include "table.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    char *text;
    const char *sgr; /* static string or NULL */
} cell_t;

struct table {
    size_t ncols;
    cell_t *cells;
    size_t count, cap;
    bool no_header; /* table_hide_header */
};

/* Copy s, replacing what must never reach a terminal inside a cell. */
static char *sanitize(const char *s)
{
    char *out = xstrdup(s && *s ? s : "-");
    for (unsigned char *p = (unsigned char *)out; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
        else if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    return out;
}

static void push(table_t *t, const char *text, const char *sgr)
{
    if (t->count == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        t->cells = xrealloc(t->cells, t->cap * sizeof *t->cells);
    }
    t->cells[t->count].text = sanitize(text);
    t->cells[t->count].sgr = sgr;
    t->count++;
}

table_t *table_new(size_t ncols, const char *const *headers)
{
    table_t *t = xcalloc(1, sizeof *t);
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++)
        push(t, headers[i], NULL);
    return t;
}

void table_destroy(table_t **t)
{
    if (!t || !*t)
        return;
    for (size_t i = 0; i < (*t)->count; i++)
        free((*t)->cells[i].text);
    free((*t)->cells);
    free(*t);
    *t = NULL;
}

void table_add(table_t *t, const char *text, const char *sgr)
{
    push(t, text, sgr);
}

void table_addf(table_t *t, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0)
        s = xstrdup("?");
    push(t, s, NULL);
    free(s);
}

void table_hide_header(table_t *t)
{
    t->no_header = true;
}

size_t table_rows(const table_t *t)
{
    return (t->count + t->ncols - 1) / t->ncols - 1;
}

size_t table_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* Writes text, but no more than *room characters; updates *room. */
static void put_clipped(FILE *out, const char *text, size_t *room)
{
    const char *p = text;
    size_t w = 0;
    while (*p) {
        if (((unsigned char)*p & 0xc0) != 0x80) {
            if (w == *room)
                break;
            w++;
        }
        p++;
    }
    fwrite(text, 1, (size_t)(p - text), out);
    *room -= w;
}

static void put_spaces(FILE *out, size_t n, size_t *room)
{
    for (; n > 0 && *room > 0; n--, (*room)--)
        fputc(' ', out);
}

static void print_row(const table_t *t, const cell_t *row, const size_t *widths, FILE *out,
                      size_t max_width, bool color)
{
    size_t room = max_width ? max_width : SIZE_MAX;
    for (size_t c = 0; c < t->ncols; c++) {
        const cell_t *cell = &row[c];
        bool last = c + 1 == t->ncols;
        bool paint = color && cell->sgr && room > 0;
        if (c > 0)
            put_spaces(out, 2, &room);
        if (paint)
            fprintf(out, "\033[%sm", cell->sgr);
        put_clipped(out, cell->text, &room);
        if (paint)
            fputs("\033[0m", out);
        if (!last)
            put_spaces(out, widths[c] - table_text_width(cell->text), &room);
    }
    fputc('\n', out);
}

size_t table_print(const table_t *t, FILE *out, size_t max_rows, size_t max_width, bool color)
{
    size_t *widths = xcalloc(t->ncols, sizeof *widths);
    size_t rows = table_rows(t), lines = 0;
    if (max_rows && rows > max_rows)
        rows = max_rows;
    for (size_t r = 0; r <= rows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t i = r * t->ncols + c;
            size_t w = i < t->count ? table_text_width(t->cells[i].text) : 0;
            if (w > widths[c])
                widths[c] = w;
        }
    }
    for (size_t r = 0; r <= rows; r++) {
        const cell_t *row = &t->cells[r * t->ncols];
        if (r * t->ncols + t->ncols > t->count)
            break; /* an unfinished last row is not printed */
        if (r == 0 && t->no_header)
            continue; /* its widths still count: rows line up with the first table's */
        print_row(t, row, widths, out, max_width, color);
        lines++;
    }
    free(widths);
    return lines;
}

void table_clip(char *s, size_t width)
{
    size_t w = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80 && w++ == width)
            break;
    }
    *s = '\0';
}
