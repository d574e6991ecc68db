/* sse — see sse.h. The framing of the WHATWG server-sent events format. */
#include "sse.h"

#include <string.h>

void sse_event(strbuf_t *out, const char *id, const char *name, const char *data, size_t len)
{
    if (id) {
        sb_puts(out, "id: ");
        sb_puts(out, id);
        sb_putc(out, '\n');
    }
    if (name) {
        sb_puts(out, "event: ");
        sb_puts(out, name);
        sb_putc(out, '\n');
    }
    /* a line break at the very end gives a last, empty data line, so the
     * client's data ends with the break as well */
    for (size_t i = 0;;) {
        size_t n = 0;
        while (i + n < len && data[i + n] != '\n' && data[i + n] != '\r')
            n++;
        sb_puts(out, "data: ");
        sb_add(out, data + i, n);
        sb_putc(out, '\n');
        i += n;
        if (i >= len)
            break;
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        i++;
    }
    sb_putc(out, '\n');
}

void sse_comment(strbuf_t *out, const char *text)
{
    sb_puts(out, ": ");
    sb_puts(out, text);
    sb_puts(out, "\n\n");
}
