/* Segment headers, catalogue values and hint files. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "catalog.h"
#include "hint.h"
#include "record.h"
#include "segment.h"

/* ---------------------------------------------------------------- segment */

static void seg_fixture(uint8_t out[FMT_SEG_HEADER_LEN])
{
    fmt_segment_header h = {
        .segment_id = 17, .db_id = 0x1122334455667788ull, .created_ms = 1767225600000ull};
    fmt_segment_header_encode(out, &h);
}

/* Rewrite the header checksum after an edit, so only the edited field can fail. */
static void seg_reseal(uint8_t buf[FMT_SEG_HEADER_LEN])
{
    fmt_put_u32(buf + 36, fmt_hash32(buf, 36));
}

Test(segment, header_round_trip_and_layout)
{
    uint8_t buf[FMT_SEG_HEADER_LEN];
    seg_fixture(buf);
    cr_assert_eq(memcmp(buf, "RCSG", 4), 0);
    cr_assert_eq(fmt_get_u16(buf + 4), 1);
    cr_assert_eq(fmt_get_u64(buf + 8), 17);
    fmt_segment_header h;
    cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_OK);
    cr_assert_eq(h.segment_id, 17);
    cr_assert_eq(h.db_id, 0x1122334455667788ull);
    cr_assert_eq(h.created_ms, 1767225600000ull);
}

Test(segment, header_rejections)
{
    uint8_t buf[FMT_SEG_HEADER_LEN];
    fmt_segment_header h;
    seg_fixture(buf);
    for (size_t cut = 0; cut < FMT_SEG_HEADER_LEN; cut++)
        cr_assert_eq(fmt_segment_header_decode(buf, cut, &h), FMT_ESHORT);

    buf[0] = 'X';
    seg_reseal(buf);
    cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_ECORRUPT);

    seg_fixture(buf);
    fmt_put_u16(buf + 4, 2);
    seg_reseal(buf);
    cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_EVERSION);
    fmt_put_u16(buf + 4, 0);
    seg_reseal(buf);
    cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_ECORRUPT);

    seg_fixture(buf);
    fmt_put_u16(buf + 6, 1); /* unknown flag */
    seg_reseal(buf);
    cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_ECORRUPT);

    seg_fixture(buf);
    buf[32] = 1; /* reserved */
    seg_reseal(buf);
    cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_ECORRUPT);

    /* a flip in any byte past the version, unresealed: the checksum catches it */
    for (size_t i = 6; i < FMT_SEG_HEADER_LEN; i++) {
        seg_fixture(buf);
        buf[i] ^= 0x10;
        cr_assert_eq(fmt_segment_header_decode(buf, sizeof buf, &h), FMT_ECORRUPT, "byte %zu", i);
    }
}

/* ---------------------------------------------------------------- catalog */

Test(catalog, round_trip_and_layout)
{
    uint8_t buf[FMT_CATALOG_VALUE_LEN];
    fmt_catalog_entry e = {.dropped = true, .ks_id = 0x01020304, .default_ttl_ms = 3600000};
    fmt_catalog_encode(buf, &e);
    cr_assert_eq(buf[0], 1);
    cr_assert_eq(buf[1], 1);
    cr_assert_eq(fmt_get_u32(buf + 2), 0x01020304);
    fmt_catalog_entry d;
    cr_assert_eq(fmt_catalog_decode(buf, sizeof buf, &d), FMT_OK);
    cr_assert(d.dropped);
    cr_assert_eq(d.ks_id, 0x01020304);
    cr_assert_eq(d.default_ttl_ms, 3600000);
}

Test(catalog, rejections)
{
    uint8_t buf[FMT_CATALOG_VALUE_LEN + 1];
    fmt_catalog_entry e = {.dropped = false, .ks_id = 2, .default_ttl_ms = 0}, d;
    fmt_catalog_encode(buf, &e);
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN, &d), FMT_OK);
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN - 1, &d), FMT_ESHORT);
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN + 1, &d), FMT_ECORRUPT);
    buf[0] = 2;
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN, &d), FMT_EVERSION);
    buf[0] = 1;
    buf[1] = 2;
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN, &d), FMT_ECORRUPT);
    buf[1] = 0;
    e.ks_id = 0; /* the catalogue never describes itself */
    fmt_catalog_encode(buf, &e);
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN, &d), FMT_ECORRUPT);
    e.ks_id = 1; /* "default", once its TTL is set */
    fmt_catalog_encode(buf, &e);
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN, &d), FMT_OK);
    cr_assert_eq(d.ks_id, 1);
    e.ks_id = 2;
    e.default_ttl_ms = -1;
    fmt_catalog_encode(buf, &e);
    cr_assert_eq(fmt_catalog_decode(buf, FMT_CATALOG_VALUE_LEN, &d), FMT_ECORRUPT);
}

