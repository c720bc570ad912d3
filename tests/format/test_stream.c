/* The backup stream (stream.h): round trips and every kind of damage. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#include "catalog.h"
#include "stream.h"

#define FRAMES 3
#define PER_FRAME 40
#define MAX_BYTES (64 * 1024)

typedef struct built {
    uint8_t *buf;
    size_t len;
    size_t frame_at[FRAMES + 2]; /* offset of each frame; [n] = the trailer */
    int nframes;
} built;

/* Records frame F: PER_FRAME records with seq 100 + F*PER_FRAME + i; every
 * 7th is a tombstone; frame 0 starts with a catalogue record (keyspace 0). */
static size_t frame_records(int f, uint8_t *raw, size_t cap, uint64_t *tombstones)
{
    size_t pos = 0;
    for (int i = 0; i < PER_FRAME; i++) {
        char key[32], val[64];
        uint64_t seq = 100u + (uint64_t)(f * PER_FRAME + i);
        fmt_record r = {.seq = seq, .ks = (uint32_t)(1 + i % 3)};
        uint8_t cat[FMT_CATALOG_VALUE_LEN];
        if (f == 0 && i == 0) {
            fmt_catalog_entry e = {.ks_id = 3, .default_ttl_ms = 0};
            fmt_catalog_encode(cat, &e);
            r.ks = FMT_KS_CATALOG;
            r.key = (const uint8_t *)"users";
            r.klen = 5;
            r.val = cat;
            r.vlen = sizeof cat;
        } else {
            r.klen = (uint32_t)snprintf(key, sizeof key, "key-%llu", (unsigned long long)seq);
            r.key = (const uint8_t *)key;
            if (i % 7 == 3) {
                r.flags = FMT_REC_TOMBSTONE;
                ++*tombstones;
            } else {
                r.vlen = (uint32_t)snprintf(val, sizeof val, "value of %llu, padded padded",
                                            (unsigned long long)seq);
                r.val = (const uint8_t *)val;
            }
        }
        size_t n = fmt_record_encode(raw + pos, cap - pos, &r);
        cr_assert_gt(n, 0);
        pos += n;
    }
    return pos;
}

/* VERSION 2 (current): DB_ID fills the first 8 bytes of the identity and
 * the header says until 1000; version 1: the old 40-byte header. */
static built build_stream_v(int nframes, uint64_t db_id, unsigned version)
{
    built b = {.buf = malloc(MAX_BYTES), .nframes = nframes};
    uint8_t raw[16384];
    uint64_t tombstones = 0;
    fmt_stream_writer w;
    fmt_stream_header h = {.version = (uint16_t)version,
                           .db_id = version == 1 ? db_id : 0,
                           .since = 99,
                           .until = version == 1 ? 0 : 1000,
                           .created_ms = 1767225600000ull};
    if (version != 1)
        fmt_put_u64(h.id, db_id);
    b.len = fmt_stream_writer_init(&w, &h, b.buf);
    cr_assert_eq(b.len, version == 1 ? FMT_STREAM_HEADER_LEN_V1 : FMT_STREAM_HEADER_LEN);
    for (int f = 0; f < nframes; f++) {
        size_t raw_len = frame_records(f, raw, sizeof raw, &tombstones);
        size_t n = 0;
        cr_assert_leq(fmt_stream_frame_bound(raw_len), MAX_BYTES - b.len);
        b.frame_at[f] = b.len;
        cr_assert_eq(
            fmt_stream_frame_encode(&w, raw, raw_len, 3, b.buf + b.len, MAX_BYTES - b.len, &n),
            FMT_OK);
        b.len += n;
    }
    cr_assert_eq(w.tombstones, tombstones);
    b.frame_at[nframes] = b.len;
    cr_assert_eq(fmt_stream_trailer_encode(&w, 1000, b.buf + b.len), FMT_OK);
    b.len += FMT_STREAM_TRAILER_FRAME_LEN;
    return b;
}

