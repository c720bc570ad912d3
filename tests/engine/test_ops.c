/* Typed values and atomic read-modify-write: incr (int, float, overflow,
 * type errors), append, set-if-absent, get-and-set, compare-and-swap, and
 * their behaviour under concurrency; zstd compression of large values. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static rc_db *db;

static void setup(void)
{
    dir = th_tmpdir();
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &db), 0);
}
static void teardown(void)
{
    rc_close(db);
    th_rmdir(dir);
}
TestSuite(ops, .init = setup, .fini = teardown);

static int incr_int(const char *k, int64_t by, rc_value *out)
{
    rc_op op = {
        .kind = RC_OP_INCR, .key = k, .klen = strlen(k), .by = {.type = RC_TYPE_INT, .i = by}};
    int rc = rc_apply(db, &op, 1, NULL);
    if (out)
        *out = op.result;
    else
        rc_value_free(&op.result);
    return rc;
}

static int put_typed(const char *k, const char *v, rc_type t)
{
    rc_op op = {
        .kind = RC_OP_PUT, .key = k, .klen = strlen(k), .val = v, .vlen = strlen(v), .type = t};
    return rc_apply(db, &op, 1, NULL);
}

Test(ops, typed_values_keep_their_type)
{
    cr_assert_eq(put_typed("i", "42", RC_TYPE_INT), 0);
    cr_assert_eq(put_typed("f", "2.5", RC_TYPE_FLOAT), 0);
    cr_assert_eq(put_typed("j", "{\"a\":1}", RC_TYPE_JSON), 0);
    cr_assert_eq(put_typed("r", "bytes", RC_TYPE_RAW), 0);
    rc_value v;
    const char *keys[] = {"i", "f", "j", "r"};
    rc_type types[] = {RC_TYPE_INT, RC_TYPE_FLOAT, RC_TYPE_JSON, RC_TYPE_RAW};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rc_get(db, NULL, keys[i], 1, &v), 0);
        cr_assert_eq(v.type, types[i], "key %s", keys[i]);
        rc_value_free(&v);
    }
}

Test(ops, incr_creates_at_zero_and_adds)
{
    rc_value v;
    cr_assert_eq(incr_int("c", 5, &v), 0);
    cr_assert_str_eq(v.data, "5");
    cr_assert_eq(v.type, RC_TYPE_INT);
    rc_value_free(&v);
    cr_assert_eq(incr_int("c", -7, &v), 0);
    cr_assert_str_eq(v.data, "-2");
    rc_value_free(&v);
    cr_assert(th_has(db, NULL, "c", "-2"));
}

Test(ops, float_increments)
{
    rc_op op = {.kind = RC_OP_INCR, .key = "f", .klen = 1, .by = {.type = RC_TYPE_FLOAT, .f = 0.1}};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    rc_value_free(&op.result);
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_eq(op.result.type, RC_TYPE_FLOAT);
    cr_assert_str_eq(op.result.data, "0.2");
    rc_value_free(&op.result);
    /* int + float becomes a float */
    cr_assert_eq(put_typed("n", "3", RC_TYPE_INT), 0);
    rc_op op2 = {
        .kind = RC_OP_INCR, .key = "n", .klen = 1, .by = {.type = RC_TYPE_FLOAT, .f = 0.5}};
    cr_assert_eq(rc_apply(db, &op2, 1, NULL), 0);
    cr_assert_str_eq(op2.result.data, "3.5");
    rc_value_free(&op2.result);
    /* a whole float result still reads as a float */
    rc_op op3 = {
        .kind = RC_OP_INCR, .key = "n", .klen = 1, .by = {.type = RC_TYPE_FLOAT, .f = 0.5}};
    cr_assert_eq(rc_apply(db, &op3, 1, NULL), 0);
    cr_assert_str_eq(op3.result.data, "4.0");
    cr_assert_eq(op3.result.type, RC_TYPE_FLOAT);
    rc_value_free(&op3.result);
}

Test(ops, overflow_is_an_error_not_a_wrap)
{
    cr_assert_eq(put_typed("big", "9223372036854775806", RC_TYPE_INT), 0);
    cr_assert_eq(incr_int("big", 1, NULL), 0);
    cr_assert_eq(incr_int("big", 1, NULL), RC_EOVERFLOW);
    cr_assert(th_has(db, NULL, "big", "9223372036854775807"));
    cr_assert_eq(put_typed("small", "-9223372036854775808", RC_TYPE_INT), 0);
    cr_assert_eq(incr_int("small", -1, NULL), RC_EOVERFLOW);
}