/* ------------------------------------------------------------------- hint */

#define HINT_N 5

/* A valid hint file of HINT_N entries over a segment of 10000 bytes. */
static size_t hint_fixture(uint8_t *buf, size_t cap, uint64_t count)
{
    fmt_hint_header h = {.segment_id = 3, .covered = 10000, .count = count, .version = 1};
    fmt_hint_header_encode(buf, &h);
    size_t pos = FMT_HINT_HEADER_LEN;
    uint32_t off = FMT_SEG_HEADER_LEN;
    for (int i = 0; i < HINT_N; i++) {
        char key[16];
        int klen = snprintf(key, sizeof key, "key-%d", i);
        fmt_hint_entry e = {.flags = i == 2 ? FMT_REC_TOMBSTONE : 0,
                            .seq = 1000u + (uint64_t)i,
                            .ks = (uint32_t)(i == 1 ? 9 : FMT_KS_DEFAULT),
                            .expires_at_ms = i == 3 ? 1767225600000ull : 0,
                            .key = (const uint8_t *)key,
                            .klen = (uint32_t)klen,
                            .offset = off,
                            .total_len = 100};
        size_t n = fmt_hint_entry_encode(buf + pos, cap - pos, &e);
        cr_assert_gt(n, 0);
        pos += n;
        off += 100;
    }
    fmt_put_u64(buf + pos, fmt_hash64(buf, pos));
    return pos + FMT_HINT_TRAILER_LEN;
}

Test(hint, file_verifies_and_entries_round_trip)
{
    uint8_t buf[1024];
    size_t len = hint_fixture(buf, sizeof buf, HINT_N);
    fmt_hint_header h;
    cr_assert_eq(fmt_hint_file_verify(buf, len, &h), FMT_OK);
    cr_assert_eq(h.segment_id, 3);
    cr_assert_eq(h.covered, 10000);
    cr_assert_eq(h.count, HINT_N);

    size_t pos = FMT_HINT_HEADER_LEN;
    for (int i = 0; i < HINT_N; i++) {
        fmt_hint_entry e;
        size_t used;
        cr_assert_eq(fmt_hint_entry_decode(buf + pos, len - pos, &e, &used), FMT_OK);
        char key[16];
        int klen = snprintf(key, sizeof key, "key-%d", i);
        cr_assert_eq(e.klen, (uint32_t)klen);
        cr_assert_eq(memcmp(e.key, key, e.klen), 0);
        cr_assert_eq(e.seq, 1000u + (uint64_t)i);
        cr_assert_eq(e.ks, i == 1 ? 9u : FMT_KS_DEFAULT);
        cr_assert_eq(e.expires_at_ms, i == 3 ? 1767225600000ull : 0);
        cr_assert_eq(e.offset, FMT_SEG_HEADER_LEN + 100u * (uint32_t)i);
        cr_assert_eq(e.total_len, 100);
        cr_assert_eq(e.flags & FMT_REC_TOMBSTONE, i == 2 ? FMT_REC_TOMBSTONE : 0);
        cr_assert_eq(!!(e.flags & FMT_REC_HAS_KS), i == 1);
        cr_assert_eq(!!(e.flags & FMT_REC_HAS_EXPIRY), i == 3);
        /* every truncation of an entry is short */
        for (size_t cut = 0; cut < used; cut++)
            cr_assert_eq(fmt_hint_entry_decode(buf + pos, cut, &e, &used), FMT_ESHORT);
        cr_assert_eq(fmt_hint_entry_decode(buf + pos, len - pos, &e, &used), FMT_OK);
        pos += used;
    }
    cr_assert_eq(pos, len - FMT_HINT_TRAILER_LEN);
}

Test(hint, every_flipped_byte_fails_verify)
{
    uint8_t buf[1024];
    size_t len = hint_fixture(buf, sizeof buf, HINT_N);
    fmt_hint_header h;
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x04;
        cr_assert_neq(fmt_hint_file_verify(buf, len, &h), FMT_OK, "byte %zu", i);
        buf[i] ^= 0x04;
    }
}

Test(hint, every_truncation_fails_verify)
{
    uint8_t buf[1024];
    size_t len = hint_fixture(buf, sizeof buf, HINT_N);
    fmt_hint_header h;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = fmt_hint_file_verify(buf, cut, &h);
        cr_assert_eq(rc,
                     cut < FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN ? FMT_ESHORT : FMT_ECORRUPT,
                     "cut %zu", cut);
    }
}

