/*
 * test_kvd_backup.c — /admin/backup end to end: the stream verifies, loads
 * into a fresh directory, and a kvd started there serves the same buckets
 * with the same bucket keys and access tokens (the server secret and the
 * policies travel in the system keyspace); an incremental stream from the
 * first one's end carries the later writes.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "kvdbackup.h"

static const char admin_token[] = "backup-admin-token-0123456789";

static void backup_setup(void)
{
    kvd_admin_setup(admin_token, NULL);
}

static void backup_teardown(void)
{
    kvd_admin_teardown();
}

TestSuite(backup, .init = backup_setup, .fini = backup_teardown, .timeout = 600);

static rc_backup_info fetch_and_load(uint64_t since, const char *dir)
{
    resp r = kvd_backup_since(admin_token, since);
    membuf m = {r.body, r.len, 0};
    rc_backup_info info;
    memset(&info, 0, sizeof info);
    cr_assert_eq(rc_verify_stream(mem_read, &m, &info), 0, "stream does not verify: %s",
                 rc_last_error_message());
    /* the response headers say what the stream holds, before the body */
    char hv[64], want[32];
    cr_assert_str_eq(resp_header(&r, "X-Ringcask-Database", hv, sizeof hv), info.database);
    cr_assert_eq(strlen(info.database), RC_DATABASE_ID_LEN);
    snprintf(want, sizeof want, "%llu", (unsigned long long)since);
    cr_assert_str_eq(resp_header(&r, "X-Ringcask-Since", hv, sizeof hv), want);
    snprintf(want, sizeof want, "%llu", (unsigned long long)info.until);
    cr_assert_str_eq(resp_header(&r, "X-Ringcask-Until", hv, sizeof hv), want);
    /* and the database is kvd's own (read-only beside the running server) */
    rc_options ro;
    rc_options_default(&ro);
    ro.read_only = true;
    rc_db *live = NULL;
    char live_dir[300], live_id[RC_DATABASE_ID_LEN + 1];
    snprintf(live_dir, sizeof live_dir, "%s", K.dir);
    cr_assert_eq(rc_open(live_dir, &ro, &live), 0, "%s", rc_last_error_message());
    cr_assert_eq(rc_database_id(live, live_id), 0);
    cr_assert_str_eq(live_id, info.database);
    rc_close(live);
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, NULL, &db), 0);
    m.off = 0;
    rc_backup_info li;
    cr_assert_eq(rc_load(db, mem_read, &m, NULL, NULL, &li), 0, "load: %s",
                 rc_last_error_message());
    cr_assert_eq(rc_close(db), 0);
    resp_free(&r);
    return info;
}

Test(backup, restore_serves_same_buckets_and_credentials)
{
    char tok[2048];
    cr_assert(make_token(&K, "t", AK, "{\"permissions\":[\"read\"]}", tok, sizeof tok));
    resp r = call("PUT", "/t/k1", "one");
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/img", "png", "Content-Type: image/png", NULL);
    resp_free(&r);
    r = call("PATCH", "/t/n", "+5");
    resp_free(&r);

    snprintf(kvd_restored, sizeof kvd_restored, "/tmp/kvdtest.XXXXXX");
    cr_assert(mkdtemp(kvd_restored) != NULL);
    rc_backup_info full = fetch_and_load(0, kvd_restored);
    cr_assert(full.records > 0);

    r = call("PUT", "/t/k2", "two");
    resp_free(&r);
    r = call("DELETE", "/t/k1", NULL);
    resp_free(&r);
    fetch_and_load(full.until, kvd_restored);

    r = call_as("", "GET", "/admin/backup", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);

    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    char old[256];
    snprintf(old, sizeof old, "%s", K.dir);
    cr_assert(kvd_start(&K, kvd_restored, NULL), "kvd did not start on the restored dir");
    r = call("GET", "/t/k2", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "two");
    resp_free(&r);
    r = call("GET", "/t/k1", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("GET", "/t/n", NULL);
    BODY_IS(r, "5");
    resp_free(&r);
    char ct[64];
    r = call("GET", "/t/img", NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "image/png");
    resp_free(&r);
    r = call_as(tok, "GET", "/t/k2", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    /* clean the original dir too */
    kvd_proc orig = {0};
    snprintf(orig.dir, sizeof orig.dir, "%s", old);
    kvd_cleanup(&orig);
}
