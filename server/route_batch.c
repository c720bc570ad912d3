/*
 * route_batch.c — POST /:bucket/: an atomic batch.
 *
 * The whole body is parsed (batch_parse.c) and every op is authorised
 * against the caller's scope (permission and prefix) before anything runs;
 * then the ops go to ONE rc_apply call, which either writes all of them or
 * none. A failure of
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
#include "batch_parse.h"
#include "json_util.h"
#include "metrics.h"
#include "routes.h"
#include "valuetype.h"

/* The batch parser's authorisation callback: the caller's scope (permission
 * and prefix) for op I, answered with "op": I when refused. */
static bool authorize_op(void *ctx, unsigned perm, const char *key, size_t klen, size_t i)
{
    return auth_require(ctx, perm, key, klen, (long)i);
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
    batch b;
    batch_error err;
    int parsed = batch_parse(req->body, req->body_len, req->srv->cfg.max_value, req->pol.ks,
                             authorize_op, req, &b, &err);
    if (parsed != 0) {
        if (parsed == -1 && err.op < 0)
            http_error(req, err.status, err.code, "%s", err.msg);
        else if (parsed == -1)
            http_error_op(req, err.status, err.code, err.op, err.msg);
        goto done;
    }
    size_t n = b.n;
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
}
