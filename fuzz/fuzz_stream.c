/*
 * fuzz_stream.c — the whole backup stream reader (format/stream.h) on
 * arbitrary bytes, run the way kvload runs it.
 *
 * With the reseal bit the harness first rewrites the header checksum, every
 * frame's payload hash and the trailer's chain (following FORMAT.md), so
 * that mutations reach decompression, record parsing and the trailer counts.
 * Checks: a stream is accepted only with a trailer at the very end; every
 * record in an accepted frame decodes and re-encodes byte for byte; the
 * counts the reader accepted equal the records actually iterated.
 */
#include "fuzz_util.h"

#include "stream.h"

/* The harness allocates the raw buffer that a frame header announces. The
 * format allows FMT_STREAM_RAW_MAX (260 MiB); keep fuzzing runs small. */
#define FUZZ_RAW_CAP (16u << 20)

static uint64_t chain_step(uint64_t chain, const uint8_t *frame_header)
{
    uint8_t buf[8 + FMT_STREAM_FRAME_HEADER_LEN];
    fmt_put_u64(buf, chain);
    memcpy(buf + 8, frame_header, FMT_STREAM_FRAME_HEADER_LEN);
    return fmt_hash64(buf, sizeof buf);
}

static void reseal(uint8_t *b, size_t n)
{
    if (n < FMT_STREAM_HEADER_MIN)
        return;
    unsigned version = fmt_get_u16(b + 4);
    size_t hl = fmt_stream_header_len(version);
    if (hl == 0 || n < hl)
        return;
    fmt_put_u64(b + hl - 8, fmt_hash64(b, hl - 8));
    uint64_t chain = fmt_hash64(b, hl);
    size_t pos = hl;
    while (n - pos >= FMT_STREAM_FRAME_HEADER_LEN) {
        uint8_t *fh = b + pos;
        uint32_t stored = fmt_get_u32(fh + 1);
        if (stored > n - pos - FMT_STREAM_FRAME_HEADER_LEN)
            return;
        uint8_t *payload = fh + FMT_STREAM_FRAME_HEADER_LEN;
        if (fh[0] == FMT_STREAM_FRAME_TRAILER && stored == FMT_STREAM_TRAILER_LEN) {
            fmt_put_u64(payload + 32, chain);
            if (version >= 2) /* v2: the trailer repeats the header's until */
                memcpy(payload, b + 32, 8);
        }
        fmt_put_u64(fh + 9, fmt_hash64(payload, stored));
        if (fh[0] == FMT_STREAM_FRAME_TRAILER)
            return;
        chain = chain_step(chain, fh);
        pos += FMT_STREAM_FRAME_HEADER_LEN + stored;
    }
}

typedef struct seen {
    uint64_t records, tombstones, max_seq;
} seen;

static int read_stream(const uint8_t *buf, size_t len, seen *s, fmt_stream_trailer *t)
{
    fmt_stream_reader rd;
    int rc = fmt_stream_reader_init(&rd, buf, len);
    if (rc != FMT_OK)
        return rc;
    size_t pos = fmt_stream_header_len(rd.header.version);
    while (pos < len) {
        fmt_stream_frame f;
        if ((rc = fmt_stream_frame_header_decode(buf + pos, len - pos, &f)) != FMT_OK)
            return rc;
        FUZZ_CHECK(f.raw_len <= FMT_STREAM_RAW_MAX);
        pos += FMT_STREAM_FRAME_HEADER_LEN;
        if (len - pos < f.stored_len)
            return FMT_ESHORT;
        const uint8_t *payload = buf + pos;
        pos += f.stored_len;
        if (f.type == FMT_STREAM_FRAME_TRAILER) {
            if ((rc = fmt_stream_read_trailer(&rd, &f, payload, t)) != FMT_OK)
                return rc;
            FUZZ_CHECK(fmt_stream_reader_finish(&rd) == FMT_OK);
            return pos == len ? FMT_OK : FMT_ECORRUPT;
        }
        if ((rc = fmt_stream_frame_verify(&f, payload)) != FMT_OK)
            return rc;
        if (f.raw_len > FUZZ_RAW_CAP)
            return FMT_ELIMIT; /* the harness's own limit, see above */
        uint8_t *raw = malloc(f.raw_len);
        FUZZ_CHECK(raw != NULL);
        rc = fmt_stream_read_records(&rd, &f, payload, raw, f.raw_len);
        if (rc == FMT_OK) {
            size_t at = 0;
            fmt_record r;
            int more;
            while ((more = fmt_stream_record_next(raw, f.raw_len, &at, &r)) == 1) {
                uint8_t *out = malloc(r.total_len);
                FUZZ_CHECK(out != NULL);
                FUZZ_CHECK(fmt_record_encode(out, r.total_len, &r) == r.total_len);
                FUZZ_CHECK(memcmp(out, r.key - (r.total_len - r.klen - r.vlen), r.total_len) == 0);
                free(out);
                if (r.flags & FMT_REC_TOMBSTONE)
                    s->tombstones++;
                else
                    s->records++;
                if (r.seq > s->max_seq)
                    s->max_seq = r.seq;
            }
            FUZZ_CHECK(more == 0 && at == f.raw_len); /* the reader checked the frame */
        } else {
            FUZZ_CHECK(fmt_stream_reader_finish(&rd) == FMT_ECORRUPT);
        }
        free(raw);
        if (rc != FMT_OK)
            return rc;
    }
    rc = fmt_stream_reader_finish(&rd);
    FUZZ_CHECK(rc != FMT_OK); /* no trailer was read */
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    uint8_t *buf = fuzz_copy(data + 1, size - 1);
    size_t len = size - 1;
    if (mode & FUZZ_RESEAL)
        reseal(buf, len);

    seen s = {0, 0, 0};
    fmt_stream_trailer t;
    int rc = read_stream(buf, len, &s, &t);
    FUZZ_CHECK(rc <= 0 && rc >= FMT_ESPACE);
    if (rc == FMT_OK) {
        FUZZ_CHECK(t.records == s.records && t.tombstones == s.tombstones);
        FUZZ_CHECK(t.until >= s.max_seq);
    }
    free(buf);
    return 0;
}
