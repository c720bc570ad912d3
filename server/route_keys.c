/*
 * route_keys.c — one key: GET, HEAD, PUT/POST, PATCH, DELETE.
 *
 * Every write is one rc_apply call with the request's condition folded into
 * the op (If-None-Match: * -> RC_IF_ABSENT, If-Match: "<seq>" ->
 * RC_IF_SEQ), so a failed condition writes nothing and there is no window
 * between check and write. The ETag is the sequence number of the write
 * that produced the value.
 *
 * PUT answers 201 when the key was absent just before (a keydir lookup with
 * rc_get_meta; under a concurrent writer of the same key the 200/201
 * distinction is best effort, the write itself is not) and 200 otherwise;
 * so do a PATCH incr or append (which create an absent key), and a PATCH
 * setnx that wrote always answers 201. If-Match never matches an absent key:
 * If-Match "0" is a 409 before anything is read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "auth.h"
#include "content_type.h"
#include "durable.h"
#include "metrics.h"
#include "routes.h"
#include "valuetype.h"
#include "watch.h"

bool ttl_from_text(const char *text, size_t len, int64_t *ttl_ms)
{
    int64_t s = 0;
    if (!parse_int64(text, len, &s) || s < 0 || s > TTL_MAX_S)
        return false;
    *ttl_ms = s == 0 ? RC_TTL_NONE : s * 1000;
    return true;
}

bool parse_ttl_query(kvd_request *req, int64_t *ttl_ms)
{
    char buf[32];
    size_t len = 0;
    int q = http_query(req, "ttl", buf, sizeof buf, &len);
    if (q == 1) {
        *ttl_ms = RC_TTL_DEFAULT;
        return true;
    }
    if (q != 0 || !ttl_from_text(buf, len, ttl_ms)) {
        http_error(req, 400, "bad_request", "ttl must be whole seconds, 0 .. %lld", TTL_MAX_S);
        return false;
    }
    return true;
}

void format_etag(uint64_t seq, char *buf, size_t cap)
{
    snprintf(buf, cap, "\"%" PRIu64 "\"", seq);
}

int64_t expires_header_s(int64_t ms)
{
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

/* "<seq>", W/"<seq>" or a bare number. */
static bool parse_etag(const char *s, uint64_t *seq)
{
    char buf[32];
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (n >= 2 && s[0] == 'W' && s[1] == '/') {
        s += 2;
        n -= 2;
    }
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    int64_t v;
    if (n == 0 || n >= sizeof buf || s[0] == '-' || !parse_int64(s, n, &v))
        return false;
    *seq = (uint64_t)v;
    return true;
}

/* Fold If-Match / If-None-Match into OP. False when answered (400, 409). */
static bool parse_conditions(kvd_request *req, rc_op *op, bool allow_none_match)
{
    const char *im = http_header(req, MHD_HTTP_HEADER_IF_MATCH);
    const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (im != NULL && inm != NULL) {
        http_error(req, 400, "bad_request", "use either If-Match or If-None-Match");
        return false;
    }
    if (im != NULL) {
        if (strcmp(im, "*") == 0) {
            op->cond = RC_IF_PRESENT;
        } else if (parse_etag(im, &op->if_seq)) {
            op->cond = RC_IF_SEQ;
            if (op->if_seq == 0) {
                /* sequence numbers start at 1: "0" names no value, and an
                 * absent key matches no ETag (the engine's seq-0-is-absent
                 * rule is for scripts' read checks, not for clients) */
                http_error(req, 409, "conflict",
                           "If-Match \"0\" matches nothing: no value has that ETag and an "
                           "absent key never matches");
                return false;
            }
        } else {
            http_error(req, 400, "bad_request", "If-Match needs one ETag (\"<seq>\") or *");
            return false;
        }
    }
    if (inm != NULL) {
        if (!allow_none_match || strcmp(inm, "*") != 0) {
            http_error(req, 400, "bad_request", "If-None-Match supports only * here");
            return false;
        }
        op->cond = RC_IF_ABSENT;
    }
    return true;
}

