/* Varints, error names and the checksum helpers of fmt.h. */
#include <criterion/criterion.h>

#include "fmt.h"

static const uint64_t samples[] = {
    0,
    1,
    127,
    128,
    255,
    16383,
    16384,
    2097151,
    2097152,
    (1ull << 35) - 1,
    1ull << 35,
    (1ull << 56),
    (1ull << 63) - 1,
    1ull << 63,
    UINT64_MAX,
};

Test(varint, round_trips_boundaries)
{
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint8_t buf[FMT_VARINT_MAX];
        size_t n = fmt_put_varint(buf, samples[i]);
        cr_assert_eq(n, fmt_varint_len(samples[i]));
        uint64_t v = 42;
        cr_assert_eq(fmt_get_varint(buf, n, &v), (int)n, "value %llu",
                     (unsigned long long)samples[i]);
        cr_assert_eq(v, samples[i]);
        /* every shorter input is "ends first" */
        for (size_t cut = 0; cut < n; cut++)
            cr_assert_eq(fmt_get_varint(buf, cut, &v), 0);
    }
}

Test(varint, lengths)
{
    cr_assert_eq(fmt_varint_len(0), 1);
    cr_assert_eq(fmt_varint_len(127), 1);
    cr_assert_eq(fmt_varint_len(128), 2);
    cr_assert_eq(fmt_varint_len(UINT32_MAX), 5);
    cr_assert_eq(fmt_varint_len(UINT64_MAX), 10);
}

Test(varint, rejects_eleven_bytes)
{
    uint8_t buf[11];
    memset(buf, 0x80, sizeof buf);
    buf[10] = 0x01;
    uint64_t v;
    cr_assert_eq(fmt_get_varint(buf, sizeof buf, &v), -1);
    /* ten continuation bytes with nothing after: malformed, not short */
    cr_assert_eq(fmt_get_varint(buf, 10, &v), -1);
}

Test(varint, rejects_overflow_beyond_64_bits)
{
    uint8_t buf[10];
    memset(buf, 0xFF, 9);
    buf[9] = 0x02; /* bit 64 */
    uint64_t v;
    cr_assert_eq(fmt_get_varint(buf, 10, &v), -1);
    buf[9] = 0x7F;
    cr_assert_eq(fmt_get_varint(buf, 10, &v), -1);
    buf[9] = 0x01;
    cr_assert_eq(fmt_get_varint(buf, 10, &v), 10);
    cr_assert_eq(v, UINT64_MAX);
}

Test(varint, rejects_non_minimal)
{
    uint8_t zero2[] = {0x80, 0x00};
    uint8_t one3[] = {0x81, 0x80, 0x00};
    uint64_t v;
    cr_assert_eq(fmt_get_varint(zero2, 2, &v), -1);
    cr_assert_eq(fmt_get_varint(one3, 3, &v), -1);
    uint8_t zero[] = {0x00};
    cr_assert_eq(fmt_get_varint(zero, 1, &v), 1);
    cr_assert_eq(v, 0);
}

Test(fmt, strerror_names_every_code)
{
    cr_assert_str_eq(fmt_strerror(FMT_OK), "ok");
    cr_assert_str_eq(fmt_strerror(FMT_ESHORT), "truncated input");
    cr_assert_str_eq(fmt_strerror(FMT_ECORRUPT), "corrupt data");
    cr_assert_str_eq(fmt_strerror(FMT_EVERSION), "unsupported format version");
    cr_assert_str_eq(fmt_strerror(FMT_ELIMIT), "length beyond limit");
    cr_assert_str_eq(fmt_strerror(FMT_ESPACE), "output buffer too small");
    cr_assert_str_eq(fmt_strerror(-99), "unknown format error");
}

Test(fmt, hash_is_xxh3_64)
{
    /* XXH3_64bits("") with seed 0, a published test vector. */
    cr_assert_eq(fmt_hash64("", 0), 0x2D06800538D394C2ull);
    cr_assert_eq(fmt_hash32("", 0), 0x38D394C2u);
    cr_assert_neq(fmt_hash64("a", 1), fmt_hash64("b", 1));
}

Test(fmt, little_endian_helpers)
{
    uint8_t b[8];
    fmt_put_u64(b, 0x0102030405060708ull);
    cr_assert_eq(b[0], 0x08);
    cr_assert_eq(b[7], 0x01);
    cr_assert_eq(fmt_get_u64(b), 0x0102030405060708ull);
    fmt_put_u16(b, 0xBEEF);
    cr_assert_eq(b[0], 0xEF);
    cr_assert_eq(fmt_get_u16(b), 0xBEEF);
}