Test(hint, wrong_count_fails_verify)
{
    uint8_t buf[1024];
    fmt_hint_header h;
    size_t len = hint_fixture(buf, sizeof buf, HINT_N + 1);
    cr_assert_eq(fmt_hint_file_verify(buf, len, &h), FMT_ECORRUPT);
    len = hint_fixture(buf, sizeof buf, HINT_N - 1);
    cr_assert_eq(fmt_hint_file_verify(buf, len, &h), FMT_ECORRUPT);
    len = hint_fixture(buf, sizeof buf, UINT64_MAX);
    cr_assert_eq(fmt_hint_file_verify(buf, len, &h), FMT_ECORRUPT);
}

Test(hint, entry_outside_covered_range_fails_verify)
{
    uint8_t buf[1024];
    fmt_hint_header h = {.segment_id = 3, .covered = 200, .count = 1, .version = 1};
    fmt_hint_header_encode(buf, &h);
    fmt_hint_entry e = {.seq = 1,
                        .ks = FMT_KS_DEFAULT,
                        .key = (const uint8_t *)"k",
                        .klen = 1,
                        .offset = 150,
                        .total_len = 51};
    size_t pos = FMT_HINT_HEADER_LEN;
    pos += fmt_hint_entry_encode(buf + pos, sizeof buf - pos, &e);
    fmt_put_u64(buf + pos, fmt_hash64(buf, pos));
    fmt_hint_header out;
    cr_assert_eq(fmt_hint_file_verify(buf, pos + 8, &out), FMT_ECORRUPT);
    /* 150 + 50 == covered: fits exactly */
    e.total_len = 50;
    pos = FMT_HINT_HEADER_LEN;
    pos += fmt_hint_entry_encode(buf + pos, sizeof buf - pos, &e);
    fmt_put_u64(buf + pos, fmt_hash64(buf, pos));
    cr_assert_eq(fmt_hint_file_verify(buf, pos + 8, &out), FMT_OK);
}

Test(hint, header_rejections)
{
    uint8_t buf[FMT_HINT_HEADER_LEN];
    fmt_hint_header h = {.segment_id = 1, .covered = 40, .count = 0, .version = 1}, d;
    fmt_hint_header_encode(buf, &h);
    cr_assert_eq(memcmp(buf, "RCHT", 4), 0);
    cr_assert_eq(fmt_hint_header_decode(buf, sizeof buf, &d), FMT_OK);
    cr_assert_eq(d.version, 1);
    cr_assert_eq(fmt_hint_header_decode(buf, sizeof buf - 1, &d), FMT_ESHORT);
    fmt_put_u16(buf + 4, 3);
    cr_assert_eq(fmt_hint_header_decode(buf, sizeof buf, &d), FMT_EVERSION);
    fmt_put_u16(buf + 4, 1);
    fmt_put_u16(buf + 6, 0x8000);
    cr_assert_eq(fmt_hint_header_decode(buf, sizeof buf, &d), FMT_ECORRUPT);
    fmt_put_u16(buf + 6, 0);
    buf[1] = 'X';
    cr_assert_eq(fmt_hint_header_decode(buf, sizeof buf, &d), FMT_ECORRUPT);
}

Test(hint, entry_rejections)
{
    uint8_t buf[64];
    fmt_hint_entry e = {.flags = FMT_REC_BATCH_END | FMT_REC_TOMBSTONE,
                        .seq = 1,
                        .ks = FMT_KS_DEFAULT,
                        .key = (const uint8_t *)"k",
                        .klen = 1,
                        .offset = 40,
                        .total_len = 9};
    cr_assert_eq(fmt_hint_entry_encode(buf, sizeof buf, &e), 6);
    cr_assert_eq(buf[0], FMT_REC_TOMBSTONE); /* batch bits are dropped */
    e.flags = 0;
    e.seq = 0;
    cr_assert_eq(fmt_hint_entry_encode(buf, sizeof buf, &e), 0);
    e.seq = 1;
    e.klen = FMT_KEY_MAX + 1;
    cr_assert_eq(fmt_hint_entry_encode(buf, sizeof buf, &e), 0);
    e.klen = 0;
    cr_assert_eq(fmt_hint_entry_encode(buf, sizeof buf, &e), 0);
    e.klen = 1;
    size_t n = fmt_hint_entry_encode(buf, sizeof buf, &e);
    cr_assert_eq(n, 1 + 1 + 1 + 1 + 1 + 1);
    cr_assert_eq(fmt_hint_entry_encode(buf, n - 1, &e), 0);

    fmt_hint_entry d;
    size_t used;
    buf[0] = FMT_REC_BATCH_END;
    cr_assert_eq(fmt_hint_entry_decode(buf, n, &d, &used), FMT_ECORRUPT);
    buf[0] = 0;
    buf[1] = 0; /* seq 0 */
    cr_assert_eq(fmt_hint_entry_decode(buf, n, &d, &used), FMT_ECORRUPT);
    buf[1] = 1;
    buf[4] = 8; /* total_len below the smallest record with a 1-byte key */
    cr_assert_eq(fmt_hint_entry_decode(buf, n, &d, &used), FMT_ECORRUPT);
    buf[4] = 9;
    buf[2] = 0; /* klen 0 */
    cr_assert_eq(fmt_hint_entry_decode(buf, n, &d, &used), FMT_ECORRUPT);
    buf[2] = 1;
    cr_assert_eq(fmt_hint_entry_decode(buf, n, &d, &used), FMT_OK);
    cr_assert_eq(used, n);
}

