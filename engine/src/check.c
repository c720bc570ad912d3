/*
 * check.c — the per-thread state behind check.h's assertions (debug and
 * sanitizer builds only). Thread-local, so the checks add no shared state
 * and no synchronisation that could hide a race from ThreadSanitizer.
 */
#include "check.h"

#if RC_ASSERTS
#include <stdio.h>
#include <stdlib.h>

void rci_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "ringcask: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
    abort();
}

static const char *rank_name(unsigned rank)
{
    static const char *const names[] = {"?",          "ks_mu",     "merge_mu",     "files_gate",
                                        "key stripe", "append_mu", "keydir shard", "segs.mu"};
    return rank < sizeof(names) / sizeof(names[0]) ? names[rank] : "?";
}

/* Ranks that may be held several at once, in ascending SUB. */
static bool rank_multi(unsigned rank)
{
    return rank == RANK_STRIPE || rank == RANK_KEYDIR_SHARD;
}

#define HELD_MAX 32
typedef struct held_lock {
    uint8_t rank;
    uint32_t sub;   /* highest SUB held of this rank */
    uint32_t count; /* locks of this rank held (multi ranks) */
} held_lock;
static _Thread_local held_lock held[HELD_MAX];
static _Thread_local unsigned nheld;

static __attribute__((noreturn)) void order_fail(const char *what, lock_rank rank, uint32_t sub,
                                                 const char *file, int line)
{
    fprintf(stderr, "ringcask: lock order violated at %s:%d: %s %s #%u while holding:", file, line,
            what, rank_name(rank), sub);
    for (unsigned i = 0; i < nheld; i++)
        fprintf(stderr, " %s #%u%s", rank_name(held[i].rank), held[i].sub,
                held[i].count > 1 ? " (and lower)" : "");
    fprintf(stderr, "\n");
    abort();
}

void rci_lock_order(lock_rank rank, uint32_t sub, bool tried, const char *file, int line)
{
    if (nheld) {
        held_lock *top = &held[nheld - 1];
        bool ascending =
            rank > top->rank || (rank == top->rank && rank_multi(rank) && sub > top->sub);
        if (!tried && !ascending)
            order_fail("taking", rank, sub, file, line);
        if (rank == top->rank && rank_multi(rank)) {
            if (sub > top->sub)
                top->sub = sub;
            top->count++;
            return;
        }
    }
    if (nheld == HELD_MAX)
        order_fail("too many locks: taking", rank, sub, file, line);
    held[nheld++] = (held_lock){.rank = (uint8_t)rank, .sub = sub, .count = 1};
}

void rci_lock_release(lock_rank rank, uint32_t sub, const char *file, int line)
{
    /* releases may come in any order (backup.c lets go of ks_mu before the
     * files gate); a release of a rank the thread does not hold is a bug */
    for (unsigned i = nheld; i-- > 0;) {
        if (held[i].rank != rank)
            continue;
        if (--held[i].count > 0)
            return;
        for (unsigned j = i + 1; j < nheld; j++)
            held[j - 1] = held[j];
        nheld--;
        return;
    }
    order_fail("releasing unheld", rank, sub, file, line);
}
#endif
