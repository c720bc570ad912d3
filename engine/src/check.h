/*
 * check.h — the engine's rules, written in prose in db.h, epoch.c and
 * segment.h, checked as assertions in debug and sanitizer builds (the way
 * LMDB's mdb_cassert and SQLite's assert work). RC_ASSERTS is 1 unless
 * NDEBUG is defined (CMake passes -DRC_ASSERTS=1 to Debug and sanitizer
 * builds and NDEBUG to Release ones): in a Release build every macro here
 * compiles to nothing and costs nothing.
 *
 * The rules:
 *   - Lock order (db.h): a thread takes the engine's locks in ascending
 *     rank, key stripes among themselves in ascending index. RCI_LOCKING
 *     goes before each blocking acquisition, RCI_LOCKED_TRY after a
 *     successful try-lock (which cannot deadlock), RCI_UNLOCKED after each
 *     release. A per-thread stack of held ranks checks every acquisition.
 *   - Epochs (epoch.c): every rci_epoch_exit closes the thread's latest
 *     rci_epoch_enter (a per-thread stack), and a thread never waits in
 *     rci_epoch_synchronize for its own open epoch on that database.
 *   - Segment slots (segment.h): the table's slot N holds a segment whose
 *     slot is N; a record indexed into a keydir names an open slot.
 *   - Batch framing (log.c, scan.c): a batch is written as one contiguous
 *     run in one segment; recovery hands a batch's records on only when its
 *     BATCH_END record decoded.
 */
#ifndef RC_CHECK_H
#define RC_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#ifndef RC_ASSERTS
#ifdef NDEBUG
#define RC_ASSERTS 0
#else
#define RC_ASSERTS 1
#endif
#endif

/* Lock ranks, in the order a thread may take them (db.h "Locking order";
 * backup.c: ks_mu, files_gate, append_mu; rc_load: ks_mu, merge_mu). */
typedef enum lock_rank {
    RANK_KS_MU = 1,    /* the keyspace catalogue */
    RANK_MERGE_MU,     /* one merge (or full load) at a time */
    RANK_FILES_GATE,   /* merge unlinks files / a backup streams them */
    RANK_STRIPE,       /* key stripes, ascending index (SUB) */
    RANK_APPEND_MU,    /* the append path */
    RANK_KEYDIR_SHARD, /* keydir shard locks, ascending shard (SUB) */
    RANK_SEGS_MU,      /* the segment table's slot allocation (a leaf) */
} lock_rank;

#if RC_ASSERTS
__attribute__((noreturn)) void rci_assert_fail(const char *expr, const char *file, int line,
                                               const char *func);
#define RCI_ASSERT(e) ((e) ? (void)0 : rci_assert_fail(#e, __FILE__, __LINE__, __func__))
void rci_lock_order(lock_rank rank, uint32_t sub, bool tried, const char *file, int line);
void rci_lock_release(lock_rank rank, uint32_t sub, const char *file, int line);
#define RCI_LOCKING(rank, sub) rci_lock_order((rank), (uint32_t)(sub), false, __FILE__, __LINE__)
#define RCI_LOCKED_TRY(rank, sub) rci_lock_order((rank), (uint32_t)(sub), true, __FILE__, __LINE__)
#define RCI_UNLOCKED(rank, sub) rci_lock_release((rank), (uint32_t)(sub), __FILE__, __LINE__)
#else
#define RCI_ASSERT(e) ((void)0)
#define RCI_LOCKING(rank, sub) ((void)0)
#define RCI_LOCKED_TRY(rank, sub) ((void)0)
#define RCI_UNLOCKED(rank, sub) ((void)0)
#endif

#endif
