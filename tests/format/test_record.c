/* Records (record.h): round trips, limits, truncation, bit flips, resync. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "record.h"

static uint8_t key16[16] = "0123456789abcdef";
static uint8_t val100[100];

static fmt_record rec(uint64_t seq, const void *key, uint32_t klen, const void *val, uint32_t vlen)
{
    fmt_record r = {0};
    r.seq = seq;
    r.ks = FMT_KS_DEFAULT;
    r.key = key;
    r.klen = klen;
    r.val = val;
    r.vlen = vlen;
    return r;
}

/* Encode R, decode it back and compare every field; returns the size. */
static size_t round_trip(const fmt_record *r, uint8_t *buf, size_t cap)
{
    size_t n = fmt_record_encode(buf, cap, r);
    cr_assert_gt(n, 0);
    cr_assert_eq(n, fmt_record_size(r));
    fmt_record d;
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_OK);
    cr_assert_eq(d.total_len, n);
    cr_assert_eq(d.seq, r->seq);
    cr_assert_eq(d.ks, r->ks);
    cr_assert_eq(d.expires_at_ms, r->expires_at_ms);
    cr_assert_eq(d.klen, r->klen);
    cr_assert_eq(d.vlen, r->vlen);
    cr_assert_eq(memcmp(d.key, r->key, r->klen), 0);
    if (r->vlen)
        cr_assert_eq(memcmp(d.val, r->val, r->vlen), 0);
    uint8_t want = r->flags & (uint8_t) ~(FMT_REC_HAS_KS | FMT_REC_HAS_EXPIRY);
    if (r->ks != FMT_KS_DEFAULT)
        want |= FMT_REC_HAS_KS;
    if (r->expires_at_ms)
        want |= FMT_REC_HAS_EXPIRY;
    cr_assert_eq(d.flags, want);
    /* peek agrees with decode */
    fmt_record p;
    cr_assert_eq(fmt_record_peek(buf, n, &p), FMT_OK);
    cr_assert_eq(p.total_len, n);
    cr_assert_eq(p.key, d.key);
    return n;
}

/* Hand-build a record from raw header bytes with a correct checksum, so that
 * the field checks (not the checksum) must reject it. */
static size_t raw_record(uint8_t *buf, uint8_t flags, const uint64_t *vars, int nvars,
                         size_t body_len)
{
    size_t pos = 4;
    buf[pos++] = flags;
    for (int i = 0; i < nvars; i++)
        pos += fmt_put_varint(buf + pos, vars[i]);
    memset(buf + pos, 'k', body_len);
    pos += body_len;
    fmt_put_u32(buf, fmt_hash32(buf + 4, pos - 4));
    return pos;
}

Test(record, overhead_of_16_byte_key_100_byte_value_is_10_bytes)
{
    fmt_record r = rec(1000000, key16, 16, val100, 100); /* a 3-byte seq */
    cr_assert_eq(fmt_record_size(&r), 126);
    r.seq = 5;
    cr_assert_eq(fmt_record_size(&r), 124);
}

Test(record, exact_bytes_of_a_small_record)
{
    uint8_t buf[64];
    fmt_record r = rec(300, "k", 1, "vv", 2);
    size_t n = fmt_record_encode(buf, sizeof buf, &r);
    uint8_t want[] = {0, 0, 0, 0, 0x00, 0xAC, 0x02, 0x01, 0x02, 'k', 'v', 'v'};
    fmt_put_u32(want, fmt_hash32(want + 4, sizeof want - 4));
    cr_assert_eq(n, sizeof want);
    cr_assert_eq(memcmp(buf, want, n), 0);
}

Test(record, round_trip_boundary_lengths)
{
    static uint8_t key[FMT_KEY_MAX];
    memset(key, 'x', sizeof key);
    size_t big = 1u << 20;
    uint8_t *val = malloc(big);
    uint8_t *buf = malloc(big + 2048);
    cr_assert(val && buf);
    for (size_t i = 0; i < big; i++)
        val[i] = (uint8_t)(i * 31);

    fmt_record r = rec(1, key, 1, NULL, 0);
    cr_assert_eq(round_trip(&r, buf, big + 2048), 4 + 1 + 1 + 1 + 1 + 1);
    r = rec(UINT64_MAX, key, FMT_KEY_MAX, val, (uint32_t)big);
    cr_assert_eq(round_trip(&r, buf, big + 2048), 4 + 1 + 10 + 2 + 3 + 1024 + big);
    free(val);
    free(buf);
}

Test(record, round_trip_every_flag_combination)
{
    uint8_t buf[256];
    for (unsigned flags = 0; flags < 256; flags++) {
        if ((flags & FMT_REC_BATCH) && (flags & FMT_REC_BATCH_END))
            continue;
        for (int variant = 0; variant < 4; variant++) {
            fmt_record r = rec(77, key16, 16, val100, 8);
            r.flags = (uint8_t)flags;
            if (flags & FMT_REC_TOMBSTONE)
                r.vlen = 0;
            r.ks = (variant & 1) ? (variant & 2 ? FMT_KS_MAX : FMT_KS_CATALOG) : FMT_KS_DEFAULT;
            r.expires_at_ms = (variant & 2) ? 1767225600123ull : 0;
            round_trip(&r, buf, sizeof buf);
        }
    }
}

