/*
 * s3_client.c — S3 requests over libcurl with libcurl's SigV4 signing.
 *
 * libcurl 7.88 (Debian 12) signs the Host header, every header the caller
 * sets and x-amz-date; it takes the payload hash from a caller-set
 * x-amz-content-sha256 (else it hashes CURLOPT_POSTFIELDS, which is wrong for
 * an upload from a read callback), and it signs the URL's path and query as
 * given. So this file sends x-amz-content-sha256 on every request and builds
 * paths and queries already in S3's canonical form: keys percent-encoded
 * except '/', query parameters sorted by name with encoded values, and a
 * valueless parameter written "uploads=".
 */
#include "s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "s3_xml.h"

#define ERR_BODY_MAX (64u << 10)
#define XML_BODY_MAX (16u << 20)

struct rcs3 {
    CURL *h;
    char *bucket;
    char *endpoint; /* scheme://host[:port], no trailing '/' */
    char *userpwd;  /* AKID:SECRET */
    char *token;    /* x-amz-security-token header line, or NULL */
    char sigv4[96];
    unsigned attempts;
    const atomic_bool *cancel;
    char err[768];
};

static const char empty_sha_hex[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

void rcs3_hex(const unsigned char sha[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[sha[i] >> 4];
        hex[2 * i + 1] = digits[sha[i] & 15];
    }
    hex[64] = '\0';
}

void rcs3_uri_encode(char *out, size_t cap, const char *in, bool encode_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                     (*p == '/' && !encode_slash);
        if (n + (plain ? 1 : 3) >= cap)
            break;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = digits[*p >> 4];
            out[n++] = digits[*p & 15];
        }
    }
    if (cap > 0)
        out[n] = '\0';
}

static bool bucket_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
}