Test(ops, type_mismatch_is_a_distinct_error)
{
    cr_assert_eq(put_typed("raw", "hello", RC_TYPE_RAW), 0);
    cr_assert_eq(incr_int("raw", 1, NULL), RC_ETYPE);
    cr_assert(th_has(db, NULL, "raw", "hello"));
    cr_assert_eq(put_typed("num", "7", RC_TYPE_INT), 0);
    rc_op ap = {.kind = RC_OP_APPEND, .key = "num", .klen = 3, .val = "x", .vlen = 1};
    cr_assert_eq(rc_apply(db, &ap, 1, NULL), RC_ETYPE);
    cr_assert(th_has(db, NULL, "num", "7"));
}

Test(ops, append_concatenates)
{
    rc_op ap = {.kind = RC_OP_APPEND, .key = "log", .klen = 3, .val = "ab", .vlen = 2};
    cr_assert_eq(rc_apply(db, &ap, 1, NULL), 0);
    rc_value_free(&ap.result);
    ap.val = "cd";
    cr_assert_eq(rc_apply(db, &ap, 1, NULL), 0);
    cr_assert_str_eq(ap.result.data, "abcd");
    rc_value_free(&ap.result);
    cr_assert(th_has(db, NULL, "log", "abcd"));
}

Test(ops, set_if_absent)
{
    rc_op op = {.kind = RC_OP_PUT,
                .key = "once",
                .klen = 4,
                .val = "first",
                .vlen = 5,
                .cond = RC_IF_ABSENT};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    op.val = "second";
    op.vlen = 6;
    cr_assert_eq(rc_apply(db, &op, 1, NULL), RC_EEXISTS);
    cr_assert(th_has(db, NULL, "once", "first"));
}

Test(ops, getset_returns_previous)
{
    rc_op op = {.kind = RC_OP_GETSET, .key = "g", .klen = 1, .val = "one", .vlen = 3};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_eq(op.result.seq, 0, "absent before");
    cr_assert_null(op.result.data);
    op.val = "two";
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_str_eq(op.result.data, "one");
    cr_assert_gt(op.result.seq, 0);
    rc_value_free(&op.result);
    cr_assert(th_has(db, NULL, "g", "two"));
}

Test(ops, compare_and_swap_on_sequence)
{
    uint64_t s1;
    cr_assert_eq(rc_put(db, NULL, "cas", 3, "v1", 2, &s1), 0);
    rc_op op = {.kind = RC_OP_PUT,
                .key = "cas",
                .klen = 3,
                .val = "v2",
                .vlen = 2,
                .cond = RC_IF_SEQ,
                .if_seq = s1 + 100};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), RC_ECONFLICT);
    op.if_seq = s1;
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_gt(op.seq, s1);
    cr_assert_eq(rc_apply(db, &op, 1, NULL), RC_ECONFLICT, "stale seq must fail");
    /* seq 0 means 'absent' */
    rc_op create = {.kind = RC_OP_PUT,
                    .key = "new",
                    .klen = 3,
                    .val = "x",
                    .vlen = 1,
                    .cond = RC_IF_SEQ,
                    .if_seq = 0};
    cr_assert_eq(rc_apply(db, &create, 1, NULL), 0);
    cr_assert_eq(rc_apply(db, &create, 1, NULL), RC_ECONFLICT);
}

typedef struct counter_arg {
    rc_db *db;
    int n;
    int errors;
} counter_arg;

static void *incr_many(void *p)
{
    counter_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        rc_op op = {
            .kind = RC_OP_INCR, .key = "counter", .klen = 7, .by = {.type = RC_TYPE_INT, .i = 1}};
        if (rc_apply(a->db, &op, 1, NULL) != 0)
            a->errors++;
        rc_value_free(&op.result);
    }
    return NULL;
}

Test(ops, eight_threads_increment_exactly, .timeout = 600)
{
    pthread_t th[8];
    counter_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (counter_arg){.db = db, .n = 100000};
        pthread_create(&th[i], NULL, incr_many, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(a[i].errors, 0);
    }
    cr_assert(th_has(db, NULL, "counter", "800000"));
    rc_close(db);
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    cr_assert(th_has(db, NULL, "counter", "800000"));
}

