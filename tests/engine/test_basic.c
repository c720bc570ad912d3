/* Basic engine behaviour through the public API: put/get/delete/overwrite,
 * persistence, rotation, limits, the directory lock, sync modes, and
 * concurrent writers and readers. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dir;
static rc_db *db;

static void setup(void)
{
    dir = th_tmpdir();
    rc_options o;
    th_options(&o);
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open: %s", rc_last_error_message());
}

static void teardown(void)
{
    rc_close(db);
    db = NULL;
    th_rmdir(dir);
}

static void reopen(const rc_options *o)
{
    cr_assert_eq(rc_close(db), 0);
    rc_options def;
    if (!o) {
        th_options(&def);
        o = &def;
    }
    int rc = rc_open(dir, o, &db);
    cr_assert_eq(rc, 0, "reopen: %s", rc_last_error_message());
}

TestSuite(basic, .init = setup, .fini = teardown);

Test(basic, put_get_delete_overwrite)
{
    th_put(db, NULL, "alpha", "one");
    cr_assert(th_has(db, NULL, "alpha", "one"));
    th_put(db, NULL, "alpha", "two");
    cr_assert(th_has(db, NULL, "alpha", "two"));
    uint64_t seq = 0;
    cr_assert_eq(rc_delete(db, NULL, "alpha", 5, &seq), 0);
    cr_assert_gt(seq, 0);
    cr_assert_eq(th_has(db, NULL, "alpha", "two"), 0);
    cr_assert_eq(rc_delete(db, NULL, "alpha", 5, NULL), RC_ENOTFOUND);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "missing", 7, &v), RC_ENOTFOUND);
}

Test(basic, sequence_numbers_increase_and_are_returned)
{
    uint64_t a, b;
    cr_assert_eq(rc_put(db, NULL, "k", 1, "v", 1, &a), 0);
    cr_assert_eq(rc_put(db, NULL, "k", 1, "w", 1, &b), 0);
    cr_assert_gt(b, a);
    rc_value v;
    cr_assert_eq(rc_get_meta(db, NULL, "k", 1, &v), 0);
    cr_assert_eq(v.seq, b);
    cr_assert_eq(v.len, 1);
    cr_assert_null(v.data);
}

Test(basic, empty_value_and_binary_bytes)
{
    uint8_t key[3] = {0x00, 0xFF, 0x00};
    uint8_t val[256];
    for (int i = 0; i < 256; i++)
        val[i] = (uint8_t)i;
    cr_assert_eq(rc_put(db, NULL, key, 3, val, 256, NULL), 0);
    cr_assert_eq(rc_put(db, NULL, "empty", 5, "", 0, NULL), 0);
    reopen(NULL);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, key, 3, &v), 0);
    cr_assert_eq(v.len, 256);
    cr_assert(memcmp(v.data, val, 256) == 0);
    rc_value_free(&v);
    cr_assert_eq(rc_get(db, NULL, "empty", 5, &v), 0);
    cr_assert_eq(v.len, 0);
    rc_value_free(&v);
}

Test(basic, persists_across_close_and_open)
{
    char k[32], val[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "key%d", i);
        snprintf(val, sizeof(val), "value-%d-%d", i, i * 7);
        th_put(db, NULL, k, val);
    }
    for (int i = 0; i < 2000; i += 3) {
        snprintf(k, sizeof(k), "key%d", i);
        cr_assert_eq(rc_delete(db, NULL, k, strlen(k), NULL), 0);
    }
    reopen(NULL);
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "key%d", i);
        snprintf(val, sizeof(val), "value-%d-%d", i, i * 7);
        cr_assert_eq(th_has(db, NULL, k, val), i % 3 != 0, "key %s", k);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 2000 - 667);
}

Test(basic, rotation_makes_many_segments_with_hints)
{
    char k[32], val[200];
    memset(val, 'x', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "rot%05d", i);
        val[0] = (char)('a' + i % 26);
        th_put(db, NULL, k, val);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_geq(st.segments, 8, "only %llu segments", (unsigned long long)st.segments);
    reopen(NULL);
    char names[256][64];
    int nd = th_list(dir, ".data", names, 256);
    int nh = th_list(dir, ".hint", names, 256);
    cr_assert_geq(nh, nd - 1, "%d data files but %d hints", nd, nh);
    rc_stats_db(db, &st);
    cr_assert_gt(st.hint_files_used, 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "rot%05d", i);
        val[0] = (char)('a' + i % 26);
        cr_assert(th_has(db, NULL, k, val), "lost %s", k);
    }
    /* no segment file exceeds the limit (each record is far smaller) */
    nd = th_list(dir, ".data", names, 256);
    for (int i = 0; i < nd; i++)
        cr_assert_leq(th_file_size(th_path(dir, names[i])), 64 * 1024, "%s", names[i]);
}

