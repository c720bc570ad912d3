/*
 * compress.c — single-shot zstd helpers for values and stream frames
 * (compress.h).
 *
 * A compressed item is exactly one zstd frame with its content size in the
 * frame header (ZSTD_compress always writes it). Decoders trust nothing in
 * the frame: the declared size is checked against the caller's limit before
 * anything is decompressed, trailing bytes and skippable frames are refused,
 * and the decompressed size must equal the declared one. zstd allocates its
 * own short-lived context inside each call; that is the only allocation in
 * format/ and it is bounded by zstd, not by the input.
 */
#include "compress.h"

#include <zstd.h>

size_t fmt_compress_bound(size_t len)
{
    return ZSTD_compressBound(len);
}

size_t fmt_compress(void *dst, size_t cap, const void *src, size_t len, int level)
{
    if (len == 0)
        return 0;
    size_t n = ZSTD_compress(dst, cap, src, len, level);
    if (ZSTD_isError(n) || n >= len)
        return 0;
    return n;
}

/* The declared content size of the single zstd frame that is exactly
 * SRC[0..len), or FMT_ECORRUPT. */
static int frame_content_size(const void *src, size_t len, unsigned long long *out)
{
    if (len < 4 || fmt_get_u32(src) != ZSTD_MAGICNUMBER)
        return FMT_ECORRUPT; /* also refuses skippable frames */
    size_t frame_len = ZSTD_findFrameCompressedSize(src, len);
    if (ZSTD_isError(frame_len) || frame_len != len)
        return FMT_ECORRUPT;
    unsigned long long size = ZSTD_getFrameContentSize(src, len);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR)
        return FMT_ECORRUPT;
    *out = size;
    return FMT_OK;
}

int fmt_decompressed_size(const void *src, size_t len, size_t max, size_t *out)
{
    unsigned long long size;
    int rc = frame_content_size(src, len, &size);
    if (rc != FMT_OK)
        return rc;
    if (size > max)
        return FMT_ELIMIT;
    *out = (size_t)size;
    return FMT_OK;
}

int fmt_decompress(void *dst, size_t cap, const void *src, size_t len, size_t *out_len)
{
    unsigned long long size;
    int rc = frame_content_size(src, len, &size);
    if (rc != FMT_OK)
        return rc;
    if (size > cap)
        return FMT_ECORRUPT;
    size_t n = ZSTD_decompress(dst, (size_t)size, src, len);
    if (ZSTD_isError(n) || n != size)
        return FMT_ECORRUPT;
    *out_len = n;
    return FMT_OK;
}
