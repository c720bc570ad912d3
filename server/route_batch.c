/*
 * route_batch.c — POST /:bucket/: an atomic batch.
 *
 * The whole body is parsed and every op is authorised against the caller's
 * scope (permission and prefix) before anything runs; then the ops go to
 * ONE rc_apply call, which either writes all of them or none. A failure of
 * parsing, authorisation or the engine answers the first failing op's error
 * with "op": <index>, and nothing is written.
 *
 * Op forms: {"set": k, "value": v | "value_base64": b, "ttl": s,
 * "if_absent": true | "if_match": "\"<seq>\""}, {"delete": k},
 * {"incr": k, "by": n}, {"get": k}. Gets see the state before the batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "json_util.h"
#include "metrics.h"
#include "routes.h"
#include "valuetype.h"

typedef struct batch {
    rc_op *ops;
    char **bufs; /* values owned by the batch */
    size_t n;
    uint64_t counts[MOP_COUNT];
} batch;

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->bufs[i]);
        rc_value_free(&b->ops[i].result);
    }
    free(b->ops);
    free(b->bufs);
}

static bool op_fail(kvd_request *req, unsigned status, const char *code, size_t i, const char *msg)
{
    http_error_op(req, status, code, (long)i, msg);
    return false;
}

static bool parse_set_value(kvd_request *req, const json_t *o, size_t i, batch *b)
{
    rc_op *op = &b->ops[i];
    json_t *v = json_object_get(o, "value"), *v64 = json_object_get(o, "value_base64");
    if ((v == NULL) == (v64 == NULL))
        return op_fail(req, 400, "bad_request", i, "set needs one of value, value_base64");
    if (v64 != NULL) {
        const char *t = json_string_value(v64);
        size_t tl = t ? strlen(t) : 0, n = 0;
        char *out = t ? malloc(tl / 4 * 3 + 4) : NULL;
        if (out == NULL || sodium_base642bin((unsigned char *)out, tl / 4 * 3 + 4, t, tl, NULL, &n,
                                             NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(out);
            return op_fail(req, 400, "bad_request", i, "value_base64 is not base64");
        }
        b->bufs[i] = out;
        op->val = out;
        op->vlen = n;
        op->type = RC_TYPE_RAW;
    } else {
        size_t n = 0;
        if (value_from_json(v, &b->bufs[i], &n, &op->type) != 0)
            return op_fail(req, 400, "bad_request", i, "value is not usable");
        op->val = b->bufs[i];
        op->vlen = n;
    }
    if (op->vlen > req->srv->cfg.max_value)
        return op_fail(req, 413, "too_large", i, "the value is larger than --max-value");
    long long ttl = -1;
    if (json_get_int(o, "ttl", &ttl) != 0 || ttl > TTL_MAX_S || (ttl < 0 && ttl != -1))
        return op_fail(req, 400, "bad_request", i, "ttl must be whole seconds >= 0");
    op->ttl_ms = ttl < 0 ? RC_TTL_DEFAULT : ttl == 0 ? RC_TTL_NONE : ttl * 1000;
    if (json_is_true(json_object_get(o, "if_absent")))
        op->cond = RC_IF_ABSENT;
    json_t *im = json_object_get(o, "if_match");
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
            return op_fail(req, 400, "bad_request", i, "if_match takes an ETag");
        if (seq < 0)
            return op_fail(req, 400, "bad_request", i, "if_match takes an ETag");
        op->cond = RC_IF_SEQ;
        op->if_seq = (uint64_t)seq;
    }
    return true;
}

static bool parse_incr_by(kvd_request *req, const json_t *o, size_t i, rc_op *op)
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
    return op_fail(req, 400, "bad_request", i, "by must be a number");
}

