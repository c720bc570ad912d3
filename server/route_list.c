/*
 * route_list.c — GET /:bucket/: keys in byte order.
 *
 * rc_list_keys does the work (see ringcask.h): the first listing of a bucket
 * sorts a copy of its keys, which later pages reuse (O(log n + limit) each),
 * and a limit bounds the answer. A token's prefix confines the
 * listing: the effective prefix is the longer of the token's and the query's
 * when one extends the other; when they diverge the answer is empty.
 *
 * Text form: one key per line (with values=true, "key=value" per line; use
 * format=json for keys or values holding newlines or bytes that are not
 * UTF-8). JSON form: ["k", ...] or [["k", "v"], ...]; a key or value that is
 * not UTF-8 appears as {"base64": "..."}. X-More: true tells the limit cut
 * the list.
 */
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "auth.h"
#include "json_util.h"
#include "routes.h"
#include "valuetype.h"
#include "watch.h"

#define LIST_DEFAULT_LIMIT 1000
#define LIST_MAX_LIMIT 100000

typedef struct list_query {
    char prefix[RC_KEY_MAX + 1], start[RC_KEY_MAX + 1], end[RC_KEY_MAX + 1];
    size_t prefix_len, start_len, end_len;
    bool has_start, has_end, reverse, values, json;
    size_t limit;
} list_query;

