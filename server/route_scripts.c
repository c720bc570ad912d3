/*
 * route_scripts.c — /:bucket/scripts/...: storing Lua scripts and running
 * them through rcscript (server/script/, docs/SCRIPTS.md).
 *
 * Storage. A script is a record of the system keyspace, key
 * "script/<bucket>/<incarnation>/<name>", value the source. The bucket's
 * incarnation (random, made at creation; the creation time for a bucket from
 * before incarnations) in the key ties scripts to one incarnation of the
 * bucket name: after DELETE /:bucket and a new POST / with the same name, the old
 * scripts are unreachable, and the next upload removes them. Keeping them out
 * of the bucket's keyspace keeps them out of key listings, counts and
 * metrics, and the system keyspace is small, so listing scripts (a scan of
 * it) is cheap. Managing scripts takes the admin permission with no key
 * prefix: a prefix-confined admin token could otherwise plant a script that
 * a wider caller later runs.
 *
 * Runs. A run gets the caller's scope as the router resolved it, a host
 * vtable over the bucket's keyspace (rc_get, rc_list_keys, and one
 * rc_apply_async for the commit, whose answer waits for durability with the
 * connection suspended), the query parameters (minus access_token)
 * and, for a form POST, the form fields as kv.args. One rcscript engine
 * serves the process (srv->scripts, made by route_scripts_init from the
 * --script-* options); its Lua states live one per MHD worker thread.
 *
 * Replica groups. A run is routed as a read (cluster_route), so a follower
 * runs it on its own state; its writes gather in the run's overlay until
 * the commit, and host_commit refuses them where this node may not write
 * (cluster_script_may_commit): the run is then discarded, nothing written,
 * and the request is answered as any write on a follower is (307 to the
 * leader, which runs it again; 503 while no leader is known). A script that
 * only reads is served where it was sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "budget.h"
#include "cluster.h"
#include "durable.h"
#include "metrics.h"
#include "routes.h"
#include "script.h"

#define SCRIPT_NAME_MAX 128u
#define SCRIPT_KEY_PREFIX "script/"
#define SCRIPT_LIST_MAX 10000u
#define SCRIPT_ARGS_MAX 1000u

/* ----------------------------------------------------------- the engine */

int route_scripts_init(kvd *srv)
{
    script_config cfg;
    script_config_default(&cfg);
    cfg.instructions = srv->cfg.script_instructions;
    cfg.memory_bytes = (size_t)srv->cfg.script_memory;
    cfg.timeout_ms = (uint32_t)srv->cfg.script_timeout_ms;
    cfg.max_value = (size_t)srv->cfg.max_value;
    script_engine *eng = NULL;
    int rc = script_engine_create(&cfg, &eng);
    srv->scripts = eng;
    return rc;
}

/* After MHD stopped: its worker threads have exited, and their Lua states
 * with them; this frees the engine and any state left. */
void route_scripts_shutdown(kvd *srv)
{
    script_engine_destroy(srv->scripts);
    srv->scripts = NULL;
}

static script_engine *engine_get(kvd *srv)
{
    return srv->scripts;
}

/* ------------------------------------------------------------ helpers */

/* "." and ".." are dot-segments: clients and proxies rewrite a URL holding
 * them (RFC 3986 5.2.4), so /b/scripts/../run would reach the key "run". */
