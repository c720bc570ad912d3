/*
 * main.c — kv's entry point: global options, the command table, --help, and
 * the option parser every command shares.
 *
 * Options come from rcu_opt tables (common/rcu_opt.h), one per command plus
 * the global one (--url, --bucket, --key), which may come before the
 * command or among its arguments, so `kv get k --bucket b` works as well as
 * `kv --bucket b get k`; their defaults come from $KV_URL, $KV_BUCKET and
 * $KV_KEY. A bad flag is reported in one line ("kv get: unknown option
 * '--x' (see kv get --help)") with exit 2.
 */
#include "kv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_DEFAULT_URL "http://127.0.0.1:7070"

typedef struct kv_command {
    const char *name;
    int (*run)(kv_ctx *ctx, int argc, char **argv);
    const char *summary;
} kv_command;

static const kv_command commands[] = {
    {"serve", kv_cmd_serve, "run kvd in the foreground with an open 'default' bucket"},
    {"set", kv_cmd_set, "set one or many keys atomically: k=v, k=@file, k=- (stdin)"},
    {"setnx", kv_cmd_setnx, "set keys only if absent (all or none)"},
    {"get", kv_cmd_get, "print one value (raw) or many as 'k: value' lines"},
    {"getset", kv_cmd_getset, "set a key and print the value it had"},
    {"append", kv_cmd_append, "append text to a value; print the new length"},
    {"del", kv_cmd_del, "delete one or many keys atomically"},
    {"ls", kv_cmd_ls, "list keys: [PREFIX] [--limit N] [--values]"},
    {"watch", kv_cmd_watch, "print every change of a key (or of keys under --prefix)"},
    {"incr", kv_cmd_incr, "atomically add BY (default 1) to a number; print the result"},
    {"ttl", kv_cmd_ttl, "seconds until a key expires (-1: never)"},
    {"metrics", kv_cmd_metrics, "keys, value bytes and operation counts [--json]"},
    {"bucket", kv_cmd_bucket, "bucket create [NAME] | delete NAME | info | rotate"},
    {"token", kv_cmd_token, "token create --prefix P --perm read,... --ttl 10m"},
    {"script", kv_cmd_script, "script put NAME FILE | run NAME [k=v...] | ls | rm NAME"},
    {"backup", kv_cmd_backup, "the server's backup stream to a file (admin token)"},
    {"merge", kv_cmd_merge, "merge now and print what was reclaimed (admin token)"},
};

static const char main_epilog[] =
    "Exit status: 0 ok, 1 absent (key, script, bucket asked for), 2 usage error,\n"
    "3 kvd unreachable, 4 credential missing/invalid/not permitted, 5 no such bucket,\n"
    "6 request refused by kvd, 7 kvd failed, 8 local failure (file, stdout).\n";

static void init_globals(kv_ctx *ctx)
{
    const rcu_opt g[] = {
        {"url", 0, RCU_OPT_STRING, &ctx->opt_url, .meta = "URL",
         .def = "$KV_URL or " KV_DEFAULT_URL,
         .help = "kvd base URL; several, comma-separated, for a replica group's members (kv "
                 "tries them in turn and follows redirects to the leader)"},
        {"bucket", 0, RCU_OPT_STRING, &ctx->opt_bucket, .meta = "NAME",
         .def = "$KV_BUCKET or 'default'", .help = "bucket"},
        {"key", 0, RCU_OPT_STRING, &ctx->opt_key, .meta = "CREDENTIAL", .def = "$KV_KEY",
         .help = "bucket key or access token, sent as 'Authorization: Bearer'"},
        {0},
    };
    memcpy(ctx->globals, g, sizeof g);
}

