/*
 * keydir.c — the in-memory hash index of one keyspace (contract in keydir.h).
 *
 * Layout. 64 shards, picked by the top 6 bits of the key's XXH3 hash, each
 * with its own rwlock, table and arena (keydir_arena.c). The table is open
 * addressing with linear probing over 16-byte slots (keydir_entry.h): tag
 * (the hash's low 32 bits), arena reference (0 meaning empty), and the
 * record's location and key length, so that a reader finds the record from
 * the slot alone (rci_keydir_peek) and never touches the entry. The home
 * slot is fastrange(tag, cap) = tag * cap >> 32, so the capacity need not be
 * a power of two. A rehash reads only the stored tags, never the keys,
 * so growing a shard touches one table and no entry. Deletion is
 * backward-shift (no tombstones), so probe runs stay as short as the load
 * allows and no cleanup pass exists. A 32-bit tag makes a false tag match,
 * and thus a wasted key compare, rare (~1 in 4e9 per probed slot).
 *
 * Growth is 1.25x at 0.85 load, so the load stays within 0.68..0.85 (slot
 * cost 16 B / load = 18.8..23.5 B per key). With 1.5x the load would fall to
 * 0.57 after each growth (28 B per key) and a keyspace that happens to sit
 * just past a growth would miss the memory target; the price of 1.25x is
 * that growth moves each key ~4 times over the table's life instead of ~2
 * (cheap: slots only) and linear-probing misses at 0.85 scan ~20 slots
 * (five cache lines, adjacent).
 *
 * Entries (keydir_entry.h) are packed in the arena: 8 B + key (seq), 16 B +
 * key with an expiry. An overwrite rewrites the slot and entry in place
 * unless the expiry appears or disappears, which changes the entry's size:
 * then it is copied to a new entry and the old one becomes a hole.
 *
 * Memory. With 16-byte keys a key costs 24 B of entry + 18.8..23.5 B of slot
 * + ~1 B of chunk slack, i.e. 28..33 B beyond the key bytes (the 8-byte slots
 * with the location in the entry cost 26..29 B, but every read paid a cache
 * miss for the entry). Holes left by deletes and resizes are reclaimed by evacuation once
 * they pass 25 % of the shard's arena: each step moves the live entries of
 * the emptiest chunks (<= 256 KiB of them) to the current chunk and frees
 * those chunks, one step per mutating call until holes are back under 25 %.
 * The table shrinks when its load falls under 0.25, and an emptied shard
 * frees everything, so a keyspace that expires returns its memory. An empty
 * keydir is the 8 KiB shard array. Tables of 64 KiB and more are not
 * malloc'ed (a freed one would leave a hole in the heap that no 64 KiB arena
 * chunk fits; measured: +5 B per key of RSS) but taken from the arenas' pool
 * of 2 MiB huge-page regions as runs of whole 64 KiB chunks (keydir_arena.c),
 * and the table uses every slot of its run. Until 2026-12-06 each table was
 * a mapping of its own, and the munmap after every rehash cost a TLB
 * shootdown on each CPU running a thread of the process (5 % of a
 * fillrandom's samples on this VM); a freed run now goes back to the pool
 * and is reused by the next table or chunk (past a bound on idle chunks its
 * pages are returned to the kernel). Tables above 2 MiB (shards of more than
 * ~110k keys) still get a mapping of their own, 2 MiB-aligned for huge pages.
 *
 * Pauses. Growth and shrinking are stop-the-shard rehashes under the shard's
 * write lock, O(shard size): ~11 ns of CPU per key of the shard (1.7 ms at
 * 10M keys, measured by keydir_bench in thread CPU time). That bounds the
 * pause without the complexity of incremental rehashing (two live tables,
 * every lookup probing both), at the cost of pauses growing with the
 * keyspace: past ~20M keys in one keyspace they exceed a few ms, and an
 * incremental resize becomes worth its complexity. An evacuation step costs
 * one sequential pass over the table plus a bounded copy (0.5-0.8 ms at 10M
 * keys); copying the whole shard arena at once cost 5-8 ms there.
 *
 * Locks are glibc writer-preferring rwlocks, so a steady stream of readers
 * cannot starve the writer thread; the price is that a thread must never
 * take a read lock on a shard it already holds.
 */