static bool name_valid(const char *s, size_t n)
{
    if (n == 0 || n > SCRIPT_NAME_MAX || (n <= 2 && memcmp(s, "..", n) == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* "script/<bucket>/<incarnation>/" + NAME into BUF; returns the length. The
 * incarnation (policy_incarnation_text: the creation time for a bucket from
 * before incarnations) keeps a deleted bucket's scripts out of a new one of
 * the same name even when deleting them failed. */
static size_t script_key(const kvd_request *req, const char *name, size_t nlen, char *buf,
                         size_t cap)
{
    char inc[2 * INCARNATION_BYTES + 1];
    policy_incarnation_text(&req->pol, inc);
    int n = snprintf(buf, cap, SCRIPT_KEY_PREFIX "%s/%s/", req->bucket, inc);
    if (n < 0 || (size_t)n + nlen >= cap)
        return 0;
    memcpy(buf + n, name, nlen);
    buf[(size_t)n + nlen] = 0;
    return (size_t)n + nlen;
}

static bool require_admin(kvd_request *req)
{
    if ((req->scope.perms & PERM_ADMIN) && req->scope.prefix_len == 0)
        return true;
    if (req->scope.kind == CRED_NONE)
        http_error(req, 401, "unauthorized", "managing scripts takes the bucket's admin key");
    else
        http_error(req, 403, "forbidden",
                   "managing scripts takes the admin permission over the whole bucket");
    return false;
}

/* ----------------------------------------------------------- management */

static void list_scripts(kvd_request *req)
{
    char prefix[SCRIPT_NAME_MAX + 128];
    size_t plen = script_key(req, "", 0, prefix, sizeof prefix);
    rc_list_opts opts = {.prefix = prefix, .prefix_len = plen, .limit = SCRIPT_LIST_MAX};
    rc_list *list = NULL;
    int rc = rc_list_keys(req->srv->db, req->srv->sys, &opts, &list);
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return;
    }
    char fmt[16];
    size_t fmt_len;
    bool as_json =
        http_query(req, "format", fmt, sizeof fmt, &fmt_len) == 0 && strcmp(fmt, "json") == 0;
    json_t *arr = as_json ? json_array() : NULL;
    size_t text_len = 0;
    for (size_t i = 0; i < list->count; i++)
        text_len += list->items[i].klen - plen + 1;
    char *text = as_json ? NULL : malloc(text_len + 1);
    if ((as_json && !arr) || (!as_json && !text)) {
        rc_list_free(list);
        json_decref(arr);
        http_engine_error(req, RC_ENOMEM, -1);
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < list->count; i++) {
        const char *name = (const char *)list->items[i].key + plen;
        size_t nlen = list->items[i].klen - plen;
        if (as_json) {
            json_array_append_new(arr, json_stringn(name, nlen));
        } else {
            memcpy(text + off, name, nlen);
            off += nlen;
            text[off++] = '\n';
        }
    }
    rc_list_free(list);
    if (as_json) {
        http_json(req, 200, arr);
        return;
    }
    struct MHD_Response *r = http_response_take(text, off);
    if (r)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    http_send(req, 200, r);
}

/* Delete every script of earlier incarnations of this bucket name. */
static void remove_stale_scripts(kvd_request *req)
{
    char prefix[KVD_BUCKET_NAME_MAX + 16];
    int plen = snprintf(prefix, sizeof prefix, SCRIPT_KEY_PREFIX "%s/", req->bucket);
    char current[SCRIPT_NAME_MAX + 128];
    size_t clen = script_key(req, "", 0, current, sizeof current);
    rc_list_opts opts = {.prefix = prefix, .prefix_len = (size_t)plen, .limit = SCRIPT_LIST_MAX};
    rc_list *list = NULL;
    if (rc_list_keys(req->srv->db, req->srv->sys, &opts, &list) != 0)
        return;
    for (size_t i = 0; i < list->count; i++) {
        rc_list_item *it = &list->items[i];
        if (it->klen >= clen && memcmp(it->key, current, clen) == 0)
            continue;
        rc_delete(req->srv->db, req->srv->sys, it->key, it->klen, NULL);
    }
    rc_list_free(list);
}

static void put_script(kvd_request *req, const char *key, size_t klen, const char *name)
{
    char msg[512];
    script_engine *eng = engine_get(req->srv);
    if (!eng) {
        http_error(req, 500, "internal", "the Lua runtime is not available");
        return;
    }
    int rc = script_compile(eng, req->body ? req->body : "", req->body_len, name, msg, sizeof msg);
    if (rc != SCRIPT_OK) {
        json_t *err = http_error_json("script_error", -1, msg);
        json_object_set_new(err, "reason", json_string(script_outcome_name(rc)));
        http_json(req, 422, err);
        return;
    }
    remove_stale_scripts(req);
    rc_value old = {0};
    bool existed = rc_get_meta(req->srv->db, req->srv->sys, key, klen, &old) == 0;
    rc_op op = {.kind = RC_OP_PUT,
                .ks = req->srv->sys,
                .key = key,
                .klen = klen,
                .val = req->body ? req->body : "",
                .vlen = req->body_len,
                .type = RC_TYPE_RAW,
                .ttl_ms = RC_TTL_NONE};
    rc = rc_apply(req->srv->db, &op, 1, NULL);
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return;
    }
    json_t *body =
        json_pack("{s:s, s:s}", "script", name, "status", existed ? "replaced" : "created");
    http_json(req, existed ? 200 : 201, body);
}

static void get_script(kvd_request *req, const char *key, size_t klen)
{
    rc_value v = {0};
    int rc = rc_get(req->srv->db, req->srv->sys, key, klen, &v);
    if (rc == RC_ENOTFOUND) {
        http_error(req, 404, "not_found", "no such script");
        return;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return;
    }
    struct MHD_Response *r = http_response_engine(v.data, v.len);
    if (r)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/x-lua; charset=utf-8");
    http_send(req, 200, r);
}

static void delete_script(kvd_request *req, const char *key, size_t klen)
{
    int rc = rc_delete(req->srv->db, req->srv->sys, key, klen, NULL);
    if (rc == RC_ENOTFOUND)
        http_error(req, 404, "not_found", "no such script");
    else if (rc != 0)
        http_engine_error(req, rc, -1);
    else
        http_empty(req, 204);
}

/* ------------------------------------------------------------------ run */

/* A run whose writes are waiting for durability (script_finish). */
typedef struct script_park {
    int rc;
    script_result res;
} script_park;
static void script_finish(kvd_request *req, int status);
static void answer_run(kvd_request *req, int rc, script_result *res);

typedef struct run_host {
    kvd_request *req;
    bool parked; /* the commit went to durable_apply: answer once durable */
} run_host;

static int host_get(void *ctx, const void *key, size_t klen, rc_value *out)
{
    run_host *h = ctx;
    kvd *srv = h->req->srv;
    metrics_count_op(srv->metrics, MOP_GET, 1);
    /* the engine's copy is made outside the script's memory cap, which it
     * could never fit into: refuse it before it is made */
    rc_value m = {0};
    int rc = rc_get_meta(srv->db, h->req->pol.ks, key, klen, &m);
    if (rc != 0)
        return rc;
    if (m.len > srv->cfg.script_memory)
        return RC_ELIMIT;
    return rc_get(srv->db, h->req->pol.ks, key, klen, out);
}

static void host_release(void *ctx, rc_value *v)
{
    rc_value_free(v);
}

static int host_list(void *ctx, const void *prefix, size_t plen, size_t limit,
                     int (*emit)(void *, const void *, size_t), void *ectx)
{
    run_host *h = ctx;
    rc_list_opts opts = {.prefix = prefix, .prefix_len = plen, .limit = limit};
    rc_list *list = NULL;
    int rc = rc_list_keys(h->req->srv->db, h->req->pol.ks, &opts, &list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list->count && rc == 0; i++)
        rc = emit(ectx, list->items[i].key, list->items[i].klen);
    rc_list_free(list);
    return rc;
}

/* host_commit's refusal on a replica-group member that may not write: not
 * an RC_E* code, so the script runtime passes it back untouched */
#define HOST_ELSEWHERE (-1000)

/* One rc_apply_async of the script's writes into the bucket (durable.c:
 * the answer waits, with the connection suspended, until they are durable;
 * a run commits at most once, at its end). A Content-Type recorded for a
 * key goes stale by itself once the value is written again (docs/HTTP.md),
 * so nothing else is written. */
static int host_commit(void *ctx, rc_op *ops, size_t n, size_t *failed)
{
    run_host *h = ctx;
    kvd_request *req = h->req;
    if (!cluster_script_may_commit(req)) {
        /* a replica-group member that is not the leader: the run is
         * discarded and the request answered as a write (307 to the leader) */
        for (size_t i = 0; i < n; i++)
            rc_value_free(&ops[i].result);
        *failed = 0;
        return HOST_ELSEWHERE;
    }
    for (size_t i = 0; i < n; i++)
        ops[i].ks = req->pol.ks;
    int rc = h->parked ? RC_EINVAL : durable_apply(req, ops, n, failed, script_finish);
    if (rc == 0) {
        h->parked = true;
        req->script_wrote = true; /* a replica group's leader waits for its standby too */
    }
    for (size_t i = 0; i < n; i++)
        rc_value_free(&ops[i].result);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            metrics_count_op(req->srv->metrics,
                             ops[i].kind == RC_OP_DELETE ? MOP_DELETE
                             : ops[i].kind == RC_OP_INCR ? MOP_PATCH
                                                         : MOP_SET,
                             1);
    }
    return rc;
}

