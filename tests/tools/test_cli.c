/*
 * test_cli.c — what the five binaries share through common/rcu_opt.h:
 * --help and --version on each, usage errors naming the flag (exit 2),
 * options after operands, and kvd's config file: --config with flags
 * overriding it, --print-config in config syntax that reads back the same,
 * and a kvd started from a config file really using it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_proc.h"

static const char *const bins[] = {KVD_BIN, KV_BIN, KVDUMP_BIN, KVLOAD_BIN, KVBENCH_BIN};
static const char *const names[] = {"kvd", "kv", "kvdump", "kvload", "kvbench"};

static tp_result run(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4,
                     const char *a5)
{
    char *argv[] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, NULL};
    return tp_run(argv, NULL, NULL);
}

Test(cli, help_and_version_on_all_five)
{
    for (size_t i = 0; i < 5; i++) {
        tp_result r = run(bins[i], "--help", NULL, NULL, NULL, NULL);
        char want[64];
        snprintf(want, sizeof want, "Usage: %s ", names[i]);
        cr_expect_eq(r.status, 0, "%s --help: %d", names[i], r.status);
        cr_expect(strstr(r.out, want) != NULL, "%s --help: %s", names[i], r.out);
        cr_expect(strstr(r.out, "--version") != NULL, "%s --help lacks --version", names[i]);
        tp_result_free(&r);
        r = run(bins[i], "-h", NULL, NULL, NULL, NULL);
        cr_expect_eq(r.status, 0, "%s -h: %d", names[i], r.status);
        tp_result_free(&r);
        r = run(bins[i], "--version", NULL, NULL, NULL, NULL);
        snprintf(want, sizeof want, "%s (ringcask) ", names[i]);
        cr_expect_eq(r.status, 0, "%s --version: %d", names[i], r.status);
        cr_expect(strncmp(r.out, want, strlen(want)) == 0, "%s --version: %s", names[i], r.out);
        tp_result_free(&r);
        r = run(bins[i], "--no-such-flag", NULL, NULL, NULL, NULL);
        cr_expect_eq(r.status, 2, "%s --no-such-flag: %d", names[i], r.status);
        cr_expect(strstr(r.err, "--no-such-flag") != NULL, "%s: %s", names[i], r.err);
        cr_expect(strchr(r.err, '\n') == r.err + r.err_len - 1, "%s: one line: %s", names[i],
                  r.err);
        tp_result_free(&r);
    }
    tp_result r = run(KVD_BIN, "--version", NULL, NULL, NULL, NULL);
    cr_expect(strstr(r.out, "sanitizers:") && strstr(r.out, "fault injection:") &&
                  strstr(r.out, "build:"),
              "kvd --version: %s", r.out);
    tp_result_free(&r);
}

Test(cli, kvd_usage_errors_name_the_flag)
{
    const char *cases[][3] = {
        {"--threads", "x", "--threads"},       {"--sync", "sometimes", "--sync"},
        {"--max-value", "12Q", "--max-value"}, {"--log-level", "loud", "--log-level"},
        {"--timeout", "0", "--timeout"},       {"--default-bucket", "a.b", "--default-bucket"},
        {"--listen", NULL, "--listen"},        {"stray", NULL, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_result r = run(KVD_BIN, cases[i][0], cases[i][1], NULL, NULL, NULL);
        cr_expect_eq(r.status, 2, "%s %s: %d", cases[i][0], cases[i][1], r.status);
        cr_expect(strstr(r.err, cases[i][2]) != NULL, "%s: %s", cases[i][0], r.err);
        tp_result_free(&r);
    }
}

static char *print_config(const char *a1, const char *a2, const char *a3, const char *a4)
{
    tp_result r = run(KVD_BIN, "--print-config", a1, a2, a3, a4);
    cr_assert_eq(r.status, 0, "--print-config: %d %s", r.status, r.err);
    char *out = strdup(r.out);
    tp_result_free(&r);
    return out;
}

Test(cli, kvd_config_file_and_flags_over_it)
{
    char *dir = tp_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/kvd.conf", dir);
    const char *text = "# a comment\n"
                       "[kvd]\n"
                       "sync = interval:250\n"
                       "max-value = 2M\n"
                       "threads = 12\n"
                       "log-level = warn\n"
                       "default-bucket = fromfile\n";
    cr_assert_eq(tp_write_file(path, text, strlen(text)), 0);
    char *out = print_config("--config", path, "--threads", "20");
    cr_expect(strstr(out, "\nsync = interval:250\n") != NULL, "%s", out);
    cr_expect(strstr(out, "\nmax-value = 2M\n") != NULL, "%s", out);
    cr_expect(strstr(out, "\nthreads = 20\n") != NULL, "the flag wins: %s", out);
    cr_expect(strstr(out, "\nlog-level = warn\n") != NULL, "%s", out);
    cr_expect(strstr(out, "\ndefault-bucket = fromfile\n") != NULL, "%s", out);
    cr_expect(strstr(out, "\ntombstone-retention = 604800\n") != NULL, "defaults: %s", out);

    /* the printed settings read back give the same settings */
    char path2[512];
    snprintf(path2, sizeof path2, "%s/printed.conf", dir);
    cr_assert_eq(tp_write_file(path2, out, strlen(out)), 0);
    char *again = print_config("--config", path2, NULL, NULL);
    cr_expect_str_eq(again, out);
    free(again);
    free(out);

    /* a bad setting names the file, the line and the key; nothing starts */
    const char *bad = "threads = 4\nsync = sometimes\n";
    cr_assert_eq(tp_write_file(path, bad, strlen(bad)), 0);
    tp_result r = run(KVD_BIN, "--config", path, NULL, NULL, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "kvd.conf:2") != NULL && strstr(r.err, "sync") != NULL, "%s", r.err);
    tp_result_free(&r);
    const char *unknown = "thread = 4\n";
    cr_assert_eq(tp_write_file(path, unknown, strlen(unknown)), 0);
    r = run(KVD_BIN, "--config", path, NULL, NULL, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "'thread'") != NULL, "%s", r.err);
    tp_result_free(&r);
    r = run(KVD_BIN, "--config", "/nonexistent/kvd.conf", NULL, NULL, NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "/nonexistent/kvd.conf") != NULL, "%s", r.err);
    tp_result_free(&r);
    tp_rmtree(dir);
    free(dir);
}

/* kvd started with a config file serves what the file says (the harness
 * adds --dir, --listen and --default-bucket default as flags). */
Test(cli, kvd_serves_from_a_config_file, .timeout = 60)
{
    char *dir = tp_tempdir();
    char path[512];
    snprintf(path, sizeof path, "%s/kvd.conf", dir);
    const char *text = "default-bucket = ignored-the-flag-wins\nmax-value = 1K\n";
    cr_assert_eq(tp_write_file(path, text, strlen(text)), 0);
    char *args[] = {"--config", path, NULL};
    tp_kvd k;
    cr_assert_eq(tp_kvd_start(&k, KVD_BIN, false, args), 0);
    char url[96];
    snprintf(url, sizeof url, "--url=%s", k.url);
    tp_result r = run(KV_BIN, url, "set", "k=v", NULL, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char assign[2100];
    snprintf(assign, sizeof assign, "k=%s", big);
    r = run(KV_BIN, url, "set", assign, NULL, NULL);
    cr_expect_eq(r.status, 6, "max-value 1K from the file refuses 2K: %d %s", r.status, r.err);
    tp_result_free(&r);
    tp_kvd_stop(&k);
    tp_rmtree(dir);
    free(dir);
}
