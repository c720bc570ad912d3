/*
 * stream.h — the backup stream: a self-describing, checksummed, zstd-framed
 * sequence of records (FORMAT.md "Backup stream"). Pure: the writer encodes
 * into caller buffers and the reader decodes caller-fed bytes; no I/O.
 *
 *   header, version 2 (written): 56 bytes
 *     0 u32 magic "RCBK" (0x4B424352)   4 u16 version (2)   6 u16 flags (0)
 *     8 16 bytes database identity   24 u64 since   32 u64 until
 *    40 u64 created, ms since the epoch   48 u64 XXH3-64 over bytes 0..47
 *   header, version 1 (still read; identity unknown, until only in the
 *     trailer): 40 bytes
 *     0 u32 magic   4 u16 version (1)   6 u16 flags (0)   8 u64 source id
 *    16 u64 since   24 u64 created   32 u64 XXH3-64 over bytes 0..31
 *   frames, each a 17-byte frame header and a payload:
 *     0 u8 type (1 records, 2 trailer)   1 u32 stored length
 *     5 u32 raw length   9 u64 XXH3-64 of the stored payload bytes
 *   records frame: the payload is one zstd frame whose content is a
 *     concatenation of whole records in record.h format (each with its own
 *     checksum); 1 <= raw length <= FMT_STREAM_RAW_MAX.
 *   trailer frame (exactly one, last): stored = raw = 40, payload
 *     0 u64 until   8 u64 live records   16 u64 tombstones
 *    24 u64 records frames   32 u64 chain
 *   v2: the trailer's until equals the header's.
 *   chain: c0 = XXH3-64(the header bytes, 56 or 40); for each records frame in
 *     order, c = XXH3-64(u64 c || the 17 frame header bytes). Since every
 *     frame header carries its payload's hash, the chain in the trailer
 *     binds the header and every frame, in order: a dropped, repeated,
 *     reordered or spliced frame fails the trailer.
 * A stream without its trailer is truncated and invalid; no byte may follow
 * the trailer.
 *
 * Reading, in order (every step returns FMT_OK or a FMT_E* code):
 *   fmt_stream_reader_init(&rd, buf, avail)          header
 *   loop:
 *     fmt_stream_frame_header_decode(p, avail, &f)   lengths checked here,
 *                                                    before any allocation
 *     need f.stored_len payload bytes
 *     records: fmt_stream_frame_verify(&f, payload)  optional, before
 *                                                    allocating f.raw_len
 *              fmt_stream_read_records(&rd, &f, payload, raw, cap)
 *              while (fmt_stream_record_next(raw, f.raw_len, &pos, &r) == 1)
 *     trailer: fmt_stream_read_trailer(&rd, &f, payload, &t); stop
 *   at the end of input: fmt_stream_reader_finish(&rd) (FMT_ESHORT if the
 *   trailer was never read); any byte after the trailer is FMT_ECORRUPT.
 * A reader that fails once stays failed (every later call: FMT_ECORRUPT).
 * Nothing read from a stream should be applied before the trailer verifies.
 */
#ifndef RC_FMT_STREAM_H
#define RC_FMT_STREAM_H

#include "fmt.h"
#include "record.h"
#include <stdbool.h>

#define FMT_STREAM_MAGIC 0x4B424352u
#define FMT_STREAM_VERSION 2u     /* written; 1 is still read */
#define FMT_STREAM_HEADER_LEN 56u /* of the version written */
#define FMT_STREAM_HEADER_LEN_V1 40u
#define FMT_STREAM_HEADER_MIN 40u /* enough to decode any version's header */
#define FMT_STREAM_HEADER_MAX 56u
#define FMT_STREAM_ID_LEN 16u
#define FMT_STREAM_FRAME_HEADER_LEN 17u
#define FMT_STREAM_TRAILER_LEN 40u
#define FMT_STREAM_TRAILER_FRAME_LEN (FMT_STREAM_FRAME_HEADER_LEN + FMT_STREAM_TRAILER_LEN)