int rcs3_parse_url(const char *url, char **bucket, char **prefix, char *err, size_t errcap)
{
    *bucket = *prefix = NULL;
    if (strncmp(url, "s3://", 5) != 0) {
        snprintf(err, errcap, "'%s' is not an s3://BUCKET/PREFIX URL", url);
        return -1;
    }
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (bl < 3 || bl > 63) {
        snprintf(err, errcap, "'%s': the bucket name must be 3 to 63 characters", url);
        return -1;
    }
    for (size_t i = 0; i < bl; i++)
        if (!bucket_char(b[i])) {
            snprintf(err, errcap, "'%s': the bucket name may hold only a-z 0-9 . -", url);
            return -1;
        }
    const char *p = slash ? slash + 1 : "";
    size_t pl = strlen(p);
    while (pl > 0 && p[pl - 1] == '/')
        pl--;
    if (pl > 512 || strstr(p, "//") != NULL || p[0] == '/') {
        snprintf(err, errcap, "'%s': the prefix must be at most 512 bytes without empty parts",
                 url);
        return -1;
    }
    for (size_t i = 0; i < pl; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
            snprintf(err, errcap, "'%s': the prefix holds a control character", url);
            return -1;
        }
    *bucket = strndup(b, bl);
    *prefix = strndup(p, pl);
    if (*bucket == NULL || *prefix == NULL) {
        free(*bucket);
        free(*prefix);
        *bucket = *prefix = NULL;
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    return 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

rcs3 *rcs3_new(const char *bucket, char *err, size_t errcap)
{
    const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    const char *region = env("AWS_REGION");
    if (region == NULL)
        region = env("AWS_DEFAULT_REGION");
    if (region == NULL)
        region = "us-east-1";
    const char *endpoint = env("AWS_ENDPOINT_URL");
    if (akid == NULL || secret == NULL) {
        snprintf(err, errcap, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
        return NULL;
    }
    if (strlen(region) > 48 || strchr(region, ':') != NULL) {
        snprintf(err, errcap, "AWS_REGION '%s' is not a region name", region);
        return NULL;
    }
    if (endpoint != NULL && strncmp(endpoint, "http://", 7) != 0 &&
        strncmp(endpoint, "https://", 8) != 0) {
        snprintf(err, errcap, "AWS_ENDPOINT_URL '%s' must start with http:// or https://",
                 endpoint);
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errcap, "libsodium failed to initialise");
        return NULL;
    }
    rcs3 *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    c->h = curl_easy_init();
    c->bucket = strdup(bucket);
    if (endpoint != NULL) {
        c->endpoint = strdup(endpoint);
    } else if (c->h != NULL) {
        size_t n = strlen(region) + 32;
        c->endpoint = malloc(n);
        if (c->endpoint)
            snprintf(c->endpoint, n, "https://s3.%s.amazonaws.com", region);
    }
    size_t up = strlen(akid) + strlen(secret) + 2;
    c->userpwd = malloc(up);
    if (c->userpwd)
        snprintf(c->userpwd, up, "%s:%s", akid, secret);
    const char *token = env("AWS_SESSION_TOKEN");
    if (token != NULL) {
        size_t n = strlen(token) + 32;
        c->token = malloc(n);
        if (c->token)
            snprintf(c->token, n, "x-amz-security-token: %s", token);
    }
    if (c->h == NULL || c->bucket == NULL || c->endpoint == NULL || c->userpwd == NULL ||
        (token != NULL && c->token == NULL)) {
        rcs3_free(c);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    size_t el = strlen(c->endpoint);
    while (el > 0 && c->endpoint[el - 1] == '/')
        c->endpoint[--el] = '\0';
    snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", region);
    c->attempts = 3;
    return c;
}

void rcs3_free(rcs3 *c)
{
    if (c == NULL)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    free(c->bucket);
    free(c->endpoint);
    if (c->userpwd)
        sodium_memzero(c->userpwd, strlen(c->userpwd));
    free(c->userpwd);
    free(c->token);
    free(c);
}

const char *rcs3_error(const rcs3 *c)
{
    return c->err;
}

void rcs3_set_cancel(rcs3 *c, const atomic_bool *cancel)
{
    c->cancel = cancel;
}

static bool cancelled(const rcs3 *c)
{
    return c->cancel != NULL && atomic_load(c->cancel);
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    return cancelled(ud) ? 1 : 0;
}

void rcs3_set_attempts(rcs3 *c, unsigned attempts)
{
    c->attempts = attempts ? attempts : 1;
}

int rcs3_prepare(rcs3 *c, CURL *h, const char *method, const char *url, const char *payload_hex,
                 const char *const *extra, struct curl_slist **headers)
{
    char line[128];
    struct curl_slist *l = NULL, *t;
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", payload_hex);
    if ((t = curl_slist_append(l, line)) == NULL)
        goto oom;
    l = t;
    if (c->token != NULL) {
        if ((t = curl_slist_append(l, c->token)) == NULL)
            goto oom;
        l = t;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if ((t = curl_slist_append(l, extra[i])) == NULL)
            goto oom;
        l = t;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(h, CURLOPT_USERPWD, c->userpwd);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->cancel != NULL) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    }
    *headers = l;
    return 0;
oom:
    curl_slist_free_all(l);
    return RCS3_ELOCAL;
}

/* ------------------------------------------------------------ one request */

typedef struct request {
    const char *method;
    const char *label; /* for messages, when not METHOD */
    const char *url;
    const char *shown; /* s3://bucket/key for messages */
    const char *payload_hex;
    const char *const *extra;
    /* upload source: memory, or LEN bytes of FD from OFF */
    const char *up_mem;
    int up_fd;
    uint64_t up_off, up_len, up_pos;
    bool upload;
    /* download sink for a 2xx body: FD (hashed), else memory */
    int down_fd;
    off_t down_start;
    crypto_hash_sha256_state down_sha;
    uint64_t down_max, down_bytes;
    int sink_error; /* errno of a failed write, or -1: over down_max */
    char *body;
    size_t body_len, body_cap;
    char etag[256];
    long status;
    char *own_url, *own_shown; /* key_request's: freed by request_free */
} request;

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    request *r = ud;
    size_t want = size * n;
    uint64_t left = r->up_len - r->up_pos;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (r->up_mem != NULL) {
        memcpy(buf, r->up_mem + r->up_pos, want);
    } else {
        ssize_t got = pread(r->up_fd, buf, want, (off_t)(r->up_off + r->up_pos));
        if (got <= 0)
            return CURL_READFUNC_ABORT;
        want = (size_t)got;
    }
    r->up_pos += want;
    return want;
}

static size_t on_write(char *buf, size_t size, size_t n, void *ud)
{
    request *r = ud;
    CURL *h = NULL;
    size_t len = size * n;
    (void)h;
    bool ok2xx = r->status >= 200 && r->status < 300;
    if (ok2xx && r->down_fd >= 0) {
        if (r->down_bytes + len > r->down_max) {
            r->sink_error = -1;
            return 0;
        }
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(r->down_fd, buf + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r->sink_error = errno ? errno : EIO;
                return 0;
            }
            done += (size_t)w;
        }
        crypto_hash_sha256_update(&r->down_sha, (const unsigned char *)buf, len);
        r->down_bytes += len;
        return len;
    }
    size_t max = ok2xx ? (size_t)r->down_max : ERR_BODY_MAX;
    if (r->body_len + len > max) {
        if (ok2xx) {
            r->sink_error = -1;
            return 0;
        }
        return len; /* an over-long error body: keep the beginning */
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (nb == NULL) {
            r->sink_error = ENOMEM;
            return 0;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, buf, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    request *r = ud;
    size_t len = size * n;
    if (len > 5 && strncasecmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue or a retry): status from here */
        long st = 0;
        const char *sp = memchr(buf, ' ', len);
        if (sp != NULL)
            st = strtol(sp + 1, NULL, 10);
        r->status = st;
    } else if (len > 5 && strncasecmp(buf, "etag:", 5) == 0) {
        const char *v = buf + 5;
        size_t vl = len - 5;
        while (vl > 0 && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl < sizeof r->etag) {
            memcpy(r->etag, v, vl);
            r->etag[vl] = '\0';
        }
    }
    return len;
}

typedef struct err_xml {
    char code[128];
    char message[256];
} err_xml;

static void on_err_xml(void *ctx, const char *path, const char *text)
{
    err_xml *e = ctx;
    if (text == NULL)
        return;
    if (strcmp(path, "Error/Code") == 0)
        snprintf(e->code, sizeof e->code, "%s", text);
    else if (strcmp(path, "Error/Message") == 0)
        snprintf(e->message, sizeof e->message, "%s", text);
}

static void describe_http_error(rcs3 *c, request *r)
{
    err_xml e = {{0}, {0}};
    if (r->body != NULL && r->body_len > 0)
        rcs3_xml_walk(r->body, r->body_len, on_err_xml, &e);
    snprintf(c->err, sizeof c->err, "%s %s: HTTP %ld%s%s%s%s", r->label ? r->label : r->method,
             r->shown, r->status, e.code[0] ? " " : "", e.code, e.message[0] ? ": " : "",
             e.message);
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Perform R with retries. Returns 0 for a 2xx (body per the sink), else an
 * RCS3_E* code with c->err set. */
static int perform(rcs3 *c, request *r)
{
    int result = RCS3_EHTTP;
    if (r->down_fd >= 0)
        r->down_start = lseek(r->down_fd, 0, SEEK_CUR);
    for (unsigned attempt = 0; attempt < c->attempts; attempt++) {
        if (attempt > 0)
            pause_ms(200u << (attempt - 1));
        if (cancelled(c)) {
            snprintf(c->err, sizeof c->err, "%s %s: cancelled", r->method, r->shown);
            return RCS3_ENET;
        }
        r->up_pos = 0;
        r->status = 0;
        r->body_len = 0;
        r->etag[0] = '\0';
        r->sink_error = 0;
        r->down_bytes = 0;
        crypto_hash_sha256_init(&r->down_sha);
        if (r->down_fd >= 0 && attempt > 0) {
            if (ftruncate(r->down_fd, r->down_start) != 0 ||
                lseek(r->down_fd, r->down_start, SEEK_SET) < 0) {
                snprintf(c->err, sizeof c->err, "%s %s: cannot rewind the local file: %s",
                         r->method, r->shown, strerror(errno));
                return RCS3_ELOCAL;
            }
        }
        curl_easy_reset(c->h);
        struct curl_slist *headers = NULL;
        if (rcs3_prepare(c, c->h, r->method, r->url, r->payload_hex, r->extra, &headers) != 0) {
            snprintf(c->err, sizeof c->err, "out of memory");
            return RCS3_ELOCAL;
        }
        if (r->upload) {
            curl_easy_setopt(c->h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->up_len);
            curl_easy_setopt(c->h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c->h, CURLOPT_READDATA, r);
        } else if (strcmp(r->method, "HEAD") == 0) {
            curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
        }
        curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c->h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c->h, CURLOPT_HEADERDATA, r);
        CURLcode cc = curl_easy_perform(c->h);
        curl_slist_free_all(headers);
        if (r->sink_error != 0) {
            if (r->sink_error == -1)
                snprintf(c->err, sizeof c->err, "%s %s: the response is larger than %llu bytes",
                         r->method, r->shown, (unsigned long long)r->down_max);
            else
                snprintf(c->err, sizeof c->err, "%s %s: cannot store the response: %s", r->method,
                         r->shown, strerror(r->sink_error));
            return r->sink_error == -1 ? RCS3_EPROTO : RCS3_ELOCAL;
        }
        if (cc != CURLE_OK) {
            snprintf(c->err, sizeof c->err, "%s %s: %s (%s)", r->label ? r->label : r->method,
                     r->shown, curl_easy_strerror(cc), c->endpoint);
            result =
                cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_READ_ERROR ? RCS3_ELOCAL : RCS3_ENET;
            if (result == RCS3_ELOCAL)
                return result;
            continue;
        }
        long st = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &st);
        r->status = st;
        if (st >= 200 && st < 300)
            return 0;
        describe_http_error(c, r);
        if (st == 404)
            return RCS3_ENOTFOUND;
        if (st == 401 || st == 403)
            return RCS3_EAUTH;
        result = RCS3_EHTTP;
        if (st < 500 && st != 429 && st != 408)
            return result;
    }
    return result;
}