static bool parse_op(kvd_request *req, const json_t *o, size_t i, batch *b)
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
    const json_t *key = NULL;
    size_t which = 0, found = 0;
    if (!json_is_object(o))
        return op_fail(req, 400, "bad_request", i, "each op is a JSON object");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        json_t *v = json_object_get(o, kinds[k].name);
        if (v != NULL) {
            key = v;
            which = k;
            found++;
        }
    }
    if (found != 1)
        return op_fail(req, 400, "bad_request", i,
                       "an op has exactly one of set, delete, incr, get");
    if (!json_is_string(key) || json_string_length(key) == 0)
        return op_fail(req, 400, "bad_request", i, "the key must be a non-empty string");
    if (json_string_length(key) > RC_KEY_MAX)
        return op_fail(req, 414, "key_too_long", i, "keys are at most 1024 bytes");
    op->kind = kinds[which].kind;
    op->ks = req->pol.ks;
    op->key = json_string_value(key);
    op->klen = json_string_length(key);
    if (!auth_require(req, kinds[which].perm, op->key, op->klen, (long)i))
        return false;
    b->counts[kinds[which].mop]++;
    switch (op->kind) {
    case RC_OP_PUT:
        return parse_set_value(req, o, i, b);
    case RC_OP_INCR:
        op->ttl_ms = RC_TTL_DEFAULT;
        return parse_incr_by(req, o, i, op);
    default:
        return true;
    }
}

static json_t *op_result(const rc_op *op)
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
        } else if (utf8_valid(op->result.data ? op->result.data : "", op->result.len)) {
            json_object_set_new(
                r, "value", json_stringn(op->result.data ? op->result.data : "", op->result.len));
        } else {
            char *b64 =
                base64_encode(op->result.data, op->result.len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(r, "value_base64", json_string(b64 ? b64 : ""));
            free(b64);
        }
        break;
    default:
        break;
    }
    return r;
}

void route_batch(kvd_request *req)
{
    const char *why = NULL;
    batch b = {0};
    json_t *root = json_parse_object(req->body, req->body_len, &why);
    if (root == NULL) {
        http_error(req, 400, "bad_request", "%s", why);
        return;
    }
    json_t *ops = json_object_get(root, "ops");
    if (!json_is_array(ops)) {
        http_error(req, 400, "bad_request", "the body is {\"ops\": [...]}");
        goto done;
    }
    size_t n = json_array_size(ops);
    if (n > KVD_BATCH_OPS_MAX) {
        http_error(req, 413, "too_many_ops", "a batch holds at most %u ops", KVD_BATCH_OPS_MAX);
        goto done;
    }
    b.ops = calloc(n ? n : 1, sizeof *b.ops);
    b.bufs = calloc(n ? n : 1, sizeof *b.bufs);
    if (b.ops == NULL || b.bufs == NULL) {
        http_error(req, 503, "out_of_memory", "could not allocate the batch");
        goto done;
    }
    b.n = n;
    for (size_t i = 0; i < n; i++)
        if (!parse_op(req, json_array_get(ops, i), i, &b))
            goto done;
    size_t failed = 0;
    int rc = rc_apply(req->srv->db, b.ops, n, &failed);
    if (rc != 0) {
        if (rc == RC_EEXISTS)
            http_error_op(req, 409, "exists", (long)failed, "the key exists");
        else if (rc == RC_ECONFLICT)
            http_error_op(req, 409, "conflict", (long)failed, "the key's ETag does not match");
        else
            http_engine_error(req, rc, (long)failed);
        goto done;
    }
    /* a delete of an absent key deleted nothing: not counted, as for DELETE */
    for (size_t i = 0; i < n; i++)
        if (b.ops[i].kind == RC_OP_DELETE && b.ops[i].seq == 0)
            b.counts[MOP_DELETE]--;
    for (int m = 0; m < MOP_COUNT; m++)
        if (b.counts[m] > 0)
            metrics_count_op(req->srv->metrics, (metric_op)m, b.counts[m]);
    json_t *results = json_array();
    for (size_t i = 0; results != NULL && i < n; i++)
        json_array_append_new(results, op_result(&b.ops[i]));
    json_t *ans = json_object();
    if (ans != NULL)
        json_object_set_new(ans, "results", results);
    else
        json_decref(results);
    http_json(req, 200, ans);
done:
    batch_free(&b);
    json_decref(root);
}
