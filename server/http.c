/*
 * http.c — libmicrohttpd glue.
 *
 * MHD runs an internal thread pool over epoll; each request is handled
 * synchronously on the pool thread that owns its connection (engine calls are
 * short except an fdatasync under --sync always, which group-commits across
 * threads, so the pool size bounds the number of writes waiting on one sync).
 *
 * A request goes through three calls of the access handler:
 *   1. headers: allocate the context, match the route and check everything
 *      that does not need the body (405, 414, 404, credentials, 411, 413
 *      against Content-Length) — so an oversized or unauthorised upload is
 *      refused before a byte of it is buffered;
 *   2. body chunks: appended up to the route's limit (a chunked body that
 *      passes it is discarded and answered 413 at the end);
 *   3. end: dispatch to the route handler.
 * A route may instead park the request (park.h): its connection is
 * suspended, and once resumed the access handler is called again and runs
 * the route's resume function on the same pool thread.
 * The completion callback records latency, logs the request and frees the
 * context. Paths arrive raw: the unescape callback is a no-op, so routing sees
 * "%2F" and decodes keys itself; query values are decoded on lookup.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "budget.h"
#include "cluster.h"
#include "durable.h"
#include "log.h"
#include "metrics.h"
#include "park.h"
#include "routes.h"

static http_method method_from_name(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return METHOD_GET;
    if (strcmp(m, "HEAD") == 0)
        return METHOD_HEAD;
    if (strcmp(m, "PUT") == 0)
        return METHOD_PUT;
    if (strcmp(m, "POST") == 0)
        return METHOD_POST;
    if (strcmp(m, "PATCH") == 0)
        return METHOD_PATCH;
    if (strcmp(m, "DELETE") == 0)
        return METHOD_DELETE;
    return METHOD_OTHER;
}

int pct_decode(const char *in, size_t inlen, char *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < inlen; i++) {
        if (in[i] != '%') {
            out[o++] = in[i];
            continue;
        }
        if (i + 2 >= inlen)
            return -1;
        int hi = rcu_hex_value(in[i + 1]), lo = rcu_hex_value(in[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    *outlen = o;
    return 0;
}

const char *http_header(const kvd_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int query_value_decode(const char *raw, size_t rawlen, char *buf, size_t cap, size_t *len)
{
    if (raw == NULL) {
        raw = "";
        rawlen = 0;
    }
    if (rawlen >= cap) {
        /* decoding never lengthens; a long raw value may still fit */
        char *tmp = malloc(rawlen);
        size_t n = 0;
        if (tmp == NULL)
            return -1;
        if (pct_decode(raw, rawlen, tmp, &n) != 0 || n >= cap) {
            free(tmp);
            return -1;
        }
        memcpy(buf, tmp, n);
        free(tmp);
        buf[n] = '\0';
        *len = n;
        return 0;
    }
    if (pct_decode(raw, rawlen, buf, len) != 0)
        return -1;
    buf[*len] = '\0';
    return 0;
}

int http_query(const kvd_request *req, const char *name, char *buf, size_t cap, size_t *len)
{
    const char *raw = NULL;
    size_t rawlen = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &raw,
                                      &rawlen) != MHD_YES)
        return 1;
    return query_value_decode(raw, rawlen, buf, cap, len);
}

struct foreach_ctx {
    http_query_fn fn;
    void *ctx;
    int result;
};

static enum MHD_Result foreach_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    struct foreach_ctx *fc = cls;
    char *k = malloc(key_size + 1), *v = malloc(value_size + 1);
    size_t kl = 0, vl = 0;
    if (k == NULL || v == NULL)
        goto skip;
    if (pct_decode(key, key_size, k, &kl) != 0)
        goto skip;
    if (value == NULL)
        value_size = 0;
    else if (pct_decode(value, value_size, v, &vl) != 0)
        goto skip;
    k[kl] = '\0';
    v[vl] = '\0';
    fc->result = fc->fn(fc->ctx, k, kl, v, vl);
