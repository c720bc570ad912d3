/*
 * stream.c — the backup stream (stream.h, FORMAT.md "Backup stream").
 *
 * A stream is a header, records frames and one trailer frame. Frames are
 * independent zstd frames of up to a few MiB of whole records, so that a
 * writer never holds more than one frame in memory and a reader can verify
 * and apply frame by frame; each record keeps its own checksum, so records
 * are checked end to end from the segment they came from to the one they
 * are loaded into.
 *
 * Integrity is layered: every frame payload has an XXH3-64; every frame
 * header (which carries that hash) is folded into a chain seeded with the
 * stream header; the trailer carries the chain and the counts. A reader
 * therefore detects a flipped byte (payload hash, or a bad header length),
 * a dropped, repeated or reordered frame (chain), a stream spliced from two
 * backups (the chain is seeded with the header) and truncation (no trailer).
 *
 * Both sides are pure state machines over caller memory: the engine and the
 * tools do the I/O and the allocation, after the frame header has bounded
 * it. The reader refuses to continue after any failure, so a caller cannot
 * accidentally skip a bad frame and still get FMT_OK at the end.
 */
#include "stream.h"
#include "compress.h"

#include <zstd.h>

enum { READER_FRAMES = 1, READER_DONE = 2, READER_FAILED = 3 };

#define STREAM_STORED_MAX ZSTD_COMPRESSBOUND(FMT_STREAM_RAW_MAX)

static uint64_t chain_step(uint64_t chain, const uint8_t frame_header[FMT_STREAM_FRAME_HEADER_LEN])
{
    uint8_t buf[8 + FMT_STREAM_FRAME_HEADER_LEN];
    fmt_put_u64(buf, chain);
    memcpy(buf + 8, frame_header, FMT_STREAM_FRAME_HEADER_LEN);
    return fmt_hash64(buf, sizeof buf);
}

static void frame_header_encode(uint8_t out[FMT_STREAM_FRAME_HEADER_LEN], const fmt_stream_frame *f)
{
    out[0] = f->type;
    fmt_put_u32(out + 1, f->stored_len);
    fmt_put_u32(out + 5, f->raw_len);
    fmt_put_u64(out + 9, f->checksum);
}

/* Counts of one frame's records, or FMT_ECORRUPT unless RAW is exactly a
 * sequence of whole valid records. */
typedef struct frame_counts {
    uint64_t records;
    uint64_t tombstones;
    uint64_t max_seq;
} frame_counts;

static int count_records(const uint8_t *raw, size_t len, frame_counts *out)
{
    frame_counts c = {0, 0, 0};
    size_t pos = 0;
    fmt_record r;
    int rc;
    while ((rc = fmt_stream_record_next(raw, len, &pos, &r)) == 1) {
        if (r.flags & FMT_REC_TOMBSTONE)
            c.tombstones++;
        else
            c.records++;
        if (r.seq > c.max_seq)
            c.max_seq = r.seq;
    }
    if (rc != 0)
        return FMT_ECORRUPT;
    *out = c;
    return FMT_OK;
}

/* ------------------------------------------------------------------ writer */

size_t fmt_stream_header_len(unsigned version)
{
    switch (version) {
    case 1:
        return FMT_STREAM_HEADER_LEN_V1;
    case 2:
        return FMT_STREAM_HEADER_LEN;
    default:
        return 0;
    }
}

