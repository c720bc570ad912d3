/*
 * fault.h — the fault-injection seam of the engine's I/O (test builds).
 *
 * Every file operation that can fail in production passes through
 * rci_fault_check(point) first. Tests arm a point to fail its Nth call from now
 * with a chosen errno, once or for COUNT calls, and assert what survives.
 * Built only with RC_FAULT_INJECTION; otherwise fault_check is a constant 0.
 * The armed state is process-wide (tests run one database at a time).
 */
#ifndef RC_FAULT_H
#define RC_FAULT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum fault_point {
    FAULT_GROW,   /* preallocating the active segment (fallocate) */
    FAULT_SYNC,   /* fdatasync of the active segment */
    FAULT_CREATE, /* creating a segment, hint or merge file */
    FAULT_WRITE,  /* writing a hint or merge output */
    FAULT_READ,   /* reading a record for a caller */
    FAULT_POINTS
} fault_point;

#ifdef RC_FAULT_INJECTION
/* Fail calls AFTER+1 .. AFTER+COUNT of POINT (counted from now) with ERR. */
void rc_fault_arm(fault_point point, unsigned after, unsigned count, int err);
void rc_fault_disarm_all(void);
/* 0, or the errno to fail with. */
int rci_fault_check(fault_point point);
/* Recovery loads hints in windows of about BYTES of hint files (0: the
 * default), so that tests can make small databases span many windows. */
void rc_recovery_window(size_t bytes);
/* Call FN(CTX) in every open right after the segment files are listed (NULL:
 * none): lets a test change the directory at that instant. */
void rc_fault_after_listing(void (*fn)(void *), void *ctx);
void rci_fault_listed(void);
/* While ON, every key hashes to shard 0 with tag 0 (keydir.c), so that every
 * lookup meets tag collisions: set it before rc_open and keep it until
 * rc_close (hashes must not change under an open database). */
void rc_fault_weak_hash(bool on);
#else
static inline void rci_fault_listed(void) {}
static inline int rci_fault_check(fault_point point)
{
    (void)point;
    return 0;
}
#endif

#endif
