/*
 * http.h — the request context every route handler receives, and the
 * response helpers. The MHD glue (http.c) owns the connection lifecycle;
 * routes never call MHD_queue_response themselves except through
 * http_send(), so every request is answered exactly once and is counted
 * and logged in one place.
 */
#ifndef KVD_HTTP_H
#define KVD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "kvd.h"
#include "policy.h"

typedef enum http_method {
    METHOD_GET,
    METHOD_HEAD,
    METHOD_PUT,
    METHOD_POST,
    METHOD_PATCH,
    METHOD_DELETE,
    METHOD_OTHER,
} http_method;

typedef enum route_id {
    ROUTE_NONE = 0,
    ROUTE_ROOT,    /* /                      create bucket */
    ROUTE_HEALTHZ, /* /healthz */
    ROUTE_METRICS, /* /metrics */
    ROUTE_BACKUP,  /* /admin/backup */
    ROUTE_BUCKET,  /* /:bucket               policy */
    ROUTE_LIST,    /* /:bucket/              listing (GET), batch (POST) */
    ROUTE_KEY,     /* /:bucket/:key */
    ROUTE_TOKENS,  /* /:bucket/tokens/ */
    ROUTE_SCRIPTS, /* /:bucket/scripts/...   (route_scripts.c) */
    ROUTE_CLUSTER, /* /cluster               (cluster_http.c) */
    ROUTE_MERGE,   /* /admin/merge           (route_merge.c) */
    ROUTE_COUNT,
} route_id;

typedef enum cred_kind {
    CRED_NONE = 0,    /* no credential: the bucket's public permissions */
    CRED_KEY,         /* a bucket key of one role */
    CRED_TOKEN,       /* an access token: prefix + permissions + expiry */
    CRED_ADMIN_TOKEN, /* the server's --admin-token */
} cred_kind;

/* What the caller may do in the bucket: PERM_* bits, confined to keys that
 * start with PREFIX (empty for bucket keys and public access). */
typedef struct scope {
    cred_kind kind;
    unsigned perms;
    unsigned char prefix[RC_KEY_MAX];
    size_t prefix_len;
} scope;

typedef struct kvd_request {
    kvd *srv;
    struct MHD_Connection *conn;
    http_method method;
    const char *method_name;
    const char *raw_path; /* still percent-encoded, owned by MHD */
    route_id route;

    /* routing results */
    char bucket[KVD_BUCKET_NAME_MAX + 1];
    size_t bucket_len;
    size_t klen;
    const char *sub; /* ROUTE_SCRIPTS: the raw path after "/:bucket/scripts/" */
    policy pol;      /* valid for bucket routes (has_policy) */
    bool has_policy;

    /* request body */
    char *body;
    size_t body_len, body_cap;
    uint64_t body_limit;
    bool body_overflow;
    bool body_nomem;
    uint64_t discarded; /* body bytes dropped after the limit */
    uint64_t bytes_in;  /* every body byte received (the access log's "in") */

    /* memory budgets (budget.c): bytes charged for the answer / the body */
    uint64_t mem_charged;
    uint64_t body_charged;

    /* response bookkeeping */
    unsigned status;
    uint64_t resp_bytes; /* body bytes of the response (the access log's "out") */
    uint64_t start_ns;
    bool responded;
    bool prepared;
    bool cluster_read; /* a replica-group follower serves this POST as a read */
    bool script_run;   /* GET or POST /:bucket/scripts/:name/run */
    bool script_wrote; /* that run committed writes here */

    /* a write waiting for durability (durable.c) */
    _Atomic int park_state;
    int park_status;
    void (*park_finish)(struct kvd_request *req, int status);
    uint64_t park_seq;  /* what the finish answers with */
    unsigned park_http; /* its success status */
    void *park_ctx;     /* the route's state for its finish (owned by it) */

    /* parking (park.c) and ?wait= (watch.c) */
    struct park_waiter *waiter;                   /* non-NULL from park_request until resumed */
    uint64_t wait_seq;                            /* ?wait=SEQ */
    uint64_t wait_deadline_ns;                    /* the timeout, kvd_mono_ns clock */
    uint64_t wait_count;                          /* keys under the prefix at the last check */
    void (*wait_answer)(struct kvd_request *req); /* the plain GET a wait ends with */
    bool wait_parked; /* parked at least once (re-parks pass the limit) */
    bool wait_saw;    /* the key (or wait_count keys) seen at a check */

    /* a replica group's write answer held until the sync standby has it
     * (cluster_http.c: parked on PARK_CH_ACK) */
    struct MHD_Response *ack_resp;
    unsigned ack_status;
    uint64_t ack_seq;
    uint64_t ack_deadline_ns;

    /* large buffers last: a new request zeroes only what comes before them */
    scope scope;
    char key[RC_KEY_MAX + 1]; /* decoded (klen bytes); NUL-terminated for convenience */
    char park_msg[256];       /* the engine's detail of a failed sync (park_status) */
} kvd_request;

