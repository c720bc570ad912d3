/* Atomic batches and keyspaces: all-or-none validation, in-batch ordering,
 * gets seeing the pre-batch state, readers never seeing half a batch, and
 * keyspaces created, dropped and listed durably. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
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
static void reopen(void)
{
    rc_close(db);
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
}
TestSuite(batch, .init = setup, .fini = teardown);

#define PUT(k, v)                                                                                  \
    {                                                                                              \
        .kind = RC_OP_PUT, .key = k, .klen = sizeof(k) - 1, .val = v, .vlen = sizeof(v) - 1        \
    }

Test(batch, all_ops_apply_together)
{
    th_put(db, NULL, "gone", "x");
    rc_op ops[] = {
        PUT("k1", "v1"),
        {.kind = RC_OP_DELETE, .key = "gone", .klen = 4},
        {.kind = RC_OP_INCR, .key = "c", .klen = 1, .by = {.type = RC_TYPE_INT, .i = 3}},
        {.kind = RC_OP_GET, .key = "k1", .klen = 2},
        {.kind = RC_OP_DELETE, .key = "never", .klen = 5},
    };
    cr_assert_eq(rc_apply(db, ops, 5, NULL), 0, "%s", rc_last_error_message());
    cr_assert_gt(ops[0].seq, 0);
    cr_assert_gt(ops[1].seq, 0, "delete of a present key writes a tombstone");
    cr_assert_str_eq(ops[2].result.data, "3");
    cr_assert_eq(ops[3].result.seq, 0, "get sees the state before the batch");
    cr_assert_eq(ops[4].seq, 0, "absent key: nothing deleted");
    for (int i = 0; i < 5; i++)
        rc_value_free(&ops[i].result);
    cr_assert(th_has(db, NULL, "k1", "v1"));
    cr_assert_eq(th_has(db, NULL, "gone", "x"), 0);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.batches, 1);
    reopen();
    cr_assert(th_has(db, NULL, "k1", "v1"));
    cr_assert(th_has(db, NULL, "c", "3"));
    cr_assert_eq(th_has(db, NULL, "gone", "x"), 0);
}

Test(batch, later_ops_see_earlier_writes)
{
    rc_op ops[] = {
        PUT("n", "10"),
        {.kind = RC_OP_APPEND, .key = "n", .klen = 1, .val = "0", .vlen = 1},
    };
    ops[0].type = RC_TYPE_RAW;
    cr_assert_eq(rc_apply(db, ops, 2, NULL), 0);
    cr_assert_str_eq(ops[1].result.data, "100");
    rc_value_free(&ops[1].result);
    rc_op ops2[] = {
        {.kind = RC_OP_PUT, .key = "i", .klen = 1, .val = "1", .vlen = 1, .type = RC_TYPE_INT},
        {.kind = RC_OP_INCR, .key = "i", .klen = 1, .by = {.type = RC_TYPE_INT, .i = 1}},
        {.kind = RC_OP_INCR, .key = "i", .klen = 1, .by = {.type = RC_TYPE_INT, .i = 1}},
    };
    cr_assert_eq(rc_apply(db, ops2, 3, NULL), 0);
    cr_assert_str_eq(ops2[2].result.data, "3");
    for (int i = 0; i < 3; i++)
        rc_value_free(&ops2[i].result);
    cr_assert(th_has(db, NULL, "i", "3"));
}

Test(batch, a_failing_op_rejects_the_whole_batch)
{
    th_put(db, NULL, "exists", "orig");
    th_put(db, NULL, "text", "abc");
    char longkey[RC_KEY_MAX + 1];
    memset(longkey, 'x', sizeof(longkey));
    struct {
        rc_op bad;
        int err;
    } cases[] = {
        {{.kind = RC_OP_PUT, .key = longkey, .klen = sizeof(longkey), .val = "v", .vlen = 1},
         RC_EKEYSIZE},
        {{.kind = RC_OP_PUT,
          .key = "exists",
          .klen = 6,
          .val = "v",
          .vlen = 1,
          .cond = RC_IF_ABSENT},
         RC_EEXISTS},
        {{.kind = RC_OP_PUT,
          .key = "exists",
          .klen = 6,
          .val = "v",
          .vlen = 1,
          .cond = RC_IF_SEQ,
          .if_seq = 999999},
         RC_ECONFLICT},
        {{.kind = RC_OP_INCR, .key = "text", .klen = 4, .by = {.type = RC_TYPE_INT, .i = 1}},
         RC_ETYPE},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        rc_op ops[] = {PUT("a", "1"), PUT("exists", "changed"), cases[c].bad, PUT("b", "2")};
        size_t failed = 99;
        cr_assert_eq(rc_apply(db, ops, 4, &failed), cases[c].err, "case %zu", c);
        cr_assert_eq(failed, 2, "case %zu: failed index %zu", c, failed);
        cr_assert_eq(th_has(db, NULL, "a", "1"), 0, "case %zu", c);
        cr_assert_eq(th_has(db, NULL, "b", "2"), 0, "case %zu", c);
        cr_assert(th_has(db, NULL, "exists", "orig"), "case %zu", c);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 2);
}

Test(batch, too_many_ops_is_a_limit_error)
{
    rc_op op = PUT("k", "v");
    cr_assert_eq(rc_apply(db, &op, RC_BATCH_MAX + 1, NULL), RC_ELIMIT);
}

Test(batch, large_batch_of_ten_thousand)
{
    size_t n = 10000;
    rc_op *ops = calloc(n, sizeof(*ops));
    char(*keys)[16] = malloc(n * 16);
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], 16, "bk%05zu", i);
        ops[i] = (rc_op){.kind = RC_OP_PUT,
                         .key = keys[i],
                         .klen = strlen(keys[i]),
                         .val = keys[i],
                         .vlen = strlen(keys[i])};
    }
    cr_assert_eq(rc_apply(db, ops, n, NULL), 0, "%s", rc_last_error_message());
    reopen();
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, n);
    free(ops);
    free(keys);
}

/* A writer flips 16 keys between generation g and g+1 in one batch; readers
 * multi-get the 16 keys in one rc_apply and must see one generation. */
