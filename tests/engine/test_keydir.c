/*
 * test_keydir.c — the keydir's contract (keydir.h): lookups and updates,
 * recovery and merge conditionals, growth, backward-shift deletion under
 * forced collisions, entry resizing for expiry, arena compaction, iteration
 * and concurrent readers. Hashes are the caller's to pass, so several tests
 * forge them to pile keys into one shard or onto one tag.
 *
 * The ENOMEM tests need a keydir built with -DRC_FAULT_INJECTION and skip
 * otherwise. Standalone build (from the repository root):
 *   clang -std=gnu17 -g -O1 -DRC_FAULT_INJECTION -fsanitize=address,undefined \
 *     -Iengine/src -Iformat engine/src/keydir.c engine/src/keydir_arena.c \
 *     tests/engine/test_keydir.c -lcriterion -lxxhash -lpthread -o /tmp/test_keydir
 *
 * By hand, once per change of keydir.c, run the suite under ThreadSanitizer.
 * Criterion's runner cannot start under TSan, so that build swaps in a tiny
 * stand-in header (tests/engine/tsan_shim):
 *   clang -std=gnu17 -g -O1 -fsanitize=thread -Itests/engine/tsan_shim -Iengine/src \
 *     -Iformat engine/src/keydir.c engine/src/keydir_arena.c tests/engine/test_keydir.c \
 *     -lxxhash -lpthread -o /tmp/test_keydir_tsan && /tmp/test_keydir_tsan concurrent
 */
#include "keydir.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fault injection (keydir_arena.h): defined only when the keydir is built
 * with RC_FAULT_INJECTION, hence weak; the tests that need it skip without. */
