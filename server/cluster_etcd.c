/*
 * cluster_etcd.c — the etcd v3 gateway client (cluster_etcd.h).
 *
 * Each call is one POST of a JSON body to /v3/..., answered with one JSON
 * object (the keepalive endpoint is a stream in gRPC, but a POST with one
 * request body gets one result back and the call ends). The gateway leaves
 * out fields that hold their zero value ("succeeded": false, "TTL": 0,
 * "kvs": []), so an absent field reads as zero here too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "cluster_etcd.h"

#define ETCD_URLS_MAX 8
#define ETCD_URL_MAX 256
#define ETCD_REPLY_MAX (16u << 20)

struct etcd {
    CURL *curl;
    char urls[ETCD_URLS_MAX][ETCD_URL_MAX];
    size_t nurls, cur;
    unsigned timeout_ms;
    char err[256];
};

typedef struct reply {
    char *data;
    size_t len, cap;
    bool too_large;
} reply;

static int split_urls(const char *urls, char out[ETCD_URLS_MAX][ETCD_URL_MAX], size_t *n, char *why,
                      size_t cap)
{
    *n = 0;
    const char *p = urls;
    if (urls == NULL || urls[0] == '\0') {
        snprintf(why, cap, "needs at least one URL (http://HOST:PORT)");
        return -1;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && p[len - 1] == '/')
            len--;
        if (len == 0 || len >= ETCD_URL_MAX || *n == ETCD_URLS_MAX) {
            snprintf(why, cap, "'%s' is not a list of at most %d URLs", urls, ETCD_URLS_MAX);
            return -1;
        }
        if (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0) {
            snprintf(why, cap, "'%.*s' is not an http:// or https:// URL", (int)len, p);
            return -1;
        }
        memcpy(out[*n], p, len);
        out[*n][len] = '\0';
        (*n)++;
        p = comma ? comma + 1 : p + strlen(p);
    }
    return 0;
}

int etcd_urls_check(const char *urls, char *why, size_t cap)
{
    char tmp[ETCD_URLS_MAX][ETCD_URL_MAX];
    size_t n = 0;
    return split_urls(urls, tmp, &n, why, cap);
}

etcd *etcd_new(const char *urls, unsigned timeout_ms)
{
    etcd *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    char why[200];
    if (split_urls(urls, e->urls, &e->nurls, why, sizeof why) != 0) {
        free(e);
        return NULL;
    }
    e->timeout_ms = timeout_ms ? timeout_ms : 2000;
    e->curl = curl_easy_init();
    if (e->curl == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void etcd_free(etcd *e)
{
    if (e == NULL)
        return;
    curl_easy_cleanup(e->curl);
    free(e);
}

const char *etcd_last_error(const etcd *e)
{
    return e ? e->err : "";
}

static void set_err(etcd *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, sizeof e->err, fmt, ap);
    va_end(ap);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    reply *r = ud;
    size_t n = size * nmemb;
    if (r->len + n + 1 > ETCD_REPLY_MAX) {
        r->too_large = true;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *d = realloc(r->data, cap);
        if (d == NULL)
            return 0;
        r->data = d;
        r->cap = cap;
    }
    memcpy(r->data + r->len, ptr, n);
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

/* Set E's handle up to POST TEXT (JSON) to URL, the answer to FN(UD), for at
 * most TIMEOUT_MS; the caller may add options, performs, then frees the
 * returned header list (NULL: out of memory, curl sends no Content-Type). */
static struct curl_slist *post_setup(etcd *e, const char *url, const char *text,
                                     curl_write_callback fn, void *ud, long timeout_ms)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(e->curl);
    curl_easy_setopt(e->curl, CURLOPT_URL, url);
    curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, fn);
    curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, ud);
    curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
    curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
    return h;
}

