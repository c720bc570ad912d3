/*
 * router.c — from a raw path and a method to a handler.
 *
 * Routing reads the still-percent-encoded path, so "%2F" inside a key never
 * splits it: "/b/scripts%2Fx" is the key "scripts/x" of bucket b, while
 * "/b/scripts/x" is the scripts route. A raw '/' inside a key segment is kept
 * as part of the key (curl users write /b/users/1), except for the reserved
 * first segments "scripts/" and the exact "tokens/".
 *
 * Everything that can be decided from the request line and headers is
 * decided here, before any body byte is buffered: unknown route (404),
 * method (405 with Allow), key length (414), bucket existence (404),
 * credentials (401) and the route's permission (403), and the body's declared
 * length (411, 413).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket_limits.h"
#include "auth.h"
#include "cluster.h"
#include "routes.h"

#define SMALL_BODY_MAX (64u * 1024u)

static bool span_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* Routes whose whole path is fixed; everything else starts with a bucket. */
static const struct {
    const char *path;
    route_id id;
} fixed_routes[] = {
    {"/", ROUTE_ROOT},           {"/healthz", ROUTE_HEALTHZ},     {"/metrics", ROUTE_METRICS},
    {"/cluster", ROUTE_CLUSTER}, {"/admin/backup", ROUTE_BACKUP}, {"/admin/merge", ROUTE_MERGE},
};

void router_match(const char *raw, route_match *m)
{
    memset(m, 0, sizeof *m);
    m->id = ROUTE_NONE;
    if (raw == NULL || raw[0] != '/')
        return;
    for (size_t i = 0; i < sizeof fixed_routes / sizeof fixed_routes[0]; i++) {
        if (strcmp(raw, fixed_routes[i].path) == 0) {
            m->id = fixed_routes[i].id;
            return;
        }
    }
    const char *b = raw + 1;
    const char *slash = strchr(b, '/');
    if (slash == NULL) {
        m->id = ROUTE_BUCKET;
        m->bucket = b;
        m->bucket_len = strlen(b);
        return;
    }
    m->bucket = b;
    m->bucket_len = (size_t)(slash - b);
    m->rest = slash + 1;
    m->rest_len = strlen(m->rest);
    if (m->rest_len == 0)
        m->id = ROUTE_LIST;
    else if (strncmp(m->rest, "scripts/", 8) == 0)
        m->id = ROUTE_SCRIPTS;
    else if (span_eq(m->rest, m->rest_len, "tokens/"))
        m->id = ROUTE_TOKENS;
    else
        m->id = ROUTE_KEY;
}

const char *route_label(route_id id)
{
    static const char *const names[ROUTE_COUNT] = {
        [ROUTE_NONE] = "none",       [ROUTE_ROOT] = "bucket_create",
        [ROUTE_HEALTHZ] = "healthz", [ROUTE_METRICS] = "metrics",
        [ROUTE_BACKUP] = "backup",   [ROUTE_BUCKET] = "bucket",
        [ROUTE_LIST] = "list_batch", [ROUTE_KEY] = "key",
        [ROUTE_TOKENS] = "tokens",   [ROUTE_SCRIPTS] = "scripts",
        [ROUTE_CLUSTER] = "cluster", [ROUTE_MERGE] = "merge",
    };
    return (unsigned)id < ROUTE_COUNT ? names[id] : "none";
}

/* Allowed methods per route, as a bit set over http_method and the Allow text. */
#define MB(m) (1u << (m))
static const struct {
    unsigned mask;
    const char *allow;
} route_methods[ROUTE_COUNT] = {
    [ROUTE_ROOT] = {MB(METHOD_GET) | MB(METHOD_HEAD) | MB(METHOD_POST), "GET, HEAD, POST"},
    [ROUTE_HEALTHZ] = {MB(METHOD_GET) | MB(METHOD_HEAD), "GET, HEAD"},
    [ROUTE_METRICS] = {MB(METHOD_GET) | MB(METHOD_HEAD), "GET, HEAD"},
    [ROUTE_BACKUP] = {MB(METHOD_GET), "GET"},
    [ROUTE_BUCKET] = {MB(METHOD_HEAD) | MB(METHOD_GET) | MB(METHOD_PATCH) | MB(METHOD_DELETE),
                      "HEAD, GET, PATCH, DELETE"},
    [ROUTE_LIST] = {MB(METHOD_GET) | MB(METHOD_HEAD) | MB(METHOD_POST), "GET, HEAD, POST"},
    [ROUTE_KEY] = {MB(METHOD_GET) | MB(METHOD_HEAD) | MB(METHOD_PUT) | MB(METHOD_POST) |
                       MB(METHOD_PATCH) | MB(METHOD_DELETE),
                   "GET, HEAD, PUT, POST, PATCH, DELETE"},
    [ROUTE_TOKENS] = {MB(METHOD_POST), "POST"},
    [ROUTE_SCRIPTS] = {MB(METHOD_GET) | MB(METHOD_HEAD) | MB(METHOD_PUT) | MB(METHOD_POST) |
                           MB(METHOD_PATCH) | MB(METHOD_DELETE),
                       "GET, HEAD, PUT, POST, DELETE"},
    [ROUTE_CLUSTER] = {MB(METHOD_GET) | MB(METHOD_HEAD), "GET, HEAD"},
    [ROUTE_MERGE] = {MB(METHOD_POST), "POST"},
};

