/*
 * client.c — HTTP for the kv client: one libcurl easy handle per process,
 * reused for every request of a command so they ride one keep-alive
 * connection, and the mapping of kvd's answers to one-line messages and exit
 * statuses.
 *
 * Requests and responses are whole buffers (values are bounded by kvd's
 * --max-value). The handle is created lazily so commands that never talk to
 * kvd (serve, --help, usage errors) never touch libcurl. Error wording is
 * centralised here so every command names the URL, the bucket and the
 * credential problem the same way; a 404 is ambiguous (bucket or key), so it
 * is resolved with one HEAD /:bucket on the same connection.
 */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static size_t collect_body(char *data, size_t size, size_t nmemb, void *arg)
{
    kv_ctx *ctx = arg;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &status);
    if (ctx->sink && status >= 200 && status <= 299) {
        if (fwrite(data, 1, n, ctx->sink) != n) {
            ctx->sink_failed = true;
            return 0;
        }
        ctx->sink_bytes += n;
        return n;
    }
    return kv_buf_append(&ctx->body, data, n) == 0 ? n : 0;
}

static size_t collect_header(char *data, size_t size, size_t nmemb, void *arg)
{
    kv_buf *headers = arg;
    size_t n = size * nmemb;
    if (n > 5 && memcmp(data, "HTTP/", 5) == 0)
        kv_buf_reset(headers); /* a new response (after 100 Continue, say) */
    return kv_buf_append(headers, data, n) == 0 ? n : 0;
}

int kv_header(const kv_ctx *ctx, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = ctx->resp_headers.data, *end = p ? p + ctx->resp_headers.len : NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (len > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1, *ve = p + len;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            if ((size_t)(ve - v) >= cap)
                return -1;
            memcpy(out, v, (size_t)(ve - v));
            out[ve - v] = '\0';
            return 0;
        }
        p = eol ? eol + 1 : end;
    }
    return -1;
}

int kv_client_init(kv_ctx *ctx)
{
    if (ctx->curl)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(ctx->curl = curl_easy_init()))
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot initialise libcurl");
    CURL *h = ctx->curl;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ctx->curl_error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ctx);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx->resp_headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kv/0.1");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    return 0;
}

void kv_client_cleanup(kv_ctx *ctx)
{
    if (ctx->curl) {
        curl_easy_cleanup(ctx->curl);
        curl_global_cleanup();
    }
    curl_slist_free_all(ctx->headers);
    kv_buf_free(&ctx->body);
    kv_buf_free(&ctx->resp_headers);
    ctx->curl = NULL;
    ctx->headers = NULL;
}

int kv_buf_append_escaped(kv_ctx *ctx, kv_buf *b, const void *s, size_t len)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        char enc[3] = {'%', rcu_hex_upper[c >> 4], rcu_hex_upper[c & 15]};
        if (kv_buf_append(b, unreserved ? (const char *)&p[i] : enc, unreserved ? 1 : 3) != 0)
            return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    }
    return 0;
}

