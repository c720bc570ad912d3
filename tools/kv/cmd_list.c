/*
 * cmd_list.c — kv ls and kv incr.
 *
 * ls pages through GET /:bucket/?format=json. kvd may cap a page, so kv asks
 * for at most KV_LS_PAGE keys at a time and continues with start=<last key>:
 * `start` is inclusive, so each further page begins with the key already
 * printed, which is skipped. The listing is therefore not one snapshot when it
 * spans pages (keys written meanwhile may or may not appear), which is the
 * usual price of paging.
 *
 * incr sends kvd's KVdb-style PATCH body "+N"/"-N" and prints the new value.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_LS_PAGE 1000

static const char ls_about[] =
    "List keys in byte order, one per line (all of them unless --limit).\n";

typedef struct ls_state {
    uint64_t limit;
    bool limit_given;
    bool values;
} ls_state;

/* The bytes of a listed key or value: a JSON string, or {"base64": ...}
 * (kvd's form for bytes that are not UTF-8; "value_base64" also accepted);
 * other JSON (a number) as its text; null as nothing. Returns 0 or -1. */
static int item_bytes(json_t *v, kv_buf *out)
{
    kv_buf_reset(out);
    if (json_is_string(v))
        return kv_buf_append(out, json_string_value(v), json_string_length(v));
    json_t *b64 = json_object_get(v, "base64");
    if (!b64)
        b64 = json_object_get(v, "value_base64");
    if (json_is_string(b64))
        return kv_base64_decode(out, json_string_value(b64), json_string_length(b64));
    if (!v || json_is_null(v))
        return kv_buf_append(out, "", 0);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    int rc = text ? kv_buf_append(out, text, strlen(text)) : -1;
    free(text);
    return rc;
}

static int ls_page(kv_ctx *ctx, const char *prefix, const ls_state *st, const kv_buf *start,
                   size_t want, json_t **items)
{
    kv_buf path = {0};
    int rc = 0;
    if (kv_buf_printf(&path, "/%s/?format=json&limit=%zu%s", ctx->bucket, want,
                      st->values ? "&values=true" : "") != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    if (rc == 0 && prefix && *prefix) {
        kv_buf_printf(&path, "&prefix=");
        rc = kv_buf_append_escaped(ctx, &path, prefix, strlen(prefix));
    }
    if (rc == 0 && start) {
        kv_buf_printf(&path, "&start=");
        rc = kv_buf_append_escaped(ctx, &path, start->data, start->len);
    }
    if (rc == 0)
        rc = kv_http(ctx, "GET", path.data, NULL, 0, NULL);
    kv_buf_free(&path);
    if (rc != 0)
        return rc;
    if (ctx->status < 200 || ctx->status > 299)
        return kv_http_error(ctx, "list keys", NULL);
    *items = kv_json_body(ctx, "list keys");
    if (!*items)
        return KV_EXIT_SERVER;
    if (!json_is_array(*items)) {
        json_decref(*items);
        *items = NULL;
        return kv_fail(ctx, KV_EXIT_SERVER, "cannot list keys: kvd's answer is not a JSON array");
    }
    return 0;
}

int kv_cmd_ls(kv_ctx *ctx, int argc, char **argv)
{
    ls_state st = {0};
    const rcu_opt opts[] = {
        {"limit", 'n', RCU_OPT_INT, &st.limit, sizeof st.limit, .min = 1, .max = INT64_MAX,
         .seen = &st.limit_given, .flags = RCU_OPT_NODEFAULT,
         .help = "at most N keys (1 or more, as kvd's limit; default: all)"},
        {"values", 'v', RCU_OPT_BOOL, &st.values, .help = "print 'k: value' lines"},
        {0},
    };
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, opts, "[PREFIX] [--limit N] [--values]", ls_about);
    if (rc >= 0)
        return rc;
    if (argc - first > 1)
        return kv_usage_error(ctx, "at most one PREFIX (got '%s' too)", argv[first + 1]);
    const char *prefix = argc - first == 1 ? argv[first] : NULL;
    kv_buf last = {0}, key = {0}, value = {0}; /* last: the last key printed */
    bool have_last = false;
    uint64_t printed = 0;
    rc = 0;
    for (;;) {
        /* one more than needed after the first page: it starts with `last` */
        uint64_t want64 = !st.limit_given ? KV_LS_PAGE : st.limit - printed + (have_last ? 1 : 0);
        size_t want = want64 < KV_LS_PAGE ? (size_t)want64 : KV_LS_PAGE;
        json_t *items = NULL;
        if ((rc = ls_page(ctx, prefix, &st, have_last ? &last : NULL, want, &items)) != 0)
            break;
        size_t got = json_array_size(items), fresh = 0;
        for (size_t i = 0; i < got && rc == 0; i++) {
            json_t *item = json_array_get(items, i);
            if (item_bytes(json_is_array(item) ? json_array_get(item, 0) : item, &key) != 0 ||
                (st.values && item_bytes(json_array_get(item, 1), &value) != 0)) {
                rc = kv_fail(ctx, KV_EXIT_SERVER, "cannot list keys: bad item in kvd's answer");
                break;
            }
            if (have_last && key.len == last.len && memcmp(key.data, last.data, key.len) == 0)
                continue;
            if (st.limit_given && printed >= st.limit)
                break;
            if (kv_write_stdout(key.data, key.len) != 0 ||
                (st.values &&
                 (kv_write_stdout(": ", 2) != 0 || kv_write_stdout(value.data, value.len) != 0)) ||
                kv_write_stdout("\n", 1) != 0)
                rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
            printed++;
            fresh++;
            kv_buf_reset(&last);
            if (kv_buf_append(&last, key.data, key.len) != 0)
                rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
            have_last = true;
        }
        json_decref(items);
        if (rc != 0 || got < want || fresh == 0 || (st.limit_given && printed >= st.limit))
            break;
    }
    kv_buf_free(&last);
    kv_buf_free(&key);
    kv_buf_free(&value);
    return rc == 0 ? kv_finish_stdout(ctx) : rc;
}