/* POST BODY (stolen) to PATH; *OUT the parsed answer (the caller's). */
static int call(etcd *e, const char *path, json_t *body, json_t **out)
{
    *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return ETCD_ENOMEM;
    int rc = ETCD_EUNREACH;
    for (size_t tries = 0; tries < e->nurls; tries++) {
        size_t i = (e->cur + tries) % e->nurls;
        char url[ETCD_URL_MAX + 64];
        snprintf(url, sizeof url, "%s%s", e->urls[i], path);
        reply r = {0};
        struct curl_slist *h = post_setup(e, url, text, on_data, &r, (long)e->timeout_ms);
        CURLcode cc = curl_easy_perform(e->curl);
        curl_slist_free_all(h);
        long status = 0;
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
            set_err(e, "%s: %s", url, curl_easy_strerror(cc));
            free(r.data);
            continue;
        }
        e->cur = i;
        json_error_t jerr;
        json_t *j = r.data ? json_loadb(r.data, r.len, 0, &jerr) : NULL;
        if (status != 200 || !json_is_object(j)) {
            set_err(e, "%s: HTTP %ld: %.120s", url, status, r.data ? r.data : "");
            json_decref(j);
            free(r.data);
            rc = ETCD_EPROTO;
            break;
        }
        free(r.data);
        *out = j;
        rc = ETCD_OK;
        break;
    }
    free(text);
    return rc;
}

static json_t *b64(const char *s, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, cap, (const unsigned char *)s, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(out);
    free(out);
    return j;
}

static json_t *b64s(const char *s)
{
    return b64(s, strlen(s));
}