static void request_init(request *r, const char *method)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->up_fd = -1;
    r->down_fd = -1;
    r->payload_hex = empty_sha_hex;
    r->down_max = XML_BODY_MAX;
}

static void request_free(request *r)
{
    free(r->body);
    r->body = NULL;
    free(r->own_url);
    free(r->own_shown);
    r->own_url = r->own_shown = NULL;
}

/* URL of KEY (QUERY may be NULL: already canonical) and its s3:// name. */
static int key_url(rcs3 *c, const char *key, const char *query, char **url, char **shown)
{
    size_t kl = strlen(key);
    size_t n = strlen(c->endpoint) + strlen(c->bucket) + kl * 3 + (query ? strlen(query) : 0) + 8;
    *url = malloc(n);
    *shown = malloc(strlen(c->bucket) + kl + 8);
    char *enc = malloc(kl * 3 + 1);
    if (*url == NULL || *shown == NULL || enc == NULL) {
        free(*url), free(*shown), free(enc);
        *url = *shown = NULL;
        snprintf(c->err, sizeof c->err, "out of memory");
        return RCS3_ELOCAL;
    }
    rcs3_uri_encode(enc, kl * 3 + 1, key, false);
    snprintf(*url, n, "%s/%s/%s%s%s", c->endpoint, c->bucket, enc, query ? "?" : "",
             query ? query : "");
    snprintf(*shown, strlen(c->bucket) + kl + 8, "s3://%s/%s", c->bucket, key);
    free(enc);
    return 0;
}