/* ----------------------------------------------------------------- incr */

static const char incr_about[] = "Atomically add BY (default 1; may be negative or a decimal\n"
                                 "fraction) to the number stored at k, creating it at 0 if\n"
                                 "absent, and print the new value.\n";

static bool is_number(const char *s)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    (void)strtod(s, &end);
    return !*end && errno == 0 && strspn(s, "+-0123456789.eE") == strlen(s);
}

int kv_cmd_incr(kv_ctx *ctx, int argc, char **argv)
{
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, NULL, "k [BY]", incr_about);
    if (rc >= 0)
        return rc;
    int n = argc - first;
    if (n < 1 || n > 2)
        return kv_usage_error(ctx, n < 1 ? "no key given (see --help)"
                                         : "too many arguments: kv incr k [BY]");
    const char *key = argv[first];
    const char *by = n == 2 ? argv[first + 1] : "1";
    if (!is_number(by))
        return kv_usage_error(ctx, "BY '%s' is not a number", by);
    kv_buf path = {0}, body = {0}, what = {0};
    rc = kv_key_path(ctx, &path, key);
    if (rc == 0 && kv_buf_printf(&body, "%s%s", by[0] == '-' || by[0] == '+' ? "" : "+", by) != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    if (rc == 0)
        rc = kv_http(ctx, "PATCH", path.data, body.data, body.len, "text/plain");
    if (rc == 0 && (ctx->status < 200 || ctx->status > 299)) {
        char label[KV_LABEL_MAX];
        kv_buf_printf(&what, "increment key '%s'", kv_key_label(key, label));
        rc = kv_http_error(ctx, what.data, NULL);
    } else if (rc == 0) {
        size_t len = ctx->body.len;
        if (kv_write_stdout(ctx->body.data, len) != 0 ||
            ((len == 0 || ctx->body.data[len - 1] != '\n') && kv_write_stdout("\n", 1) != 0))
            rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
        else
            rc = kv_finish_stdout(ctx);
    }
    kv_buf_free(&path);
    kv_buf_free(&body);
    kv_buf_free(&what);
    return rc;
}