typedef struct cas_arg {
    rc_db *db;
    uint64_t seq;
    int won;
    pthread_barrier_t *bar;
} cas_arg;

static void *cas_once(void *p)
{
    cas_arg *a = p;
    pthread_barrier_wait(a->bar);
    rc_op op = {.kind = RC_OP_PUT,
                .key = "race",
                .klen = 4,
                .val = "mine",
                .vlen = 4,
                .cond = RC_IF_SEQ,
                .if_seq = a->seq};
    a->won = rc_apply(a->db, &op, 1, NULL) == 0;
    return NULL;
}

Test(ops, cas_race_has_exactly_one_winner)
{
    for (int round = 0; round < 50; round++) {
        uint64_t seq;
        cr_assert_eq(rc_put(db, NULL, "race", 4, "start", 5, &seq), 0);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 8);
        pthread_t th[8];
        cas_arg a[8];
        for (int i = 0; i < 8; i++) {
            a[i] = (cas_arg){.db = db, .seq = seq, .bar = &bar};
            pthread_create(&th[i], NULL, cas_once, &a[i]);
        }
        int winners = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            winners += a[i].won;
        }
        pthread_barrier_destroy(&bar);
        cr_assert_eq(winners, 1, "round %d: %d winners", round, winners);
    }
}

Test(ops, large_values_are_compressed_transparently)
{
    size_t n = 64 * 1024;
    char *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = "abcdefgh"[i % 8];
    v[n] = 0;
    cr_assert_eq(rc_put(db, NULL, "big", 3, v, n, NULL), 0);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_lt(st.disk_bytes, n / 4, "not compressed: %llu bytes on disk",
                 (unsigned long long)st.disk_bytes);
    cr_assert_eq(st.live_value_bytes, n, "stats count the user's bytes");
    cr_assert(th_has(db, NULL, "big", v));
    rc_close(db);
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    cr_assert(th_has(db, NULL, "big", v));
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_value_bytes, n);
    free(v);
}

Test(ops, stats_follow_every_change)
{
    th_put(db, NULL, "a", "12345");
    th_put(db, NULL, "b", "xy");
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 2);
    cr_assert_eq(st.live_value_bytes, 7);
    th_put(db, NULL, "a", "1");
    rc_delete(db, NULL, "b", 1, NULL);
    rc_value v;
    rc_get(db, NULL, "a", 1, &v);
    rc_value_free(&v);
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 1);
    cr_assert_eq(st.live_value_bytes, 1);
    cr_assert_eq(st.puts, 3);
    cr_assert_eq(st.deletes, 1);
    cr_assert_eq(st.gets, 1);
    cr_assert_gt(st.dead_bytes, 0);
}

Test(ops, results_tell_what_existed_and_what_was_written)
{
    rc_op put = {.kind = RC_OP_PUT,
                 .key = "e",
                 .klen = 1,
                 .val = "1",
                 .vlen = 1,
                 .type = RC_TYPE_INT,
                 .ttl_ms = 60000};
    cr_assert_eq(rc_apply(db, &put, 1, NULL), 0);
    cr_assert_not(put.existed);
    cr_assert_eq(put.result.type, RC_TYPE_INT);
    cr_assert_eq(put.result.seq, put.seq);
    cr_assert_gt(put.result.expires_at_ms, 0);
    cr_assert_null(put.result.data);
    cr_assert_eq(rc_apply(db, &put, 1, NULL), 0);
    cr_assert(put.existed);
    rc_op two[3] = {
        {.kind = RC_OP_PUT, .key = "n", .klen = 1, .val = "a", .vlen = 1},
        {.kind = RC_OP_PUT, .key = "n", .klen = 1, .val = "b", .vlen = 1},
        {.kind = RC_OP_DELETE, .key = "n", .klen = 1},
    };
    cr_assert_eq(rc_apply(db, two, 3, NULL), 0);
    cr_assert_not(two[0].existed);
    cr_assert(two[1].existed, "the batch's own earlier write counts");
    cr_assert(two[2].existed);
    cr_assert_lt(two[0].seq, two[1].seq, "sequence numbers follow op order");
    cr_assert_lt(two[1].seq, two[2].seq);
}