/* Start R as METHOD on KEY (QUERY as for key_url): its URL and s3:// name
 * belong to R until request_free, which R needs whatever this answers. */
static int key_request(rcs3 *c, request *r, const char *method, const char *key, const char *query)
{
    request_init(r, method);
    int rc = key_url(c, key, query, &r->own_url, &r->own_shown);
    r->url = r->own_url;
    r->shown = r->own_shown;
    return rc;
}

/* METHOD on KEY?QUERY without a body either way. */
static int simple_request(rcs3 *c, const char *method, const char *key, const char *query)
{
    request r;
    int rc = key_request(c, &r, method, key, query);
    if (rc == 0)
        rc = perform(c, &r);
    request_free(&r);
    return rc;
}

/* --------------------------------------------------------------- objects */

static int put_range(rcs3 *c, const char *key, const char *query, const char *mem, int fd,
                     uint64_t off, uint64_t len, const char *hex, const char *const *extra,
                     char *etag, size_t etag_cap)
{
    request r;
    int rc = key_request(c, &r, "PUT", key, query);
    if (rc != 0) {
        request_free(&r);
        return rc;
    }
    r.payload_hex = hex;
    r.extra = extra;
    r.upload = true;
    r.up_mem = mem;
    r.up_fd = fd;
    r.up_off = off;
    r.up_len = len;
    rc = perform(c, &r);
    if (rc == 0 && etag != NULL) {
        if (r.etag[0] == '\0' || strpbrk(r.etag, "<>&") != NULL) {
            snprintf(c->err, sizeof c->err, "PUT %s: the response has no usable ETag", r.shown);
            rc = RCS3_EPROTO;
        } else {
            snprintf(etag, etag_cap, "%s", r.etag);
        }
    }
    request_free(&r);
    return rc;
}

