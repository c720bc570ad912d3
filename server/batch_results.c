/*
 * batch_results.c — the answer of a batch, written straight into one buffer.
 *
 * The bytes are those Jansson's json_dumps(JSON_COMPACT) writes for the tree
 * batch_result_json() builds (tests/server/test_server_batch_results.c compares
 * them): strings are escaped as Jansson escapes valid UTF-8 without
 * JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH — '"' and '\\' and the control
 * characters below 0x20 (\b \f \n \r \t by name, the others as \u00XX with
 * upper-case hex), every other byte as is. Only strings that rcu_utf8_valid()
 * accepts are written as strings, as json_stringn() would refuse the others.
 * Reals (incr of a float) go through Jansson itself, being rare.
 */
#include "batch_results.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json_util.h"
#include "routes.h"
#include "valuetype.h"

json_t *batch_result_json(const rc_op *op)
{
    json_t *r = json_object();
    char etag[32];
    if (r == NULL)
        return NULL;
    switch (op->kind) {
    case RC_OP_PUT:
        format_etag(op->seq, etag, sizeof etag);
        json_object_set_new(r, "etag", json_string(etag));
        break;
    case RC_OP_DELETE:
        json_object_set_new(r, "deleted", json_boolean(op->seq != 0));
        break;
    case RC_OP_INCR: {
        int64_t iv;
        double dv;
        const char *t = op->result.data ? op->result.data : "";
        if (parse_int64(t, op->result.len, &iv))
            json_object_set_new(r, "value", json_integer(iv));
        else if (parse_double(t, op->result.len, &dv))
            json_object_set_new(r, "value", json_real(dv));
        else
            json_object_set_new(r, "value", json_stringn(t, op->result.len));
        break;
    }
    case RC_OP_GET:
        if (op->result.seq == 0) {
            json_object_set_new(r, "value", json_null());
        } else if (rcu_utf8_valid(op->result.data ? op->result.data : "", op->result.len)) {
            json_object_set_new(
                r, "value", json_stringn(op->result.data ? op->result.data : "", op->result.len));
        } else {
            char *b64 =
                rcu_base64_encode(op->result.data, op->result.len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(r, "value_base64", json_string(b64 ? b64 : ""));
            free(b64);
        }
        break;
    default:
        break;
    }
    return r;
}

typedef struct outbuf {
    char *p;
    size_t len, cap;
    bool failed;
} outbuf;

/* Room for MORE bytes (and a NUL) at P + LEN; false once an allocation failed. */
static bool reserve(outbuf *b, size_t more)
{
    if (b->failed)
        return false;
    if (more > SIZE_MAX / 2 - b->len - 1) {
        b->failed = true;
        return false;
    }
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void put(outbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

/* Bytes that a JSON string cannot hold as they are: 0 none, else the letter
 * after the backslash ('u' for \u00XX). */
static const char escape_as[256] = {
    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't', [0x00] = 'u',
    [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',  [0x05] = 'u', [0x06] = 'u',
    [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',  [0x10] = 'u', [0x11] = 'u',
    [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',  [0x16] = 'u', [0x17] = 'u',
    [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',  [0x1c] = 'u', [0x1d] = 'u',
    [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

/* Bytes of S (N bytes) as a JSON string, quotes included. */
static size_t string_size(const char *s, size_t n)
{
    size_t k = 2;
    for (size_t i = 0; i < n; i++) {
        char e = escape_as[(unsigned char)s[i]];
        k += e == 0 ? 1 : e == 'u' ? 6 : 2;
    }
    return k;
}

/* S (N bytes, valid UTF-8) as a JSON string, quotes included. */
static void put_string(outbuf *b, const char *s, size_t n)
{
    if (n > (SIZE_MAX - 2) / 6 || !reserve(b, string_size(s, n))) {
        b->failed = true;
        return;
    }
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e = escape_as[c];
        if (e == 0) {
            *o++ = (char)c;
        } else if (e != 'u') {
            *o++ = '\\';
            *o++ = e;
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = rcu_hex_upper[c >> 4];
            o[5] = rcu_hex_upper[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

static void put_u64(outbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    put(b, tmp, (size_t)n);
}

static void put_incr(outbuf *b, const rc_op *op)
{
    int64_t iv;
    double dv;
    const char *t = op->result.data ? op->result.data : "";
    size_t n = op->result.len;
    if (parse_int64(t, n, &iv)) {
        char tmp[24];
        int k = snprintf(tmp, sizeof tmp, "%" PRId64, iv);
        PUT_LIT(b, "{\"value\":");
        put(b, tmp, (size_t)k);
        PUT_LIT(b, "}");
    } else if (parse_double(t, n, &dv)) {
        json_t *real = json_real(dv); /* NULL for NaN and infinities: {} */
        char tmp[64];
        size_t k = real ? json_dumpb(real, tmp, sizeof tmp, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
        json_decref(real);
        if (k == 0 || k > sizeof tmp) {
            if (k > sizeof tmp)
                b->failed = true; /* %.17g never needs this much */
            PUT_LIT(b, "{}");
            return;
        }
        PUT_LIT(b, "{\"value\":");
        put(b, tmp, k);
        PUT_LIT(b, "}");
    } else if (rcu_utf8_valid(t, n)) {
        PUT_LIT(b, "{\"value\":");
        put_string(b, t, n);
        PUT_LIT(b, "}");
    } else {
        PUT_LIT(b, "{}"); /* json_stringn refuses it: the member is not set */
    }
}

static void put_get(outbuf *b, const rc_op *op)
{
    const char *d = op->result.data ? op->result.data : "";
    size_t n = op->result.len;
    if (op->result.seq == 0) {
        PUT_LIT(b, "{\"value\":null}");
    } else if (rcu_utf8_valid(d, n)) {
        PUT_LIT(b, "{\"value\":");
        put_string(b, d, n);
        PUT_LIT(b, "}");
    } else {
        size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        PUT_LIT(b, "{\"value_base64\":\"");
        if (!reserve(b, cap))
            return;
        /* base64 needs no escaping; CAP counts the NUL, not written on */
        sodium_bin2base64(b->p + b->len, cap, (const unsigned char *)op->result.data, n,
                          sodium_base64_VARIANT_ORIGINAL);
        b->len += cap - 1;
        PUT_LIT(b, "\"}");
    }
}

size_t batch_results_size(const rc_op *ops, size_t n)
{
    size_t k = 16;
    for (size_t i = 0; i < n; i++) {
        const rc_op *op = &ops[i];
        const char *d = op->result.data ? op->result.data : "";
        k += 48; /* {"etag":"\"<20 digits>\""}, and the comma */
        if (op->kind == RC_OP_INCR)
            k += 64 + (rcu_utf8_valid(d, op->result.len) ? string_size(d, op->result.len) : 0);
        else if (op->kind == RC_OP_GET && op->result.seq != 0)
            k += rcu_utf8_valid(d, op->result.len)
                     ? string_size(d, op->result.len)
                     : sodium_base64_ENCODED_LEN(op->result.len, sodium_base64_VARIANT_ORIGINAL);
    }
    return k;
}

char *batch_results_dump(const rc_op *ops, size_t n, size_t *len)
{
    outbuf b = {0};
    /* one allocation of the exact size: put_string's worst-case reservation
     * (6 bytes a byte) then never grows the buffer */
    size_t exact = batch_results_size(ops, n);
    b.p = malloc(exact + 1);
    if (b.p == NULL)
        return NULL;
    b.cap = exact + 1;
    PUT_LIT(&b, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
        const rc_op *op = &ops[i];
        if (i > 0)
            PUT_LIT(&b, ",");
        switch (op->kind) {
        case RC_OP_PUT:
            PUT_LIT(&b, "{\"etag\":\"\\\"");
            put_u64(&b, op->seq);
            PUT_LIT(&b, "\\\"\"}");
            break;
        case RC_OP_DELETE:
            if (op->seq != 0)
                PUT_LIT(&b, "{\"deleted\":true}");
            else
                PUT_LIT(&b, "{\"deleted\":false}");
            break;
        case RC_OP_INCR:
            put_incr(&b, op);
            break;
        case RC_OP_GET:
            put_get(&b, op);
            break;
        default:
            PUT_LIT(&b, "{}");
            break;
        }
    }
    PUT_LIT(&b, "]}\n");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    *len = b.len;
    return b.p;
}
