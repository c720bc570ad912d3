/*
 * cmd_admin.c — kv's non-key commands: metrics, token, serve.
 *
 * Each is one or two requests with a fixed JSON shape from docs/HTTP.md; the
 * human-readable output follows the KVD seed where it shows one (metrics) and
 * is line-oriented elsewhere, with --json printing kvd's own answer for
 * scripts. `serve` is not a client at all: it execs kvd (found next to the kv
 * binary, in the build tree's server/ folder, or on PATH) so that signals and
 * the exit status are kvd's own.
 */
#include "kv.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool is_2xx(const kv_ctx *ctx)
{
    return ctx->status >= 200 && ctx->status <= 299;
}

/* -------------------------------------------------------------- metrics */

static const char metrics_about[] =
    "Print keys stored, value bytes stored (the byte length of the live values)\n"
    "and the set/get/delete operation counts since kvd started. --json prints\n"
    "kvd's JSON (GET /metrics?format=json), which has more figures.\n";

int kv_cmd_metrics(kv_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    const rcu_opt opts[] = {KV_JSON_OPT(json), {0}};
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, opts, "[--json]", metrics_about);
    if (rc >= 0)
        return rc;
    if (first < argc)
        return kv_usage_error(ctx, "unexpected argument '%s'", argv[first]);
    if ((rc = kv_http(ctx, "GET", "/metrics?format=json", NULL, 0, NULL)) != 0)
        return rc;
    if (!is_2xx(ctx))
        return kv_http_error(ctx, "read metrics", NULL);
    if (json)
        return kv_print_body_json(ctx);
    json_t *root = kv_json_body(ctx, "read metrics");
    if (!root)
        return KV_EXIT_SERVER;
    static const struct {
        const char *field, *label;
    } lines[] = {{"keys", "Keys Stored"},
                 {"bytes", "Bytes Stored (Values)"},
                 {"set", "Set Operations"},
                 {"get", "Get Operations"},
                 {"delete", "Delete Operations"}};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0] && rc == 0; i++) {
        json_t *v = json_object_get(root, lines[i].field);
        if (!json_is_integer(v))
            rc = kv_fail(ctx, KV_EXIT_SERVER, "kvd's metrics lack the number '%s'", lines[i].field);
        else
            printf("%s: %lld\n", lines[i].label, (long long)json_integer_value(v));
    }
    json_decref(root);
    return rc == 0 ? kv_finish_stdout(ctx) : rc;
}

/* ---------------------------------------------------------------- token */

static const char token_about[] =
    "Issue an access token for the bucket (needs its admin key as --key) and\n"
    "print it.\n";

typedef struct token_state {
    const char *prefix;
    const char *perms;
    uint64_t ttl;
    bool ttl_given;
    bool json;
} token_state;

static int parse_perms(kv_ctx *ctx, const char *list, json_t *out)
{
    static const char *const known[] = {"read", "write", "delete", "enumerate", "admin"};
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++)
            ok = strlen(known[i]) == len && strncmp(known[i], p, len) == 0;
        if (!ok)
            return kv_usage_error(ctx,
                                  "--perm: unknown permission '%.*s' (read, write, delete, "
                                  "enumerate, admin)",
                                  (int)len, p);
        json_array_append_new(out, json_stringn(p, len));
        p += len;
        if (*p == ',')
            p++;
    }
    if (json_array_size(out) == 0)
        return kv_usage_error(ctx, "--perm names no permission");
    return 0;
}