int kv_key_path(kv_ctx *ctx, kv_buf *path, const char *key)
{
    kv_buf_reset(path);
    if (kv_buf_printf(path, "/%s/", ctx->bucket) != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    return kv_buf_append_escaped(ctx, path, key, strlen(key));
}

static int add_header(kv_ctx *ctx, const char *line)
{
    struct curl_slist *next = curl_slist_append(ctx->headers, line);
    if (!next)
        return -1;
    ctx->headers = next;
    return 0;
}

static int build_headers(kv_ctx *ctx, const char *content_type)
{
    curl_slist_free_all(ctx->headers);
    ctx->headers = NULL;
    kv_buf line = {0};
    int rc = 0;
    /* "Expect:" stops libcurl waiting for 100-continue on large bodies; an
     * empty "Content-Type:" removes the form type libcurl adds to POSTs. */
    if (add_header(ctx, "Expect:") != 0)
        rc = -1;
    if (rc == 0 && content_type)
        rc = kv_buf_printf(&line, "Content-Type: %s", content_type);
    else if (rc == 0)
        rc = kv_buf_printf(&line, "Content-Type:");
    if (rc == 0)
        rc = add_header(ctx, line.data);
    if (rc == 0 && ctx->if_match) {
        kv_buf_reset(&line);
        rc = kv_buf_printf(&line, "If-Match: %s", ctx->if_match);
        if (rc == 0)
            rc = add_header(ctx, line.data);
    }
    if (rc == 0 && ctx->if_none_match) {
        kv_buf_reset(&line);
        rc = kv_buf_printf(&line, "If-None-Match: %s", ctx->if_none_match);
        if (rc == 0)
            rc = add_header(ctx, line.data);
    }
    if (rc == 0 && ctx->key) {
        kv_buf_reset(&line);
        rc = kv_buf_printf(&line, "Authorization: Bearer %s", ctx->key);
        if (rc == 0)
            rc = add_header(ctx, line.data);
    }
    kv_buf_free(&line);
    return rc;
}

static bool connect_failure(CURLcode res)
{
    return res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
           res == CURLE_OPERATION_TIMEDOUT || res == CURLE_RECV_ERROR || res == CURLE_GOT_NOTHING;
}

/* 503 no_leader: a replica group between two leaders. */
static bool no_leader(const kv_ctx *ctx)
{
    return ctx->status == 503 && ctx->body.len > 0 &&
           memmem(ctx->body.data, ctx->body.len, "\"no_leader\"", 11) != NULL;
}

/* One request to the current URL (following redirects: a replica group's
 * followers send writes to the leader with 307, which keeps the method and
 * the body). */
static CURLcode perform_once(kv_ctx *ctx, const char *method, const char *path, const void *body,
                             size_t len)
{
    CURL *h = ctx->curl;
    kv_buf url = {0};
    if (kv_buf_printf(&url, "%s%s", ctx->url, path) != 0)
        return CURLE_OUT_OF_MEMORY;
    kv_buf_reset(&ctx->body);
    kv_buf_reset(&ctx->resp_headers);
    ctx->status = 0;
    ctx->curl_error[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, ctx->headers);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    /* the credential goes on to the leader the group redirects to */
    curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 1L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (body) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? body : "");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    }
    CURLcode res = curl_easy_perform(h);
    kv_buf_free(&url);
    if (res == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ctx->status);
    return res;
}