skip:
    free(k);
    free(v);
    return fc->result == 0 ? MHD_YES : MHD_NO;
}

int http_query_foreach(const kvd_request *req, http_query_fn fn, void *ctx)
{
    struct foreach_ctx fc = {fn, ctx, 0};
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, foreach_arg, &fc);
    return fc.result;
}

/* ----------------------------------------------------------- responses */

/* The body length of the last response this thread built with an
 * http_response_* constructor; http_send takes it (and resets it), since a
 * handler builds and sends its response on one thread. */
static _Thread_local uint64_t built_len;

struct MHD_Response *http_response_copy(const void *data, size_t len)
{
    built_len = len;
    return MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
}

static void free_engine_data(void *p)
{
    rc_value v = {.data = p};
    rc_value_free(&v);
}

struct MHD_Response *http_response_engine(void *data, size_t len)
{
    built_len = len;
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(len, data, free_engine_data);
    if (r == NULL)
        free_engine_data(data);
    return r;
}

struct MHD_Response *http_response_take(void *data, size_t len)
{
    built_len = len;
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, data, free);
    if (r == NULL)
        free(data);
    return r;
}

void http_send(kvd_request *req, unsigned status, struct MHD_Response *resp)
{
    uint64_t len = built_len;
    built_len = 0;
    if (req->responded) {
        if (resp != NULL)
            MHD_destroy_response(resp);
        return;
    }
    req->responded = true;
    /* a HEAD answer carries no body, whatever the response object holds */
    req->resp_bytes += req->method == METHOD_HEAD ? 0 : len;
    /* a replica group acknowledges a write only once it is replicated: the
     * gate may hold the answer (parked) and send it later */
    if (cluster_gate_response(req, status, resp))
        return;
    http_send_now(req, status, resp);
}

void http_send_now(kvd_request *req, unsigned status, struct MHD_Response *resp)
{
    if (built_len != 0) {
        /* the gate built this answer in place of the write's own */
        req->resp_bytes = built_len;
        built_len = 0;
    }
    req->responded = true;
    if (resp == NULL) {
        req->resp_bytes = 0;
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (resp == NULL) {
            req->status = status;
            return;
        }
    }
    if (atomic_load(&req->srv->shutting_down))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (req->method == METHOD_GET || req->method == METHOD_HEAD) {
        /* the database's last seq, read after the answer's data: pass it
         * back as the next ?wait= (CLUSTER.md, "Watching") */
        char seq[24];
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)rc_last_seq(req->srv->db));
        MHD_add_response_header(resp, "X-Ringcask-Seq", seq);
    }
    req->status = status;
    if (MHD_queue_response(req->conn, status, resp) != MHD_YES)
        kvd_log(LOG_WARN, "could not queue a %u response for %s %s", status, req->method_name,
                req->raw_path);
    MHD_destroy_response(resp);
}

void http_empty(kvd_request *req, unsigned status)
{
    http_send(req, status, MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT));
}

struct MHD_Response *http_json_response(json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return NULL;
    size_t len = strlen(text);
    /* one trailing newline for terminals; JSON parsers ignore it */
    char *withnl = realloc(text, len + 2);
    if (withnl == NULL) {
        free(text);
        return NULL;
    }
    withnl[len] = '\n';
    withnl[len + 1] = '\0';
    struct MHD_Response *r = http_response_take(withnl, len + 1);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return r;
}

void http_json(kvd_request *req, unsigned status, json_t *body)
{
    http_send(req, status, http_json_response(body));
}

json_t *http_error_json(const char *code, long op, const char *msg)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "error", json_string(code));
    json_t *m = json_string(msg);
    json_object_set_new(o, "message", m ? m : json_string("(message not UTF-8)"));
    if (op >= 0)
        json_object_set_new(o, "op", json_integer(op));
    return o;
}

static void error_body(kvd_request *req, unsigned status, const char *code, long op,
                       const char *msg)
{
    http_json(req, status, http_error_json(code, op, msg));
}

