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
#include "check.h"
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

#if RC_ASSERTS
/* The epochs this thread has open, innermost last (check.h). */
#define OPEN_MAX 16
static _Thread_local epoch_slot *open_slots[OPEN_MAX];
static _Thread_local unsigned nopen;
#endif

epoch_slot *rci_epoch_enter(rc_db *db)
{
    epoch_slot *slot = &db->epochs[rci_thread_index() % EPOCH_SLOTS];
    atomic_fetch_add_explicit(&slot->active, 1, memory_order_seq_cst);
#if RC_ASSERTS
    RCI_ASSERT(nopen < OPEN_MAX); /* epochs nest only a few deep */
    open_slots[nopen++] = slot;
#endif
    return slot;
}

void rci_epoch_exit(epoch_slot *slot)
{
#if RC_ASSERTS
    /* paired: an exit closes this thread's innermost open epoch */
    RCI_ASSERT(nopen > 0 && open_slots[nopen - 1] == slot);
    nopen--;
    RCI_ASSERT(atomic_load_explicit(&slot->active, memory_order_relaxed) > 0);
#endif
    atomic_fetch_sub_explicit(&slot->active, 1, memory_order_release);
}

void rci_epoch_synchronize(rc_db *db)
{
#if RC_ASSERTS
    /* waiting for every slot of DB to drain with one of them held by this
     * thread would wait for ever */
    uintptr_t lo = (uintptr_t)db->epochs, hi = (uintptr_t)(db->epochs + EPOCH_SLOTS);
    for (unsigned i = 0; i < nopen; i++)
        RCI_ASSERT((uintptr_t)open_slots[i] < lo || (uintptr_t)open_slots[i] >= hi);
#endif
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