static void add_value_headers(struct MHD_Response *r, const rc_value *v, uint64_t etag_seq,
                              const char *ctype)
{
    char etag[32], exp[32];
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ctype ? ctype : value_content_type(v->type));
    format_etag(etag_seq, etag, sizeof etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    if (v->expires_at_ms > 0) {
        snprintf(exp, sizeof exp, "%" PRId64, expires_header_s(v->expires_at_ms));
        MHD_add_response_header(r, "X-Expires-At", exp);
    }
}

/* Answer with value V (its data is taken) and the ETag of ETAG_SEQ; CTYPE
 * (may be NULL) overrides the Content-Type of V's type. */
static void send_value_ct(kvd_request *req, unsigned status, rc_value *v, uint64_t etag_seq,
                          const char *ctype)
{
    struct MHD_Response *r;
    if (v->data == NULL || v->len == 0) {
        rc_value_free(v);
        r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    } else {
        r = http_response_engine(v->data, v->len);
        v->data = NULL;
    }
    if (r != NULL)
        add_value_headers(r, v, etag_seq, ctype);
    http_send(req, status, r);
}

static void send_value(kvd_request *req, unsigned status, rc_value *v, uint64_t etag_seq)
{
    send_value_ct(req, status, v, etag_seq, NULL);
}

/* Read the value and, in buckets that keep Content-Types, its recorded type
 * (one rc_apply: a consistent pair). *CTYPE is malloc'ed or NULL. */
static int read_value(kvd_request *req, rc_value *v, char **ctype)
{
    kvd *srv = req->srv;
    *ctype = NULL;
    if (!req->pol.content_types || req->pol.ctype_ks == NULL)
        return rc_get(srv->db, req->pol.ks, req->key, req->klen, v);
    rc_op ops[2] = {
        {.kind = RC_OP_GET, .ks = req->pol.ks, .key = req->key, .klen = req->klen},
        {.kind = RC_OP_GET, .ks = req->pol.ctype_ks, .key = req->key, .klen = req->klen},
    };
    int rc = rc_apply(srv->db, ops, 2, NULL);
    if (rc != 0)
        return rc;
    *v = ops[0].result;
    if (v->seq == 0) {
        rc_value_free(&ops[1].result);
        return RC_ENOTFOUND;
    }
    if (v->type == RC_TYPE_RAW && ctype_applies(ops[1].result.seq, v->seq) &&
        ops[1].result.len <= CTYPE_MAX) {
        *ctype = malloc(ops[1].result.len + 1);
        if (*ctype != NULL) {
            memcpy(*ctype, ops[1].result.data, ops[1].result.len);
            (*ctype)[ops[1].result.len] = '\0';
        }
    }
    rc_value_free(&ops[1].result);
    return 0;
}

static void key_get(kvd_request *req)
{
    kvd *srv = req->srv;
    rc_value v = {0};
    char *ctype = NULL;
    /* the value is copied out of the engine and held until it is sent */
    if (rc_get_meta(srv->db, req->pol.ks, req->key, req->klen, &v) == 0 &&
        !budget_charge(req, v.len))
        return;
    int rc = read_value(req, &v, &ctype);
    metrics_count_op(srv->metrics, MOP_GET, 1);
    if (rc == RC_ENOTFOUND) {
        http_error(req, 404, "not_found", "no such key");
        return;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return;
    }
    const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    uint64_t seq = 0;
    /* "*" matches any current value (RFC 9110 section 13.1.2) */
    bool star = inm != NULL && strcmp(inm, "*") == 0;
    if (star || (inm != NULL && parse_etag(inm, &seq) && seq == v.seq)) {
        seq = v.seq;
        rc_value_free(&v);
        v.type = RC_TYPE_RAW;
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        char etag[32];
        format_etag(seq, etag, sizeof etag);
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
        http_send(req, 304, r);
        free(ctype);
        return;
    }
    send_value_ct(req, 200, &v, v.seq, ctype);
    free(ctype);
}

static void send_etag(kvd_request *req, unsigned status, uint64_t seq)
{
    char etag[32];
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    format_etag(seq, etag, sizeof etag);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    http_send(req, status, r);
}

/* A failed write condition is a conflict, also "If-Match on an absent key". */
static void write_error(kvd_request *req, const rc_op *op, int rc)
{
    if (rc == RC_ENOTFOUND && op->cond == RC_IF_PRESENT)
        rc = RC_ECONFLICT;
    if (rc == RC_EEXISTS) {
        http_error(req, 409, "exists", "the key exists");
        return;
    }
    if (rc == RC_ECONFLICT) {
        http_error(req, 409, "conflict", "the key's ETag does not match");
        return;
    }
    http_engine_error(req, rc, -1);
}