typedef struct arg_list {
    script_arg *args;
    size_t n, cap;
    bool failed;
} arg_list;

static int collect_query(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    arg_list *al = ctx;
    if (klen == strlen("access_token") && memcmp(k, "access_token", klen) == 0)
        return 0; /* a credential, not an argument */
    if (al->n >= SCRIPT_ARGS_MAX)
        return 0;
    if (al->n == al->cap) {
        size_t cap = al->cap ? al->cap * 2 : 16;
        script_arg *a = realloc(al->args, cap * sizeof *a);
        if (!a) {
            al->failed = true;
            return 1;
        }
        al->args = a;
        al->cap = cap;
    }
    char *copy = malloc(klen + vlen + 2);
    if (!copy) {
        al->failed = true;
        return 1;
    }
    memcpy(copy, k, klen);
    copy[klen] = 0;
    memcpy(copy + klen + 1, v, vlen);
    copy[klen + 1 + vlen] = 0;
    al->args[al->n++] = (script_arg){copy, klen, copy + klen + 1, vlen};
    return 0;
}

static void free_args(arg_list *al, size_t nquery)
{
    for (size_t i = 0; i < nquery; i++)
        free((char *)al->args[i].name);
    free(al->args);
}

static void answer_result(kvd_request *req, script_result *res)
{
    bool has_type = false;
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i].name, "Content-Type") == 0)
            has_type = true;
    if (!budget_charge(req, res->body_len))
        return; /* answered 413/503; RES (and its body) is freed by the caller */
    struct MHD_Response *r = http_response_take(res->body, res->body_len);
    res->body = NULL;
    if (r) {
        for (size_t i = 0; i < res->nheaders; i++)
            MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
        if (!has_type)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    }
    http_send(req, (unsigned)res->status, r);
}

