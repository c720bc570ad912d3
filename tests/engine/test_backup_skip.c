/*
 * test_backup_skip.c — an incremental backup reads only what changed: whole
 * segments at or below since are skipped, and newer ones are scanned from a
 * checkpoint of their sparse prefix index. The stream must be exactly the
 * one a scan of everything gives (rci_backup_skip = false), for every since,
 * including merge outputs and loaded segments, whose records are not in seq
 * order, batches, deletes, keyspaces, after a reopen (the index rebuilt from
 * hints) and on a read-only handle.
 */
#include "helpers.h"
#include "db.h" /* white box: rci_backup_skip, backup_scanned */

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return 1700000000000; /* streams carry the creation time: keep it fixed */
}

static rc_db *open_db(const char *dir, bool read_only)
{
    rc_options o;
    th_options(&o);
    o.clock_ms = fixed_clock;
    o.ttl_sweep_ms = 0;
    o.merge_check_ms = 0;
    o.segment_bytes = 64 * 1024; /* many segments */
    o.read_only = read_only;
    rc_db *db;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "open %s: %s", dir, rc_last_error_message());
    return db;
}

static th_membuf backup(rc_db *db, uint64_t since, bool skip, uint64_t *scanned)
{
    th_membuf m = {0};
    rc_backup_info info;
    rci_backup_skip = skip;
    uint64_t before = atomic_load(&db->backup_scanned);
    int rc = rc_backup(db, since, th_mem_write, &m, NULL, NULL, &info);
    rci_backup_skip = true;
    cr_assert_eq(rc, 0, "backup since %llu: %s", (unsigned long long)since,
                 rc_last_error_message());
    if (scanned)
        *scanned = atomic_load(&db->backup_scanned) - before;
    return m;
}

/* Every since from 0 to the last seq (in steps), skipping vs scanning all. */
static void same_streams(rc_db *db, const char *when)
{
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    uint64_t last = st.last_seq, step = last / 60 + 1;
    for (uint64_t since = 0;; since += step) {
        if (since > last)
            since = last;
        th_membuf a = backup(db, since, true, NULL), b = backup(db, since, false, NULL);
        cr_assert_eq(a.len, b.len, "%s, since %llu: %zu vs %zu bytes", when,
                     (unsigned long long)since, a.len, b.len);
        cr_assert_eq(memcmp(a.p, b.p, a.len), 0, "%s, since %llu: the streams differ", when,
                     (unsigned long long)since);
        free(a.p);
        free(b.p);
        if (since == last)
            break;
    }
}

static void fill(rc_db *db, int round)
{
    char k[32], v[160];
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "other", RC_KS_CREATE, &ks), 0);
    for (int i = 0; i < 1500; i++) {
        snprintf(k, sizeof k, "key%05d", (i * 7919 + round) % 2000);
        snprintf(v, sizeof v, "%d-%d-%0120d", round, i, i);
        th_put(db, i % 5 == 0 ? ks : NULL, k, v);
        if (i % 97 == 0) { /* a batch of three, one of them a delete */
            rc_op ops[3] = {
                {.kind = RC_OP_PUT, .key = "b1", .klen = 2, .val = v, .vlen = 10},
                {.kind = RC_OP_PUT, .key = "b2", .klen = 2, .val = v, .vlen = 20},
                {.kind = RC_OP_DELETE, .key = k, .klen = strlen(k)},
            };
            cr_assert_eq(rc_apply(db, ops, 3, NULL), 0, "%s", rc_last_error_message());
        }
    }
}

TestSuite(backup_skip, .timeout = 600);

Test(backup_skip, same_stream_with_merges_loads_and_reopens)
{
    char *adir = th_tmpdir(), *ydir = th_tmpdir();
    rc_db *a = open_db(adir, false);
    fill(a, 1);
    same_streams(a, "appended segments");
    cr_assert_eq(rc_merge(a), 0, "%s", rc_last_error_message()); /* outputs not in seq order */
    fill(a, 2);
    same_streams(a, "after a merge");
    rc_close(a);
    a = open_db(adir, false); /* the index rebuilt from hints */
    same_streams(a, "reopened");
    fill(a, 3);
    cr_assert_eq(rc_merge(a), 0);
    same_streams(a, "merged again");
    rc_db *ro = open_db(adir, true);
    same_streams(ro, "read-only handle");
    rc_close(ro);

    /* a full load writes segments in the stream's order (not seq order) */
    th_membuf full = backup(a, 0, true, NULL);
    rc_db *y = open_db(ydir, false);
    th_membuf m = {.p = full.p, .len = full.len};
    rc_backup_info info;
    cr_assert_eq(rc_load(y, th_mem_read, &m, NULL, NULL, &info), 0, "%s", rc_last_error_message());
    same_streams(y, "loaded segments");
    fill(y, 4);
    same_streams(y, "loaded, then written");
    rc_close(y);
    y = open_db(ydir, false);
    same_streams(y, "loaded, reopened");
    free(full.p);
    rc_close(y);
    rc_close(a);
    th_rmdir(adir);
    th_rmdir(ydir);
}

/* The point of it: a small incremental reads a small part of the log. */
Test(backup_skip, a_small_incremental_scans_little)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    fill(db, 1);
    fill(db, 2);
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    uint64_t since = st.last_seq;
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "new%d", i);
        th_put(db, NULL, k, "x");
    }
    uint64_t all, some;
    th_membuf a = backup(db, since, false, &all), b = backup(db, since, true, &some);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.p, b.p, a.len), 0);
    cr_assert_geq(all, 3000, "a scan of everything reads every record (%llu)",
                  (unsigned long long)all);
    /* at most the records of one checkpoint step (64 KiB, ~400 records) and the 20 */
    cr_assert_lt(some, 600, "the incremental scanned %llu of %llu records",
                 (unsigned long long)some, (unsigned long long)all);
    cr_assert_geq(some, 20);
    free(a.p);
    free(b.p);
    rc_close(db);
    th_rmdir(dir);
}
