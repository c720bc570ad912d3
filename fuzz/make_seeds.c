/*
 * make_seeds.c — writes the seed corpora of the fuzz targets:
 *   make_seeds DIR   creates DIR/<target>/<seed> for every fuzz_* target here.
 * Seeds are valid (or deliberately damaged) images built with the format
 * encoders, each prefixed with the harness's control byte (fuzz_util.h), in
 * both the plain and the reseal mode. Rerun it and commit the output when a
 * layout changes (FORMAT.md, "Versioning").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "catalog.h"
#include "compress.h"
#include "hint.h"
#include "meta.h"
#include "record.h"
#include "segment.h"
#include "stream.h"

static const char *root;
static int failures;

static void put_seed(const char *target, const char *name, uint8_t mode, const uint8_t *buf,
                     size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        goto fail;
    snprintf(path, sizeof path, "%s/%s/%s-%u", root, target, name, mode);
    FILE *f = fopen(path, "wb");
    if (!f)
        goto fail;
    int ok = fputc(mode, f) != EOF && fwrite(buf, 1, len, f) == len;
    if (fclose(f) != 0 || !ok)
        goto fail;
    return;
fail:
    perror(path);
    failures++;
}

/* Both harness modes of one seed. */
static void seed2(const char *target, const char *name, const uint8_t *buf, size_t len)
{
    put_seed(target, name, 0, buf, len);
    put_seed(target, name, 1, buf, len);
}

static size_t record(uint8_t *out, size_t cap, uint8_t flags, uint64_t seq, uint32_t ks,
                     uint64_t expires, const char *key, const void *val, uint32_t vlen)
{
    fmt_record r = {.flags = flags,
                    .seq = seq,
                    .ks = ks,
                    .expires_at_ms = expires,
                    .key = (const uint8_t *)key,
                    .klen = (uint32_t)strlen(key),
                    .val = val,
                    .vlen = vlen};
    size_t n = fmt_record_encode(out, cap, &r);
    if (n == 0) {
        fprintf(stderr, "make_seeds: record %s does not encode\n", key);
        exit(1);
    }
    return n;
}

/* A little segment body: a batch, a catalogue entry, TTL, tombstone, a
 * compressed value. Returns its length. */
