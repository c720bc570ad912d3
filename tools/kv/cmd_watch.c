/*
 * cmd_watch.c — kv watch: follow a key or the keys under a prefix.
 *
 * A loop of blocking GETs (docs/HTTP.md, "Watching"): each asks kvd to
 * answer when something changed after the last X-Ringcask-Seq it saw
 * (?wait=SEQ&timeout=T), and passes the answer's X-Ringcask-Seq back as the
 * next wait. kv keeps the state it printed last (a key's ETag; for a prefix,
 * every key's value) and prints only what differs, so an answer at the
 * timeout prints nothing. One line per change: "k: value", or
 * "k: (deleted)" when the key is gone (deleted or expired); with --json one
 * object per line, {"key", "value" (or "value_base64"), "seq"}, "value" null
 * when the key is gone.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char watch_about[] =
    "Print every change of key k, or of any key under PREFIX (--prefix), as it\n"
    "happens: one 'k: value' line per change ('k: (deleted)' when the key is\n"
    "deleted or expires), until interrupted or after --count changes. The\n"
    "current state is the starting point (not printed unless --initial).\n";

typedef struct watch_opts {
    bool prefix, json, initial;
    uint64_t count, since;
    bool count_given, since_given;
    const char *timeout;
} watch_opts;

typedef struct watch_state {
    kv_ctx *ctx;
    const watch_opts *o;
    uint64_t printed;
    char etag[64]; /* key mode: the ETag printed last ("" when absent) */
    json_t *known; /* key -> value (a JSON string or {"base64"}), what was printed last */
} watch_state;

/* Print one change of KEY (KLEN bytes) to VALUE (a JSON string or
 * {"base64": ...}; NULL: gone) at SEQ. */
static int print_change(watch_state *w, const char *key, size_t klen, json_t *value, uint64_t seq)
{
    kv_ctx *ctx = w->ctx;
    int rc = 0;
    if (w->o->json) {
        json_t *o = json_object();
        json_object_set_new(o, "key", json_stringn(key, klen));
        if (value != NULL && json_is_object(value))
            json_object_set(o, "value_base64", json_object_get(value, "base64"));
        else
            json_object_set(o, "value", value ? value : json_null());
        json_object_set_new(o, "seq", json_integer((json_int_t)seq));
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text == NULL || kv_write_stdout(text, strlen(text)) != 0 ||
            kv_write_stdout("\n", 1) != 0)
            rc = -1;
        free(text);
    } else {
        kv_buf raw = {0};
        if (value == NULL)
            rc = kv_buf_append(&raw, "(deleted)", 9);
        else if (json_is_string(value))
            rc = kv_buf_append(&raw, json_string_value(value), json_string_length(value));
        else {
            json_t *b = json_object_get(value, "base64");
            rc = kv_base64_decode(&raw, json_string_value(b), json_string_length(b));
        }
        if (rc == 0 && (kv_write_stdout(key, klen) != 0 || kv_write_stdout(": ", 2) != 0 ||
                        kv_write_stdout(raw.data ? raw.data : "", raw.len) != 0 ||
                        kv_write_stdout("\n", 1) != 0))
            rc = -1;
        kv_buf_free(&raw);
    }
    if (rc != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
    fflush(stdout);
    w->printed++;
    return 0;
}

/* A value's bytes as kvd's listing shows them: a JSON string when UTF-8,
 * else {"base64": ...}. New reference, NULL when out of memory. */
static json_t *value_json(const char *data, size_t len)
{
    if (kv_is_text(data, len))
        return json_stringn(data, len);
    kv_buf b = {0};
    if (kv_base64_encode(&b, data, len) != 0)
        return NULL;
    json_t *o = json_pack("{s:s}", "base64", b.data ? b.data : "");
    kv_buf_free(&b);
    return o;
}

/* Compare the answer of a listing (ctx->body: [["k","v"], ...]) with what
 * was printed; print what differs. FIRST: the starting point, printed when
 * SHOW. */
