/*
 * meta.h — three small files of the database directory.
 *
 * MERGING (exists only while merge deletes the segments it replaced; at open,
 * a valid MERGING means "finish deleting these", which makes the deletion of
 * a merge's victims atomic across a crash):
 *   0 u32 magic "RCMG" (0x474D4352)  4 u16 version (1)  6 u16 flags (0)
 *   8 u32 count (1..FMT_MERGING_MAX)  12 u64 segment id x count
 *   then u64 XXH3-64 over every preceding byte
 *
 * HORIZON (the tombstone horizon: the highest sequence number of a
 * tombstone or expired record that merge has dropped; absent = 0):
 *   0 u32 magic "RCHZ" (0x5A484352)  4 u16 version (1)  6 u16 flags (0)
 *   8 u64 horizon  16 u64 XXH3-64 over bytes 0..16
 * LOADING (exists only while rc_load writes the segments of a full load; at
 * open, a valid LOADING means "delete segments first .. first+count-1 and
 * their hints", which makes a full load all or nothing across a crash):
 *   0 u32 magic "RCLD" (0x444C4352)  4 u16 version (1)  6 u16 flags (0)
 *   8 u64 first (1..FMT_SEGMENT_ID_MAX)  16 u32 count (1..FMT_LOADING_MAX,
 *   first + count - 1 <= FMT_SEGMENT_ID_MAX)  20 u32 reserved (0)
 *   24 u64 XXH3-64 over bytes 0..23
 * IDENTITY (the database identity; FORMAT.md 10.4):
 *   0 u32 magic "RCID" (0x44494352)  4 u16 version (1)  6 u16 flags
 *   (bit 0 REPLICA, bit 1 FORKED; never both)  8 16 bytes id
 *   24 16 bytes parent (FORKED only, else zero)  40 u64 forked_at (FORKED
 *   only, else 0)  48 u64 XXH3-64 over bytes 0..47
 * All are written to NAME.tmp, fsynced and renamed.
 */
#ifndef RC_FMT_META_H
#define RC_FMT_META_H

#include "fmt.h"

#define FMT_MERGING_MAGIC 0x474D4352u
#define FMT_HORIZON_MAGIC 0x5A484352u
#define FMT_META_VERSION 1u
#define FMT_MERGING_MAX 65536u
#define FMT_HORIZON_LEN 24u
#define FMT_LOADING_MAGIC 0x444C4352u
#define FMT_LOADING_LEN 32u
#define FMT_LOADING_MAX 65536u
#define FMT_IDENTITY_MAGIC 0x44494352u
#define FMT_IDENTITY_LEN 56u
#define FMT_IDENTITY_REPLICA 0x1u      /* filled by loads of ID's streams, no local write since */
#define FMT_IDENTITY_FORKED 0x2u       /* loaded from PARENT, then written locally */
#define FMT_SEGMENT_ID_MAX 99999999ull /* 8 decimal digits in the file name */

static inline size_t fmt_merging_len(uint32_t count)
{
    return 12u + 8u * (size_t)count + 8u;
}
/* Encode COUNT ids into OUT (fmt_merging_len(count) bytes). */
void fmt_merging_encode(uint8_t *out, const uint64_t *ids, uint32_t count);
/* Decode: *COUNT ids, *IDS points into a malloc'd array the caller frees.
 * FMT_ESHORT, FMT_ECORRUPT, FMT_EVERSION, FMT_ELIMIT. */
int fmt_merging_decode(const uint8_t *buf, size_t len, uint64_t **ids, uint32_t *count);

void fmt_horizon_encode(uint8_t out[FMT_HORIZON_LEN], uint64_t horizon);
int fmt_horizon_decode(const uint8_t *buf, size_t len, uint64_t *horizon);

void fmt_loading_encode(uint8_t out[FMT_LOADING_LEN], uint64_t first, uint32_t count);
/* FMT_ESHORT, FMT_ECORRUPT (also for a length other than FMT_LOADING_LEN,
 * non-zero reserved bytes), FMT_EVERSION, FMT_ELIMIT (count or ids out of
 * range). */
int fmt_loading_decode(const uint8_t *buf, size_t len, uint64_t *first, uint32_t *count);

typedef struct fmt_identity {
    uint16_t flags; /* FMT_IDENTITY_* */
    uint8_t id[16];
    uint8_t parent[16];
    uint64_t forked_at;
} fmt_identity;

void fmt_identity_encode(uint8_t out[FMT_IDENTITY_LEN], const fmt_identity *id);
/* FMT_ESHORT, FMT_ECORRUPT (length other than FMT_IDENTITY_LEN, checksum,
 * unknown or both flags, parent or forked_at set without FORKED, an all-zero
 * id), FMT_EVERSION. */
int fmt_identity_decode(const uint8_t *buf, size_t len, fmt_identity *out);

#endif