static built build_stream(int nframes, uint64_t db_id)
{
    return build_stream_v(nframes, db_id, FMT_STREAM_VERSION);
}

typedef struct read_result {
    fmt_stream_header header;
    fmt_stream_trailer trailer;
    uint64_t records, tombstones, catalogue, seq_sum;
} read_result;

/* The whole reader, as kvload would run it over a buffer. */
static int read_stream(const uint8_t *buf, size_t len, read_result *res)
{
    memset(res, 0, sizeof *res);
    fmt_stream_reader rd;
    int rc = fmt_stream_reader_init(&rd, buf, len);
    if (rc != FMT_OK)
        return rc;
    res->header = rd.header;
    size_t pos = fmt_stream_header_len(rd.header.version);
    while (pos < len) {
        fmt_stream_frame f;
        if ((rc = fmt_stream_frame_header_decode(buf + pos, len - pos, &f)) != FMT_OK)
            return rc;
        pos += FMT_STREAM_FRAME_HEADER_LEN;
        if (len - pos < f.stored_len)
            return FMT_ESHORT;
        const uint8_t *payload = buf + pos;
        pos += f.stored_len;
        if (f.type == FMT_STREAM_FRAME_TRAILER) {
            if ((rc = fmt_stream_read_trailer(&rd, &f, payload, &res->trailer)) != FMT_OK)
                return rc;
            return pos == len ? fmt_stream_reader_finish(&rd) : FMT_ECORRUPT;
        }
        if ((rc = fmt_stream_frame_verify(&f, payload)) != FMT_OK)
            return rc;
        uint8_t *raw = malloc(f.raw_len);
        rc = fmt_stream_read_records(&rd, &f, payload, raw, f.raw_len);
        size_t at = 0;
        fmt_record r;
        while (rc == FMT_OK && fmt_stream_record_next(raw, f.raw_len, &at, &r) == 1) {
            if (r.flags & FMT_REC_TOMBSTONE)
                res->tombstones++;
            else
                res->records++;
            if (r.ks == FMT_KS_CATALOG)
                res->catalogue++;
            res->seq_sum += r.seq;
        }
        free(raw);
        if (rc != FMT_OK)
            return rc;
    }
    return fmt_stream_reader_finish(&rd);
}

Test(stream, multi_frame_round_trip)
{
    built b = build_stream(FRAMES, 0xABCDEFull);
    read_result res;
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_OK);
    cr_assert_eq(res.header.version, 2);
    cr_assert_eq(fmt_get_u64(res.header.id), 0xABCDEFull);
    cr_assert_eq(res.header.until, 1000);
    cr_assert_eq(res.header.since, 99);
    cr_assert_eq(res.header.created_ms, 1767225600000ull);
    cr_assert_eq(res.trailer.until, 1000);
    cr_assert_eq(res.trailer.frames, FRAMES);
    /* i % 7 == 3 for i < 40: 3, 10, 17, 24, 31, 38 -> 6 per frame */
    cr_assert_eq(res.trailer.tombstones, 6 * FRAMES);
    cr_assert_eq(res.trailer.records, (PER_FRAME - 6) * FRAMES);
    cr_assert_eq(res.tombstones, res.trailer.tombstones);
    cr_assert_eq(res.records, res.trailer.records);
    cr_assert_eq(res.catalogue, 1);
    uint64_t n = FRAMES * PER_FRAME;
    cr_assert_eq(res.seq_sum, 100 * n + n * (n - 1) / 2);
    cr_assert_eq(memcmp(b.buf, "RCBK", 4), 0);
    free(b.buf);
}

Test(stream, version_1_streams_still_read)
{
    built b = build_stream_v(FRAMES, 0xABCDEFull, 1);
    cr_assert_eq(fmt_get_u16(b.buf + 4), 1);
    read_result res;
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_OK);
    cr_assert_eq(res.header.version, 1);
    cr_assert_eq(res.header.db_id, 0xABCDEFull);
    cr_assert_eq(res.header.until, 0, "a v1 header has no until");
    cr_assert_eq(res.trailer.until, 1000);
    cr_assert_eq(res.trailer.frames, FRAMES);
    free(b.buf);
}

