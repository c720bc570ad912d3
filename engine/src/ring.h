/*
 * ring.h — the engine's io_uring: fdatasync for group commit, and large
 * sequential writes of hint and merge files.
 */
#ifndef RC_RING_H
#define RC_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ring;

/* A ring with ENTRIES submission slots; NULL when io_uring is unavailable
 * (the callers then use plain system calls). */
struct ring *rci_ring_new(unsigned entries);
void rci_ring_free(struct ring *r);
/* fdatasync FD through the ring (or directly without one); 0 or -errno. */
int rci_ring_fdatasync(struct ring *r, int fd);
/* Write all LEN bytes at OFF (looping on short writes); 0 or -errno. */
int rci_ring_pwrite_all(struct ring *r, int fd, const void *buf, size_t len, off_t off);

#endif