Test(record, value_type_bits)
{
    uint8_t buf[64];
    fmt_record r = rec(9, "a", 1, "12", 2);
    r.flags = 3u << FMT_REC_TYPE_SHIFT;
    size_t n = fmt_record_encode(buf, sizeof buf, &r);
    fmt_record d;
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_OK);
    cr_assert_eq(fmt_record_type(&d), 3);
}

Test(record, encoder_refuses_invalid_fields_and_small_buffers)
{
    uint8_t buf[2048];
    fmt_record r = rec(1, key16, 0, NULL, 0);
    cr_assert_eq(fmt_record_encode(buf, sizeof buf, &r), 0);
    r = rec(1, buf, FMT_KEY_MAX + 1, NULL, 0);
    cr_assert_eq(fmt_record_encode(buf, sizeof buf, &r), 0);
    r = rec(1, key16, 16, val100, FMT_VALUE_MAX + 1);
    cr_assert_eq(fmt_record_encode(buf, sizeof buf, &r), 0);
    r = rec(1, key16, 16, val100, 1);
    r.flags = FMT_REC_TOMBSTONE;
    cr_assert_eq(fmt_record_encode(buf, sizeof buf, &r), 0);
    r = rec(0, key16, 16, val100, 1);
    cr_assert_eq(fmt_record_encode(buf, sizeof buf, &r), 0);
    r = rec(1, key16, 16, val100, 1);
    r.flags = FMT_REC_BATCH | FMT_REC_BATCH_END;
    cr_assert_eq(fmt_record_encode(buf, sizeof buf, &r), 0);
    r = rec(1, key16, 16, val100, 100);
    size_t need = fmt_record_size(&r);
    cr_assert_eq(fmt_record_encode(buf, need - 1, &r), 0);
    cr_assert_eq(fmt_record_encode(buf, need, &r), need);
}

Test(record, every_truncation_is_short)
{
    uint8_t buf[256];
    fmt_record r = rec(123456, key16, 16, val100, 100);
    r.ks = 7;
    r.expires_at_ms = 99999;
    size_t n = fmt_record_encode(buf, sizeof buf, &r);
    for (size_t cut = 0; cut < n; cut++) {
        fmt_record d;
        cr_assert_eq(fmt_record_decode(buf, cut, &d), FMT_ESHORT, "cut at %zu", cut);
    }
}

Test(record, every_bit_flip_is_rejected)
{
    uint8_t buf[256];
    fmt_record r = rec(123456, key16, 16, val100, 100);
    r.ks = 7;
    r.expires_at_ms = 99999;
    r.flags = FMT_REC_BATCH;
    size_t n = fmt_record_encode(buf, sizeof buf, &r);
    for (size_t bit = 0; bit < n * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        fmt_record d;
        int rc = fmt_record_decode(buf, n, &d);
        cr_assert_neq(rc, FMT_OK, "flip of bit %zu decoded", bit);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    fmt_record d;
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_OK);
}

Test(record, decodes_inside_a_longer_buffer)
{
    uint8_t buf[256];
    fmt_record r = rec(5, key16, 16, val100, 10);
    size_t n = fmt_record_encode(buf, sizeof buf, &r);
    memset(buf + n, 0xAB, sizeof buf - n);
    fmt_record d;
    cr_assert_eq(fmt_record_decode(buf, sizeof buf, &d), FMT_OK);
    cr_assert_eq(d.total_len, n);
}

Test(record, rejects_bad_fields_with_valid_checksum)
{
    uint8_t buf[4096];
    fmt_record d;
    size_t n;

    n = raw_record(buf, 0, (uint64_t[]){1, 0, 0}, 3, 0); /* klen 0 */
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ECORRUPT);
    n = raw_record(buf, 0, (uint64_t[]){1, FMT_KEY_MAX + 1, 0}, 3, FMT_KEY_MAX + 1);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ELIMIT);
    n = raw_record(buf, 0, (uint64_t[]){1, FMT_KEY_MAX, 0}, 3, FMT_KEY_MAX);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_OK);
    n = raw_record(buf, 0, (uint64_t[]){1, 1, FMT_VALUE_MAX + 1ull}, 3, 1);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ELIMIT);
    cr_assert_eq(fmt_record_peek(buf, n, &d), FMT_ELIMIT);
    n = raw_record(buf, FMT_REC_TOMBSTONE, (uint64_t[]){1, 1, 1}, 3, 2); /* tombstone value */
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ECORRUPT);
    n = raw_record(buf, 0, (uint64_t[]){0, 1, 0}, 3, 1); /* seq 0 */
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ECORRUPT);
    n = raw_record(buf, FMT_REC_BATCH | FMT_REC_BATCH_END, (uint64_t[]){1, 1, 0}, 3, 1);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ECORRUPT);
    n = raw_record(buf, FMT_REC_HAS_KS, (uint64_t[]){1, 1ull << 32, 1, 0}, 4, 1);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ELIMIT);
    n = raw_record(buf, FMT_REC_HAS_KS, (uint64_t[]){1, FMT_KS_DEFAULT, 1, 0}, 4, 1);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ECORRUPT);
    n = raw_record(buf, FMT_REC_HAS_EXPIRY, (uint64_t[]){1, 0, 1, 0}, 4, 1);
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_ECORRUPT);
    n = raw_record(buf, FMT_REC_HAS_KS, (uint64_t[]){1, 0, 1, 0}, 4, 1); /* catalogue: fine */
    cr_assert_eq(fmt_record_decode(buf, n, &d), FMT_OK);
    cr_assert_eq(d.ks, FMT_KS_CATALOG);
}

