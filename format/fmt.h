/*
 * fmt.h — shared definitions of the format layer: result codes, hard limits,
 * little-endian and varint helpers, and the checksum. Everything in format/ is
 * pure: no I/O, no global state, no allocation unless a function says so.
 * Byte layouts are specified in FORMAT.md; keep the two in step.
 */
#ifndef RC_FMT_H
#define RC_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Decoder results. */
#define FMT_OK 0
#define FMT_ESHORT (-1)   /* the input ends before the item does (truncated) */
#define FMT_ECORRUPT (-2) /* checksum mismatch, bad magic, impossible length */
#define FMT_EVERSION (-3) /* a version this build does not read */
#define FMT_ELIMIT (-4)   /* a length beyond the hard limits below */
#define FMT_ESPACE (-5)   /* encoder: the output buffer is too small */

/* Hard limits checked by every decoder before a length is used. */
#define FMT_KEY_MAX 1024u
#define FMT_VALUE_MAX (256u * 1024u * 1024u)
#define FMT_VARINT_MAX 10u /* bytes of a LEB128 u64 */

/* A short English name for a FMT_* code. */
const char *fmt_strerror(int code);

static inline void fmt_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void fmt_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void fmt_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t fmt_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t fmt_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t fmt_get_u64(const uint8_t *p)
{
    return (uint64_t)fmt_get_u32(p) | ((uint64_t)fmt_get_u32(p + 4) << 32);
}

/* Bytes the LEB128 encoding of V takes (1..10). */
static inline size_t fmt_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
/* Write V as LEB128 at P (room for fmt_varint_len(v) bytes); returns bytes. */
static inline size_t fmt_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}
/* Read a LEB128 u64 from P[0..avail). Returns bytes consumed, 0 when the
 * input ends first (FMT_ESHORT) or -1 when it is malformed (over 10 bytes or
 * overflowing 64 bits). Values below 128 (one byte: most seqs deltas, key
 * and value lengths in hints and records) take the inline path. */
int fmt_get_varint_long(const uint8_t *p, size_t avail, uint64_t *v);
static inline int fmt_get_varint(const uint8_t *p, size_t avail, uint64_t *v)
{
    if (avail && p[0] < 0x80) {
        *v = p[0];
        return 1;
    }
    return fmt_get_varint_long(p, avail, v);
}

/* XXH3-64 of BUF; records store its low 32 bits, files the whole 64. */
uint64_t fmt_hash64(const void *buf, size_t len);
static inline uint32_t fmt_hash32(const void *buf, size_t len)
{
    return (uint32_t)fmt_hash64(buf, len);
}

#endif
