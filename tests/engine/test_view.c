/* rc_get_view, the zero-copy read: the callback sees exactly what rc_get
 * returns (bytes, type, seq, expiry), compressed values included; it is not
 * called for absent, expired or corrupt records (a corrupt one is dropped
 * and counted once, as by rc_get); its return value is passed through; and
 * it may read the database itself. */
#include "fault.h"
#include "helpers.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;
static rc_db *db;
static int64_t fake_now = 1000000;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void open_with(uint32_t compress_min)
{
    rc_options o;
    th_options(&o);
    o.compress_min_bytes = compress_min;
    o.clock_ms = fake_clock;
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open: %s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    fake_now = 1000000;
    open_with(0);
}

static void teardown(void)
{
    rc_close(db);
    db = NULL;
    th_rmdir(dir);
}

TestSuite(view, .init = setup, .fini = teardown);

typedef struct seen {
    int calls;
    uint8_t *copy;
    size_t len;
    rc_type type;
    uint64_t seq;
    int64_t expires;
    int ret; /* what the callback returns */
} seen;

static int remember(void *ctx, const rc_view *v)
{
    seen *s = ctx;
    s->calls++;
    free(s->copy);
    s->copy = malloc(v->len + 1);
    memcpy(s->copy, v->data, v->len);
    s->len = v->len;
    s->type = v->type;
    s->seq = v->seq;
    s->expires = v->expires_at_ms;
    return s->ret;
}

/* The view of KEY equals rc_get's copy in every field. */
static void assert_view_matches_get(const char *key)
{
    seen s = {0};
    cr_assert_eq(rc_get_view(db, NULL, key, strlen(key), remember, &s), 0, "%s",
                 rc_last_error_message());
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, key, strlen(key), &v), 0);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.len, v.len);
    cr_assert_eq(memcmp(s.copy, v.data, v.len), 0);
    cr_assert_eq(s.type, v.type);
    cr_assert_eq(s.seq, v.seq);
    cr_assert_eq(s.expires, v.expires_at_ms);
    rc_value_free(&v);
    free(s.copy);
}

Test(view, shows_what_get_returns)
{
    th_put(db, NULL, "alpha", "one");
    rc_op op = {.kind = RC_OP_PUT,
                .key = "num",
                .klen = 3,
                .val = "42",
                .vlen = 2,
                .type = RC_TYPE_INT,
                .ttl_ms = 5000};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    th_put(db, NULL, "empty", "");
    assert_view_matches_get("alpha");
    assert_view_matches_get("num");
    assert_view_matches_get("empty");
    seen s = {0};
    cr_assert_eq(rc_get_view(db, NULL, "num", 3, remember, &s), 0);
    cr_assert_eq(s.type, RC_TYPE_INT);
    cr_assert_eq(s.expires, 1000000 + 5000);
    cr_assert_eq(s.seq, op.seq);
    cr_assert_eq(s.len, 2);
    cr_assert_eq(memcmp(s.copy, "42", 2), 0);
    free(s.copy);
    /* after a reopen the view reads the sealed segment */
    rc_close(db);
    open_with(0);
    assert_view_matches_get("alpha");
}

Test(view, callback_result_is_returned)
{
    th_put(db, NULL, "k", "v");
    seen s = {.ret = 17};
    cr_assert_eq(rc_get_view(db, NULL, "k", 1, remember, &s), 17);
    s.ret = -12345;
    cr_assert_eq(rc_get_view(db, NULL, "k", 1, remember, &s), -12345);
    cr_assert_eq(s.calls, 2);
    free(s.copy);
}