/* A PUT's answer once it is durable (durable.c). */
static void put_finish(kvd_request *req, int status)
{
    if (status != 0) {
        durable_error(req, status);
        return;
    }
    /* writes count when they happened (a refused one changed nothing);
     * reads count whether or not the key was there */
    metrics_count_op(req->srv->metrics, MOP_SET, 1);
    send_etag(req, req->park_http, req->park_seq);
}

static void key_put(kvd_request *req)
{
    kvd *srv = req->srv;
    rc_op op = {.kind = RC_OP_PUT, .ks = req->pol.ks, .key = req->key, .klen = req->klen};
    op.val = req->body ? req->body : "";
    op.vlen = req->body_len;
    if (!parse_ttl_query(req, &op.ttl_ms) || !parse_conditions(req, &op, true))
        return;
    int typed = value_type_for_put(http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE), op.val, op.vlen,
                                   &op.type);
    /* a JSON check that stopped at the memory bound decided nothing */
    if (budget_json_refused(req))
        return;
    if (typed != 0) {
        http_error(req, 400, "bad_request",
                   "Content-Type is application/json but the body "
                   "is not valid JSON");
        return;
    }
    const char *ctype = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    rc_op ops[2];
    size_t nops = 1;
    if (ctype_worth_storing(ctype, op.type)) {
        policy fresh;
        int erc =
            req->pol.content_types ? 0 : policy_enable_content_types(srv, req->pol.name, &fresh);
        if (erc != 0) {
            http_engine_error(req, erc, -1);
            return;
        }
        if (!req->pol.content_types) { /* the fresh copy's references replace ours */
            policy_release(srv, &req->pol);
            req->pol = fresh;
            op.ks = req->pol.ks;
        }
        ctype_record_op(&req->pol, &op, ctype, &ops[1]);
        nops = 2;
    }
    bool created = op.cond == RC_IF_ABSENT;
    if (op.cond == RC_IF_ANY) {
        rc_value meta = {0};
        created = rc_get_meta(srv->db, req->pol.ks, req->key, req->klen, &meta) == RC_ENOTFOUND;
    }
    ops[0] = op;
    int rc = durable_apply(req, ops, nops, NULL, put_finish);
    op = ops[0];
    if (rc != 0) {
        write_error(req, &op, rc);
        return;
    }
    req->park_http = created ? 201 : 200;
    req->park_seq = op.seq;
    durable_wait(req);
}

static void delete_finish(kvd_request *req, int status)
{
    if (status != 0) {
        durable_error(req, status);
        return;
    }
    metrics_count_op(req->srv->metrics, MOP_DELETE, 1);
    http_empty(req, 204);
}

static void key_delete(kvd_request *req)
{
    rc_op op = {.kind = RC_OP_DELETE, .ks = req->pol.ks, .key = req->key, .klen = req->klen};
    if (!parse_conditions(req, &op, false))
        return;
    bool conditional = op.cond != RC_IF_ANY;
    if (!conditional)
        op.cond = RC_IF_PRESENT;
    rc_op ops[2] = {op};
    size_t nops = 1;
    if (req->pol.content_types && req->pol.ctype_ks != NULL) {
        ops[1] = (rc_op){
            .kind = RC_OP_DELETE, .ks = req->pol.ctype_ks, .key = req->key, .klen = req->klen};
        nops = 2;
    }
    int rc = durable_apply(req, ops, nops, NULL, delete_finish);
    op = ops[0];
    if (rc == RC_ENOTFOUND && !conditional) {
        http_error(req, 404, "not_found", "no such key");
        return;
    }
    if (rc != 0) {
        write_error(req, &op, rc);
        return;
    }
    durable_wait(req);
}

/* A PATCH waiting for durability: what its answer needs (patch_finish). */
typedef struct patch_park {
    patch_op p; /* owns the value (p.buf) that op.val points into */
    rc_op op;   /* applied; owns op.result */
    bool created;
} patch_park;

