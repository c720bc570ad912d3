/*
 * append_uring.h — the io_uring append path's writer (rc_options.append_io =
 * RC_APPEND_URING): a staging buffer (registered with a ring of its own, and
 * a registered file slot), so that the group-commit leader writes the
 * group's blocks and makes them durable in ONE O_DIRECT + RWF_DSYNC write:
 * a pwritev2 system call by default, an io_uring WRITE_FIXED with
 * RC_DW_RING=1 in the environment (append_uring.c says why).
 */
#ifndef RC_APPEND_URING_H
#define RC_APPEND_URING_H

#include <stddef.h>
#include <stdint.h>

/* The unit of an O_DIRECT write: offsets and lengths are multiples of it. */
#define RCI_DIO_BLOCK 4096u

typedef struct rci_dw rci_dw;

/* A writer with its ring; NULL when the kernel refuses io_uring. Used by one
 * thread at a time (the caller serialises: log.c's flush_mu). */
rci_dw *rci_dw_new(void);
void rci_dw_free(rci_dw *w);

/* Write BASE[START, END) to FD (opened O_DIRECT) at the same offsets and make
 * it durable: START is block-aligned, the last block is padded with zeros
 * (the bytes past END are rewritten by the next call, which starts at the
 * block holding END). Each piece of up to the staging size is one
 * RWF_DSYNC write. 0 or -errno (a short write is -EIO). */
int rci_dw_write(rci_dw *w, int fd, const uint8_t *base, uint64_t start, uint64_t end);

/* Fill [OFF, OFF + LEN) of FD (O_DIRECT; block-aligned) with zeros, so that
 * later writes there overwrite written extents (no extent conversion, hence
 * no io-wq hop and no journal commit per write). Not synced. 0 or -errno. */
int rci_dw_zero(int fd, uint64_t off, uint64_t len);

#endif