Test(stream, v2_trailer_must_repeat_the_headers_until)
{
    built b = build_stream(1, 7);
    /* rewrite the header's until (and its checksum): the trailer now disagrees */
    fmt_put_u64(b.buf + 32, 999);
    fmt_put_u64(b.buf + 48, fmt_hash64(b.buf, 48));
    read_result res;
    cr_assert_neq(read_stream(b.buf, b.len, &res), FMT_OK);
    /* and a writer cannot produce such a stream */
    fmt_stream_writer w;
    uint8_t hdr[FMT_STREAM_HEADER_MAX], trailer[FMT_STREAM_TRAILER_FRAME_LEN];
    fmt_stream_header h = {.since = 5, .until = 9};
    fmt_stream_writer_init(&w, &h, hdr);
    cr_assert_eq(fmt_stream_trailer_encode(&w, 8, trailer), FMT_ECORRUPT);
    cr_assert_eq(fmt_stream_trailer_encode(&w, 9, trailer), FMT_OK);
    /* a v2 header whose until is below its since is corrupt */
    fmt_stream_header bad = {.since = 10, .until = 9}, d;
    fmt_stream_header_encode(hdr, &bad);
    cr_assert_eq(fmt_stream_header_decode(hdr, sizeof hdr, &d), FMT_ECORRUPT);
    free(b.buf);
}

Test(stream, empty_stream_is_header_and_trailer)
{
    built b = build_stream(0, 1);
    cr_assert_eq(b.len, FMT_STREAM_HEADER_LEN + FMT_STREAM_TRAILER_FRAME_LEN);
    read_result res;
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_OK);
    cr_assert_eq(res.trailer.frames, 0);
    cr_assert_eq(res.trailer.records, 0);
    free(b.buf);
}

Test(stream, every_truncation_is_detected)
{
    built b = build_stream(FRAMES, 7);
    read_result res;
    for (size_t cut = 0; cut < b.len; cut++)
        cr_assert_eq(read_stream(b.buf, cut, &res), FMT_ESHORT, "cut at %zu of %zu", cut, b.len);
    /* frame boundaries are among the cuts above; say so explicitly */
    for (int f = 0; f <= FRAMES; f++)
        cr_assert_eq(read_stream(b.buf, b.frame_at[f], &res), FMT_ESHORT);
    free(b.buf);
}

static built without_frame(const built *b, int drop)
{
    built c = *b;
    c.buf = malloc(MAX_BYTES);
    size_t from = b->frame_at[drop], to = b->frame_at[drop + 1];
    memcpy(c.buf, b->buf, from);
    memcpy(c.buf + from, b->buf + to, b->len - to);
    c.len = b->len - (to - from);
    return c;
}

Test(stream, dropped_frame_is_detected)
{
    built b = build_stream(FRAMES, 7);
    read_result res;
    for (int drop = 0; drop < FRAMES; drop++) {
        built c = without_frame(&b, drop);
        cr_assert_eq(read_stream(c.buf, c.len, &res), FMT_ECORRUPT, "dropped frame %d", drop);
        free(c.buf);
    }
    free(b.buf);
}

Test(stream, reordered_and_repeated_frames_are_detected)
{
    built b = build_stream(FRAMES, 7);
    read_result res;
    uint8_t *c = malloc(MAX_BYTES);
    size_t f0 = b.frame_at[0], f1 = b.frame_at[1], f2 = b.frame_at[2];
    /* swap frames 0 and 1 */
    size_t pos = 0;
    memcpy(c, b.buf, f0), pos = f0;
    memcpy(c + pos, b.buf + f1, f2 - f1), pos += f2 - f1;
    memcpy(c + pos, b.buf + f0, f1 - f0), pos += f1 - f0;
    memcpy(c + pos, b.buf + f2, b.len - f2), pos += b.len - f2;
    cr_assert_eq(pos, b.len);
    cr_assert_eq(read_stream(c, pos, &res), FMT_ECORRUPT);
    /* frame 0 twice, frame 1 dropped: same counts, same length */
    memcpy(c + f1, b.buf + f0, f1 - f0);
    if (f1 - f0 == f2 - f1)
        cr_assert_eq(read_stream(c, b.len, &res), FMT_ECORRUPT);
    free(c);
    free(b.buf);
}

