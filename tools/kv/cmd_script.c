/*
 * cmd_script.c — kv script put/get/run/ls/rm over /:bucket/scripts/.
 *
 * put/get/ls/rm need the bucket's admin key; run needs no permission of its
 * own (the script runs in the caller's scope). `run` sends its k=v arguments
 * as an application/x-www-form-urlencoded body, which kvd hands to the
 * script as kv.args, and copies the script's answer to stdout byte for byte.
 * A script may choose its own status with kv.status(); a non-2xx answer that
 * is not kvd's JSON error object is therefore the script's output, printed
 * to stdout, with the status reported on stderr.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char script_synopsis[] = "put NAME FILE\n"
                                      "get NAME\n"
                                      "run NAME [k=v...]\n"
                                      "ls\n"
                                      "rm NAME";
static const char script_about[] =
    "put: store Lua source (FILE '-' = stdin); get: print the source; run: run\n"
    "it (k=v become kv.args) and print its output; ls: list script names;\n"
    "rm: remove it. put, get, ls and rm need the bucket's admin key (--key).\n";

static int script_path(kv_ctx *ctx, kv_buf *path, const char *name, const char *suffix)
{
    if (kv_buf_printf(path, "/%s/scripts/", ctx->bucket) != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    int rc = name ? kv_buf_append_escaped(ctx, path, name, strlen(name)) : 0;
    if (rc == 0 && suffix && kv_buf_append(path, suffix, strlen(suffix)) != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    return rc;
}

static bool is_json_error(kv_ctx *ctx)
{
    json_t *root = json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, 0, NULL);
    bool yes = json_is_object(root) && json_is_string(json_object_get(root, "error"));
    json_decref(root);
    return yes;
}

static int script_error(kv_ctx *ctx, const char *verb, const char *name)
{
    kv_buf what = {0}, absent = {0};
    kv_buf_printf(&what, "%s script '%s'", verb, name ? name : "");
    kv_buf_printf(&absent, "script '%s'", name ? name : "");
    int rc = kv_http_error(ctx, name ? what.data : "list scripts", name ? absent.data : NULL);
    kv_buf_free(&what);
    kv_buf_free(&absent);
    return rc;
}

static int write_body(kv_ctx *ctx)
{
    if (kv_write_stdout(ctx->body.data, ctx->body.len) != 0)
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
    return kv_finish_stdout(ctx);
}

static int script_ls(kv_ctx *ctx)
{
    kv_buf path = {0};
    int rc = script_path(ctx, &path, NULL, NULL);
    if (rc == 0)
        rc = kv_http(ctx, "GET", path.data, NULL, 0, NULL);
    kv_buf_free(&path);
    if (rc != 0)
        return rc;
    if (ctx->status < 200 || ctx->status > 299)
        return script_error(ctx, "list", NULL);
    json_t *root = json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, 0, NULL);
    json_t *names = json_is_object(root) ? json_object_get(root, "scripts") : root;
    if (!json_is_array(names)) {
        json_decref(root);
        return write_body(ctx); /* a text listing, one name per line */
    }
    for (size_t i = 0; i < json_array_size(names); i++) {
        json_t *n = json_array_get(names, i);
        if (json_is_object(n))
            n = json_object_get(n, "name");
        if (json_is_string(n))
            puts(json_string_value(n));
    }
    json_decref(root);
    return kv_finish_stdout(ctx);
}

static int script_run(kv_ctx *ctx, const char *name, int argc, char **argv)
{
    kv_buf path = {0}, form = {0};
    int rc = script_path(ctx, &path, name, "/run");
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i]) {
            rc = kv_usage_error(ctx, "'%s' is not k=v", argv[i]);
            break;
        }
        if (form.len)
            kv_buf_append(&form, "&", 1);
        rc = kv_buf_append_escaped(ctx, &form, argv[i], (size_t)(eq - argv[i]));
        if (rc == 0 && kv_buf_append(&form, "=", 1) != 0)
            rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
        if (rc == 0)
            rc = kv_buf_append_escaped(ctx, &form, eq + 1, strlen(eq + 1));
    }
    if (rc == 0)
        rc = kv_http(ctx, "POST", path.data, form.data ? form.data : "", form.len,
                     "application/x-www-form-urlencoded");
    kv_buf_free(&path);
    kv_buf_free(&form);
    if (rc != 0)
        return rc;
    if (ctx->status >= 200 && ctx->status <= 299)
        return write_body(ctx);
    if (is_json_error(ctx))
        return script_error(ctx, "run", name);
    rc = write_body(ctx);
    return rc ? rc
              : kv_fail(ctx, KV_EXIT_REFUSED, "script '%s' answered HTTP %ld", name, ctx->status);
}

int kv_cmd_script(kv_ctx *ctx, int argc, char **argv)
{
    int first = 1;
    int rc = kv_parse_options(ctx, &argc, argv, NULL, script_synopsis, script_about);
    if (rc >= 0)
        return rc;
    int n = argc - first;
    const char *sub = n > 0 ? argv[first] : NULL;
    const char *name = n > 1 ? argv[first + 1] : NULL;
    if (!sub)
        return kv_usage_error(ctx, "missing subcommand: put, get, run, ls or rm (see --help)");
    if (strcmp(sub, "ls") == 0) {
        if (n > 1)
            return kv_usage_error(ctx, "unexpected argument '%s'", argv[first + 1]);
        return script_ls(ctx);
    }
    bool known =
        !strcmp(sub, "put") || !strcmp(sub, "get") || !strcmp(sub, "run") || !strcmp(sub, "rm");
    if (!known)
        return kv_usage_error(ctx, "unknown subcommand '%s': put, get, run, ls or rm", sub);
    if (!name || !*name)
        return kv_usage_error(ctx, "script %s needs a script NAME", sub);
    if (strcmp(sub, "run") == 0)
        return script_run(ctx, name, n - 2, argv + first + 2);
    bool put = strcmp(sub, "put") == 0;
    if (put ? n != 3 : n != 2)
        return kv_usage_error(ctx,
                              put ? "usage: kv script put NAME FILE" : "unexpected argument '%s'",
                              n > 2 ? argv[first + 2] : "");
    kv_buf path = {0}, source = {0};
    rc = script_path(ctx, &path, name, NULL);
    if (rc == 0 && put)
        rc = kv_read_file(ctx, argv[first + 2], &source);
    if (rc == 0 && put)
        rc = kv_http(ctx, "PUT", path.data, source.data, source.len, "text/x-lua");
    else if (rc == 0)
        rc = kv_http(ctx, strcmp(sub, "rm") == 0 ? "DELETE" : "GET", path.data, NULL, 0, NULL);
    kv_buf_free(&path);
    kv_buf_free(&source);
    if (rc != 0)
        return rc;
    if (ctx->status < 200 || ctx->status > 299)
        return script_error(ctx, put ? "store" : strcmp(sub, "rm") == 0 ? "remove" : "get", name);
    return strcmp(sub, "get") == 0 ? write_body(ctx) : 0;
}