#include "keydir.h"
#include "check.h"

#include "fmt.h"
#include "keydir_arena.h"
#include "keydir_entry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#define KEYDIR_ALIGN 64 /* shards start on cache lines: no false sharing of locks */

#define TABLE_MIN_CAP 4u
#define TABLE_MMAP_BYTES (64u * 1024u) /* see "Memory" above */
#define EVACUATE_BUDGET (256u * 1024u) /* live bytes moved per step (~0.5 ms) */
#define EVACUATE_MIN_HOLES 512u        /* less is not worth a pass over the table */

typedef struct kd_shard {
    _Alignas(KEYDIR_ALIGN) pthread_rwlock_t lock;
    kd_slot *slots;
    uint32_t cap;     /* slots in the table; 0 until the first insert */
    uint32_t grow_at; /* count above which the table grows (0.85 * cap) */
    /* Written under the write lock, read without it by keydir_count & co. */
    _Atomic uint32_t count;
    _Atomic uint32_t ttl_count;
    _Atomic size_t mem; /* table + arena bytes */
    kd_arena arena;
} kd_shard;

struct keydir {
    kd_shard shards[KEYDIR_SHARDS];
};

/* ---- slots ---- */

static inline uint32_t slot_home(uint32_t tag, uint32_t cap)
{
    return (uint32_t)(((uint64_t)tag * cap) >> 32);
}
static inline uint32_t slot_next(uint32_t i, uint32_t cap)
{
    return i + 1u == cap ? 0 : i + 1u;
}

static inline bool same_place(const kd_loc *a, const kd_loc *b)
{
    return a->seg == b->seg && a->off == b->off && a->seq == b->seq;
}

static inline bool key_len_ok(size_t klen)
{
    return klen >= 1 && klen <= FMT_KEY_MAX;
}

/* ---- shard counters (one writer under the lock, lock-free readers) ---- */

static inline uint32_t count_get(const kd_shard *s)
{
    return atomic_load_explicit(&s->count, memory_order_relaxed);
}
static inline void count_add(_Atomic uint32_t *c, int delta)
{
    uint32_t v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + (uint32_t)delta, memory_order_relaxed);
}

static size_t table_bytes(uint32_t cap)
{
    size_t bytes = (size_t)cap * sizeof(kd_slot);
    return bytes >= TABLE_MMAP_BYTES ? rci_kd_pool_bytes(bytes) : bytes;
}

/* A table of at least NEWCAP slots: a pooled table gets every slot of the
 * memory it takes anyway (its chunks are whole), which only lowers the load. */
static uint32_t table_cap_for(uint32_t newcap)
{
    size_t bytes = (size_t)newcap * sizeof(kd_slot);
    if (bytes < TABLE_MMAP_BYTES)
        return newcap;
    size_t cap = rci_kd_pool_bytes(bytes) / sizeof(kd_slot);
    return cap > UINT32_MAX ? newcap : (uint32_t)cap;
}

static void shard_publish_mem(kd_shard *s)
{
    size_t mem = table_bytes(s->cap) + kd_arena_bytes(&s->arena);
    atomic_store_explicit(&s->mem, mem, memory_order_relaxed);
}

/* ---- table ---- */

static kd_slot *table_alloc(uint32_t cap)
{
    size_t bytes = (size_t)cap * sizeof(kd_slot);
    if (rci_kd_alloc_should_fail())
        return NULL;
    if (bytes >= TABLE_MMAP_BYTES)
        return rci_kd_pool_alloc(bytes); /* see "Memory" above */
    return calloc(cap, sizeof(kd_slot));
}

static void table_free(kd_slot *slots, uint32_t cap)
{
    size_t bytes = (size_t)cap * sizeof(kd_slot);
    if (bytes >= TABLE_MMAP_BYTES)
        rci_kd_pool_free(slots, bytes);
    else
        free(slots);
}

