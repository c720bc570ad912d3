/*
 * cmd_bucket.c — kv bucket create | delete | info | rotate.
 *
 * create is POST / (kvd's admin token as --key when it has one); the others
 * act on the bucket NAME (default: --bucket) with its admin key: DELETE,
 * GET (the policy, no secrets) and PATCH {"rotate_signing_key": true}, which
 * revokes every token issued so far, optionally with "new_keys" to replace
 * the keys of some roles.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_2xx(const kv_ctx *ctx)
{
    return ctx->status >= 200 && ctx->status <= 299;
}

static const char bucket_synopsis[] = "create [NAME] [--json]\n"
                                      "delete NAME\n"
                                      "info [NAME] [--json]\n"
                                      "rotate [NAME] [--keys ROLES] [--json]";
static const char bucket_about[] =
    "create: make a bucket (a random name without NAME) and print its name and\n"
    "        admin key (shown only this once). When kvd runs with\n"
    "        --admin-token-file, --key must be that token.\n"
    "delete: delete the bucket and all its keys.\n"
    "info:   print the bucket's policy (no secrets): created, default TTL,\n"
    "        public permissions, roles with a key, signing key version.\n"
    "rotate: revoke every access token issued so far (a new signing key); with\n"
    "        --keys also replace the keys of those roles (the old ones stop\n"
    "        working) and print the new ones, shown only this once.\n"
    "delete, info and rotate act on NAME (default: --bucket) and need its admin\n"
    "key as --key.\n";

static int bucket_create(kv_ctx *ctx, const char *name, bool json)
{
    char *body = NULL;
    if (name) {
        json_t *req = json_pack("{s:s}", "name", name);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body)
            return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    }
    int rc = kv_http(ctx, "POST", "/", body ? body : "", body ? strlen(body) : 0,
                     body ? "application/json" : NULL);
    free(body);
    if (rc != 0)
        return rc;
    if (ctx->status == 409)
        return kv_fail(ctx, KV_EXIT_REFUSED, "bucket '%s' already exists", name ? name : "?");
    if (ctx->status == 401 || ctx->status == 403) {
        /* kvd's message says why and how to enable creation: shown as is */
        char *why = kv_server_message(ctx);
        rc = kv_fail(ctx, KV_EXIT_AUTH,
                     "cannot create a bucket: kvd at %s refused it%s (HTTP %ld)%s%s", ctx->url,
                     ctx->key ? " with the key given" : " without a credential", ctx->status,
                     why && *why ? ": " : "", why ? why : "");
        free(why);
        return rc;
    }
    if (!is_2xx(ctx))
        return kv_http_error(ctx, "create the bucket", NULL);
    if (json)
        return kv_print_body_json(ctx);
    json_t *root = kv_json_body(ctx, "create the bucket");
    if (!root)
        return KV_EXIT_SERVER;
    const char *bucket = json_string_value(json_object_get(root, "bucket"));
    const char *admin = json_string_value(json_object_get(root, "admin_key"));
    if (!bucket || !admin)
        rc = kv_fail(ctx, KV_EXIT_SERVER, "kvd's answer lacks 'bucket' or 'admin_key'");
    else
        printf("bucket: %s\nadmin key: %s\n", bucket, admin);
    json_decref(root);
    return rc == 0 ? kv_finish_stdout(ctx) : rc;
}

static int bucket_delete(kv_ctx *ctx, const char *name)
{
    ctx->bucket = name; /* for the messages of kv_http_error */
    kv_buf path = {0};
    int rc = kv_buf_printf(&path, "/%s", name) == 0
                 ? kv_http(ctx, "DELETE", path.data, NULL, 0, NULL)
                 : kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    kv_buf_free(&path);
    if (rc != 0)
        return rc;
    if (ctx->status == 404)
        return kv_fail(ctx, KV_EXIT_ABSENT, "no bucket '%s' at %s", name, ctx->url);
    if (!is_2xx(ctx))
        return kv_http_error(ctx, "delete the bucket", NULL);
    return 0;
}

/* "a, b, c" of a JSON array of strings */
static void print_list(const char *label, json_t *arr)
{
    printf("%s:", label);
    for (size_t i = 0; i < json_array_size(arr); i++)
        printf("%s %s", i ? "," : "", json_string_value(json_array_get(arr, i)));
    printf("%s\n", json_array_size(arr) ? "" : " none");
}