#define FMT_STREAM_FRAME_RECORDS 1u
#define FMT_STREAM_FRAME_TRAILER 2u

/* Writers cut a frame once it holds FMT_STREAM_FRAME_TARGET raw bytes; a
 * frame may exceed that by at most one record, hence the limit. */
#define FMT_STREAM_FRAME_TARGET (4u * 1024u * 1024u)
#define FMT_STREAM_RECORD_MAX (FMT_REC_HEADER_MAX + FMT_KEY_MAX + FMT_VALUE_MAX)
#define FMT_STREAM_RAW_MAX (FMT_STREAM_FRAME_TARGET + FMT_STREAM_RECORD_MAX)

typedef struct fmt_stream_header {
    uint16_t version;              /* writers: 0 means FMT_STREAM_VERSION; 1 writes a v1 header */
    uint8_t id[FMT_STREAM_ID_LEN]; /* v2: the source database's identity */
    uint64_t db_id;                /* v1 only: the source's 64-bit segment-header id */
    uint64_t since;
    uint64_t until; /* v2 only (v1: 0, the trailer has it) */
    uint64_t created_ms;
} fmt_stream_header;

typedef struct fmt_stream_frame {
    uint8_t type;        /* FMT_STREAM_FRAME_* */
    uint32_t stored_len; /* payload bytes that follow the frame header */
    uint32_t raw_len;    /* decompressed size (trailer: = stored_len) */
    uint64_t checksum;   /* XXH3-64 of the stored payload */
} fmt_stream_frame;

typedef struct fmt_stream_trailer {
    uint64_t until;      /* highest seq the backup covers (>= every record) */
    uint64_t records;    /* live (non-tombstone) records in the stream */
    uint64_t tombstones; /* tombstone records in the stream */
    uint64_t frames;     /* records frames before the trailer */
    uint64_t chain;      /* chained checksum, see above */
} fmt_stream_trailer;

/* Writer state: initialise with fmt_stream_writer_init, no teardown. */
typedef struct fmt_stream_writer {
    uint64_t since;
    uint64_t until; /* v2: the header's; the trailer must repeat it */
    uint16_t version;
    uint64_t chain;
    uint64_t max_seq;
    uint64_t records;
    uint64_t tombstones;
    uint64_t frames;
    bool finished;
} fmt_stream_writer;

/* Reader state: initialise with fmt_stream_reader_init, no teardown. */
typedef struct fmt_stream_reader {
    fmt_stream_header header; /* valid after a successful init */
    uint64_t chain;
    uint64_t max_seq;
    uint64_t records;
    uint64_t tombstones;
    uint64_t frames;
    int state; /* internal */
} fmt_stream_reader;

/* The stream header's length for VERSION (0 for an unknown version). */
size_t fmt_stream_header_len(unsigned version);
/* The stream header, stateless (the writer and reader use these). Encodes
 * version H->version (0: FMT_STREAM_VERSION) into OUT and returns its length
 * (FMT_STREAM_HEADER_LEN for v2, FMT_STREAM_HEADER_LEN_V1 for v1). */
size_t fmt_stream_header_encode(uint8_t out[FMT_STREAM_HEADER_MAX], const fmt_stream_header *h);
/* Decode a header of any known version: FMT_ESHORT (fewer bytes than that
 * version's header), FMT_ECORRUPT (magic, checksum, flags, v2 until below
 * since), FMT_EVERSION. OUT->version tells which. */
int fmt_stream_header_decode(const uint8_t *buf, size_t avail, fmt_stream_header *out);

/* ---- writer */

/* Start a stream: encode H into OUT (the first bytes of the stream) and seed
 * W's chain; returns the header's length (FMT_STREAM_HEADER_LEN unless
 * H->version is 1). */
size_t fmt_stream_writer_init(fmt_stream_writer *w, const fmt_stream_header *h,
                              uint8_t out[FMT_STREAM_HEADER_MAX]);

