/*
 * append_uring.h — the direct append paths' writer (rc_options.append_io =
 * RC_APPEND_URING or RC_APPEND_PWRITE): a staging buffer (registered with a
 * ring of its own, and a registered file slot), from which the group-commit
 * leader writes the group's blocks with O_DIRECT and makes them durable:
 * through the ring (one WRITE_FIXED submission, then the leader's
 * fdatasync) or with one pwritev2(RWF_DSYNC) (append_uring.c says why).
 */
#ifndef RC_APPEND_URING_H
#define RC_APPEND_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The unit of an O_DIRECT write: offsets and lengths are multiples of it. */
#define RCI_DIO_BLOCK 4096u

typedef struct rci_dw rci_dw;

typedef enum rci_dw_mode {
    RCI_DW_RING,       /* io_uring WRITE_FIXED, then fdatasync (uring) */
    RCI_DW_PWRITE,     /* pwritev2(RWF_DSYNC) from the leader (pwrite) */
    RCI_DW_RING_DSYNC, /* io_uring WRITE_FIXED with RWF_DSYNC: comparisons
                          only, RC_DW_RING=dsync in the environment */
} rci_dw_mode;

/* A writer with its ring; NULL when the kernel refuses io_uring. Used by one
 * thread at a time (the caller serialises: log.c's flush_mu). */
rci_dw *rci_dw_new(rci_dw_mode mode);
/* Does its group write go through the ring (rc_stats.ring_writes)? */
bool rci_dw_uses_ring(const rci_dw *w);
void rci_dw_free(rci_dw *w);

/* Write BASE[START, END) to FD (opened O_DIRECT) at the same offsets and make
 * it durable: START is block-aligned, the last block is padded with zeros
 * (the bytes past END are rewritten by the next call, which starts at the
 * block holding END). Each piece of up to the staging size is one write;
 * the flush follows the last (or is each piece's RWF_DSYNC). 0 or -errno (a
 * short write is -EIO). */
int rci_dw_write(rci_dw *w, int fd, const uint8_t *base, uint64_t start, uint64_t end);

/* Fill [OFF, OFF + LEN) of FD (O_DIRECT; block-aligned) with zeros, so that
 * later writes there overwrite written extents (no extent conversion, hence
 * no io-wq hop and no journal commit per write). Not synced. 0 or -errno. */
int rci_dw_zero(int fd, uint64_t off, uint64_t len);

#endif
