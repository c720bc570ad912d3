/*
 * numeric.c — int64/float64 values are stored as text, so that a value read
 * by a client that knows nothing of types is still the number it expects.
 * Floats are printed with the fewest digits that round-trip exactly.
 */
#include "numeric.h"
#include "db.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rci_num_parse(const void *text, size_t len, num_value *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, text, len);
    buf[len] = 0;
    if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '\n')
        return -1;
    char *end;
    errno = 0;
    long long i = strtoll(buf, &end, 10);
    if (errno == 0 && *end == 0) {
        out->is_float = false;
        out->i = i;
        return 0;
    }
    errno = 0;
    double f = strtod(buf, &end);
    if (errno == 0 && *end == 0 && isfinite(f)) {
        out->is_float = true;
        out->f = f;
        return 0;
    }
    return -1;
}

int rci_num_add(const num_value *a, const num_value *b, num_value *out)
{
    if (!a->is_float && !b->is_float) {
        int64_t r;
        if (__builtin_add_overflow(a->i, b->i, &r))
            return rc_fail(RC_EOVERFLOW, "integer overflow: %lld + %lld is past int64",
                           (long long)a->i, (long long)b->i);
        out->is_float = false;
        out->i = r;
        return 0;
    }
    double x = a->is_float ? a->f : (double)a->i;
    double y = b->is_float ? b->f : (double)b->i;
    double r = x + y;
    if (!isfinite(r))
        return rc_fail(RC_EOVERFLOW, "float overflow: %.17g + %.17g is past the largest float", x,
                       y);
    out->is_float = true;
    out->f = r;
    return 0;
}

size_t rci_num_format(const num_value *v, char out[NUM_TEXT_MAX])
{
    if (!v->is_float)
        return (size_t)snprintf(out, NUM_TEXT_MAX, "%lld", (long long)v->i);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, NUM_TEXT_MAX, "%.*g", prec, v->f);
        if (strtod(out, NULL) == v->f)
            break;
    }
    /* keep it recognisably a float: "3" would read back as an int */
    if (!strpbrk(out, ".eEn"))
        strncat(out, ".0", NUM_TEXT_MAX - strlen(out) - 1);
    return strlen(out);
}