static void method_not_allowed(kvd_request *req)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%s is not allowed here", req->method_name);
    struct MHD_Response *r = http_json_response(http_error_json("method_not_allowed", -1, msg));
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, route_methods[req->route].allow);
    http_send(req, 405, r);
}

/* Body limit of a request, 0 when the route takes no body. */
static uint64_t body_limit_for(const kvd_request *req)
{
    const kvd_config *cfg = &req->srv->cfg;
    bool has_body =
        req->method == METHOD_PUT || req->method == METHOD_POST || req->method == METHOD_PATCH;
    if (!has_body)
        return 0;
    switch (req->route) {
    case ROUTE_KEY:
        /* PATCH carries a JSON op around the value: room for its escaping */
        return req->method == METHOD_PATCH ? cfg->max_value * 2 + SMALL_BODY_MAX : cfg->max_value;
    case ROUTE_LIST:
        return cfg->max_batch_bytes;
    case ROUTE_SCRIPTS:
        return cfg->max_value;
    default:
        return SMALL_BODY_MAX;
    }
}

/* 411 and 413 from the headers. False when answered. */
static bool check_declared_length(kvd_request *req)
{
    req->body_limit = body_limit_for(req);
    if (req->body_limit == 0)
        return true;
    const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl == NULL) {
        bool needs_length = req->route == ROUTE_KEY || req->route == ROUTE_LIST;
        if (te == NULL && needs_length) {
            http_error(req, 411, "length_required",
                       "send the body with a Content-Length (or chunked)");
            return false;
        }
        return true;
    }
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0') {
        http_error(req, 400, "bad_request", "Content-Length is not a number");
        return false;
    }
    if (n > req->body_limit) {
        http_error(req, 413, "too_large", "the body has %llu bytes; the limit here is %llu", n,
                   (unsigned long long)req->body_limit);
        return false;
    }
    return true;
}

int route_key_decode(const char *rest, size_t rest_len, char key[RC_KEY_MAX + 1], size_t *klen)
{
    if (rest_len > 3u * RC_KEY_MAX)
        return -2;
    char tmp[3u * RC_KEY_MAX];
    if (pct_decode(rest, rest_len, tmp, klen) != 0)
        return -1;
    if (*klen > RC_KEY_MAX)
        return -2;
    memcpy(key, tmp, *klen);
    key[*klen] = '\0';
    return 0;
}

static bool prepare_key(kvd_request *req, const route_match *m)
{
    size_t klen = 0;
    int rc = route_key_decode(m->rest, m->rest_len, req->key, &klen);
    if (rc == -1) {
        http_error(req, 400, "bad_request", "malformed percent-encoding in the key");
        return false;
    }
    if (rc != 0) {
        http_error(req, 414, "key_too_long", "keys are at most %u bytes", RC_KEY_MAX);
        return false;
    }
    req->klen = klen;
    return true;
}

/* The permission a bucket-level route needs at header time (0: decided later). */
static unsigned route_permission(const kvd_request *req)
{
    switch (req->route) {
    case ROUTE_BUCKET:
        return req->method == METHOD_HEAD ? 0 : PERM_ADMIN;
    case ROUTE_TOKENS:
        return PERM_ADMIN;
    case ROUTE_KEY:
        switch (req->method) {
        case METHOD_GET:
        case METHOD_HEAD:
            return PERM_READ;
        case METHOD_DELETE:
            return PERM_DELETE;
        default:
            return PERM_WRITE;
        }
    case ROUTE_LIST:
        return (req->method == METHOD_GET || req->method == METHOD_HEAD) ? PERM_ENUMERATE : 0;
    default:
        return 0;
    }
}

static bool prepare_bucket_route(kvd_request *req, const route_match *m)
{
    if (!rcu_bucket_name_valid(m->bucket, m->bucket_len) ||
        rcu_bucket_name_reserved(m->bucket, m->bucket_len)) {
        http_error(req, 404, "no_such_bucket", "no such bucket");
        return false;
    }
    memcpy(req->bucket, m->bucket, m->bucket_len);
    req->bucket[m->bucket_len] = '\0';
    req->bucket_len = m->bucket_len;
    if (req->route == ROUTE_KEY && !prepare_key(req, m))
        return false;
    if (req->route == ROUTE_SCRIPTS)
        req->sub = m->rest + 8;
    int rc = policy_get(req->srv, req->bucket, req->bucket_len, &req->pol);
    if (rc == RC_ENOTFOUND) {
        http_error(req, 404, "no_such_bucket", "no such bucket");
        return false;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return false;
    }
    req->has_policy = true;
    if (req->route == ROUTE_BUCKET && req->method == METHOD_HEAD)
        return true;
    if (!auth_resolve_scope(req))
        return false;
    unsigned need = route_permission(req);
    if (need != 0) {
        bool keyed = req->route == ROUTE_KEY;
        if (!auth_require(req, need, keyed ? req->key : NULL, keyed ? req->klen : 0, -1))
            return false;
    }
    return true;
}

