/*
 * compress.h — zstd helpers for values and stream frames.
 */
#ifndef RC_FMT_COMPRESS_H
#define RC_FMT_COMPRESS_H

#include "fmt.h"

/* Compress SRC into DST[0..cap) at LEVEL. Returns the compressed size, or 0
 * if it would not be smaller than SRC (the caller then stores it raw) or on
 * error. A cap of fmt_compress_bound(len) always suffices. */
size_t fmt_compress(void *dst, size_t cap, const void *src, size_t len, int level);
size_t fmt_compress_bound(size_t len);

/* The decompressed size recorded in a zstd frame, checked against MAX.
 * FMT_ECORRUPT if unknown or malformed, FMT_ELIMIT if > MAX. */
int fmt_decompressed_size(const void *src, size_t len, size_t max, size_t *out);

/* Decompress exactly one frame into DST[0..cap); *OUT_LEN receives the size.
 * FMT_ECORRUPT on any malformed input or size mismatch. */
int fmt_decompress(void *dst, size_t cap, const void *src, size_t len, size_t *out_len);

#endif
