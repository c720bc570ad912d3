/*
 * scan.h — walking the records of a segment with batch framing applied.
 */
#ifndef RC_SCAN_H
#define RC_SCAN_H

#include "segment.h"
#include "format/record.h"

/* Called once per committed record, in file order; OFF is its offset. */
typedef int (*scan_fn)(void *ctx, const fmt_record *r, uint32_t off);

typedef struct scan_result {
    uint64_t committed_end; /* end of the last committed record */
    uint64_t torn_bytes;    /* non-zero bytes after committed_end that did not
                               form committed records (a torn tail) */
    uint64_t corrupt;       /* bad regions skipped before valid records */
    uint64_t corrupt_bytes; /* bytes of those regions */
    uint64_t first_bad;     /* offset of the first one (when corrupt > 0) */
    uint64_t records;       /* committed records visited */
    uint64_t max_seq;
    bool header_ok;
} scan_result;

/* Scan SEG's mapping over [header, seg->size). A batch is delivered only
 * when its BATCH_END record is reached.
 * TAIL_MODE (the segment that was being appended when the process stopped):
 * the first bad or short record ends the log — everything after it is the
 * torn tail, so the recovered state is always a prefix of what was written.
 * Otherwise (sealed segments): a bad record followed later by valid ones is
 * counted in CORRUPT and skipped by resynchronising, and records of a batch
 * that the bad region cut into are dropped up to its BATCH_END; a bad record
 * with nothing valid after it ends the scan. A non-zero return of FN stops
 * the scan and is returned. */
int rci_scan_segment(const segment *seg, bool tail_mode, scan_fn fn, void *ctx, scan_result *res);
/* The same from offset FROM (a record boundary, e.g. rci_seg_ckpt_start;
 * below the header's end means from the first record). */
int rci_scan_segment_from(const segment *seg, uint64_t from, bool tail_mode, scan_fn fn, void *ctx,
                          scan_result *res);

#endif
