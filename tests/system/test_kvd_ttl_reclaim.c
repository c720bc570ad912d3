/*
 * test_kvd_ttl_reclaim.c — a session-cache workload through kvd: values
 * written with ?ttl=2 under the default tombstone retention (7 days) give
 * their disk space back once they expired, at the merger's next look (merge
 * keeps a value-less stub for the horizon and incremental backups); an
 * incremental backup taken across the expiry, loaded on top of the full one
 * taken before it, serves the same keys as the source.
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvdbackup.h"

static const char admin_token[] = "ttl-reclaim-admin-token-0123456789";

static void setup(void)
{
    /* default --tombstone-retention and --merge-threshold; small segments so
     * the written values fill sealed ones */
    static const char *const extra[] = {"--segment-bytes", "1M", NULL};
    kvd_admin_setup(admin_token, extra);
}

static void teardown(void)
{
    kvd_admin_teardown();
}

TestSuite(ttl_reclaim, .init = setup, .fini = teardown, .timeout = 400);

static long long data_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    long long sum = 0;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".data") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0)
            sum += st.st_size;
    }
    closedir(d);
    return sum;
}

enum { NTTL = 6000, NKEEP = 100, VLEN = 1000 };

static void value_of(int i, char *v)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    for (int j = 0; j < VLEN; j++) { /* printable and incompressible */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v[j] = (char)(33 + x % 90);
    }
    v[VLEN] = '\0';
}

Test(ttl_reclaim, expired_values_leave_the_disk_under_default_retention)
{
    static char v[VLEN + 1];
    char path[64];
    for (int i = 0; i < NKEEP; i++) {
        value_of(i, v);
        snprintf(path, sizeof path, "/t/keep%04d", i);
        resp r = call("PUT", path, v);
        EXPECT(r, 201);
        resp_free(&r);
    }
    resp full = kvd_backup_since(admin_token, 0);
    membuf fm = {full.body, full.len, 0};
    rc_backup_info finfo;
    cr_assert_eq(rc_verify_stream(mem_read, &fm, &finfo), 0);

    for (int i = 0; i < NTTL; i++) { /* ~6 MB of session values, ttl 2 s */
        value_of(NKEEP + i, v);
        snprintf(path, sizeof path, "/t/sess%05d?ttl=2", i);
        resp r = call("PUT", path, v);
        EXPECT(r, 201);
        resp_free(&r);
    }
    /* ~6 MB went in (zstd takes ~15 %); what must stay is the kept values
     * (~100 KB), stubs of ~30 B per expired key and segment headers. Without
     * reclaim, every expired value stays for the 7-day retention. */
    sleep(3); /* the last ones expire too (a lower bound: no race) */
    long long want = 1536 * 1024, after = data_bytes(K.dir);
    for (int i = 0; i < 1200 && after > want; i++) { /* bounded: 2 min */
        usleep(100 * 1000);
        after = data_bytes(K.dir);
    }
    cr_assert_leq(after, want, "expired values still on disk: %lld bytes of data files", after);

    for (int i = 0; i < NTTL; i += 997) {
        snprintf(path, sizeof path, "/t/sess%05d", i);
        resp r = call("GET", path, NULL);
        EXPECT(r, 404);
        resp_free(&r);
    }

    /* the incremental across the expiry, on top of the full taken before */
    resp inc = kvd_backup_since(admin_token, finfo.until);
    char dir2[64];
    snprintf(dir2, sizeof dir2, "/tmp/kvdtest.XXXXXX");
    cr_assert(mkdtemp(dir2) != NULL);
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir2, NULL, &db), 0);
    kvd_load_stream(db, &full);
    kvd_load_stream(db, &inc);
    cr_assert_eq(rc_close(db), 0);
    resp_free(&full);
    resp_free(&inc);

    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    char old[256];
    snprintf(old, sizeof old, "%s", K.dir);
    cr_assert(kvd_start(&K, dir2, NULL), "kvd did not start on the restored dir");
    for (int i = 0; i < NKEEP; i += 7) {
        value_of(i, v);
        snprintf(path, sizeof path, "/t/keep%04d", i);
        resp r = call("GET", path, NULL);
        EXPECT(r, 200);
        BODY_IS(r, v);
        resp_free(&r);
    }
    for (int i = 0; i < NTTL; i += 997) {
        snprintf(path, sizeof path, "/t/sess%05d", i);
        resp r = call("GET", path, NULL);
        EXPECT(r, 404);
        resp_free(&r);
    }
    kvd_proc orig = {0};
    snprintf(orig.dir, sizeof orig.dir, "%s", old);
    kvd_cleanup(&orig);
}