Test(hint, layout_matches_format_md)
{
    uint8_t buf[1024];
    size_t len = hint_fixture(buf, sizeof buf, HINT_N);
    cr_assert_eq(fmt_get_u32(buf), 0x54484352u);
    cr_assert_eq(fmt_get_u16(buf + 4), 1);
    cr_assert_eq(fmt_get_u16(buf + 6), 0);
    cr_assert_eq(fmt_get_u64(buf + 8), 3);
    cr_assert_eq(fmt_get_u64(buf + 16), 10000);
    cr_assert_eq(fmt_get_u64(buf + 24), HINT_N);
    cr_assert_eq(fmt_get_u64(buf + 32), 0);
    cr_assert_eq(fmt_get_u64(buf + len - 8), fmt_hash64(buf, len - 8));
    /* first entry: flags 0, seq 1000 (E8 07), klen 5, offset 40, total 100, "key-0" */
    const uint8_t want[] = {0x00, 0xE8, 0x07, 0x05, 0x28, 0x64, 'k', 'e', 'y', '-', '0'};
    cr_assert_eq(memcmp(buf + 40, want, sizeof want), 0);
    /* second: HAS_KS, seq 1001 (E9 07), ks 9, klen 5, offset 140 (8C 01), total 100 */
    const uint8_t want2[] = {0x20, 0xE9, 0x07, 0x09, 0x05, 0x8C, 0x01, 0x64, 'k'};
    cr_assert_eq(memcmp(buf + 40 + sizeof want, want2, sizeof want2), 0);
}

/* ---------------------------------------------------------- hint version 2 */

#define HINT2_N 11

/* A valid v2 hint of HINT2_N keyless entries in blocks of BLOCK, over a
 * segment of 10000 bytes; records back to back but for a gap at entry 6. */
static size_t hint2_fixture(uint8_t *buf, size_t cap, uint32_t block)
{
    fmt_hint_header h = {
        .segment_id = 3, .covered = 10000, .count = HINT2_N, .version = 2, .block = block};
    fmt_hint_header_encode(buf, &h);
    size_t pos = FMT_HINT_HEADER_LEN, nb = 0;
    uint64_t index[HINT2_N];
    uint32_t off = FMT_SEG_HEADER_LEN;
    fmt_hint2_ctx c = {0, 0};
    for (int i = 0; i < HINT2_N; i++) {
        if (i % (int)block == 0) {
            index[nb++] = pos;
            c = (fmt_hint2_ctx){0, 0};
        }
        if (i == 6)
            off += 33;
        fmt_hint_entry e = {.flags = i == 2 ? FMT_REC_TOMBSTONE : 0,
                            .seq = i == 4 ? 5 : 1000u + (uint64_t)i, /* one seq going back */
                            .ks = (uint32_t)(i == 1 ? 9 : FMT_KS_DEFAULT),
                            .expires_at_ms = i == 3 ? 1767225600000ull : 0,
                            .klen = 5,
                            .offset = off,
                            .total_len = 100};
        size_t n = fmt_hint2_entry_encode(buf + pos, cap - pos, &e, &c);
        cr_assert_gt(n, 0);
        pos += n;
        off += 100;
    }
    for (size_t b = 0; b < nb; b++, pos += 8)
        fmt_put_u64(buf + pos, index[b]);
    fmt_put_u64(buf + pos, fmt_hash64(buf, pos));
    return pos + FMT_HINT_TRAILER_LEN;
}