/* A PATCH's answer once it is durable (durable.c); frees its park. */
static void patch_finish(kvd_request *req, int status)
{
    patch_park *pk = req->park_ctx;
    req->park_ctx = NULL;
    rc_op *op = &pk->op;
    if (status != 0) {
        durable_error(req, status);
    } else {
        metrics_count_op(req->srv->metrics, MOP_PATCH, 1);
        if (pk->p.kind == PATCH_SETNX) {
            rc_value v = {.data = pk->p.buf, .len = pk->p.vlen, .type = pk->p.vtype};
            struct MHD_Response *r = http_response_copy(v.data ? v.data : "", v.len);
            if (r != NULL)
                add_value_headers(r, &v, op->seq, NULL);
            http_send(req, 201, r);
        } else if (pk->p.kind == PATCH_GETSET && op->result.seq == 0) {
            char etag[32];
            struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
            format_etag(op->seq, etag, sizeof etag);
            if (r != NULL) {
                MHD_add_response_header(r, "X-Previous", "absent");
                MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
            }
            http_send(req, 200, r);
        } else {
            send_value(req, pk->created ? 201 : 200, &op->result, op->seq);
        }
    }
    rc_value_free(&op->result);
    patch_free(&pk->p);
    free(pk);
}

static void key_patch(kvd_request *req)
{
    kvd *srv = req->srv;
    patch_op p;
    const char *why = NULL;
    rc_op op = {.ks = req->pol.ks, .key = req->key, .klen = req->klen};
    int parsed = patch_parse(req->body, req->body_len, &p, &why);
    /* a JSON check that stopped at the memory bound decided nothing */
    if (budget_json_refused(req)) {
        if (parsed == 0)
            patch_free(&p);
        return;
    }
    if (parsed != 0) {
        http_error(req, 400, "bad_request", "%s", why);
        return;
    }
    if (!parse_ttl_query(req, &op.ttl_ms) || !parse_conditions(req, &op, false))
        goto done;
    if (p.vlen > srv->cfg.max_value) {
        http_error(req, 413, "too_large", "values are at most %llu bytes",
                   (unsigned long long)srv->cfg.max_value);
        goto done;
    }
    op.val = p.buf;
    op.vlen = p.vlen;
    op.type = p.vtype;
    switch (p.kind) {
    case PATCH_INCR:
        op.kind = RC_OP_INCR;
        op.by = p.by;
        break;
    case PATCH_APPEND:
        op.kind = RC_OP_APPEND;
        break;
    case PATCH_SETNX:
        op.kind = RC_OP_PUT;
        if (op.cond != RC_IF_ANY) {
            http_error(req, 400, "bad_request", "setnx takes no If-Match");
            goto done;
        }
        op.cond = RC_IF_ABSENT;
        break;
    case PATCH_GETSET:
        op.kind = RC_OP_GETSET;
        break;
    }
    /* incr and append create an absent key: best effort, as for PUT */
    bool created = p.kind == PATCH_SETNX;
    if (p.kind == PATCH_INCR || p.kind == PATCH_APPEND) {
        rc_value meta = {0};
        created = rc_get_meta(srv->db, req->pol.ks, req->key, req->klen, &meta) == RC_ENOTFOUND;
        rc_value_free(&meta);
    }
    patch_park *pk = malloc(sizeof *pk);
    if (pk == NULL) {
        http_engine_error(req, RC_ENOMEM, -1);
        goto done;
    }
    int rc = durable_apply(req, &op, 1, NULL, patch_finish);
    if (rc != 0) {
        free(pk);
        write_error(req, &op, rc);
        goto done;
    }
    /* applied: the answer waits for durability (patch_finish owns P now) */
    *pk = (patch_park){.p = p, .op = op, .created = created};
    req->park_ctx = pk;
    durable_wait(req);
    return;
done:
    patch_free(&p);
}

void route_key(kvd_request *req)
{
    switch (req->method) {
    case METHOD_GET:
    case METHOD_HEAD:
        if (!watch_key(req, key_get))
            key_get(req);
        break;
    case METHOD_PUT:
    case METHOD_POST:
        key_put(req);
        break;
    case METHOD_PATCH:
        key_patch(req);
        break;
    case METHOD_DELETE:
        key_delete(req);
        break;
    default:
        http_error(req, 405, "method_not_allowed", "not allowed");
        break;
    }
}