static int print_policy(kv_ctx *ctx, json_t *root)
{
    json_t *ttl = json_object_get(root, "default_ttl");
    printf("bucket: %s\n", json_string_value(json_object_get(root, "bucket")));
    json_t *created = json_object_get(root, "created_at");
    if (json_is_integer(created))
        printf("created at: %lld\n", (long long)json_integer_value(created));
    else if (json_is_string(created))
        printf("created at: %s\n", json_string_value(created));
    if (json_is_integer(ttl))
        printf("default ttl: %lld%s\n", (long long)json_integer_value(ttl),
               json_integer_value(ttl) ? "" : " (no expiry)");
    print_list("public", json_object_get(root, "public"));
    print_list("roles with a key", json_object_get(root, "roles"));
    json_t *v = json_object_get(root, "signing_key_version");
    if (json_is_integer(v))
        printf("signing key version: %lld\n", (long long)json_integer_value(v));
    json_t *keys = json_object_get(root, "new_keys");
    const char *role;
    json_t *key;
    json_object_foreach(keys, role, key) printf("new %s key: %s\n", role, json_string_value(key));
    return kv_finish_stdout(ctx);
}

/* GET or PATCH /NAME: print the policy kvd answers */
static int bucket_policy(kv_ctx *ctx, const char *name, const char *method, const char *body,
                         const char *verb, bool json)
{
    ctx->bucket = name; /* for the messages of kv_http_error */
    kv_buf path = {0};
    int rc = kv_buf_printf(&path, "/%s", name) == 0
                 ? kv_http(ctx, method, path.data, body, body ? strlen(body) : 0,
                           body ? "application/json" : NULL)
                 : kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    kv_buf_free(&path);
    if (rc != 0)
        return rc;
    if (ctx->status == 404)
        return kv_fail(ctx, KV_EXIT_NO_BUCKET, "no bucket '%s' at %s", name, ctx->url);
    if (!is_2xx(ctx))
        return kv_http_error(ctx, verb, NULL);
    if (json)
        return kv_print_body_json(ctx);
    json_t *root = kv_json_body(ctx, verb);
    if (!root)
        return KV_EXIT_SERVER;
    rc = print_policy(ctx, root);
    json_decref(root);
    return rc;
}

static int bucket_rotate(kv_ctx *ctx, const char *name, const char *roles, bool json)
{
    static const char *const known[] = {"read", "write", "delete", "enumerate", "admin"};
    json_t *req = json_pack("{s:b}", "rotate_signing_key", 1);
    json_t *list = json_array();
    for (const char *p = roles; p && *p;) {
        size_t len = strcspn(p, ",");
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++)
            ok = strlen(known[i]) == len && strncmp(known[i], p, len) == 0;
        if (!ok) {
            json_decref(req);
            json_decref(list);
            return kv_usage_error(
                ctx, "--keys: unknown role '%.*s' (read, write, delete, enumerate, admin)",
                (int)len, p);
        }
        json_array_append_new(list, json_stringn(p, len));
        p += len + (p[len] == ',');
    }
    if (json_array_size(list))
        json_object_set(req, "new_keys", list);
    json_decref(list);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    int rc = bucket_policy(ctx, name, "PATCH", body, "rotate the bucket's keys", json);
    free(body);
    return rc;
}

int kv_cmd_bucket(kv_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    const char *roles = NULL;
    const rcu_opt opts[] = {
        KV_JSON_OPT(json),
        {"keys", 0, RCU_OPT_STRING, &roles, .meta = "ROLES", .flags = RCU_OPT_NODEFAULT,
         .help = "rotate: also replace the keys of these roles (comma-separated: read, write, "
                 "delete, enumerate, admin)"},
        {0},
    };
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, opts, bucket_synopsis, bucket_about);
    if (rc >= 0)
        return rc;
    int n = argc - first;
    const char *sub = n > 0 ? argv[first] : NULL;
    const char *name = n > 1 ? argv[first + 1] : NULL;
    if (!sub)
        return kv_usage_error(ctx,
                              "missing subcommand: create, delete, info or rotate (see --help)");
    if (roles && strcmp(sub, "rotate") != 0)
        return kv_usage_error(ctx, "--keys goes with rotate only");
    if (n > 2)
        return kv_usage_error(ctx, "unexpected argument '%s'", argv[first + 2]);
    if (name && !rcu_bucket_name_valid(name, strlen(name)))
        return kv_usage_error(ctx, "invalid bucket name '%s' (1-64 of A-Z a-z 0-9 _ -)", name);
    if (strcmp(sub, "create") == 0)
        return bucket_create(ctx, name, json);
    if (strcmp(sub, "delete") == 0) {
        if (!name)
            return kv_usage_error(ctx, "bucket delete needs the bucket NAME");
        return bucket_delete(ctx, name);
    }
    if (strcmp(sub, "info") == 0)
        return bucket_policy(ctx, name ? name : ctx->bucket, "GET", NULL,
                             "read the bucket's policy", json);
    if (strcmp(sub, "rotate") == 0)
        return bucket_rotate(ctx, name ? name : ctx->bucket, roles, json);
    return kv_usage_error(ctx, "unknown subcommand '%s': create, delete, info or rotate", sub);
}
