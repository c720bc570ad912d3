/* Merge: space is reclaimed, values survive merges and reopens, deleted and
 * expired keys never come back, tombstones respect retention and raise the
 * horizon, a racing write wins, injected failures leave the old files, a
 * SIGKILL at any moment of a merge loses nothing, and the background merger
 * runs by itself. */
#include "helpers.h"
#include "fault.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 2000

static char *dir;
static rc_db *db;
static char model[NKEYS][48]; /* "" = absent */

static void open_opts(uint64_t retention_ms, uint32_t merge_check_ms)
{
    rc_options o;
    th_options(&o);
    o.tombstone_retention_ms = retention_ms;
    o.merge_check_ms = merge_check_ms;
    o.merge_rate_bytes = 0;
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open: %s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    memset(model, 0, sizeof(model));
    open_opts(0, 0);
}
static void teardown(void)
{
#ifdef RC_FAULT_INJECTION
    rc_fault_disarm_all();
#endif
    rc_close(db);
    th_rmdir(dir);
}
TestSuite(merge, .init = setup, .fini = teardown);

static void key_of(int i, char *k)
{
    snprintf(k, 16, "key%05u", (unsigned)i % 100000u); /* bounded: gcc -O2 checks */
}

/* 5 overwrites of every key, then 20 % deleted. */
static void churn(void)
{
    char k[16];
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < NKEYS; i++) {
            key_of(i, k);
            snprintf(model[i], sizeof(model[i]), "r%d-%d-%s", round, i,
                     "padding-padding-padding-padding");
            th_put(db, NULL, k, model[i]);
        }
    for (int i = 0; i < NKEYS; i += 5) {
        key_of(i, k);
        cr_assert_eq(rc_delete(db, NULL, k, strlen(k), NULL), 0);
        model[i][0] = 0;
    }
}

static void check_model(const char *when)
{
    char k[16];
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, k);
        if (model[i][0])
            cr_assert(th_has(db, NULL, k, model[i]), "%s: key %s lost or wrong", when, k);
        else
            cr_assert_eq(th_has(db, NULL, k, ""), 0, "%s: deleted key %s is back", when, k);
    }
}

static void reopen(uint64_t retention_ms)
{
    rc_close(db);
    open_opts(retention_ms, 0);
}

Test(merge, reclaims_space_and_keeps_every_value)
{
    churn();
    rc_stats st;
    rc_stats_db(db, &st);
    uint64_t before = st.disk_bytes;
    cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    rc_stats_db(db, &st);
    check_model("after merge");
    cr_assert_eq(st.merges, 1);
    cr_assert_gt(st.merge_bytes_reclaimed, 0);
    uint64_t live = st.live_key_bytes + st.live_value_bytes;
    printf("merge: disk %llu -> %llu bytes, live %llu (%.2fx)\n", (unsigned long long)before,
           (unsigned long long)st.disk_bytes, (unsigned long long)live,
           (double)st.disk_bytes / (double)live);
    cr_assert_lt(st.disk_bytes, before / 3);
    cr_assert_leq(st.disk_bytes, live * 17 / 10, "space amplification %.2f",
                  (double)st.disk_bytes / (double)live);
    reopen(0);
    check_model("after reopen");
    cr_assert_eq(rc_merge(db), 0);
    reopen(0);
    check_model("after a second merge and reopen");
}

Test(merge, deleted_keys_never_come_back)
{
    char k[16];
    for (int cycle = 0; cycle < 4; cycle++) {
        for (int i = 0; i < NKEYS; i++) {
            key_of(i, k);
            if ((i + cycle) % 3 == 0) {
                if (model[i][0]) {
                    cr_assert_eq(rc_delete(db, NULL, k, strlen(k), NULL), 0);
                    model[i][0] = 0;
                }
            } else {
                snprintf(model[i], sizeof(model[i]), "c%d-%d", cycle, i);
                th_put(db, NULL, k, model[i]);
            }
        }
        cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
        check_model("after merge");
        reopen(0);
        check_model("after reopen");
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_gt(st.tombstone_horizon, 0, "retention 0: tombstones were dropped");
}

Test(merge, retention_keeps_tombstones_and_horizon_persists)
{
    reopen(3600 * 1000); /* an hour */
    churn();
    cr_assert_eq(rc_merge(db), 0);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.tombstone_horizon, 0, "a young tombstone was dropped");
    check_model("retained");
    reopen(0);
    cr_assert_eq(rc_merge(db), 0);
    rc_stats_db(db, &st);
    uint64_t h = st.tombstone_horizon;
    cr_assert_gt(h, 0);
    reopen(0);
    rc_stats_db(db, &st);
    cr_assert_eq(st.tombstone_horizon, h, "horizon not persisted");
    check_model("after reopen");
}

