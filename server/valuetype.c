/*
 * valuetype.c — what a value is.
 *
 * Without a Content-Type that says otherwise, a PUT body is typed the way
 * KVdb does it: int64 when the whole body is a decimal int64, float64 when it
 * is a finite decimal number, JSON when it parses as an object or array, else
 * raw bytes. The bytes are stored as sent (no normalisation), so a GET gives
 * back exactly what was PUT; the type only decides the Content-Type answered
 * and which atomic operations fit (incr needs a number, append a non-number).
 *
 * Number syntax is strict and locale-free: [-]digits for int64, and
 * [-]digits[.digits][(e|E)[+-]digits] (or .digits) for float64 — strtod's
 * hex floats, inf, nan and surrounding spaces are not numbers here.
 */
#include "valuetype.h"

#include "json_cap.h"
#include "json_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NUM_TEXT_MAX 64u

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool parse_int64(const char *data, size_t len, int64_t *out)
{
    char buf[NUM_TEXT_MAX];
    size_t i = 0;
    if (len == 0 || len >= sizeof buf)
        return false;
    if (data[0] == '-')
        i = 1;
    if (i == len)
        return false;
    for (; i < len; i++)
        if (!is_digit(data[i]))
            return false;
    memcpy(buf, data, len);
    buf[len] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = (int64_t)v;
    return true;
}