void rci_keydir_fault_fail_alloc(long n) __attribute__((weak));

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t x = (*state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Key number I: "k" and the decimal digits of I (no NUL). */
static size_t key_of(uint32_t i, char buf[16])
{
    return (size_t)snprintf(buf, 16, "k%u", i);
}

/* A location that tells which key and which version it belongs to. */
static kd_loc loc_of(uint32_t i, uint32_t version)
{
    return (kd_loc){.seg = (uint16_t)(i * 7u + version),
                    .off = i ^ (version << 20),
                    .seq = ((uint64_t)version << 32) | i,
                    .expires_at_ms = i % 3u == 0 ? 1700000000000 + i + version : 0};
}

static void assert_loc_eq(const kd_loc *got, const kd_loc *want)
{
    cr_assert_eq(got->seg, want->seg);
    cr_assert_eq(got->off, want->off);
    cr_assert_eq(got->seq, want->seq);
    cr_assert_eq(got->expires_at_ms, want->expires_at_ms);
}

/* Locked wrappers with the real hash. */
static int put(keydir *kd, const void *key, size_t klen, const kd_loc *loc, kd_loc *old,
               bool *had_old)
{
    uint64_t h = rci_keydir_hash(key, klen);
    rci_keydir_wrlock(kd, keydir_shard_of(h));
    int rc = rci_keydir_put(kd, h, key, klen, loc, old, had_old);
    rci_keydir_unlock(kd, keydir_shard_of(h));
    return rc;
}

static bool find(keydir *kd, const void *key, size_t klen, kd_loc *out)
{
    uint64_t h = rci_keydir_hash(key, klen);
    rci_keydir_rdlock(kd, keydir_shard_of(h));
    bool found = rci_keydir_find(kd, h, key, klen, out);
    rci_keydir_unlock(kd, keydir_shard_of(h));
    return found;
}

static bool del(keydir *kd, const void *key, size_t klen, kd_loc *old)
{
    uint64_t h = rci_keydir_hash(key, klen);
    rci_keydir_wrlock(kd, keydir_shard_of(h));
    bool found = rci_keydir_remove(kd, h, key, klen, old);
    rci_keydir_unlock(kd, keydir_shard_of(h));
    return found;
}

static void put_i(keydir *kd, uint32_t i, uint32_t version)
{
    char k[16];
    kd_loc loc = loc_of(i, version);
    cr_assert_eq(put(kd, k, key_of(i, k), &loc, NULL, NULL), 0);
}

static void assert_has_i(keydir *kd, uint32_t i, uint32_t version)
{
    char k[16];
    kd_loc got, want = loc_of(i, version);
    cr_assert(find(kd, k, key_of(i, k), &got), "key %u missing", i);
    assert_loc_eq(&got, &want);
}

Test(keydir, put_find_overwrite_remove)
{
    keydir *kd = rci_keydir_new();
    cr_assert_not_null(kd);
    kd_loc a = {.seg = 1, .off = 100, .seq = 5}, b = {.seg = 2, .off = 200, .seq = 9};
    kd_loc got, old;
    bool had_old = true;

    cr_assert_not(find(kd, "alpha", 5, &got));
    cr_assert_eq(put(kd, "alpha", 5, &a, &old, &had_old), 0);
    cr_assert_not(had_old);
    cr_assert(find(kd, "alpha", 5, &got));
    assert_loc_eq(&got, &a);
    cr_assert_not(find(kd, "alph", 4, &got), "a prefix is another key");
    cr_assert_not(find(kd, "alphb", 5, &got));

    cr_assert_eq(put(kd, "alpha", 5, &b, &old, &had_old), 0);
    cr_assert(had_old);
    assert_loc_eq(&old, &a);
    cr_assert(find(kd, "alpha", 5, &got));
    assert_loc_eq(&got, &b);
    cr_assert_eq(rci_keydir_count(kd), 1);

    cr_assert(del(kd, "alpha", 5, &old));
    assert_loc_eq(&old, &b);
    cr_assert_not(find(kd, "alpha", 5, &got));
    cr_assert_not(del(kd, "alpha", 5, &old));
    cr_assert_eq(rci_keydir_count(kd), 0);
    rci_keydir_free(kd);
}

Test(keydir, put_if_newer_keeps_the_highest_seq)
{
    keydir *kd = rci_keydir_new();
    uint64_t h = rci_keydir_hash("key", 3);
    unsigned sh = keydir_shard_of(h);
    kd_loc v10 = {.seg = 1, .off = 10, .seq = 10}, v5 = {.seg = 2, .off = 5, .seq = 5};
    kd_loc v10b = {.seg = 3, .off = 11, .seq = 10}, v20 = {.seg = 4, .off = 20, .seq = 20};
    kd_loc got, old;
    bool replaced, had_old;

    rci_keydir_wrlock(kd, sh);
    cr_assert_eq(rci_keydir_put_if_newer(kd, h, "key", 3, &v10, &replaced, &old, &had_old), 0);
    cr_assert(replaced, "an absent key goes in");
    cr_assert_not(had_old);

    cr_assert_eq(rci_keydir_put_if_newer(kd, h, "key", 3, &v5, &replaced, &old, &had_old), 0);
    cr_assert_not(replaced, "an older seq loses");
    cr_assert(had_old);
    assert_loc_eq(&old, &v10);

    cr_assert_eq(rci_keydir_put_if_newer(kd, h, "key", 3, &v10b, &replaced, &old, &had_old), 0);
    cr_assert_not(replaced, "an equal seq loses");
    cr_assert(rci_keydir_find(kd, h, "key", 3, &got));
    assert_loc_eq(&got, &v10);

    cr_assert_eq(rci_keydir_put_if_newer(kd, h, "key", 3, &v20, &replaced, &old, &had_old), 0);
    cr_assert(replaced, "a newer seq wins");
    cr_assert(had_old);
    assert_loc_eq(&old, &v10);
    cr_assert(rci_keydir_find(kd, h, "key", 3, &got));
    assert_loc_eq(&got, &v20);
    rci_keydir_unlock(kd, sh);
    cr_assert_eq(rci_keydir_count(kd), 1);
    rci_keydir_free(kd);
}

Test(keydir, repoint_only_when_the_location_still_matches)
{
    keydir *kd = rci_keydir_new();
    uint64_t h = rci_keydir_hash("m", 1);
    unsigned sh = keydir_shard_of(h);
    kd_loc cur = {.seg = 3, .off = 4096, .seq = 77, .expires_at_ms = 123};
    kd_loc moved = {.seg = 9, .off = 64, .seq = 77, .expires_at_ms = 123};
    kd_loc got;

    rci_keydir_wrlock(kd, sh);
    cr_assert_not(rci_keydir_repoint(kd, h, "m", 1, &cur, &moved), "absent key");
    cr_assert_eq(rci_keydir_put(kd, h, "m", 1, &cur, NULL, NULL), 0);
    kd_loc wrong_seg = cur, wrong_off = cur, wrong_seq = cur;
    wrong_seg.seg++;
    wrong_off.off++;
    wrong_seq.seq++;
    cr_assert_not(rci_keydir_repoint(kd, h, "m", 1, &wrong_seg, &moved));
    cr_assert_not(rci_keydir_repoint(kd, h, "m", 1, &wrong_off, &moved));
    cr_assert_not(rci_keydir_repoint(kd, h, "m", 1, &wrong_seq, &moved));
    cr_assert(rci_keydir_find(kd, h, "m", 1, &got));
    assert_loc_eq(&got, &cur);

    kd_loc other_expiry = cur;
    other_expiry.expires_at_ms = 999; /* not part of the expectation */
    cr_assert(rci_keydir_repoint(kd, h, "m", 1, &other_expiry, &moved));
    cr_assert(rci_keydir_find(kd, h, "m", 1, &got));
    assert_loc_eq(&got, &moved);
    cr_assert_not(rci_keydir_repoint(kd, h, "m", 1, &cur, &moved), "already moved");
    rci_keydir_unlock(kd, sh);
    rci_keydir_free(kd);
}

Test(keydir, remove_if_only_when_the_location_still_matches)
{
    keydir *kd = rci_keydir_new();
    uint64_t h = rci_keydir_hash("t", 1);
    unsigned sh = keydir_shard_of(h);
    kd_loc cur = {.seg = 1, .off = 2, .seq = 3, .expires_at_ms = 5};
    kd_loc newer = {.seg = 1, .off = 2, .seq = 4, .expires_at_ms = 5};

    rci_keydir_wrlock(kd, sh);
    cr_assert_not(rci_keydir_remove_if(kd, h, "t", 1, &cur));
    cr_assert_eq(rci_keydir_put(kd, h, "t", 1, &cur, NULL, NULL), 0);
    cr_assert_eq(rci_keydir_ttl_count(kd), 1);
    cr_assert_not(rci_keydir_remove_if(kd, h, "t", 1, &newer));
    cr_assert(rci_keydir_find(kd, h, "t", 1, NULL));
    cr_assert(rci_keydir_remove_if(kd, h, "t", 1, &cur));
    cr_assert_not(rci_keydir_find(kd, h, "t", 1, NULL));
    rci_keydir_unlock(kd, sh);
    cr_assert_eq(rci_keydir_count(kd), 0);
    cr_assert_eq(rci_keydir_ttl_count(kd), 0);
    rci_keydir_free(kd);
}

/* Keys 0..N-1 are all there, at VERSION, and nothing else is. */
static void assert_all_present(keydir *kd, uint32_t n, uint32_t version)
{
    for (uint32_t i = 0; i < n; i++)
        assert_has_i(kd, i, version);
    cr_assert_eq(rci_keydir_count(kd), n);
}

Test(keydir, growth_keeps_every_key_and_location)
{
    /* One shard, so each of its ~30 growths is seen: verify everything
     * whenever the memory held changes (table growth or a new chunk). */
    keydir *kd = rci_keydir_new();
    unsigned changes = 0;
    size_t bytes = rci_keydir_bytes(kd);
    for (uint32_t i = 0; i < 12000; i++) {
        char k[16];
        size_t klen = key_of(i, k);
        uint64_t h = rci_keydir_hash(k, klen) >> 6; /* top bits 0: shard 0 */
        kd_loc loc = loc_of(i, 1), got;
        rci_keydir_wrlock(kd, 0);
        cr_assert_eq(rci_keydir_put(kd, h, k, klen, &loc, NULL, NULL), 0);
        if (rci_keydir_bytes(kd) != bytes) {
            bytes = rci_keydir_bytes(kd);
            changes++;
            for (uint32_t j = 0; j <= i; j++) {
                char kj[16];
                size_t kjlen = key_of(j, kj);
                kd_loc want = loc_of(j, 1);
                cr_assert(rci_keydir_find(kd, rci_keydir_hash(kj, kjlen) >> 6, kj, kjlen, &got),
                          "key %u lost at size %u", j, i + 1);
                assert_loc_eq(&got, &want);
            }
        }
        rci_keydir_unlock(kd, 0);
    }
    cr_assert_gt(changes, 30);
    cr_assert_eq(rci_keydir_shard_count(kd, 0), 12000);
    rci_keydir_free(kd);

    /* All shards, real hashes, checked at growing sizes. */
    kd = rci_keydir_new();
    uint32_t n = 0;
    for (uint32_t target = 1; target <= 200000; target = target * 3 + 1) {
        for (; n < target; n++)
            put_i(kd, n, 1);
        assert_all_present(kd, n, 1);
    }
    rci_keydir_free(kd);
}

/* Forged hashes for the collision model: shard 5, tags from a small pool that
 * includes the extremes, so homes pile up, runs wrap past the end of the table
 * and many different keys share one tag. */
static uint64_t forged_hash(uint32_t i)
{
    static const uint32_t edge[] = {0u, 1u, 0x7fffffffu, 0x80000000u, 0xfffffff0u, 0xffffffffu};
    uint64_t state = i % 251u;
    uint32_t tag = i % 251u < 6u ? edge[i % 251u] : (uint32_t)splitmix64(&state);
    return (uint64_t)5u << 58 | tag;
}

Test(keydir, backward_shift_deletion_matches_a_model_under_collisions)
{
    enum { KEYS = 1500, OPS = 200000 };
    keydir *kd = rci_keydir_new();
    static kd_loc model[KEYS];
    static bool present[KEYS];
    uint64_t rng = 42;
    size_t live = 0;
    rci_keydir_wrlock(kd, 5);
    for (uint32_t op = 0; op < OPS; op++) {
        uint32_t i = (uint32_t)(splitmix64(&rng) % KEYS);
        unsigned what = (unsigned)(splitmix64(&rng) % 100u);
        char k[16];
        size_t klen = key_of(i, k);
        uint64_t h = forged_hash(i);
        kd_loc got;
        /* Expiry flips at random, so entries are resized and the arena
         * churns and compacts under the same collisions. */
        kd_loc loc = loc_of(i, op);
        loc.expires_at_ms = what % 2 ? 1700000000000 + op : 0;
        if (what < 40) {
            bool had_old;
            cr_assert_eq(rci_keydir_put(kd, h, k, klen, &loc, &got, &had_old), 0);
            cr_assert_eq(had_old, present[i]);
            if (had_old)
                assert_loc_eq(&got, &model[i]);
            live += !present[i];
            model[i] = loc;
            present[i] = true;
        } else if (what < 50) {
            /* Merge: repoint from the current location or from a stale one. */
            kd_loc expect = present[i] ? model[i] : loc;
            expect.seq -= what % 3 == 0;
            bool moved = rci_keydir_repoint(kd, h, k, klen, &expect, &loc);
            bool should = present[i] && expect.seq == model[i].seq;
            cr_assert_eq(moved, should, "op %u: repoint of key %u", op, i);
            if (moved)
                model[i] = loc;
        } else if (what < 60) {
            kd_loc expect = present[i] ? model[i] : loc;
            expect.off += what % 3 == 0;
            bool removed = rci_keydir_remove_if(kd, h, k, klen, &expect);
            bool should = present[i] && expect.off == model[i].off;
            cr_assert_eq(removed, should, "op %u: remove_if of key %u", op, i);
            live -= removed;
            present[i] = present[i] && !removed;
        } else if (what < 85) {
            bool found = rci_keydir_remove(kd, h, k, klen, &got);
            cr_assert_eq(found, present[i], "op %u: remove of key %u", op, i);
            if (found)
                assert_loc_eq(&got, &model[i]);
            live -= present[i];
            present[i] = false;
        } else {
            bool found = rci_keydir_find(kd, h, k, klen, &got);
            cr_assert_eq(found, present[i], "op %u: find of key %u", op, i);
            if (found)
                assert_loc_eq(&got, &model[i]);
        }
        if (op % 4096 == 0 || op == OPS - 1) {
            size_t with_expiry = 0;
            for (uint32_t j = 0; j < KEYS; j++) {
                klen = key_of(j, k);
                bool found = rci_keydir_find(kd, forged_hash(j), k, klen, &got);
                cr_assert_eq(found, present[j], "op %u: key %u", op, j);
                if (found)
                    assert_loc_eq(&got, &model[j]);
                with_expiry += present[j] && model[j].expires_at_ms != 0;
            }
            cr_assert_eq(rci_keydir_shard_count(kd, 5), live);
            cr_assert_eq(rci_keydir_ttl_count(kd), with_expiry);
        }
    }
    rci_keydir_unlock(kd, 5);
    rci_keydir_free(kd);
}

Test(keydir, same_tag_different_keys_are_distinct)
{
    keydir *kd = rci_keydir_new();
    uint64_t h = 0x0123456789abcdefull; /* one hash for every key */
    unsigned sh = keydir_shard_of(h);
    rci_keydir_wrlock(kd, sh);
    for (uint32_t i = 0; i < 100; i++) {
        char k[16];
        kd_loc loc = loc_of(i, 0);
        cr_assert_eq(rci_keydir_put(kd, h, k, key_of(i, k), &loc, NULL, NULL), 0);
    }
    for (uint32_t i = 0; i < 100; i += 2) {
        char k[16];
        cr_assert(rci_keydir_remove(kd, h, k, key_of(i, k), NULL));
    }
    for (uint32_t i = 0; i < 100; i++) {
        char k[16];
        kd_loc got, want = loc_of(i, 0);
        bool found = rci_keydir_find(kd, h, k, key_of(i, k), &got);
        cr_assert_eq(found, i % 2 == 1);
        if (found)
            assert_loc_eq(&got, &want);
    }
    rci_keydir_unlock(kd, sh);
    rci_keydir_free(kd);
}

/* rci_keydir_peek answers from the slot alone: the first slot with the
 * key's tag and length, whichever key it belongs to (the reader checks the
 * key in the record), ABSENT when none has both. */
Test(keydir, peek_returns_the_first_slot_with_the_tag_and_length)
{
    keydir *kd = rci_keydir_new();
    uint64_t h = 0x00000000cafe0001ull; /* shard 0; forged: all keys below share it */
    kd_loc la = {.seg = 1, .off = 100, .seq = 7}, lb = {.seg = 2, .off = 200, .seq = 8};
    kd_loc lc = {.seg = 3, .off = 300, .seq = 9};
    kd_loc ld = {.seg = 4, .off = 400, .seq = 10, .expires_at_ms = 1700000000000};
    kd_loc got, old;
    rci_keydir_wrlock(kd, 0);
    cr_assert_eq(rci_keydir_peek(kd, h, 2, &got), KD_PEEK_ABSENT, "empty keydir");
    cr_assert_eq(rci_keydir_put(kd, h, "aa", 2, &la, NULL, NULL), 0);
    cr_assert_eq(rci_keydir_put(kd, h, "bb", 2, &lb, NULL, NULL), 0);
    cr_assert_eq(rci_keydir_put(kd, h, "ccc", 3, &lc, NULL, NULL), 0);

    cr_assert_eq(rci_keydir_peek(kd, h, 2, &got), KD_PEEK_CANDIDATE);
    cr_assert(got.seg == la.seg && got.off == la.off, "the first of the run: aa's slot");
    cr_assert(got.seq == 0 && got.expires_at_ms == 0, "the slot holds no seq or expiry");
    cr_assert_eq(rci_keydir_peek(kd, h, 3, &got), KD_PEEK_CANDIDATE);
    cr_assert(got.seg == lc.seg && got.off == lc.off, "the length skips aa and bb");
    cr_assert_eq(rci_keydir_peek(kd, h, 4, &got), KD_PEEK_ABSENT, "no slot of that length");
    cr_assert_eq(rci_keydir_peek(kd, h ^ 0x10, 2, &got), KD_PEEK_ABSENT, "another tag");
    cr_assert(rci_keydir_find(kd, h, "bb", 2, &got), "the full lookup tells them apart");
    assert_loc_eq(&got, &lb);

    /* an overwrite moves the location in the slot; a removal shifts bb in */
    kd_loc la2 = {.seg = 5, .off = 500, .seq = 11};
    cr_assert_eq(rci_keydir_put(kd, h, "aa", 2, &la2, &old, NULL), 0);
    assert_loc_eq(&old, &la);
    cr_assert_eq(rci_keydir_peek(kd, h, 2, &got), KD_PEEK_CANDIDATE);
    cr_assert(got.seg == la2.seg && got.off == la2.off);
    cr_assert(rci_keydir_remove(kd, h, "aa", 2, NULL));
    cr_assert_eq(rci_keydir_peek(kd, h, 2, &got), KD_PEEK_CANDIDATE);
    cr_assert(got.seg == lb.seg && got.off == lb.off, "bb is now the first");

    /* a key with an expiry is a candidate too (the reader checks the expiry
     * in the record), with or without it; the expiry itself stays in the
     * entry, for the full lookup */
    cr_assert_eq(rci_keydir_put(kd, h, "dddd", 4, &ld, NULL, NULL), 0);
    cr_assert_eq(rci_keydir_peek(kd, h, 4, &got), KD_PEEK_CANDIDATE);
    cr_assert(got.seg == ld.seg && got.off == ld.off);
    cr_assert(got.seq == 0 && got.expires_at_ms == 0, "the slot holds no seq or expiry");
    cr_assert(rci_keydir_find(kd, h, "dddd", 4, &got));
    assert_loc_eq(&got, &ld);
    ld.expires_at_ms = 0;
    ld.off = 404;
    cr_assert_eq(rci_keydir_put(kd, h, "dddd", 4, &ld, NULL, NULL), 0);
    cr_assert_eq(rci_keydir_peek(kd, h, 4, &got), KD_PEEK_CANDIDATE);
    cr_assert(got.seg == ld.seg && got.off == ld.off);
    rci_keydir_unlock(kd, 0);
    rci_keydir_free(kd);
}

Test(keydir, expiry_change_reallocates_and_keeps_the_other_fields)
{
    keydir *kd = rci_keydir_new();
    const char *key = "session:0123456789";
    size_t klen = strlen(key);
    kd_loc plain = {.seg = 1, .off = 2, .seq = 3}, got;
    cr_assert_eq(put(kd, key, klen, &plain, NULL, NULL), 0);
    size_t bytes = rci_keydir_bytes(kd);

    /* Overwrites that keep the expiry's presence are in place: no memory. */
    for (uint32_t v = 0; v < 1000; v++) {
        kd_loc loc = {.seg = (uint16_t)v, .off = v, .seq = 10u + v};
        cr_assert_eq(put(kd, key, klen, &loc, NULL, NULL), 0);
    }
    cr_assert_eq(rci_keydir_bytes(kd), bytes);
    cr_assert_eq(rci_keydir_ttl_count(kd), 0);

    kd_loc timed = {.seg = 7, .off = 8, .seq = 5000, .expires_at_ms = -1};
    cr_assert_eq(put(kd, key, klen, &timed, NULL, NULL), 0);
    cr_assert(find(kd, key, klen, &got));
    assert_loc_eq(&got, &timed);
    cr_assert_eq(rci_keydir_ttl_count(kd), 1);
    for (uint32_t v = 0; v < 1000; v++) {
        timed.expires_at_ms = 1700000000000 + v;
        timed.seq++;
        cr_assert_eq(put(kd, key, klen, &timed, NULL, NULL), 0);
    }
    cr_assert(find(kd, key, klen, &got));
    assert_loc_eq(&got, &timed);

    /* Toggling allocates a differently sized entry each time; the holes
     * show up in keydir_bytes until compaction. */
    size_t max_bytes = rci_keydir_bytes(kd);
    for (uint32_t v = 0; v < 1000; v++) {
        kd_loc loc = {.seg = (uint16_t)v,
                      .off = ~v,
                      .seq = 9000u + v,
                      .expires_at_ms = v % 2 ? 0 : 1800000000000 + v};
        cr_assert_eq(put(kd, key, klen, &loc, NULL, NULL), 0);
        cr_assert(find(kd, key, klen, &got));
        assert_loc_eq(&got, &loc);
        cr_assert_eq(rci_keydir_ttl_count(kd), v % 2 ? 0u : 1u);
        if (rci_keydir_bytes(kd) > max_bytes)
            max_bytes = rci_keydir_bytes(kd);
    }
    cr_assert_gt(max_bytes, bytes, "toggling the expiry never allocated");
    cr_assert_lt(rci_keydir_bytes(kd), bytes + 4096, "holes were not compacted");
    cr_assert_eq(rci_keydir_count(kd), 1);
    rci_keydir_free(kd);
}

Test(keydir, compaction_after_churn_keeps_keys_and_returns_memory)
{
    enum { N = 60000 };
    keydir *kd = rci_keydir_new();
    for (uint32_t i = 0; i < N; i++)
        put_i(kd, i, 1);
    size_t full = rci_keydir_bytes(kd);

    /* Remove every other key: load stays above the shrink threshold, so any
     * drop in bytes comes from compacting the arenas. */
    for (uint32_t i = 0; i < N; i += 2) {
        char k[16];
        cr_assert(del(kd, k, key_of(i, k), NULL));
    }
    size_t half = rci_keydir_bytes(kd);
    cr_assert_lt(half, full * 9 / 10, "arena not compacted: %zu -> %zu", full, half);
    for (uint32_t i = 1; i < N; i += 2)
        assert_has_i(kd, i, 1);

    /* Churn: rewrite the live half with toggled expiries, delete and re-add
     * the other half, several rounds. Memory must stay bounded. */
    for (uint32_t round = 2; round <= 8; round++) {
        for (uint32_t i = 0; i < N; i++) {
            char k[16];
            size_t klen = key_of(i, k);
            if (i % 2 == 0 && round % 2 == 1)
                cr_assert(del(kd, k, klen, NULL));
            else
                put_i(kd, i, round);
        }
        cr_assert_lt(rci_keydir_bytes(kd), full * 3 / 2, "round %u: %zu", round,
                     rci_keydir_bytes(kd));
    }
    for (uint32_t i = 0; i < N; i++)
        assert_has_i(kd, i, 8);
    cr_assert_eq(rci_keydir_count(kd), N);

    /* Emptying the keydir gives everything back but the shard array. */
    size_t empty = 0;
    {
        keydir *fresh = rci_keydir_new();
        empty = rci_keydir_bytes(fresh);
        rci_keydir_free(fresh);
    }
    for (uint32_t i = 0; i < N; i++) {
        char k[16];
        cr_assert(del(kd, k, key_of(i, k), NULL));
    }
    cr_assert_eq(rci_keydir_count(kd), 0);
    cr_assert_eq(rci_keydir_ttl_count(kd), 0);
    cr_assert_eq(rci_keydir_bytes(kd), empty);
    rci_keydir_free(kd);
}

Test(keydir, table_shrinks_after_mass_deletion)
{
    enum { N = 100000 };
    keydir *kd = rci_keydir_new();
    for (uint32_t i = 0; i < N; i++)
        put_i(kd, i, 1);
    size_t full = rci_keydir_bytes(kd);
    for (uint32_t i = 0; i < N; i++) {
        char k[16];
        if (i % 10)
            cr_assert(del(kd, k, key_of(i, k), NULL));
    }
    /* A tenth of the keys left: tables and arenas both shrink near a tenth. */
    cr_assert_lt(rci_keydir_bytes(kd), full / 5, "%zu of %zu bytes still held",
                 rci_keydir_bytes(kd), full);
    for (uint32_t i = 0; i < N; i += 10)
        assert_has_i(kd, i, 1);
    cr_assert_eq(rci_keydir_count(kd), N / 10);
    rci_keydir_free(kd);
}

Test(keydir, empty_keydir_is_small)
{
    keydir *kd = rci_keydir_new();
    cr_assert_lt(rci_keydir_bytes(kd), 16u * 1024u);
    cr_assert_eq(rci_keydir_count(kd), 0);
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
        size_t cursor = 0;
        cr_assert_eq(rci_keydir_shard_count(kd, s), 0);
        cr_assert(rci_keydir_shard_scan_step(kd, s, &cursor, 10, NULL, NULL));
        cr_assert_eq(rci_keydir_shard_foreach(kd, s, NULL, NULL), 0);
    }
    rci_keydir_free(kd);
}

