/*
 * keydir_arena.c — chunked bump allocator for keydir entries (see
 * keydir_arena.h for the reference encoding and evacuation).
 *
 * Chunk sizes start small (KD_ARENA_CHUNK_MIN) and grow with the arena, each
 * new chunk a quarter of what the arena already holds, up to 64 KiB: a server
 * may hold thousands of tiny keyspaces, each with 64 shards, so a shard with
 * two keys must not pin 64 KiB, while a shard with a million keys wants few,
 * large chunks (one malloc per 64 KiB instead of one per entry). Growing by a
 * quarter (not doubling) bounds the unused tail of the current chunk to 20 %
 * of a small arena; the ~30 chunks it takes to reach 64 KiB cost nothing. An
 * entry that does not fit in the rest of the current chunk starts a new one;
 * the abandoned tail is a hole, at most 1048 B (the largest entry) of 64 KiB.
 *
 * Full-size chunks (64 KiB) come from a process-wide pool of 2 MiB regions
 * aligned and advised for transparent huge pages (MADV_HUGEPAGE), 32 chunks
 * each; smaller chunks are malloc'd. Every first touch of a 4 KiB page is a
 * page fault, which on a virtual machine costs ~10 us (measured on the
 * project's VM: 128 MiB touched in 4 KiB faults ~420 ms, as huge pages ~9 ms),
 * and a keydir of a million keys fills ~32 MiB of chunks: ~8,000 faults, as
 * much CPU as the rest of a reopen. A region is unmapped when its last chunk
 * is freed; a freed chunk of a region still in use stays resident and is
 * handed out again first (glibc's heap keeps freed chunks the same way).
 * Where the kernel grants no huge page the region is ordinary memory.
 */
#include "keydir_arena.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define POOL_REGION (2u << 20)
#define POOL_SLOTS (POOL_REGION / KD_ARENA_CHUNK_MAX) /* 32: one bit each in a u32 */
_Static_assert(POOL_SLOTS == 32, "a region's chunks are a 32-bit mask");

typedef struct pool_region {
    uint8_t *base; /* POOL_REGION-aligned */
    uint32_t used; /* bit i: chunk i is handed out */
} pool_region;