size_t fmt_stream_header_encode(uint8_t out[FMT_STREAM_HEADER_MAX], const fmt_stream_header *h)
{
    fmt_put_u32(out + 0, FMT_STREAM_MAGIC);
    fmt_put_u16(out + 6, 0);
    if (h->version == 1) {
        fmt_put_u16(out + 4, 1);
        fmt_put_u64(out + 8, h->db_id);
        fmt_put_u64(out + 16, h->since);
        fmt_put_u64(out + 24, h->created_ms);
        fmt_put_u64(out + 32, fmt_hash64(out, 32));
        return FMT_STREAM_HEADER_LEN_V1;
    }
    fmt_put_u16(out + 4, FMT_STREAM_VERSION);
    memcpy(out + 8, h->id, FMT_STREAM_ID_LEN);
    fmt_put_u64(out + 24, h->since);
    fmt_put_u64(out + 32, h->until);
    fmt_put_u64(out + 40, h->created_ms);
    fmt_put_u64(out + 48, fmt_hash64(out, 48));
    return FMT_STREAM_HEADER_LEN;
}

int fmt_stream_header_decode(const uint8_t *buf, size_t avail, fmt_stream_header *out)
{
    if (avail < 8)
        return FMT_ESHORT;
    if (fmt_get_u32(buf) != FMT_STREAM_MAGIC)
        return FMT_ECORRUPT;
    uint16_t version = fmt_get_u16(buf + 4);
    if (version > FMT_STREAM_VERSION)
        return FMT_EVERSION;
    size_t len = fmt_stream_header_len(version);
    if (len == 0)
        return FMT_ECORRUPT; /* version 0 */
    if (avail < len)
        return FMT_ESHORT;
    if (fmt_get_u64(buf + len - 8) != fmt_hash64(buf, len - 8) || fmt_get_u16(buf + 6) != 0)
        return FMT_ECORRUPT;
    fmt_stream_header h;
    memset(&h, 0, sizeof h);
    h.version = version;
    if (version == 1) {
        h.db_id = fmt_get_u64(buf + 8);
        h.since = fmt_get_u64(buf + 16);
        h.created_ms = fmt_get_u64(buf + 24);
    } else {
        memcpy(h.id, buf + 8, FMT_STREAM_ID_LEN);
        h.since = fmt_get_u64(buf + 24);
        h.until = fmt_get_u64(buf + 32);
        h.created_ms = fmt_get_u64(buf + 40);
        if (h.until < h.since)
            return FMT_ECORRUPT;
    }
    *out = h;
    return FMT_OK;
}

size_t fmt_stream_writer_init(fmt_stream_writer *w, const fmt_stream_header *h,
                              uint8_t out[FMT_STREAM_HEADER_MAX])
{
    size_t len = fmt_stream_header_encode(out, h);
    memset(w, 0, sizeof *w);
    w->since = h->since;
    w->version = h->version == 1 ? 1 : FMT_STREAM_VERSION;
    w->until = h->until;
    w->chain = fmt_hash64(out, len);
    return len;
}

size_t fmt_stream_frame_bound(size_t raw_len)
{
    if (raw_len == 0 || raw_len > FMT_STREAM_RAW_MAX)
        return 0;
    return FMT_STREAM_FRAME_HEADER_LEN + ZSTD_compressBound(raw_len);
}

int fmt_stream_frame_encode(fmt_stream_writer *w, const uint8_t *raw, size_t raw_len, int level,
                            uint8_t *out, size_t cap, size_t *out_len)
{
    frame_counts c;
    if (raw_len == 0 || raw_len > FMT_STREAM_RAW_MAX)
        return FMT_ELIMIT;
    if (w->finished || count_records(raw, raw_len, &c) != FMT_OK)
        return FMT_ECORRUPT;
    if (cap < FMT_STREAM_FRAME_HEADER_LEN)
        return FMT_ESPACE;
    size_t stored = ZSTD_compress(out + FMT_STREAM_FRAME_HEADER_LEN,
                                  cap - FMT_STREAM_FRAME_HEADER_LEN, raw, raw_len, level);
    if (ZSTD_isError(stored))
        return FMT_ESPACE;

    fmt_stream_frame f = {
        .type = FMT_STREAM_FRAME_RECORDS,
        .stored_len = (uint32_t)stored,
        .raw_len = (uint32_t)raw_len,
        .checksum = fmt_hash64(out + FMT_STREAM_FRAME_HEADER_LEN, stored),
    };
    frame_header_encode(out, &f);
    w->chain = chain_step(w->chain, out);
    w->records += c.records;
    w->tombstones += c.tombstones;
    if (c.max_seq > w->max_seq)
        w->max_seq = c.max_seq;
    w->frames++;
    *out_len = FMT_STREAM_FRAME_HEADER_LEN + stored;
    return FMT_OK;
}

