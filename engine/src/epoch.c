/*
 * epoch.c — lets merge unmap a segment only when no reader can still be
 * reading it, without readers sharing a cache line.
 *
 * Each thread gets a small index on first use; a reader increments the
 * counter of slot (index % EPOCH_SLOTS) around its access. A reclaimer first
 * makes the segment unreachable (keydir entries repointed, slot cleared),
 * then waits until every slot has been seen at zero once: any reader that
 * could have found the old location has left by then. With fewer threads
 * than slots a slot has one owner and the wait is short.
 */
#include "db.h"

#include <sched.h>
#include <time.h>

static atomic_uint next_thread_index;
static _Thread_local unsigned my_index = ~0u;

unsigned rci_thread_index(void)
{
    if (my_index == ~0u)
        my_index = atomic_fetch_add(&next_thread_index, 1);
    return my_index;
}

epoch_slot *rci_epoch_enter(rc_db *db)
{
    epoch_slot *slot = &db->epochs[rci_thread_index() % EPOCH_SLOTS];
    atomic_fetch_add_explicit(&slot->active, 1, memory_order_seq_cst);
    return slot;
}

void rci_epoch_exit(epoch_slot *slot)
{
    atomic_fetch_sub_explicit(&slot->active, 1, memory_order_release);
}

void rci_epoch_synchronize(rc_db *db)
{
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned i = 0; i < EPOCH_SLOTS; i++) {
        unsigned spins = 0;
        while (atomic_load_explicit(&db->epochs[i].active, memory_order_acquire) != 0) {
            if (++spins < 100) {
                sched_yield();
            } else {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    }
}