Test(view, absent_expired_deleted_and_bad_arguments_do_not_call)
{
    seen s = {0};
    cr_assert_eq(rc_get_view(db, NULL, "none", 4, remember, &s), RC_ENOTFOUND);
    rc_op op = {.kind = RC_OP_PUT, .key = "ttl", .klen = 3, .val = "x", .vlen = 1, .ttl_ms = 10};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    cr_assert_eq(rc_get_view(db, NULL, "ttl", 3, remember, &s), 0);
    fake_now += 10;
    cr_assert_eq(rc_get_view(db, NULL, "ttl", 3, remember, &s), RC_ENOTFOUND);
    th_put(db, NULL, "gone", "x");
    cr_assert_eq(rc_delete(db, NULL, "gone", 4, NULL), 0);
    cr_assert_eq(rc_get_view(db, NULL, "gone", 4, remember, &s), RC_ENOTFOUND);
    cr_assert_eq(rc_get_view(db, NULL, "", 0, remember, &s), RC_EKEYSIZE);
    cr_assert_eq(rc_get_view(db, NULL, "gone", 4, NULL, &s), RC_EINVAL);
    cr_assert_eq(rc_get_view(NULL, NULL, "gone", 4, remember, &s), RC_EINVAL);
    cr_assert_eq(s.calls, 1);
    free(s.copy);
}

/* Compressed values: shown decompressed, small ones from the kept per-thread
 * buffer, one larger than that buffer keeps from a buffer of its own. */
Test(view, compressed_values_are_shown_decompressed)
{
    rc_close(db);
    open_with(64);
    size_t sizes[] = {100, 5000, 3u << 20};
    for (size_t i = 0; i < 3; i++) {
        size_t n = sizes[i];
        char *val = malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            val[j] = (char)('a' + (j / 7) % 3);
        val[n] = 0;
        char key[16];
        snprintf(key, sizeof key, "c%zu", i);
        cr_assert_eq(rc_put(db, NULL, key, strlen(key), val, n, NULL), 0);
        seen s = {0};
        cr_assert_eq(rc_get_view(db, NULL, key, strlen(key), remember, &s), 0, "%s",
                     rc_last_error_message());
        cr_assert_eq(s.len, n);
        cr_assert_eq(memcmp(s.copy, val, n), 0);
        free(s.copy);
        free(val);
    }
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_lt(st.disk_bytes, 1u << 20, "the values were stored compressed");
}

static int nested(void *ctx, const rc_view *v)
{
    (void)v;
    return th_has(ctx, NULL, "other", "fine") ? 7 : -1;
}

Test(view, callback_may_read_the_database)
{
    th_put(db, NULL, "k", "v");
    th_put(db, NULL, "other", "fine");
    cr_assert_eq(rc_get_view(db, NULL, "k", 1, nested, db), 7);
}

/* Flip one byte of the value stored with TAG, in place. */
static void flip(const char *tag)
{
    char names[16][64];
    int n = th_list(dir, ".data", names, 16);
    for (int i = 0; i < n; i++) {
        const char *p = th_path(dir, names[i]);
        long long sz = th_file_size(p);
        int fd = open(p, O_RDWR);
        cr_assert_geq(fd, 0);
        char *buf = malloc((size_t)sz + 1);
        cr_assert_eq(pread(fd, buf, (size_t)sz, 0), sz);
        char *hit = memmem(buf, (size_t)sz, tag, strlen(tag));
        if (hit) {
            uint8_t b = (uint8_t)(*hit ^ 0x20);
            cr_assert_eq(pwrite(fd, &b, 1, hit - buf), 1);
        }
        close(fd);
        free(buf);
        if (hit)
            return;
    }
    cr_assert_fail("tag not found");
}

Test(view, corrupt_record_is_never_shown)
{
    th_put(db, NULL, "victim", "VICTIM-VALUE");
    th_put(db, NULL, "other", "fine");
    flip("VICTIM-VALUE");
    seen s = {0};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rc_get_view(db, NULL, "victim", 6, remember, &s), RC_ENOTFOUND);
    cr_assert_eq(s.calls, 0);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "victim", 6, &v), RC_ENOTFOUND);
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_eq(st.corrupt_reads, 1);
    cr_assert_eq(st.live_keys, 1);
    assert_view_matches_get("other");
}

#ifdef RC_FAULT_INJECTION
/* Every key collides in the keydir (the fault seam gives every key shard 0
 * and tag 0), so a read's slot-only lookup (rci_keydir_peek) meets other
 * keys' slots of the same length first and must find out from the record
 * that it is not the key asked for, then take the full lookup: no read may
 * show another key's value, an expired or deleted key, or a corrupt record.
 * Breaking the record's key check in read.c fails this test. */
