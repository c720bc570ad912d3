/*
 * cmd_ops.c — kv append, getset and ttl: one key each, through the key
 * route (PATCH with kvd's JSON bodies, and HEAD for the expiry).
 *
 * append and getset send the value as a JSON string, which carries text
 * only: a value that is not UTF-8 is refused before anything is sent.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "k=v" (or k=@FILE, k=-) into KEY and VALUE; the value must be text. */
static int one_assignment(kv_ctx *ctx, int argc, char **argv, const char **key, kv_buf *value)
{
    if (argc != 2)
        return kv_usage_error(
            ctx, argc < 2 ? "give one k=v (see --help)" : "one k=v only (got '%s' too)",
            argc > 2 ? argv[2] : "");
    char *arg = argv[1], *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return kv_usage_error(ctx, "'%s' is not k=v (or k=@file, k=-)", arg);
    *eq = '\0';
    *key = arg;
    const char *v = eq + 1;
    int rc = 0;
    if (strcmp(v, "-") == 0)
        rc = kv_read_file(ctx, "-", value);
    else if (v[0] == '@' && v[1] != '@' && v[1] != '\0')
        rc = kv_read_file(ctx, v + 1, value);
    else if (kv_buf_append(value, v[0] == '@' ? v + 1 : v, strlen(v[0] == '@' ? v + 1 : v)) != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    if (rc == 0 && !kv_is_text(value->data, value->len))
        rc = kv_usage_error(ctx, "the value for '%s' is not UTF-8 text, which this command needs",
                            arg);
    return rc;
}

/* PATCH KEY with {"op": OP, "value": VALUE}; 0 on 2xx. */
static int patch_op(kv_ctx *ctx, const char *op, const char *key, const kv_buf *value,
                    const char *verb)
{
    json_t *req =
        json_pack("{s:s, s:s#}", "op", op, "value", value->data ? value->data : "", value->len);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    int rc =
        kv_key_call(ctx, "PATCH", key, NULL, text, strlen(text), "application/json", verb, false);
    free(text);
    return rc;
}

/* kv append / kv getset: parse "k=v", then PATCH {"op": OP, "value": v}.
 * Returns -1 after a 2xx answer (in ctx; *KEY names the key), else the
 * exit status. */
static int patch_command(kv_ctx *ctx, int argc, char **argv, const char *about, const char *op,
                         const char *verb, const char **key)
{
    int rc = kv_parse_options(ctx, &argc, argv, NULL, "k=v", about);
    if (rc >= 0)
        return rc;
    kv_buf value = {0};
    rc = one_assignment(ctx, argc, argv, key, &value);
    if (rc == 0)
        rc = patch_op(ctx, op, *key, &value, verb);
    kv_buf_free(&value);
    return rc == 0 ? -1 : rc;
}

/* --------------------------------------------------------------- append */

int kv_cmd_append(kv_ctx *ctx, int argc, char **argv)
{
    const char *key = NULL;
    int rc = patch_command(ctx, argc, argv,
                           "Append v (text; k=@FILE and k=- as for kv set) to the value of k,\n"
                           "creating it when absent, and print the new length in bytes.\n",
                           "append", "append to", &key);
    if (rc >= 0)
        return rc;
    printf("%zu\n", ctx->body.len);
    return kv_finish_stdout(ctx);
}

/* --------------------------------------------------------------- getset */

int kv_cmd_getset(kv_ctx *ctx, int argc, char **argv)
{
    const char *key = NULL;
    int rc = patch_command(ctx, argc, argv,
                           "Set k to v (text; k=@FILE and k=- as for kv set) and print the\n"
                           "value it had, as kv get does. Exit 1 when k was absent (it is set\n"
                           "all the same).\n",
                           "getset", "getset", &key);
    if (rc >= 0)
        return rc;
    char prev[16];
    if (kv_header(ctx, "X-Previous", prev, sizeof prev) == 0 && strcmp(prev, "absent") == 0) {
        char label[KV_LABEL_MAX];
        return kv_fail(ctx, KV_EXIT_ABSENT, "key '%s' had no value (it is set now)",
                       kv_key_label(key, label));
    }
    return kv_print_value(ctx);
}

/* ------------------------------------------------------------------ ttl */

int kv_cmd_ttl(kv_ctx *ctx, int argc, char **argv)
{
    bool at = false;
    const rcu_opt opts[] = {
        {"at", 0, RCU_OPT_BOOL, &at, .help = "print the expiry as unix seconds instead"},
        {0},
    };
    int rc = kv_parse_options(ctx, &argc, argv, opts, "[--at] k",
                              "Print the whole seconds until k expires, or -1 when it\n"
                              "never expires. Exit 1 when k is absent.\n");
    if (rc >= 0)
        return rc;
    if (argc != 2)
        return kv_usage_error(
            ctx, argc < 2 ? "no key given (see --help)" : "one key only (got '%s' too)",
            argc > 2 ? argv[2] : "");
    rc = kv_key_call(ctx, "HEAD", argv[1], NULL, NULL, 0, NULL, "read the expiry of", true);
    if (rc != 0)
        return rc;
    char exp[32];
    long long when = -1;
    if (kv_header(ctx, "X-Expires-At", exp, sizeof exp) == 0) {
        char *end;
        errno = 0;
        when = strtoll(exp, &end, 10);
        if (errno || *end || when < 0)
            return kv_fail(ctx, KV_EXIT_SERVER, "kvd sent a malformed X-Expires-At '%s'", exp);
    }
    if (when < 0 || at) {
        printf("%lld\n", when);
    } else {
        /* X-Expires-At is rounded up to a second: whole seconds left, never
         * more than the TTL that was set */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double left = (double)when - ((double)now.tv_sec + now.tv_nsec / 1e9);
        printf("%lld\n", left > 0 ? (long long)left : 0);
    }
    return kv_finish_stdout(ctx);
}
