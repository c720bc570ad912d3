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
#define SEG_GROW_STEP (8u * 1024u * 1024u) /* preallocation step of the active file */

typedef struct segment {
    uint64_t id;
    uint16_t slot;
    int fd;
    uint8_t *map; /* MAP_SHARED over [0, map_len) */
    size_t map_len;
    _Atomic uint64_t size; /* end of the valid records */
    uint64_t file_len;     /* allocated length (active: preallocated) */
    _Atomic bool writable; /* the active segment */
    _Atomic uint64_t dead_bytes;
    _Atomic bool has_hint;
    _Atomic uint64_t hint_bytes;
    _Atomic uint64_t min_seq; /* lowest seq it holds (0: none yet) */
    _Atomic uint64_t max_seq;
    int64_t created_ms;                 /* from its header */
    _Atomic uint64_t kept_marker_bytes; /* tombstones/expired records merge kept */
    _Atomic bool doomed;                /* merged away: delete files when unreferenced */
} segment;

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
 * writing up to RESERVE bytes. */
int rci_seg_create(int dir_fd, uint64_t id, uint64_t db_id, uint64_t reserve, int64_t now_ms,
                   segment **out);
/* Open an existing segment read-only (or read-write when WRITABLE, so that
 * recovery can truncate a torn tail), mapped over its current length. */
int rci_seg_open(int dir_fd, uint64_t id, bool writable, segment **out);
/* Read-only openers: load segment ID into private memory with pread instead
 * of mapping the file. For segments without a hint, any of which may be the
 * active segment of a live writer: the writer may shrink that file (sealing
 * drops its preallocation), and pages of a shared mapping past the new end
 * would raise SIGBUS; pread just stops at the end. */
int rci_seg_open_copy(int dir_fd, uint64_t id, segment **out);
/* Make room for NEED more bytes after seg->size (active segment only). */
int rci_seg_reserve(segment *seg, uint64_t need);
/* Cut the file to seg->size (drops preallocation / a torn tail). */
int rci_seg_truncate(segment *seg);
void rci_seg_close(segment *seg);

#endif