Test(basic, record_larger_than_a_segment_gets_its_own)
{
    size_t n = 200 * 1024;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 131 + 7); /* incompressible enough */
    cr_assert_eq(rc_put(db, NULL, "big", 3, big, n, NULL), 0);
    th_put(db, NULL, "after", "x");
    reopen(NULL);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "big", 3, &v), 0);
    cr_assert_eq(v.len, n);
    cr_assert(memcmp(v.data, big, n) == 0);
    rc_value_free(&v);
    cr_assert(th_has(db, NULL, "after", "x"));
    free(big);
}

Test(basic, key_and_value_limits)
{
    char key[RC_KEY_MAX + 1];
    memset(key, 'k', sizeof(key));
    cr_assert_eq(rc_put(db, NULL, key, 0, "v", 1, NULL), RC_EKEYSIZE);
    cr_assert_eq(rc_put(db, NULL, key, RC_KEY_MAX + 1, "v", 1, NULL), RC_EKEYSIZE);
    cr_assert_eq(rc_put(db, NULL, key, RC_KEY_MAX, "v", 1, NULL), 0);
    cr_assert_eq(rc_put(db, NULL, "k", 1, "v", (size_t)RC_VALUE_MAX + 1, NULL), RC_EVALUESIZE);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, key, RC_KEY_MAX + 1, &v), RC_EKEYSIZE);
    cr_assert_eq(rc_get(db, NULL, key, RC_KEY_MAX, &v), 0);
    rc_value_free(&v);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 1, "a refused write changed the key count");
}

Test(basic, second_writer_is_refused_with_a_clear_error)
{
    rc_db *other = NULL;
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &other), RC_ELOCKED);
    cr_assert_null(other);
    cr_assert_not_null(strstr(rc_last_error_message(), "in use"));
    /* and from another process */
    pid_t pid = fork();
    if (pid == 0) {
        rc_db *d2 = NULL;
        _exit(rc_open(dir, &o, &d2) == RC_ELOCKED ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* a read-only opener is allowed alongside */
    o.read_only = true;
    th_put(db, NULL, "visible", "yes");
    cr_assert_eq(rc_open(dir, &o, &other), 0, "%s", rc_last_error_message());
    cr_assert(th_has(other, NULL, "visible", "yes"));
    cr_assert_eq(rc_put(other, NULL, "x", 1, "y", 1, NULL), RC_EREADONLY);
    rc_close(other);
}

Test(basic, missing_directory_without_create)
{
    rc_options o;
    th_options(&o);
    o.create_if_missing = false;
    rc_db *d2 = NULL;
    cr_assert_eq(rc_open(th_path(dir, "nope"), &o, &d2), RC_ENOTFOUND);
}

static void sync_mode_roundtrip(rc_sync_mode mode)
{
    rc_options o;
    th_options(&o);
    o.sync = mode;
    o.sync_interval_ms = 5;
    reopen(&o);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%d", i);
        th_put(db, NULL, k, "durable");
    }
    rc_stats st;
    rc_stats_db(db, &st);
    if (mode == RC_SYNC_ALWAYS)
        cr_assert_geq(st.fsyncs, 1);
    cr_assert_eq(rc_sync(db), 0);
    reopen(&o);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%d", i);
        cr_assert(th_has(db, NULL, k, "durable"));
    }
}

Test(basic, sync_always)
{
    sync_mode_roundtrip(RC_SYNC_ALWAYS);
}
Test(basic, sync_interval)
{
    sync_mode_roundtrip(RC_SYNC_INTERVAL);
}
Test(basic, sync_none)
{
    sync_mode_roundtrip(RC_SYNC_NONE);
}

Test(basic, interval_mode_syncs_in_the_background)
{
    rc_options o;
    th_options(&o);
    o.sync = RC_SYNC_INTERVAL;
    o.sync_interval_ms = 10;
    reopen(&o);
    th_put(db, NULL, "a", "b");
    rc_stats st;
    for (int i = 0; i < 12000; i++) { /* 120 s: a net for a hang */
        rc_stats_db(db, &st);
        if (st.fsyncs > 0)
            break;
        usleep(10000);
    }
    cr_assert_gt(st.fsyncs, 0, "no background fdatasync within 120 s");
}

/* 8 threads: each writes its own keys and reads everyone's; at the end
 * every key holds the last value its writer wrote. */