/* Move every slot into a fresh table of NEWCAP slots, by tag alone. */
static int shard_rehash(kd_shard *s, uint32_t newcap)
{
    newcap = table_cap_for(newcap);
    kd_slot *slots = table_alloc(newcap);
    if (!slots)
        return -1;
    for (uint32_t i = 0; i < s->cap; i++) {
        const kd_slot *v = &s->slots[i];
        if (!v->ref)
            continue;
        uint32_t j = slot_home(v->tag, newcap);
        while (slots[j].ref)
            j = slot_next(j, newcap);
        slots[j] = *v;
    }
    table_free(s->slots, s->cap);
    s->slots = slots;
    s->cap = newcap;
    s->grow_at = (uint32_t)((uint64_t)newcap * 17u / 20u);
    shard_publish_mem(s);
    return 0;
}

/* Find KEY: true with *POS at its slot, or false with *POS at the empty slot
 * that ends its probe run (where an insert goes). The table must exist. */
static bool shard_locate(const kd_shard *s, uint32_t tag, const void *key, size_t klen,
                         uint32_t *pos)
{
    uint32_t i = slot_home(tag, s->cap);
    for (;;) {
        const kd_slot *v = &s->slots[i];
        if (!v->ref) {
            *pos = i;
            return false;
        }
        if (v->tag == tag && kf_klen(v->kf) == klen) {
            uint8_t *e = kd_arena_ptr(&s->arena, v->ref);
            if (memcmp(ent_key(e, v->kf), key, klen) == 0) {
                *pos = i;
                return true;
            }
        }
        i = slot_next(i, s->cap);
    }
}

static inline bool shard_find(const kd_shard *s, uint64_t hash, const void *key, size_t klen,
                              uint32_t *pos)
{
    return s->cap && key_len_ok(klen) && shard_locate(s, (uint32_t)hash, key, klen, pos);
}

static inline uint8_t *shard_entry(const kd_shard *s, uint32_t pos)
{
    return kd_arena_ptr(&s->arena, s->slots[pos].ref);
}

static inline void shard_read(const kd_shard *s, uint32_t pos, kd_loc *out)
{
    ent_read(&s->slots[pos], shard_entry(s, pos), out);
}

/* Backward-shift deletion: empty slot I, then pull each later member of the
 * run back into the gap unless that would move it before its home slot. */
static void table_delete_at(kd_shard *s, uint32_t i)
{
    uint32_t cap = s->cap;
    for (uint32_t j = slot_next(i, cap);; j = slot_next(j, cap)) {
        const kd_slot *v = &s->slots[j];
        if (!v->ref)
            break;
        uint32_t h = slot_home(v->tag, cap);
        /* V may stay only if its home lies in the cyclic interval (i, j]. */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            s->slots[i] = *v;
            i = j;
        }
    }
    s->slots[i] = (kd_slot){0};
}

/* ---- arena evacuation ---- */

/* One bounded step of arena compaction: pick the chunks with the most holes
 * (at most EVACUATE_BUDGET live bytes), move their live entries to the
 * current chunk during one pass over the table, free them. The pass reads
 * the whole table (sequentially) but copies only the victims' entries, so a
 * step costs O(table) + O(budget), not O(arena). Best effort: on ENOMEM the
 * entries moved so far stay moved and the victims not emptied are kept. */
static void shard_evacuate(kd_shard *s)
{
    kd_arena *a = &s->arena;
    uint32_t nchunks = a->nchunks; /* chunks made during the pass get no flag */
    /* victim[c + 1] flags chunk c; victim[0], the "chunk" of ref 0 (an empty
     * slot), is false: one mostly-false, well-predicted test per slot. */
    bool *victim = rci_kd_alloc_should_fail() ? NULL : malloc((size_t)nchunks + 1u);
    if (!victim)
        return;
    victim[0] = false;
    if (rci_kd_arena_pick_victims(a, EVACUATE_BUDGET, victim + 1) == 0)
        goto done;
    /* The victims' entries are met in table order, i.e. at random: pull the
     * victims (<= EVACUATE_BUDGET + their holes) into the cache in
     * sequential order first: a step costs ~30 % less. */
    for (uint32_t c = 0; c < nchunks; c++) {
        for (uint32_t off = 0; victim[c + 1] && off < a->chunks[c].size; off += 64u)
            __builtin_prefetch(a->chunks[c].mem + off);
    }
    for (uint32_t i = 0; i < s->cap; i++) {
        kd_slot *v = &s->slots[i];
        uint32_t flag = (v->ref + (1u << KD_ARENA_OFF_BITS) - 1u) >> KD_ARENA_OFF_BITS;
        /* flag > nchunks: an entry this pass already moved to a new chunk. */
        if (flag > nchunks || !victim[flag])
            continue;
        uint32_t ref = v->ref;
        const uint8_t *e = kd_arena_ptr(a, ref);
        uint32_t size = slot_ent_size(v);
        uint32_t nref = rci_kd_arena_alloc(a, size);
        if (!nref)
            break;
        memcpy(kd_arena_ptr(a, nref), e, size);
        kd_arena_release(a, ref, size);
        v->ref = nref;
    }
    for (uint32_t c = 0; c < nchunks; c++) {
        if (victim[c + 1] && a->chunks[c].live == 0)
            rci_kd_arena_free_chunk(a, c);
    }
done:
    free(victim);
}