/* kv's own program: the commands in --help, then the global options */
static rcu_opt_prog main_prog(kv_ctx *ctx)
{
    static char about[2048];
    size_t n =
        (size_t)snprintf(about, sizeof about, "Client of the kvd key-value server.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0] && n < sizeof about; i++)
        n += (size_t)snprintf(about + n, sizeof about - n, "  %-8s %s\n", commands[i].name,
                              commands[i].summary);
    if (n < sizeof about)
        snprintf(about + n, sizeof about - n,
                 "'kv COMMAND --help' (or 'kv help COMMAND') for a command.\n");
    return (rcu_opt_prog){
        .name = "kv",
        .usage = "[--url URL] [--bucket NAME] [--key CREDENTIAL] COMMAND [ARGS...]",
        .about = about,
        .epilog = main_epilog,
        .opts = ctx->globals,
        .more_title = "Global options",
        .stop_at_operand = true,
        .max_operands = SIZE_MAX,
    };
}

static int vfail(kv_ctx *ctx, int status, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", ctx->cmd ? ctx->cmd : "kv");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return status;
}

int kv_fail(kv_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

int kv_usage_error(kv_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ctx, KV_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return KV_EXIT_USAGE;
}

/* URL, or several separated by commas (a replica group's members). */
static int set_url(kv_ctx *ctx, const char *url)
{
    char *copy = strdup(url);
    if (!copy)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    size_t count = 0;
    const char *list[sizeof ctx->urls / sizeof ctx->urls[0]];
    for (char *save = NULL, *one = strtok_r(copy, ",", &save); one;
         one = strtok_r(NULL, ",", &save)) {
        size_t n = strlen(one);
        while (n > 0 && one[n - 1] == '/')
            one[--n] = '\0';
        if (n == 0)
            continue;
        if (!strstr(one, "://")) {
            int rc =
                kv_usage_error(ctx, "--url '%s' has no scheme (e.g. http://127.0.0.1:7070)", one);
            free(copy);
            return rc;
        }
        if (count == sizeof list / sizeof list[0]) {
            free(copy);
            return kv_usage_error(ctx, "--url: at most %zu URLs", count);
        }
        list[count++] = one;
    }
    if (count == 0) {
        free(copy);
        return kv_usage_error(ctx, "--url is empty");
    }
    free(ctx->url_storage);
    ctx->url_storage = copy;
    memcpy(ctx->urls, list, count * sizeof list[0]);
    ctx->nurls = count;
    ctx->url_cur = 0;
    ctx->url = ctx->urls[0];
    return 0;
}

static int set_bucket(kv_ctx *ctx, const char *bucket)
{
    if (!rcu_bucket_name_valid(bucket, strlen(bucket)))
        return kv_usage_error(ctx, "invalid bucket name '%s' (1-64 of A-Z a-z 0-9 _ -)", bucket);
    ctx->bucket = bucket;
    return 0;
}

/* Check and apply the global options given (or from the environment). */
static int apply_globals(kv_ctx *ctx)
{
    int rc = 0;
    if (ctx->opt_url) {
        rc = set_url(ctx, ctx->opt_url);
        ctx->opt_url = NULL;
    }
    if (rc == 0 && ctx->opt_bucket) {
        rc = set_bucket(ctx, ctx->opt_bucket);
        ctx->opt_bucket = NULL;
    }
    if (rc == 0 && ctx->opt_key) {
        ctx->key = *ctx->opt_key ? ctx->opt_key : NULL;
        ctx->opt_key = NULL;
    }
    return rc;
}

int kv_parse_options(kv_ctx *ctx, int *argc, char **argv, const rcu_opt *opts, const char *synopsis,
                     const char *about)
{
    static const rcu_opt none[] = {{0}};
    const rcu_opt_prog prog = {
        .name = ctx->cmd,
        .usage = synopsis,
        .about = about,
        .opts = opts ? opts : none,
        .more = ctx->globals,
        .more_title = "Global options (also before the command)",
        .max_operands = SIZE_MAX,
    };
    int n = 0;
    int rc = rcu_opt_parse(&prog, *argc, argv, &n);
    if (rc != RCU_OPT_GO_ON)
        return rc;
    *argc = 1 + n;
    rc = apply_globals(ctx);
    return rc != 0 ? rc : -1;
}

int main(int argc, char **argv)
{
    kv_ctx ctx = {.cmd = "kv", .bucket = "default"};
    const char *env_url = getenv("KV_URL"), *env_bucket = getenv("KV_BUCKET");
    const char *env_key = getenv("KV_KEY");
    int rc = set_url(&ctx, env_url && *env_url ? env_url : KV_DEFAULT_URL);
    if (rc == 0 && env_bucket && *env_bucket)
        rc = set_bucket(&ctx, env_bucket);
    if (rc != 0)
        goto done;
    ctx.key = env_key && *env_key ? env_key : NULL;

    init_globals(&ctx);
    const rcu_opt_prog prog = main_prog(&ctx);
    int nops = 0;
    rc = rcu_opt_parse(&prog, argc, argv, &nops);
    if (rc != RCU_OPT_GO_ON)
        goto done;
    if ((rc = apply_globals(&ctx)) != 0)
        goto done;
    int optind = 1;
    argc = 1 + nops;
    if (nops == 0) {
        rc = kv_usage_error(&ctx, "no command given (see kv --help)");
        goto done;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        if (optind + 1 >= argc) {
            rcu_opt_print_help(&prog, stdout);
            goto done;
        }
        /* "kv help CMD" is "kv CMD --help" */
        static char help_flag[] = "--help";
        name = argv[optind + 1];
        argv[optind + 1] = help_flag;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            char cmd_name[32];
            snprintf(cmd_name, sizeof cmd_name, "kv %s", name);
            ctx.cmd = cmd_name;
            argv[optind] = (char *)name;
            rc = commands[i].run(&ctx, argc - optind, argv + optind);
            ctx.cmd = "kv";
            goto done;
        }
    }
    rc = kv_usage_error(&ctx, "unknown command '%s' (see kv --help)", name);
done:
    kv_client_cleanup(&ctx);
    free(ctx.url_storage);
    return rc;
}