static int diff_listing(watch_state *w, uint64_t seq, bool first, bool show)
{
    kv_ctx *ctx = w->ctx;
    json_t *items = kv_json_body(ctx, "watch keys");
    if (items == NULL || !json_is_array(items)) {
        json_decref(items);
        return kv_fail(ctx, KV_EXIT_SERVER, "cannot watch: kvd's listing is not a JSON array");
    }
    json_t *now = json_object();
    int rc = 0;
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        json_t *k = json_array_get(item, 0), *v = json_array_get(item, 1);
        if (!json_is_string(k) || v == NULL) {
            /* a key that is not UTF-8: watched by its base64 form */
            json_t *b = json_object_get(k, "base64");
            if (!json_is_string(b) || v == NULL)
                continue;
            k = b;
        }
        json_object_set(now, json_string_value(k), v);
        json_t *old = json_object_get(w->known, json_string_value(k));
        if ((first && show) || (!first && (old == NULL || !json_equal(old, v))))
            rc = print_change(w, json_string_value(k), json_string_length(k), v, seq);
        if (rc != 0)
            break;
    }
    const char *key;
    json_t *v;
    json_object_foreach(w->known, key, v)
    {
        if (rc == 0 && !first && json_object_get(now, key) == NULL)
            rc = print_change(w, key, strlen(key), NULL, seq);
    }
    json_decref(items);
    json_decref(w->known);
    w->known = now;
    return rc;
}

/* The answer for one key: print it when it differs from what was printed. */
static int diff_key(watch_state *w, const char *key, uint64_t seq, bool first, bool show)
{
    kv_ctx *ctx = w->ctx;
    json_t *v = NULL;
    if (ctx->status == 200) {
        v = value_json(ctx->body.data ? ctx->body.data : "", ctx->body.len);
        if (v == NULL)
            return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    }
    json_t *old = json_object_get(w->known, key);
    bool changed = (old == NULL) != (v == NULL) || (old && v && !json_equal(old, v));
    /* the same value written again is a change too: compare ETags */
    char tag[64] = "";
    if (v != NULL && kv_header(ctx, "ETag", tag, sizeof tag) == 0 && strcmp(tag, w->etag) != 0)
        changed = true;
    snprintf(w->etag, sizeof w->etag, "%s", tag);
    int rc = 0;
    if ((first && show) || (!first && changed))
        rc = print_change(w, key, strlen(key), v, seq);
    if (v != NULL)
        json_object_set_new(w->known, key, v);
    else
        json_object_del(w->known, key);
    return rc;
}

