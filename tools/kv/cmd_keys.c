/*
 * cmd_keys.c — the key commands of kv: set, get, del, ls, incr.
 *
 * One key maps to the plain key route (PUT/GET/DELETE /:bucket/:key), which
 * carries raw bytes both ways. Several keys map to one atomic batch
 * (POST /:bucket/), so a multi-key set or delete applies entirely or not at
 * all and a multi-key get is one consistent read. Batch JSON can only carry
 * text, so a value that is not UTF-8 (or holds a NUL byte) is sent as
 * "value_base64" — an extension of the batch "set" op that mirrors the
 * "value_base64" kvd already uses in get results.
 *
 * ls pages through GET /:bucket/ with start=<last key> (inclusive, so the
 * first item of each further page is the last one already printed and is
 * skipped); this lists any number of keys whatever page size kvd caps.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv_pair {
    const char *key;
    kv_buf value;
} kv_pair;

/* ------------------------------------------------------------------ set */

static const char set_about[] =
    "Set one key, or several atomically (all or none).\n"
    "  k=v        the value is the literal text v\n"
    "  k=@FILE    the value is the content of FILE (binary-safe); k=@@x sets the literal '@x'\n"
    "  k=-        the value is read from stdin (at most one key)\n"
    "Prints 'Key set' / 'Keys set'.\n";

static const char setnx_about[] =
    "Set keys only if they are absent: one key, or several atomically (if any\n"
    "is present, none is set). k=v, k=@FILE and k=- as for kv set. Prints\n"
    "'Key set' / 'Keys set'; exit 6 when a key exists.\n";

typedef struct set_state {
    uint64_t ttl; /* seconds; 0: no expiry */
    bool ttl_given;
    bool if_absent;       /* --if-absent, kv setnx */
    const char *if_match; /* --if-match ETAG */
} set_state;

static int parse_assignment(kv_ctx *ctx, char *arg, kv_pair *pair, bool *stdin_used)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return kv_usage_error(ctx, "'%s' is not k=v (or k=@file, k=-)", arg);
    *eq = '\0';
    pair->key = arg;
    const char *v = eq + 1;
    if (strcmp(v, "-") == 0) {
        if (*stdin_used)
            return kv_usage_error(ctx, "only one key can take its value from stdin");
        *stdin_used = true;
        return kv_read_file(ctx, "-", &pair->value);
    }
    if (v[0] == '@' && v[1] != '@') {
        if (!v[1])
            return kv_usage_error(ctx, "'%s=@' names no file", arg);
        return kv_read_file(ctx, v + 1, &pair->value);
    }
    if (v[0] == '@')
        v++; /* "@@x" is the literal "@x" */
    if (kv_buf_append(&pair->value, v, strlen(v)) != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    return 0;
}

/* The key named by a failed batch's "op" index, for the message. */
static const char *failed_key(kv_ctx *ctx, char **keys, size_t n)
{
    json_t *root = json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, 0, NULL);
    json_int_t i = json_integer_value(json_object_get(root, "op"));
    bool known = json_is_integer(json_object_get(root, "op")) && i >= 0 && (size_t)i < n;
    json_decref(root);
    return known ? keys[i] : NULL;
}

/* POST the batch OPS; on 2xx *RESULTS (caller decrefs) gets the results array. */
static int run_batch(kv_ctx *ctx, json_t *ops, char **keys, size_t n, const char *verb,
                     json_t **results)
{
    json_t *req = json_pack("{s:O}", "ops", ops);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    kv_buf path = {0};
    int rc = kv_buf_printf(&path, "/%s/", ctx->bucket) == 0
                 ? kv_http(ctx, "POST", path.data, text, strlen(text), "application/json")
                 : kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    free(text);
    kv_buf_free(&path);
    if (rc != 0)
        return rc;
    if (ctx->status < 200 || ctx->status > 299) {
        const char *key = failed_key(ctx, keys, n);
        const char *nothing_applied = strcmp(verb, "get") ? " (nothing was applied)" : "";
        char label[KV_LABEL_MAX];
        kv_buf what = {0};
        if (key)
            kv_buf_printf(&what, "%s key '%s'%s", verb, kv_key_label(key, label), nothing_applied);
        else
            kv_buf_printf(&what, "%s %zu keys%s", verb, n, nothing_applied);
        rc = kv_http_error(ctx, what.data ? what.data : verb, NULL);
        kv_buf_free(&what);
        return rc;
    }
    json_t *root = kv_json_body(ctx, verb);
    json_t *arr = json_object_get(root, "results");
    if (!json_is_array(arr) || json_array_size(arr) != n) {
        json_decref(root);
        return kv_fail(ctx, KV_EXIT_SERVER, "cannot %s: kvd's batch answer has no %zu results",
                       verb, n);
    }
    *results = json_incref(arr);
    json_decref(root);
    return 0;
}