typedef struct flip {
    rc_db *db;
    atomic_bool stop;
    atomic_int torn;
    atomic_int reads;
} flip;

static void *flipper(void *p)
{
    flip *f = p;
    char keys[16][8], vals[16][16];
    for (int g = 0; g < 2000; g++) {
        rc_op ops[16];
        for (int i = 0; i < 16; i++) {
            snprintf(keys[i], 8, "f%02d", i);
            snprintf(vals[i], 16, "%d", g);
            ops[i] = (rc_op){.kind = RC_OP_PUT,
                             .key = keys[i],
                             .klen = 3,
                             .val = vals[i],
                             .vlen = strlen(vals[i])};
        }
        rc_apply(f->db, ops, 16, NULL);
    }
    atomic_store(&f->stop, true);
    return NULL;
}

static void *reader(void *p)
{
    flip *f = p;
    char keys[16][8];
    for (int i = 0; i < 16; i++)
        snprintf(keys[i], 8, "f%02d", i);
    while (!atomic_load(&f->stop)) {
        rc_op ops[16];
        for (int i = 0; i < 16; i++)
            ops[i] = (rc_op){.kind = RC_OP_GET, .key = keys[i], .klen = 3};
        if (rc_apply(f->db, ops, 16, NULL) != 0)
            continue;
        f->reads++;
        for (int i = 1; i < 16; i++) {
            const char *a = ops[0].result.data ? ops[0].result.data : "";
            const char *b = ops[i].result.data ? ops[i].result.data : "";
            if (strcmp(a, b) != 0)
                f->torn++;
        }
        for (int i = 0; i < 16; i++)
            rc_value_free(&ops[i].result);
    }
    return NULL;
}

Test(batch, readers_never_see_half_a_batch, .timeout = 600)
{
    flip f = {.db = db};
    pthread_t w, r1, r2;
    pthread_create(&w, NULL, flipper, &f);
    pthread_create(&r1, NULL, reader, &f);
    pthread_create(&r2, NULL, reader, &f);
    pthread_join(w, NULL);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    cr_assert_gt(f.reads, 0);
    cr_assert_eq(f.torn, 0, "%d torn reads out of %d", f.torn, f.reads);
}

