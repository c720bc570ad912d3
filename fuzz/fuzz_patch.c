/*
 * fuzz_patch.c — PATCH /:bucket/:key bodies (patch_parse): "+N", "-N" and
 * the JSON ops {"op": "incr"|"append"|"setnx"|"getset", "by"|"value"}, and
 * the type detection a stored value goes through (value_detect).
 *
 * Parse only: no engine, no request. Invariants checked on every input
 * beyond "no crash, no overread, no leak":
 *   - the answer is 0 or -1, and -1 always comes with a reason and leaves
 *     nothing to free;
 *   - "+N" / "-N" give an increment whose sign matches the text, an int64
 *     when the number is an integer that fits and a finite double otherwise;
 *   - an increment carries no value buffer; every other op carries one,
 *     NUL-terminated at its length, whose declared type holds: an int64 or
 *     float value re-parses as that type and a JSON value re-parses as JSON;
 *   - parsing is deterministic (a second parse gives the same op).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_util.h"
#include "valuetype.h"

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void check_value(const patch_op *p)
{
    FUZZ_CHECK(p->buf != NULL && p->buf[p->vlen] == '\0');
    int64_t i;
    double d;
    switch (p->vtype) {
    case RC_TYPE_INT:
        FUZZ_CHECK(parse_int64(p->buf, p->vlen, &i));
        break;
    case RC_TYPE_FLOAT:
        FUZZ_CHECK(parse_double(p->buf, p->vlen, &d) && isfinite(d));
        break;
    case RC_TYPE_JSON: {
        json_error_t err;
        json_t *j = json_loadb(p->buf, p->vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        FUZZ_CHECK(j != NULL);
        json_decref(j);
        break;
    }
    case RC_TYPE_RAW:
        break;
    default:
        FUZZ_CHECK(!"unknown value type");
    }
}

static bool same_op(const patch_op *a, const patch_op *b)
{
    if (a->kind != b->kind || a->vlen != b->vlen || a->vtype != b->vtype ||
        (a->buf == NULL) != (b->buf == NULL))
        return false;
    if (a->buf != NULL && memcmp(a->buf, b->buf, a->vlen) != 0)
        return false;
    if (a->kind != PATCH_INCR)
        return true;
    if (a->by.type != b->by.type)
        return false;
    return a->by.type == RC_TYPE_INT ? a->by.i == b->by.i
                                     : memcmp(&a->by.f, &b->by.f, sizeof a->by.f) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = (char *)fuzz_copy(data, size);
    patch_op p, q;
    const char *why = NULL, *why2 = NULL;
    int rc = patch_parse(body, size, &p, &why);
    FUZZ_CHECK(rc == 0 || rc == -1);
    int rc2 = patch_parse(body, size, &q, &why2);
    FUZZ_CHECK(rc2 == rc);
    if (rc != 0) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
        FUZZ_CHECK(p.buf == NULL);
        patch_free(&p);
        patch_free(&q);
        value_detect(body, size);
        free(body);
        return 0;
    }
    FUZZ_CHECK(same_op(&p, &q));
    size_t at = 0;
    while (at < size && space(body[at]))
        at++;
    bool shorthand = at < size && (body[at] == '+' || body[at] == '-');
    switch (p.kind) {
    case PATCH_INCR:
        FUZZ_CHECK(p.buf == NULL);
        FUZZ_CHECK(p.by.type == RC_TYPE_INT || p.by.type == RC_TYPE_FLOAT);
        if (p.by.type == RC_TYPE_FLOAT)
            FUZZ_CHECK(isfinite(p.by.f));
        if (shorthand && body[at] == '+')
            FUZZ_CHECK(p.by.type == RC_TYPE_INT ? p.by.i >= 0 : !signbit(p.by.f));
        if (shorthand && body[at] == '-')
            FUZZ_CHECK(p.by.type == RC_TYPE_INT ? p.by.i <= 0 : signbit(p.by.f) || p.by.f == 0);
        break;
    case PATCH_APPEND:
    case PATCH_SETNX:
    case PATCH_GETSET:
        FUZZ_CHECK(!shorthand);
        check_value(&p);
        break;
    default:
        FUZZ_CHECK(!"unknown patch kind");
    }
    patch_free(&p);
    patch_free(&q);
    rc_type t = value_detect(body, size);
    FUZZ_CHECK(t == RC_TYPE_RAW || t == RC_TYPE_INT || t == RC_TYPE_FLOAT || t == RC_TYPE_JSON);
    free(body);
    return 0;
}