/* One OP ("get" or "delete") per key, as one batch. JSON strings carry text,
 * so a key that is not UTF-8 must go alone (its own request, by path). */
static int run_key_batch(kv_ctx *ctx, char **keys, size_t n, const char *op, json_t **results)
{
    json_t *ops = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!kv_is_text(keys[i], strlen(keys[i]))) {
            json_decref(ops);
            return kv_usage_error(ctx, "key '%s' is not UTF-8: %s it alone", keys[i], op);
        }
        json_array_append_new(ops, json_pack("{s:s}", op, keys[i]));
    }
    int rc = run_batch(ctx, ops, keys, n, op, results);
    json_decref(ops);
    return rc;
}

static int set_one(kv_ctx *ctx, kv_pair *p, const set_state *st)
{
    char query[32] = "";
    if (st->ttl_given)
        snprintf(query, sizeof query, "?ttl=%llu", (unsigned long long)st->ttl);
    ctx->if_match = st->if_match;
    ctx->if_none_match = st->if_absent ? "*" : NULL;
    int rc = kv_key_call(ctx, "PUT", p->key, query, p->value.data ? p->value.data : "",
                         p->value.len, NULL, "set", false);
    ctx->if_match = ctx->if_none_match = NULL;
    if (rc == 0)
        puts("Key set");
    return rc;
}

static int set_many(kv_ctx *ctx, kv_pair *pairs, char **keys, size_t n, const set_state *st)
{
    json_t *ops = json_array();
    kv_buf b64 = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        kv_pair *p = &pairs[i];
        if (!kv_is_text(p->key, strlen(p->key))) {
            rc = kv_usage_error(ctx, "key '%s' is not UTF-8: set it alone (one key per call)",
                                p->key);
            break;
        }
        json_t *op;
        if (kv_is_text(p->value.data, p->value.len)) {
            op = json_pack("{s:s, s:s#}", "set", p->key, "value", p->value.data, p->value.len);
        } else {
            kv_buf_reset(&b64);
            op = kv_base64_encode(&b64, p->value.data, p->value.len) == 0
                     ? json_pack("{s:s, s:s}", "set", p->key, "value_base64", b64.data)
                     : NULL;
        }
        if (op && st->ttl_given)
            json_object_set_new(op, "ttl", json_integer((json_int_t)st->ttl));
        if (op && st->if_absent)
            json_object_set_new(op, "if_absent", json_true());
        if (!op || json_array_append_new(ops, op) != 0)
            rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    }
    kv_buf_free(&b64);
    json_t *results = NULL;
    if (rc == 0)
        rc = run_batch(ctx, ops, keys, n, "set", &results);
    json_decref(results);
    json_decref(ops);
    if (rc == 0)
        puts("Keys set");
    return rc;
}