/* A base64 field into a fresh NUL-terminated string; NULL when malformed. */
static char *unb64(const json_t *j, size_t *len)
{
    const char *s = json_string_value(j);
    size_t slen = s ? strlen(s) : 0;
    char *out = malloc(slen + 1);
    size_t n = 0;
    if (out == NULL)
        return NULL;
    if (slen > 0 && sodium_base642bin((unsigned char *)out, slen, s, slen, NULL, &n, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
}

/* A 64-bit number the gateway sends as a string (or, rarely, a number). */
static int64_t num(const json_t *j)
{
    if (json_is_integer(j))
        return (int64_t)json_integer_value(j);
    const char *s = json_string_value(j);
    return s ? strtoll(s, NULL, 10) : 0;
}

static json_t *num_json(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string(buf);
}

int etcd_lease_grant(etcd *e, unsigned ttl_s, int64_t *id, unsigned *granted)
{
    json_t *o = NULL;
    int rc = call(e, "/v3/lease/grant", json_pack("{s:I}", "TTL", (json_int_t)ttl_s), &o);
    if (rc != ETCD_OK)
        return rc;
    *id = num(json_object_get(o, "ID"));
    int64_t ttl = num(json_object_get(o, "TTL"));
    json_decref(o);
    if (*id == 0 || ttl <= 0) {
        set_err(e, "lease grant: no lease in the answer");
        return ETCD_EPROTO;
    }
    *granted = (unsigned)ttl;
    return ETCD_OK;
}

int etcd_lease_keepalive(etcd *e, int64_t id, unsigned *ttl_left)
{
    json_t *o = NULL;
    int rc = call(e, "/v3/lease/keepalive", json_pack("{s:o}", "ID", num_json(id)), &o);
    if (rc != ETCD_OK)
        return rc;
    json_t *res = json_object_get(o, "result");
    if (!json_is_object(res)) {
        json_decref(o);
        set_err(e, "lease keepalive: no result in the answer");
        return ETCD_EPROTO;
    }
    int64_t ttl = num(json_object_get(res, "TTL"));
    json_decref(o);
    *ttl_left = ttl > 0 ? (unsigned)ttl : 0;
    return ETCD_OK;
}

int etcd_lease_revoke(etcd *e, int64_t id)
{
    json_t *o = NULL;
    int rc = call(e, "/v3/lease/revoke", json_pack("{s:o}", "ID", num_json(id)), &o);
    json_decref(o);
    return rc;
}

static int kv_from_json(const json_t *j, etcd_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    kv->key = unb64(json_object_get(j, "key"), NULL);
    kv->value = unb64(json_object_get(j, "value"), &kv->vlen);
    kv->create_rev = num(json_object_get(j, "create_revision"));
    kv->mod_rev = num(json_object_get(j, "mod_revision"));
    kv->lease = num(json_object_get(j, "lease"));
    if (kv->key == NULL || kv->value == NULL) {
        etcd_kv_clear(kv);
        return ETCD_EPROTO;
    }
    return ETCD_OK;
}

void etcd_kv_clear(etcd_kv *kv)
{
    if (kv == NULL)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

void etcd_kvs_free(etcd_kv *kvs, size_t n)
{
    for (size_t i = 0; kvs != NULL && i < n; i++)
        etcd_kv_clear(&kvs[i]);
    free(kvs);
}

int etcd_get(etcd *e, const char *key, etcd_kv *out, bool *found)
{
    json_t *o = NULL;
    *found = false;
    int rc = call(e, "/v3/kv/range", json_pack("{s:o}", "key", b64s(key)), &o);
    if (rc != ETCD_OK)
        return rc;
    json_t *kvs = json_object_get(o, "kvs");
    if (json_array_size(kvs) > 0) {
        rc = kv_from_json(json_array_get(kvs, 0), out);
        *found = rc == ETCD_OK;
    }
    json_decref(o);
    return rc;
}

int etcd_get_prefix(etcd *e, const char *prefix, etcd_kv **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t plen = strlen(prefix);
    char *end = strdup(prefix);
    if (end == NULL || plen == 0) {
        free(end);
        return ETCD_ENOMEM;
    }
    end[plen - 1]++; /* "/a/b/" -> "/a/b0": the end of the prefix's range */
    json_t *o = NULL;
    int rc = call(e, "/v3/kv/range",
                  json_pack("{s:o, s:o}", "key", b64s(prefix), "range_end", b64s(end)), &o);
    free(end);
    if (rc != ETCD_OK)
        return rc;
    json_t *kvs = json_object_get(o, "kvs");
    size_t count = json_array_size(kvs);
    if (count > 0) {
        *out = calloc(count, sizeof **out);
        if (*out == NULL) {
            json_decref(o);
            return ETCD_ENOMEM;
        }
        for (size_t i = 0; i < count; i++) {
            if (kv_from_json(json_array_get(kvs, i), &(*out)[*n]) == ETCD_OK)
                (*n)++;
        }
    }
    json_decref(o);
    return ETCD_OK;
}

static json_t *put_op(const char *key, const char *value, int64_t lease)
{
    json_t *put = json_pack("{s:o, s:o}", "key", b64s(key), "value", b64s(value));
    if (put != NULL && lease != 0)
        json_object_set_new(put, "lease", num_json(lease));
    return put;
}

int etcd_put(etcd *e, const char *key, const char *value, int64_t lease)
{
    json_t *o = NULL;
    int rc = call(e, "/v3/kv/put", put_op(key, value, lease), &o);
    json_decref(o);
    return rc;
}

/* A txn: if KEY's create revision equals REV, run SUCCESS (stolen). */
static int txn_if_create_rev(etcd *e, const char *key, int64_t rev, json_t *success, bool *done,
                             int64_t *revision)
{
    json_t *cmp = json_pack("{s:s, s:s, s:o, s:o}", "target", "CREATE", "result", "EQUAL", "key",
                            b64s(key), "createRevision", num_json(rev));
    json_t *o = NULL;
    int rc =
        call(e, "/v3/kv/txn", json_pack("{s:[o], s:[o]}", "compare", cmp, "success", success), &o);
    if (rc != ETCD_OK)
        return rc;
    *done = json_is_true(json_object_get(o, "succeeded"));
    if (revision)
        *revision = num(json_object_get(json_object_get(o, "header"), "revision"));
    json_decref(o);
    return ETCD_OK;
}

int etcd_create(etcd *e, const char *key, const char *value, int64_t lease, bool *created,
                int64_t *rev)
{
    return txn_if_create_rev(e, key, 0, json_pack("{s:o}", "requestPut", put_op(key, value, lease)),
                             created, rev);
}

int etcd_put_guarded(etcd *e, const char *guard, int64_t guard_rev, const char *key,
                     const char *value, int64_t lease, bool *done)
{
    return txn_if_create_rev(e, guard, guard_rev,
                             json_pack("{s:o}", "requestPut", put_op(key, value, lease)), done,
                             NULL);
}

int etcd_delete_guarded(etcd *e, const char *key, int64_t rev, bool *done)
{
    return txn_if_create_rev(
        e, key, rev, json_pack("{s:{s:o}}", "requestDeleteRange", "key", b64s(key)), done, NULL);
}

/* ------------------------------------------------------------- watch */

typedef struct watch_run {
    void (*on_change)(void *ud);
    bool (*stop)(void *ud);
    void *ud;
    size_t depth;   /* JSON nesting depth of the stream so far */
    bool in_string; /* inside a JSON string (braces there do not count) */
    bool escaped;
    bool created;  /* the first message (created: true) arrived */
    bool refused;  /* a message that is not a watch response */
    char head[16]; /* the first bytes of the stream, to tell an error */
    size_t head_len;
} watch_run;

/* The gateway streams one JSON object per message ({"result":{...}}): each
 * time the top-level object closes, one message is complete. The bytes are
 * only counted, never kept: a message is a wake-up, not data. */
static size_t on_watch_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    watch_run *w = ud;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++) {
        char ch = ptr[i];
        if (w->head_len < sizeof w->head - 1)
            w->head[w->head_len++] = ch;
        if (w->in_string) {
            if (w->escaped)
                w->escaped = false;
            else if (ch == '\\')
                w->escaped = true;
            else if (ch == '"')
                w->in_string = false;
            continue;
        }
        if (ch == '"') {
            w->in_string = true;
        } else if (ch == '{') {
            w->depth++;
        } else if (ch == '}' && w->depth > 0 && --w->depth == 0) {
            if (strncmp(w->head, "{\"result\"", 10) != 0) {
                w->refused = true;
                return 0;
            }
            w->created = true;
            w->on_change(w->ud);
        }
    }
    return n;
}

static int on_watch_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                             curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    watch_run *w = ud;
    return w->stop(w->ud) ? 1 : 0;
}