static struct {
    pthread_mutex_t mu;
    pool_region *r; /* sorted by base */
    size_t n, cap;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint8_t *region_map(void)
{
    uint8_t *raw = mmap(NULL, 2u * POOL_REGION, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + POOL_REGION - 1) & ~(uintptr_t)(POOL_REGION - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (p + POOL_REGION < raw + 2u * POOL_REGION)
        munmap(p + POOL_REGION, (size_t)(raw + 2u * POOL_REGION - (p + POOL_REGION)));
#ifdef MADV_HUGEPAGE
    madvise(p, POOL_REGION, MADV_HUGEPAGE); /* advice: fine if refused */
#endif
    return p;
}

/* A free 64 KiB chunk (pool locked), or NULL on ENOMEM. */
static uint8_t *pool_get_locked(void)
{
    for (size_t i = pool.n; i-- > 0;) { /* the highest addresses first */
        uint32_t used = pool.r[i].used;
        if (used != UINT32_MAX) {
            unsigned slot = (unsigned)__builtin_ctz(~used);
            pool.r[i].used = used | 1u << slot;
            return pool.r[i].base + (size_t)slot * KD_ARENA_CHUNK_MAX;
        }
    }
    if (pool.n == pool.cap) {
        size_t cap = pool.cap ? pool.cap * 2 : 16;
        pool_region *r = realloc(pool.r, cap * sizeof(*r));
        if (!r)
            return NULL;
        pool.r = r;
        pool.cap = cap;
    }
    uint8_t *base = region_map();
    if (!base)
        return NULL;
    size_t at = pool.n;
    while (at > 0 && pool.r[at - 1].base > base)
        at--;
    memmove(pool.r + at + 1, pool.r + at, (pool.n - at) * sizeof(*pool.r));
    pool.r[at] = (pool_region){.base = base, .used = 1u};
    pool.n++;
    return base;
}

static void pool_put_locked(uint8_t *mem)
{
    uint8_t *base = (uint8_t *)((uintptr_t)mem & ~(uintptr_t)(POOL_REGION - 1));
    size_t lo = 0, hi = pool.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pool.r[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == pool.n || pool.r[lo].base != base)
        abort(); /* not a pool chunk: memory corruption */
    pool.r[lo].used &= ~(1u << (unsigned)((size_t)(mem - base) / KD_ARENA_CHUNK_MAX));
    if (!pool.r[lo].used) {
        munmap(base, POOL_REGION);
        memmove(pool.r + lo, pool.r + lo + 1, (pool.n - lo - 1) * sizeof(*pool.r));
        pool.n--;
    }
}

static uint8_t *chunk_alloc(uint32_t size)
{
    if (size != KD_ARENA_CHUNK_MAX)
        return malloc(size);
    pthread_mutex_lock(&pool.mu);
    uint8_t *p = pool_get_locked();
    pthread_mutex_unlock(&pool.mu);
    return p;
}

static void chunk_free(uint8_t *mem, uint32_t size)
{
    if (!mem)
        return;
    if (size != KD_ARENA_CHUNK_MAX) {
        free(mem);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool_put_locked(mem);
    pthread_mutex_unlock(&pool.mu);
}

#ifdef RC_FAULT_INJECTION
static _Thread_local long fail_countdown = -1;

void rci_keydir_fault_fail_alloc(long n)
{
    fail_countdown = n;
}

bool rci_kd_alloc_should_fail(void)
{
    if (fail_countdown < 0)
        return false;
    return fail_countdown-- == 0;
}
#endif

static uint32_t clamp_chunk(size_t n)
{
    if (n < KD_ARENA_CHUNK_MIN)
        return KD_ARENA_CHUNK_MIN;
    if (n > KD_ARENA_CHUNK_MAX)
        return KD_ARENA_CHUNK_MAX;
    return (uint32_t)((n + 3u) & ~(size_t)3u);
}

void rci_kd_arena_init(kd_arena *a)
{
    *a = (kd_arena){0};
}

void rci_kd_arena_destroy(kd_arena *a)
{
    for (uint32_t i = 0; i < a->nchunks; i++)
        chunk_free(a->chunks[i].mem, a->chunks[i].size);
    free(a->chunks);
    rci_kd_arena_init(a);
}

/* An index for a new chunk: a freed one if any, else a new one at the end.
 * UINT32_MAX on ENOMEM or when the reference space is exhausted. */
static uint32_t arena_free_index(kd_arena *a)
{
    for (uint32_t i = 0; i < a->nchunks; i++) {
        if (!a->chunks[i].mem)
            return i;
    }
    if (a->nchunks >= KD_ARENA_CHUNKS_MAX)
        return UINT32_MAX;
    if (a->nchunks == a->chunks_cap) {
        uint32_t cap = a->chunks_cap ? a->chunks_cap * 2u : 4u;
        if (cap > KD_ARENA_CHUNKS_MAX)
            cap = KD_ARENA_CHUNKS_MAX;
        kd_chunk *chunks =
            rci_kd_alloc_should_fail() ? NULL : realloc(a->chunks, (size_t)cap * sizeof *chunks);
        if (!chunks)
            return UINT32_MAX;
        a->chunks = chunks;
        a->chunks_cap = cap;
    }
    a->chunks[a->nchunks] = (kd_chunk){0};
    return a->nchunks++;
}

/* Make a new chunk able to hold NEED bytes the current one. false (and
 * nothing visible changed) on ENOMEM. */
static bool arena_new_chunk(kd_arena *a, uint32_t need)
{
    uint32_t i = arena_free_index(a);
    if (i == UINT32_MAX)
        return false;
    uint32_t size = clamp_chunk(a->chunk_bytes / 4u);
    if (size < need)
        size = need;
    uint8_t *mem = rci_kd_alloc_should_fail() ? NULL : chunk_alloc(size);
    if (!mem)
        return false; /* index I stays free (mem == NULL) for the next try */
    a->chunks[i] = (kd_chunk){.mem = mem, .size = size};
    a->cur = i;
    a->cur_used = 0;
    a->chunk_bytes += size;
    return true;
}

uint32_t rci_kd_arena_alloc(kd_arena *a, uint32_t size)
{
    if (a->nchunks == 0 || !a->chunks[a->cur].mem || a->chunks[a->cur].size - a->cur_used < size) {
        if (!arena_new_chunk(a, size))
            return 0;
    }
    uint32_t off = a->cur_used;
    a->cur_used += size;
    a->chunks[a->cur].live += size;
    a->live_bytes += size;
    return ((a->cur << KD_ARENA_OFF_BITS) | (off >> 2)) + 1u;
}

uint32_t rci_kd_arena_pick_victims(const kd_arena *a, size_t budget, bool *victim)
{
    uint32_t n = 0;
    size_t taken = 0;
    for (uint32_t i = 0; i < a->nchunks; i++)
        victim[i] = false;
    /* Repeatedly take the chunk with the largest hole fraction: O(chunks x
     * victims), fine for the few hundred chunks of a big shard. Chunks with
     * nothing live cost no budget and are all taken on the first round, so a
     * mass deletion does not turn this quadratic. */
    for (;;) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < a->nchunks; i++) {
            const kd_chunk *c = &a->chunks[i];
            if (!c->mem || victim[i] || i == a->cur || c->live == c->size)
                continue;
            if (c->live == 0) {
                victim[i] = true;
                n++;
                continue;
            }
            if (n && taken + c->live > budget)
                continue;
            /* live/size smaller than the best's: cross-multiplied. */
            if (best == UINT32_MAX ||
                (uint64_t)c->live * a->chunks[best].size < (uint64_t)a->chunks[best].live * c->size)
                best = i;
        }
        if (best == UINT32_MAX)
            return n;
        victim[best] = true;
        taken += a->chunks[best].live;
        n++;
    }
}

void rci_kd_arena_free_chunk(kd_arena *a, uint32_t i)
{
    a->chunk_bytes -= a->chunks[i].size;
    chunk_free(a->chunks[i].mem, a->chunks[i].size);
    a->chunks[i] = (kd_chunk){0};
}