void http_error(kvd_request *req, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    error_body(req, status, code, -1, msg);
}

void http_error_op(kvd_request *req, unsigned status, const char *code, long op, const char *msg)
{
    error_body(req, status, code, op, msg);
}

unsigned http_status_for(int rc, const char **code)
{
    switch (rc) {
    case RC_ENOTFOUND:
        *code = "not_found";
        return 404;
    case RC_ENOKEYSPACE:
        *code = "no_such_bucket";
        return 404;
    case RC_EEXISTS:
        *code = "exists";
        return 409;
    case RC_ECONFLICT:
        *code = "conflict";
        return 409;
    case RC_EOVERFLOW:
        *code = "overflow";
        return 409;
    case RC_ETYPE:
        *code = "wrong_type";
        return 415;
    case RC_EKEYSIZE:
        *code = "key_too_long";
        return 414;
    case RC_EVALUESIZE:
        *code = "value_too_large";
        return 413;
    case RC_ELIMIT:
        *code = "too_large";
        return 413;
    case RC_EINVAL:
        *code = "bad_request";
        return 400;
    case RC_ENOSPC:
        *code = "disk_full";
        return 507;
    case RC_EREADONLY:
        *code = "read_only";
        return 503;
    case RC_ECLOSED:
        *code = "shutting_down";
        return 503;
    case RC_EHORIZON:
        *code = "horizon";
        return 409;
    case RC_EGAP:
        *code = "gap";
        return 409;
    default:
        *code = "internal";
        return 500;
    }
}

void http_engine_error(kvd_request *req, int rc, long op)
{
    http_engine_error_detail(req, rc, op, rc_last_error_message());
}

void http_engine_error_detail(kvd_request *req, int rc, long op, const char *detail)
{
    const char *code = "internal";
    unsigned status = http_status_for(rc, &code);
    char msg[512];
    if (detail != NULL && detail[0] != '\0')
        snprintf(msg, sizeof msg, "%s: %s", rc_strerror(rc), detail);
    else
        snprintf(msg, sizeof msg, "%s", rc_strerror(rc));
    if (status >= 500)
        kvd_log(LOG_ERROR, "%s %s: engine error %d (%s)", req->method_name, req->raw_path, rc, msg);
    error_body(req, status, code, op, msg);
}

/* -------------------------------------------------------- MHD callbacks */

static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static bool start_request(kvd *srv, struct MHD_Connection *conn, const char *url,
                          const char *method, kvd_request **out)
{
    kvd_request *req = malloc(sizeof *req);
    if (req == NULL)
        return false;
    /* the key and prefix buffers (2 KiB) are written before they are read */
    memset(req, 0, offsetof(kvd_request, scope));
    req->scope.kind = CRED_NONE;
    req->scope.perms = 0;
    req->scope.prefix_len = 0;
    req->key[0] = '\0';
    req->srv = srv;
    req->conn = conn;
    req->method = method_from_name(method);
    req->method_name = method;
    req->raw_path = url;
    req->start_ns = kvd_mono_ns();
    built_len = 0;
    atomic_fetch_add(&srv->in_flight, 1);
    *out = req;
    return true;
}