/* After entries were freed: reclaim what the shard no longer needs. */
static void shard_tidy(kd_shard *s)
{
    uint32_t count = count_get(s);
    if (count == 0) {
        table_free(s->slots, s->cap);
        s->slots = NULL;
        s->cap = 0;
        s->grow_at = 0;
        rci_kd_arena_destroy(&s->arena);
    } else {
        if (s->cap > TABLE_MIN_CAP && count < s->cap / 4u) {
            uint32_t newcap = count + count * 2u / 3u + 1u; /* load 0.6 */
            (void)shard_rehash(s, newcap < TABLE_MIN_CAP ? TABLE_MIN_CAP : newcap);
        }
        size_t holes = kd_arena_hole_bytes(&s->arena);
        if (holes >= EVACUATE_MIN_HOLES && holes > s->arena.chunk_bytes / 4u)
            shard_evacuate(s);
    }
    shard_publish_mem(s);
}

/* ---- mutations (shard write-locked) ---- */

/* Insert an absent key whose probe run ends at POS. */
static int shard_insert(kd_shard *s, uint32_t tag, const void *key, size_t klen, const kd_loc *loc,
                        uint32_t pos)
{
    if (count_get(s) + 1u > s->grow_at) {
        uint32_t newcap = s->cap < TABLE_MIN_CAP ? TABLE_MIN_CAP : s->cap + s->cap / 4u;
        if (newcap <= s->cap || shard_rehash(s, newcap))
            return -1;
        pos = slot_home(tag, s->cap);
        while (s->slots[pos].ref)
            pos = slot_next(pos, s->cap);
    }
    uint32_t ref = rci_kd_arena_alloc(&s->arena, entry_size(klen, loc->expires_at_ms != 0));
    if (!ref) {
        shard_publish_mem(s);
        return -1;
    }
    kd_slot *sl = &s->slots[pos];
    sl->tag = tag;
    ent_init(sl, ref, kd_arena_ptr(&s->arena, ref), key, klen, loc);
    count_add(&s->count, 1);
    if (loc->expires_at_ms)
        count_add(&s->ttl_count, 1);
    shard_publish_mem(s);
    return 0;
}

/* Point the entry in slot POS at LOC, in place unless the entry must gain or
 * lose its expiry field. -1 on ENOMEM, nothing changed. */
static int shard_update(kd_shard *s, uint32_t pos, const kd_loc *loc)
{
    kd_slot *sl = &s->slots[pos];
    uint8_t *e = shard_entry(s, pos);
    bool had = kf_expiry(sl->kf), want = loc->expires_at_ms != 0;
    if (had == want) {
        ent_write(sl, e, loc);
        return 0;
    }
    size_t klen = kf_klen(sl->kf);
    uint32_t ref = rci_kd_arena_alloc(&s->arena, entry_size(klen, want));
    if (!ref) {
        shard_publish_mem(s);
        return -1;
    }
    /* E stays valid: chunks never move, only the chunk pointer array does. */
    uint32_t old_ref = sl->ref, old_size = slot_ent_size(sl);
    const uint8_t *old_key = ent_key(e, sl->kf);
    ent_init(sl, ref, kd_arena_ptr(&s->arena, ref), old_key, klen, loc);
    kd_arena_release(&s->arena, old_ref, old_size);
    count_add(&s->ttl_count, want ? 1 : -1);
    shard_tidy(s);
    return 0;
}

