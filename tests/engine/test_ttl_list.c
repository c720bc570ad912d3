/* TTL with a controllable clock (passive expiry, the active sweeper, expiry
 * across reopen, keyspace default TTL) and ordered listing (binary keys,
 * prefix, start/end bounds, limit, reverse, values). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;
static rc_db *db;
static _Atomic int64_t fake_now = 1700000000000;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}

static void open_with_clock(uint32_t sweep_ms)
{
    rc_options o;
    th_options(&o);
    o.clock_ms = test_clock;
    o.ttl_sweep_ms = sweep_ms;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    atomic_store(&fake_now, 1700000000000);
    open_with_clock(0);
}
static void teardown(void)
{
    rc_close(db);
    th_rmdir(dir);
}
TestSuite(ttl, .init = setup, .fini = teardown);
TestSuite(list, .init = setup, .fini = teardown);

static void put_ttl(const char *k, const char *v, int64_t ttl)
{
    rc_op op = {
        .kind = RC_OP_PUT, .key = k, .klen = strlen(k), .val = v, .vlen = strlen(v), .ttl_ms = ttl};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
}

Test(ttl, expired_at_exactly_expires_at)
{
    put_ttl("k", "v", 10000);
    rc_value v;
    cr_assert_eq(rc_get_meta(db, NULL, "k", 1, &v), 0);
    cr_assert_eq(v.expires_at_ms, 1700000000000 + 10000);
    atomic_store(&fake_now, 1700000000000 + 9999);
    cr_assert(th_has(db, NULL, "k", "v"));
    atomic_store(&fake_now, 1700000000000 + 10000);
    cr_assert_eq(th_has(db, NULL, "k", "v"), 0, "now >= expires_at is expired");
    /* an expired key is absent to conditional writes too */
    rc_op op = {
        .kind = RC_OP_PUT, .key = "k", .klen = 1, .val = "new", .vlen = 3, .cond = RC_IF_ABSENT};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert(th_has(db, NULL, "k", "new"));
}

Test(ttl, sweeper_releases_expired_keys)
{
    char k[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "t%d", i);
        put_ttl(k, "v", 1000);
    }
    put_ttl("keep", "v", RC_TTL_NONE);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 5001);
    atomic_store(&fake_now, 1700000000000 + 1000);
    cr_assert_eq(rc_expire_now(db), 0);
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 1);
    cr_assert_eq(st.expired_swept, 5000);
    cr_assert_eq(st.live_value_bytes, 1);
    cr_assert_gt(st.dead_bytes, 5000 * 5);
}

Test(ttl, background_sweeper_works_without_being_asked, .timeout = 600)
{
    rc_close(db);
    open_with_clock(10);
    char k[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "b%d", i);
        put_ttl(k, "v", 500);
    }
    atomic_store(&fake_now, 1700000000000 + 600);
    rc_stats st;
    for (int i = 0; i < 12000; i++) { /* 120 s: a net for a hang */
        rc_stats_db(db, &st);
        if (st.live_keys == 0)
            break;
        usleep(10000);
    }
    cr_assert_eq(st.live_keys, 0, "%llu keys still held after 120 s",
                 (unsigned long long)st.live_keys);
}

Test(ttl, expired_records_stay_dead_after_reopen)
{
    th_put(db, NULL, "k", "old version without ttl");
    put_ttl("k", "short-lived", 1000);
    rc_close(db);
    atomic_store(&fake_now, 1700000000000 + 5000);
    open_with_clock(0);
    cr_assert_eq(th_has(db, NULL, "k", "short-lived"), 0);
    cr_assert_eq(th_has(db, NULL, "k", "old version without ttl"), 0,
                 "an expired record must hide older versions");
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 0);
}

Test(ttl, default_ttl_and_none)
{
    cr_assert_eq(rc_keyspace_set_default_ttl(rc_default_keyspace(db), 2000), 0);
    th_put(db, NULL, "d", "uses default");
    put_ttl("n", "no expiry", RC_TTL_NONE);
    put_ttl("e", "explicit", 5000);
    atomic_store(&fake_now, 1700000000000 + 2000);
    cr_assert_eq(th_has(db, NULL, "d", "uses default"), 0);
    cr_assert(th_has(db, NULL, "n", "no expiry"));
    cr_assert(th_has(db, NULL, "e", "explicit"));
}

Test(ttl, incr_keeps_existing_expiry)
{
    rc_op op = {.kind = RC_OP_INCR,
                .key = "c",
                .klen = 1,
                .ttl_ms = 3000,
                .by = {.type = RC_TYPE_INT, .i = 1}};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    rc_value_free(&op.result);
    op.ttl_ms = RC_TTL_DEFAULT;
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_eq(op.result.expires_at_ms, 1700000000000 + 3000);
    rc_value_free(&op.result);
}

/* ---- listing */

static void put_bin(const void *k, size_t kl)
{
    cr_assert_eq(rc_put(db, NULL, k, kl, "v", 1, NULL), 0);
}

static rc_list *list(rc_list_opts *o)
{
    rc_list *l;
    cr_assert_eq(rc_list_keys(db, NULL, o, &l), 0);
    return l;
}

