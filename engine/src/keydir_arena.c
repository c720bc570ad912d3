/*
 * keydir_arena.c — chunked bump allocator for keydir entries (see
 * keydir_arena.h for the reference encoding).
 *
 * Chunk sizes start small (KD_ARENA_CHUNK_MIN) and double up to 64 KiB: a
 * server may hold thousands of tiny keyspaces, each with 64 shards, so a shard
 * with two keys must not pin 64 KiB, while a shard with a million keys wants
 * few, large chunks (one malloc per 64 KiB instead of one per entry, and at
 * most one partly used chunk). An entry that does not fit in the rest of the
 * current chunk starts a new one; the abandoned tail is counted as a hole, at
 * most (largest entry / chunk size) ~ 1.6 % of a full chunk.
 */
#include "keydir_arena.h"

#include <stdlib.h>

static uint32_t clamp_chunk(size_t n)
{
    if (n < KD_ARENA_CHUNK_MIN)
        return KD_ARENA_CHUNK_MIN;
    if (n > KD_ARENA_CHUNK_MAX)
        return KD_ARENA_CHUNK_MAX;
    return (uint32_t)((n + 3u) & ~(size_t)3u);
}

void kd_arena_init(kd_arena *a, size_t first_chunk)
{
    *a = (kd_arena){.next_size = clamp_chunk(first_chunk)};
}

void kd_arena_destroy(kd_arena *a)
{
    for (uint32_t i = 0; i < a->nchunks; i++)
        free(a->chunks[i]);
    free(a->chunks);
    kd_arena_init(a, KD_ARENA_CHUNK_MIN);
}

/* Start a new chunk able to hold NEED bytes. false (and nothing changed) on
 * ENOMEM or when the reference space is exhausted. */
static bool arena_new_chunk(kd_arena *a, uint32_t need)
{
    if (a->nchunks >= KD_ARENA_CHUNKS_MAX)
        return false;
    if (a->nchunks == a->chunks_cap) {
        uint32_t cap = a->chunks_cap ? a->chunks_cap * 2u : 4u;
        if (cap > KD_ARENA_CHUNKS_MAX)
            cap = KD_ARENA_CHUNKS_MAX;
        uint8_t **chunks = realloc(a->chunks, (size_t)cap * sizeof *chunks);
        if (!chunks)
            return false;
        a->chunks = chunks;
        a->chunks_cap = cap;
    }
    uint32_t size = a->next_size > need ? a->next_size : need;
    uint8_t *chunk = malloc(size);
    if (!chunk)
        return false;
    if (a->nchunks)
        a->hole_bytes += a->cur_size - a->cur_used;
    a->chunks[a->nchunks++] = chunk;
    a->cur_size = size;
    a->cur_used = 0;
    a->chunk_bytes += size;
    a->next_size = clamp_chunk((size_t)size * 2u);
    return true;
}

uint32_t kd_arena_alloc(kd_arena *a, uint32_t size)
{
    if (a->nchunks == 0 || a->cur_size - a->cur_used < size) {
        if (!arena_new_chunk(a, size))
            return 0;
    }
    uint32_t off = a->cur_used;
    a->cur_used += size;
    return (((a->nchunks - 1u) << KD_ARENA_OFF_BITS) | (off >> 2)) + 1u;
}