/* Bytes a records frame of RAW_LEN raw bytes may need (frame header and
 * worst-case zstd output); 0 if RAW_LEN is 0 or above FMT_STREAM_RAW_MAX. */
size_t fmt_stream_frame_bound(size_t raw_len);

/* Encode one records frame holding RAW[0..raw_len), which must be one or
 * more whole, valid records (they are decoded and counted), compressed at
 * zstd LEVEL, into OUT[0..cap); *OUT_LEN receives the frame's size. Errors:
 * FMT_ELIMIT (raw_len 0 or > FMT_STREAM_RAW_MAX), FMT_ECORRUPT (RAW is not
 * whole valid records, or the writer is finished), FMT_ESPACE (CAP too
 * small; fmt_stream_frame_bound(raw_len) always suffices). W is unchanged on
 * error. zstd allocates a context internally for the call. */
int fmt_stream_frame_encode(fmt_stream_writer *w, const uint8_t *raw, size_t raw_len, int level,
                            uint8_t *out, size_t cap, size_t *out_len);

/* Encode the trailer frame (the last FMT_STREAM_TRAILER_FRAME_LEN bytes of
 * the stream) with UNTIL as the highest seq covered. FMT_ECORRUPT if UNTIL
 * is below a record's seq or below the header's since, differs from a v2
 * header's until, or if the trailer was already written. */
int fmt_stream_trailer_encode(fmt_stream_writer *w, uint64_t until,
                              uint8_t out[FMT_STREAM_TRAILER_FRAME_LEN]);

/* ---- reader */

/* Decode and check the stream header at BUF[0..avail) (of any known
 * version; the header's length is fmt_stream_header_len(rd->header.version)).
 * FMT_ESHORT, FMT_ECORRUPT (magic, checksum, flags), FMT_EVERSION (newer
 * version). */
int fmt_stream_reader_init(fmt_stream_reader *rd, const uint8_t *buf, size_t avail);

/* Decode a frame header at BUF[0..avail) and check its type and lengths
 * against the limits; safe to allocate f->raw_len afterwards. FMT_ESHORT,
 * FMT_ECORRUPT (unknown type, zero or inconsistent lengths), FMT_ELIMIT. */
int fmt_stream_frame_header_decode(const uint8_t *buf, size_t avail, fmt_stream_frame *out);

/* Check a frame's payload (F->stored_len bytes at PAYLOAD) against its
 * checksum, and for a records frame that it is one zstd frame declaring
 * exactly F->raw_len bytes. Stateless; lets a caller verify before it
 * allocates the raw buffer. FMT_ECORRUPT. */
int fmt_stream_frame_verify(const fmt_stream_frame *f, const uint8_t *payload);

/* Verify a records frame, decompress it into RAW[0..cap) (cap >=
 * f->raw_len, else FMT_ESPACE) and check that it holds whole valid records;
 * counts them for the trailer check. FMT_ECORRUPT on any mismatch. */
int fmt_stream_read_records(fmt_stream_reader *rd, const fmt_stream_frame *f,
                            const uint8_t *payload, uint8_t *raw, size_t cap);

/* Iterate the records of a decompressed frame: decodes the record at *POS
 * into *OUT and advances *POS. Returns 1 for a record, 0 at the end, or a
 * FMT_E* code. OUT's pointers point into RAW. */
int fmt_stream_record_next(const uint8_t *raw, size_t len, size_t *pos, fmt_record *out);

/* Verify and decode the trailer frame and check it against everything read:
 * counts, frame count, chained checksum, until >= every seq and >= since,
 * and (v2) until equal to the header's.
 * *OUT receives the trailer. FMT_ECORRUPT on any mismatch. */
int fmt_stream_read_trailer(fmt_stream_reader *rd, const fmt_stream_frame *f,
                            const uint8_t *payload, fmt_stream_trailer *out);

/* FMT_OK once the trailer has been read and verified; FMT_ESHORT when the
 * input ended before it (a truncated stream); FMT_ECORRUPT after a failure. */
int fmt_stream_reader_finish(const fmt_stream_reader *rd);

#endif
