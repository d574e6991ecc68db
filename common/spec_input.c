/* spec_input — the types a template's input params may declare, and the
 * one check of a value against them (spec.h: spec_input_check). The spec
 * compiler checks literal `with` values with it at submit; droverd checks
 * the values it expands from templates ({{item}}, upstream outputs) when
 * it instantiates a group (scheduler/flow.c). No libyaml here: droverd's
 * run-time half needs none of the compiler.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "spec.h"

/* A decimal number in full: optional sign, digits, optional fraction and
 * exponent (whole: digits only after the sign). */
static bool decimal(const char *s, bool whole)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (whole)
        return *p == '\0';
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0' && isfinite(strtod(s, NULL));
}

int spec_input_check(const char *type, const char *value, char *want, size_t wantlen)
{
    static const char *const bools[] = {"true", "false"};
    const char *what = NULL;
    if (!type || !*type || !strcmp(type, "string"))
        return 0;
    if (!strcmp(type, "integer")) {
        if (decimal(value, true))
            return 0;
        what = "an integer (e.g. 3, -1)";
    } else if (!strcmp(type, "number")) {
        if (decimal(value, false))
            return 0;
        what = "a number (e.g. 0.1, 3, 1e-4)";
    } else if (!strcmp(type, "boolean")) {
        for (size_t i = 0; i < sizeof bools / sizeof *bools; i++)
            if (!strcasecmp(value, bools[i]))
                return 0;
        what = "a boolean (true or false, in any case)";
    } else if (!strcmp(type, "json")) {
        if (json_text_valid(value, strlen(value), NULL, 0) == 0)
            return 0;
        what = "JSON (e.g. [1, 2] or {\"a\": 1})";
    } else {
        what = "one of the types string, integer, number, boolean, json";
    }
    if (want && wantlen)
        snprintf(want, wantlen, "%s", what);
    return -EINVAL;
}