Test(keydir, binary_keys_and_length_limits)
{
    keydir *kd = rci_keydir_new();
    static uint8_t big[1024], big2[1024];
    memset(big, 0xff, sizeof big);
    memcpy(big2, big, sizeof big2);
    big2[1023] = 0x00;
    const struct {
        const void *key;
        size_t len;
    } keys[] = {
        {"\x00", 1},         {"\xff", 1},   {"\x00\x00", 2}, {"a\x00", 2},     {"a", 1},
        {"\x00\xff\x00", 3}, {big, 1024},   {big2, 1024},    {big, 1023},      {"", 1},
        {"\xff\xff", 2},     {"a\x00b", 3}, {"a\x00c", 3},   {big2 + 1, 1023},
    };
    enum { NK = sizeof keys / sizeof keys[0] };
    for (unsigned i = 0; i < NK; i++) {
        kd_loc loc = {.seg = (uint16_t)i, .off = i * 100u, .seq = i + 1u};
        cr_assert_eq(put(kd, keys[i].key, keys[i].len, &loc, NULL, NULL), 0);
    }
    /* {"", 1} is the single byte 0x00 again: it overwrote key 0. */
    cr_assert_eq(rci_keydir_count(kd), NK - 1);
    for (unsigned i = 1; i < NK; i++) {
        kd_loc got, want = {.seg = (uint16_t)i, .off = i * 100u, .seq = i + 1u};
        cr_assert(find(kd, keys[i].key, keys[i].len, &got), "key %u", i);
        assert_loc_eq(&got, &want);
    }
    cr_assert(find(kd, keys[0].key, 1, NULL));

    kd_loc loc = {.seq = 1};
    static uint8_t too_long[1025];
    cr_assert_eq(put(kd, too_long, 1025, &loc, NULL, NULL), -1, "keys are at most 1024 bytes");
    cr_assert_eq(put(kd, "x", 0, &loc, NULL, NULL), -1, "keys are at least 1 byte");
    cr_assert_not(find(kd, too_long, 1025, NULL));
    cr_assert_eq(rci_keydir_count(kd), NK - 1);
    rci_keydir_free(kd);
}

