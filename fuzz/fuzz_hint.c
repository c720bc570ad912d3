/*
 * fuzz_hint.c — hint files (format/hint.h) on arbitrary bytes.
 *
 * With the reseal bit the harness rewrites the trailer checksum first, so
 * that mutations get past it into the header and entry checks. Checks: a
 * verified file holds exactly `count` entries filling the body, each inside
 * the covered range and re-encoding byte for byte; the entry decoder alone,
 * walked over the raw input, reports consistent sizes and round-trips too.
 * Version 2 (keyless, blocks of delta-coded entries with an index): every
 * block of a verified file decodes on its own to entries that re-encode
 * byte for byte from a fresh context, in file order inside the covered
 * range; fmt_hint2_file_open agrees with the whole-file verify; the v2 entry
 * decoder alone round-trips over the raw bytes.
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

static void check_entry2(const uint8_t *buf, size_t avail, const fmt_hint_entry *e, size_t used,
                         fmt_hint2_ctx before)
{
    FUZZ_CHECK(used >= FMT_HINT2_ENTRY_MIN && used <= avail && used <= FMT_HINT2_ENTRY_MAX);
    FUZZ_CHECK(e->klen >= 1 && e->klen <= FMT_KEY_MAX && e->seq >= 1 && !e->key);
    FUZZ_CHECK(e->offset >= before.end);
    uint8_t out[FMT_HINT2_ENTRY_MAX];
    fmt_hint2_ctx c = before;
    FUZZ_CHECK(fmt_hint2_entry_encode(out, used - 1, e, &c) == 0);
    c = before;
    FUZZ_CHECK(fmt_hint2_entry_encode(out, sizeof out, e, &c) == used);
    FUZZ_CHECK(memcmp(out, buf, used) == 0);
}

typedef struct walk2 {
    const uint8_t *buf;
    size_t len;
    uint64_t next;      /* the index the next entry must have */
    uint64_t block_end; /* first index of the next block */
    fmt_hint2_ctx c;
} walk2;

static int on_entry2(void *ctx, const fmt_hint_header *h, uint64_t i, const fmt_hint_entry *e,
                     size_t pos)
{
    walk2 *w = ctx;
    FUZZ_CHECK(i == w->next);
    if (i % h->block == 0)
        w->c = (fmt_hint2_ctx){0, 0};
    fmt_hint2_ctx before = w->c;
    fmt_hint_entry d;
    size_t used = 0;
    FUZZ_CHECK(fmt_hint2_entry_decode(w->buf + pos, w->len - pos, &d, &used, &w->c) == FMT_OK);
    FUZZ_CHECK(d.seq == e->seq && d.offset == e->offset && d.total_len == e->total_len);
    check_entry2(w->buf + pos, w->len - pos, &d, used, before);
    FUZZ_CHECK(e->offset >= FMT_SEG_HEADER_LEN);
    FUZZ_CHECK((uint64_t)e->offset + e->total_len <= h->covered);
    w->next++;
    return 0;
}

static void check_v2(const uint8_t *buf, size_t len, const fmt_hint_header *h)
{
    fmt_hint_header o;
    uint64_t nb = 0;
    FUZZ_CHECK(fmt_hint2_file_open(buf, len, &o, &nb) == FMT_OK);
    FUZZ_CHECK(o.count == h->count && o.block == h->block);
    walk2 w = {.buf = buf, .len = len};
    for (uint64_t b = 0; b < nb; b++) {
        w.next = b * h->block;
        FUZZ_CHECK(fmt_hint2_block_walk(buf, len, h, b, on_entry2, &w) == FMT_OK);
    }
    FUZZ_CHECK(w.next == h->count);
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
    if (rc == FMT_OK && h.version == 2) {
        check_v2(buf, len, &h);
        uint8_t hdr[FMT_HINT_HEADER_LEN];
        fmt_hint_header_encode(hdr, &h);
        FUZZ_CHECK(memcmp(hdr, buf, sizeof hdr) == 0);
    } else if (rc == FMT_OK) {
        FUZZ_CHECK(h.version == 1);
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
    /* The version 2 entry decoder alone, one context over the raw bytes. */
    fmt_hint2_ctx c = {0, 0};
    for (pos = 0; pos < len;) {
        fmt_hint_entry e;
        size_t used = 0;
        fmt_hint2_ctx before = c;
        if (fmt_hint2_entry_decode(buf + pos, len - pos, &e, &used, &c) != FMT_OK)
            break;
        check_entry2(buf + pos, len - pos, &e, used, before);
        pos += used;
    }
    free(buf);
    return 0;
}
