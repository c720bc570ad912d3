/* Disk faults through the engine's injection seam, and a real full disk on a
 * small tmpfs: a failed write is never acknowledged and changes nothing, a
 * failed fdatasync turns the database read-only (never trusted, never
 * retried), reads keep working, a read error is an error and never a wrong
 * value, and writes work again by themselves once space is freed. */
#include "helpers.h"
#include "fault.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;
static rc_db *db;
static char *tmpfs_mnt; /* the full-disk test's mount, undone by teardown */

static void open_mode(rc_sync_mode mode)
{
    rc_options o;
    th_options(&o);
    o.sync = mode;
    if (mode == RC_SYNC_ALWAYS)
        th_sync_always(&o);
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    open_mode(RC_SYNC_ALWAYS);
}
static void teardown(void)
{
    rc_fault_disarm_all();
    rc_close(db);
    th_rmdir(dir);
    if (tmpfs_mnt) { /* also when an assertion ended the test early */
        umount2(tmpfs_mnt, MNT_DETACH);
        th_rmdir(tmpfs_mnt);
        tmpfs_mnt = NULL;
    }
}
TestSuite(faults, .init = setup, .fini = teardown);

Test(faults, enospc_on_grow_fails_cleanly_and_recovers_by_itself)
{
    th_put(db, NULL, "before", "ok");
    /* fill the first preallocation step so the next write must grow */
    char big[4000];
    srand(7);
    for (size_t i = 0; i + 1 < sizeof(big); i++)
        big[i] = (char)('!' + rand() % 90); /* incompressible: zstd must not shrink it */
    big[sizeof(big) - 1] = 0;
    rc_fault_arm(FAULT_GROW, 0, 1000000, ENOSPC);
    rc_fault_arm(FAULT_CREATE, 0, 1000000, ENOSPC);
    int failures = 0;
    char k[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "f%d", i);
        int rc = rc_put(db, NULL, k, strlen(k), big, strlen(big), NULL);
        if (rc == RC_ENOSPC) {
            failures++;
            rc_value v;
            cr_assert_eq(rc_get(db, NULL, k, strlen(k), &v), RC_ENOTFOUND,
                         "a refused write is visible");
        } else {
            cr_assert_eq(rc, 0, "write %d: %s (%s)", i, rc_strerror(rc), rc_last_error_message());
        }
    }
    cr_assert_gt(failures, 0, "the fault never fired");
    cr_assert(th_has(db, NULL, "before", "ok"), "reads must keep working");
    rc_fault_disarm_all();
    th_put(db, NULL, "after", "ok"); /* no reopen needed */
    rc_close(db);
    open_mode(RC_SYNC_ALWAYS);
    cr_assert(th_has(db, NULL, "before", "ok"));
    cr_assert(th_has(db, NULL, "after", "ok"));
}

Test(faults, failed_fdatasync_turns_read_only_until_reopen)
{
    th_put(db, NULL, "durable", "yes");
    rc_fault_arm(FAULT_SYNC, 0, 1, EIO);
    cr_assert_eq(rc_put(db, NULL, "k", 1, "v", 1, NULL), RC_EIO, "an unsynced write was acked");
    cr_assert_eq(rc_put(db, NULL, "k2", 2, "v", 1, NULL), RC_EREADONLY);
    rc_op op = {.kind = RC_OP_INCR, .key = "c", .klen = 1, .by = {.type = RC_TYPE_INT, .i = 1}};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), RC_EREADONLY);
    /* the detail belongs to the call that just failed (the next call empties it) */
    cr_assert_not_null(strstr(rc_last_error_message(), "read-only")
                           ?: strstr(rc_last_error_message(), "fdatasync"));
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert(st.read_only);
    cr_assert_geq(st.write_errors, 1);
    cr_assert(th_has(db, NULL, "durable", "yes"), "reads keep working");
    rc_close(db);
    open_mode(RC_SYNC_ALWAYS);
    th_put(db, NULL, "again", "works");
    cr_assert(th_has(db, NULL, "durable", "yes"));
}

Test(faults, read_error_is_an_error_never_a_value)
{
    th_put(db, NULL, "k", "value");
    rc_fault_arm(FAULT_READ, 0, 1, EIO);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "k", 1, &v), RC_EIO);
    cr_assert_null(v.data);
    cr_assert(th_has(db, NULL, "k", "value"), "the next read works");
}

Test(faults, failed_rotation_is_refused_and_retried)
{
    rc_close(db);
    open_mode(RC_SYNC_NONE);
    char val[1000];
    srand(11);
    for (size_t i = 0; i + 1 < sizeof(val); i++)
        val[i] = (char)('!' + rand() % 90);
    val[sizeof(val) - 1] = 0;
    rc_fault_arm(FAULT_CREATE, 0, 3, ENOSPC);
    char k[16];
    int refused = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "r%d", i);
        int rc = rc_put(db, NULL, k, strlen(k), val, strlen(val), NULL);
        if (rc)
            refused++;
        cr_assert(rc == 0 || rc == RC_ENOSPC, "rc %d", rc);
        if (rc)
            cr_assert_eq(th_has(db, NULL, k, val), 0);
    }
    /* the background hint writer may take some of the three failures */
    cr_assert_geq(refused, 1, "no rotation was refused");
    cr_assert_leq(refused, 3);
    rc_close(db);
    open_mode(RC_SYNC_NONE);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 300 - (uint64_t)refused);
}

/* A real full disk: a 4 MiB tmpfs. Skipped where mounting is not allowed. */
Test(faults, real_full_disk_on_tmpfs, .timeout = 600)
{
    char *mnt = th_tmpdir();
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        th_rmdir(mnt);
        cr_skip_test("cannot mount a tmpfs here (%s)", strerror(errno));
    }
    tmpfs_mnt = mnt;
    char path[600];
    snprintf(path, sizeof(path), "%s/db", mnt);
    rc_options o;
    th_options(&o);
    th_sync_always(&o);
    o.segment_bytes = 1 << 20;
    rc_db *d;
    cr_assert_eq(rc_open(path, &o, &d), 0, "%s", rc_last_error_message());
    char val[2000];
    memset(val, 'z', sizeof(val));
    char k[16];
    int stored = 0, rc = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof(k), "d%d", i);
        for (int j = 0; j < 8; j++)
            val[j] = (char)('a' + (i * 7 + j) % 26); /* defeat compression */
        rc = rc_put(d, NULL, k, strlen(k), val, sizeof(val), NULL);
        if (rc)
            break;
        stored++;
    }
    cr_assert_eq(rc, RC_ENOSPC, "expected a full disk, got %s", rc_strerror(rc));
    cr_assert_gt(stored, 100);
    snprintf(k, sizeof(k), "d%d", 0);
    rc_value v;
    cr_assert_eq(rc_get(d, NULL, k, strlen(k), &v), 0, "reads must keep working");
    rc_value_free(&v);
    /* free space: grow the file system, as an operator would */
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=16m"), 0);
    cr_assert_eq(rc_put(d, NULL, "after", 5, "ok", 2, NULL), 0, "writes did not come back: %s",
                 rc_last_error_message());
    rc_close(d);
    cr_assert_eq(rc_open(path, &o, &d), 0);
    rc_stats st;
    rc_stats_db(d, &st);
    cr_assert_eq(st.live_keys, (uint64_t)stored + 1);
    rc_close(d);
}
