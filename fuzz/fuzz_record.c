/*
 * fuzz_record.c — records (format/record.h) on arbitrary bytes.
 *
 * Checks: decode and peek agree; a decoded record lies within the input and
 * re-encodes to exactly the bytes it was decoded from (canonical encoding);
 * and a recovery-style walk over the input (decode, or resync past a bad
 * record) always makes progress and only ever stops on valid records.
 */
#include "fuzz_util.h"

#include "record.h"

static void check_round_trip(const uint8_t *buf, size_t avail, const fmt_record *r)
{
    FUZZ_CHECK(r->total_len <= avail);
    FUZZ_CHECK(r->total_len >= FMT_REC_MIN);
    FUZZ_CHECK(r->klen >= 1 && r->klen <= FMT_KEY_MAX && r->vlen <= FMT_VALUE_MAX);
    FUZZ_CHECK(r->seq >= 1);
    FUZZ_CHECK(r->key == buf + r->total_len - r->vlen - r->klen);
    FUZZ_CHECK(fmt_record_size(r) == r->total_len);
    uint8_t *out = malloc(r->total_len);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(fmt_record_encode(out, r->total_len - 1, r) == 0);
    FUZZ_CHECK(fmt_record_encode(out, r->total_len, r) == r->total_len);
    FUZZ_CHECK(memcmp(out, buf, r->total_len) == 0);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    uint8_t *buf = fuzz_copy(data + 1, size - 1);
    size_t len = size - 1;

    fmt_record peeked, decoded;
    int prc = fmt_record_peek(buf, len, &peeked);
    if ((mode & FUZZ_RESEAL) && prc == FMT_OK && peeked.total_len <= len)
        fmt_put_u32(buf, fmt_hash32(buf + 4, peeked.total_len - 4));

    int rc = fmt_record_decode(buf, len, &decoded);
    FUZZ_CHECK(rc <= 0 && rc >= FMT_ELIMIT);
    if (rc == FMT_OK) {
        FUZZ_CHECK(prc == FMT_OK);
        FUZZ_CHECK(peeked.total_len == decoded.total_len && peeked.seq == decoded.seq);
        check_round_trip(buf, len, &decoded);
    } else if (prc == FMT_OK) {
        /* peek passed: only the checksum or the length can fail decode */
        FUZZ_CHECK(rc == (peeked.total_len > len ? FMT_ESHORT : FMT_ECORRUPT));
        FUZZ_CHECK((peeked.key == NULL) == (peeked.total_len > len));
    } else {
        FUZZ_CHECK(rc == prc);
    }

    /* Recovery of an immutable segment: skip bad records by resyncing. */
    size_t off = 0;
    while (off < len) {
        if (fmt_record_decode(buf + off, len - off, &decoded) == FMT_OK) {
            check_round_trip(buf + off, len - off, &decoded);
            off += decoded.total_len;
            continue;
        }
        size_t next = fmt_record_resync(buf, len, off);
        FUZZ_CHECK(next > off && next <= len);
        if (next < len)
            FUZZ_CHECK(fmt_record_decode(buf + next, len - next, &decoded) == FMT_OK);
        off = next;
    }
    free(buf);
    return 0;
}
