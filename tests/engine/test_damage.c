/* Damage is never silent, and dropped keyspaces give their memory back.
 *
 * - A cut at the end of a segment that was not being written (a sealed one,
 *   or the newest after a clean close) is reported: rc_stats.lost_bytes,
 *   rc_damage_report (file and offset), and strict mode refuses to open.
 * - A record found corrupt by a read is dropped from the keydir once and
 *   counted (rc_stats.corrupt_reads); every read then answers RC_ENOTFOUND,
 *   also from many threads at once.
 * - Dropping keyspaces frees their keydirs: what stays per dropped keyspace
 *   is a small handle (rc_stats.keyspace_bytes), and a reopen keeps none. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = th_tmpdir();
}
static void teardown(void)
{
    th_rmdir(dir);
}
TestSuite(damage, .init = setup, .fini = teardown);

static rc_db *open_db(bool strict, int expect)
{
    rc_options o;
    th_options(&o);
    o.strict = strict;
    rc_db *db = NULL;
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, expect, "open: %d %s", rc, rc_last_error_message());
    return db;
}

/* The newest segment file holding records; its size. */
static long long newest_segment(char *name)
{
    char names[512][64];
    int nd = th_list(dir, ".data", names, 512);
    cr_assert_gt(nd, 0);
    for (int i = nd - 1; i >= 0; i--) {
        long long sz = th_file_size(th_path(dir, names[i]));
        if (sz > 40) {
            strcpy(name, names[i]);
            return sz;
        }
    }
    cr_assert_fail("no segment with records");
    return 0;
}

static void cut(const char *name, long long bytes)
{
    const char *p = th_path(dir, name);
    long long sz = th_file_size(p);
    cr_assert_eq(truncate(p, sz - bytes), 0);
}

static void assert_one_damage(rc_db *db, const char *name, bool torn_tail)
{
    rc_damage *d = NULL;
    size_t n = 0;
    cr_assert_eq(rc_damage_report(db, &d, &n), 0);
    cr_assert_eq(n, 1, "%zu damaged files reported", n);
    cr_assert_eq(d[0].segment_id, strtoull(name, NULL, 10));
    cr_assert_gt(d[0].bytes, 0);
    cr_assert_gt(d[0].offset, 0);
    cr_assert_eq(d[0].torn_tail, torn_tail);
    rc_damage_free(d);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.damaged_files, 1);
    if (torn_tail)
        cr_assert_eq(st.lost_bytes, 0);
    else
        cr_assert_gt(st.lost_bytes, 0);
}

Test(damage, cut_end_of_a_sealed_segment_is_reported_and_strict_refuses)
{
    rc_db *db = open_db(false, 0);
    char k[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        th_put(db, NULL, k, "acknowledged");
    }
    rc_close(db);
    char name[64];
    newest_segment(name);
    db = open_db(false, 0);
    th_put(db, NULL, "later", "x"); /* NAME is sealed from now on */
    rc_close(db);
    cut(name, 5);

    db = open_db(true, RC_ECORRUPT);
    cr_assert(strstr(rc_last_error_message(), name) != NULL, "the error names the file: %s",
              rc_last_error_message());
    db = open_db(false, 0);
    assert_one_damage(db, name, false);
    cr_assert(!th_has(db, NULL, "k49", "acknowledged")); /* the loss itself */
    cr_assert(th_has(db, NULL, "k48", "acknowledged"));
    cr_assert(th_has(db, NULL, "later", "x"));
    rc_close(db);
}

Test(damage, cut_tombstone_of_the_newest_segment_after_a_clean_close_is_reported)
{
    rc_db *db = open_db(false, 0);
    th_put(db, NULL, "gone", "old value");
    cr_assert_eq(rc_delete(db, NULL, "gone", 4, NULL), 0);
    rc_close(db);
    char name[64];
    newest_segment(name);
    cut(name, 3); /* into the tombstone: "gone" comes back */

    open_db(true, RC_ECORRUPT);
    db = open_db(false, 0);
    assert_one_damage(db, name, false);
    rc_close(db);
}

Test(damage, torn_tail_after_a_crash_is_reported_but_not_lost_data)
{
    rc_db *db = open_db(false, 0);
    th_put(db, NULL, "a", "1");
    th_put(db, NULL, "b", "2");
    /* a crash: no clean close, so no hint for the active segment */
    char name[64];
    newest_segment(name);
    int fd = open(th_path(dir, name), O_RDWR | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "\x07garbage", 8), 8);
    close(fd);
    rc_options o;
    th_options(&o);
    o.read_only = true; /* the writer still holds the lock: read the damage */
    rc_db *ro = NULL;
    cr_assert_eq(rc_open(dir, &o, &ro), 0, "%s", rc_last_error_message());
    assert_one_damage(ro, name, true);
    rc_close(ro);
    rc_close(db);
}

