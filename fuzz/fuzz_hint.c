/*
 * fuzz_hint.c — hint files (format/hint.h) on arbitrary bytes.
 *
 * With the reseal bit the harness rewrites the trailer checksum first, so
 * that mutations get past it into the header and entry checks. Checks: a
 * verified file holds exactly `count` entries filling the body, each inside
 * the covered range and re-encoding byte for byte; the entry decoder alone,
 * walked over the raw input, reports consistent sizes and round-trips too.
 */
#include "fuzz_util.h"

#include "hint.h"
#include "segment.h"

static void check_entry(const uint8_t *buf, size_t avail, const fmt_hint_entry *e, size_t used)
{
    FUZZ_CHECK(used >= 6 && used <= avail && used <= FMT_HINT_ENTRY_MAX);
    FUZZ_CHECK(e->klen >= 1 && e->klen <= FMT_KEY_MAX && e->seq >= 1);
    FUZZ_CHECK(e->key + e->klen == buf + used);
    uint8_t out[FMT_HINT_ENTRY_MAX];
    FUZZ_CHECK(fmt_hint_entry_encode(out, used - 1, e) == 0);
    FUZZ_CHECK(fmt_hint_entry_encode(out, sizeof out, e) == used);
    FUZZ_CHECK(memcmp(out, buf, used) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    uint8_t *buf = fuzz_copy(data + 1, size - 1);
    size_t len = size - 1;
    if ((mode & FUZZ_RESEAL) && len >= FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN)
        fmt_put_u64(buf + len - FMT_HINT_TRAILER_LEN, fmt_hash64(buf, len - FMT_HINT_TRAILER_LEN));

    fmt_hint_header h;
    int rc = fmt_hint_file_verify(buf, len, &h);
    FUZZ_CHECK(rc <= 0 && rc >= FMT_ELIMIT);
    if (rc == FMT_OK) {
        size_t pos = FMT_HINT_HEADER_LEN, end = len - FMT_HINT_TRAILER_LEN;
        for (uint64_t i = 0; i < h.count; i++) {
            fmt_hint_entry e;
            size_t used = 0;
            FUZZ_CHECK(fmt_hint_entry_decode(buf + pos, end - pos, &e, &used) == FMT_OK);
            check_entry(buf + pos, end - pos, &e, used);
            FUZZ_CHECK(e.offset >= FMT_SEG_HEADER_LEN);
            FUZZ_CHECK((uint64_t)e.offset + e.total_len <= h.covered);
            pos += used;
        }
        FUZZ_CHECK(pos == end);
        uint8_t hdr[FMT_HINT_HEADER_LEN];
        fmt_hint_header_encode(hdr, &h);
        FUZZ_CHECK(memcmp(hdr, buf, sizeof hdr) == 0);
    }

    /* The entry decoder alone, over the raw bytes. */
    size_t pos = 0;
    while (pos < len) {
        fmt_hint_entry e;
        size_t used = 0;
        if (fmt_hint_entry_decode(buf + pos, len - pos, &e, &used) != FMT_OK)
            break;
        check_entry(buf + pos, len - pos, &e, used);
        pos += used;
    }
    free(buf);
    return 0;
}