static _Atomic int64_t clock_now = 1700000000000;
static int64_t fake_clock(void *c)
{
    (void)c;
    return atomic_load(&clock_now);
}

Test(merge, expired_records_are_dropped_and_stay_dead)
{
    rc_close(db);
    rc_options o;
    th_options(&o);
    o.tombstone_retention_ms = 0;
    o.clock_ms = fake_clock;
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    char k[16];
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, k);
        th_put(db, NULL, k, "old-version-without-ttl");
        rc_op op = {.kind = RC_OP_PUT,
                    .key = k,
                    .klen = strlen(k),
                    .val = "ttl",
                    .vlen = 3,
                    .ttl_ms = i % 2 ? 1000 : RC_TTL_NONE};
        cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    }
    atomic_store(&clock_now, 1700000000000 + 2000);
    cr_assert_eq(rc_merge(db), 0);
    rc_close(db);
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, k);
        cr_assert_eq(th_has(db, NULL, k, "ttl"), i % 2 == 0, "key %s", k);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, NKEYS / 2);
}

typedef struct racer {
    rc_db *db;
    atomic_bool stop;
    int writes;
} racer;

static void *race_writer(void *p)
{
    racer *r = p;
    char k[16], v[32];
    for (int n = 0; !atomic_load(&r->stop); n++) {
        int i = n % NKEYS;
        key_of(i, k);
        snprintf(v, sizeof(v), "race-%d", n);
        if (rc_put(r->db, NULL, k, strlen(k), v, strlen(v), NULL) == 0) {
            strcpy(model[i], v);
            r->writes++;
        }
    }
    return NULL;
}

Test(merge, writes_racing_a_merge_win, .timeout = 600)
{
    churn();
    racer r = {.db = db};
    pthread_t t;
    pthread_create(&t, NULL, race_writer, &r);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    cr_assert_gt(r.writes, 0);
    check_model("after racing merges");
    reopen(0);
    check_model("after reopen");
}

#ifdef RC_FAULT_INJECTION
Test(merge, failed_merge_leaves_everything_in_place)
{
    churn();
    fault_point points[] = {FAULT_WRITE, FAULT_CREATE};
    for (int p = 0; p < 2; p++) {
        rc_fault_arm(points[p], 1, 1000, 28 /* ENOSPC */);
        int rc = rc_merge(db);
        rc_fault_disarm_all();
        cr_assert_neq(rc, 0, "point %d: the merge should have failed", p);
        check_model("after a failed merge");
        char tmp[64][64];
        /* merge outputs only: a hint being written in the background is a
         * *.hint.tmp for a moment */
        cr_assert_eq(th_list(dir, ".data.tmp", tmp, 64), 0, "a merge output was left behind");
    }
    cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    check_model("after the merge that worked");
    reopen(0);
    check_model("after reopen");
}
#endif

Test(merge, sigkill_during_merge_loses_nothing, .timeout = 600)
{
    churn();
    rc_close(db);
    db = NULL;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 25; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            rc_options o;
            th_options(&o);
            o.tombstone_retention_ms = 0;
            o.merge_rate_bytes = 4 << 20; /* slow enough to be killed midway */
            rc_db *d;
            if (rc_open(dir, &o, &d) != 0)
                _exit(3);
            char k[16], v[48];
            for (int n = 0;; n++) { /* rewrite and merge forever */
                key_of(n % NKEYS, k);
                snprintf(v, sizeof(v), "%s", model[n % NKEYS]);
                if (v[0])
                    rc_put(d, NULL, k, strlen(k), v, strlen(v), NULL);
                if (n % 500 == 0)
                    rc_merge(d);
            }
        }
        usleep((useconds_t)(5000 + rand() % 60000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "round %d: child exited early (%d)", round,
                  WEXITSTATUS(status));
        open_opts(0, 0);
        check_model("after a kill");
        rc_close(db);
        db = NULL;
    }
    open_opts(0, 0);
}

Test(merge, background_merge_runs_without_being_asked, .timeout = 600)
{
    rc_close(db);
    open_opts(0, 20);
    churn();
    cr_assert_eq(rc_sync(db), 0);
    rc_stats st;
    for (int i = 0; i < 6000; i++) { /* 120 s: a net for a hang */
        rc_stats_db(db, &st);
        if (st.merges > 0 && st.disk_bytes < 3 * (st.live_key_bytes + st.live_value_bytes))
            break;
        usleep(20000);
    }
    cr_assert_gt(st.merges, 0, "no background merge within 120 s");
    check_model("after background merges");
}

