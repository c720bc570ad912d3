/*
 * append_uring.c — the writer of the io_uring append path (see
 * append_uring.h and docs/ENGINE.md, "The io_uring append path").
 *
 * Why these choices, measured on this machine (ext4 on virtio, no FUA):
 * - O_DIRECT + RWF_DSYNC issued through io_uring runs inline in the
 *   submitting thread when it overwrites *written* extents; into fallocated
 *   (unwritten) extents, or as a buffered write with RWF_DSYNC, or as a
 *   write linked to IORING_OP_FSYNC, the kernel hands it to an io-wq worker
 *   (an iou-wrk thread appears). Hence the zero-fill of the preallocation
 *   (rci_dw_zero) and one DSYNC write per group instead of write + fsync.
 * - The bytes are copied into a registered staging buffer first: the DMA
 *   then reads memory nobody writes (appenders keep filling the segment's
 *   last block while a leader writes it), the buffer needs no pinning per
 *   call, and a group is usually well under one block, so the copy is free.
 * - The file is registered too (slot 0, updated when the segment changes).
 * - On a device without FUA (this one) the kernel completes an
 *   asynchronous DSYNC direct write — the cache flush — from its dio-done
 *   workqueue: a kworker hop that waits for a CPU when both cores are busy.
 *   A synchronous pwritev2(RWF_DSYNC) from the leader completes (and
 *   flushes) in the leader's own context. Measured on this machine: the
 *   leader's group write took 0.82x the ring's time in a paired probe, and
 *   0.05-0.7x of it in kvbench fillsync at 8 threads on two busy cores
 *   (ENGINE.md). So the group write is one pwritev2 system call by default;
 *   RC_DW_RING=1 in the environment issues it through the ring (registered
 *   buffer and file) instead, for comparison.
 * Registration failures (RLIMIT_MEMLOCK, old kernels) fall back to plain
 * buffers and descriptors: slower, same bytes.
 */
#include "append_uring.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define STAGING_BYTES (1u << 20)

struct rci_dw {
    struct io_uring ring;
    uint8_t *staging; /* STAGING_BYTES, block-aligned */
    bool buf_registered;
    bool files_registered;
    int reg_fd;      /* the descriptor in file slot 0, -1 when none */
    bool sync_write; /* pwritev2 from the leader (default), not the ring */
};

rci_dw *rci_dw_new(void)
{
    rci_dw *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    if (posix_memalign((void **)&w->staging, RCI_DIO_BLOCK, STAGING_BYTES) != 0) {
        free(w);
        return NULL;
    }
    if (io_uring_queue_init(8, &w->ring, 0) != 0) {
        free(w->staging);
        free(w);
        return NULL;
    }
    struct iovec iov = {.iov_base = w->staging, .iov_len = STAGING_BYTES};
    w->buf_registered = io_uring_register_buffers(&w->ring, &iov, 1) == 0;
    int none = -1;
    w->files_registered = io_uring_register_files(&w->ring, &none, 1) == 0;
    w->reg_fd = -1;
    /* the ring's write only when asked (see the top of this file) */
    const char *e = getenv("RC_DW_RING");
    w->sync_write = !(e && *e == '1');
    return w;
}

void rci_dw_free(rci_dw *w)
{
    if (!w)
        return;
    io_uring_queue_exit(&w->ring);
    free(w->staging);
    free(w);
}

/* One durable write of LEN bytes of the staging buffer at OFF; bytes written
 * or -errno. */
static int dw_submit(rci_dw *w, int fd, size_t len, uint64_t off)
{
    if (w->sync_write) {
        struct iovec iov = {.iov_base = w->staging, .iov_len = len};
        ssize_t n = pwritev2(fd, &iov, 1, (off_t)off, RWF_DSYNC);
        return n < 0 ? -errno : (int)n;
    }
    bool fixed_file = false;
    if (w->files_registered) {
        if (w->reg_fd != fd) {
            if (io_uring_register_files_update(&w->ring, 0, &fd, 1) == 1)
                w->reg_fd = fd;
            else
                w->reg_fd = -1;
        }
        fixed_file = w->reg_fd == fd;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe)
        return -EBUSY; /* cannot happen: one write in flight at a time */
    if (w->buf_registered)
        io_uring_prep_write_fixed(sqe, fixed_file ? 0 : fd, w->staging, (unsigned)len, off, 0);
    else
        io_uring_prep_write(sqe, fixed_file ? 0 : fd, w->staging, (unsigned)len, off);
    if (fixed_file)
        sqe->flags |= IOSQE_FIXED_FILE;
    sqe->rw_flags = RWF_DSYNC;
    int ret;
    do {
        ret = io_uring_submit_and_wait(&w->ring, 1);
    } while (ret == -EINTR);
    if (ret < 0)
        return ret;
    struct io_uring_cqe *cqe;
    do {
        ret = io_uring_wait_cqe(&w->ring, &cqe);
    } while (ret == -EINTR);
    if (ret < 0)
        return ret;
    int res = cqe->res;
    io_uring_cqe_seen(&w->ring, cqe);
    return res;
}

int rci_dw_write(rci_dw *w, int fd, const uint8_t *base, uint64_t start, uint64_t end)
{
    if (start % RCI_DIO_BLOCK)
        return -EINVAL;
    while (start < end) {
        uint64_t n = end - start;
        if (n > STAGING_BYTES)
            n = STAGING_BYTES;
        size_t padded = (size_t)((n + RCI_DIO_BLOCK - 1) / RCI_DIO_BLOCK * RCI_DIO_BLOCK);
        memcpy(w->staging, base + start, (size_t)n);
        memset(w->staging + n, 0, padded - (size_t)n);
        int res = dw_submit(w, fd, padded, start);
        if (res == -EAGAIN || res == -EINTR)
            continue;
        if (res < 0)
            return res;
        if ((size_t)res != padded)
            return -EIO; /* a short O_DIRECT write: the disk is full or failing */
        start += n;
    }
    return 0;
}

static uint8_t *zeros;
static pthread_once_t zeros_once = PTHREAD_ONCE_INIT;
#define ZERO_BYTES (1u << 20)

static void zeros_init(void)
{
    void *p;
    if (posix_memalign(&p, RCI_DIO_BLOCK, ZERO_BYTES) == 0) {
        memset(p, 0, ZERO_BYTES);
        zeros = p; /* process lifetime: shared by every database */
    }
}

int rci_dw_zero(int fd, uint64_t off, uint64_t len)
{
    pthread_once(&zeros_once, zeros_init);
    if (!zeros)
        return -ENOMEM;
    if (off % RCI_DIO_BLOCK || len % RCI_DIO_BLOCK)
        return -EINVAL;
    while (len > 0) {
        size_t n = len > ZERO_BYTES ? ZERO_BYTES : (size_t)len;
        ssize_t w = pwrite(fd, zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0 || w % RCI_DIO_BLOCK)
            return -EIO;
        off += (uint64_t)w;
        len -= (uint64_t)w;
    }
    return 0;
}