int etcd_watch(etcd *e, const char *prefix, unsigned lifetime_ms, void (*on_change)(void *ud),
               bool (*stop)(void *ud), void *ud)
{
    /* range_end: the prefix with its last byte incremented (etcd's prefix
     * convention); the prefix ends in '/', so no carry */
    size_t plen = strlen(prefix);
    if (plen == 0 || plen > 1024 || (unsigned char)prefix[plen - 1] == 0xff)
        return ETCD_EPROTO;
    char end[1030];
    memcpy(end, prefix, plen);
    end[plen - 1] = (char)(prefix[plen - 1] + 1);
    end[plen] = '\0';
    json_t *body =
        json_pack("{s:{s:o, s:o}}", "create_request", "key", b64s(prefix), "range_end", b64s(end));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return ETCD_ENOMEM;
    int rc = ETCD_EUNREACH;
    for (size_t tries = 0; tries < e->nurls; tries++) {
        size_t i = (e->cur + tries) % e->nurls;
        char url[ETCD_URL_MAX + 64];
        snprintf(url, sizeof url, "%s/v3/watch", e->urls[i]);
        watch_run w = {.on_change = on_change, .stop = stop, .ud = ud};
        struct curl_slist *h = post_setup(e, url, text, on_watch_data, &w, (long)lifetime_ms);
        curl_easy_setopt(e->curl, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
        curl_easy_setopt(e->curl, CURLOPT_XFERINFODATA, &w);
        curl_easy_setopt(e->curl, CURLOPT_NOPROGRESS, 0L);
        CURLcode cc = curl_easy_perform(e->curl);
        curl_slist_free_all(h);
        long status = 0;
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
        if (w.created && (cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_ABORTED_BY_CALLBACK)) {
            e->cur = i; /* its lifetime ran out, or the caller stops: a clean end */
            rc = ETCD_OK;
            break;
        }
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            rc = ETCD_OK;
            break;
        }
        if (w.refused || (cc == CURLE_OK && status != 200)) {
            set_err(e, "%s: HTTP %ld: not a watch stream (%.15s)", url, status, w.head);
            rc = ETCD_EPROTO;
            break;
        }
        set_err(e, "%s: %s", url, cc == CURLE_OK ? "the stream ended" : curl_easy_strerror(cc));
        if (w.created) { /* it was working: the caller watches again */
            e->cur = i;
            break;
        }
    }
    free(text);
    return rc;
}