int kv_http(kv_ctx *ctx, const char *method, const char *path, const void *body, size_t len,
            const char *content_type)
{
    int rc = kv_client_init(ctx);
    if (rc != 0)
        return rc;
    if (build_headers(ctx, content_type) != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    /* Several URLs: an unreachable one, or one that knows no leader, passes
     * the request to the next; while an election is under way (503
     * no_leader everywhere) kv retries for up to 10 s. A response body
     * already streamed to the sink is never sent twice: only requests that
     * got no 2xx are retried. */
    size_t n = ctx->nurls ? ctx->nurls : 1;
    CURLcode res = CURLE_OK;
    for (int round = 0; round < 20; round++) {
        bool electing = false;
        for (size_t tried = 0; tried < n; tried++) {
            if (ctx->nurls)
                ctx->url = ctx->urls[ctx->url_cur];
            res = perform_once(ctx, method, path, body, len);
            bool retry = (res != CURLE_OK && connect_failure(res) && ctx->sink_bytes == 0) ||
                         (res == CURLE_OK && no_leader(ctx));
            if (!retry)
                goto done;
            electing = electing || (res == CURLE_OK && no_leader(ctx));
            if (ctx->nurls)
                ctx->url_cur = (ctx->url_cur + 1) % ctx->nurls;
        }
        if (!electing)
            break;
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
done:
    if (res != CURLE_OK) {
        const char *why = ctx->curl_error[0] ? ctx->curl_error : curl_easy_strerror(res);
        switch (res) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
            return kv_fail(ctx, KV_EXIT_UNREACHABLE, "cannot reach kvd at %s: %s", ctx->url, why);
        case CURLE_WRITE_ERROR:
            if (ctx->sink_failed)
                return kv_fail(ctx, KV_EXIT_LOCAL, "cannot write the answer of %s: %s", ctx->url,
                               strerror(errno));
            /* fall through */
        case CURLE_OUT_OF_MEMORY:
            return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory reading the answer of %s", ctx->url);
        default:
            return kv_fail(ctx, KV_EXIT_UNREACHABLE, "request to kvd at %s failed: %s", ctx->url,
                           why);
        }
    }
    return 0;
}

char *kv_server_message(kv_ctx *ctx)
{
    json_t *root = ctx->body.len ? json_loadb(ctx->body.data, ctx->body.len, 0, NULL) : NULL;
    const char *msg = NULL;
    if (json_is_object(root)) {
        msg = json_string_value(json_object_get(root, "message"));
        if (!msg || !*msg)
            msg = json_string_value(json_object_get(root, "error"));
    }
    char *copy;
    if (msg) {
        copy = strdup(msg);
    } else if (ctx->body.len && ctx->body.len < 200 && kv_is_text(ctx->body.data, ctx->body.len)) {
        copy = strndup(ctx->body.data, strcspn(ctx->body.data, "\r\n"));
    } else {
        copy = strdup("");
    }
    json_decref(root);
    return copy;
}

static bool bucket_exists(kv_ctx *ctx, int *rc)
{
    kv_buf path = {0};
    kv_buf saved_body = ctx->body;
    long saved_status = ctx->status;
    ctx->body = (kv_buf){0};
    bool exists = true;
    *rc = 0;
    if (kv_buf_printf(&path, "/%s", ctx->bucket) != 0) {
        *rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    } else {
        *rc = kv_http(ctx, "HEAD", path.data, NULL, 0, NULL);
        exists = *rc != 0 || ctx->status != 404;
    }
    kv_buf_free(&path);
    kv_buf_free(&ctx->body);
    ctx->body = saved_body;
    ctx->status = saved_status;
    return exists;
}

int kv_http_error(kv_ctx *ctx, const char *what, const char *absent_what)
{
    char *msg = kv_server_message(ctx);
    const char *sep = msg && *msg ? ": " : "";
    const char *m = msg ? msg : "";
    long st = ctx->status;
    int rc;
    if (st == 401 && !ctx->key) {
        /* kvd's message says the same ("this needs a credential"): not repeated */
        rc = kv_fail(ctx, KV_EXIT_AUTH,
                     "cannot %s: bucket '%s' needs a credential (pass --key or set KV_KEY)", what,
                     ctx->bucket);
    } else if (st == 401) {
        rc = kv_fail(ctx, KV_EXIT_AUTH, "cannot %s: the credential was rejected (HTTP 401)%s%s",
                     what, sep, m);
    } else if (st == 403) {
        rc = kv_fail(ctx, KV_EXIT_AUTH, "cannot %s: the credential is not permitted (HTTP 403)%s%s",
                     what, sep, m);
    } else if (st == 404) {
        int head_rc;
        if (!bucket_exists(ctx, &head_rc))
            rc = kv_fail(ctx, KV_EXIT_NO_BUCKET, "cannot %s: no bucket '%s' at %s", what,
                         ctx->bucket, ctx->url);
        else if (head_rc != 0)
            rc = head_rc;
        else if (absent_what)
            rc = kv_fail(ctx, KV_EXIT_ABSENT, "%s not found", absent_what);
        else
            rc = kv_fail(ctx, KV_EXIT_ABSENT, "cannot %s: not found (HTTP 404)%s%s", what, sep, m);
    } else if (st >= 500 || st < 400) {
        rc = kv_fail(ctx, KV_EXIT_SERVER, "cannot %s: kvd at %s answered HTTP %ld%s%s", what,
                     ctx->url, st, sep, m);
    } else {
        rc = kv_fail(ctx, KV_EXIT_REFUSED, "cannot %s: refused (HTTP %ld)%s%s", what, st, sep, m);
    }
    free(msg);
    return rc;
}

json_t *kv_json_body(kv_ctx *ctx, const char *what)
{
    json_error_t err;
    json_t *root = json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, 0, &err);
    if (!root)
        kv_fail(ctx, KV_EXIT_SERVER, "cannot %s: kvd answered malformed JSON (%s)", what, err.text);
    return root;
}

int kv_key_call(kv_ctx *ctx, const char *method, const char *key, const char *query,
                const void *body, size_t len, const char *content_type, const char *verb,
                bool absent_is_error)
{
    kv_buf path = {0};
    int rc = kv_key_path(ctx, &path, key);
    if (rc == 0 && query && kv_buf_append(&path, query, strlen(query)) != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    if (rc == 0)
        rc = kv_http(ctx, method, path.data, body, len, content_type);
    kv_buf_free(&path);
    if (rc == 0 && (ctx->status < 200 || ctx->status > 299)) {
        char label[KV_LABEL_MAX], what[KV_LABEL_MAX + 64], absent[KV_LABEL_MAX + 16];
        kv_key_label(key, label);
        snprintf(what, sizeof what, "%s key '%s'", verb, label);
        snprintf(absent, sizeof absent, "key '%s'", label);
        rc = kv_http_error(ctx, what, absent_is_error ? absent : NULL);
    }
    return rc;
}
