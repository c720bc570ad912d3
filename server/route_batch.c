/*
 * route_batch.c — POST /:bucket/: an atomic batch.
 *
 * The whole body is parsed (batch_parse.c) and every op is authorised
 * against the caller's scope (permission and prefix) before anything runs;
 * then the ops go to ONE rc_apply_async call (durable.c: the connection is
 * suspended until the writes are durable), which either writes all of them
 * or none. A failure of
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

#include "budget.h"
#include "auth.h"
#include "batch_parse.h"
#include "durable.h"
#include "batch_results.h"
#include "metrics.h"
#include "routes.h"

/* The batch parser's authorisation callback: the caller's scope (permission
 * and prefix) for op I, answered with "op": I when refused. */
static bool authorize_op(void *ctx, unsigned perm, const char *key, size_t klen, size_t i)
{
    return auth_require(ctx, perm, key, klen, (long)i);
}

/* A batch waiting for durability: what its answer needs (batch_finish). */
typedef struct batch_park {
    batch b;               /* applied: the ops hold their results */
    uint64_t answer_bytes; /* already charged for the answer */
} batch_park;

/* A batch's answer once its ops are durable (durable.c): the results of
 * every op. Frees the park. */
static void batch_finish(kvd_request *req, int status)
{
    batch_park *pk = req->park_ctx;
    req->park_ctx = NULL;
    batch *b = &pk->b;
    size_t n = b->n;
    if (status != 0) {
        durable_error(req, status);
        goto done;
    }
    /* a delete of an absent key deleted nothing: not counted, as for DELETE */
    for (size_t i = 0; i < n; i++)
        if (b->ops[i].kind == RC_OP_DELETE && b->ops[i].seq == 0)
            b->counts[MOP_DELETE]--;
    for (int m = 0; m < MOP_COUNT; m++)
        if (b->counts[m] > 0)
            metrics_count_op(req->srv->metrics, (metric_op)m, b->counts[m]);
    /* the answer is written straight into one buffer (batch_results.c) */
    size_t len = 0;
    uint64_t answer_bytes = pk->answer_bytes;
    size_t exact = batch_results_size(b->ops, n);
    if (exact > answer_bytes && !budget_charge(req, exact - answer_bytes))
        goto done;
    char *text = batch_results_dump(b->ops, n, &len);
    struct MHD_Response *resp = text ? http_response_take(text, len) : NULL;
    if (resp != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    http_send(req, 200, resp);
done:
    batch_free(b);
    free(pk);
}

void route_batch(kvd_request *req)
{
    batch b;
    batch_error err;
    /* the parsed tree costs about the body again (server-wide budget) */
    if (!budget_charge_body(req, req->body_len)) {
        budget_refuse_busy(req, req->body_len);
        return;
    }
    int parsed = batch_parse(req->body, req->body_len, req->srv->cfg.max_value, req->pol.ks,
                             authorize_op, req, &b, &err);
    if (parsed != 0) {
        if (budget_json_refused(req))
            goto done;
        if (parsed == -1 && err.op < 0)
            http_error(req, err.status, err.code, "%s", err.msg);
        else if (parsed == -1)
            http_error_op(req, err.status, err.code, err.op, err.msg);
        goto done;
    }
    size_t n = b.n;
    size_t failed = 0;
    /* what the ops will read (engine copies) and the answer will hold */
    uint64_t engine_bytes = 0, answer_bytes = 16;
    for (size_t i = 0; i < n; i++) {
        rc_op *op = &b.ops[i];
        rc_value m = {0};
        answer_bytes += 48;
        if (op->kind != RC_OP_GET && op->kind != RC_OP_GETSET && op->kind != RC_OP_APPEND)
            continue;
        if (rc_get_meta(req->srv->db, op->ks, op->key, op->klen, &m) != 0)
            m.len = 0;
        engine_bytes += m.len + (op->kind == RC_OP_APPEND ? op->vlen : 0);
        if (op->kind == RC_OP_GET)
            answer_bytes += m.len;
    }
    if (!budget_charge(req, engine_bytes + answer_bytes))
        goto done;
    batch_park *pk = malloc(sizeof *pk);
    if (pk == NULL) {
        http_engine_error(req, RC_ENOMEM, -1);
        goto done;
    }
    int rc = durable_apply(req, b.ops, n, &failed, batch_finish);
    if (rc != 0) {
        free(pk);
        if (rc == RC_EEXISTS)
            http_error_op(req, 409, "exists", (long)failed, "the key exists");
        else if (rc == RC_ECONFLICT)
            http_error_op(req, 409, "conflict", (long)failed, "the key's ETag does not match");
        else
            http_engine_error(req, rc, (long)failed);
        goto done;
    }
    /* applied: the answer waits for durability (batch_finish owns B now) */
    *pk = (batch_park){.b = b, .answer_bytes = answer_bytes};
    req->park_ctx = pk;
    durable_wait(req);
    return;
done:
    batch_free(&b);
}