/* Append a body chunk within the route's limit. */
static void body_append(kvd_request *req, const char *data, size_t len)
{
    if (req->body_overflow) {
        req->discarded += len;
        return;
    }
    if (len > req->body_limit || req->body_len > req->body_limit - len) {
        req->body_overflow = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    if (req->body_len + len > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len)
            cap *= 2;
        if (cap > req->body_limit + 1)
            cap = req->body_limit + 1;
        char *nb = NULL;
        if (cap > req->body_charged && !budget_charge_body(req, cap - req->body_charged)) {
            req->body_overflow = true;
            req->body_nomem = true;
            return;
        }
        nb = realloc(req->body, cap + 1);
        if (nb == NULL) {
            req->body_overflow = true;
            req->body_nomem = true;
            return;
        }
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
}

/* Framing checks RFC 9112 requires and libmicrohttpd 0.9.75 leaves to us.
 * libmicrohttpd frames a body as chunked when the first Transfer-Encoding
 * header is exactly "chunked", ignores Content-Length whenever any
 * Transfer-Encoding is present, and reads an unknown coding until the client
 * closes. A proxy in front may frame the same bytes by Content-Length or by
 * another Transfer-Encoding header, so every request whose framing is not
 * unambiguous is refused at header time, before a byte of its body is read
 * (an answer queued then makes libmicrohttpd close the connection after it,
 * and kvd adds "Connection: close" to say so):
 *   - an HTTP/1.1 request without Host (section 3.2): 400;
 *   - Content-Length headers that disagree (section 6.3): 400;
 *   - a header name that is not a token (section 5.1): whitespace before
 *     the colon, which libmicrohttpd keeps in the name, so
 *     "Content-Length : 5" would silently not frame the body; and an
 *     obs-fold line (section 5.2), which libmicrohttpd 0.9.75 glues onto
 *     the previous header's *name* ("Transfer-Encoding: gzip" + " chunked"
 *     becomes a header "Transfer-Encodingchunked"): a name with a colon or
 *     whitespace in it, or a framing header's name with more glued on, is
 *     refused: 400;
 *   - Transfer-Encoding together with Content-Length (section 6.1, the
 *     classic smuggling request), in an HTTP/1.0 request (section 6.1), or
 *     where chunked is missing, repeated or not the final coding (section
 *     6.3): 400;
 *   - a coding other than chunked (gzip, deflate, identity...) before a
 *     final chunked, or Transfer-Encoding split over several headers: 501,
 *     since kvd decodes only chunked (section 6.1).
 * Transfer-Encoding is accepted only as exactly one header whose value is
 * "chunked" (any case) — the one form libmicrohttpd decodes. */
typedef struct framing {
    unsigned lengths;
    char first[64];
    bool conflict;
    bool bad_name;
    unsigned encodings;   /* Transfer-Encoding headers */
    bool te_chunked;      /* the only one is exactly "chunked" */
    bool te_chunked_seen; /* in any header */
    bool te_malformed;    /* chunked repeated or not last, an empty element */
    bool te_unsupported;  /* another coding */
} framing;

/* Classify one Transfer-Encoding value, a comma-separated list of codings
 * (each a token, maybe with ";parameters"), continuing the list of the
 * headers before it. */
static void scan_codings(framing *f, const char *v)
{
    const char *s = v;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        const char *tok = s;
        while (*s != '\0' && *s != ',' && *s != ';' && *s != ' ' && *s != '\t')
            s++;
        size_t n = (size_t)(s - tok);
        while (*s != '\0' && *s != ',')
            s++; /* parameters and trailing spaces */
        if (n == 0) {
            f->te_malformed = true; /* empty element: "", "chunked,", "a,,b" */
        } else if (n == 7 && strncasecmp(tok, "chunked", 7) == 0) {
            if (f->te_chunked_seen)
                f->te_malformed = true; /* chunked twice */
            f->te_chunked_seen = true;
        } else {
            if (f->te_chunked_seen)
                f->te_malformed = true; /* a coding after chunked */
            f->te_unsupported = true;
        }
        if (*s == '\0')
            break;
        s++;
    }
}

/* A token (RFC 9110 section 5.6.2) and not a framing header's name with a
 * folded line glued on. */
static bool header_name_ok(const char *key)
{
    static const char *const framing_names[] = {MHD_HTTP_HEADER_CONTENT_LENGTH,
                                                MHD_HTTP_HEADER_TRANSFER_ENCODING};
    if (key[0] == '\0')
        return false;
    for (const char *p = key; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
            return false;
    }
    for (size_t i = 0; i < sizeof framing_names / sizeof framing_names[0]; i++) {
        size_t n = strlen(framing_names[i]);
        if (strlen(key) > n && strncasecmp(key, framing_names[i], n) == 0)
            return false;
    }
    return true;
}

