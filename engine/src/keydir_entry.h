/*
 * keydir_entry.h — the layout of one keydir table slot and of the entry it
 * points at in a shard's arena. Private to keydir.c.
 *
 * A slot (16 bytes) holds everything a reader needs to find a record:
 *     u32 tag (the hash's low 32 bits), u32 arena reference (0 = empty),
 *     u32 offset, u16 segment slot, u16 klen (11 bits) | flags (ENT_F_EXPIRY)
 * The entry (packed, 4-byte aligned) holds the rest:
 *     u64 seq, [i64 expires_at_ms if ENT_F_EXPIRY], key
 * i.e. 8 B + key without expiry. A read goes slot -> record and compares the
 * key with the record's own (checksummed) copy, so it never touches the
 * entry: one dependent cache miss less than an entry holding the location.
 * Writers, recovery, merge and listing compare keys in the entry. The u64
 * fields sit at 4-byte alignment, so they go through the fmt_ little-endian
 * helpers (one load or store each on x86-64), never through a struct cast.
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
#define ENT_HDR 8u    /* seq */
#define ENT_EXPIRY 8u /* the optional i64 expires_at_ms */

_Static_assert(FMT_KEY_MAX <= ENT_KLEN_MASK, "klen must fit in 11 bits");
_Static_assert(ENT_HDR + ENT_EXPIRY + FMT_KEY_MAX + 3u <= KD_ARENA_CHUNK_MAX,
               "the largest entry must fit in a chunk");

typedef struct kd_slot {
    uint32_t tag;
    uint32_t ref; /* 0: the slot is empty */
    uint32_t off;
    uint16_t seg;
    uint16_t kf; /* klen | flags */
} kd_slot;
_Static_assert(sizeof(kd_slot) == 16, "a slot is 16 bytes");

static inline uint32_t entry_size(size_t klen, bool expiry)
{
    return (uint32_t)((ENT_HDR + (expiry ? ENT_EXPIRY : 0u) + klen + 3u) & ~(size_t)3u);
}
static inline size_t kf_klen(uint16_t kf)
{
    return kf & ENT_KLEN_MASK;
}
static inline bool kf_expiry(uint16_t kf)
{
    return (kf & ENT_F_EXPIRY) != 0;
}
static inline uint16_t kf_make(size_t klen, const kd_loc *loc)
{
    return (uint16_t)(klen | (loc->expires_at_ms ? ENT_F_EXPIRY : 0u));
}
static inline uint8_t *ent_key(uint8_t *e, uint16_t kf)
{
    return e + ENT_HDR + (kf_expiry(kf) ? ENT_EXPIRY : 0u);
}
static inline uint32_t slot_ent_size(const kd_slot *sl)
{
    return entry_size(kf_klen(sl->kf), kf_expiry(sl->kf));
}

/* The location of slot SL with its entry E. */
static inline void ent_read(const kd_slot *sl, const uint8_t *e, kd_loc *out)
{
    out->seg = sl->seg;
    out->off = sl->off;
    out->seq = fmt_get_u64(e);
    out->expires_at_ms = kf_expiry(sl->kf) ? (int64_t)fmt_get_u64(e + ENT_HDR) : 0;
}

static inline void ent_write_place(kd_slot *sl, uint8_t *e, const kd_loc *loc)
{
    sl->seg = loc->seg;
    sl->off = loc->off;
    fmt_put_u64(e, loc->seq);
}

/* Write every field of LOC; the slot's expiry flag must match LOC's. */
static inline void ent_write(kd_slot *sl, uint8_t *e, const kd_loc *loc)
{
    ent_write_place(sl, e, loc);
    if (loc->expires_at_ms)
        fmt_put_u64(e + ENT_HDR, (uint64_t)loc->expires_at_ms);
}

/* A new entry E for KEY at LOC, referenced by REF from slot SL (tag set by
 * the caller). */
static inline void ent_init(kd_slot *sl, uint32_t ref, uint8_t *e, const void *key, size_t klen,
                            const kd_loc *loc)
{
    sl->ref = ref;
    sl->kf = kf_make(klen, loc);
    ent_write(sl, e, loc);
    memcpy(ent_key(e, sl->kf), key, klen);
}

#endif