Test(record, rejects_bad_varints)
{
    uint8_t buf[64];
    fmt_record d;
    /* seq as eleven continuation bytes */
    size_t pos = 4;
    buf[pos++] = 0;
    for (int i = 0; i < 11; i++)
        buf[pos++] = 0x80;
    buf[pos++] = 0x01;
    fmt_put_u32(buf, fmt_hash32(buf + 4, pos - 4));
    cr_assert_eq(fmt_record_decode(buf, pos, &d), FMT_ECORRUPT);
    /* non-minimal klen (1 as 0x81 0x00) */
    uint8_t nm[] = {0, 0, 0, 0, 0x00, 0x01, 0x81, 0x00, 0x00, 'k'};
    fmt_put_u32(nm, fmt_hash32(nm + 4, sizeof nm - 4));
    cr_assert_eq(fmt_record_decode(nm, sizeof nm, &d), FMT_ECORRUPT);
}

Test(record, peek_reads_header_of_partial_record)
{
    uint8_t buf[256];
    fmt_record r = rec(42, key16, 16, val100, 100);
    size_t n = fmt_record_encode(buf, sizeof buf, &r);
    fmt_record p;
    cr_assert_eq(fmt_record_peek(buf, 8, &p), FMT_OK); /* header is 8 bytes */
    cr_assert_eq(p.total_len, n);
    cr_assert_eq(p.seq, 42);
    cr_assert_null(p.key);
    cr_assert_null(p.val);
    cr_assert_eq(fmt_record_peek(buf, 7, &p), FMT_ESHORT);
    buf[0] ^= 1; /* peek ignores the checksum */
    cr_assert_eq(fmt_record_peek(buf, n, &p), FMT_OK);
    cr_assert_eq(fmt_record_decode(buf, n, &p), FMT_ECORRUPT);
}

Test(record, zero_fill_never_decodes)
{
    uint8_t zeros[64] = {0};
    fmt_record d;
    cr_assert_eq(fmt_record_decode(zeros, sizeof zeros, &d), FMT_ECORRUPT);
    cr_assert_eq(fmt_record_resync(zeros, sizeof zeros, 0), sizeof zeros);
}

Test(record, resync_finds_next_whole_record)
{
    uint8_t buf[1024];
    size_t pos = 0;
    size_t starts[3];
    for (int i = 0; i < 3; i++) {
        fmt_record r = rec((uint64_t)i + 1, key16, 16, val100, 50);
        starts[i] = pos;
        pos += fmt_record_encode(buf + pos, sizeof buf - pos, &r);
    }
    cr_assert_eq(fmt_record_resync(buf, pos, starts[0]), starts[1]);
    buf[starts[1] + 30] ^= 0x40; /* corrupt the middle record's key */
    cr_assert_eq(fmt_record_resync(buf, pos, starts[0]), starts[2]);
    cr_assert_eq(fmt_record_resync(buf, pos, starts[2]), pos);
    cr_assert_eq(fmt_record_resync(buf, pos, pos), pos);
    /* the last record cut short: nothing to resync on */
    cr_assert_eq(fmt_record_resync(buf, pos - 1, starts[1]), pos - 1);
}

Test(record, peek_accepts_largest_value_length)
{
    uint8_t buf[64];
    size_t pos = 4;
    buf[pos++] = 0;
    pos += fmt_put_varint(buf + pos, 1);
    pos += fmt_put_varint(buf + pos, 1);
    pos += fmt_put_varint(buf + pos, FMT_VALUE_MAX);
    buf[pos] = 'k';
    fmt_record p;
    cr_assert_eq(fmt_record_peek(buf, pos + 1, &p), FMT_OK);
    cr_assert_eq(p.vlen, FMT_VALUE_MAX);
    cr_assert_eq(p.total_len, pos + 1 + FMT_VALUE_MAX);
    cr_assert_eq(fmt_record_decode(buf, pos + 1, &p), FMT_ESHORT);
}