static void run_script(kvd_request *req, const char *key, size_t klen, const char *name)
{
    script_engine *eng = engine_get(req->srv);
    if (!eng) {
        http_error(req, 500, "internal", "the Lua runtime is not available");
        return;
    }
    rc_value src = {0};
    int rc = rc_get(req->srv->db, req->srv->sys, key, klen, &src);
    if (rc == RC_ENOTFOUND) {
        http_error(req, 404, "not_found", "no such script");
        return;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return;
    }

    arg_list al = {0};
    http_query_foreach(req, collect_query, &al);
    size_t nquery = al.n;
    script_arg *form = NULL;
    size_t nform = 0;
    const char *ctype = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (req->method == METHOD_POST && ctype &&
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0 && req->body_len > 0) {
        if (script_parse_form(req->body, req->body_len, SCRIPT_ARGS_MAX, &form, &nform) != 0) {
            rc_value_free(&src);
            free_args(&al, nquery);
            http_error(req, 400, "bad_request", "malformed form body");
            return;
        }
        if (nform > 0) {
            script_arg *a = realloc(al.args, (al.n + nform) * sizeof *a);
            if (!a) {
                al.failed = true;
            } else {
                memcpy(a + al.n, form, nform * sizeof *a);
                al.args = a;
                al.n += nform;
                al.cap = al.n;
            }
        }
    }
    if (al.failed) {
        rc_value_free(&src);
        free_args(&al, nquery);
        free(form);
        http_engine_error(req, RC_ENOMEM, -1);
        return;
    }

    run_host h = {.req = req};
    script_host host = {.ctx = &h,
                        .get = host_get,
                        .release = host_release,
                        .list = host_list,
                        .commit = host_commit};
    script_scope scope = {(const char *)req->scope.prefix, req->scope.prefix_len, req->scope.perms};
    script_request sreq = {.method = req->method_name,
                           .args = al.args,
                           .nargs = al.n,
                           .body = req->body,
                           .body_len = req->body_len};
    script_result res;
    rc = script_run(eng, src.data, src.len, name, &host, &scope, &sreq, &res);
    rc_value_free(&src);
    free_args(&al, nquery);
    free(form);

    bool limit_hit = rc == SCRIPT_EINSTRUCTIONS || rc == SCRIPT_EMEMORY || rc == SCRIPT_ETIMEOUT;
    metrics_script_run(req->srv->metrics, limit_hit);
    if (h.parked) {
        /* its writes are applied: the answer waits until they are durable */
        script_park *pk = malloc(sizeof *pk);
        if (pk != NULL) {
            *pk = (script_park){.rc = rc, .res = res};
        } else {
            script_result_free(&res);
        }
        req->park_ctx = pk;
        durable_wait(req);
        return;
    }
    answer_run(req, rc, &res);
    script_result_free(&res);
}

