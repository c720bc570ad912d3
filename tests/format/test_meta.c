/* MERGING and HORIZON files: round trips, and refusal of every truncation,
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