static int bool_param(kvd_request *req, const char *name, bool *out)
{
    char buf[8];
    size_t n = 0;
    int q = http_query(req, name, buf, sizeof buf, &n);
    if (q == 1)
        return 0;
    if (q != 0)
        return -1;
    if (strcmp(buf, "true") == 0 || strcmp(buf, "1") == 0 || n == 0)
        *out = true;
    else if (strcmp(buf, "false") == 0 || strcmp(buf, "0") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static bool parse_list_query(kvd_request *req, list_query *q)
{
    char buf[32];
    size_t n = 0;
    memset(q, 0, sizeof *q);
    q->limit = LIST_DEFAULT_LIMIT;
    int pq = http_query(req, "prefix", q->prefix, sizeof q->prefix, &q->prefix_len);
    int sq = http_query(req, "start", q->start, sizeof q->start, &q->start_len);
    int eq = http_query(req, "end", q->end, sizeof q->end, &q->end_len);
    if (pq < 0 || sq < 0 || eq < 0) {
        http_error(req, 400, "bad_request", "prefix, start and end are keys of at most %u bytes",
                   RC_KEY_MAX);
        return false;
    }
    q->has_start = sq == 0;
    q->has_end = eq == 0;
    int lq = http_query(req, "limit", buf, sizeof buf, &n);
    if (lq != 1) {
        int64_t lim = 0;
        if (lq != 0 || !parse_int64(buf, n, &lim) || lim < 1 || lim > LIST_MAX_LIMIT) {
            http_error(req, 400, "bad_request", "limit must be 1 .. %d", LIST_MAX_LIMIT);
            return false;
        }
        q->limit = (size_t)lim;
    }
    if (bool_param(req, "reverse", &q->reverse) != 0 ||
        bool_param(req, "values", &q->values) != 0) {
        http_error(req, 400, "bad_request", "reverse and values take true or false");
        return false;
    }
    int fq = http_query(req, "format", buf, sizeof buf, &n);
    if (fq == 0 && strcmp(buf, "json") == 0)
        q->json = true;
    else if (fq != 1 && !(fq == 0 && strcmp(buf, "text") == 0)) {
        http_error(req, 400, "bad_request", "format is json or text");
        return false;
    }
    return true;
}

bool list_effective_prefix(const scope *s, char *prefix, size_t *len)
{
    if (s->prefix_len == 0)
        return true;
    size_t common = *len < s->prefix_len ? *len : s->prefix_len;
    if (memcmp(prefix, s->prefix, common) != 0)
        return false;
    if (*len < s->prefix_len) {
        memcpy(prefix, s->prefix, s->prefix_len);
        *len = s->prefix_len;
    }
    return true;
}

/* Narrow the query prefix by the scope's. False when they diverge. */
static bool effective_prefix(const scope *s, list_query *q)
{
    return list_effective_prefix(s, q->prefix, &q->prefix_len);
}

typedef struct growbuf {
    char *data;
    size_t len, cap;
    bool failed;
} growbuf;

static void gb_add(growbuf *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *nd = realloc(b->data, cap);
        if (nd == NULL) {
            b->failed = true;
            return;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static struct MHD_Response *render_text(const rc_list *l, bool values)
{
    growbuf b = {0};
    for (size_t i = 0; i < l->count; i++) {
        const rc_list_item *it = &l->items[i];
        gb_add(&b, it->key, it->klen);
        if (values) {
            gb_add(&b, "=", 1);
            if (it->value.data != NULL)
                gb_add(&b, it->value.data, it->value.len);
        }
        gb_add(&b, "\n", 1);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    if (b.len == 0) {
        free(b.data);
        return MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    }
    struct MHD_Response *r = http_response_take(b.data, b.len);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    return r;
}

static struct MHD_Response *render_json(const rc_list *l, bool values)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < l->count; i++) {
        const rc_list_item *it = &l->items[i];
        json_t *k = json_bytes(it->key, it->klen);
        if (!values) {
            json_array_append_new(arr, k);
            continue;
        }
        json_t *pair = json_array();
        json_array_append_new(pair, k);
        json_array_append_new(pair, json_bytes(it->value.data ? it->value.data : "",
                                               it->value.data ? it->value.len : 0));
        json_array_append_new(arr, pair);
    }
    return http_json_response(arr);
}

/* Bytes of a value in the JSON form: the string with its escapes, or the
 * {"base64": "..."} object. */
static uint64_t json_value_size(const char *d, size_t n)
{
    if (!rcu_utf8_valid(d, n))
        return 14 + (n + 2) / 3 * 4;
    uint64_t k = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        k += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
    }
    return k;
}

/* Read the values of L's keys one by one, charging each to the request's
 * memory budget before it is read (the engine's copy plus what rendering
 * adds: the text line, or the JSON tree's copy and its dump). Keys deleted
 * since the listing are left out. false: refused or failed (answered). */
static bool read_values(kvd_request *req, rc_list *l, bool json)
{
    size_t w = 0;
    bool ok = true;
    for (size_t i = 0; i < l->count; i++) {
        rc_list_item *it = &l->items[i];
        rc_value m = {0};
        int rc = ok ? rc_get_meta(req->srv->db, req->pol.ks, it->key, it->klen, &m) : 0;
        if (ok && rc == 0 && !budget_charge(req, m.len + (json ? 0 : it->klen + m.len + 2)))
            ok = false;
        if (ok && rc == 0)
            rc = rc_get(req->srv->db, req->pol.ks, it->key, it->klen, &it->value);
        if (ok && rc == 0 && json) {
            uint64_t js = json_value_size(it->value.data, it->value.len);
            if (!budget_charge(req, js * 3 + it->klen * 2))
                ok = false;
        }
        if (ok && rc != 0 && rc != RC_ENOTFOUND) {
            http_engine_error(req, rc, -1);
            ok = false;
        }
        if (!ok || rc != 0) {
            free(it->key);
            rc_value_free(&it->value);
            continue;
        }
        l->items[w++] = *it;
    }
    l->count = w;
    return ok;
}

static void list_answer(kvd_request *req);

void route_list(kvd_request *req)
{
    if (!watch_list(req, list_answer))
        list_answer(req);
}

static void list_answer(kvd_request *req)
{
    list_query q;
    rc_list *l = NULL;
    if (!parse_list_query(req, &q))
        return;
    if (q.values && !auth_require(req, PERM_ENUMERATE | PERM_READ, NULL, 0, -1))
        return;
    bool in_scope = effective_prefix(&req->scope, &q);
    rc_list empty = {0};
    if (in_scope) {
        rc_list_opts o = {.prefix = q.prefix_len ? q.prefix : NULL,
                          .prefix_len = q.prefix_len,
                          .start = q.has_start ? q.start : NULL,
                          .start_len = q.start_len,
                          .end = q.has_end ? q.end : NULL,
                          .end_len = q.end_len,
                          .limit = q.limit,
                          .reverse = q.reverse};
        int rc = rc_list_keys(req->srv->db, req->pol.ks, &o, &l);
        if (rc != 0) {
            http_engine_error(req, rc, -1);
            return;
        }
        /* the keys (up to limit x 1 KiB) and their rendering: text holds a
         * copy, JSON a tree and its dump (a key of control bytes dumps at 6x
         * its size); values are read below, each
         * charged to the memory budget before it is read */
        uint64_t kb = 0;
        for (size_t i = 0; i < l->count; i++) {
            const rc_list_item *it = &l->items[i];
            kb += (it->klen + 16u) * 2u; /* the engine's copy, the text's or the tree's */
            if (q.json)                  /* the tree's node and the dump, escapes included (6x) */
                kb += 48u + json_value_size(it->key, it->klen) + 1u;
        }
        if (!budget_charge(req, kb)) {
            rc_list_free(l);
            return;
        }
        if (q.values && !read_values(req, l, q.json)) {
            rc_list_free(l);
            return;
        }
    }
    const rc_list *view = l ? l : &empty;
    struct MHD_Response *r = q.json ? render_json(view, q.values) : render_text(view, q.values);
    if (r != NULL && view->more)
        MHD_add_response_header(r, "X-More", "true");
    rc_list_free(l);
    http_send(req, 200, r);
}