Test(stream, every_flipped_byte_is_detected)
{
    built b = build_stream(FRAMES, 7);
    read_result res;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b.buf[i] ^= (uint8_t)(1u << bit);
            cr_assert_neq(read_stream(b.buf, b.len, &res), FMT_OK, "byte %zu bit %d", i, bit);
            b.buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_OK);
    free(b.buf);
}

Test(stream, bytes_after_trailer_are_rejected)
{
    built b = build_stream(1, 7);
    read_result res;
    b.buf[b.len] = 0;
    cr_assert_eq(read_stream(b.buf, b.len + 1, &res), FMT_ECORRUPT);
    free(b.buf);
}

Test(stream, header_from_another_stream_is_detected)
{
    built a = build_stream(FRAMES, 1), b = build_stream(FRAMES, 2);
    read_result res;
    memcpy(b.buf, a.buf, FMT_STREAM_HEADER_LEN);
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_ECORRUPT);
    free(a.buf);
    free(b.buf);
}

Test(stream, trailer_with_wrong_counts_is_rejected)
{
    built b = build_stream(FRAMES, 7);
    read_result res;
    uint8_t *payload = b.buf + b.frame_at[FRAMES] + FMT_STREAM_FRAME_HEADER_LEN;
    for (int field = 0; field < 5; field++) {
        uint64_t old = fmt_get_u64(payload + 8 * field);
        fmt_put_u64(payload + 8 * field, field == 0 ? 100 : old + 1); /* until 100 < seqs */
        /* reseal the trailer frame so only the content check can fail */
        fmt_put_u64(b.buf + b.frame_at[FRAMES] + 9, fmt_hash64(payload, FMT_STREAM_TRAILER_LEN));
        cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_ECORRUPT, "field %d", field);
        fmt_put_u64(payload + 8 * field, old);
        fmt_put_u64(b.buf + b.frame_at[FRAMES] + 9, fmt_hash64(payload, FMT_STREAM_TRAILER_LEN));
    }
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_OK);
    free(b.buf);
}

Test(stream, header_rejections)
{
    built b = build_stream(0, 7);
    fmt_stream_reader rd;
    cr_assert_eq(fmt_stream_reader_init(&rd, b.buf, FMT_STREAM_HEADER_LEN - 1), FMT_ESHORT);
    fmt_put_u16(b.buf + 4, 3);
    fmt_put_u64(b.buf + 48, fmt_hash64(b.buf, 48));
    cr_assert_eq(fmt_stream_reader_init(&rd, b.buf, b.len), FMT_EVERSION);
    fmt_put_u16(b.buf + 4, 0);
    cr_assert_eq(fmt_stream_reader_init(&rd, b.buf, b.len), FMT_ECORRUPT, "version 0");
    fmt_put_u16(b.buf + 4, 2);
    fmt_put_u16(b.buf + 6, 4);
    fmt_put_u64(b.buf + 48, fmt_hash64(b.buf, 48));
    cr_assert_eq(fmt_stream_reader_init(&rd, b.buf, b.len), FMT_ECORRUPT);
    fmt_put_u16(b.buf + 6, 0);
    b.buf[0] = 'X';
    fmt_put_u64(b.buf + 48, fmt_hash64(b.buf, 48));
    cr_assert_eq(fmt_stream_reader_init(&rd, b.buf, b.len), FMT_ECORRUPT);
    free(b.buf);
}