/* ---- keyspaces */

Test(batch, keyspaces_are_separate_and_persistent)
{
    rc_keyspace *a, *b;
    cr_assert_eq(rc_keyspace_open(db, "alpha", RC_KS_CREATE, &a), 0);
    cr_assert_eq(rc_keyspace_open(db, "beta", RC_KS_CREATE, &b), 0);
    cr_assert_eq(rc_keyspace_open(db, "alpha", RC_KS_CREATE | RC_KS_EXCL, &a), RC_EEXISTS);
    rc_keyspace *none;
    cr_assert_eq(rc_keyspace_open(db, "nope", 0, &none), RC_ENOKEYSPACE);
    th_put(db, a, "k", "in alpha");
    th_put(db, b, "k", "in beta");
    th_put(db, NULL, "k", "in default");
    cr_assert(th_has(db, a, "k", "in alpha"));
    cr_assert(th_has(db, b, "k", "in beta"));
    cr_assert(th_has(db, NULL, "k", "in default"));
    cr_assert_str_eq(rc_keyspace_name(a), "alpha");
    reopen();
    cr_assert_eq(rc_keyspace_open(db, "alpha", 0, &a), 0);
    cr_assert_eq(rc_keyspace_open(db, "beta", 0, &b), 0);
    cr_assert(th_has(db, a, "k", "in alpha"));
    cr_assert(th_has(db, b, "k", "in beta"));
    char **names;
    size_t n;
    cr_assert_eq(rc_keyspace_list(db, &names, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "alpha");
    cr_assert_str_eq(names[1], "beta");
    cr_assert_str_eq(names[2], "default");
    rc_names_free(names, n);
    rc_stats st;
    rc_stats_keyspace(db, a, &st);
    cr_assert_eq(st.live_keys, 1);
}

Test(batch, drop_is_durable_and_total)
{
    rc_keyspace *a;
    cr_assert_eq(rc_keyspace_open(db, "tmp", RC_KS_CREATE, &a), 0);
    char k[16];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        th_put(db, a, k, "v");
    }
    cr_assert_eq(rc_keyspace_drop(db, "tmp"), 0);
    rc_value v;
    cr_assert_eq(rc_get(db, a, "k1", 2, &v), RC_ENOKEYSPACE, "old handle is dead");
    cr_assert_eq(rc_put(db, a, "k1", 2, "v", 1, NULL), RC_ENOKEYSPACE);
    cr_assert_eq(rc_keyspace_drop(db, "tmp"), RC_ENOKEYSPACE);
    cr_assert_eq(rc_keyspace_drop(db, "default"), RC_EINVAL);
    reopen();
    cr_assert_eq(rc_keyspace_open(db, "tmp", 0, &a), RC_ENOKEYSPACE);
    /* recreated: empty, nothing of the old one comes back */
    cr_assert_eq(rc_keyspace_open(db, "tmp", RC_KS_CREATE, &a), 0);
    cr_assert_eq(rc_get(db, a, "k1", 2, &v), RC_ENOTFOUND);
    th_put(db, a, "fresh", "yes");
    reopen();
    cr_assert_eq(rc_keyspace_open(db, "tmp", 0, &a), 0);
    cr_assert_eq(rc_get(db, a, "k1", 2, &v), RC_ENOTFOUND);
    cr_assert(th_has(db, a, "fresh", "yes"));
    rc_stats st;
    rc_stats_keyspace(db, a, &st);
    cr_assert_eq(st.live_keys, 1);
}

Test(batch, batch_across_keyspaces)
{
    rc_keyspace *a;
    cr_assert_eq(rc_keyspace_open(db, "x", RC_KS_CREATE, &a), 0);
    rc_op ops[] = {PUT("k", "default"), PUT("k", "x")};
    ops[1].ks = a;
    cr_assert_eq(rc_apply(db, ops, 2, NULL), 0);
    reopen();
    cr_assert_eq(rc_keyspace_open(db, "x", 0, &a), 0);
    cr_assert(th_has(db, a, "k", "x"));
    cr_assert(th_has(db, NULL, "k", "default"));
}