int rcs3_put_mem(rcs3 *c, const char *key, const void *data, size_t len, const char *content_type)
{
    unsigned char sha[32];
    char hex[65], ct[128];
    crypto_hash_sha256(sha, data, len);
    rcs3_hex(sha, hex);
    snprintf(ct, sizeof ct, "Content-Type: %s",
             content_type ? content_type : "application/octet-stream");
    const char *extra[] = {ct, NULL};
    return put_range(c, key, NULL, data ? data : "", -1, 0, len, hex, extra, NULL, 0);
}

/* POST KEY?QUERY with BODY; the 2xx response body is returned in *OUT. */
static int post(rcs3 *c, const char *key, const char *query, const char *body, char **out,
                size_t *out_len)
{
    request r;
    int rc = key_request(c, &r, "POST", key, query);
    if (rc != 0) {
        request_free(&r);
        return rc;
    }
    unsigned char sha[32];
    char hex[65];
    size_t bl = strlen(body);
    crypto_hash_sha256(sha, (const unsigned char *)body, bl);
    rcs3_hex(sha, hex);
    const char *extra[] = {"Content-Type: application/xml", NULL};
    r.payload_hex = hex;
    r.extra = extra;
    r.upload = true; /* the body through the read callback, method stays POST */
    r.up_mem = body;
    r.up_len = bl;
    rc = perform(c, &r);
    if (rc == 0) {
        *out = r.body;
        *out_len = r.body_len;
        r.body = NULL;
    }
    request_free(&r);
    return rc;
}

typedef struct upload_id {
    char id[1024];
} upload_id;

static void on_initiate(void *ctx, const char *path, const char *text)
{
    upload_id *u = ctx;
    if (text != NULL && strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0)
        snprintf(u->id, sizeof u->id, "%s", text);
}

static int abort_upload(rcs3 *c, const char *key, const char *enc_id)
{
    char query[3200];
    snprintf(query, sizeof query, "uploadId=%s", enc_id);
    return simple_request(c, "DELETE", key, query);
}

static int hash_range(int fd, uint64_t off, uint64_t len, char hex[65])
{
    static const size_t bufsz = 1u << 20;
    unsigned char *buf = malloc(bufsz), sha[32];
    if (buf == NULL)
        return -1;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done < bufsz ? (size_t)(len - done) : bufsz;
        ssize_t got = pread(fd, buf, want, (off_t)(off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            free(buf);
            return -1;
        }
        crypto_hash_sha256_update(&st, buf, (size_t)got);
        done += (uint64_t)got;
    }
    crypto_hash_sha256_final(&st, sha);
    rcs3_hex(sha, hex);
    free(buf);
    return 0;
}

