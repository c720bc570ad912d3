/*
 * segment.h — the 40-byte header at the start of every NNNNNNNN.data file.
 *
 *   0  u32 magic  "RCSG" (0x47534352 little-endian)
 *   4  u16 version (1)
 *   6  u16 flags   (0; readers refuse unknown bits)
 *   8  u64 segment id (equals the file name number)
 *  16  u64 database id (random, fixed at creation of the directory)
 *  24  u64 created, ms since the epoch
 *  32  u32 reserved (0)
 *  36  u32 checksum: low 32 bits of XXH3-64 over bytes 0..36
 */
#ifndef RC_FMT_SEGMENT_H
#define RC_FMT_SEGMENT_H

#include "fmt.h"

#define FMT_SEG_MAGIC 0x47534352u
#define FMT_SEG_VERSION 1u
#define FMT_SEG_HEADER_LEN 40u

typedef struct fmt_segment_header {
    uint64_t segment_id;
    uint64_t db_id;
    uint64_t created_ms;
} fmt_segment_header;

void fmt_segment_header_encode(uint8_t out[FMT_SEG_HEADER_LEN], const fmt_segment_header *h);
/* FMT_ESHORT, FMT_ECORRUPT (magic, checksum, flags), FMT_EVERSION. */
int fmt_segment_header_decode(const uint8_t *buf, size_t avail, fmt_segment_header *out);

#endif