typedef struct seen2 {
    uint64_t n;
    uint64_t seq[HINT2_N];
    uint32_t off[HINT2_N];
} seen2;

static int seen2_fn(void *ctx, const fmt_hint_header *h, uint64_t i, const fmt_hint_entry *e,
                    size_t pos)
{
    (void)h;
    (void)pos;
    seen2 *s = ctx;
    cr_assert_lt(i, HINT2_N);
    cr_assert_null(e->key);
    s->seq[i] = e->seq;
    s->off[i] = e->offset;
    s->n++;
    return 0;
}

Test(files, hint2_round_trip_in_blocks)
{
    for (uint32_t block = 1; block <= 12; block++) {
        uint8_t buf[1024];
        size_t len = hint2_fixture(buf, sizeof buf, block);
        fmt_hint_header h;
        uint64_t nb = 0;
        cr_assert_eq(fmt_hint2_file_open(buf, len, &h, &nb), FMT_OK, "block %u", block);
        cr_assert_eq(nb, (HINT2_N + block - 1) / block);
        cr_assert_eq(h.version, 2);
        cr_assert_eq(h.block, block);
        /* blocks decode on their own, in any order */
        seen2 s = {0};
        for (uint64_t b = nb; b-- > 0;)
            cr_assert_eq(fmt_hint2_block_walk(buf, len, &h, b, seen2_fn, &s), FMT_OK);
        cr_assert_eq(s.n, HINT2_N);
        uint32_t off = FMT_SEG_HEADER_LEN;
        for (int i = 0; i < HINT2_N; i++) {
            off += i == 6 ? 33 : 0;
            cr_assert_eq(s.seq[i], i == 4 ? 5 : 1000u + (uint64_t)i);
            cr_assert_eq(s.off[i], off);
            off += 100;
        }
        /* the whole-file walk accepts it too */
        seen2 w = {0};
        cr_assert_eq(fmt_hint_file_walk(buf, len, &h, seen2_fn, &w), FMT_OK);
        cr_assert_eq(w.n, HINT2_N);
    }
}

Test(files, hint2_entries_are_small)
{
    /* a record right after the previous one, seq + 1, default keyspace:
     * flags, seq delta, klen, gap, total_len = 5 bytes */
    uint8_t buf[FMT_HINT2_ENTRY_MAX];
    fmt_hint2_ctx c = {.seq = 41, .end = 1000};
    fmt_hint_entry e = {.seq = 42, .ks = 1, .klen = 16, .offset = 1000, .total_len = 126};
    cr_assert_eq(fmt_hint2_entry_encode(buf, sizeof buf, &e, &c), 5);
    cr_assert_eq(c.seq, 42);
    cr_assert_eq(c.end, 1126);
    /* not in file order: refused */
    e.offset = 1000;
    cr_assert_eq(fmt_hint2_entry_encode(buf, sizeof buf, &e, &c), 0);
}

Test(files, hint2_damage_is_detected)
{
    uint8_t buf[1024];
    size_t len = hint2_fixture(buf, sizeof buf, 4);
    fmt_hint_header h;
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x01;
        cr_assert_neq(fmt_hint_file_verify(buf, len, &h), FMT_OK, "byte %zu", i);
        buf[i] ^= 0x01;
    }
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_neq(fmt_hint_file_verify(buf, cut, &h), FMT_OK, "cut %zu", cut);
    /* resealed damage: a block index entry moved, a count too high, a block
     * size of 0 — each refused by the structure, not only the checksum */
    uint64_t nb;
    cr_assert_eq(fmt_hint2_file_open(buf, len, &h, &nb), FMT_OK);
    size_t ix = len - FMT_HINT_TRAILER_LEN - nb * 8;
    fmt_put_u64(buf + ix + 8, fmt_get_u64(buf + ix + 8) + 1);
    fmt_put_u64(buf + len - 8, fmt_hash64(buf, len - 8));
    cr_assert_neq(fmt_hint_file_verify(buf, len, &h), FMT_OK);
    len = hint2_fixture(buf, sizeof buf, 4);
    fmt_put_u64(buf + 24, HINT2_N + 1);
    fmt_put_u64(buf + len - 8, fmt_hash64(buf, len - 8));
    cr_assert_neq(fmt_hint_file_verify(buf, len, &h), FMT_OK);
    len = hint2_fixture(buf, sizeof buf, 4);
    fmt_put_u32(buf + 32, 0);
    fmt_put_u64(buf + len - 8, fmt_hash64(buf, len - 8));
    cr_assert_eq(fmt_hint_file_verify(buf, len, &h), FMT_ECORRUPT);
}