Test(stream, frame_header_limits_checked_before_allocation)
{
    uint8_t h[FMT_STREAM_FRAME_HEADER_LEN] = {0};
    fmt_stream_frame f;
    h[0] = FMT_STREAM_FRAME_RECORDS;
    fmt_put_u32(h + 1, 100);
    fmt_put_u32(h + 5, FMT_STREAM_RAW_MAX);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_OK);
    cr_assert_eq(f.raw_len, FMT_STREAM_RAW_MAX);
    fmt_put_u32(h + 5, FMT_STREAM_RAW_MAX + 1);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_ELIMIT);
    fmt_put_u32(h + 5, 100);
    fmt_put_u32(h + 1, UINT32_MAX);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_ELIMIT);
    fmt_put_u32(h + 1, 0);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_ECORRUPT);
    fmt_put_u32(h + 1, 10);
    fmt_put_u32(h + 5, 0);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_ECORRUPT);
    h[0] = 3;
    fmt_put_u32(h + 5, 10);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_ECORRUPT);
    h[0] = FMT_STREAM_FRAME_TRAILER;
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_ECORRUPT);
    fmt_put_u32(h + 1, FMT_STREAM_TRAILER_LEN);
    fmt_put_u32(h + 5, FMT_STREAM_TRAILER_LEN);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h, &f), FMT_OK);
    cr_assert_eq(fmt_stream_frame_header_decode(h, sizeof h - 1, &f), FMT_ESHORT);
}

Test(stream, frame_holding_a_partial_record_is_rejected)
{
    uint8_t raw[16384], stream[32768];
    uint64_t tomb = 0;
    size_t raw_len = frame_records(1, raw, sizeof raw, &tomb) - 3;
    fmt_stream_writer w;
    fmt_stream_header h = {.db_id = 1};
    fmt_stream_writer_init(&w, &h, stream);
    size_t n, at = FMT_STREAM_HEADER_LEN;
    cr_assert_eq(fmt_stream_frame_encode(&w, raw, raw_len, 1, stream + at, sizeof stream - at, &n),
                 FMT_ECORRUPT);
    /* forge the frame by hand, as a buggy writer would */
    uint8_t *fh = stream + FMT_STREAM_HEADER_LEN;
    size_t stored = ZSTD_compress(fh + FMT_STREAM_FRAME_HEADER_LEN, 16000, raw, raw_len, 1);
    fh[0] = FMT_STREAM_FRAME_RECORDS;
    fmt_put_u32(fh + 1, (uint32_t)stored);
    fmt_put_u32(fh + 5, (uint32_t)raw_len);
    fmt_put_u64(fh + 9, fmt_hash64(fh + FMT_STREAM_FRAME_HEADER_LEN, stored));
    fmt_stream_reader rd;
    fmt_stream_frame f;
    uint8_t out[16384];
    cr_assert_eq(fmt_stream_reader_init(&rd, stream, sizeof stream), FMT_OK);
    cr_assert_eq(fmt_stream_frame_header_decode(fh, 17, &f), FMT_OK);
    cr_assert_eq(fmt_stream_frame_verify(&f, fh + 17), FMT_OK);
    cr_assert_eq(fmt_stream_read_records(&rd, &f, fh + 17, out, sizeof out), FMT_ECORRUPT);
    /* a failed reader stays failed */
    cr_assert_eq(fmt_stream_reader_finish(&rd), FMT_ECORRUPT);
    f.raw_len = (uint32_t)raw_len;
    cr_assert_eq(fmt_stream_read_records(&rd, &f, fh + 17, out, sizeof out), FMT_ECORRUPT);
}

Test(stream, raw_length_mismatch_is_rejected)
{
    built b = build_stream(1, 7);
    uint8_t *fh = b.buf + b.frame_at[0];
    fmt_put_u32(fh + 5, fmt_get_u32(fh + 5) - 1); /* hash covers only the payload */
    fmt_stream_frame f;
    cr_assert_eq(fmt_stream_frame_header_decode(fh, 17, &f), FMT_OK);
    cr_assert_eq(fmt_stream_frame_verify(&f, fh + 17), FMT_ECORRUPT);
    read_result res;
    cr_assert_eq(read_stream(b.buf, b.len, &res), FMT_ECORRUPT);
    free(b.buf);
}