/* Regression: merge used to copy batch framing verbatim, so a batch whose
 * superseded members were dropped became an unterminated frame that the next
 * scan of the output discarded with every surviving member. */
Test(merge, surviving_members_of_a_batch_outlive_merge_and_scans)
{
    rc_op ops[4] = {
        {.kind = RC_OP_PUT, .key = "m1", .klen = 2, .val = "one", .vlen = 3},
        {.kind = RC_OP_PUT, .key = "m2", .klen = 2, .val = "two", .vlen = 3},
        {.kind = RC_OP_PUT, .key = "m3", .klen = 2, .val = "three", .vlen = 5},
        {.kind = RC_OP_PUT, .key = "m4", .klen = 2, .val = "four", .vlen = 4},
    };
    cr_assert_eq(rc_apply(db, ops, 4, NULL), 0);
    th_put(db, NULL, "m4", "newer"); /* the batch's last record is now dead */
    cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    reopen(0);
    char hints[64][64];
    int nh = th_list(dir, ".hint", hints, 64);
    for (int i = 0; i < nh; i++)
        unlink(th_path(dir, hints[i])); /* force scans of the merge output */
    reopen(0);
    cr_assert(th_has(db, NULL, "m1", "one"));
    cr_assert(th_has(db, NULL, "m2", "two"));
    cr_assert(th_has(db, NULL, "m3", "three"));
    cr_assert(th_has(db, NULL, "m4", "newer"));
}

typedef struct merger {
    rc_db *db;
    atomic_bool stop;
    int merges;
} merger;

static void *merge_loop(void *p)
{
    merger *m = p;
    char k[16];
    for (int n = 0; !atomic_load(&m->stop); n++) {
        key_of(n % NKEYS, k);
        if (model[n % NKEYS][0])
            th_put(m->db, NULL, k, model[n % NKEYS]); /* same values: new records */
        if (n % 200 == 0 && rc_merge(m->db) == 0)
            m->merges++;
    }
    return NULL;
}

/* kvdump's situation: read-only opens of a directory whose writer merges. */
Test(merge, read_only_opens_beside_a_merging_writer_see_everything, .timeout = 600)
{
    churn();
    merger m = {.db = db};
    pthread_t t;
    pthread_create(&t, NULL, merge_loop, &m);
    rc_options o;
    th_options(&o);
    o.read_only = true;
    int opens = 0;
    for (int i = 0; i < 40; i++) {
        rc_db *ro;
        int rc = rc_open(dir, &o, &ro);
        cr_assert_eq(rc, 0, "read-only open %d: %s", i, rc_last_error_message());
        rc_stats st;
        rc_stats_db(ro, &st);
        cr_assert_eq(st.live_keys, NKEYS - NKEYS / 5, "open %d saw %llu keys", i,
                     (unsigned long long)st.live_keys);
        rc_close(ro);
        opens++;
    }
    atomic_store(&m.stop, true);
    pthread_join(t, NULL);
    cr_assert_gt(m.merges, 0);
    check_model("after the read-only opens");
}

/* Dead data in the active segment used to wait for a rotation; the
 * background merger now seals a dead-heavy active segment and reclaims it. */
Test(merge, background_merge_reaches_the_active_segment, .timeout = 600)
{
    rc_close(db);
    rc_options o;
    th_options(&o);
    o.segment_bytes = 2u << 20; /* the churn (~0.5 MiB) never rotates it */
    o.merge_check_ms = 20;
    o.merge_rate_bytes = 0;
    o.tombstone_retention_ms = 0;
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    churn();
    rc_stats st;
    rc_stats_db(db, &st);
    /* the churn never fills a segment, so any merge below is the merger
     * sealing the active segment (it may already have, while churning) */
    cr_assert_lt(st.last_seq * 64, (uint64_t)o.segment_bytes, "the churn could rotate by size");
    /* How much stays dead at the end depends on when the merger looked: if
     * it sealed the segment halfway through the churn, the rest of the
     * churn lands in an active segment that may stay below the size worth
     * sealing (segment_bytes / 8), dead data and all. What holds however
     * the scheduler runs the two threads: the segment was sealed (no write
     * could rotate it), merged, and bytes were reclaimed. */
    for (int i = 0; i < 12000; i++) { /* 4 min: a net for a hang */
        rc_stats_db(db, &st);
        if (st.merges > 0 && st.merge_bytes_reclaimed > 0)
            break;
        usleep(20000);
    }
    cr_assert_gt(st.merges, 0, "the dead-heavy active segment was never merged");
    cr_assert_gt(st.merge_bytes_reclaimed, 0,
                 "merging the sealed active segment reclaimed nothing");
    check_model("after merging the sealed active segment");
}

