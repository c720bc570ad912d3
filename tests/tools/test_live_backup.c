/*
 * test_live_backup.c — kvdump on the directory a running kvd serves, and a
 * restore that serves the same buckets with the same credentials: the whole
 * chain of real binaries (kv, kvd, kvdump, kvload).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_proc.h"

static tp_kvd source, restored;

static void stop_both(void)
{
    tp_kvd_stop(&restored);
    tp_kvd_stop(&source);
}

TestSuite(live_backup, .fini = stop_both, .timeout = 600);

static tp_result kv_at(const tp_kvd *k, char *a1, char *a2, char *a3, char *a4, char *a5, char *a6,
                       char *a7)
{
    char *argv[] = {KV_BIN, a1, a2, a3, a4, a5, a6, a7, NULL};
    char env_url[80];
    snprintf(env_url, sizeof env_url, "%s", k->env_url);
    char *env[] = {env_url, "KV_BUCKET=", "KV_KEY=", NULL};
    return tp_run(argv, NULL, env);
}

Test(live_backup, dump_of_a_served_dir_restores_buckets_and_credentials)
{
    cr_assert_eq(tp_kvd_start(&source, KVD_BIN, false, NULL), 0, "kvd did not start");
    tp_result r = kv_at(&source, "bucket", "create", "photos", NULL, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *p = strstr(r.out, "admin key: ");
    cr_assert(p);
    char *admin = strndup(p + 11, strcspn(p + 11, "\n"));
    tp_result_free(&r);
    r = kv_at(&source, "--bucket", "photos", "--key", admin, "set", "a=1", "b=2");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    r = kv_at(&source, "set", "cake=🎂", NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);

    char data[600], dump_file[600], restored_data[600];
    snprintf(data, sizeof data, "%s/data", source.dir);
    snprintf(dump_file, sizeof dump_file, "%s/dump.rcb", source.dir);
    snprintf(restored_data, sizeof restored_data, "%s/restored", source.dir);
    char *dump[] = {KVDUMP_BIN, "--dir", data, "-o", dump_file, NULL};
    r = tp_run(dump, NULL, NULL);
    if (r.status != 0 && strstr(r.err, "not implemented")) {
        tp_result_free(&r);
        free(admin);
        stop_both(); /* .fini does not run after a skip */
        cr_skip_test("the engine does not implement backup streams yet");
    }
    cr_assert_eq(r.status, 0, "kvdump while kvd serves: %s", r.err);
    tp_result_free(&r);
    /* kvd is undisturbed */
    r = kv_at(&source, "get", "cake", NULL, NULL, NULL, NULL, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "🎂");
    tp_result_free(&r);

    char *load[] = {KVLOAD_BIN, "--dir", restored_data, "-i", dump_file, NULL};
    r = tp_run(load, NULL, NULL);
    cr_assert_eq(r.status, 0, "kvload: %s", r.err);
    tp_result_free(&r);
    cr_assert_eq(tp_kvd_start_in(&restored, KVD_BIN, false, restored_data, NULL), 0,
                 "kvd on the restored directory did not start");
    r = kv_at(&restored, "--bucket", "photos", "--key", admin, "get", "a", "b");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "a: 1\nb: 2\n");
    tp_result_free(&r);
    r = kv_at(&restored, "--bucket", "photos", "get", "a", NULL, NULL, NULL);
    cr_expect_eq(r.status, 4, "still needs its credential: %s", r.err);
    tp_result_free(&r);
    r = kv_at(&restored, "get", "cake", NULL, NULL, NULL, NULL, NULL);
    cr_expect_str_eq(r.out, "🎂");
    tp_result_free(&r);
    free(admin);
}