static void shard_remove_at(kd_shard *s, uint32_t pos)
{
    const kd_slot *sl = &s->slots[pos];
    if (kf_expiry(sl->kf))
        count_add(&s->ttl_count, -1);
    kd_arena_release(&s->arena, sl->ref, slot_ent_size(sl));
    table_delete_at(s, pos);
    count_add(&s->count, -1);
    shard_tidy(s);
}

/* ---- public API ---- */

keydir *rci_keydir_new(void)
{
    keydir *kd = rci_kd_alloc_should_fail() ? NULL : aligned_alloc(KEYDIR_ALIGN, sizeof *kd);
    if (!kd)
        return NULL;
    memset(kd, 0, sizeof *kd);
    pthread_rwlockattr_t attr;
    if (pthread_rwlockattr_init(&attr))
        goto fail_attr;
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    unsigned i;
    for (i = 0; i < KEYDIR_SHARDS; i++) {
        kd_shard *s = &kd->shards[i];
        if (pthread_rwlock_init(&s->lock, &attr))
            goto fail_locks;
        rci_kd_arena_init(&s->arena);
    }
    pthread_rwlockattr_destroy(&attr);
    return kd;
fail_locks:
    while (i--)
        pthread_rwlock_destroy(&kd->shards[i].lock);
    pthread_rwlockattr_destroy(&attr);
fail_attr:
    free(kd);
    return NULL;
}

void rci_keydir_free(keydir *kd)
{
    if (!kd)
        return;
    for (unsigned i = 0; i < KEYDIR_SHARDS; i++) {
        kd_shard *s = &kd->shards[i];
        table_free(s->slots, s->cap);
        rci_kd_arena_destroy(&s->arena);
        pthread_rwlock_destroy(&s->lock);
    }
    free(kd);
}

#ifdef RC_FAULT_INJECTION
static atomic_bool weak_hash;

void rc_fault_weak_hash(bool on)
{
    atomic_store(&weak_hash, on);
}
#endif

uint64_t rci_keydir_hash(const void *key, size_t klen)
{
    uint64_t h = XXH3_64bits(key, klen);
#ifdef RC_FAULT_INJECTION
    if (atomic_load_explicit(&weak_hash, memory_order_relaxed))
        h &= 0x00ffffff00000000ull; /* shard 0, tag 0: every key collides */
#endif
    return h;
}

void rci_keydir_rdlock(keydir *kd, unsigned shard)
{
    RCI_LOCKING(RANK_KEYDIR_SHARD, shard);
    pthread_rwlock_rdlock(&kd->shards[shard].lock);
}
void rci_keydir_wrlock(keydir *kd, unsigned shard)
{
    RCI_LOCKING(RANK_KEYDIR_SHARD, shard);
    pthread_rwlock_wrlock(&kd->shards[shard].lock);
}
void rci_keydir_unlock(keydir *kd, unsigned shard)
{
    pthread_rwlock_unlock(&kd->shards[shard].lock);
    RCI_UNLOCKED(RANK_KEYDIR_SHARD, shard);
}

bool rci_keydir_find(keydir *kd, uint64_t hash, const void *key, size_t klen, kd_loc *out)
{
    const kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    uint32_t pos;
    if (!shard_find(s, hash, key, klen, &pos))
        return false;
    if (out)
        shard_read(s, pos, out);
    return true;
}

int rci_keydir_peek(keydir *kd, uint64_t hash, size_t klen, kd_loc *out)
{
    const kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    if (!s->cap || !key_len_ok(klen))
        return KD_PEEK_ABSENT;
    uint32_t tag = (uint32_t)hash;
    for (uint32_t i = slot_home(tag, s->cap);; i = slot_next(i, s->cap)) {
        const kd_slot *v = &s->slots[i];
        if (!v->ref)
            return KD_PEEK_ABSENT;
        if (v->tag == tag && kf_klen(v->kf) == klen) {
            *out = (kd_loc){.seg = v->seg, .off = v->off};
            return KD_PEEK_CANDIDATE;
        }
    }
}