/* Issue 19 item 6: under the default retention (7 days) an expired value
 * must not keep its bytes on disk until the marker may go: merge keeps only
 * a stub (key, seq, expiry). Older versions stay hidden, across a reopen and
 * in an incremental backup taken across the expiry. */
Test(merge, expired_values_are_reclaimed_under_default_retention)
{
    rc_close(db);
    rc_options o;
    th_options(&o);
    o.clock_ms = fake_clock;
    o.segment_bytes = 256 * 1024;
    o.merge_check_ms = 0;
    o.merge_rate_bytes = 0;
    atomic_store(&clock_now, 1700000000000);
    cr_assert_eq(o.tombstone_retention_ms, 7ull * 24 * 3600 * 1000, "default retention");
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    enum { N = 1500, VLEN = 1000 };
    static char big[VLEN + 1];
    uint64_t x = 88172645463325252ull; /* xorshift: incompressible */
    for (int i = 0; i < VLEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        big[i] = (char)(x >> 24);
    }
    char k[16];
    for (int i = 0; i < N; i++) { /* an old version without TTL, then the TTL'd one */
        key_of(i, k);
        th_put(db, NULL, k, "old-version-without-ttl");
    }
    rc_stats st;
    rc_stats_db(db, &st);
    uint64_t since = st.last_seq;
    th_membuf full = {0}; /* the full backup taken before the TTL'd writes */
    cr_assert_eq(rc_backup(db, 0, th_mem_write, &full, NULL, NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        key_of(i, k);
        rc_op op = {.kind = RC_OP_PUT,
                    .key = k,
                    .klen = strlen(k),
                    .val = big,
                    .vlen = VLEN,
                    .ttl_ms = i % 3 ? 2000 : RC_TTL_NONE};
        cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    }
    rc_stats_db(db, &st);
    uint64_t before = st.disk_bytes;
    cr_assert_gt(before, (uint64_t)N * VLEN, "the values are on disk");
    atomic_store(&clock_now, 1700000000000 + 3000); /* two thirds expire */
    cr_assert_eq(rc_merge(db), 0);
    rc_stats_db(db, &st);
    /* what is left: the third without TTL (~N/3 * VLEN) plus small stubs */
    uint64_t live = (uint64_t)(N / 3) * VLEN;
    cr_assert_lt(st.disk_bytes, live + live / 2 + 200 * 1024,
                 "expired values reclaimed: %llu bytes on disk (was %llu, live ~%llu)",
                 (unsigned long long)st.disk_bytes, (unsigned long long)before,
                 (unsigned long long)live);
    cr_assert_eq(st.tombstone_horizon, 0, "retention kept the markers: nothing dropped");
    /* an incremental across the expiry restores the same state */
    th_membuf inc = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(db, since, th_mem_write, &inc, NULL, NULL, &info), 0, "%s",
                 rc_last_error_message());
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            key_of(i, k);
            rc_value v;
            int rc = rc_get(db, NULL, k, strlen(k), &v);
            if (i % 3) {
                cr_assert_eq(rc, RC_ENOTFOUND, "expired %s is absent (round %d)", k, round);
            } else {
                cr_assert_eq(rc, 0, "%s", k);
                cr_assert(v.len == VLEN && memcmp(v.data, big, VLEN) == 0);
                rc_value_free(&v);
            }
        }
        rc_close(db);
        cr_assert_eq(rc_open(dir, &o, &db), 0); /* the stubs still hide the old versions */
    }
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, (uint64_t)(N + 2) / 3);
    /* the full taken before the TTL'd writes, then the incremental: same state */
    char *want = th_dump(db);
    char *dir2 = th_tmpdir();
    rc_db *db2;
    cr_assert_eq(rc_open(dir2, &o, &db2), 0);
    cr_assert_eq(rc_load(db2, th_mem_read, &full, NULL, NULL, NULL), 0, "%s",
                 rc_last_error_message());
    cr_assert_eq(rc_load(db2, th_mem_read, &inc, NULL, NULL, NULL), 0, "%s",
                 rc_last_error_message());
    char *got = th_dump(db2);
    cr_assert_str_eq(got, want, "full + incremental across the expiry equals the source");
    free(got);
    free(want);
    free(full.p);
    free(inc.p);
    rc_close(db2);
    th_rmdir(dir2);
}
