/*
 * fuzz_headers.c — the small fixed-layout decoders on arbitrary bytes:
 * segment header, catalogue value, stream header, the zstd helpers, and the
 * MERGING, HORIZON and IDENTITY files.
 *
 * The first byte picks the decoder (so one corpus serves all seven); bit 7
 * asks to reseal the segment/stream header checksums. Checks: whatever
 * decodes re-encodes byte for byte, and decompression never writes past the
 * declared size nor accepts a size beyond the limit.
 */
#include "fuzz_util.h"

#include "catalog.h"
#include "compress.h"
#include "meta.h"
#include "segment.h"
#include "stream.h"

#define FUZZ_DECOMPRESS_MAX (1u << 20)

static void fuzz_segment(uint8_t *buf, size_t len, int reseal)
{
    if (reseal && len >= FMT_SEG_HEADER_LEN)
        fmt_put_u32(buf + 36, fmt_hash32(buf, 36));
    fmt_segment_header h;
    if (fmt_segment_header_decode(buf, len, &h) != FMT_OK)
        return;
    uint8_t out[FMT_SEG_HEADER_LEN];
    fmt_segment_header_encode(out, &h);
    FUZZ_CHECK(memcmp(out, buf, sizeof out) == 0);
}

static void fuzz_catalog(const uint8_t *buf, size_t len)
{
    fmt_catalog_entry e;
    if (fmt_catalog_decode(buf, len, &e) != FMT_OK)
        return;
    FUZZ_CHECK(len == FMT_CATALOG_VALUE_LEN && e.ks_id >= 1 && e.default_ttl_ms >= 0);
    uint8_t out[FMT_CATALOG_VALUE_LEN];
    fmt_catalog_encode(out, &e);
    FUZZ_CHECK(memcmp(out, buf, sizeof out) == 0);
}

static void fuzz_stream_header(uint8_t *buf, size_t len, int reseal)
{
    size_t hl = len >= FMT_STREAM_HEADER_MIN ? fmt_stream_header_len(fmt_get_u16(buf + 4)) : 0;
    if (reseal && hl && len >= hl)
        fmt_put_u64(buf + hl - 8, fmt_hash64(buf, hl - 8));
    fmt_stream_reader rd;
    if (fmt_stream_reader_init(&rd, buf, len) != FMT_OK)
        return;
    uint8_t out[FMT_STREAM_HEADER_MAX];
    fmt_stream_writer w;
    size_t n = fmt_stream_writer_init(&w, &rd.header, out);
    FUZZ_CHECK(n == fmt_stream_header_len(rd.header.version));
    FUZZ_CHECK(memcmp(out, buf, n) == 0);
    FUZZ_CHECK(w.chain == rd.chain);
}

static void fuzz_zstd(const uint8_t *buf, size_t len)
{
    size_t declared = 0, got = 0;
    int rc = fmt_decompressed_size(buf, len, FUZZ_DECOMPRESS_MAX, &declared);
    if (rc != FMT_OK)
        return;
    FUZZ_CHECK(declared <= FUZZ_DECOMPRESS_MAX);
    uint8_t *out = malloc(declared ? declared : 1);
    FUZZ_CHECK(out != NULL);
    if (fmt_decompress(out, declared, buf, len, &got) == FMT_OK) {
        FUZZ_CHECK(got == declared);
        /* and back: whatever decompresses must compress and round-trip */
        size_t cap = fmt_compress_bound(got);
        uint8_t *again = malloc(cap), *back = malloc(got ? got : 1);
        FUZZ_CHECK(again && back);
        size_t n = fmt_compress(again, cap, out, got, 1);
        if (n) {
            size_t back_len = 0;
            FUZZ_CHECK(fmt_decompress(back, got, again, n, &back_len) == FMT_OK);
            FUZZ_CHECK(back_len == got && memcmp(back, out, got) == 0);
        }
        free(again);
        free(back);
    }
    free(out);
}

static void fuzz_merging(uint8_t *buf, size_t len, int reseal)
{
    if (reseal && len >= 20)
        fmt_put_u64(buf + len - 8, fmt_hash64(buf, len - 8));
    uint64_t *ids = NULL;
    uint32_t n = 0;
    if (fmt_merging_decode(buf, len, &ids, &n) != FMT_OK)
        return;
    FUZZ_CHECK(n >= 1 && n <= FMT_MERGING_MAX && len == fmt_merging_len(n));
    uint8_t *out = malloc(len);
    FUZZ_CHECK(out != NULL);
    fmt_merging_encode(out, ids, n);
    FUZZ_CHECK(memcmp(out, buf, len) == 0);
    free(out);
    free(ids);
}

static void fuzz_horizon(uint8_t *buf, size_t len, int reseal)
{
    if (reseal && len >= FMT_HORIZON_LEN)
        fmt_put_u64(buf + 16, fmt_hash64(buf, 16));
    uint64_t h;
    if (fmt_horizon_decode(buf, len, &h) != FMT_OK)
        return;
    uint8_t out[FMT_HORIZON_LEN];
    fmt_horizon_encode(out, h);
    FUZZ_CHECK(len == FMT_HORIZON_LEN && memcmp(out, buf, sizeof out) == 0);
}

static void fuzz_identity(uint8_t *buf, size_t len, int reseal)
{
    if (reseal && len >= FMT_IDENTITY_LEN)
        fmt_put_u64(buf + 48, fmt_hash64(buf, 48));
    fmt_identity id;
    if (fmt_identity_decode(buf, len, &id) != FMT_OK)
        return;
    uint8_t out[FMT_IDENTITY_LEN];
    fmt_identity_encode(out, &id);
    FUZZ_CHECK(len == FMT_IDENTITY_LEN && memcmp(out, buf, sizeof out) == 0);
    FUZZ_CHECK((id.flags & (FMT_IDENTITY_REPLICA | FMT_IDENTITY_FORKED)) != 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    uint8_t *buf = fuzz_copy(data + 1, size - 1);
    size_t len = size - 1;
    int reseal = (mode & 0x80) != 0;
    switch (mode & 7) {
    case 0:
        fuzz_segment(buf, len, reseal);
        break;
    case 1:
        fuzz_catalog(buf, len);
        break;
    case 2:
        fuzz_stream_header(buf, len, reseal);
        break;
    case 4:
        fuzz_merging(buf, len, reseal);
        break;
    case 5:
        fuzz_horizon(buf, len, reseal);
        break;
    case 6:
        fuzz_identity(buf, len, reseal);
        break;
    default:
        fuzz_zstd(buf, len);
        break;
    }
    free(buf);
    return 0;
}