static size_t segment_body(uint8_t *out, size_t cap)
{
    static const char text[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    uint8_t zv[256], cat[FMT_CATALOG_VALUE_LEN];
    size_t zn = fmt_compress(zv, sizeof zv, text, sizeof text - 1, 3);
    fmt_catalog_entry e = {.ks_id = 2, .default_ttl_ms = 60000};
    fmt_catalog_encode(cat, &e);
    size_t pos = 0;
    pos += record(out + pos, cap - pos, 0, 1, FMT_KS_CATALOG, 0, "users", cat, sizeof cat);
    pos += record(out + pos, cap - pos, 0, 2, 1, 0, "hello", "world", 5);
    pos += record(out + pos, cap - pos, FMT_REC_BATCH, 3, 2, 0, "a", "1", 1);
    pos += record(out + pos, cap - pos, FMT_REC_BATCH_END | (1u << FMT_REC_TYPE_SHIFT), 4, 2, 0,
                  "b", "\x02\0\0\0\0\0\0\0", 8);
    pos += record(out + pos, cap - pos, 0, 300, 1, 1767225600000ull, "ttl", "x", 1);
    pos += record(out + pos, cap - pos, FMT_REC_TOMBSTONE, 70000, 7, 0, "hello", NULL, 0);
    pos += record(out + pos, cap - pos, FMT_REC_COMPRESSED, 70001, 1, 0, "big", zv, (uint32_t)zn);
    return pos;
}

static void seeds_record(void)
{
    uint8_t buf[4096];
    size_t n = segment_body(buf, sizeof buf);
    seed2("fuzz_record", "segment-body", buf, n);
    size_t first = record(buf, sizeof buf, 0, 1, 1, 0, "k", "v", 1);
    seed2("fuzz_record", "one", buf, first);
    seed2("fuzz_record", "truncated", buf, first - 1);

    uint8_t key[FMT_KEY_MAX + 1];
    memset(key, 'K', FMT_KEY_MAX);
    key[FMT_KEY_MAX] = 0;
    n = record(buf, sizeof buf, 0, UINT64_MAX, FMT_KS_MAX, UINT64_MAX, (const char *)key, "", 0);
    seed2("fuzz_record", "max-key", buf, n);

    /* corruption between two good records, for resync */
    n = record(buf, sizeof buf, 0, 5, 1, 0, "first", "11111111", 8);
    size_t mid = n;
    n += record(buf + n, sizeof buf - n, 0, 6, 1, 0, "second", "22222222", 8);
    buf[mid + 7] ^= 0xFF;
    n += record(buf + n, sizeof buf - n, 0, 7, 1, 0, "third", "33333333", 8);
    memset(buf + n, 0, 32); /* a preallocated zero tail */
    seed2("fuzz_record", "resync", buf, n + 32);
}

static void seeds_hint(void)
{
    uint8_t buf[4096];
    fmt_hint_header h = {.segment_id = 1, .covered = 4096, .count = 0, .version = 1};
    fmt_hint_header_encode(buf, &h);
    fmt_put_u64(buf + FMT_HINT_HEADER_LEN, fmt_hash64(buf, FMT_HINT_HEADER_LEN));
    seed2("fuzz_hint", "empty", buf, FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN);

    static const fmt_hint_entry entries[] = {
        {.seq = 1,
         .ks = 0,
         .key = (const uint8_t *)"users",
         .klen = 5,
         .offset = 40,
         .total_len = 30},
        {.seq = 2,
         .ks = 1,
         .key = (const uint8_t *)"hello",
         .klen = 5,
         .offset = 70,
         .total_len = 20},
        {.flags = FMT_REC_TOMBSTONE,
         .seq = 70000,
         .ks = 7,
         .key = (const uint8_t *)"gone",
         .klen = 4,
         .offset = 90,
         .total_len = 12},
        {.flags = FMT_REC_COMPRESSED | (3u << FMT_REC_TYPE_SHIFT),
         .seq = 1ull << 40,
         .ks = 1,
         .expires_at_ms = 1767225600000ull,
         .key = (const uint8_t *)"doc",
         .klen = 3,
         .offset = 102,
         .total_len = 300},
    };
    h.count = sizeof entries / sizeof entries[0];
    h.covered = 402;
    fmt_hint_header_encode(buf, &h);
    size_t pos = FMT_HINT_HEADER_LEN;
    for (size_t i = 0; i < h.count; i++)
        pos += fmt_hint_entry_encode(buf + pos, sizeof buf - pos, &entries[i]);
    fmt_put_u64(buf + pos, fmt_hash64(buf, pos));
    seed2("fuzz_hint", "four", buf, pos + FMT_HINT_TRAILER_LEN);

    /* version 2: empty, and the four entries (keyless) in blocks of 2 and 4 */
    fmt_hint_header h2 = {.segment_id = 1, .covered = 4096, .version = 2, .block = 4096};
    fmt_hint_header_encode(buf, &h2);
    fmt_put_u64(buf + FMT_HINT_HEADER_LEN, fmt_hash64(buf, FMT_HINT_HEADER_LEN));
    seed2("fuzz_hint", "empty2", buf, FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN);
    for (uint32_t block = 2; block <= 4; block += 2) {
        h2.count = sizeof entries / sizeof entries[0];
        h2.covered = 402;
        h2.block = block;
        fmt_hint_header_encode(buf, &h2);
        uint64_t index[4];
        size_t nb = 0;
        fmt_hint2_ctx c = {0, 0};
        pos = FMT_HINT_HEADER_LEN;
        for (size_t i = 0; i < h2.count; i++) {
            if (i % block == 0) {
                index[nb++] = pos;
                c = (fmt_hint2_ctx){0, 0};
            }
            pos += fmt_hint2_entry_encode(buf + pos, sizeof buf - pos, &entries[i], &c);
        }
        for (size_t b = 0; b < nb; b++, pos += 8)
            fmt_put_u64(buf + pos, index[b]);
        fmt_put_u64(buf + pos, fmt_hash64(buf, pos));
        seed2("fuzz_hint", block == 2 ? "four2-blocks2" : "four2", buf, pos + FMT_HINT_TRAILER_LEN);
    }
}

/* A stream of VERSION (2: the identity and until in the header; 1: the old
 * 40-byte header, still read). */
static size_t stream_v(uint8_t *out, size_t cap, int frames, uint64_t since, unsigned version)
{
    fmt_stream_writer w;
    fmt_stream_header h = {.version = (uint16_t)version,
                           .db_id = version == 1 ? 0x5EED : 0,
                           .id = {0x5E, 0xED, 0x01, 0x02},
                           .since = since,
                           .until = version == 1 ? 0 : 100000,
                           .created_ms = 1767225600000ull};
    size_t pos = fmt_stream_writer_init(&w, &h, out);
    uint8_t raw[4096];
    for (int f = 0; f < frames; f++) {
        size_t raw_len = segment_body(raw, sizeof raw), n = 0;
        if (f > 0) /* later frames: just the first records */
            raw_len = 2 * 10 + 60;
        fmt_record r;
        size_t cut = 0;
        while (cut < raw_len && fmt_record_decode(raw + cut, sizeof raw - cut, &r) == FMT_OK)
            cut += r.total_len;
        if (fmt_stream_frame_encode(&w, raw, cut, 3, out + pos, cap - pos, &n) != FMT_OK)
            exit(1);
        pos += n;
    }
    if (fmt_stream_trailer_encode(&w, 100000, out + pos) != FMT_OK)
        exit(1);
    return pos + FMT_STREAM_TRAILER_FRAME_LEN;
}

static size_t stream(uint8_t *out, size_t cap, int frames, uint64_t since)
{
    return stream_v(out, cap, frames, since, FMT_STREAM_VERSION);
}

static void seeds_stream(void)
{
    uint8_t buf[16384];
    size_t n = stream(buf, sizeof buf, 0, 0);
    seed2("fuzz_stream", "empty", buf, n);
    n = stream(buf, sizeof buf, 1, 0);
    seed2("fuzz_stream", "one-frame", buf, n);
    n = stream(buf, sizeof buf, 3, 5);
    seed2("fuzz_stream", "three-frames", buf, n);
    seed2("fuzz_stream", "truncated", buf, n - 1);
    n = stream_v(buf, sizeof buf, 2, 5, 1);
    seed2("fuzz_stream", "v1-two-frames", buf, n);
}

static void seeds_headers(void)
{
    uint8_t buf[1024];
    fmt_segment_header sh = {.segment_id = 1, .db_id = 42, .created_ms = 1767225600000ull};
    fmt_segment_header_encode(buf, &sh);
    put_seed("fuzz_headers", "segment", 0x00, buf, FMT_SEG_HEADER_LEN);
    put_seed("fuzz_headers", "segment", 0x80, buf, FMT_SEG_HEADER_LEN);

    fmt_catalog_entry e = {.dropped = true, .ks_id = 9, .default_ttl_ms = 86400000};
    fmt_catalog_encode(buf, &e);
    put_seed("fuzz_headers", "catalog", 0x01, buf, FMT_CATALOG_VALUE_LEN);

    fmt_stream_writer w;
    fmt_stream_header h = {.id = {1}, .since = 2, .until = 4, .created_ms = 3};
    size_t hl = fmt_stream_writer_init(&w, &h, buf);
    put_seed("fuzz_headers", "stream", 0x02, buf, hl);
    put_seed("fuzz_headers", "stream", 0x82, buf, hl);
    fmt_stream_header h1 = {.version = 1, .db_id = 1, .since = 2, .created_ms = 3};
    hl = fmt_stream_writer_init(&w, &h1, buf);
    put_seed("fuzz_headers", "stream-v1", 0x02, buf, hl);

    static const char text[] = "zstd zstd zstd zstd zstd zstd zstd zstd zstd zstd zstd zstd";
    size_t n = fmt_compress(buf, sizeof buf, text, sizeof text - 1, 3);
    put_seed("fuzz_headers", "zstd", 0x03, buf, n);

    uint64_t ids[3] = {4, 7, 9};
    fmt_merging_encode(buf, ids, 3);
    put_seed("fuzz_headers", "merging", 0x04, buf, fmt_merging_len(3));
    put_seed("fuzz_headers", "merging", 0x84, buf, fmt_merging_len(3));
    fmt_horizon_encode(buf, 123456);
    put_seed("fuzz_headers", "horizon", 0x05, buf, FMT_HORIZON_LEN);
    put_seed("fuzz_headers", "horizon", 0x85, buf, FMT_HORIZON_LEN);
    fmt_identity fid = {.flags = FMT_IDENTITY_FORKED, .id = {7, 7}, .parent = {9}, .forked_at = 5};
    fmt_identity_encode(buf, &fid);
    put_seed("fuzz_headers", "identity", 0x06, buf, FMT_IDENTITY_LEN);
    put_seed("fuzz_headers", "identity", 0x86, buf, FMT_IDENTITY_LEN);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        perror(root);
        return 1;
    }
    seeds_record();
    seeds_hint();
    seeds_stream();
    seeds_headers();
    return failures ? 1 : 0;
}