/* kv set and kv setnx (IF_ABSENT from the start) */
static int set_command(kv_ctx *ctx, int argc, char **argv, bool setnx)
{
    set_state st = {.if_absent = setnx};
    const rcu_opt opts[] = {
        {"ttl", 0, RCU_OPT_DURATION, &st.ttl, sizeof st.ttl, .unit_ms = 1000, .store_ms = 1000,
         .max = INT64_MAX / 1000, .seen = &st.ttl_given, .flags = RCU_OPT_NODEFAULT,
         .help = "expire the keys after this: 90, 30s, 10m, 2h, 7d; 0 means never (default: the "
                 "bucket's default TTL)"},
        {"if-absent", 0, RCU_OPT_BOOL, &st.if_absent,
         .help = "set only keys that are absent; if one is present nothing is set (exit 6)"},
        {"if-match", 0, RCU_OPT_STRING, &st.if_match, .meta = "ETAG", .flags = RCU_OPT_NODEFAULT,
         .help = "set only if the key's ETag (kv get --etag) is still ETAG, else exit 6; one key"},
        {0},
    };
    const rcu_opt nx_opts[] = {opts[0], {0}}; /* setnx: --ttl only */
    const rcu_opt *shown = setnx ? nx_opts : opts;
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, shown,
                              setnx ? "[--ttl DURATION] k=v [k=v ...]"
                                    : "[--ttl DURATION] [--if-absent | --if-match ETAG] k=v "
                                      "[k=v ...]",
                              setnx ? setnx_about : set_about);
    if (rc >= 0)
        return rc;
    if (st.if_match && (st.if_absent || argc - first != 1))
        return kv_usage_error(ctx, st.if_absent ? "--if-match and --if-absent exclude each other"
                                                : "--if-match takes exactly one key");
    size_t n = (size_t)(argc - first);
    if (n == 0)
        return kv_usage_error(ctx, "nothing to set: give k=v (see --help)");
    kv_pair *pairs = calloc(n, sizeof *pairs);
    char **keys = calloc(n, sizeof *keys);
    if (!pairs || !keys) {
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
        goto done;
    }
    bool stdin_used = false;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = parse_assignment(ctx, argv[first + (int)i], &pairs[i], &stdin_used);
        keys[i] = (char *)pairs[i].key;
    }
    if (rc == 0)
        rc = n == 1 ? set_one(ctx, &pairs[0], &st) : set_many(ctx, pairs, keys, n, &st);
    if (rc == 0)
        rc = kv_finish_stdout(ctx);
done:
    for (size_t i = 0; pairs && i < n; i++)
        kv_buf_free(&pairs[i].value);
    free(pairs);
    free(keys);
    return rc;
}

int kv_cmd_set(kv_ctx *ctx, int argc, char **argv)
{
    return set_command(ctx, argc, argv, false);
}

int kv_cmd_setnx(kv_ctx *ctx, int argc, char **argv)
{
    return set_command(ctx, argc, argv, true);
}

/* ------------------------------------------------------------------ get */

static const char get_about[] =
    "One key: its raw value on stdout (binary-safe; a newline is added only when\n"
    "stdout is a terminal). Several keys: one consistent read, printed as\n"
    "'k: value' lines. Exit 1 if any key is absent (after printing the others).\n";

/* Join the keys named in ABSENT ("'a', 'b'") for a one-line message. */
static void absent_message(kv_ctx *ctx, char **keys, const bool *absent, size_t n, size_t count)
{
    kv_buf list = {0};
    for (size_t i = 0; i < n; i++)
        if (absent[i]) {
            char label[KV_LABEL_MAX];
            kv_buf_printf(&list, "%s'%s'", list.len ? ", " : "", kv_key_label(keys[i], label));
        }
    kv_fail(ctx, KV_EXIT_ABSENT, "%s %s not found", count == 1 ? "key" : "keys",
            list.data ? list.data : "");
    kv_buf_free(&list);
}

/* Print VALUE (a batch result's "value"/"value_base64") after "k: ". */
static int print_json_value(kv_ctx *ctx, json_t *result, const char *key)
{
    json_t *v = json_object_get(result, "value");
    json_t *b64 = json_object_get(result, "value_base64");
    int rc = 0;
    if (json_is_string(v)) {
        rc = kv_write_stdout(json_string_value(v), json_string_length(v));
    } else if (json_is_string(b64)) {
        kv_buf raw = {0};
        if (kv_base64_decode(&raw, json_string_value(b64), json_string_length(b64)) != 0)
            rc = kv_fail(ctx, KV_EXIT_SERVER, "kvd sent bad base64 for key '%s'", key);
        else
            rc = kv_write_stdout(raw.data, raw.len);
        kv_buf_free(&raw);
    } else if (v) {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        rc = text ? kv_write_stdout(text, strlen(text)) : -1;
        free(text);
    }
    return rc;
}

int kv_print_value(kv_ctx *ctx)
{
    /* a terminal gets a final newline (the prompt stays on its own line); a
     * pipe or file gets the value byte for byte */
    size_t len = ctx->body.len;
    bool add_nl = kv_stdout_is_tty() && (len == 0 || ctx->body.data[len - 1] != '\n');
    if (kv_write_stdout(ctx->body.data, len) != 0 || (add_nl && kv_write_stdout("\n", 1) != 0))
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
    return kv_finish_stdout(ctx);
}

