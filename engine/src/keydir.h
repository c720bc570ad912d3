/*
 * keydir.h — the in-memory index of one keyspace: key -> location of the
 * newest record. Internal to the engine.
 *
 * A keydir is split into KEYDIR_SHARDS shards chosen by the top bits of the
 * key's 64-bit XXH3 hash. Each shard has a pthread rwlock, an open-addressing
 * table of 16-byte slots (32-bit hash tag, 32-bit arena reference, the
 * record's 32-bit offset and 16-bit segment slot, 16-bit klen|flags) and an
 * arena of packed entries {u64 seq, [i64 expiry], key bytes}. Target: about
 * 32 bytes per key beyond the key bytes, measured by RSS. A shard grows by rehashing only its own
 * table (using the stored tags, never touching keys), so a pause is bounded by the shard size.
 *
 * Locking is the caller's: every function that takes a SHARD index expects
 * the caller to hold that shard's lock (read lock for lookups and iteration,
 * write lock for changes), which lets the engine lock several shards at once
 * (atomic batch visibility) in ascending shard order.
 */
#ifndef RC_KEYDIR_H
#define RC_KEYDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYDIR_SHARDS 64u

/* Where a key's newest record is. */
typedef struct kd_loc {
    uint16_t seg;          /* segment slot (engine's segment table index) */
    uint32_t off;          /* byte offset of the record in the segment */
    uint64_t seq;          /* sequence number of the record */
    int64_t expires_at_ms; /* 0 = no expiry (stored only when non-zero) */
} kd_loc;

typedef struct keydir keydir;

/* A new empty keydir; NULL on ENOMEM. Free with keydir_free. */
keydir *rci_keydir_new(void);
void rci_keydir_free(keydir *kd);

/* XXH3-64 of the key; pass it to every call for that key. */
uint64_t rci_keydir_hash(const void *key, size_t klen);
/* The shard a hash lives in. */
static inline unsigned keydir_shard_of(uint64_t hash)
{
    return (unsigned)(hash >> 58); /* top 6 bits: 64 shards */
}

/* The rwlocks prefer writers, so readers cannot starve the writer thread;
 * hence a thread must never lock a shard it already holds, not even for
 * reading (it would deadlock behind a waiting writer). */
void rci_keydir_rdlock(keydir *kd, unsigned shard);
void rci_keydir_wrlock(keydir *kd, unsigned shard);
void rci_keydir_unlock(keydir *kd, unsigned shard);

/* Look KEY up (shard read- or write-locked). true and *OUT filled if found.
 * Output pointers of every function here may be NULL when not wanted. */
bool rci_keydir_find(keydir *kd, uint64_t hash, const void *key, size_t klen, kd_loc *out);

/* Readers' lookup (shard read- or write-locked) that never touches an
 * entry: the first slot of KEY's probe run with KEY's tag and length.
 * KD_PEEK_ABSENT: no slot has them, so KEY is absent. KD_PEEK_CANDIDATE:
 * OUT->seg and OUT->off are that slot's location (OUT->seq is 0 and
 * OUT->expires_at_ms 0, even for a key with an expiry: the record holds
 * the same expiry, checksummed); it is KEY's location only if the record
 * there holds KEY (tags collide 1 in 2^32 per probed slot), which the
 * caller checks in the record, falling back to rci_keydir_find when it
 * does not. */
enum { KD_PEEK_ABSENT, KD_PEEK_CANDIDATE };
int rci_keydir_peek(keydir *kd, uint64_t hash, size_t klen, kd_loc *out);

/* Look N keys up at once, each key's shard read- or write-locked by the
 * caller: FOUND[i] and OUT[i] as rci_keydir_find for KEY[i] of KLEN[i] bytes
 * with hash HASH[i]. The same answers as N calls, with the lookups' cache
 * misses overlapped: every key's home slot is prefetched first, then the
 * entry its tag points at, then the keys are compared (a listing's page of
 * keys costs about one memory latency instead of two per key). */
void rci_keydir_find_many(keydir *kd, size_t n, const uint64_t *hash, const uint8_t *const *key,
                          const size_t *klen, kd_loc *out, bool *found);

/* Insert or replace KEY's location (shard write-locked). If the key was
 * present, *OLD receives its previous location and *HAD_OLD is true.
 * Returns 0 or -1 on ENOMEM or a key length outside 1..FMT_KEY_MAX (nothing
 * changed). */
