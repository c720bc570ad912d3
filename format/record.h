/*
 * record.h — the log record, the unit of every segment and backup stream.
 *
 *   u32  checksum   low 32 bits of XXH3-64 over every byte after this field
 *   u8   flags      FMT_REC_* below
 *   var  seq        LEB128, >= 1
 *   var  ks         LEB128, present only with FMT_REC_HAS_KS (else ks = 1,
 *                   the "default" keyspace; 0 is the catalogue)
 *   var  expires    LEB128 ms since the epoch, only with FMT_REC_HAS_EXPIRY
 *   var  klen       1..FMT_KEY_MAX
 *   var  vlen       0..FMT_VALUE_MAX (the stored, maybe compressed, length)
 *   key, value
 *
 * Variable-length integers keep the overhead of a 16-byte key / 100-byte value
 * record at 10 bytes (disk goal: <= 1.15x raw bytes). See FORMAT.md.
 */
#ifndef RC_FMT_RECORD_H
#define RC_FMT_RECORD_H

#include "fmt.h"
#include <stdbool.h>

#define FMT_REC_TOMBSTONE 0x01u  /* a delete; vlen must be 0 */
#define FMT_REC_COMPRESSED 0x02u /* value is one zstd frame */
#define FMT_REC_TYPE_SHIFT 2     /* bits 2-3: value type (rc_type) */
#define FMT_REC_TYPE_MASK 0x0Cu
#define FMT_REC_HAS_EXPIRY 0x10u
#define FMT_REC_HAS_KS 0x20u
#define FMT_REC_BATCH 0x40u     /* inside a batch, and not its last record */
#define FMT_REC_BATCH_END 0x80u /* the last record of a batch of >= 2 */

#define FMT_KS_CATALOG 0u /* keyspace id of the keyspace catalogue */
#define FMT_KS_DEFAULT 1u /* keyspace id of "default" */
#define FMT_KS_MAX 0xFFFFFFFFu

#define FMT_REC_HEADER_MAX (4 + 1 + 10 + 5 + 10 + 2 + 5) /* = 37 */
#define FMT_REC_MIN 9 /* checksum 4, flags, seq, klen, vlen, 1 key byte */

/* A record's fields. For encoding, KEY/VAL point at the caller's bytes; after
 * decoding they point into the decoded buffer (no copy). */
typedef struct fmt_record {
    uint8_t flags; /* without HAS_KS/HAS_EXPIRY: the encoder derives them */
    uint64_t seq;
    uint32_t ks;
    uint64_t expires_at_ms; /* 0 = none */
    const uint8_t *key;
    uint32_t klen;
    const uint8_t *val;
    uint32_t vlen;
    uint32_t total_len; /* decode: the record's encoded size */
} fmt_record;

static inline unsigned fmt_record_type(const fmt_record *r)
{
    return (r->flags & FMT_REC_TYPE_MASK) >> FMT_REC_TYPE_SHIFT;
}

/* The fields a record and a hint entry share, in this order after the flags
 * byte: var seq, [var ks], [var expires], var klen (FORMAT.md 4.2 and 6). */
typedef struct fmt_ident {
    uint64_t seq;
    uint32_t ks;
    uint64_t expires_at_ms;
    uint32_t klen;
} fmt_ident;

/* FLAGS with HAS_KS and HAS_EXPIRY set exactly as ID requires. */
uint8_t fmt_ident_flags(uint8_t flags, const fmt_ident *id);
/* Encoded bytes of ID's fields under FLAGS. */
size_t fmt_ident_size(uint8_t flags, const fmt_ident *id);
/* Write ID's fields at P (fmt_ident_size bytes); returns the bytes written. */
size_t fmt_ident_put(uint8_t *p, uint8_t flags, const fmt_ident *id);
/* Read the fields at BUF[*POS..avail) under FLAGS, advancing *POS, with the
 * canonical-form and limit checks both formats share. FMT_ESHORT,
 * FMT_ECORRUPT, FMT_ELIMIT. */
int fmt_ident_get(const uint8_t *buf, size_t avail, size_t *pos, uint8_t flags, fmt_ident *out);
/* Read one varint at BUF[*POS..avail), advancing *POS: FMT_ESHORT if the
 * input ends inside it, FMT_ECORRUPT if it is malformed. */
static inline int fmt_read_varint(const uint8_t *buf, size_t avail, size_t *pos, uint64_t *v)
{
    int n = fmt_get_varint(buf + *pos, avail - *pos, v);
    if (n == 0)
        return FMT_ESHORT;
    if (n < 0)
        return FMT_ECORRUPT;
    *pos += (size_t)n;
    return FMT_OK;
}

/* The encoded size of R (sets nothing). */
size_t fmt_record_size(const fmt_record *r);

/* Encode R into BUF[0..cap). Sets HAS_KS when ks != FMT_KS_DEFAULT and
 * HAS_EXPIRY when expires_at_ms != 0. Returns the size written, or 0 when
 * CAP is too small or a field breaks a limit (klen 0, klen/vlen too big,
 * tombstone with a value). */
size_t fmt_record_encode(uint8_t *buf, size_t cap, const fmt_record *r);

/* Decode the header at BUF[0..avail) without checking the checksum, filling
 * every field including total_len (key/val pointers are set only if the
 * whole record is within AVAIL). FMT_ESHORT when the header itself is cut,
 * FMT_ELIMIT/FMT_ECORRUPT for impossible fields (klen 0, reserved bits). */
int fmt_record_peek(const uint8_t *buf, size_t avail, fmt_record *out);

/* Decode and verify one whole record. FMT_ESHORT when AVAIL ends inside it,
 * FMT_ECORRUPT on checksum mismatch or bad fields, FMT_ELIMIT on lengths
 * beyond the limits. */
int fmt_record_decode(const uint8_t *buf, size_t avail, fmt_record *out);

/* Resynchronise after a corrupt record: the offset of the first position
 * after FROM in BUF[0..avail) where a whole valid record decodes, or AVAIL
 * when there is none. Used by recovery inside immutable segments. */
size_t fmt_record_resync(const uint8_t *buf, size_t avail, size_t from);

#endif
