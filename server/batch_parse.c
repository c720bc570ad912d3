/*
 * batch_parse.c — a batch body into rc_op, before anything runs.
 *
 * Split out of route_batch.c so that the parser is reachable without a
 * request, a server or an engine (fuzz/fuzz_batch.c). The parse stops at the
 * first failing op; authorisation is a callback made right after an op's
 * kind and key are read, so a caller sees errors in body order: op 0's 403
 * comes before op 1's malformed value, as it always has. Keys are not copied:
 * they point into the parsed JSON tree, which the batch owns.
 *
 * Op forms: {"set": k, "value": v | "value_base64": b, "ttl": s,
 * "if_absent": true | "if_match": "\"<seq>\""}, {"delete": k},
 * {"incr": k, "by": n}, {"get": k}.
 */
#include "batch_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json_util.h"
#include "policy.h"
#include "routes.h"
#include "valuetype.h"

void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->bufs[i]);
        rc_value_free(&b->ops[i].result);
    }
    free(b->ops);
    free(b->bufs);
    json_decref(b->root);
    memset(b, 0, sizeof *b);
}

static bool refuse(batch_error *err, unsigned status, const char *code, long op, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

static bool refuse(batch_error *err, unsigned status, const char *code, long op, const char *fmt,
                   ...)
{
    va_list ap;
    err->status = status;
    err->code = code;
    err->op = op;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return false;
}

static bool parse_set_value(const json_t *o, size_t i, uint64_t max_value, batch *b,
                            batch_error *err)
{
    rc_op *op = &b->ops[i];
    long at = (long)i;
    json_t *v = json_object_get(o, "value"), *v64 = json_object_get(o, "value_base64");
    if ((v == NULL) == (v64 == NULL))
        return refuse(err, 400, "bad_request", at, "set needs one of value, value_base64");
    if (v64 != NULL) {
        const char *t = json_string_value(v64);
        size_t tl = t ? strlen(t) : 0, n = 0;
        char *out = t ? malloc(tl / 4 * 3 + 4) : NULL;
        if (out == NULL || sodium_base642bin((unsigned char *)out, tl / 4 * 3 + 4, t, tl, NULL, &n,
                                             NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(out);
            return refuse(err, 400, "bad_request", at, "value_base64 is not base64");
        }
        b->bufs[i] = out;
        op->val = out;
        op->vlen = n;
        op->type = RC_TYPE_RAW;
    } else {
        size_t n = 0;
        if (value_from_json(v, &b->bufs[i], &n, &op->type) != 0)
            return refuse(err, 400, "bad_request", at, "value is not usable");
        op->val = b->bufs[i];
        op->vlen = n;
    }
    if (op->vlen > max_value)
        return refuse(err, 413, "too_large", at, "the value is larger than --max-value");
    long long ttl = -1;
    if (json_get_int(o, "ttl", &ttl) != 0 || ttl > TTL_MAX_S || (ttl < 0 && ttl != -1))
        return refuse(err, 400, "bad_request", at, "ttl must be whole seconds >= 0");
    op->ttl_ms = ttl < 0 ? RC_TTL_DEFAULT : ttl == 0 ? RC_TTL_NONE : ttl * 1000;
    if (json_is_true(json_object_get(o, "if_absent")))
        op->cond = RC_IF_ABSENT;
    json_t *im = json_object_get(o, "if_match");
    if (im != NULL && op->cond == RC_IF_ABSENT)
        return refuse(err, 400, "bad_request", at, "use either if_absent or if_match");
    if (im != NULL) {
        const char *s = json_string_value(im);
        int64_t seq = 0;
        size_t sl = s ? strlen(s) : 0;
        if (sl >= 2 && s[0] == '"' && s[sl - 1] == '"') {
            s++;
            sl -= 2;
        }
        if (json_is_integer(im))
            seq = json_integer_value(im);
        else if (s == NULL || !parse_int64(s, sl, &seq))
            return refuse(err, 400, "bad_request", at, "if_match takes an ETag");
        if (seq < 0)
            return refuse(err, 400, "bad_request", at, "if_match takes an ETag");
        if (seq == 0)
            return refuse(err, 409, "conflict", at,
                          "if_match \"0\" matches nothing: an absent key never matches");
        op->cond = RC_IF_SEQ;
        op->if_seq = (uint64_t)seq;
    }
    return true;
}

static bool parse_incr_by(const json_t *o, size_t i, rc_op *op, batch_error *err)
{
    json_t *by = json_object_get(o, "by");
    op->by.type = RC_TYPE_INT;
    op->by.i = 1;
    if (by == NULL)
        return true;
    if (json_is_integer(by)) {
        op->by.i = json_integer_value(by);
        return true;
    }
    if (json_is_real(by)) {
        op->by.type = RC_TYPE_FLOAT;
        op->by.f = json_real_value(by);
        return true;
    }
    return refuse(err, 400, "bad_request", (long)i, "by must be a number");
}

/* 1 parsed, 0 refused (*ERR), -1 refused by the callback. */
static int parse_op(const json_t *o, size_t i, uint64_t max_value, rc_keyspace *ks,
                    batch_authorize_fn authorize, void *ctx, batch *b, batch_error *err)
{
    static const struct {
        const char *name;
        rc_op_kind kind;
        unsigned perm;
        metric_op mop;
    } kinds[] = {
        {"set", RC_OP_PUT, PERM_WRITE, MOP_SET},
        {"delete", RC_OP_DELETE, PERM_DELETE, MOP_DELETE},
        {"incr", RC_OP_INCR, PERM_WRITE, MOP_PATCH},
        {"get", RC_OP_GET, PERM_READ, MOP_GET},
    };
    rc_op *op = &b->ops[i];
    long at = (long)i;
    const json_t *key = NULL;
    size_t which = 0, found = 0;
    if (!json_is_object(o))
        return refuse(err, 400, "bad_request", at, "each op is a JSON object");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        json_t *v = json_object_get(o, kinds[k].name);
        if (v != NULL) {
            key = v;
            which = k;
            found++;
        }
    }
    if (found != 1)
        return refuse(err, 400, "bad_request", at,
                      "an op has exactly one of set, delete, incr, get");
    if (!json_is_string(key) || json_string_length(key) == 0)
        return refuse(err, 400, "bad_request", at, "the key must be a non-empty string");
    if (json_string_length(key) > RC_KEY_MAX)
        return refuse(err, 414, "key_too_long", at, "keys are at most 1024 bytes");
    op->kind = kinds[which].kind;
    op->ks = ks;
    op->key = json_string_value(key);
    op->klen = json_string_length(key);
    if (authorize != NULL && !authorize(ctx, kinds[which].perm, op->key, op->klen, i))
        return -1;
    b->counts[kinds[which].mop]++;
    switch (op->kind) {
    case RC_OP_PUT:
        return parse_set_value(o, i, max_value, b, err) ? 1 : 0;
    case RC_OP_INCR:
        op->ttl_ms = RC_TTL_DEFAULT;
        return parse_incr_by(o, i, op, err) ? 1 : 0;
    default:
        return 1;
    }
}

int batch_parse(const char *body, size_t len, uint64_t max_value, rc_keyspace *ks,
                batch_authorize_fn authorize, void *ctx, batch *b, batch_error *err)
{
    const char *why = NULL;
    memset(b, 0, sizeof *b);
    b->root = json_parse_object(body, len, &why);
    if (b->root == NULL) {
        refuse(err, 400, "bad_request", -1, "%s", why);
        return -1;
    }
    json_t *ops = json_object_get(b->root, "ops");
    if (!json_is_array(ops)) {
        refuse(err, 400, "bad_request", -1, "the body is {\"ops\": [...]}");
        return -1;
    }
    size_t n = json_array_size(ops);
    if (n > KVD_BATCH_OPS_MAX) {
        refuse(err, 413, "too_many_ops", -1, "a batch holds at most %u ops", KVD_BATCH_OPS_MAX);
        return -1;
    }
    b->ops = calloc(n ? n : 1, sizeof *b->ops);
    b->bufs = calloc(n ? n : 1, sizeof *b->bufs);
    if (b->ops == NULL || b->bufs == NULL) {
        refuse(err, 503, "out_of_memory", -1, "could not allocate the batch");
        return -1;
    }
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        int r = parse_op(json_array_get(ops, i), i, max_value, ks, authorize, ctx, b, err);
        if (r <= 0)
            return r == 0 ? -1 : -2;
    }
    return 0;
}
