/*
 * hint.h — hint files: every record's key and location for one segment, so
 * that opening a database reads no values.
 *
 * Version 2 (written): header, entries in blocks, block index, trailer;
 * entries carry no key (read from the segment) and delta-code seq and
 * offset within a block, so that blocks decode independently (FORMAT.md 6).
 * Version 1 (still read) is below.
 * File: header (40 bytes), entries, trailer (8 bytes).
 *   header  0 u32 magic "RCHT" (0x54484352), 4 u16 version (1), 6 u16 flags (0),
 *           8 u64 segment id, 16 u64 covered bytes (the hint describes segment
 *           bytes [0, covered)), 24 u64 entry count, 32 u64 reserved (0)
 *   entry   u8 flags (record flags: TOMBSTONE, TYPE, HAS_EXPIRY, HAS_KS,
 *           COMPRESSED), var seq, [var ks], [var expires], var klen,
 *           var offset (of the record in the segment), var total_len, key
 *   trailer u64 XXH3-64 over every preceding byte of the file
 * A hint is used only if the whole file verifies; otherwise the segment is
 * scanned. Entries are written only for committed records.
 */
#ifndef RC_FMT_HINT_H
#define RC_FMT_HINT_H

#include "fmt.h"

#define FMT_HINT_MAGIC 0x54484352u
#define FMT_HINT_VERSION 2u /* written; version 1 is still read */
#define FMT_HINT_HEADER_LEN 40u
#define FMT_HINT_TRAILER_LEN 8u
#define FMT_HINT_ENTRY_MAX (1 + 10 + 5 + 10 + 2 + 5 + 5 + FMT_KEY_MAX)
/* Version 2: no key, seq and offset delta-coded within blocks. */
#define FMT_HINT2_ENTRY_MAX (1 + 10 + 5 + 10 + 2 + 5 + 5)
#define FMT_HINT2_ENTRY_MIN 5u
#define FMT_HINT2_BLOCK 4096u      /* entries per block, as written */
#define FMT_HINT2_BLOCK_MAX 65536u /* readers refuse more */

typedef struct fmt_hint_header {
    uint64_t segment_id;
    uint64_t covered;
    uint64_t count;
    uint16_t version; /* decode: 1 or 2; encode: as given (0 means 2) */
    uint32_t block;   /* version 2: entries per block (1 .. FMT_HINT2_BLOCK_MAX) */
} fmt_hint_header;

typedef struct fmt_hint_entry {
    uint8_t flags;
    uint64_t seq;
    uint32_t ks;
    uint64_t expires_at_ms;
    const uint8_t *key; /* decode: points into the input */
    uint32_t klen;
    uint32_t offset;
    uint32_t total_len;
} fmt_hint_entry;

void fmt_hint_header_encode(uint8_t out[FMT_HINT_HEADER_LEN], const fmt_hint_header *h);
int fmt_hint_header_decode(const uint8_t *buf, size_t avail, fmt_hint_header *out);

/* Encode one entry (sets HAS_KS/HAS_EXPIRY from the fields and drops the
 * batch bits, so a record's flags may be passed as they are); returns bytes
 * written or 0 if CAP is too small or a field is invalid (seq 0, klen 0 or
 * above FMT_KEY_MAX). */
size_t fmt_hint_entry_encode(uint8_t *buf, size_t cap, const fmt_hint_entry *e);
/* Decode one entry at BUF[0..avail); *USED receives its size. FMT_ESHORT,
 * FMT_ECORRUPT, FMT_ELIMIT. */
int fmt_hint_entry_decode(const uint8_t *buf, size_t avail, fmt_hint_entry *out, size_t *used);

typedef int (*fmt_hint_walk_fn)(void *ctx, const fmt_hint_header *h, uint64_t i,
                                const fmt_hint_entry *e, size_t pos);

/* Version 2 entries. The key is not in the hint (entry->key is NULL on
 * decode and ignored on encode): it is read from the record in the segment.
 * SEQ and OFFSET are coded against the previous entry of the same block,
 * kept in a fmt_hint2_ctx that starts zeroed at every block. */
typedef struct fmt_hint2_ctx {
    uint64_t seq; /* the previous entry's seq, 0 at a block's start */
    uint64_t end; /* the previous entry's offset + total_len, 0 at a block's start */
} fmt_hint2_ctx;
/* Encode one v2 entry and advance C; 0 if CAP is too small or a field is
 * invalid (also: an offset below C->end, i.e. not in file order). */
size_t fmt_hint2_entry_encode(uint8_t *buf, size_t cap, const fmt_hint_entry *e, fmt_hint2_ctx *c);
/* Decode one v2 entry and advance C. FMT_ESHORT, FMT_ECORRUPT, FMT_ELIMIT. */
int fmt_hint2_entry_decode(const uint8_t *buf, size_t avail, fmt_hint_entry *out, size_t *used,
                           fmt_hint2_ctx *c);

/* Version 2, for a caller that decodes the blocks in parallel: check the
 * header, the trailer checksum and the block index (not the entries) of a
 * v2 image; *NBLOCKS receives the number of blocks. A v1 image is
 * FMT_EVERSION here (use fmt_hint_file_walk). */
int fmt_hint2_file_open(const uint8_t *buf, size_t len, fmt_hint_header *out, uint64_t *nblocks);
/* Decode and check block B of a v2 image that fmt_hint2_file_open accepted
 * (H is its header), handing each entry to FN as fmt_hint_file_walk does
 * (I: the entry's index in the file). Fails unless the block holds exactly
 * its entries and ends where the next block (or the index) starts. */
int fmt_hint2_block_walk(const uint8_t *buf, size_t len, const fmt_hint_header *h, uint64_t b,
                         fmt_hint_walk_fn fn, void *ctx);
/* The file offset at which block B starts (B < nblocks). */
size_t fmt_hint2_block_pos(const uint8_t *buf, size_t len, const fmt_hint_header *h, uint64_t b);

/* Verify a whole hint file image, either version: header, trailer checksum,
 * and that exactly header.count entries fill the space between them. */
int fmt_hint_file_verify(const uint8_t *buf, size_t len, fmt_hint_header *out);

/* fmt_hint_file_verify that also hands each entry to FN once that entry has
 * been checked (I: its index, 0 .. H->count - 1; POS: its offset in BUF),
 * after the header and the trailer checksum verified, so that a caller needs
 * one pass over the file. A later failure still fails the whole file: the
 * caller must then discard what FN was given. A non-zero return of FN stops
 * the walk and is returned. */
int fmt_hint_file_walk(const uint8_t *buf, size_t len, fmt_hint_header *out, fmt_hint_walk_fn fn,
                       void *ctx);

#endif