struct visits {
    uint8_t *seen; /* per key index (the location's off) */
    size_t calls;
    size_t stop_after;
};

static int count_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    struct visits *v = ctx;
    char expect[16];
    uint32_t i = (uint32_t)loc->seq; /* loc_of() puts the key number there */
    cr_assert_eq(klen, key_of(i, expect));
    cr_assert_eq(memcmp(key, expect, klen), 0);
    v->seen[i]++;
    v->calls++;
    return v->stop_after && v->calls == v->stop_after ? 42 : 0;
}

Test(keydir, foreach_visits_each_key_exactly_once)
{
    enum { N = 20000 };
    keydir *kd = rci_keydir_new();
    for (uint32_t i = 0; i < N; i++)
        put_i(kd, i, 3);
    struct visits v = {.seen = calloc(N, 1)};
    size_t per_shard_total = 0;
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
        size_t before = v.calls;
        rci_keydir_rdlock(kd, s);
        cr_assert_eq(rci_keydir_shard_foreach(kd, s, count_visit, &v), 0);
        rci_keydir_unlock(kd, s);
        cr_assert_eq(v.calls - before, rci_keydir_shard_count(kd, s));
        per_shard_total += rci_keydir_shard_count(kd, s);
    }
    cr_assert_eq(per_shard_total, N);
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(v.seen[i], 1, "key %u seen %u times", i, v.seen[i]);

    struct visits stop = {.seen = calloc(N, 1), .stop_after = 3};
    rci_keydir_rdlock(kd, 0);
    cr_assert_eq(rci_keydir_shard_foreach(kd, 0, count_visit, &stop), 42, "non-zero stops");
    rci_keydir_unlock(kd, 0);
    cr_assert_eq(stop.calls, 3);
    free(stop.seen);
    free(v.seen);
    rci_keydir_free(kd);
}

