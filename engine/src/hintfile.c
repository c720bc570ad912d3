/*
 * hintfile.c — writing and loading hint files.
 *
 * A hint is written for a segment once it is immutable (at rotation, by the
 * background thread, and at clean close for the active one): a scan of the
 * segment's committed records emits location entries (version 2: no key,
 * seq and offset delta-coded in blocks of FMT_HINT2_BLOCK entries, with an
 * index of the blocks so that a reader splits one hint across threads;
 * FORMAT.md 6) into a buffer
 * that is written through io_uring to NNNNNNNN.hint.tmp, fdatasync'ed and
 * renamed, so a hint is either whole or absent. Loading verifies the whole
 * file (trailer checksum, exact entry count) before using any entry; a bad
 * hint only costs a scan of its segment.
 */
#include "db.h"
#include "fault.h"
#include "ring.h"
#include "scan.h"
#include "format/hint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct hint_buf {
    uint8_t *p;
    size_t len, cap;
    uint64_t count;
    fmt_hint2_ctx ctx;
    uint64_t *index; /* file offset of every block's first entry */
    size_t nblocks, index_cap;
} hint_buf;

static int hint_emit(void *ctx, const fmt_record *r, uint32_t off)
{
    hint_buf *b = ctx;
    if (b->count % FMT_HINT2_BLOCK == 0) { /* a block starts: absolute seq and offset */
        if (b->nblocks == b->index_cap) {
            size_t cap = b->index_cap ? b->index_cap * 2 : 64;
            uint64_t *n = realloc(b->index, cap * sizeof(*n));
            if (!n)
                return -1;
            b->index = n;
            b->index_cap = cap;
        }
        b->index[b->nblocks++] = b->len;
        b->ctx = (fmt_hint2_ctx){0, 0};
    }
    if (b->len + FMT_HINT2_ENTRY_MAX > b->cap) {
        size_t cap = b->cap * 2;
        uint8_t *n = realloc(b->p, cap);
        if (!n)
            return -1;
        b->p = n;
        b->cap = cap;
    }
    fmt_hint_entry e = {
        .flags = (uint8_t)(r->flags & ~(FMT_REC_BATCH | FMT_REC_BATCH_END)),
        .seq = r->seq,
        .ks = r->ks,
        .expires_at_ms = r->expires_at_ms,
        .key = r->key,
        .klen = r->klen,
        .offset = off,
        .total_len = r->total_len,
    };
    size_t w = fmt_hint2_entry_encode(b->p + b->len, b->cap - b->len, &e, &b->ctx);
    if (!w)
        return -1;
    b->len += w;
    b->count++;
    return 0;
}

int rci_hint_write(rc_db *db, segment *seg)
{
    hint_buf b = {.cap = 1u << 20};
    b.p = malloc(b.cap);
    if (!b.p)
        return RC_ENOMEM;
    b.len = FMT_HINT_HEADER_LEN;
    scan_result res;
    int err = 0;
    if (rci_scan_segment(seg, false, hint_emit, &b, &res) != 0) {
        err = RC_ENOMEM;
        goto out;
    }
    if (b.len + b.nblocks * 8u + FMT_HINT_TRAILER_LEN > b.cap) {
        uint8_t *n = realloc(b.p, b.len + b.nblocks * 8u + FMT_HINT_TRAILER_LEN);
        if (!n) {
            err = RC_ENOMEM;
            goto out;
        }
        b.p = n;
    }
    for (size_t i = 0; i < b.nblocks; i++, b.len += 8u)
        fmt_put_u64(b.p + b.len, b.index[i]);
    fmt_hint_header h = {.segment_id = seg->id,
                         .covered = atomic_load(&seg->size),
                         .count = b.count,
                         .version = FMT_HINT_VERSION,
                         .block = FMT_HINT2_BLOCK};
    fmt_hint_header_encode(b.p, &h);
    fmt_put_u64(b.p + b.len, fmt_hash64(b.p, b.len));
    b.len += FMT_HINT_TRAILER_LEN;

    char tmp[48], name[32];
    rci_seg_name(name, sizeof(name), seg->id, "hint");
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int ferr = rci_fault_check(FAULT_CREATE);
    int fd = ferr ? -1 : openat(db->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ferr = ferr ? ferr : errno;
        err = rc_fail(rc_from_errno(ferr), "cannot create %s: %s", tmp, strerror(ferr));
        goto out;
    }
    ferr = rci_fault_check(FAULT_WRITE);
    if (!ferr) {
        pthread_mutex_lock(&db->ring_mu);
        int r = rci_ring_pwrite_all(rci_db_ring(db), fd, b.p, b.len, 0);
        if (!r)
            r = rci_ring_fdatasync(rci_db_ring(db), fd);
        pthread_mutex_unlock(&db->ring_mu);
        ferr = r < 0 ? -r : 0;
    }
    close(fd);
    if (!ferr && renameat(db->dir_fd, tmp, db->dir_fd, name) != 0)
        ferr = errno;
    if (!ferr && fsync(db->dir_fd) != 0)
        ferr = errno;
    if (ferr) {
        unlinkat(db->dir_fd, tmp, 0);
        err = rc_fail(rc_from_errno(ferr), "cannot write hint %s: %s", name, strerror(ferr));
        goto out;
    }
    seg->hint_bytes = b.len;
    atomic_store(&seg->has_hint, true);
out:
    free(b.index);
    free(b.p);
    return err;
}