int kv_cmd_get(kv_ctx *ctx, int argc, char **argv)
{
    bool etag = false;
    const rcu_opt opts[] = {
        {"etag", 0, RCU_OPT_BOOL, &etag,
         .help = "print the key's ETag instead of its value (for kv set --if-match); one key"},
        {0},
    };
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, opts, "[--etag] k [k ...]", get_about);
    if (rc >= 0)
        return rc;
    size_t n = (size_t)(argc - first);
    char **keys = argv + first;
    if (n == 0)
        return kv_usage_error(ctx, "no key given (see --help)");
    if (etag && n > 1)
        return kv_usage_error(ctx, "--etag takes exactly one key");
    if (etag) {
        char tag[128];
        rc = kv_key_call(ctx, "HEAD", keys[0], NULL, NULL, 0, NULL, "get", true);
        if (rc == 0 && kv_header(ctx, "ETag", tag, sizeof tag) != 0)
            return kv_fail(ctx, KV_EXIT_SERVER, "kvd's answer has no ETag");
        if (rc == 0)
            puts(tag);
        return rc == 0 ? kv_finish_stdout(ctx) : rc;
    }
    if (n == 1) {
        rc = kv_key_call(ctx, "GET", keys[0], NULL, NULL, 0, NULL, "get", true);
        return rc == 0 ? kv_print_value(ctx) : rc;
    }
    json_t *results = NULL;
    rc = run_key_batch(ctx, keys, n, "get", &results);
    if (rc != 0)
        return rc;
    bool *absent = calloc(n, sizeof *absent);
    size_t absent_count = 0;
    for (size_t i = 0; i < n && absent && rc == 0; i++) {
        json_t *r = json_array_get(results, i);
        json_t *v = json_object_get(r, "value");
        if (!json_object_get(r, "value_base64") && (!v || json_is_null(v))) {
            absent[i] = true;
            absent_count++;
            continue;
        }
        if (kv_write_stdout(keys[i], strlen(keys[i])) != 0 || kv_write_stdout(": ", 2) != 0 ||
            print_json_value(ctx, r, keys[i]) != 0 || kv_write_stdout("\n", 1) != 0)
            rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
    }
    if (!absent)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    if (rc == 0)
        rc = kv_finish_stdout(ctx);
    if (rc == 0 && absent_count) {
        absent_message(ctx, keys, absent, n, absent_count);
        rc = KV_EXIT_ABSENT;
    }
    free(absent);
    json_decref(results);
    return rc;
}

/* ------------------------------------------------------------------ del */

static const char del_about[] =
    "Delete one key, or several atomically. Exit 1 if a key was absent (the\n"
    "others are still deleted) unless -f/--force is given.\n";

int kv_cmd_del(kv_ctx *ctx, int argc, char **argv)
{
    bool force = false;
    const char *if_match = NULL;
    const rcu_opt opts[] = {
        {"force", 'f', RCU_OPT_BOOL, &force, .help = "an absent key is no error"},
        {"if-match", 0, RCU_OPT_STRING, &if_match, .meta = "ETAG", .flags = RCU_OPT_NODEFAULT,
         .help = "delete only if the key's ETag (kv get --etag) is still ETAG, else exit 6; one "
                 "key"},
        {0},
    };
    int first = 1;
    int rc =
        kv_parse_options(ctx, &argc, argv, opts, "[-f] [--if-match ETAG] k [k ...]", del_about);
    if (rc >= 0)
        return rc;
    size_t n = (size_t)(argc - first);
    char **keys = argv + first;
    if (n == 0)
        return kv_usage_error(ctx, "no key given (see --help)");
    if (if_match && n != 1)
        return kv_usage_error(ctx, "--if-match takes exactly one key");
    if (n == 1 && (!force || if_match)) {
        ctx->if_match = if_match;
        rc = kv_key_call(ctx, "DELETE", keys[0], NULL, NULL, 0, NULL, "delete", !force);
        ctx->if_match = NULL;
        return rc;
    }
    json_t *results = NULL;
    rc = run_key_batch(ctx, keys, n, "delete", &results);
    if (rc != 0)
        return rc;
    bool *absent = calloc(n, sizeof *absent);
    size_t absent_count = 0;
    for (size_t i = 0; i < n && absent; i++) {
        json_t *d = json_object_get(json_array_get(results, i), "deleted");
        absent[i] = json_is_false(d);
        absent_count += absent[i];
    }
    if (!absent)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    else if (absent_count && !force) {
        absent_message(ctx, keys, absent, n, absent_count);
        rc = KV_EXIT_ABSENT;
    }
    free(absent);
    json_decref(results);
    return rc;
}