Test(keydir, scan_step_covers_each_entry_once_per_cycle)
{
    enum { N = 5000 };
    keydir *kd = rci_keydir_new();
    for (uint32_t i = 0; i < N; i++)
        put_i(kd, i, 0);
    const size_t budgets[] = {1, 2, 7, 64, 1000000};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        struct visits v = {.seen = calloc(N, 1)};
        for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
            size_t cursor = 0, steps = 0;
            rci_keydir_rdlock(kd, s);
            /* Two cycles: the second must repeat the first exactly. */
            for (int cycle = 0; cycle < 2; cycle++) {
                while (!rci_keydir_shard_scan_step(kd, s, &cursor, budgets[b], count_visit, &v))
                    cr_assert_lt(++steps, 1000000u, "no wrap");
                cr_assert_eq(cursor, 0);
            }
            rci_keydir_unlock(kd, s);
        }
        for (uint32_t i = 0; i < N; i++)
            cr_assert_eq(v.seen[i], 2, "budget %zu: key %u seen %u times", budgets[b], i,
                         v.seen[i]);
        free(v.seen);
    }

    /* A callback that stops resumes after the slot it stopped on. */
    struct visits v = {.seen = calloc(N, 1), .stop_after = 1};
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
        size_t cursor = 0;
        rci_keydir_rdlock(kd, s);
        for (;;) {
            v.calls = 0;
            bool wrapped = rci_keydir_shard_scan_step(kd, s, &cursor, 50, count_visit, &v);
            cr_assert_leq(v.calls, 1, "the step went on after the callback stopped it");
            if (wrapped)
                break;
        }
        rci_keydir_unlock(kd, s);
    }
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(v.seen[i], 1, "key %u seen %u times", i, v.seen[i]);
    free(v.seen);

    /* A cursor past the end (the table shrank) wraps without visiting. */
    size_t cursor = (size_t)1 << 40;
    rci_keydir_rdlock(kd, 0);
    cr_assert(rci_keydir_shard_scan_step(kd, 0, &cursor, 10, count_visit, &v));
    rci_keydir_unlock(kd, 0);
    cr_assert_eq(cursor, 0);
    rci_keydir_free(kd);
}