static int put_multipart(rcs3 *c, const char *key, int fd, uint64_t size)
{
    char *body = NULL;
    size_t body_len = 0;
    int rc = post(c, key, "uploads=", "", &body, &body_len);
    if (rc != 0)
        return rc;
    upload_id u = {{0}};
    if (rcs3_xml_walk(body, body_len, on_initiate, &u) != 0 || u.id[0] == '\0') {
        free(body);
        snprintf(c->err, sizeof c->err, "POST s3://%s/%s?uploads: no UploadId in the answer",
                 c->bucket, key);
        return RCS3_EPROTO;
    }
    free(body);
    char enc_id[3100];
    rcs3_uri_encode(enc_id, sizeof enc_id, u.id, true);
    uint64_t parts = (size + RCS3_PART_BYTES - 1) / RCS3_PART_BYTES;
    /* <Part><PartNumber>N</PartNumber><ETag>...</ETag></Part> per part */
    size_t cap = 128 + (size_t)parts * 340, len = 0;
    char *complete = malloc(cap);
    if (complete == NULL) {
        snprintf(c->err, sizeof c->err, "out of memory");
        abort_upload(c, key, enc_id);
        return RCS3_ELOCAL;
    }
    len += (size_t)snprintf(complete + len, cap - len, "<CompleteMultipartUpload>");
    for (uint64_t i = 0; i < parts && rc == 0; i++) {
        uint64_t off = i * RCS3_PART_BYTES;
        uint64_t plen = size - off < RCS3_PART_BYTES ? size - off : RCS3_PART_BYTES;
        char hex[65], query[3200], etag[256];
        if (hash_range(fd, off, plen, hex) != 0) {
            snprintf(c->err, sizeof c->err, "cannot read the spooled stream: %s",
                     strerror(errno ? errno : EIO));
            rc = RCS3_ELOCAL;
            break;
        }
        snprintf(query, sizeof query, "partNumber=%llu&uploadId=%s", (unsigned long long)(i + 1),
                 enc_id);
        rc = put_range(c, key, query, NULL, fd, off, plen, hex, NULL, etag, sizeof etag);
        if (rc == 0)
            len += (size_t)snprintf(complete + len, cap - len,
                                    "<Part><PartNumber>%llu</PartNumber><ETag>%s</ETag></Part>",
                                    (unsigned long long)(i + 1), etag);
    }
    if (rc == 0) {
        snprintf(complete + len, cap - len, "</CompleteMultipartUpload>");
        char query[3200];
        snprintf(query, sizeof query, "uploadId=%s", enc_id);
        rc = post(c, key, query, complete, &body, &body_len);
        if (rc == 0) {
            /* S3 may answer 200 and put an error in the body */
            char root[64];
            rcs3_xml_root(body, body_len, root, sizeof root);
            if (strcmp(root, "CompleteMultipartUploadResult") != 0) {
                err_xml e = {{0}, {0}};
                rcs3_xml_walk(body, body_len, on_err_xml, &e);
                snprintf(c->err, sizeof c->err, "completing s3://%s/%s: %s %s", c->bucket, key,
                         e.code[0] ? e.code : "unexpected answer", e.message);
                rc = RCS3_EHTTP;
            }
            free(body);
        }
    }
    free(complete);
    if (rc != 0) {
        char saved[sizeof c->err];
        memcpy(saved, c->err, sizeof saved);
        abort_upload(c, key, enc_id);
        memcpy(c->err, saved, sizeof saved);
    }
    return rc;
}

int rcs3_put_fd(rcs3 *c, const char *key, int fd, uint64_t size, const unsigned char sha[32])
{
    if (size > RCS3_MULTIPART_THRESHOLD)
        return put_multipart(c, key, fd, size);
    char hex[65];
    rcs3_hex(sha, hex);
    const char *extra[] = {"Content-Type: application/octet-stream", NULL};
    return put_range(c, key, NULL, NULL, fd, 0, size, hex, extra, NULL, 0);
}

int rcs3_get_fd(rcs3 *c, const char *key, int fd, uint64_t max, uint64_t *size,
                unsigned char sha[32])
{
    request r;
    int rc = key_request(c, &r, "GET", key, NULL);
    r.down_fd = fd;
    r.down_max = max;
    if (rc == 0)
        rc = perform(c, &r);
    if (rc == 0) {
        if (size)
            *size = r.down_bytes;
        if (sha)
            crypto_hash_sha256_final(&r.down_sha, sha);
    }
    request_free(&r);
    return rc;
}

int rcs3_get_mem(rcs3 *c, const char *key, size_t max, char **out, size_t *len)
{
    request r;
    int rc = key_request(c, &r, "GET", key, NULL);
    r.down_max = max;
    if (rc == 0)
        rc = perform(c, &r);
    if (rc == 0) {
        if (r.body == NULL)
            r.body = calloc(1, 1);
        if (r.body == NULL) {
            rc = RCS3_ELOCAL;
        } else {
            *out = r.body;
            *len = r.body_len;
            r.body = NULL;
        }
    }
    request_free(&r);
    return rc;
}

