/*
 * fault.c — see fault.h. A handful of atomics per point; the cost in a
 * production build is nil because the file compiles to nothing without
 * RC_FAULT_INJECTION.
 */
#include "fault.h"

#ifdef RC_FAULT_INJECTION
#include <stdatomic.h>

typedef struct fault_state {
    atomic_int calls_left_before; /* calls to let through first */
    atomic_int fails_left;
    atomic_int err;
} fault_state;

static fault_state faults[FAULT_POINTS];

void rc_fault_arm(fault_point point, unsigned after, unsigned count, int err)
{
    atomic_store(&faults[point].err, err);
    atomic_store(&faults[point].calls_left_before, (int)after);
    atomic_store(&faults[point].fails_left, (int)count);
}

void rc_fault_disarm_all(void)
{
    for (int i = 0; i < FAULT_POINTS; i++)
        atomic_store(&faults[i].fails_left, 0);
}

int rci_fault_check(fault_point point)
{
    fault_state *f = &faults[point];
    if (atomic_load_explicit(&f->fails_left, memory_order_relaxed) <= 0)
        return 0;
    if (atomic_fetch_sub(&f->calls_left_before, 1) > 0)
        return 0;
    if (atomic_fetch_sub(&f->fails_left, 1) > 0)
        return atomic_load(&f->err);
    return 0;
}

static void (*listed_fn)(void *);
static void *listed_ctx;

void rc_fault_after_listing(void (*fn)(void *), void *ctx)
{
    listed_ctx = ctx;
    listed_fn = fn;
}

void rci_fault_listed(void)
{
    if (listed_fn)
        listed_fn(listed_ctx);
}
#else
typedef int fault_c_is_empty_without_injection;
#endif