/* Flip a byte inside VICTIM's record (the only one holding TAG) in place. */
static void flip_record_of(const char *tag)
{
    char name[64];
    long long sz = newest_segment(name);
    int fd = open(th_path(dir, name), O_RDWR);
    cr_assert_geq(fd, 0);
    char *buf = malloc((size_t)sz);
    cr_assert_eq(pread(fd, buf, (size_t)sz, 0), sz);
    char *hit = memmem(buf, (size_t)sz, tag, strlen(tag));
    cr_assert(hit != NULL);
    long long at = hit - buf;
    uint8_t b = (uint8_t)(buf[at] ^ 0x20);
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
    free(buf);
}

Test(damage, a_record_found_corrupt_is_counted_once_then_absent)
{
    rc_db *db = open_db(false, 0);
    th_put(db, NULL, "victim", "VICTIM-VALUE");
    th_put(db, NULL, "other", "fine");
    flip_record_of("VICTIM-VALUE");
    rc_value v;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rc_get(db, NULL, "victim", 6, &v), RC_ENOTFOUND, "read %d", i);
        cr_assert_eq(rc_get_meta(db, NULL, "victim", 6, &v), RC_ENOTFOUND);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_reads, 1);
    cr_assert_eq(st.live_keys, 1);
    /* a listing with values and a batch read agree */
    rc_list *l = NULL;
    rc_list_opts lo = {.values = true};
    cr_assert_eq(rc_list_keys(db, NULL, &lo, &l), 0);
    cr_assert_eq(l->count, 1);
    rc_list_free(l);
    rc_op op = {.kind = RC_OP_GET, .key = "victim", .klen = 6};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_eq(op.result.seq, 0);
    cr_assert(th_has(db, NULL, "other", "fine"));
    /* the key can be written again */
    th_put(db, NULL, "victim", "new");
    cr_assert(th_has(db, NULL, "victim", "new"));
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_reads, 1);
    rc_close(db);
}

typedef struct reader_arg {
    rc_db *db;
    int notfound, other;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    for (int i = 0; i < 200; i++) {
        rc_value v;
        int rc = rc_get(a->db, NULL, "victim", 6, &v);
        if (rc == RC_ENOTFOUND)
            a->notfound++;
        else
            a->other++;
        if (rc == 0)
            rc_value_free(&v);
    }
    return NULL;
}

Test(damage, concurrent_readers_of_a_corrupt_record_all_see_it_absent)
{
    rc_db *db = open_db(false, 0);
    th_put(db, NULL, "victim", "VICTIM-VALUE");
    flip_record_of("VICTIM-VALUE");
    pthread_t t[4];
    reader_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (reader_arg){.db = db};
        pthread_create(&t[i], NULL, reader, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(a[i].other, 0, "a read answered something else than absent");
        cr_assert_eq(a[i].notfound, 200);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_reads, 1);
    rc_close(db);
}

Test(damage, dropped_keyspaces_release_their_memory_and_are_not_rebuilt)
{
    rc_db *db = open_db(false, 0);
    rc_stats st0, st;
    rc_stats_db(db, &st0);
    enum { CYCLES = 1000 };
    char name[32];
    for (int i = 0; i < CYCLES; i++) {
        rc_keyspace *ks;
        snprintf(name, sizeof(name), "b:bucket%04d", i);
        cr_assert_eq(rc_keyspace_open(db, name, RC_KS_CREATE, &ks), 0);
        th_put(db, ks, "key", "value");
        cr_assert_eq(rc_keyspace_drop(db, name), 0);
        rc_value v;
        cr_assert_eq(rc_get(db, ks, "key", 3, &v), RC_ENOKEYSPACE); /* the handle stays safe */
    }
    rc_stats_db(db, &st);
    cr_assert_eq(st.dropped_keyspaces, CYCLES);
    cr_assert_eq(st.keyspaces, st0.keyspaces);
    /* a keydir alone is tens of KiB; a dropped keyspace keeps ~200 bytes */
    uint64_t per = (st.keyspace_bytes - st0.keyspace_bytes) / CYCLES;
    cr_assert_lt(per, 400, "%llu bytes kept per dropped keyspace", (unsigned long long)per);
    rc_close(db);

    db = open_db(false, 0);
    rc_stats_db(db, &st);
    cr_assert_eq(st.dropped_keyspaces, 0);
    cr_assert_eq(st.keyspaces, st0.keyspaces);
    per = (st.keyspace_bytes - st0.keyspace_bytes) / CYCLES;
    /* what remains is the catalogue's entry per name (ids are never reused)
     * and a slot per id in the id index */
    cr_assert_lt(per, 128, "%llu bytes per dropped keyspace after a reopen",
                 (unsigned long long)per);
    rc_close(db);
}