/* GET /metrics: server-wide figures for everyone, or only for the
 * --metrics-token-file token and the admin token when that flag is given.
 * GET /metrics?bucket=NAME: that bucket's figures for its admin key (or a
 * token carrying admin), the metrics token or the admin token. */
static bool prepare_metrics(kvd_request *req)
{
    char name[KVD_BUCKET_NAME_MAX + 2];
    size_t len = 0;
    int q = http_query(req, "bucket", name, sizeof name, &len);
    if (q == 1) {
        if (req->srv->metrics_token == NULL || auth_is_metrics_reader(req))
            return true;
        char cred[8];
        size_t clen = 0;
        if (auth_credential(req, cred, sizeof cred, &clen) == 1)
            http_error(req, 401, "unauthorized",
                       "/metrics needs the metrics token (or the admin token); a bucket's admin "
                       "key reads /metrics?bucket=NAME");
        else
            http_error(req, 401, "invalid_credentials", "not the metrics token or the admin token");
        return false;
    }
    if (q != 0 || !rcu_bucket_name_valid(name, len) || rcu_bucket_name_reserved(name, len)) {
        http_error(req, 404, "no_such_bucket", "no such bucket");
        return false;
    }
    memcpy(req->bucket, name, len);
    req->bucket[len] = '\0';
    req->bucket_len = len;
    int rc = policy_get(req->srv, req->bucket, req->bucket_len, &req->pol);
    if (rc == RC_ENOTFOUND) {
        http_error(req, 404, "no_such_bucket", "no such bucket");
        return false;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return false;
    }
    req->has_policy = true;
    if (auth_is_metrics_reader(req))
        return true;
    if (!auth_resolve_scope(req))
        return false;
    return auth_require(req, PERM_ADMIN, NULL, 0, -1);
}

bool router_prepare(kvd_request *req)
{
    route_match m;
    router_match(req->raw_path, &m);
    req->route = m.id;
    if (atomic_load(&req->srv->shutting_down)) {
        http_error(req, 503, "shutting_down", "kvd is shutting down");
        return false;
    }
    if (m.id == ROUTE_NONE) {
        http_error(req, 404, "not_found", "no such route");
        return false;
    }
    if ((route_methods[m.id].mask & MB(req->method)) == 0) {
        method_not_allowed(req);
        return false;
    }
    /* a script run is a read unless it writes, which its commit finds out */
    req->script_run =
        m.id == ROUTE_SCRIPTS && m.rest_len > 12 && strcmp(m.rest + m.rest_len - 4, "/run") == 0;
    /* a replica group: writes (and ?consistent=1 reads) to the leader */
    if (m.id != ROUTE_HEALTHZ && m.id != ROUTE_METRICS && m.id != ROUTE_CLUSTER &&
        m.id != ROUTE_BACKUP && m.id != ROUTE_MERGE && !cluster_route(req))
        return false;
    switch (m.id) {
    case ROUTE_HEALTHZ:
    case ROUTE_CLUSTER:
        return true;
    case ROUTE_METRICS:
        return prepare_metrics(req);
    case ROUTE_BACKUP:
    case ROUTE_MERGE:
        if (req->srv->admin_token == NULL) {
            http_error(req, 403, "forbidden", "kvd runs without --admin-token-file");
            return false;
        }
        if (!auth_is_server_admin(req, false)) {
            http_error(req, 401, "unauthorized", "the server's admin token is required");
            return false;
        }
        return m.id == ROUTE_MERGE ? check_declared_length(req) : true;
    case ROUTE_ROOT:
        if (req->method != METHOD_POST)
            return true; /* GET / describes the server to anyone */
        if (!bucket_create_admitted(req))
            return false;
        return check_declared_length(req);
    default:
        if (!prepare_bucket_route(req, &m))
            return false;
        return check_declared_length(req);
    }
}

void router_dispatch(kvd_request *req)
{
    switch (req->route) {
    case ROUTE_ROOT:
        if (req->method == METHOD_POST)
            route_bucket_create(req);
        else
            route_root(req);
        break;
    case ROUTE_HEALTHZ:
        if (!cluster_healthz(req))
            route_healthz(req);
        break;
    case ROUTE_CLUSTER:
        cluster_route_info(req);
        break;
    case ROUTE_METRICS:
        route_metrics(req);
        break;
    case ROUTE_BACKUP:
        route_backup(req);
        break;
    case ROUTE_MERGE:
        route_merge(req);
        break;
    case ROUTE_BUCKET:
        route_bucket(req);
        break;
    case ROUTE_LIST:
        if (req->method == METHOD_POST && !cluster_route_batch(req))
            break;
        if (req->method == METHOD_POST)
            route_batch(req);
        else
            route_list(req);
        break;
    case ROUTE_KEY:
        route_key(req);
        break;
    case ROUTE_TOKENS:
        route_tokens(req);
        break;
    case ROUTE_SCRIPTS:
        route_scripts(req);
        break;
    default:
        http_error(req, 404, "not_found", "no such route");
        break;
    }
}
