/* zstd helpers (compress.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <zstd.h>

#include "compress.h"

static void text(uint8_t *buf, size_t len)
{
    static const char words[] = "the quick brown fox jumps over the lazy dog ";
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)words[i % (sizeof words - 1)];
}

Test(compress, round_trip)
{
    uint8_t src[4096], out[4096];
    text(src, sizeof src);
    size_t cap = fmt_compress_bound(sizeof src);
    uint8_t *dst = malloc(cap);
    size_t n = fmt_compress(dst, cap, src, sizeof src, 3);
    cr_assert_gt(n, 0);
    cr_assert_lt(n, sizeof src);
    size_t size = 0;
    cr_assert_eq(fmt_decompressed_size(dst, n, sizeof src, &size), FMT_OK);
    cr_assert_eq(size, sizeof src);
    size_t got = 0;
    cr_assert_eq(fmt_decompress(out, sizeof out, dst, n, &got), FMT_OK);
    cr_assert_eq(got, sizeof src);
    cr_assert_eq(memcmp(out, src, sizeof src), 0);
    free(dst);
}

Test(compress, incompressible_or_empty_returns_zero)
{
    uint8_t src[256], dst[1024];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof src; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        src[i] = (uint8_t)x;
    }
    cr_assert_eq(fmt_compress(dst, sizeof dst, src, sizeof src, 3), 0);
    cr_assert_eq(fmt_compress(dst, sizeof dst, src, 0, 3), 0);
    text(src, sizeof src);
    cr_assert_eq(fmt_compress(dst, 4, src, sizeof src, 3), 0); /* cap too small */
}

Test(compress, rejects_garbage)
{
    uint8_t junk[64], out[64];
    memset(junk, 0x5A, sizeof junk);
    size_t size, got;
    cr_assert_eq(fmt_decompressed_size(junk, sizeof junk, 1024, &size), FMT_ECORRUPT);
    cr_assert_eq(fmt_decompress(out, sizeof out, junk, sizeof junk, &got), FMT_ECORRUPT);
    cr_assert_eq(fmt_decompress(out, sizeof out, junk, 0, &got), FMT_ECORRUPT);
}

Test(compress, rejects_declared_size_above_max)
{
    uint8_t src[4096], dst[4096], out[4096];
    text(src, sizeof src);
    size_t n = fmt_compress(dst, sizeof dst, src, sizeof src, 1);
    cr_assert_gt(n, 0);
    size_t size, got;
    cr_assert_eq(fmt_decompressed_size(dst, n, sizeof src - 1, &size), FMT_ELIMIT);
    cr_assert_eq(fmt_decompress(out, sizeof src - 1, dst, n, &got), FMT_ECORRUPT);
}

Test(compress, rejects_trailing_bytes_truncation_and_flips)
{
    uint8_t src[4096], dst[4200], out[4096];
    text(src, sizeof src);
    size_t n = fmt_compress(dst, sizeof dst, src, sizeof src, 1);
    size_t got, size;
    dst[n] = 0;
    cr_assert_eq(fmt_decompress(out, sizeof out, dst, n + 1, &got), FMT_ECORRUPT);
    cr_assert_eq(fmt_decompressed_size(dst, n + 1, sizeof out, &size), FMT_ECORRUPT);
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_eq(fmt_decompress(out, sizeof out, dst, cut, &got), FMT_ECORRUPT, "cut %zu", cut);
}

Test(compress, rejects_skippable_frame)
{
    uint8_t frame[16] = {0};
    fmt_put_u32(frame, ZSTD_MAGIC_SKIPPABLE_START);
    fmt_put_u32(frame + 4, 8);
    size_t size, got;
    uint8_t out[16];
    cr_assert_eq(fmt_decompressed_size(frame, sizeof frame, 16, &size), FMT_ECORRUPT);
    cr_assert_eq(fmt_decompress(out, sizeof out, frame, sizeof frame, &got), FMT_ECORRUPT);
}

Test(compress, rejects_frame_without_content_size)
{
    uint8_t src[1024], out[1024];
    text(src, sizeof src);
    /* a streaming frame: content size unknown */
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    uint8_t dst[2048];
    size_t n = ZSTD_compress2(cctx, dst, sizeof dst, src, sizeof src);
    ZSTD_freeCCtx(cctx);
    cr_assert(!ZSTD_isError(n));
    size_t size, got;
    cr_assert_eq(fmt_decompressed_size(dst, n, sizeof out, &size), FMT_ECORRUPT);
    cr_assert_eq(fmt_decompress(out, sizeof out, dst, n, &got), FMT_ECORRUPT);
}
