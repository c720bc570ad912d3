/*
 * segment.h — segment files (NNNNNNNN.data) and the table that gives each
 * open segment a 16-bit slot, the form in which keydir entries name it.
 */
#ifndef RC_SEGMENT_H
#define RC_SEGMENT_H

#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_SLOTS 65536u
#define SEG_GROW_STEP (8u * 1024u * 1024u) /* remap chunk of the io_uring path (log.c) */
/* The active file is preallocated in steps of its own size, from
 * SEG_PREALLOC_MIN up to SEG_PREALLOC_MAX: a new (or idle) active segment
 * holds 256 KiB of preallocation, not megabytes, and a full one at most
 * 4 MiB beyond its last record (disk use is counted in allocated blocks). */
#define SEG_PREALLOC_MIN (256u * 1024u)
#define SEG_PREALLOC_MAX (4u * 1024u * 1024u)

/* A checkpoint of a segment's sparse prefix index (backup.c): every record
 * before OFF has a seq <= MAX_BEFORE. */
typedef struct seg_ckpt {
    uint64_t max_before;
    uint64_t off;
} seg_ckpt;

#define SEG_CKPT_STEP (64u * 1024u) /* at most one checkpoint per this many bytes */

typedef struct segment {
    uint64_t id;
    uint16_t slot;
    int fd;
    uint8_t *map; /* MAP_SHARED over [0, map_len); see DIRECT */
    size_t map_len;
    bool map_of_file; /* rci_seg_open's read-only mapping of the file (pages
                         dropped from it are read again from the page cache) */
    /* The io_uring append path (append_uring.h). The active segment's map
     * is then anonymous memory in which records are encoded; a group-commit
     * leader writes [.., size) to the file through DFD (O_DIRECT), and the
     * fully written prefix is mapped from the file over the same addresses
     * (MAP_FIXED), so readers keep one pointer and the process keeps at most
     * about SEG_GROW_STEP of staged bytes. FLUSHED and REMAPPED are guarded
     * by the database's flush_mu. */
    bool direct;
    int dfd;               /* O_DIRECT descriptor of the file (-1: none) */
    uint64_t flushed;      /* bytes [0, flushed) are durable in the file */
    uint64_t remapped;     /* [0, remapped) of map is the file's mapping */
    _Atomic uint64_t size; /* end of the valid records */
    /* allocated length (active: preallocated); changed only under the
     * database's grow_mu (prepare.c), read anywhere */
    _Atomic uint64_t file_len;
    _Atomic bool prep_pending; /* the preparer was kicked for it (prepare.c) */
    _Atomic bool writable;     /* the active segment */
    uint64_t resident_from;    /* mapping path: written pages below this were
                                  dropped from the process (append_mu) */
    _Atomic uint64_t dead_bytes;
    _Atomic bool has_hint;
    _Atomic uint64_t hint_bytes;
    _Atomic uint64_t min_seq; /* lowest seq it holds (0: none yet) */
    _Atomic uint64_t max_seq;
    int64_t created_ms;                 /* from its header */
    _Atomic uint64_t kept_marker_bytes; /* tombstones/expired records merge kept */
    _Atomic bool doomed;                /* merged away: delete files when unreferenced */
    /* The sparse prefix index: checkpoints in file order, offsets and
     * max_before nondecreasing, so an incremental backup starts where every
     * earlier record is at or below its since, whatever the seq order inside
     * the segment (merge outputs and loaded segments are not in seq order).
     * Built in file order at open, by appends and full loads; once the
     * segment is published, read and extended under append_mu only. */
    seg_ckpt *ck;
    uint32_t ck_n, ck_cap;
    uint64_t ck_next;     /* no checkpoint before this offset */
    uint64_t ck_max;      /* highest seq of the records noted so far */
    uint64_t ck_last_off; /* offset of the last run noted */
    bool ck_broken;       /* out of order or out of memory: scan from the start */
    bool rec_scanned;     /* recovery's pass 1 scanned it (recovery.c) */
} segment;

/* Note a committed run of records (one record, or a whole batch) that starts
 * at OFF and whose highest seq is MAX; runs must be noted in file order. */