static void trailer_payload_encode(uint8_t out[FMT_STREAM_TRAILER_LEN], const fmt_stream_trailer *t)
{
    fmt_put_u64(out + 0, t->until);
    fmt_put_u64(out + 8, t->records);
    fmt_put_u64(out + 16, t->tombstones);
    fmt_put_u64(out + 24, t->frames);
    fmt_put_u64(out + 32, t->chain);
}

int fmt_stream_trailer_encode(fmt_stream_writer *w, uint64_t until,
                              uint8_t out[FMT_STREAM_TRAILER_FRAME_LEN])
{
    if (w->finished || until < w->max_seq || until < w->since)
        return FMT_ECORRUPT;
    if (w->version >= 2 && until != w->until)
        return FMT_ECORRUPT;
    fmt_stream_trailer t = {
        .until = until,
        .records = w->records,
        .tombstones = w->tombstones,
        .frames = w->frames,
        .chain = w->chain,
    };
    uint8_t *payload = out + FMT_STREAM_FRAME_HEADER_LEN;
    trailer_payload_encode(payload, &t);
    fmt_stream_frame f = {
        .type = FMT_STREAM_FRAME_TRAILER,
        .stored_len = FMT_STREAM_TRAILER_LEN,
        .raw_len = FMT_STREAM_TRAILER_LEN,
        .checksum = fmt_hash64(payload, FMT_STREAM_TRAILER_LEN),
    };
    frame_header_encode(out, &f);
    w->finished = true;
    return FMT_OK;
}

/* ------------------------------------------------------------------ reader */

int fmt_stream_reader_init(fmt_stream_reader *rd, const uint8_t *buf, size_t avail)
{
    memset(rd, 0, sizeof *rd);
    rd->state = READER_FAILED;
    int rc = fmt_stream_header_decode(buf, avail, &rd->header);
    if (rc != FMT_OK)
        return rc;
    rd->chain = fmt_hash64(buf, fmt_stream_header_len(rd->header.version));
    rd->state = READER_FRAMES;
    return FMT_OK;
}

int fmt_stream_frame_header_decode(const uint8_t *buf, size_t avail, fmt_stream_frame *out)
{
    if (avail < FMT_STREAM_FRAME_HEADER_LEN)
        return FMT_ESHORT;
    fmt_stream_frame f = {
        .type = buf[0],
        .stored_len = fmt_get_u32(buf + 1),
        .raw_len = fmt_get_u32(buf + 5),
        .checksum = fmt_get_u64(buf + 9),
    };
    switch (f.type) {
    case FMT_STREAM_FRAME_RECORDS:
        if (f.raw_len == 0 || f.stored_len == 0)
            return FMT_ECORRUPT;
        if (f.raw_len > FMT_STREAM_RAW_MAX || f.stored_len > STREAM_STORED_MAX)
            return FMT_ELIMIT;
        break;
    case FMT_STREAM_FRAME_TRAILER:
        if (f.stored_len != FMT_STREAM_TRAILER_LEN || f.raw_len != FMT_STREAM_TRAILER_LEN)
            return FMT_ECORRUPT;
        break;
    default:
        return FMT_ECORRUPT;
    }
    *out = f;
    return FMT_OK;
}

