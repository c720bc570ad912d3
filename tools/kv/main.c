/*
 * main.c — kv's entry point: global options, the command table, --help, and
 * the option parser every command shares.
 *
 * Global options (--url, --bucket, --key) may come before the command or
 * among its arguments, so `kv get k --bucket b` works as well as
 * `kv --bucket b get k`; their defaults come from $KV_URL, $KV_BUCKET and
 * $KV_KEY. getopt's own messages are silenced so that a bad flag is reported
 * in kv's one-line form ("kv get: unknown option '--x'") with exit 2.
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
    {"get", kv_cmd_get, "print one value (raw) or many as 'k: value' lines"},
    {"del", kv_cmd_del, "delete one or many keys atomically"},
    {"ls", kv_cmd_ls, "list keys: [PREFIX] [--limit N] [--values]"},
    {"incr", kv_cmd_incr, "atomically add BY (default 1) to a number; print the result"},
    {"metrics", kv_cmd_metrics, "keys, value bytes and operation counts [--json]"},
    {"bucket", kv_cmd_bucket, "bucket create [NAME] | bucket delete NAME"},
    {"token", kv_cmd_token, "token create --prefix P --perm read,... --ttl 10m"},
    {"script", kv_cmd_script, "script put NAME FILE | run NAME [k=v...] | ls | rm NAME"},
};

static void print_main_help(FILE *out)
{
    fprintf(out, "usage: kv [--url URL] [--bucket NAME] [--key CREDENTIAL] COMMAND [ARGS...]\n"
                 "\n"
                 "Client of the kvd key-value server.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Options (also accepted after the command):\n"
            "  --url URL          kvd base URL (default $KV_URL or " KV_DEFAULT_URL ")\n"
            "  --bucket NAME      bucket (default $KV_BUCKET or 'default')\n"
            "  --key CREDENTIAL   bucket key or access token, sent as 'Authorization: Bearer'\n"
            "                     (default $KV_KEY)\n"
            "  -h, --help         this help; 'kv COMMAND --help' for a command\n"
            "\n"
            "Exit status: 0 ok, 1 absent (key, script, bucket asked for), 2 usage error,\n"
            "3 kvd unreachable, 4 credential missing/invalid/not permitted, 5 no such bucket,\n"
            "6 request refused by kvd, 7 kvd failed, 8 local failure (file, stdout).\n");
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

static int set_url(kv_ctx *ctx, const char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n == 0)
        return kv_usage_error(ctx, "--url is empty");
    if (!strstr(url, "://"))
        return kv_usage_error(ctx, "--url '%s' has no scheme (e.g. http://127.0.0.1:7070)", url);
    char *copy = strndup(url, n);
    if (!copy)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    free(ctx->url_storage);
    ctx->url_storage = copy;
    ctx->url = copy;
    return 0;
}

static int set_bucket(kv_ctx *ctx, const char *bucket)
{
    if (!kv_bucket_name_valid(bucket))
        return kv_usage_error(ctx, "invalid bucket name '%s' (1-64 of A-Z a-z 0-9 _ -)", bucket);
    ctx->bucket = bucket;
    return 0;
}

static int global_option(kv_ctx *ctx, int opt, const char *arg)
{
    switch (opt) {
    case 'U':
        return set_url(ctx, arg);
    case 'B':
        return set_bucket(ctx, arg);
    case 'K':
        ctx->key = *arg ? arg : NULL;
        return 0;
    default:
        return -1;
    }
}

static int bad_option(kv_ctx *ctx, int opt, char **argv)
{
    const char *arg = argv[optind - 1];
    if (opt == ':')
        return kv_usage_error(ctx, "option '%s' needs a value (see --help)", arg);
    if (optopt && strncmp(arg, "--", 2) != 0)
        return kv_usage_error(ctx, "unknown option '-%c' (see --help)", optopt);
    return kv_usage_error(ctx, "unknown option '%s' (see --help)", arg);
}

int kv_parse_options(kv_ctx *ctx, int argc, char **argv, const char *shortopts,
                     const struct option *longopts, kv_option_fn fn, void *state, const char *usage,
                     bool in_order, int *first_arg)
{
    struct option all[32];
    size_t n = 0;
    for (const struct option *o = longopts; o && o->name && n < 27; o++)
        all[n++] = *o;
    const struct option globals[] = {KV_GLOBAL_LONG_OPTIONS, {0}};
    for (const struct option *o = globals; o->name; o++)
        all[n++] = *o;
    all[n] = (struct option){0};
    char spec[64];
    snprintf(spec, sizeof spec, "%s:h%s", in_order ? "+" : "", shortopts ? shortopts : "");
    optind = 0; /* full reinitialisation (glibc) */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, spec, all, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return KV_EXIT_OK;
        }
        if (opt == '?' || opt == ':')
            return bad_option(ctx, opt, argv);
        int rc = global_option(ctx, opt, optarg);
        if (rc == -1)
            rc = fn ? fn(ctx, opt, optarg, state) : bad_option(ctx, '?', argv);
        if (rc != 0)
            return rc;
    }
    *first_arg = optind;
    return -1;
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

    static const struct option main_opts[] = {KV_GLOBAL_LONG_OPTIONS, {0}};
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:h", main_opts, NULL)) != -1) {
        if (opt == 'h') {
            print_main_help(stdout);
            goto done;
        }
        if (opt == '?' || opt == ':') {
            rc = bad_option(&ctx, opt, argv);
            goto done;
        }
        if ((rc = global_option(&ctx, opt, optarg)) != 0)
            goto done;
    }
    if (optind >= argc) {
        rc = kv_usage_error(&ctx, "no command given (see kv --help)");
        goto done;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        if (optind + 1 >= argc) {
            print_main_help(stdout);
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