void rci_seg_ckpt_note(segment *seg, uint64_t off, uint64_t max);
/* Forget the index (the segment is about to be noted again from its start). */
void rci_seg_ckpt_reset(segment *seg);
/* Where a scan for records with seq > SINCE may start: a record boundary
 * before which every record's seq is <= SINCE (the header's end at worst). */
uint64_t rci_seg_ckpt_start(const segment *seg, uint64_t since);

typedef struct segment_table {
    segment **slots; /* SEG_SLOTS pointers; readers index without a lock */
    uint32_t next_free_hint;
    pthread_mutex_t mu;
} segment_table;

int rci_seg_table_init(segment_table *t);
void rci_seg_table_free(segment_table *t); /* closes every segment */
/* Give SEG a free slot; RC_ELIMIT when all are taken. */
int rci_seg_table_add(segment_table *t, segment *seg);
void rci_seg_table_remove(segment_table *t, segment *seg);
static inline segment *seg_at(segment_table *t, uint16_t slot)
{
    segment *seg = __atomic_load_n(&t->slots[slot], __ATOMIC_ACQUIRE);
    RCI_ASSERT(!seg || seg->slot == slot); /* slot N holds a segment whose slot is N */
    return seg;
}

/* "DIR/NNNNNNNN.EXT" relative name into BUF (at least 32 bytes). */
void rci_seg_name(char *buf, size_t cap, uint64_t id, const char *ext);

/* Create segment ID in DIR_FD with its header, preallocated and mapped for
 * writing up to RESERVE bytes. DIRECT: for the io_uring append path (the map
 * is anonymous, the preallocation zero-filled, the header written with
 * O_DIRECT; see segment). */
int rci_seg_create(int dir_fd, uint64_t id, uint64_t db_id, uint64_t reserve, int64_t now_ms,
                   bool direct, segment **out);
/* Direct segments: map [remapped, UPTO) (block-aligned, durable in the file)
 * from the file over the anonymous staging memory. 0 or an RC_E* code. */
int rci_seg_remap(segment *seg, uint64_t upto);
/* Open an existing segment read-only (or read-write when WRITABLE, so that
 * recovery can truncate a torn tail), mapped over its current length. */
int rci_seg_open(int dir_fd, uint64_t id, bool writable, segment **out);
/* Read-only openers: load segment ID into private memory with pread instead
 * of mapping the file. For segments without a hint, any of which may be the
 * active segment of a live writer: the writer may shrink that file (sealing
 * drops its preallocation), and pages of a shared mapping past the new end
 * would raise SIGBUS; pread just stops at the end. */
int rci_seg_open_copy(int dir_fd, uint64_t id, segment **out);
/* Make room for NEED more bytes after seg->size (active segment only; the
 * caller holds the database's grow_mu unless the segment is its alone). */
int rci_seg_reserve(segment *seg, uint64_t need);
/* Is less than half a preallocation step left after seg->size (and may the
 * file grow)? Then the preparer (prepare.c) should run rci_seg_prepare. */
bool rci_seg_wants_room(const segment *seg);
/* The preparer's step (grow_mu held): when rci_seg_wants_room, preallocate
 * one more step ahead of the writers (zero-filled on the io_uring path) and,
 * when SYNC, fdatasync it so that no group write pays its journal commit. */
int rci_seg_prepare(segment *seg, bool sync);
/* Mapping path: drop the pages of [seg->resident_from, END - KEEP) that the
 * writer filled from this process's mapping (MADV_DONTNEED), once at least
 * SEG_DROP_STEP bytes are due, so that the pages it touched do not pile up
 * in its RSS. Their bytes stay in the page cache (dirty ones are written back
 * as usual, an fdatasync still covers them) and a reader that touches one
 * again maps it back from there. No-op for direct segments. */
void rci_seg_drop_written(segment *seg, uint64_t end, uint64_t keep);
#define SEG_DROP_STEP (64u * 1024u)
/* Cut the file to seg->size (drops preallocation / a torn tail). */
int rci_seg_truncate(segment *seg);
void rci_seg_close(segment *seg);

#endif