Test(keydir, enomem_changes_nothing)
{
    if (!rci_keydir_fault_fail_alloc)
        cr_skip_test("the keydir was built without RC_FAULT_INJECTION");
    rci_keydir_fault_fail_alloc(0);
    cr_assert_null(rci_keydir_new());

    /* Fail the Nth allocation for every N in reach: each put either succeeds
     * or returns -1 and leaves no trace; removes always succeed (their
     * shrink and compaction are best effort). */
    enum { N = 3000 };
    static bool in[N];
    for (long fail_at = 0; fail_at < 400; fail_at += fail_at < 100 ? 1 : 7) {
        keydir *kd = rci_keydir_new();
        cr_assert_not_null(kd);
        size_t live = 0;
        rci_keydir_fault_fail_alloc(fail_at);
        for (uint32_t i = 0; i < N; i++) {
            char k[16];
            kd_loc loc = loc_of(i, 1);
            int rc = put(kd, k, key_of(i, k), &loc, NULL, NULL);
            in[i] = rc == 0;
            live += in[i];
            cr_assert_eq(rci_keydir_count(kd), live, "fail_at %ld, key %u", fail_at, i);
            if (rc)
                cr_assert_not(find(kd, k, key_of(i, k), NULL));
        }
        cr_assert_geq(live, N - 1);
        /* Expiry changes need a new entry: a failure keeps the old one. */
        rci_keydir_fault_fail_alloc(fail_at % 5);
        for (uint32_t i = 0; i < N; i++) {
            char k[16];
            size_t klen = key_of(i, k);
            kd_loc want = loc_of(i, 1), flip = want, got;
            flip.expires_at_ms = want.expires_at_ms ? 0 : 42;
            flip.seq++;
            if (!in[i])
                continue;
            if (put(kd, k, klen, &flip, NULL, NULL) == 0)
                want = flip;
            cr_assert(find(kd, k, klen, &got));
            assert_loc_eq(&got, &want);
            if (want.seq != flip.seq) { /* this one failed: the rest succeed */
                kd_loc old = want;
                cr_assert_eq(put(kd, k, klen, &old, NULL, NULL), 0);
            }
        }
        rci_keydir_fault_fail_alloc(fail_at);
        for (uint32_t i = 0; i < N; i++) {
            char k[16];
            cr_assert_eq(del(kd, k, key_of(i, k), NULL), in[i], "fail_at %ld, key %u", fail_at, i);
        }
        rci_keydir_fault_fail_alloc(-1);
        cr_assert_eq(rci_keydir_count(kd), 0);
        rci_keydir_free(kd);
    }
}