Test(batch, keyspace_default_ttl_persists)
{
    rc_keyspace *a;
    cr_assert_eq(rc_keyspace_open(db, "ttl", RC_KS_CREATE, &a), 0);
    cr_assert_eq(rc_keyspace_set_default_ttl(a, 60000), 0);
    cr_assert_eq(rc_keyspace_set_default_ttl(rc_default_keyspace(db), 5000), 0);
    reopen();
    cr_assert_eq(rc_keyspace_open(db, "ttl", 0, &a), 0);
    cr_assert_eq(rc_keyspace_default_ttl(a), 60000);
    cr_assert_eq(rc_keyspace_default_ttl(rc_default_keyspace(db)), 5000);
    th_put(db, a, "k", "v");
    rc_value v;
    cr_assert_eq(rc_get_meta(db, a, "k", 1, &v), 0);
    cr_assert_gt(v.expires_at_ms, 0);
}

Test(batch, dead_bytes_are_counted_per_keyspace)
{
    rc_keyspace *a, *b;
    cr_assert_eq(rc_keyspace_open(db, "a", RC_KS_CREATE, &a), 0);
    cr_assert_eq(rc_keyspace_open(db, "b", RC_KS_CREATE, &b), 0);
    th_put(db, a, "k", "first");
    th_put(db, a, "k", "second");
    th_put(db, b, "k", "only");
    rc_stats sa, sb, all;
    rc_stats_keyspace(db, a, &sa);
    rc_stats_keyspace(db, b, &sb);
    cr_assert_gt(sa.dead_bytes, 0, "the overwritten record is dead");
    cr_assert_eq(sb.dead_bytes, 0);
    cr_assert_eq(rc_delete(db, b, "k", 1, NULL), 0);
    rc_stats_keyspace(db, b, &sb);
    cr_assert_gt(sb.dead_bytes, 0, "the deleted value and its tombstone are dead");
    rc_stats_db(db, &all);
    cr_assert_geq(all.dead_bytes, sa.dead_bytes + sb.dead_bytes);
    rc_options o;
    th_options(&o);
    o.tombstone_retention_ms = 0;
    rc_close(db);
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    cr_assert_eq(rc_keyspace_open(db, "a", 0, &a), 0);
    rc_stats_keyspace(db, a, &sa);
    cr_assert_gt(sa.dead_bytes, 0, "recovery counts dead bytes too");
    cr_assert_eq(rc_merge(db), 0);
    rc_stats_keyspace(db, a, &sa);
    cr_assert_eq(sa.dead_bytes, 0, "merge reclaimed keyspace a's dead bytes");
}

Test(batch, cas_sees_the_batch_own_earlier_write)
{
    rc_op ops[2] = {
        {.kind = RC_OP_PUT, .key = "x", .klen = 1, .val = "1", .vlen = 1},
        {.kind = RC_OP_PUT,
         .key = "x",
         .klen = 1,
         .val = "2",
         .vlen = 1,
         .cond = RC_IF_SEQ,
         .if_seq = 0},
    };
    size_t failed = 9;
    cr_assert_eq(rc_apply(db, ops, 2, &failed), RC_ECONFLICT,
                 "seq 0 means absent, but the batch created the key");
    cr_assert_eq(failed, 1);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "x", 1, &v), RC_ENOTFOUND);
    rc_op ok[2] = {
        {.kind = RC_OP_DELETE, .key = "y", .klen = 1},
        {.kind = RC_OP_PUT, .key = "y", .klen = 1, .val = "n", .vlen = 1, .cond = RC_IF_ABSENT},
    };
    th_put(db, NULL, "y", "old");
    cr_assert_eq(rc_apply(db, ok, 2, NULL), 0, "absent after the batch's own delete");
    cr_assert(th_has(db, NULL, "y", "n"));
}
