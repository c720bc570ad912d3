/*
 * test_kv.c — the kv client against a real kvd on 127.0.0.1.
 *
 * Each test gets its own kvd (free port, temporary directory, open "default"
 * bucket) started in .init and stopped in .fini, and runs the real kv binary
 * as a user would; assertions are on exact stdout, exit status and the
 * one-line stderr message.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_kv.h"
#include "tool_proc.h"

tp_kvd kvd;

void start_kvd(void)
{
    cr_assert_eq(tp_kvd_start(&kvd, KVD_BIN, false, NULL), 0, "kvd did not start");
}

void stop_kvd(void)
{
    tp_kvd_stop(&kvd);
}

tp_result kv_in(const char *stdin_path, const char *first, ...)
{
    char *argv[4096];
    size_t n = 0;
    argv[n++] = KV_BIN;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 4095; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char *env[] = {kvd.env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    return tp_run(argv, stdin_path, env);
}

void expect(tp_result r, int status, const char *out)
{
    cr_expect_eq(r.status, status, "exit %d (want %d); stderr: %s", r.status, status, r.err);
    if (out)
        cr_expect_str_eq(r.out, out);
}

TestSuite(kv, .init = start_kvd, .fini = stop_kvd, .timeout = 600);

Test(kv, seed_session_verbatim)
{
    tp_result r = kv("set", "cake=🎂", "horns=😈", "smiley=😁");
    expect(r, 0, "Keys set\n");
    tp_result_free(&r);
    r = kv("get", "cake", "horns", "smiley");
    expect(r, 0, "cake: 🎂\nhorns: 😈\nsmiley: 😁\n");
    tp_result_free(&r);
    r = kv("metrics");
    expect(r, 0,
           "Keys Stored: 3\nBytes Stored (Values): 12\nSet Operations: 3\n"
           "Get Operations: 3\nDelete Operations: 0\n");
    tp_result_free(&r);
    r = kv("del", "horns");
    expect(r, 0, "");
    tp_result_free(&r);
    r = kv("metrics");
    expect(r, 0,
           "Keys Stored: 2\nBytes Stored (Values): 8\nSet Operations: 3\n"
           "Get Operations: 3\nDelete Operations: 1\n");
    tp_result_free(&r);
    r = kv("metrics", "--json");
    expect(r, 0, NULL);
    cr_expect(strstr(r.out, "\"keys\"") != NULL, "json: %s", r.out);
    tp_result_free(&r);
}

static char *all_bytes_file(const char *dir, const char *name)
{
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    cr_assert_eq(tp_write_file(path, bytes, sizeof bytes), 0);
    return path;
}

static void expect_all_bytes(tp_result r)
{
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(r.out_len, 256u, "got %zu bytes", r.out_len);
    for (int i = 0; i < 256; i++)
        cr_assert_eq((unsigned char)r.out[i], i, "byte %d differs", i);
}

Test(kv, binary_round_trip_every_byte_value)
{
    char *file = all_bytes_file(kvd.dir, "bytes.bin");
    char arg[700];
    snprintf(arg, sizeof arg, "bin=@%s", file);
    tp_result r = kv("set", arg);
    expect(r, 0, "Key set\n");
    tp_result_free(&r);
    r = kv("get", "bin");
    expect_all_bytes(r);
    tp_result_free(&r);
    /* the same bytes from stdin */
    r = kv_in(file, "set", "fromstdin=-", NULL);
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("get", "fromstdin");
    expect_all_bytes(r);
    tp_result_free(&r);
    free(file);
}

Test(kv, binary_values_in_a_multi_key_set)
{
    char *file = all_bytes_file(kvd.dir, "bytes.bin");
    char arg[700];
    snprintf(arg, sizeof arg, "bin=@%s", file);
    tp_result r = kv("set", arg, "text=plain");
    expect(r, 0, "Keys set\n");
    tp_result_free(&r);
    r = kv("get", "bin");
    expect_all_bytes(r);
    tp_result_free(&r);
    free(file);
}

Test(kv, multi_set_is_atomic)
{
    char long_key[1100];
    memset(long_key, 'x', 1030);
    strcpy(long_key + 1030, "=v");
    tp_result r = kv("set", "ok1=a", long_key, "ok2=b");
    cr_expect_neq(r.status, 0);
    cr_expect_geq(r.status, 3, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "nothing was applied") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
    r = kv("get", "ok1");
    expect(r, 1, "");
    tp_result_free(&r);
    r = kv("get", "ok2");
    expect(r, 1, "");
    tp_result_free(&r);
}