Test(keydir, repoint_survives_enomem)
{
    if (!rci_keydir_fault_fail_alloc)
        cr_skip_test("the keydir was built without RC_FAULT_INJECTION");
    uint64_t h = rci_keydir_hash("r", 1);
    unsigned sh = keydir_shard_of(h);
    kd_loc cur = {.seg = 1, .off = 2, .seq = 3};
    kd_loc moved = {.seg = 4, .off = 5, .seq = 3, .expires_at_ms = 99};
    /* NEWLOC has an expiry, so it needs a bigger entry; when that allocation
     * fails the repoint must still happen, or merge would delete the segment
     * the key points into. With 0..63 filler entries in the shard, some runs
     * need a new chunk exactly then. */
    for (int fillers = 0; fillers < 64; fillers++) {
        keydir *kd = rci_keydir_new();
        kd_loc got;
        rci_keydir_wrlock(kd, sh);
        cr_assert_eq(rci_keydir_put(kd, h, "r", 1, &cur, NULL, NULL), 0);
        for (int i = 0; i < fillers; i++) {
            kd_loc filler = {.seq = 1};
            char k[3] = {'f', (char)i, 0};
            uint64_t fh = rci_keydir_hash(k, 3) >> 6 | (uint64_t)sh << 58;
            cr_assert_eq(rci_keydir_put(kd, fh, k, 3, &filler, NULL, NULL), 0);
        }
        rci_keydir_fault_fail_alloc(0);
        cr_assert(rci_keydir_repoint(kd, h, "r", 1, &cur, &moved));
        rci_keydir_fault_fail_alloc(-1);
        cr_assert(rci_keydir_find(kd, h, "r", 1, &got));
        cr_assert_eq(got.seg, moved.seg);
        cr_assert_eq(got.off, moved.off);
        cr_assert_eq(got.seq, moved.seq);
        rci_keydir_unlock(kd, sh);
        rci_keydir_free(kd);
    }
}

enum { CONC_KEYS = 40000, CONC_READERS = 4 };

/* Readers do not assert (Criterion's asserts belong to the test's thread):
 * they count violations and the test checks the count. */
struct conc {
    keydir *kd;
    _Atomic uint32_t inserted; /* keys 0..inserted-1 are in (version 0) */
    _Atomic uint32_t removed;  /* odd keys below this have been removed */
    _Atomic bool done;
    _Atomic uint32_t errors;
    _Atomic uint64_t lookups;
};

static void *conc_reader(void *arg)
{
    struct conc *c = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng, lookups = 0;
    while (!atomic_load(&c->done)) {
        uint32_t inserted = atomic_load(&c->inserted);
        uint32_t removed = atomic_load(&c->removed);
        uint32_t i = (uint32_t)(splitmix64(&rng) % CONC_KEYS);
        char k[16];
        kd_loc got, want = loc_of(i, 0);
        bool found = find(c->kd, k, key_of(i, k), &got);
        bool must_be_there = i < inserted && i % 2 == 0;
        bool must_be_gone = i % 2 == 1 && i < removed;
        bool loc_ok = !found || (got.seg == want.seg && got.off == want.off &&
                                 got.seq == want.seq && got.expires_at_ms == want.expires_at_ms);
        if ((must_be_there && !found) || (must_be_gone && found) || !loc_ok)
            atomic_fetch_add(&c->errors, 1);
        lookups++;
    }
    atomic_fetch_add(&c->lookups, lookups);
    return NULL;
}

Test(keydir, concurrent_readers_and_one_writer)
{
    struct conc c = {.kd = rci_keydir_new()};
    pthread_t readers[CONC_READERS];
    for (int t = 0; t < CONC_READERS; t++)
        cr_assert_eq(pthread_create(&readers[t], NULL, conc_reader, &c), 0);
    for (uint32_t i = 0; i < CONC_KEYS; i++) {
        put_i(c.kd, i, 0);
        atomic_store(&c.inserted, i + 1);
    }
    for (uint32_t i = 1; i < CONC_KEYS; i += 2) {
        char k[16];
        cr_assert(del(c.kd, k, key_of(i, k), NULL));
        atomic_store(&c.removed, i + 1);
    }
    atomic_store(&c.done, true);
    for (int t = 0; t < CONC_READERS; t++)
        pthread_join(readers[t], NULL);
    cr_assert_eq(atomic_load(&c.errors), 0, "readers saw %u wrong answers", c.errors);
    cr_assert_gt(atomic_load(&c.lookups), 0);
    for (uint32_t i = 0; i < CONC_KEYS; i++) {
        char k[16];
        size_t klen = key_of(i, k);
        if (i % 2)
            cr_assert_not(find(c.kd, k, klen, NULL), "key %u", i);
        else
            assert_has_i(c.kd, i, 0);
    }
    cr_assert_eq(rci_keydir_count(c.kd), CONC_KEYS / 2);
    rci_keydir_free(c.kd);
}

