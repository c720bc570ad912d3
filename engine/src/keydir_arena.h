/*
 * keydir_arena.h — the per-shard entry arena of the keydir. Private to
 * keydir.c (and its white-box test).
 *
 * An arena is a list of chunks that never move once allocated, so a pointer
 * into one stays valid for as long as the shard lock is held. Entries are
 * bump-allocated, 4-byte aligned, and named by a 32-bit reference
 * ref = ((chunk << KD_ARENA_OFF_BITS) | offset / 4) + 1, so that ref 0 is free
 * to mean "empty slot" in the hash table. Freed entries are not reused: they
 * become holes, counted in hole_bytes, and keydir.c compacts the shard (copies
 * the live entries into a fresh arena) when holes pass a quarter of the arena.
 * That trades a bounded per-shard copy for the absence of a free list, size
 * classes and per-entry headers.
 */
#ifndef RC_KEYDIR_ARENA_H
#define RC_KEYDIR_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KD_ARENA_OFF_BITS 14u                                 /* offset / 4 within a chunk */
#define KD_ARENA_CHUNK_MAX (4u << KD_ARENA_OFF_BITS)          /* 64 KiB */
#define KD_ARENA_CHUNK_MIN 128u                               /* first chunk of a new shard */
#define KD_ARENA_CHUNKS_MAX ((UINT32_MAX >> KD_ARENA_OFF_BITS) - 1u) /* keeps ref+1 in 32 bits */

typedef struct kd_arena {
    uint8_t **chunks;    /* chunk pointers; only this array is ever reallocated */
    uint32_t nchunks;    /* chunks in use; the last one is being filled */
    uint32_t chunks_cap; /* capacity of the pointer array */
    uint32_t cur_size;   /* capacity of the last chunk */
    uint32_t cur_used;   /* bytes handed out from the last chunk */
    uint32_t next_size;  /* capacity of the next chunk (doubles up to CHUNK_MAX) */
    size_t chunk_bytes;  /* sum of chunk capacities */
    size_t hole_bytes;   /* freed entries plus abandoned chunk tails */
} kd_arena;

/* An empty arena whose first chunk will hold FIRST_CHUNK bytes (rounded to 4,
 * clamped to [CHUNK_MIN, CHUNK_MAX]); allocates nothing yet. */
void kd_arena_init(kd_arena *a, size_t first_chunk);
/* Free every chunk; the arena is empty (and reusable) afterwards. */
void kd_arena_destroy(kd_arena *a);

/* SIZE bytes (a multiple of 4, <= CHUNK_MAX); returns a ref, or 0 on ENOMEM
 * or when the shard would exceed KD_ARENA_CHUNKS_MAX chunks. */
uint32_t kd_arena_alloc(kd_arena *a, uint32_t size);

/* Give back a freed entry of SIZE bytes: it stays a hole until compaction. */
static inline void kd_arena_free(kd_arena *a, uint32_t size)
{
    a->hole_bytes += size;
}

static inline uint8_t *kd_arena_ptr(const kd_arena *a, uint32_t ref)
{
    uint32_t r = ref - 1u;
    return a->chunks[r >> KD_ARENA_OFF_BITS] + (size_t)(r & ((1u << KD_ARENA_OFF_BITS) - 1u)) * 4u;
}

/* Bytes of RAM the arena holds (chunks and the pointer array). */
static inline size_t kd_arena_bytes(const kd_arena *a)
{
    return a->chunk_bytes + (size_t)a->chunks_cap * sizeof(uint8_t *);
}

/* Bytes handed out and not freed. */
static inline size_t kd_arena_live_bytes(const kd_arena *a)
{
    size_t used = a->chunk_bytes - (a->nchunks ? a->cur_size - a->cur_used : 0);
    return used - a->hole_bytes;
}

#endif