/* Start the HTTP daemon on the listening socket FD. NULL on failure. */
struct MHD_Daemon *http_start(kvd *srv, int listen_fd);

/* A request header (case-insensitive name), or NULL. */
const char *http_header(const kvd_request *req, const char *name);

/* Look up query parameter NAME, percent-decoded into BUF (CAP bytes, NUL
 * added). 0 found, 1 absent, -1 bad encoding or longer than CAP - 1. */
int http_query(const kvd_request *req, const char *name, char *buf, size_t cap, size_t *len);

/* The decoding step of http_query, without MHD: RAW (RAWLEN bytes, NULL for
 * a parameter without '=') percent-decoded into BUF. 0, or -1 as above. */
int query_value_decode(const char *raw, size_t rawlen, char *buf, size_t cap, size_t *len);

/* Call FN for every query parameter, both decoded (malformed ones skipped).
 * Stops and returns FN's value when it is non-zero. */
typedef int (*http_query_fn)(void *ctx, const char *k, size_t klen, const char *v, size_t vlen);
int http_query_foreach(const kvd_request *req, http_query_fn fn, void *ctx);

/* Strict percent-decoding: "%HH" only, '+' stays '+'. OUT holds at least
 * INLEN bytes. 0, or -1 for a malformed escape. */
int pct_decode(const char *in, size_t inlen, char *out, size_t *outlen);

/* Responses. Each queues the answer for REQ and must be called once. The
 * http_response_* constructors remember their length (per thread) so that
 * http_send can record req->resp_bytes for the access log. */
struct MHD_Response *http_response_copy(const void *data, size_t len);
/* Takes DATA, which is released with rc_value_free semantics (engine memory). */
struct MHD_Response *http_response_engine(void *data, size_t len);
/* Takes DATA, released with free(). */
struct MHD_Response *http_response_take(void *data, size_t len);
void http_send(kvd_request *req, unsigned status, struct MHD_Response *resp);
/* http_send after the replica group's acknowledgement gate: queues RESP
 * as it is (the gate's own answer once it decided; its resume function). */
void http_send_now(kvd_request *req, unsigned status, struct MHD_Response *resp);
void http_empty(kvd_request *req, unsigned status);
void http_json(kvd_request *req, unsigned status, json_t *body); /* steals BODY */
/* A JSON response (Content-Type set) for callers that add headers; steals BODY. */
struct MHD_Response *http_json_response(json_t *body);
json_t *http_error_json(const char *code, long op, const char *msg);
void http_error(kvd_request *req, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An error body that also names the failing batch op: {"error","message","op"}. */
void http_error_op(kvd_request *req, unsigned status, const char *code, long op, const char *msg);
/* Map an RC_E* code onto a status and error body (OP >= 0 adds "op"). */
void http_engine_error(kvd_request *req, int rc, long op);
/* The same with the engine's detail given (captured on another thread). */
void http_engine_error_detail(kvd_request *req, int rc, long op, const char *detail);
unsigned http_status_for(int rc, const char **code);

#endif