static void collide_setup(void)
{
    rc_fault_weak_hash(true);
    setup();
}

static void collide_teardown(void)
{
    teardown();
    rc_fault_weak_hash(false);
}

TestSuite(view_collide, .init = collide_setup, .fini = collide_teardown);

#define NCOLLIDE 200

/* What key I should read as (NULL: absent), after the writes below. */
static int collide_corrupt = -1; /* the key whose record was damaged */

static const char *collide_want(int i, bool expired, char *buf)
{
    if (i % 7 == 0 || i == collide_corrupt)
        return NULL; /* deleted */
    if (i % 5 == 0 && expired)
        return NULL; /* its TTL passed */
    snprintf(buf, 32, i % 3 == 0 ? "new-%d" : "value-of-%d", i);
    return buf;
}

static void collide_check(bool expired)
{
    for (int i = 0; i < NCOLLIDE + 5; i++) {
        char key[16], want_buf[32];
        snprintf(key, sizeof key, "key-%03d", i);
        const char *want = i < NCOLLIDE ? collide_want(i, expired, want_buf) : NULL;
        seen s = {0};
        rc_value v;
        int rv = rc_get_view(db, NULL, key, strlen(key), remember, &s);
        int rg = rc_get(db, NULL, key, strlen(key), &v);
        if (!want) {
            cr_assert_eq(rv, RC_ENOTFOUND, "%s: %d", key, rv);
            cr_assert_eq(rg, RC_ENOTFOUND, "%s: %d", key, rg);
            cr_assert_eq(s.calls, 0);
            continue;
        }
        cr_assert_eq(rv, 0, "%s: %s", key, rc_last_error_message());
        cr_assert_eq(rg, 0, "%s: %s", key, rc_last_error_message());
        cr_assert(s.len == strlen(want) && memcmp(s.copy, want, s.len) == 0,
                  "%s shows %.*s, not %s", key, (int)s.len, (char *)s.copy, want);
        cr_assert(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0, "%s reads %.*s", key,
                  (int)v.len, (char *)v.data);
        rc_value_free(&v);
        free(s.copy);
    }
    cr_assert_eq(rc_get_view(db, NULL, "key-1", 5, remember, &(seen){0}), RC_ENOTFOUND);
}

Test(view_collide, colliding_keys_read_their_own_values)
{
    for (int i = 0; i < NCOLLIDE; i++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "key-%03d", i);
        snprintf(val, sizeof val, "value-of-%d", i);
        rc_op op = {.kind = RC_OP_PUT,
                    .key = key,
                    .klen = strlen(key),
                    .val = val,
                    .vlen = strlen(val),
                    .type = RC_TYPE_RAW,
                    .ttl_ms = i % 5 == 0 ? 5000 : RC_TTL_DEFAULT};
        cr_assert_eq(rc_apply(db, &op, 1, NULL), 0, "%s", rc_last_error_message());
    }
    for (int i = 0; i < NCOLLIDE; i++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "key-%03d", i);
        if (i % 7 == 0) {
            cr_assert_eq(rc_delete(db, NULL, key, strlen(key), NULL), 0);
        } else if (i % 3 == 0) {
            snprintf(val, sizeof val, "new-%d", i);
            rc_op op = {.kind = RC_OP_PUT,
                        .key = key,
                        .klen = strlen(key),
                        .val = val,
                        .vlen = strlen(val),
                        .type = RC_TYPE_RAW,
                        .ttl_ms = i % 5 == 0 ? 5000 : RC_TTL_DEFAULT};
            cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
        }
    }
    collide_check(false);
    rc_close(db);
    open_with(0); /* the keydir rebuilt from the segments */
    collide_check(false);
    fake_now += 6000;
    collide_check(true);

    /* a corrupt record in the middle of the run: only its own key is lost */
    flip("key-101value-of-101"); /* the record's key, then its value */
    collide_corrupt = 101;
    collide_check(true);
    collide_corrupt = -1; /* 101 is absent from now on, the others unharmed */
}
#endif