Test(list, byte_order_with_binary_keys)
{
    uint8_t k1[] = {0x00}, k2[] = {0x00, 0x00}, k3[] = {0x01}, k4[] = {0x7F, 0xFF}, k5[] = {0xFF},
            k6[] = {0xFF, 0x00}, k7[] = {'a'};
    put_bin(k5, 1);
    put_bin(k3, 1);
    put_bin(k7, 1);
    put_bin(k1, 1);
    put_bin(k6, 2);
    put_bin(k2, 2);
    put_bin(k4, 2);
    rc_list_opts o = {0};
    rc_list *l = list(&o);
    cr_assert_eq(l->count, 7);
    const uint8_t *expect[] = {k1, k2, k3, k7, k4, k5, k6};
    size_t lens[] = {1, 2, 1, 1, 2, 1, 2};
    for (size_t i = 0; i < 7; i++) {
        cr_assert_eq(l->items[i].klen, lens[i], "item %zu", i);
        cr_assert(memcmp(l->items[i].key, expect[i], lens[i]) == 0, "item %zu", i);
    }
    rc_list_free(l);
    o.reverse = true;
    l = list(&o);
    for (size_t i = 0; i < 7; i++)
        cr_assert(memcmp(l->items[i].key, expect[6 - i], lens[6 - i]) == 0, "rev %zu", i);
    rc_list_free(l);
}

static void fill_words(void)
{
    const char *w[] = {"users:1:name", "users:1:age", "users:2:name", "users:10:name",
                       "orders:1",     "orders:2",    "zeta"};
    for (int i = 0; i < 7; i++)
        th_put(db, NULL, w[i], w[i]);
}

Test(list, prefix_bounds_limit_reverse_values)
{
    fill_words();
    rc_list_opts o = {.prefix = "users:1", .prefix_len = 7};
    rc_list *l = list(&o);
    cr_assert_eq(l->count, 3);
    /* '0' (0x30) sorts before ':' (0x3A) */
    cr_assert_str_eq(l->items[0].key, "users:10:name");
    cr_assert_str_eq(l->items[1].key, "users:1:age");
    cr_assert_str_eq(l->items[2].key, "users:1:name");
    cr_assert_null(l->items[0].value.data);
    rc_list_free(l);

    rc_list_opts b = {.start = "orders:2", .start_len = 8, .end = "users:2", .end_len = 7};
    l = list(&b);
    cr_assert_eq(l->count, 4);
    cr_assert_str_eq(l->items[0].key, "orders:2");
    cr_assert_str_eq(l->items[3].key, "users:1:name");
    rc_list_free(l);

    rc_list_opts lim = {.limit = 2, .values = true};
    l = list(&lim);
    cr_assert_eq(l->count, 2);
    cr_assert(l->more);
    cr_assert_str_eq(l->items[0].key, "orders:1");
    cr_assert_str_eq(l->items[1].key, "orders:2");
    cr_assert_str_eq(l->items[1].value.data, "orders:2");
    rc_list_free(l);

    rc_list_opts rev = {.limit = 2, .reverse = true};
    l = list(&rev);
    cr_assert_eq(l->count, 2);
    cr_assert_str_eq(l->items[0].key, "zeta");
    cr_assert_str_eq(l->items[1].key, "users:2:name");
    rc_list_free(l);
}

Test(list, limit_selection_matches_full_sort)
{
    char k[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "%08x", (unsigned)(i * 2654435761u));
        th_put(db, NULL, k, "v");
    }
    rc_list_opts all = {0};
    rc_list *full = list(&all);
    cr_assert_eq(full->count, 3000);
    for (size_t lim = 1; lim < 3000; lim = lim * 3 + 1) {
        for (int rev = 0; rev < 2; rev++) {
            rc_list_opts o = {.limit = lim, .reverse = rev};
            rc_list *l = list(&o);
            cr_assert_eq(l->count, lim);
            for (size_t i = 0; i < lim; i++) {
                size_t j = rev ? 3000 - 1 - i : i;
                cr_assert_str_eq(l->items[i].key, full->items[j].key, "lim %zu rev %d i %zu", lim,
                                 rev, i);
            }
            rc_list_free(l);
        }
    }
    rc_list_free(full);
}

Test(list, expired_and_deleted_keys_are_not_listed)
{
    th_put(db, NULL, "a", "1");
    th_put(db, NULL, "b", "1");
    put_ttl("c", "1", 100);
    rc_delete(db, NULL, "b", 1, NULL);
    atomic_store(&fake_now, 1700000000000 + 100);
    rc_list_opts o = {0};
    rc_list *l = list(&o);
    cr_assert_eq(l->count, 1);
    cr_assert_str_eq(l->items[0].key, "a");
    rc_list_free(l);
}

Test(list, empty_keyspace_and_no_match)
{
    rc_list_opts o = {0};
    rc_list *l = list(&o);
    cr_assert_eq(l->count, 0);
    cr_assert_not(l->more);
    rc_list_free(l);
    th_put(db, NULL, "a", "1");
    rc_list_opts none = {.prefix = "zz", .prefix_len = 2, .limit = 5};
    l = list(&none);
    cr_assert_eq(l->count, 0);
    rc_list_free(l);
}