Test(keydir, reserve_presizes_without_losing_entries)
{
    keydir *kd = rci_keydir_new();
    cr_assert_not_null(kd);
    char key[16];
    kd_loc loc = {.seg = 1, .off = 40, .seq = 1};
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "pre%d", i);
        uint64_t h = rci_keydir_hash(key, strlen(key));
        rci_keydir_wrlock(kd, keydir_shard_of(h));
        cr_assert_eq(rci_keydir_put(kd, h, key, strlen(key), &loc, NULL, NULL), 0);
        rci_keydir_unlock(kd, keydir_shard_of(h));
    }
    size_t before = rci_keydir_bytes(kd);
    cr_assert_eq(rci_keydir_reserve(kd, 200000), 0);
    cr_assert_gt(rci_keydir_bytes(kd), before + 200000 * 8, "tables did not grow");
    size_t reserved = rci_keydir_bytes(kd);
    for (int i = 1000; i < 150000; i++) {
        snprintf(key, sizeof(key), "pre%d", i);
        uint64_t h = rci_keydir_hash(key, strlen(key));
        rci_keydir_wrlock(kd, keydir_shard_of(h));
        cr_assert_eq(rci_keydir_put(kd, h, key, strlen(key), &loc, NULL, NULL), 0);
        rci_keydir_unlock(kd, keydir_shard_of(h));
    }
    /* no table grew again: only arenas added memory */
    cr_assert_lt(rci_keydir_bytes(kd) - reserved, 150000 * 40, "tables were regrown");
    for (int i = 0; i < 150000; i += 997) {
        snprintf(key, sizeof(key), "pre%d", i);
        uint64_t h = rci_keydir_hash(key, strlen(key));
        cr_assert(rci_keydir_find(kd, h, key, strlen(key), NULL), "lost %s", key);
    }
    cr_assert_eq(rci_keydir_count(kd), 150000);
    rci_keydir_free(kd);
}

/* Put key I (version V) into shard 0 of KD whatever its real hash. */
static void put_shard0(keydir *kd, uint32_t i, uint32_t v)
{
    char k[16];
    size_t klen = key_of(i, k);
    kd_loc loc = loc_of(i, v);
    rci_keydir_wrlock(kd, 0);
    cr_assert_eq(rci_keydir_put(kd, rci_keydir_hash(k, klen) >> 6, k, klen, &loc, NULL, NULL), 0);
    rci_keydir_unlock(kd, 0);
}

static bool has_shard0(keydir *kd, uint32_t i, uint32_t v)
{
    char k[16];
    size_t klen = key_of(i, k);
    kd_loc got, want = loc_of(i, v);
    rci_keydir_rdlock(kd, 0);
    bool found = rci_keydir_find(kd, rci_keydir_hash(k, klen) >> 6, k, klen, &got);
    rci_keydir_unlock(kd, 0);
    return found && got.seg == want.seg && got.off == want.off && got.seq == want.seq &&
           got.expires_at_ms == want.expires_at_ms;
}

Test(keydir, pooled_tables_of_interleaved_keydirs_keep_their_keys)
{
    /* Tables of 64 KiB .. 2 MiB are runs of chunks inside the shared 2 MiB
     * regions that also hold arena chunks, and are cleared when handed out
     * again; larger ones are mappings of their own. Three keydirs grow one
     * shard each in turn, so tables and chunks of all three interleave in
     * the regions and every freed table is soon reused by another; A's
     * shard grows past 2 MiB of table (150k keys: ~176k slots) and shrinks
     * back through the pooled sizes when most of it is deleted. */
    enum { NA = 150000, NB = 40000 };
    keydir *a = rci_keydir_new(), *b = rci_keydir_new(), *c = rci_keydir_new();
    for (uint32_t i = 0; i < NA; i++) {
        put_shard0(a, i, 1);
        if (i < NB) {
            put_shard0(b, i, 2);
            put_shard0(c, i, 3);
        }
        if (i == NB / 2) /* free C's tables and chunks into the regions */
            for (uint32_t j = 0; j <= i; j++) {
                char k[16];
                size_t klen = key_of(j, k);
                rci_keydir_wrlock(c, 0);
                cr_assert(rci_keydir_remove(c, rci_keydir_hash(k, klen) >> 6, k, klen, NULL));
                rci_keydir_unlock(c, 0);
            }
    }
    cr_assert_gt(rci_keydir_bytes(a), 2u << 20, "A's table should outgrow a region");
    for (uint32_t i = 0; i < NA; i++)
        cr_assert(has_shard0(a, i, 1), "A lost key %u", i);
    for (uint32_t i = 0; i < NB; i++) {
        cr_assert(has_shard0(b, i, 2), "B lost key %u", i);
        cr_assert_eq(has_shard0(c, i, 3), i > NB / 2, "C key %u", i);
    }
    /* Shrink A through every pooled size while B and C keep theirs. */
    for (uint32_t i = 0; i < NA; i++) {
        if (i % 50 == 0)
            continue;
        char k[16];
        size_t klen = key_of(i, k);
        rci_keydir_wrlock(a, 0);
        cr_assert(rci_keydir_remove(a, rci_keydir_hash(k, klen) >> 6, k, klen, NULL));
        rci_keydir_unlock(a, 0);
        if (i % 20000 == 0)
            put_shard0(b, NB + i, 2); /* a table or chunk taken meanwhile */
    }
    cr_assert_lt(rci_keydir_bytes(a), 256u * 1024u);
    for (uint32_t i = 0; i < NA; i += 50)
        cr_assert(has_shard0(a, i, 1), "A lost key %u", i);
    for (uint32_t i = 0; i < NB; i++)
        cr_assert(has_shard0(b, i, 2), "B lost key %u", i);
    rci_keydir_free(a);
    rci_keydir_free(b);
    rci_keydir_free(c);
}