void rci_keydir_find_many(keydir *kd, size_t n, const uint64_t *hash, const uint8_t *const *key,
                          const size_t *klen, kd_loc *out, bool *found)
{
    for (size_t i = 0; i < n; i++) {
        const kd_shard *s = &kd->shards[keydir_shard_of(hash[i])];
        if (s->cap)
            __builtin_prefetch(&s->slots[slot_home((uint32_t)hash[i], s->cap)]);
    }
    for (size_t i = 0; i < n; i++) {
        const kd_shard *s = &kd->shards[keydir_shard_of(hash[i])];
        if (!s->cap)
            continue;
        uint32_t tag = (uint32_t)hash[i], j = slot_home(tag, s->cap);
        for (unsigned probe = 0; probe < 4; probe++, j = slot_next(j, s->cap)) {
            const kd_slot *v = &s->slots[j];
            if (!v->ref)
                break;
            if (v->tag == tag) {
                __builtin_prefetch(kd_arena_ptr(&s->arena, v->ref));
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        found[i] = rci_keydir_find(kd, hash[i], key[i], klen[i], &out[i]);
}

/* keydir_put and keydir_put_if_newer: ONLY_IF_NEWER keeps a present entry
 * whose seq is higher or equal. */
static int upsert(keydir *kd, uint64_t hash, const void *key, size_t klen, const kd_loc *loc,
                  bool only_if_newer, bool *replaced, kd_loc *old, bool *had_old)
{
    kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    uint32_t tag = (uint32_t)hash, pos = 0;
    if (replaced)
        *replaced = false;
    if (had_old)
        *had_old = false;
    if (!key_len_ok(klen))
        return -1;
    if (s->cap && shard_locate(s, tag, key, klen, &pos)) {
        kd_loc prev;
        shard_read(s, pos, &prev);
        bool wins = !only_if_newer || loc->seq > prev.seq;
        if (wins && shard_update(s, pos, loc))
            return -1;
        if (replaced)
            *replaced = wins;
        if (old)
            *old = prev;
        if (had_old)
            *had_old = true;
        return 0;
    }
    if (shard_insert(s, tag, key, klen, loc, pos))
        return -1;
    if (replaced)
        *replaced = true;
    return 0;
}

int rci_keydir_put(keydir *kd, uint64_t hash, const void *key, size_t klen, const kd_loc *loc,
                   kd_loc *old, bool *had_old)
{
    return upsert(kd, hash, key, klen, loc, false, NULL, old, had_old);
}

int rci_keydir_put_if_newer(keydir *kd, uint64_t hash, const void *key, size_t klen,
                            const kd_loc *loc, bool *replaced, kd_loc *old, bool *had_old)
{
    return upsert(kd, hash, key, klen, loc, true, replaced, old, had_old);
}

bool rci_keydir_remove(keydir *kd, uint64_t hash, const void *key, size_t klen, kd_loc *old)
{
    kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    uint32_t pos;
    if (!shard_find(s, hash, key, klen, &pos))
        return false;
    if (old)
        shard_read(s, pos, old);
    shard_remove_at(s, pos);
    return true;
}

bool rci_keydir_repoint(keydir *kd, uint64_t hash, const void *key, size_t klen,
                        const kd_loc *expect, const kd_loc *newloc)
{
    kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    uint32_t pos;
    kd_loc cur;
    if (!shard_find(s, hash, key, klen, &pos))
        return false;
    shard_read(s, pos, &cur);
    if (!same_place(&cur, expect))
        return false;
    /* Merge copies a record with its expiry, so the expiry cannot really
     * change here; should it, and the resize hit ENOMEM, repoint anyway and
     * keep the old expiry: answering "raced" would let merge delete the
     * segment the key still points into. */
    if (shard_update(s, pos, newloc))
        ent_write_place(&s->slots[pos], shard_entry(s, pos), newloc);
    return true;
}

bool rci_keydir_remove_if(keydir *kd, uint64_t hash, const void *key, size_t klen,
                          const kd_loc *expect)
{
    kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    uint32_t pos;
    kd_loc cur;
    if (!shard_find(s, hash, key, klen, &pos))
        return false;
    shard_read(s, pos, &cur);
    if (!same_place(&cur, expect))
        return false;
    shard_remove_at(s, pos);
    return true;
}

static int visit_slot(const kd_shard *s, uint32_t i, keydir_visit_fn fn, void *ctx)
{
    const kd_slot *sl = &s->slots[i];
    if (!sl->ref)
        return 0;
    uint8_t *e = kd_arena_ptr(&s->arena, sl->ref);
    kd_loc loc;
    ent_read(sl, e, &loc);
    return fn(ctx, ent_key(e, sl->kf), kf_klen(sl->kf), &loc);
}

int rci_keydir_shard_foreach(keydir *kd, unsigned shard, keydir_visit_fn fn, void *ctx)
{
    const kd_shard *s = &kd->shards[shard];
    for (uint32_t i = 0; i < s->cap; i++) {
        int rc = visit_slot(s, i, fn, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

bool rci_keydir_shard_scan_step(keydir *kd, unsigned shard, size_t *cursor, size_t budget,
                                keydir_visit_fn fn, void *ctx)
{
    const kd_shard *s = &kd->shards[shard];
    size_t i = *cursor;
    /* A cursor past the end (the table shrank or was freed) is a wrap. */
    size_t end = i < s->cap && budget < s->cap - i ? i + budget : s->cap;
    while (i < end) {
        if (visit_slot(s, (uint32_t)i++, fn, ctx))
            break;
    }
    if (i >= s->cap) {
        *cursor = 0;
        return true;
    }
    *cursor = i;
    return false;
}

void rci_keydir_prefetch(keydir *kd, uint64_t hash)
{
    const kd_shard *s = &kd->shards[keydir_shard_of(hash)];
    if (s->cap)
        __builtin_prefetch(&s->slots[slot_home((uint32_t)hash, s->cap)]);
}

int rci_keydir_reserve(keydir *kd, size_t n)
{
    /* a hash spreads keys over the shards within a few per cent */
    uint64_t per = n / KEYDIR_SHARDS + n / (KEYDIR_SHARDS * 16) + 16;
    uint64_t cap = per * 20u / 17u + 1;
    if (cap > UINT32_MAX / 2)
        return -1;
    int err = 0;
    for (unsigned i = 0; i < KEYDIR_SHARDS && !err; i++) {
        rci_keydir_wrlock(kd, i);
        kd_shard *s = &kd->shards[i];
        if (cap > s->cap)
            err = shard_rehash(s, (uint32_t)cap);
        rci_keydir_unlock(kd, i);
    }
    return err;
}

int rci_keydir_shard_reserve(keydir *kd, unsigned shard, size_t more)
{
    kd_shard *s = &kd->shards[shard];
    uint64_t want = (uint64_t)count_get(s) + more;
    uint64_t cap = want * 20u / 17u + 1;
    if (cap > UINT32_MAX / 2)
        return -1;
    if (cap <= s->cap || want <= s->grow_at)
        return 0;
    return shard_rehash(s, cap < TABLE_MIN_CAP ? TABLE_MIN_CAP : (uint32_t)cap);
}

void rci_keydir_shard_trim(keydir *kd, unsigned shard)
{
    kd_shard *s = &kd->shards[shard];
    uint32_t count = count_get(s);
    /* below the 0.68 that growth leaves: back to 0.75 */
    if (count && s->cap > TABLE_MIN_CAP && (uint64_t)count * 25u < (uint64_t)s->cap * 17u) {
        uint64_t cap = (uint64_t)count * 4u / 3u + 1u;
        (void)shard_rehash(s, cap < TABLE_MIN_CAP ? TABLE_MIN_CAP : (uint32_t)cap);
    }
}

size_t rci_keydir_shard_count(keydir *kd, unsigned shard)
{
    return count_get(&kd->shards[shard]);
}

size_t rci_keydir_count(keydir *kd)
{
    size_t n = 0;
    for (unsigned i = 0; i < KEYDIR_SHARDS; i++)
        n += count_get(&kd->shards[i]);
    return n;
}

size_t rci_keydir_ttl_count(keydir *kd)
{
    size_t n = 0;
    for (unsigned i = 0; i < KEYDIR_SHARDS; i++)
        n += atomic_load_explicit(&kd->shards[i].ttl_count, memory_order_relaxed);
    return n;
}

size_t rci_keydir_bytes(keydir *kd)
{
    size_t n = sizeof *kd;
    for (unsigned i = 0; i < KEYDIR_SHARDS; i++)
        n += atomic_load_explicit(&kd->shards[i].mem, memory_order_relaxed);
    return n;
}