/* [-]digits[.digits] or [-].digits, then optional exponent. */
static bool float_syntax(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && s[i] == '-')
        i++;
    while (i < len && is_digit(s[i])) {
        i++;
        digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i])) {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < len && is_digit(s[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return false;
    }
    return i == len;
}

bool parse_double(const char *data, size_t len, double *out)
{
    char buf[NUM_TEXT_MAX];
    if (len == 0 || len >= sizeof buf || !float_syntax(data, len))
        return false;
    memcpy(buf, data, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool json_container(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    if (i == len || (data[i] != '{' && data[i] != '['))
        return false;
    json_error_t err;
    json_t *j = json_cap_load(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

rc_type value_detect(const char *data, size_t len)
{
    int64_t i;
    double d;
    if (parse_int64(data, len, &i))
        return RC_TYPE_INT;
    if (parse_double(data, len, &d))
        return RC_TYPE_FLOAT;
    if (json_container(data, len))
        return RC_TYPE_JSON;
    return RC_TYPE_RAW;
}

/* The media type of a Content-Type header, without parameters. */
static bool media_is(const char *ctype, const char *media)
{
    size_t n = strlen(media);
    if (strncasecmp(ctype, media, n) != 0)
        return false;
    char next = ctype[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

int value_type_for_put(const char *ctype, const char *data, size_t len, rc_type *out)
{
    int64_t i;
    double d;
    if (ctype == NULL || ctype[0] == '\0' || media_is(ctype, "application/x-www-form-urlencoded")) {
        *out = value_detect(data, len);
        return 0;
    }
    if (media_is(ctype, "application/json")) {
        json_error_t err;
        json_t *j = json_cap_load(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (j == NULL)
            return -1;
        json_decref(j);
        *out = RC_TYPE_JSON;
        return 0;
    }
    if (media_is(ctype, "text/plain")) {
        /* numbers stay numbers (so they can be incremented), JSON-looking
         * text stays text */
        if (parse_int64(data, len, &i))
            *out = RC_TYPE_INT;
        else if (parse_double(data, len, &d))
            *out = RC_TYPE_FLOAT;
        else
            *out = RC_TYPE_RAW;
        return 0;
    }
    *out = RC_TYPE_RAW;
    return 0;
}

const char *value_content_type(rc_type t)
{
    switch (t) {
    case RC_TYPE_JSON:
        return "application/json";
    case RC_TYPE_INT:
    case RC_TYPE_FLOAT:
        return "text/plain; charset=utf-8";
    default:
        return "application/octet-stream";
    }
}

/* ------------------------------------------------------------- PATCH */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool parse_number(const char *s, size_t len, rc_number *out)
{
    memset(out, 0, sizeof *out);
    if (parse_int64(s, len, &out->i)) {
        out->type = RC_TYPE_INT;
        return true;
    }
    if (parse_double(s, len, &out->f)) {
        out->type = RC_TYPE_FLOAT;
        return true;
    }
    return false;
}

size_t float_text(double v, char *out, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    /* keep it a float when read back ("1" would be an int), as the engine
     * formats the floats it computes */
    if (strpbrk(out, ".eEn") == NULL && strlen(out) + 2 < cap)
        strcat(out, ".0");
    return strlen(out);
}

int value_from_json(const json_t *v, char **out, size_t *len, rc_type *type)
{
    char *text = NULL;
    size_t n = 0;
    if (json_is_string(v)) {
        n = json_string_length(v);
        text = malloc(n + 1);
        if (text == NULL)
            return -1;
        memcpy(text, json_string_value(v), n);
        text[n] = '\0';
        *type = value_detect(text, n);
    } else if (json_is_integer(v)) {
        text = malloc(32);
        if (text == NULL)
            return -1;
        n = (size_t)snprintf(text, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *type = RC_TYPE_INT;
    } else if (json_is_real(v)) {
        text = malloc(40);
        if (text == NULL)
            return -1;
        n = float_text(json_real_value(v), text, 40);
        *type = RC_TYPE_FLOAT;
    } else if (v != NULL) {
        text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL)
            return -1;
        n = strlen(text);
        *type = RC_TYPE_JSON;
    } else {
        return -1;
    }
    *out = text;
    *len = n;
    return 0;
}

static int patch_parse_json(const char *body, size_t len, patch_op *out, const char **why)
{
    json_error_t err;
    json_t *o = json_cap_load(body, len, JSON_ALLOW_NUL, &err);
    int rc = -1;
    if (o == NULL) {
        *why = json_error_why(&err, "the body is neither +N / -N nor valid JSON");
        goto done;
    }
    if (!json_is_object(o)) {
        *why = "the body is neither +N / -N nor a JSON object";
        goto done;
    }
    const char *op = json_string_value(json_object_get(o, "op"));
    json_t *by = json_object_get(o, "by"), *val = json_object_get(o, "value");
    if (op == NULL) {
        *why = "\"op\" is missing";
        goto done;
    }
    if (strcmp(op, "incr") == 0) {
        out->kind = PATCH_INCR;
        if (by == NULL) {
            out->by.type = RC_TYPE_INT;
            out->by.i = 1;
        } else if (json_is_integer(by)) {
            out->by.type = RC_TYPE_INT;
            out->by.i = json_integer_value(by);
        } else if (json_is_real(by) && isfinite(json_real_value(by))) {
            out->by.type = RC_TYPE_FLOAT;
            out->by.f = json_real_value(by);
        } else {
            *why = "\"by\" must be a number";
            goto done;
        }
        rc = 0;
        goto done;
    }
    if (strcmp(op, "append") == 0)
        out->kind = PATCH_APPEND;
    else if (strcmp(op, "setnx") == 0)
        out->kind = PATCH_SETNX;
    else if (strcmp(op, "getset") == 0)
        out->kind = PATCH_GETSET;
    else {
        *why = "unknown \"op\" (incr, append, setnx, getset)";
        goto done;
    }
    if (val == NULL) {
        *why = "\"value\" is missing";
        goto done;
    }
    if (out->kind == PATCH_APPEND && json_is_string(val)) {
        /* append adds text as given, without type detection */
        size_t n = json_string_length(val);
        out->buf = malloc(n + 1);
        if (out->buf == NULL)
            goto done;
        memcpy(out->buf, json_string_value(val), n);
        out->buf[n] = '\0';
        out->vlen = n;
        out->vtype = RC_TYPE_RAW;
        rc = 0;
        goto done;
    }
    if (value_from_json(val, &out->buf, &out->vlen, &out->vtype) != 0) {
        *why = "\"value\" is not usable";
        goto done;
    }
    rc = 0;
done:
    json_decref(o);
    return rc;
}

int patch_parse(const char *body, size_t len, patch_op *out, const char **why)
{
    memset(out, 0, sizeof *out);
    *why = "malformed body";
    while (len > 0 && is_space(body[len - 1]))
        len--;
    while (len > 0 && is_space(body[0])) {
        body++;
        len--;
    }
    if (len == 0) {
        *why = "empty body: send +N, -N or a JSON op";
        return -1;
    }
    if (body[0] == '+' || body[0] == '-') {
        out->kind = PATCH_INCR;
        /* "-N" parses as the negative number; "+N" as N */
        const char *num = body[0] == '+' ? body + 1 : body;
        size_t n = body[0] == '+' ? len - 1 : len;
        if (n > 0 && num[0] == '-' && body[0] == '+')
            return -1;
        size_t digits = n > 0 && num[0] == '-' ? 1 : 0;
        while (digits < n && is_digit(num[digits]))
            digits++;
        if (n > 0 && digits == n && n > (num[0] == '-' ? 1u : 0u) &&
            !parse_int64(num, n, &out->by.i)) {
            /* not made a float, which would round it */
            *why = "the increment is an integer past int64; write it with a decimal point or "
                   "an exponent to add a float";
            return -1;
        }
        if (!parse_number(num, n, &out->by)) {
            *why = "+N / -N needs a decimal number";
            return -1;
        }
        return 0;
    }
    return patch_parse_json(body, len, out, why);
}

void patch_free(patch_op *op)
{
    if (op == NULL)
        return;
    free(op->buf);
    op->buf = NULL;
}