typedef struct worker {
    rc_db *db;
    int id;
    int errors;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char k[32], v[64];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 400; i++) {
            snprintf(k, sizeof(k), "t%d-%d", w->id, i);
            snprintf(v, sizeof(v), "r%d-t%d-%d", round, w->id, i);
            if (rc_put(w->db, NULL, k, strlen(k), v, strlen(v), NULL) != 0)
                w->errors++;
            /* read a key of another thread: absent or a well-formed value */
            snprintf(k, sizeof(k), "t%d-%d", (w->id + 1) % 8, i);
            rc_value val;
            int rc = rc_get(w->db, NULL, k, strlen(k), &val);
            if (rc == 0) {
                char expect[16];
                snprintf(expect, sizeof(expect), "-t%d-%d", (w->id + 1) % 8, i);
                if (!strstr(val.data, expect))
                    w->errors++;
                rc_value_free(&val);
            } else if (rc != RC_ENOTFOUND) {
                w->errors++;
            }
        }
    }
    return NULL;
}

Test(basic, eight_threads_write_and_read_consistently)
{
    pthread_t th[8];
    worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.db = db, .id = i};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].errors, 0, "thread %d saw %d errors", i, w[i].errors);
    }
    reopen(NULL);
    char k[32], v[64];
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 400; i++) {
            snprintf(k, sizeof(k), "t%d-%d", t, i);
            snprintf(v, sizeof(v), "r4-t%d-%d", t, i);
            cr_assert(th_has(db, NULL, k, v), "key %s", k);
        }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 3200);
}

Test(basic, strerror_names_every_code)
{
    for (int e = RC_ENOTEMPTY; e <= 0; e++)
        cr_assert_str_neq(rc_strerror(e), "unknown error", "code %d", e);
    cr_assert_str_eq(rc_strerror(-999), "unknown error");
}

Test(basic, a_call_never_reports_an_earlier_calls_detail)
{
    /* a failure with a detail naming another keyspace ... */
    cr_assert_eq(rc_keyspace_drop(db, "someone-elses"), RC_ENOKEYSPACE);
    cr_assert_not_null(strstr(rc_last_error_message(), "someone-elses"));
    /* ... is gone after the next call: one that succeeds, and one that
     * fails on a path with no detail of its own (a plain absent key) */
    cr_assert_eq(rc_put(db, NULL, "k", 1, "v", 1, NULL), 0);
    cr_assert_str_eq(rc_last_error_message(), "");
    cr_assert_eq(rc_keyspace_drop(db, "someone-elses"), RC_ENOKEYSPACE);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "absent", 6, &v), RC_ENOTFOUND);
    cr_assert(strstr(rc_last_error_message(), "someone-elses") == NULL, "stale detail: %s",
              rc_last_error_message());
    rc_error_clear();
    cr_assert_str_eq(rc_last_error_message(), "");
}

Test(basic, a_keyspace_value_limit_covers_every_growing_write)
{
    rc_keyspace *ks = NULL;
    cr_assert_eq(rc_keyspace_open(db, "small", RC_KS_CREATE, &ks), 0);
    cr_assert_eq(rc_keyspace_set_max_value(ks, 8), 0);
    cr_assert_eq(rc_keyspace_set_max_value(ks, (uint64_t)RC_VALUE_MAX + 1), RC_EINVAL);
    cr_assert_eq(rc_put(db, ks, "p", 1, "123456789", 9, NULL), RC_EVALUESIZE);
    cr_assert_eq(rc_put(db, ks, "p", 1, "12345678", 8, NULL), 0);
    rc_op app = {.kind = RC_OP_APPEND, .ks = ks, .key = "p", .klen = 1, .val = "9", .vlen = 1};
    cr_assert_eq(rc_apply(db, &app, 1, NULL), RC_EVALUESIZE);
    rc_op inc = {.kind = RC_OP_INCR, .ks = ks, .key = "n", .klen = 1};
    inc.by.type = RC_TYPE_INT;
    inc.by.i = 99999999;
    cr_assert_eq(rc_apply(db, &inc, 1, NULL), 0);
    rc_value_free(&inc.result);
    inc.by.i = 1;
    cr_assert_eq(rc_apply(db, &inc, 1, NULL), RC_EVALUESIZE, "9 digits passed an 8-byte limit");
    rc_op gs = {
        .kind = RC_OP_GETSET, .ks = ks, .key = "p", .klen = 1, .val = "123456789", .vlen = 9};
    cr_assert_eq(rc_apply(db, &gs, 1, NULL), RC_EVALUESIZE);
    rc_value v;
    cr_assert_eq(rc_get(db, ks, "p", 1, &v), 0);
    cr_assert_eq(v.len, 8);
    rc_value_free(&v);
    cr_assert_eq(rc_get(db, ks, "n", 1, &v), 0);
    cr_assert_eq(v.len, 8);
    rc_value_free(&v);
    /* other keyspaces keep the engine's limit */
    cr_assert_eq(rc_put(db, NULL, "p", 1, "123456789", 9, NULL), 0);
}