Test(kv, missing_key_exits_1_and_names_it)
{
    tp_result r = kv("get", "nothere");
    expect(r, 1, "");
    cr_expect(strstr(r.err, "'nothere'") != NULL, "stderr: %s", r.err);
    cr_expect_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "one line: %s", r.err);
    tp_result_free(&r);
    r = kv("set", "here=1");
    tp_result_free(&r);
    r = kv("get", "here", "nothere");
    expect(r, 1, "here: 1\n");
    cr_expect(strstr(r.err, "'nothere'") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
    r = kv("del", "nothere");
    expect(r, 1, "");
    tp_result_free(&r);
    r = kv("del", "-f", "nothere");
    expect(r, 0, "");
    tp_result_free(&r);
}

Test(kv, usage_errors_exit_2_with_a_message)
{
    const char *cases[][4] = {
        {"set", "novalue", NULL},   {"get", "--bogus", "k"}, {"frobnicate", NULL},
        {"incr", "k", "notnum"},    {"ls", "--limit", "x"},  {"token", "create", "--perm", "fly"},
        {"bucket", "delete", NULL}, {"get", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_result r = kv_in(NULL, cases[i][0], cases[i][1], cases[i][2], cases[i][3], NULL);
        cr_expect_eq(r.status, 2, "kv %s: exit %d", cases[i][0], r.status);
        cr_expect(r.err_len > 0 && strstr(r.err, "kv"), "kv %s: stderr '%s'", cases[i][0], r.err);
        tp_result_free(&r);
    }
    tp_result r = kv("get", "--bogus", "k");
    cr_expect(strstr(r.err, "--bogus") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
    char *argv[] = {KV_BIN, NULL};
    r = tp_run(argv, NULL, NULL);
    cr_expect_eq(r.status, 2);
    tp_result_free(&r);
    r = kv("--help");
    expect(r, 0, NULL);
    cr_expect(strstr(r.out, "Usage: kv") != NULL);
    tp_result_free(&r);
    r = kv("set", "--help");
    expect(r, 0, NULL);
    cr_expect(strstr(r.out, "Usage: kv set") != NULL);
    tp_result_free(&r);
}

Test(kv, unreachable_server_names_the_url)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", tp_free_port());
    tp_result r = kv("--url", url, "get", "k");
    cr_expect_eq(r.status, 3, "stderr: %s", r.err);
    cr_expect(strstr(r.err, url) != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
}

Test(kv, unknown_bucket_is_named)
{
    tp_result r = kv("--bucket", "nosuchbucket", "get", "k");
    cr_expect_eq(r.status, 5, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "nosuchbucket") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
}

/* The admin key from "bucket: NAME\nadmin key: KEY\n". */
static char *admin_key_of(const tp_result *r)
{
    const char *p = strstr(r->out, "admin key: ");
    cr_assert(p, "no admin key in '%s'", r->out);
    p += strlen("admin key: ");
    return strndup(p, strcspn(p, "\n"));
}

Test(kv, bucket_create_and_delete)
{
    tp_result r = kv("bucket", "create", "photos");
    expect(r, 0, NULL);
    cr_expect(strncmp(r.out, "bucket: photos\n", 15) == 0, "out: %s", r.out);
    char *admin = admin_key_of(&r);
    tp_result_free(&r);
    r = kv("bucket", "create", "photos");
    cr_expect_eq(r.status, 6, "stderr: %s", r.err);
    tp_result_free(&r);
    r = kv("--bucket", "photos", "set", "a=1");
    cr_expect_eq(r.status, 4, "no credential: %s", r.err);
    cr_expect(strstr(r.err, "credential") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
    r = kv("--bucket", "photos", "--key", "wrong", "set", "a=1");
    cr_expect_eq(r.status, 4, "bad credential: %s", r.err);
    tp_result_free(&r);
    r = kv("--bucket", "photos", "--key", admin, "set", "a=1");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("--key", admin, "bucket", "delete", "photos");
    expect(r, 0, "");
    tp_result_free(&r);
    r = kv("--key", admin, "bucket", "delete", "photos");
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    tp_result_free(&r);
    free(admin);
}

Test(kv, token_create_then_use)
{
    tp_result r = kv("bucket", "create", "tok");
    expect(r, 0, NULL);
    char *admin = admin_key_of(&r);
    tp_result_free(&r);
    r = kv("--bucket", "tok", "--key", admin, "token", "create", "--prefix", "users:", "--perm",
           "read,write", "--ttl", "10m");
    expect(r, 0, NULL);
    cr_assert(r.out_len > 1 && r.out[r.out_len - 1] == '\n', "token: '%s'", r.out);
    char *token = strndup(r.out, r.out_len - 1);
    tp_result_free(&r);
    r = kv("--bucket", "tok", "--key", token, "set", "users:1=ann");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("--bucket", "tok", "--key", token, "get", "users:1");
    expect(r, 0, "ann");
    tp_result_free(&r);
    r = kv("--bucket", "tok", "--key", token, "set", "other=x");
    cr_expect_eq(r.status, 4, "outside the prefix: exit %d, %s", r.status, r.err);
    tp_result_free(&r);
    free(token);
    free(admin);
}

Test(kv, ls_prefix_limit_values)
{
    tp_result r = kv("set", "a1=x", "a2=y", "a3=z", "b1=w");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("ls");
    expect(r, 0, "a1\na2\na3\nb1\n");
    tp_result_free(&r);
    r = kv("ls", "a");
    expect(r, 0, "a1\na2\na3\n");
    tp_result_free(&r);
    r = kv("ls", "--limit", "2");
    expect(r, 0, "a1\na2\n");
    tp_result_free(&r);
    r = kv("ls", "a", "--values", "--limit", "2");
    expect(r, 0, "a1: x\na2: y\n");
    tp_result_free(&r);
}

Test(kv, ls_pages_past_a_thousand_keys)
{
    enum { n = 1500 };
    char *argv[n + 3];
    static char args[n][16];
    argv[0] = KV_BIN;
    argv[1] = "set";
    for (int i = 0; i < n; i++) {
        snprintf(args[i], sizeof args[i], "k%05d=%d", i, i);
        argv[i + 2] = args[i];
    }
    argv[n + 2] = NULL;
    char *env[] = {kvd.env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    tp_result r = tp_run(argv, NULL, env);
    expect(r, 0, "Keys set\n");
    tp_result_free(&r);
    r = kv("ls");
    expect(r, 0, NULL);
    size_t lines = 0;
    for (size_t i = 0; i < r.out_len; i++)
        lines += r.out[i] == '\n';
    cr_expect_eq(lines, (size_t)n);
    cr_expect(strncmp(r.out, "k00000\nk00001\n", 14) == 0);
    tp_result_free(&r);
    r = kv("ls", "--limit", "1200");
    lines = 0;
    for (size_t i = 0; i < r.out_len; i++)
        lines += r.out[i] == '\n';
    cr_expect_eq(lines, 1200u);
    tp_result_free(&r);
}

Test(kv, incr_prints_the_new_value)
{
    tp_result r = kv("incr", "n");
    expect(r, 0, "1\n");
    tp_result_free(&r);
    r = kv("incr", "n", "5");
    expect(r, 0, "6\n");
    tp_result_free(&r);
    r = kv("incr", "n", "-2");
    expect(r, 0, "4\n");
    tp_result_free(&r);
}

Test(kv, keys_with_a_slash_are_keys)
{
    tp_result r = kv("set", "scripts/x=1");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("get", "scripts/x");
    expect(r, 0, "1");
    tp_result_free(&r);
}

Test(kv, scripts_put_run_ls_rm)
{
    tp_result r = kv("bucket", "create", "lua");
    char *admin = admin_key_of(&r);
    tp_result_free(&r);
    char path[700];
    snprintf(path, sizeof path, "%s/hello.lua", kvd.dir);
    const char *src = "kv.say('hi ', kv.args.name)";
    cr_assert_eq(tp_write_file(path, src, strlen(src)), 0);
    r = kv("--bucket", "lua", "--key", admin, "script", "put", "hello", path);
    if (r.status == 7 && strstr(r.err, "HTTP 501")) {
        tp_result_free(&r);
        free(admin);
        stop_kvd(); /* .fini does not run after a skip */
        cr_skip_test("this kvd is built without scripts");
    }
    expect(r, 0, "");
    tp_result_free(&r);
    r = kv("--bucket", "lua", "--key", admin, "script", "ls");
    expect(r, 0, "hello\n");
    tp_result_free(&r);
    r = kv("--bucket", "lua", "--key", admin, "script", "run", "hello", "name=bob");
    expect(r, 0, "hi bob");
    tp_result_free(&r);
    r = kv("--bucket", "lua", "--key", admin, "script", "rm", "hello");
    expect(r, 0, "");
    tp_result_free(&r);
    r = kv("--bucket", "lua", "--key", admin, "script", "run", "hello");
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    tp_result_free(&r);
    free(admin);
}

/* kv serve runs kvd with an open default bucket. */
Test(kv_serve, serve_runs_kvd_with_the_default_bucket, .timeout = 600)
{
    tp_kvd served;
    cr_assert_eq(tp_kvd_start(&served, KV_BIN, true, NULL), 0, "kv serve did not start kvd");
    char *argv[] = {KV_BIN, "set", "cake=🎂", NULL};
    char *env[] = {served.env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    tp_result r = tp_run(argv, NULL, env);
    cr_expect_eq(r.status, 0, "stderr: %s", r.err);
    tp_result_free(&r);
    cr_expect_eq(tp_kvd_stop(&served), 0, "kvd exits 0 after SIGTERM");
}

/* What a user following the README gets: kv serve (like scripts/serve.sh)
 * is for local development and lets `kv bucket create` work without a
 * credential; a plain kvd does not, and kv shows kvd's reason, which names
 * the flag that turns creation on. */
Test(kv_serve, serve_lets_a_user_create_buckets, .timeout = 600)
{
    tp_kvd_as_user = true;
    tp_kvd served;
    cr_assert_eq(tp_kvd_start(&served, KV_BIN, true, NULL), 0, "kv serve did not start kvd");
    char *argv[] = {KV_BIN, "bucket", "create", "photos", NULL};
    char *env[] = {served.env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    tp_result r = tp_run(argv, NULL, env);
    cr_expect_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.out, "admin key: ") != NULL, "stdout: %s", r.out);
    tp_result_free(&r);
    cr_expect_eq(tp_kvd_stop(&served), 0, "kvd exits 0 after SIGTERM");
}

Test(kv_serve, plain_kvd_refuses_anonymous_buckets_and_says_how_to_allow, .timeout = 600)
{
    tp_kvd_as_user = true;
    tp_kvd plain;
    cr_assert_eq(tp_kvd_start(&plain, KVD_BIN, false, NULL), 0, "kvd did not start");
    char *argv[] = {KV_BIN, "bucket", "create", "photos", NULL};
    char *env[] = {plain.env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    tp_result r = tp_run(argv, NULL, env);
    cr_expect_eq(r.status, 4, "exit: %d, stderr: %s", r.status, r.err);
    cr_expect(strstr(r.err, "--allow-anonymous-buckets") != NULL, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "--admin-token-file") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
    cr_expect_eq(tp_kvd_stop(&plain), 0, "kvd exits 0 after SIGTERM");
}

/* With --admin-token-file, creating a bucket needs that token. */
Test(kv_admin, bucket_create_needs_kvds_admin_token, .timeout = 600)
{
    char *dir = tp_tempdir();
    cr_assert(dir);
    char token_file[600];
    snprintf(token_file, sizeof token_file, "%s/admin-token", dir);
    const char *token = "s3cret-admin-token-0123456789";
    cr_assert_eq(tp_write_file(token_file, token, strlen(token)), 0);
    char *args[] = {"--admin-token-file", token_file, NULL};
    tp_kvd k;
    cr_assert_eq(tp_kvd_start(&k, KVD_BIN, false, args), 0, "kvd did not start");
    char *env[] = {k.env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    char *no_key[] = {KV_BIN, "bucket", "create", "b1", NULL};
    tp_result r = tp_run(no_key, NULL, env);
    cr_expect_eq(r.status, 4, "without the admin token: %d %s", r.status, r.err);
    cr_expect(strstr(r.err, "admin token") != NULL, "stderr: %s", r.err);
    tp_result_free(&r);
    char *with_key[] = {KV_BIN, "--key", (char *)token, "bucket", "create", "b1", NULL};
    r = tp_run(with_key, NULL, env);
    cr_expect_eq(r.status, 0, "with the admin token: %s", r.err);
    cr_expect(strncmp(r.out, "bucket: b1\n", 11) == 0, "out: %s", r.out);
    tp_result_free(&r);
    tp_kvd_stop(&k);
    tp_rmtree(dir);
    free(dir);
}
