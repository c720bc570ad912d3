/*
 * append_uring.c — the writer of the direct append paths (see append_uring.h
 * and docs/ENGINE.md, "The io_uring append path").
 *
 * Why these choices, measured on this machine (kernel 6.18, ext4 on
 * virtio-blk with a volatile write cache and no FUA):
 * - The group's blocks are overwrites of *written* extents (the
 *   preallocation is zero-filled, prepare.c / segment.c): a direct write
 *   into fallocated (unwritten) extents, a buffered write through the ring,
 *   or a write linked to IORING_OP_FSYNC each go to an io-wq worker (an
 *   iou-wrk thread appears: perf trace, io_uring:io_uring_queue_async_work).
 * - Every asynchronous direct write on ext4 here is completed by the
 *   kernel's dio-done workqueue (workqueue:workqueue_queue_work with
 *   function=iomap_dio_complete_work, a kworker), because io_uring no longer
 *   asks for completion in the caller's context (IOCB_DIO_CALLER_COMP has
 *   been disabled for io_uring writes since Linux 6.6). With RWF_DSYNC on a
 *   device without FUA that kworker also issues and waits for the cache
 *   flush, and the flush is then dispatched through kblockd once more: in a
 *   paired probe on two busy cores the ring's DSYNC write took 5-8x the
 *   time of a pwritev2(RWF_DSYNC) at the median. So the ring writes the
 *   bytes WITHOUT RWF_DSYNC (its kworker only completes the write) and the
 *   leader then flushes with fdatasync in its own context — the same
 *   ext4_sync_file a DSYNC write runs at completion. That is RCI_DW_RING,
 *   the default (rc_options.append_io = uring or auto).
 * - RCI_DW_PWRITE (append_io = pwrite): one pwritev2(O_DIRECT, RWF_DSYNC)
 *   from the leader; no kworker at all on the commit path.
 * - RCI_DW_RING_DSYNC (RC_DW_RING=dsync in the environment, for
 *   comparisons only): the original one-submission DSYNC ring write.
 * - The bytes are copied into a registered staging buffer first: the DMA
 *   then reads memory nobody writes (appenders keep filling the segment's
 *   last block while a leader writes it), the buffer needs no pinning per
 *   call, and a group is usually well under one block, so the copy is free.
 *   The file is registered too (slot 0, updated when the segment changes).
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
    int reg_fd; /* the descriptor in file slot 0, -1 when none */
    rci_dw_mode mode;
};

rci_dw *rci_dw_new(rci_dw_mode mode)
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
    w->mode = mode;
    const char *e = getenv("RC_DW_RING"); /* comparisons only (the top of this file) */
    if (mode == RCI_DW_RING && e && strcmp(e, "dsync") == 0)
        w->mode = RCI_DW_RING_DSYNC;
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

bool rci_dw_uses_ring(const rci_dw *w)
{
    return w->mode != RCI_DW_PWRITE;
}

/* One write of LEN bytes of the staging buffer at OFF (durable unless the
 * mode is RCI_DW_RING, whose caller flushes after its last piece); bytes
 * written or -errno. */
static int dw_submit(rci_dw *w, int fd, size_t len, uint64_t off)
{
    if (w->mode == RCI_DW_PWRITE) {
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
    if (w->mode == RCI_DW_RING_DSYNC)
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
    /* the ring wrote without RWF_DSYNC: the flush, in this thread */
    if (w->mode == RCI_DW_RING && fdatasync(fd) != 0)
        return -errno;
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