int fmt_stream_frame_verify(const fmt_stream_frame *f, const uint8_t *payload)
{
    if (fmt_hash64(payload, f->stored_len) != f->checksum)
        return FMT_ECORRUPT;
    if (f->type == FMT_STREAM_FRAME_RECORDS) {
        size_t declared;
        if (fmt_decompressed_size(payload, f->stored_len, f->raw_len, &declared) != FMT_OK ||
            declared != f->raw_len)
            return FMT_ECORRUPT;
    }
    return FMT_OK;
}

/* Rebuild the 17 header bytes of F for the chain (they are exactly the bytes
 * that were read: every field is kept and the encoding is fixed-width). */
static void reader_chain_frame(fmt_stream_reader *rd, const fmt_stream_frame *f)
{
    uint8_t header[FMT_STREAM_FRAME_HEADER_LEN];
    frame_header_encode(header, f);
    rd->chain = chain_step(rd->chain, header);
}

int fmt_stream_read_records(fmt_stream_reader *rd, const fmt_stream_frame *f,
                            const uint8_t *payload, uint8_t *raw, size_t cap)
{
    frame_counts c;
    size_t got;
    int rc = FMT_ECORRUPT;

    if (rd->state != READER_FRAMES || f->type != FMT_STREAM_FRAME_RECORDS)
        goto fail;
    if (cap < f->raw_len) {
        rc = FMT_ESPACE; /* the caller's mistake, not the stream's: no fail */
        return rc;
    }
    if (fmt_stream_frame_verify(f, payload) != FMT_OK)
        goto fail;
    if (fmt_decompress(raw, f->raw_len, payload, f->stored_len, &got) != FMT_OK ||
        got != f->raw_len)
        goto fail;
    if (count_records(raw, got, &c) != FMT_OK)
        goto fail;

    reader_chain_frame(rd, f);
    rd->records += c.records;
    rd->tombstones += c.tombstones;
    if (c.max_seq > rd->max_seq)
        rd->max_seq = c.max_seq;
    rd->frames++;
    return FMT_OK;

fail:
    rd->state = READER_FAILED;
    return rc;
}

int fmt_stream_record_next(const uint8_t *raw, size_t len, size_t *pos, fmt_record *out)
{
    if (*pos >= len)
        return 0;
    int rc = fmt_record_decode(raw + *pos, len - *pos, out);
    if (rc != FMT_OK)
        return rc == FMT_ESHORT ? FMT_ECORRUPT : rc; /* a frame holds whole records */
    *pos += out->total_len;
    return 1;
}

int fmt_stream_read_trailer(fmt_stream_reader *rd, const fmt_stream_frame *f,
                            const uint8_t *payload, fmt_stream_trailer *out)
{
    if (rd->state != READER_FRAMES || f->type != FMT_STREAM_FRAME_TRAILER ||
        f->stored_len != FMT_STREAM_TRAILER_LEN || f->raw_len != FMT_STREAM_TRAILER_LEN ||
        fmt_stream_frame_verify(f, payload) != FMT_OK)
        goto fail;
    fmt_stream_trailer t = {
        .until = fmt_get_u64(payload + 0),
        .records = fmt_get_u64(payload + 8),
        .tombstones = fmt_get_u64(payload + 16),
        .frames = fmt_get_u64(payload + 24),
        .chain = fmt_get_u64(payload + 32),
    };
    if (t.records != rd->records || t.tombstones != rd->tombstones || t.frames != rd->frames ||
        t.chain != rd->chain)
        goto fail;
    if (t.until < rd->max_seq || t.until < rd->header.since)
        goto fail;
    if (rd->header.version >= 2 && t.until != rd->header.until)
        goto fail;
    rd->state = READER_DONE;
    *out = t;
    return FMT_OK;

fail:
    rd->state = READER_FAILED;
    return FMT_ECORRUPT;
}

int fmt_stream_reader_finish(const fmt_stream_reader *rd)
{
    switch (rd->state) {
    case READER_DONE:
        return FMT_OK;
    case READER_FRAMES:
        return FMT_ESHORT;
    default:
        return FMT_ECORRUPT;
    }
}