/* The answer to a run that ended with RC and RES. */
static void answer_run(kvd_request *req, int rc, script_result *res)
{
    if (rc == SCRIPT_OK) {
        answer_result(req, res);
    } else if (rc == SCRIPT_ECOMMIT && res->host_error == HOST_ELSEWHERE) {
        cluster_answer_write_elsewhere(req);
    } else if (rc == SCRIPT_ECOMMIT) {
        http_engine_error(req, res->host_error, -1);
    } else if (rc == SCRIPT_EINTERNAL) {
        http_error(req, 500, "internal", "%s", res->message);
    } else {
        json_t *err = http_error_json("script_error", -1, res->message);
        json_object_set_new(err, "reason", json_string(script_outcome_name(rc)));
        http_json(req, 422, err);
    }
}

/* A run's answer once its writes are durable (durable.c); frees the park
 * (NULL when it could not be allocated: answered 500). */
static void script_finish(kvd_request *req, int status)
{
    script_park *pk = req->park_ctx;
    req->park_ctx = NULL;
    if (status != 0)
        durable_error(req, status);
    else if (pk == NULL)
        http_engine_error(req, RC_ENOMEM, -1);
    else
        answer_run(req, pk->rc, &pk->res);
    if (pk != NULL) {
        script_result_free(&pk->res);
        free(pk);
    }
}

/* -------------------------------------------------------------- routing */

void route_scripts(kvd_request *req)
{
    const char *sub = req->sub ? req->sub : "";
    size_t len = strlen(sub);
    const char *q = memchr(sub, '?', len);
    if (q)
        len = (size_t)(q - sub);

    if (len == 0) {
        if (req->method != METHOD_GET && req->method != METHOD_HEAD) {
            http_error(req, 405, "method_not_allowed", "scripts/ answers GET only");
            return;
        }
        if (require_admin(req))
            list_scripts(req);
        return;
    }
    bool run = len > 4 && memcmp(sub + len - 4, "/run", 4) == 0;
    size_t nlen = run ? len - 4 : len;
    char name[SCRIPT_NAME_MAX + 1];
    if (!name_valid(sub, nlen)) {
        http_error(req, 404, "not_found",
                   "no such script (names are 1-128 characters of [A-Za-z0-9_.-], not . or ..)");
        return;
    }
    memcpy(name, sub, nlen);
    name[nlen] = 0;
    char key[SCRIPT_NAME_MAX + 128];
    size_t klen = script_key(req, name, nlen, key, sizeof key);

    if (run) {
        if (req->method != METHOD_GET && req->method != METHOD_POST) {
            http_error(req, 405, "method_not_allowed", "a script runs by GET or POST");
            return;
        }
        run_script(req, key, klen, name);
        return;
    }
    switch (req->method) {
    case METHOD_PUT:
        if (require_admin(req))
            put_script(req, key, klen, name);
        break;
    case METHOD_GET:
    case METHOD_HEAD:
        if (require_admin(req))
            get_script(req, key, klen);
        break;
    case METHOD_DELETE:
        if (require_admin(req))
            delete_script(req, key, klen);
        break;
    default:
        http_error(req, 405, "method_not_allowed", "a script answers GET, PUT and DELETE");
    }
}
