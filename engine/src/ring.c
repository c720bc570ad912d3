/*
 * ring.c — a thin io_uring wrapper (liburing). One ring per database,
 * serialised by the caller's mutex: the group-commit leader submits one
 * IORING_OP_FSYNC(DATASYNC) that covers every writer waiting behind it, and
 * the background thread submits hint/merge writes. Falls back to system calls
 * when the kernel refuses io_uring (seccomp, old kernels), so the engine
 * still works, only without the ring.
 */
#include "ring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <unistd.h>

struct ring {
    struct io_uring uring;
};

struct ring *rci_ring_new(unsigned entries)
{
    struct ring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (io_uring_queue_init(entries, &r->uring, 0) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void rci_ring_free(struct ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->uring);
    free(r);
}

static int ring_wait_one(struct ring *r)
{
    struct io_uring_cqe *cqe;
    int ret;
    do {
        ret = io_uring_wait_cqe(&r->uring, &cqe);
    } while (ret == -EINTR);
    if (ret < 0)
        return ret;
    int res = cqe->res;
    io_uring_cqe_seen(&r->uring, cqe);
    return res;
}

int rci_ring_fdatasync(struct ring *r, int fd)
{
    if (!r)
        return fdatasync(fd) == 0 ? 0 : -errno;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (!sqe)
        return fdatasync(fd) == 0 ? 0 : -errno;
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    int ret = io_uring_submit(&r->uring);
    if (ret < 0)
        return ret;
    return ring_wait_one(r);
}

int rci_ring_pwrite_all(struct ring *r, int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n;
        if (r) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
            if (!sqe)
                return -EBUSY;
            io_uring_prep_write(sqe, fd, p, (unsigned)(len > (1u << 30) ? (1u << 30) : len),
                                (uint64_t)off);
            int ret = io_uring_submit(&r->uring);
            if (ret < 0)
                return ret;
            n = ring_wait_one(r);
        } else {
            n = pwrite(fd, p, len, off);
            if (n < 0)
                n = -errno;
        }
        if (n == -EINTR || n == -EAGAIN)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}