Test(stream, writer_refusals)
{
    uint8_t raw[16384], out[32768], hdr[FMT_STREAM_HEADER_LEN], trailer[64];
    uint64_t tomb = 0;
    size_t raw_len = frame_records(1, raw, sizeof raw, &tomb), n;
    fmt_stream_writer w;
    /* a v1 writer: the header names no until, so the trailer's is free */
    fmt_stream_header h = {.version = 1, .db_id = 1, .since = 10};
    fmt_stream_writer_init(&w, &h, hdr);
    cr_assert_eq(fmt_stream_frame_encode(&w, raw, 0, 1, out, sizeof out, &n), FMT_ELIMIT);
    cr_assert_eq(
        fmt_stream_frame_encode(&w, raw, FMT_STREAM_RAW_MAX + 1ull, 1, out, sizeof out, &n),
        FMT_ELIMIT);
    cr_assert_eq(fmt_stream_frame_bound(0), 0);
    cr_assert_eq(fmt_stream_frame_bound(FMT_STREAM_RAW_MAX + 1ull), 0);
    cr_assert_eq(fmt_stream_frame_encode(&w, raw, raw_len, 1, out, 10, &n), FMT_ESPACE);
    uint8_t junk[64];
    memset(junk, 0x33, sizeof junk);
    cr_assert_eq(fmt_stream_frame_encode(&w, junk, sizeof junk, 1, out, sizeof out, &n),
                 FMT_ECORRUPT);
    cr_assert_eq(w.frames, 0);
    cr_assert_eq(fmt_stream_frame_encode(&w, raw, raw_len, 1, out, sizeof out, &n), FMT_OK);
    cr_assert_eq(w.max_seq, 100 + 2 * PER_FRAME - 1);
    cr_assert_eq(fmt_stream_trailer_encode(&w, w.max_seq - 1, trailer), FMT_ECORRUPT);
    cr_assert_eq(fmt_stream_trailer_encode(&w, w.max_seq, trailer), FMT_OK);
    cr_assert_eq(fmt_stream_trailer_encode(&w, w.max_seq, trailer), FMT_ECORRUPT);
    cr_assert_eq(fmt_stream_frame_encode(&w, raw, raw_len, 1, out, sizeof out, &n), FMT_ECORRUPT);

    fmt_stream_writer_init(&w, &h, hdr); /* until below since */
    cr_assert_eq(fmt_stream_trailer_encode(&w, 9, trailer), FMT_ECORRUPT);
    cr_assert_eq(fmt_stream_trailer_encode(&w, 10, trailer), FMT_OK);
}

Test(stream, reader_needs_room_for_raw_bytes)
{
    built b = build_stream(1, 7);
    fmt_stream_reader rd;
    fmt_stream_frame f;
    cr_assert_eq(fmt_stream_reader_init(&rd, b.buf, b.len), FMT_OK);
    uint8_t *fh = b.buf + b.frame_at[0];
    cr_assert_eq(fmt_stream_frame_header_decode(fh, 17, &f), FMT_OK);
    uint8_t *raw = malloc(f.raw_len);
    cr_assert_eq(fmt_stream_read_records(&rd, &f, fh + 17, raw, f.raw_len - 1), FMT_ESPACE);
    cr_assert_eq(fmt_stream_read_records(&rd, &f, fh + 17, raw, f.raw_len), FMT_OK);
    cr_assert_eq(fmt_stream_reader_finish(&rd), FMT_ESHORT);
    free(raw);
    free(b.buf);
}

