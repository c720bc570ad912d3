/*
 * scan.c — the one place that decides which bytes of a segment are records.
 *
 * Batches: records flagged BATCH are held back until the BATCH_END record
 * that closes them decodes; a batch cut by the end of the log or by
 * corruption is dropped whole. Corruption: the first bad record starts a
 * search for the next offset at which a whole valid record decodes; if there
 * is none the rest is the tail (torn write or preallocated zeros), otherwise
 * the bad region is counted and skipped. Everything is bounded by the
 * segment's mapped size and by the decoder's own length checks.
 */
#include "scan.h"
#include "format/segment.h"

#include <stdlib.h>
#include <string.h>

typedef struct held {
    fmt_record r;
    uint32_t off;
} held;

static bool all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        if (memcmp(p, zeros, k) != 0)
            return false;
        p += k;
        n -= k;
    }
    return true;
}

static uint64_t last_nonzero_end(const uint8_t *p, uint64_t from, uint64_t to)
{
    while (to > from && p[to - 1] == 0)
        to--;
    return to;
}

int rci_scan_segment(const segment *seg, bool tail_mode, scan_fn fn, void *ctx, scan_result *res)
{
    return rci_scan_segment_from(seg, 0, tail_mode, fn, ctx, res);
}

int rci_scan_segment_from(const segment *seg, uint64_t from, bool tail_mode, scan_fn fn, void *ctx,
                          scan_result *res)
{
    memset(res, 0, sizeof(*res));
    uint64_t size = atomic_load(&((segment *)seg)->size);
    const uint8_t *map = seg->map;
    fmt_segment_header h;
    if (!map || fmt_segment_header_decode(map, size, &h) != FMT_OK || h.segment_id != seg->id) {
        res->committed_end = 0;
        res->torn_bytes = map ? last_nonzero_end(map, 0, size) : 0;
        return 0;
    }
    res->header_ok = true;
    uint64_t off = from > FMT_SEG_HEADER_LEN ? from : FMT_SEG_HEADER_LEN;
    res->committed_end = off;
    held *batch = NULL;
    size_t nb = 0, cap = 0;
    int ret = 0;
    bool skipping_batch = false; /* resynced into the middle of a batch */
    while (off < size) {
        fmt_record r;
        int rc = fmt_record_decode(map + off, size - off, &r);
        if (rc == FMT_OK && skipping_batch) {
            if (r.flags & (FMT_REC_BATCH | FMT_REC_BATCH_END)) {
                if (r.flags & FMT_REC_BATCH_END)
                    skipping_batch = false;
                off += r.total_len;
                continue;
            }
            skipping_batch = false;
        }
        if (rc == FMT_OK) {
            if (r.flags & FMT_REC_BATCH) {
                if (nb == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    held *n = realloc(batch, nc * sizeof(*n));
                    if (!n) {
                        ret = -1;
                        break;
                    }
                    batch = n;
                    cap = nc;
                }
                batch[nb].r = r;
                batch[nb].off = (uint32_t)off;
                nb++;
                off += r.total_len;
                continue;
            }
            if (!(r.flags & FMT_REC_BATCH_END) && nb) {
                res->corrupt++; /* an unterminated batch inside the log */
                nb = 0;
            }
            /* batch framing: held records go on only with the BATCH_END
             * record that closes them */
            RCI_ASSERT(nb == 0 || (r.flags & FMT_REC_BATCH_END));
            for (size_t i = 0; i < nb && !ret; i++) {
                ret = fn(ctx, &batch[i].r, batch[i].off);
                res->records++;
                if (batch[i].r.seq > res->max_seq)
                    res->max_seq = batch[i].r.seq;
            }
            nb = 0;
            if (!ret)
                ret = fn(ctx, &r, (uint32_t)off);
            if (ret)
                break;
            res->records++;
            if (r.seq > res->max_seq)
                res->max_seq = r.seq;
            off += r.total_len;
            res->committed_end = off;
            continue;
        }
        /* a bad record at OFF: tail or corruption? */
        if (all_zero(map + off, size - off))
            break;
        size_t next = tail_mode ? size : fmt_record_resync(map, size, off);
        if (next >= size) {
            res->torn_bytes = last_nonzero_end(map, res->committed_end, size) - res->committed_end;
            break;
        }
        if (!res->corrupt++)
            res->first_bad = off;
        res->corrupt_bytes += next - off;
        nb = 0;                /* a batch interrupted by corruption is not applied... */
        skipping_batch = true; /* ...nor what follows of it */
        off = next;
    }
    RCI_ASSERT(res->committed_end <= size);
    if (!ret && nb && res->torn_bytes == 0) {
        /* the log ends inside a batch: torn */
        res->torn_bytes = last_nonzero_end(map, res->committed_end, size) - res->committed_end;
    }
    free(batch);
    return ret;
}
