/*
 * script_form.c — application/x-www-form-urlencoded into kv.args pairs.
 *
 * Design. The route hands both the query string and, for a POST with a form
 * body, the body through this one parser, so kv.args means the same thing
 * for GET and POST. It makes one allocation sized from the input (the pairs,
 * then the decoded bytes, each NUL-terminated), so the caller frees one
 * pointer and a hostile query cannot make it allocate more than a constant
 * times its length.
 */
#include <stdlib.h>
#include <string.h>

#include "rcu_text.h"
#include "script.h"

/* Decode S[0..N) into OUT; returns the decoded length or -1. */
static long decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = rcu_hex_value(s[i + 1]);
            int lo = rcu_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    return (long)o;
}

int script_parse_form(const char *s, size_t len, size_t max_args, script_arg **args, size_t *nargs)
{
    *args = NULL;
    *nargs = 0;
    size_t pairs = 0;
    for (size_t i = 0; i < len; i++) {
        size_t start = i;
        while (i < len && s[i] != '&')
            i++;
        if (i > start)
            pairs++;
    }
    if (pairs > max_args)
        return RC_ELIMIT;
    if (pairs == 0)
        return RC_OK;
    size_t bytes = pairs * sizeof(script_arg) + len + 2 * pairs;
    script_arg *out = malloc(bytes);
    if (!out)
        return RC_ENOMEM;
    char *text = (char *)(out + pairs);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        size_t start = i;
        while (i < len && s[i] != '&')
            i++;
        if (i == start)
            continue;
        const char *eq = memchr(s + start, '=', i - start);
        size_t name_len = eq ? (size_t)(eq - (s + start)) : i - start;
        const char *value = eq ? eq + 1 : s + i;
        size_t value_len = eq ? (size_t)(s + i - value) : 0;
        long dn = decode(s + start, name_len, text);
        if (dn < 0)
            goto bad;
        out[n].name = text;
        out[n].name_len = (size_t)dn;
        text += dn + 1;
        long dv = decode(value, value_len, text);
        if (dv < 0)
            goto bad;
        out[n].value = text;
        out[n].value_len = (size_t)dv;
        text += dv + 1;
        n++;
    }
    *args = out;
    *nargs = n;
    return RC_OK;
bad:
    free(out);
    return RC_EINVAL;
}
