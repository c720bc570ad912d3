/*
 * keydir_arena.h — the per-shard entry arena of the keydir. Private to
 * keydir.c.
 *
 * An arena is a set of chunks that never move once allocated, so a pointer
 * into one stays valid for as long as the shard lock is held. Entries are
 * bump-allocated in the current chunk, 4-byte aligned, and named by a 32-bit
 * reference ref = ((chunk << KD_ARENA_OFF_BITS) | offset / 4) + 1, so that
 * ref 0 is free to mean "empty slot" in the hash table. Freed entries are not
 * reused: they become holes, and each chunk counts its live bytes. keydir.c
 * reclaims holes by evacuation: it picks the emptiest chunks (a bounded
 * amount of live data), moves their live entries to the current chunk while
 * it scans the table, and frees them; their indices are reused. That trades
 * a bounded copy for the absence of a free list, size classes and per-entry
 * headers.
 */
#ifndef RC_KEYDIR_ARENA_H
#define RC_KEYDIR_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KD_ARENA_OFF_BITS 14u                        /* offset / 4 within a chunk */
#define KD_ARENA_CHUNK_MAX (4u << KD_ARENA_OFF_BITS) /* 64 KiB */
#define KD_ARENA_CHUNK_MIN 128u                      /* first chunk of a new shard */
#define KD_ARENA_CHUNKS_MAX ((UINT32_MAX >> KD_ARENA_OFF_BITS) - 1u) /* keeps ref+1 in 32 bits */

typedef struct kd_chunk {
    uint8_t *mem; /* NULL: a free index, reused by the next new chunk */
    uint32_t size;
    uint32_t live; /* bytes of live entries */
} kd_chunk;

typedef struct kd_arena {
    kd_chunk *chunks;    /* only this array is ever reallocated, never a chunk */
    uint32_t nchunks;    /* indices in use, free ones included */
    uint32_t chunks_cap; /* capacity of the array */
    uint32_t cur;        /* the chunk being filled (when nchunks > 0) */
    uint32_t cur_used;   /* bytes handed out from it */
    size_t chunk_bytes;  /* sum of chunk sizes */
    size_t live_bytes;   /* sum of live entry sizes */
} kd_arena;

#ifdef RC_FAULT_INJECTION
/* Test hook: the allocation after N more succeed fails once (N = 0: the very
 * next one); N < 0 disarms. Per thread. Counts every allocation the keydir
 * makes: chunks, chunk arrays, tables, evacuation scratch. */
void rci_keydir_fault_fail_alloc(long n);
bool rci_kd_alloc_should_fail(void);
#else
static inline bool rci_kd_alloc_should_fail(void)
{
    return false;
}
#endif

/* Hash tables (keydir.c) of at least KD_ARENA_CHUNK_MAX bytes come from the
 * same process-wide pool of 2 MiB huge-page regions as the full-size chunks:
 * BYTES rounded up to whole chunks, contiguous inside one region. Freeing
 * returns the chunks to the pool: no munmap, and so no TLB shootdown, per
 * rehash. A table larger than a region gets a 2 MiB-aligned mapping of its
 * own, advised for huge pages and populated at once. Zeroed; NULL on
 * ENOMEM. */
void *rci_kd_pool_alloc(size_t bytes);
void rci_kd_pool_free(void *mem, size_t bytes);
/* What rci_kd_pool_alloc(BYTES) really takes. */
size_t rci_kd_pool_bytes(size_t bytes);

/* An empty arena; allocates nothing yet. */
void rci_kd_arena_init(kd_arena *a);
/* Free every chunk; the arena is empty (and reusable) afterwards. */
void rci_kd_arena_destroy(kd_arena *a);

/* SIZE bytes (a multiple of 4, <= CHUNK_MAX); returns a ref, or 0 on ENOMEM
 * or when the shard would exceed KD_ARENA_CHUNKS_MAX chunks. */
uint32_t rci_kd_arena_alloc(kd_arena *a, uint32_t size);

static inline uint32_t kd_arena_chunk_of(uint32_t ref)
{
    return (ref - 1u) >> KD_ARENA_OFF_BITS;
}

static inline uint8_t *kd_arena_ptr(const kd_arena *a, uint32_t ref)
{
    uint32_t r = ref - 1u;
    return a->chunks[r >> KD_ARENA_OFF_BITS].mem +
           (size_t)(r & ((1u << KD_ARENA_OFF_BITS) - 1u)) * 4u;
}

/* The entry of SIZE bytes at REF is dead: it stays a hole until evacuation. */
static inline void kd_arena_release(kd_arena *a, uint32_t ref, uint32_t size)
{
    a->chunks[kd_arena_chunk_of(ref)].live -= size;
    a->live_bytes -= size;
}

/* Bytes of RAM the arena holds (chunks and the chunk array). */
static inline size_t kd_arena_bytes(const kd_arena *a)
{
    return a->chunk_bytes + (size_t)a->chunks_cap * sizeof(kd_chunk);
}

/* Bytes lost to holes: freed entries and abandoned chunk tails, not counting
 * the unused end of the current chunk (which will still be filled). */
static inline size_t kd_arena_hole_bytes(const kd_arena *a)
{
    size_t unused = a->nchunks ? a->chunks[a->cur].size - a->cur_used : 0;
    return a->chunk_bytes - a->live_bytes - unused;
}

/* Choose chunks to evacuate: those with the most holes, never the current
 * one, with at most BUDGET live bytes in all (at least one chunk if any has a
 * hole). Sets VICTIM[i] (an array of nchunks) and returns how many. */
uint32_t rci_kd_arena_pick_victims(const kd_arena *a, size_t budget, bool *victim);

/* Free chunk I, whose entries must all be dead or moved. */
void rci_kd_arena_free_chunk(kd_arena *a, uint32_t i);

#endif