/* The layout of FORMAT.md section 8, recomputed independently of stream.c. */
Test(stream, layout_matches_format_md)
{
    built b = build_stream(2, 0x0102030405060708ull);
    const uint8_t *p = b.buf;
    cr_assert_eq(memcmp(p, "RCBK", 4), 0);
    cr_assert_eq(fmt_get_u16(p + 4), 2);
    cr_assert_eq(fmt_get_u16(p + 6), 0);
    cr_assert_eq(fmt_get_u64(p + 8), 0x0102030405060708ull); /* identity, 16 bytes */
    cr_assert_eq(fmt_get_u64(p + 16), 0);
    cr_assert_eq(fmt_get_u64(p + 24), 99);   /* since */
    cr_assert_eq(fmt_get_u64(p + 32), 1000); /* until */
    cr_assert_eq(fmt_get_u64(p + 40), 1767225600000ull);
    cr_assert_eq(fmt_get_u64(p + 48), fmt_hash64(p, 48));
    cr_assert_eq(b.frame_at[0], 56);

    uint64_t chain = fmt_hash64(p, 56);
    for (int f = 0; f < 2; f++) {
        const uint8_t *fh = p + b.frame_at[f];
        cr_assert_eq(fh[0], 1);
        uint32_t stored = fmt_get_u32(fh + 1);
        cr_assert_eq(b.frame_at[f] + 17 + stored, b.frame_at[f + 1]);
        cr_assert_eq(fmt_get_u64(fh + 9), fmt_hash64(fh + 17, stored));
        cr_assert_eq(fmt_get_u32(fh + 17), 0xFD2FB528u); /* a zstd frame */
        uint8_t link[25];
        fmt_put_u64(link, chain);
        memcpy(link + 8, fh, 17);
        chain = fmt_hash64(link, sizeof link);
    }
    const uint8_t *th = p + b.frame_at[2];
    cr_assert_eq(th[0], 2);
    cr_assert_eq(fmt_get_u32(th + 1), 40);
    cr_assert_eq(fmt_get_u32(th + 5), 40);
    cr_assert_eq(fmt_get_u64(th + 9), fmt_hash64(th + 17, 40));
    cr_assert_eq(fmt_get_u64(th + 17), 1000);                /* until */
    cr_assert_eq(fmt_get_u64(th + 25), 2 * (PER_FRAME - 6)); /* live records */
    cr_assert_eq(fmt_get_u64(th + 33), 2 * 6);               /* tombstones */
    cr_assert_eq(fmt_get_u64(th + 41), 2);                   /* frames */
    cr_assert_eq(fmt_get_u64(th + 49), chain);               /* chain */
    cr_assert_eq(b.frame_at[2] + 57, b.len);
    free(b.buf);
}

Test(stream, header_encode_decode_round_trip)
{
    for (unsigned version = 1; version <= 2; version++) {
        uint8_t buf[FMT_STREAM_HEADER_MAX];
        fmt_stream_header h = {.version = (uint16_t)version,
                               .db_id = version == 1 ? 11 : 0,
                               .since = 22,
                               .until = version == 1 ? 0 : 44,
                               .created_ms = 33},
                          d;
        memset(h.id, version == 1 ? 0 : 0xA5, sizeof h.id);
        size_t len = fmt_stream_header_encode(buf, &h);
        cr_assert_eq(len, fmt_stream_header_len(version));
        cr_assert_eq(fmt_stream_header_decode(buf, len - 1, &d), FMT_ESHORT);
        cr_assert_eq(fmt_stream_header_decode(buf, len, &d), FMT_OK);
        cr_assert_eq(d.version, version);
        cr_assert_eq(d.db_id, version == 1 ? 11 : 0);
        cr_assert_eq(memcmp(d.id, h.id, sizeof h.id), 0);
        cr_assert_eq(d.since, 22);
        cr_assert_eq(d.until, h.until);
        cr_assert_eq(d.created_ms, 33);
        for (size_t i = 0; i < len; i++) {
            buf[i] ^= 0x20;
            cr_assert_neq(fmt_stream_header_decode(buf, len, &d), FMT_OK, "v%u byte %zu", version,
                          i);
            buf[i] ^= 0x20;
        }
    }
}
