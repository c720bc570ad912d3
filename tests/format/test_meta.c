/* MERGING, HORIZON and LOADING files: round trips, and refusal of every truncation,
 * a flipped byte, a wrong magic, a newer version and impossible counts. */
#include "format/meta.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(meta, merging_round_trip_and_rejections)
{
    uint64_t ids[4] = {1, 2, 99, 12345678};
    uint8_t buf[64];
    size_t len = fmt_merging_len(4);
    cr_assert_eq(len, 12 + 32 + 8);
    fmt_merging_encode(buf, ids, 4);
    uint64_t *got;
    uint32_t n;
    cr_assert_eq(fmt_merging_decode(buf, len, &got, &n), FMT_OK);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(got, ids, sizeof(ids)) == 0);
    free(got);
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_neq(fmt_merging_decode(buf, cut, &got, &n), FMT_OK, "cut %zu", cut);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x04;
        cr_assert_neq(fmt_merging_decode(buf, len, &got, &n), FMT_OK, "flip %zu", i);
        buf[i] ^= 0x04;
    }
    buf[4] = 2; /* a newer version */
    cr_assert_eq(fmt_merging_decode(buf, len, &got, &n), FMT_EVERSION);
    buf[4] = 1;
    fmt_put_u32(buf + 8, 0);
    cr_assert_eq(fmt_merging_decode(buf, len, &got, &n), FMT_ELIMIT);
    uint8_t extra[65];
    fmt_merging_encode(extra, ids, 4);
    extra[len] = 0;
    cr_assert_eq(fmt_merging_decode(extra, len + 1, &got, &n), FMT_ECORRUPT, "trailing byte");
}

Test(meta, horizon_round_trip_and_rejections)
{
    uint8_t buf[FMT_HORIZON_LEN + 1];
    fmt_horizon_encode(buf, 0xDEADBEEFull);
    uint64_t h = 0;
    cr_assert_eq(fmt_horizon_decode(buf, FMT_HORIZON_LEN, &h), FMT_OK);
    cr_assert_eq(h, 0xDEADBEEFull);
    for (size_t cut = 0; cut < FMT_HORIZON_LEN; cut++)
        cr_assert_eq(fmt_horizon_decode(buf, cut, &h), FMT_ESHORT, "cut %zu", cut);
    for (size_t i = 0; i < FMT_HORIZON_LEN; i++) {
        buf[i] ^= 0x80;
        cr_assert_neq(fmt_horizon_decode(buf, FMT_HORIZON_LEN, &h), FMT_OK, "flip %zu", i);
        buf[i] ^= 0x80;
    }
    cr_assert_eq(fmt_horizon_decode(buf, FMT_HORIZON_LEN + 1, &h), FMT_ECORRUPT);
}

Test(meta, loading_round_trip_and_rejections)
{
    uint8_t buf[FMT_LOADING_LEN + 1];
    fmt_loading_encode(buf, 12345, 678);
    uint64_t first = 0;
    uint32_t n = 0;
    cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_OK);
    cr_assert_eq(first, 12345);
    cr_assert_eq(n, 678);
    for (size_t cut = 0; cut < FMT_LOADING_LEN; cut++)
        cr_assert_eq(fmt_loading_decode(buf, cut, &first, &n), FMT_ESHORT, "cut %zu", cut);
    for (size_t i = 0; i < FMT_LOADING_LEN; i++) {
        buf[i] ^= 0x10;
        cr_assert_neq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_OK, "flip %zu", i);
        buf[i] ^= 0x10;
    }
    cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN + 1, &first, &n), FMT_ECORRUPT);
    buf[4] = 2;
    cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_EVERSION);
    /* well-sealed but impossible ranges */
    uint64_t bad_first[] = {0, FMT_SEGMENT_ID_MAX + 1, FMT_SEGMENT_ID_MAX, 1};
    uint32_t bad_count[] = {1, 1, 2, FMT_LOADING_MAX + 1};
    for (int i = 0; i < 4; i++) {
        fmt_loading_encode(buf, bad_first[i], bad_count[i]);
        cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_ELIMIT, "case %d",
                     i);
    }
    fmt_loading_encode(buf, 7, 0);
    cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_ELIMIT);
    fmt_loading_encode(buf, FMT_SEGMENT_ID_MAX, 1);
    cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_OK);
    buf[20] = 1; /* reserved, resealed */
    fmt_put_u64(buf + 24, fmt_hash64(buf, 24));
    cr_assert_eq(fmt_loading_decode(buf, FMT_LOADING_LEN, &first, &n), FMT_ECORRUPT);
}

Test(meta, identity_round_trip_layout_and_rejections)
{
    fmt_identity id = {.flags = FMT_IDENTITY_FORKED, .forked_at = 77}, d;
    for (int i = 0; i < 16; i++) {
        id.id[i] = (uint8_t)(i + 1);
        id.parent[i] = (uint8_t)(0xF0 + i);
    }
    uint8_t buf[FMT_IDENTITY_LEN + 1];
    fmt_identity_encode(buf, &id);
    /* FORMAT.md 10.4, byte by byte */
    cr_assert_eq(memcmp(buf, "RCID", 4), 0);
    cr_assert_eq(fmt_get_u16(buf + 4), 1);
    cr_assert_eq(fmt_get_u16(buf + 6), FMT_IDENTITY_FORKED);
    cr_assert_eq(memcmp(buf + 8, id.id, 16), 0);
    cr_assert_eq(memcmp(buf + 24, id.parent, 16), 0);
    cr_assert_eq(fmt_get_u64(buf + 40), 77);
    cr_assert_eq(fmt_get_u64(buf + 48), fmt_hash64(buf, 48));
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_OK);
    cr_assert_eq(memcmp(&d.id, &id.id, 16), 0);
    cr_assert_eq(memcmp(&d.parent, &id.parent, 16), 0);
    cr_assert_eq(d.forked_at, 77);
    cr_assert_eq(d.flags, FMT_IDENTITY_FORKED);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN - 1, &d), FMT_ESHORT);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN + 1, &d), FMT_ECORRUPT);
    for (size_t i = 0; i < FMT_IDENTITY_LEN; i++) {
        buf[i] ^= 0x04;
        cr_assert_neq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_OK, "byte %zu", i);
        buf[i] ^= 0x04;
    }
    /* field rules, each with a valid checksum */
    fmt_identity bad = id;
    bad.flags = FMT_IDENTITY_FORKED | FMT_IDENTITY_REPLICA;
    fmt_identity_encode(buf, &bad);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_ECORRUPT, "both flags");
    bad.flags = 0x4;
    fmt_identity_encode(buf, &bad);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_ECORRUPT, "unknown flag");
    bad.flags = FMT_IDENTITY_REPLICA;
    fmt_identity_encode(buf, &bad);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_ECORRUPT,
                 "a parent without FORKED");
    memset(bad.parent, 0, 16);
    bad.forked_at = 0;
    fmt_identity_encode(buf, &bad);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_OK, "a replica");
    memset(bad.id, 0, 16);
    fmt_identity_encode(buf, &bad);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_ECORRUPT, "the zero id");
    fmt_identity_encode(buf, &id);
    fmt_put_u16(buf + 4, 2);
    cr_assert_eq(fmt_identity_decode(buf, FMT_IDENTITY_LEN, &d), FMT_EVERSION);
}
