/*
 * keydir_entry.h — the layout of one keydir entry in a shard's arena.
 * Private to keydir.c.
 *
 * Packed, 4-byte aligned, no padding inside:
 *     u16 klen (11 bits) | flags (5 bits; ENT_F_EXPIRY)
 *     u16 seg, u32 off, u64 seq, [i64 expires_at_ms if ENT_F_EXPIRY], key
 * i.e. 16 B + key without expiry: the expiry costs its 8 bytes only in the
 * entries that have one. The u64 fields sit at 4-byte alignment, so every
 * field goes through the fmt_ little-endian helpers (one load or store each
 * on x86-64), never through a struct cast.
 */
#ifndef RC_KEYDIR_ENTRY_H
#define RC_KEYDIR_ENTRY_H

#include "fmt.h"
#include "keydir.h"
#include "keydir_arena.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define ENT_KLEN_MASK 0x07ffu
#define ENT_F_EXPIRY 0x0800u
#define ENT_HDR 16u   /* klen|flags, seg, off, seq */
#define ENT_EXPIRY 8u /* the optional i64 expires_at_ms */

_Static_assert(FMT_KEY_MAX <= ENT_KLEN_MASK, "klen must fit in 11 bits");
_Static_assert(ENT_HDR + ENT_EXPIRY + FMT_KEY_MAX + 3u <= KD_ARENA_CHUNK_MAX,
               "the largest entry must fit in a chunk");

static inline uint32_t entry_size(size_t klen, bool expiry)
{
    return (uint32_t)((ENT_HDR + (expiry ? ENT_EXPIRY : 0u) + klen + 3u) & ~(size_t)3u);
}
static inline size_t ent_klen(const uint8_t *e)
{
    return fmt_get_u16(e) & ENT_KLEN_MASK;
}
static inline bool ent_has_expiry(const uint8_t *e)
{
    return (fmt_get_u16(e) & ENT_F_EXPIRY) != 0;
}
static inline uint8_t *ent_key(uint8_t *e)
{
    return e + ENT_HDR + (ent_has_expiry(e) ? ENT_EXPIRY : 0u);
}
static inline uint32_t ent_size(const uint8_t *e)
{
    return entry_size(ent_klen(e), ent_has_expiry(e));
}

static inline void ent_read(const uint8_t *e, kd_loc *out)
{
    out->seg = fmt_get_u16(e + 2);
    out->off = fmt_get_u32(e + 4);
    out->seq = fmt_get_u64(e + 8);
    out->expires_at_ms = ent_has_expiry(e) ? (int64_t)fmt_get_u64(e + ENT_HDR) : 0;
}

static inline void ent_write_place(uint8_t *e, const kd_loc *loc)
{
    fmt_put_u16(e + 2, loc->seg);
    fmt_put_u32(e + 4, loc->off);
    fmt_put_u64(e + 8, loc->seq);
}

/* Write every field of LOC; the entry's expiry flag must match LOC's. */
static inline void ent_write(uint8_t *e, const kd_loc *loc)
{
    ent_write_place(e, loc);
    if (loc->expires_at_ms)
        fmt_put_u64(e + ENT_HDR, (uint64_t)loc->expires_at_ms);
}

static inline void ent_init(uint8_t *e, const void *key, size_t klen, const kd_loc *loc)
{
    fmt_put_u16(e, (uint16_t)(klen | (loc->expires_at_ms ? ENT_F_EXPIRY : 0u)));
    ent_write(e, loc);
    memcpy(ent_key(e), key, klen);
}

#endif