static int watch_request(kv_ctx *ctx, const watch_opts *o, const char *target, bool waiting,
                         uint64_t seq, kv_buf *path)
{
    kv_buf_reset(path);
    int rc = 0;
    if (o->prefix) {
        rc = kv_buf_printf(path, "/%s/?format=json&values=true&limit=100000&prefix=", ctx->bucket);
        if (rc == 0)
            rc = kv_buf_append_escaped(ctx, path, target, strlen(target));
    } else {
        rc = kv_key_path(ctx, path, target);
        if (rc == 0)
            rc = kv_buf_append(path, "?", 1);
    }
    if (rc == 0 && waiting)
        rc = kv_buf_printf(path, "%swait=%llu&timeout=%s", o->prefix ? "&" : "",
                           (unsigned long long)seq, o->timeout);
    if (rc != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    return kv_http(ctx, "GET", path->data, NULL, 0, NULL);
}

/* DIGITS followed by nothing (seconds), ms, s or m: what kvd takes. */
static bool duration_ok(const char *s)
{
    size_t d = strspn(s, "0123456789");
    const char *u = s + d;
    return d > 0 &&
           (*u == '\0' || strcmp(u, "ms") == 0 || strcmp(u, "s") == 0 || strcmp(u, "m") == 0);
}

int kv_cmd_watch(kv_ctx *ctx, int argc, char **argv)
{
    watch_opts o = {.timeout = "5m"};
    const rcu_opt opts[] = {
        {"prefix", 'p', RCU_OPT_BOOL, &o.prefix,
         .help = "watch every key starting with the operand (\"\" for the whole bucket)"},
        {"count", 'n', RCU_OPT_INT, &o.count, sizeof o.count, .min = 1, .max = INT64_MAX,
         .seen = &o.count_given, .flags = RCU_OPT_NODEFAULT,
         .help = "stop after N changes (default: until interrupted)"},
        {"since", 0, RCU_OPT_INT, &o.since, sizeof o.since, .max = INT64_MAX,
         .seen = &o.since_given, .flags = RCU_OPT_NODEFAULT, .meta = "SEQ",
         .help = "start from sequence number SEQ (an earlier X-Ringcask-Seq) instead of now: "
                 "the first state printed is the one after SEQ"},
        {"initial", 'i', RCU_OPT_BOOL, &o.initial, .help = "print the current state first"},
        {"timeout", 0, RCU_OPT_STRING, &o.timeout, .meta = "DURATION",
         .help = "how long each request waits at kvd before it asks again (500ms, 30s, 10m; at "
                 "most 10m)"},
        {"json", 'j', RCU_OPT_BOOL, &o.json,
         .help = "one JSON object per change: {\"key\", \"value\", \"seq\"}"},
        {0},
    };
    int first = 1;
    int rc =
        kv_parse_options(ctx, &argc, argv, opts,
                         "[--prefix] [--count N] [--since SEQ] [--json] k|PREFIX", watch_about);
    if (rc >= 0)
        return rc;
    if (argc - first != 1)
        return kv_usage_error(ctx,
                              argc - first < 1 ? "no key given (see --help)"
                                               : "exactly one key or prefix (got '%s' too)",
                              argc - first < 1 ? "" : argv[first + 1]);
    const char *target = argv[first];
    if (!o.prefix && target[0] == '\0')
        return kv_usage_error(ctx, "the key is empty (use --prefix \"\" for the whole bucket)");
    if (!duration_ok(o.timeout))
        return kv_usage_error(ctx, "--timeout '%s' is not a duration (500ms, 30s, 10m)", o.timeout);
    watch_state w = {.ctx = ctx, .o = &o, .known = json_object()};
    kv_buf path = {0};
    uint64_t seq = o.since;
    /* the starting point: without --since a plain GET (printed with
     * --initial), with it the first answer to wait=SEQ (always printed) */
    bool start = true, show = o.initial || o.since_given;
    rc = watch_request(ctx, &o, target, o.since_given, seq, &path);
    while (rc == 0) {
        if (ctx->status == 503 && strstr(path.data, "wait=") != NULL) {
            /* --max-waiters: come back when kvd says */
            char ra[16] = "1";
            kv_header(ctx, "Retry-After", ra, sizeof ra);
            struct timespec ts = {atoi(ra) > 0 ? atoi(ra) : 1, 0};
            nanosleep(&ts, NULL);
        } else {
            bool absent = ctx->status == 404 && !o.prefix && ctx->body.data &&
                          strstr(ctx->body.data, "\"not_found\"") != NULL;
            if (ctx->status != 200 && !absent) {
                rc = kv_http_error(ctx, o.prefix ? "watch keys" : "watch key", NULL);
                break;
            }
            char sbuf[32];
            if (kv_header(ctx, "X-Ringcask-Seq", sbuf, sizeof sbuf) != 0) {
                rc = kv_fail(ctx, KV_EXIT_SERVER, "kvd's answer has no X-Ringcask-Seq");
                break;
            }
            uint64_t next = strtoull(sbuf, NULL, 10);
            rc = o.prefix ? diff_listing(&w, next, start, show)
                          : diff_key(&w, target, next, start, show);
            seq = next;
            start = false;
            if (rc != 0 || (o.count_given && w.printed >= o.count))
                break;
        }
        rc = watch_request(ctx, &o, target, true, seq, &path);
    }
    kv_buf_free(&path);
    json_decref(w.known);
    return rc == 0 ? kv_finish_stdout(ctx) : rc;
}
