/*
 * routes.h — one handler per route family. A handler answers its request
 * exactly once (http_send and friends). The router has already matched the
 * path, checked the method, loaded the bucket policy, resolved the scope and
 * checked the route's permission (except per-op checks of batches and the
 * scripts routes, which decide for themselves).
 */
#ifndef KVD_ROUTES_H
#define KVD_ROUTES_H

#include "http.h"

/* Header-time work: match, 405, 414, 404 bucket, credentials, 401/403, 411, 413.
 * Returns false when it has already answered. */
bool router_prepare(kvd_request *req);
/* Body complete: run the handler. */
void router_dispatch(kvd_request *req);
/* Parse RAW into a route; exposed for unit tests. Fills route, bucket span and
 * the rest of the path. */
typedef struct route_match {
    route_id id;
    const char *bucket;
    size_t bucket_len;
    const char *rest; /* after "/:bucket/" (ROUTE_KEY: the raw key) */
    size_t rest_len;
} route_match;
void router_match(const char *raw, route_match *m);
const char *route_label(route_id id);
/* The key of a ROUTE_KEY path: REST (still encoded) percent-decoded into KEY
 * (NUL added). 0; -1 malformed escape (400); -2 longer than RC_KEY_MAX (414). */
int route_key_decode(const char *rest, size_t rest_len, char key[RC_KEY_MAX + 1], size_t *klen);

void route_bucket_create(kvd_request *req);
void route_bucket(kvd_request *req); /* HEAD, GET, PATCH, DELETE /:bucket */
void route_key(kvd_request *req);    /* every method on /:bucket/:key */
void route_list(kvd_request *req);   /* GET /:bucket/ */
/* Narrow a listing's PREFIX (*LEN bytes, RC_KEY_MAX + 1 room) by the
 * credential's prefix S: false when they diverge (nothing to list). */
bool list_effective_prefix(const scope *s, char *prefix, size_t *len);
void route_batch(kvd_request *req);  /* POST /:bucket/ */
void route_tokens(kvd_request *req); /* POST /:bucket/tokens/ */
void route_metrics(kvd_request *req);
void route_healthz(kvd_request *req);
void route_root(kvd_request *req); /* GET / : name, version, links */
void route_backup(kvd_request *req);
void route_merge(kvd_request *req); /* POST /admin/merge (route_merge.c) */
/* The seam for the scripts module: every /:bucket/scripts/... request, and
 * its set-up (after the engine and policies are open, before serving; a
 * non-zero return stops kvd with that RC_E* code) and tear-down (after the
 * last request, before the engine closes). All three live in
 * route_scripts.c, which the scripts module replaces. */
void route_scripts(kvd_request *req);
int route_scripts_init(kvd *srv);
void route_scripts_shutdown(kvd *srv);

/* Shared by key routes and batches (route_keys.c). */
#define TTL_MAX_S 10000000000ll /* ~317 years */
/* ?ttl=<seconds>: *TTL_MS = RC_TTL_DEFAULT when absent, RC_TTL_NONE for 0.
 * False (answered 400) when malformed. */
bool parse_ttl_query(kvd_request *req, int64_t *ttl_ms);
/* The value of ?ttl= (decoded, LEN bytes) into *TTL_MS: false when it is not
 * whole seconds in 0 .. TTL_MAX_S. */
bool ttl_from_text(const char *text, size_t len, int64_t *ttl_ms);
/* An ETag value "\"<seq>\"" into BUF (at least 24 bytes). */
void format_etag(uint64_t seq, char *buf, size_t cap);
/* Seconds for X-Expires-At (rounded up), 0 when EXPIRES_AT_MS is 0. */
int64_t expires_header_s(int64_t expires_at_ms);
#endif