int rci_keydir_put(keydir *kd, uint64_t hash, const void *key, size_t klen, const kd_loc *loc,
                   kd_loc *old, bool *had_old);

/* Recovery: insert KEY unless a location with a higher-or-equal seq is
 * already there. *REPLACED tells whether LOC went in; *OLD and *HAD_OLD as for
 * rci_keydir_put (so the caller can count the loser's bytes as dead): when LOC
 * lost, *OLD is the location that stayed and the loser is LOC itself. */
int rci_keydir_put_if_newer(keydir *kd, uint64_t hash, const void *key, size_t klen,
                            const kd_loc *loc, bool *replaced, kd_loc *old, bool *had_old);

/* Remove KEY (shard write-locked). true and *OLD filled if it was present. */
bool rci_keydir_remove(keydir *kd, uint64_t hash, const void *key, size_t klen, kd_loc *old);

/* Merge: repoint KEY to NEWLOC only if it still points at EXPECT (same seg,
 * off and seq); a write that raced the merge wins. true if repointed. */
bool rci_keydir_repoint(keydir *kd, uint64_t hash, const void *key, size_t klen,
                        const kd_loc *expect, const kd_loc *newloc);

/* Remove KEY only if it still has location EXPECT (TTL sweeper). */
bool rci_keydir_remove_if(keydir *kd, uint64_t hash, const void *key, size_t klen,
                          const kd_loc *expect);

/* Visit every entry of SHARD (locked by the caller), in table order. KEY
 * points into the keydir and is valid only during the call. The callback must
 * not change the shard, nor call anything here that does: a sweeper collects
 * its candidates in the callback and removes them (keydir_remove_if) after
 * the visit returns. Return non-zero to stop (the value is returned). */
typedef int (*keydir_visit_fn)(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc);
int rci_keydir_shard_foreach(keydir *kd, unsigned shard, keydir_visit_fn fn, void *ctx);

/* Visit up to BUDGET slots of SHARD starting at *CURSOR (shard locked);
 * *CURSOR advances and wraps to 0 at the end of the table, when true is
 * returned. For bounded incremental sweeps. The callback is as for
 * keydir_shard_foreach; a non-zero return ends the step early and *CURSOR
 * resumes after that entry. While the shard is unchanged, one cycle (from 0
 * to the wrap) visits every entry exactly once; a change between steps
 * (growth, a removal shifting entries back) may make a cycle miss or repeat
 * an entry, which the next cycle catches. */
bool rci_keydir_shard_scan_step(keydir *kd, unsigned shard, size_t *cursor, size_t budget,
                                keydir_visit_fn fn, void *ctx);

/* Hint the CPU to fetch the table slot where HASH's probe starts. For bulk
 * loads by the only thread using the keydir (recovery): it reads the shard's
 * table pointer without a lock. A stale hint is harmless. */
void rci_keydir_prefetch(keydir *kd, uint64_t hash);

/* Grow every shard's table now to hold about N entries in all (takes each
 * shard's write lock in turn), so that a bulk load (recovery) does not
 * rehash on the way. Never shrinks. 0 or -1 on ENOMEM. */
int rci_keydir_reserve(keydir *kd, size_t n);

/* Bulk loads by one thread per shard (recovery), SHARD write-locked or
 * owned: grow SHARD's table now to hold MORE entries beyond those it has
 * (0 or -1 on ENOMEM), and afterwards give back what a reservation that
 * counted duplicates left unused (shrink to load 0.75 when the load is
 * under the 0.68 that growth leaves; best effort). */
int rci_keydir_shard_reserve(keydir *kd, unsigned shard, size_t more);
void rci_keydir_shard_trim(keydir *kd, unsigned shard);

/* Entries in SHARD / in the whole keydir (the latter reads shard counters
 * without locks: exact when no writer runs). */
size_t rci_keydir_shard_count(keydir *kd, unsigned shard);
size_t rci_keydir_count(keydir *kd);
/* Number of entries with an expiry (lets the sweeper skip keydirs). */
size_t rci_keydir_ttl_count(keydir *kd);
/* Bytes of RAM held (tables + arenas + shard structs). */
size_t rci_keydir_bytes(keydir *kd);

#endif