int rcs3_delete(rcs3 *c, const char *key)
{
    int rc = simple_request(c, "DELETE", key, NULL);
    return rc == RCS3_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------- listing */

typedef struct list_page {
    rcs3_list_fn fn;
    void *ctx;
    int stop; /* the callback's non-zero answer */
    bool bad; /* a Contents without Key/Size, or an over-long text */
    bool truncated;
    char key[1100];
    uint64_t size;
    bool have_key, have_size;
    char *token;
} list_page;

static void on_list(void *ctx, const char *path, const char *text)
{
    list_page *p = ctx;
    if (p->stop)
        return;
    if (strcmp(path, "ListBucketResult/Contents/Key") == 0) {
        if (text == NULL || strlen(text) >= sizeof p->key) {
            p->bad = true;
            return;
        }
        snprintf(p->key, sizeof p->key, "%s", text);
        p->have_key = true;
    } else if (strcmp(path, "ListBucketResult/Contents/Size") == 0) {
        char *end = NULL;
        if (text == NULL || text[0] < '0' || text[0] > '9') {
            p->bad = true;
            return;
        }
        errno = 0;
        p->size = strtoull(text, &end, 10);
        if (*end != '\0' || errno != 0)
            p->bad = true;
        p->have_size = true;
    } else if (strcmp(path, "ListBucketResult/Contents") == 0) {
        if (!p->have_key || !p->have_size)
            p->bad = true;
        else
            p->stop = p->fn(p->ctx, p->key, p->size);
        p->have_key = p->have_size = false;
    } else if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
        p->truncated = text != NULL && strcmp(text, "true") == 0;
    } else if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0) {
        free(p->token);
        p->token = text ? strdup(text) : NULL;
        if (p->token == NULL)
            p->bad = true;
    }
}

int rcs3_list(rcs3 *c, const char *prefix, rcs3_list_fn fn, void *ctx)
{
    list_page p;
    memset(&p, 0, sizeof p);
    p.fn = fn;
    p.ctx = ctx;
    size_t pl = strlen(prefix);
    char *enc_prefix = malloc(pl * 3 + 1);
    char shown[700];
    snprintf(shown, sizeof shown, "s3://%s/%s", c->bucket, prefix);
    if (enc_prefix == NULL) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return RCS3_ELOCAL;
    }
    rcs3_uri_encode(enc_prefix, pl * 3 + 1, prefix, true);
    int rc = 0;
    for (unsigned pages = 0; pages < 1000000; pages++) {
        char *enc_token = NULL;
        if (p.token != NULL) {
            size_t tl = strlen(p.token) * 3 + 1;
            enc_token = malloc(tl);
            if (enc_token == NULL) {
                rc = RCS3_ELOCAL;
                break;
            }
            rcs3_uri_encode(enc_token, tl, p.token, true);
        }
        /* parameters in canonical (sorted) order */
        size_t ul = strlen(c->endpoint) + strlen(c->bucket) + strlen(enc_prefix) +
                    (enc_token ? strlen(enc_token) : 0) + 96;
        char *url = malloc(ul);
        if (url == NULL) {
            free(enc_token);
            rc = RCS3_ELOCAL;
            break;
        }
        snprintf(url, ul, "%s/%s?%s%s%slist-type=2&prefix=%s", c->endpoint, c->bucket,
                 enc_token ? "continuation-token=" : "", enc_token ? enc_token : "",
                 enc_token ? "&" : "", enc_prefix);
        free(enc_token);
        request r;
        request_init(&r, "GET");
        r.url = url;
        r.shown = shown;
        r.label = "LIST";
        rc = perform(c, &r);
        free(url);
        if (rc != 0) {
            request_free(&r);
            break;
        }
        p.truncated = false;
        free(p.token);
        p.token = NULL;
        char root[64];
        rcs3_xml_root(r.body ? r.body : "", r.body_len, root, sizeof root);
        if (strcmp(root, "ListBucketResult") != 0 ||
            rcs3_xml_walk(r.body, r.body_len, on_list, &p) != 0 || p.bad) {
            snprintf(c->err, sizeof c->err, "LIST %s: the answer is not a valid listing", shown);
            rc = RCS3_EPROTO;
            request_free(&r);
            break;
        }
        request_free(&r);
        if (p.stop) {
            rc = p.stop;
            break;
        }
        if (!p.truncated)
            break;
        if (p.token == NULL) {
            snprintf(c->err, sizeof c->err, "LIST %s: truncated without a continuation token",
                     shown);
            rc = RCS3_EPROTO;
            break;
        }
    }
    if (rc == RCS3_ELOCAL)
        snprintf(c->err, sizeof c->err, "out of memory");
    free(p.token);
    free(enc_prefix);
    return rc;
}