static enum MHD_Result collect_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    framing *f = cls;
    (void)kind;
    if (key == NULL)
        return MHD_YES;
    if (!header_name_ok(key))
        f->bad_name = true;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->lengths++ == 0)
            snprintf(f->first, sizeof f->first, "%s", value ? value : "");
        else if (strcmp(f->first, value ? value : "") != 0)
            f->conflict = true;
    }
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->encodings++;
        f->te_chunked = f->encodings == 1 && value != NULL && strcasecmp(value, "chunked") == 0;
        scan_codings(f, value ? value : "");
    }
    return MHD_YES;
}

/* Refuse at header time with STATUS and make sure the connection closes. */
static void framing_refuse(kvd_request *req, unsigned status, const char *code, const char *msg)
{
    struct MHD_Response *r = http_json_response(http_error_json(code, -1, msg));
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    http_send(req, status, r);
}

static bool framing_ok(kvd_request *req, struct MHD_Connection *conn, const char *version)
{
    if (version != NULL && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST) == NULL) {
        framing_refuse(req, 400, "bad_request", "an HTTP/1.1 request needs a Host header");
        return false;
    }
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_framing, &f);
    if (f.bad_name) {
        framing_refuse(req, 400, "bad_request",
                       "a header name is not a token (whitespace before its colon, or a folded "
                       "line)");
        return false;
    }
    if (f.conflict) {
        framing_refuse(req, 400, "bad_request", "Content-Length headers disagree");
        return false;
    }
    if (f.encodings == 0)
        return true;
    if (f.lengths > 0) {
        framing_refuse(req, 400, "bad_request",
                       "a request must not carry both Content-Length and Transfer-Encoding");
        return false;
    }
    if (version == NULL || strcmp(version, MHD_HTTP_VERSION_1_1) != 0) {
        framing_refuse(req, 400, "bad_request", "Transfer-Encoding needs HTTP/1.1");
        return false;
    }
    if (f.te_chunked)
        return true;
    if (f.te_malformed || (!f.te_chunked_seen && !f.te_unsupported)) {
        framing_refuse(req, 400, "bad_request",
                       "Transfer-Encoding must end in chunked, once: the body length is ambiguous");
        return false;
    }
    framing_refuse(req, 501, "not_implemented",
                   "the only Transfer-Encoding kvd supports is chunked, alone, in one header");
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    kvd *srv = cls;
    kvd_request *req = *con_cls;
    /* engine details are per thread; other connections run on this one
     * between our calls: never let their detail reach this answer */
    rc_error_clear();
    if (req == NULL) {
        if (!start_request(srv, conn, url, method, &req))
            return MHD_NO;
        *con_cls = req;
        if (!framing_ok(req, conn, version))
            return MHD_YES; /* answered; a body that follows is drained */
        req->prepared = router_prepare(req);
        if (req->prepared && req->body_limit > 0) {
            /* preallocate a declared body (already checked against the limit) */
            const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
            unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
            if (n > 0 && n <= req->body_limit) {
                if (!budget_charge_body(req, n)) {
                    budget_refuse_busy(req, n);
                    return MHD_YES; /* answered; the body is drained */
                }
                req->body = malloc((size_t)n + 1);
                req->body_cap = req->body ? (size_t)n : 0;
            }
        }
        return MHD_YES;
    }
    if (durable_resume(req))
        return MHD_YES; /* a write waiting for durability (durable.c) */
    if (req->waiter != NULL && *upload_data_size == 0) {
        /* resumed after park_request: the route answers or parks again */
        park_why why = PARK_WOKEN;
        bool gone = false;
        park_resume_fn fn = park_take(req, &why, &gone);
        if (gone)
            return MHD_NO; /* the client closed the connection: drop it */
        fn(req, why);
        if (!req->responded && req->waiter == NULL)
            http_send(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        req->bytes_in += *upload_data_size;
        if (req->responded) {
            /* answered at header time: drain what the client sends anyway */
            *upload_data_size = 0;
            return MHD_YES;
        }
        body_append(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* a chunked body far past the limit: stop reading, close */
        return req->discarded > req->body_limit ? MHD_NO : MHD_YES;
    }
    if (req->responded)
        return MHD_YES;
    if (req->body_nomem) {
        budget_refuse_busy(req, req->body_len + 1);
        return MHD_YES;
    }
    if (req->body_overflow) {
        http_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                   "the request body is larger than %llu bytes",
                   (unsigned long long)req->body_limit);
        return MHD_YES;
    }
    if (req->body != NULL)
        req->body[req->body_len] = '\0';
    budget_json_begin(req);
    router_dispatch(req);
    budget_json_end();
    /* a write waiting for durability is answered after its resume; a parked
     * request (park.c) after its own */
    if (!req->responded && req->park_finish == NULL && req->waiter == NULL)
        http_send(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
    return MHD_YES;
}

/* The peer of CONN as "ADDR:PORT" or "[ADDR6]:PORT" in BUF. */
static const char *client_address(struct MHD_Connection *conn, char *buf, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "?";
    snprintf(buf, cap, "-");
    if (ci == NULL || ci->client_addr == NULL)
        return buf;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
        snprintf(buf, cap, "%s:%u", addr, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
        snprintf(buf, cap, "[%s]:%u", addr, (unsigned)ntohs(in6->sin6_port));
    }
    return buf;
}

/* Whether the bucket of REQ (a kvd_request holding its policy) still
 * exists: its keyspace is not dropped. */
static bool bucket_still_live(void *ctx)
{
    kvd_request *req = ctx;
    rc_stats st;
    return req->pol.ks != NULL && rc_stats_keyspace(req->srv->db, req->pol.ks, &st) == 0;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    kvd *srv = cls;
    kvd_request *req = *con_cls;
    if (req == NULL)
        return;
    uint64_t ns = kvd_mono_ns() - req->start_ns;
    metrics_observe(srv->metrics, req->route, req->status, ns);
    if (req->has_policy) {
        if (req->route == ROUTE_BUCKET && req->method == METHOD_DELETE && req->status == 204)
            metrics_bucket_forget(srv->metrics, req->bucket, req->bucket_len);
        else
            metrics_bucket_request(srv->metrics, req->bucket, req->bucket_len, req->status,
                                   req->bytes_in, req->resp_bytes, bucket_still_live, req);
    }
    if (kvd_log_level >= LOG_INFO) {
        char client[INET6_ADDRSTRLEN + 16];
        access_entry e = {
            .method = req->method_name,
            .path = req->raw_path,
            .client = client_address(conn, client, sizeof client),
            .bucket = req->bucket,
            .status = req->status,
            .duration_us = ns / 1000,
            .bytes_in = req->bytes_in,
            .bytes_out = req->resp_bytes,
            .aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK,
        };
        kvd_log_access(&e);
    }
    park_forget(srv->park, req);
    if (req->has_policy)
        policy_release(srv, &req->pol);
    if (req->ack_resp != NULL) /* a write's answer held for its acknowledgement */
        MHD_destroy_response(req->ack_resp);
    free(req->body);
    budget_release(req);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    kvd_log(LOG_DEBUG, "http: %s", msg);
}

struct MHD_Daemon *http_start(kvd *srv, int listen_fd)
{
    /* suspend/resume: durable writes wait for their group commit (durable.c),
     * ?wait= requests for a change (park.c) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)srv->cfg.threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->cfg.max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)srv->cfg.max_connections_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->cfg.conn_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)srv->cfg.max_header_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_none, srv},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, srv},
        /* last, so that without a socket it ends the list instead */
        {MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (listen_fd < 0) {
        /* connections come only from MHD_add_connection (fuzz_http) */
        flags |= MHD_USE_NO_LISTEN_SOCKET;
        opts[sizeof opts / sizeof opts[0] - 2].option = MHD_OPTION_END;
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
}