int kv_cmd_token(kv_ctx *ctx, int argc, char **argv)
{
    token_state st = {.prefix = ""};
    const rcu_opt opts[] = {
        {"perm", 0, RCU_OPT_STRING, &st.perms, .meta = "PERMS", .flags = RCU_OPT_NODEFAULT,
         .help = "comma-separated: read, write, delete, enumerate, admin (required)"},
        {"prefix", 0, RCU_OPT_STRING, &st.prefix, .meta = "P", .def = "all keys",
         .help = "confine the token to keys starting with P"},
        {"ttl", 0, RCU_OPT_DURATION, &st.ttl, sizeof st.ttl, .min = 1, .max = INT64_MAX / 1000,
         .unit_ms = 1000, .store_ms = 1000, .seen = &st.ttl_given, .def = "kvd's, 1h",
         .help = "lifetime: 90, 30s, 10m, 2h, 7d"},
        KV_JSON_OPT(st.json),
        {0},
    };
    int first = 1;
    int rc =
        kv_parse_options(ctx, &argc, argv, opts,
                         "create --perm PERMS [--prefix P] [--ttl DURATION] [--json]", token_about);
    if (rc >= 0)
        return rc;
    if (first >= argc || strcmp(argv[first], "create") != 0)
        return kv_usage_error(
            ctx, first < argc ? "unknown subcommand '%s': create" : "missing subcommand: create%s",
            first < argc ? argv[first] : "");
    if (first + 1 < argc)
        return kv_usage_error(ctx, "unexpected argument '%s'", argv[first + 1]);
    if (!st.perms)
        return kv_usage_error(ctx, "--perm is required (e.g. --perm read,write)");
    json_t *req = json_pack("{s:s, s:[]}", "prefix", st.prefix, "permissions");
    if (!req)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    rc = parse_perms(ctx, st.perms, json_object_get(req, "permissions"));
    if (rc == 0 && st.ttl_given)
        json_object_set_new(req, "ttl", json_integer((json_int_t)st.ttl));
    char *body = rc == 0 ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (rc != 0)
        return rc;
    kv_buf path = {0};
    if (!body || kv_buf_printf(&path, "/%s/tokens/", ctx->bucket) != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    else
        rc = kv_http(ctx, "POST", path.data, body, strlen(body), "application/json");
    free(body);
    kv_buf_free(&path);
    if (rc != 0)
        return rc;
    if (!is_2xx(ctx))
        return kv_http_error(ctx, "create a token", NULL);
    if (st.json)
        return kv_print_body_json(ctx);
    json_t *root = kv_json_body(ctx, "create a token");
    if (!root)
        return KV_EXIT_SERVER;
    const char *token = json_string_value(json_object_get(root, "token"));
    if (!token)
        rc = kv_fail(ctx, KV_EXIT_SERVER, "kvd's answer lacks 'token'");
    else
        puts(token);
    json_decref(root);
    return rc == 0 ? kv_finish_stdout(ctx) : rc;
}

/* ---------------------------------------------------------------- serve */

static const char serve_usage[] =
    "usage: kv serve [kvd options]\n"
    "\n"
    "Run kvd in the foreground for local development: '--default-bucket default'\n"
    "(an open bucket) and '--allow-anonymous-buckets' (`kv bucket create` works\n"
    "without a credential), then the options given, which pass through to kvd\n"
    "(see kvd --help; '--allow-anonymous-buckets=false' turns creation off again,\n"
    "'--admin-token-file FILE' makes it need that token). kvd is looked up next\n"
    "to kv, in ../server/, then on PATH.\n";

int kv_cmd_serve(kv_ctx *ctx, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(serve_usage, stdout);
            return 0;
        }
    }
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    static char default_bucket_flag[] = "--default-bucket", default_bucket[] = "default",
                anonymous_flag[] = "--allow-anonymous-buckets";
    args[1] = default_bucket_flag;
    args[2] = default_bucket;
    args[3] = anonymous_flag; /* given first: the user's own options win */
    for (int i = 1; i < argc; i++)
        args[i + 3] = argv[i];

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        const char *dir = dirname(self);
        const char *candidates[] = {"%s/kvd", "%s/../server/kvd"};
        for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
            char path[PATH_MAX + 16];
            snprintf(path, sizeof path, candidates[i], dir);
            if (access(path, X_OK) == 0) {
                args[0] = path;
                execv(path, args);
                kv_fail(ctx, KV_EXIT_LOCAL, "cannot run %s: %s", path, strerror(errno));
                free(args);
                return KV_EXIT_LOCAL;
            }
        }
    }
    static char kvd_name[] = "kvd";
    args[0] = kvd_name;
    execvp("kvd", args);
    int err = errno;
    free(args);
    return kv_fail(ctx, KV_EXIT_LOCAL, "cannot run kvd (not next to kv nor on PATH): %s",
                   strerror(err));
}
