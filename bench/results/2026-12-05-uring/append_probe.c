#include <liburing.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static uint64_t now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000ull + t.tv_nsec;
}
static int cmp(const void *a, const void *b)
{
    double x = *(double *)a, y = *(double *)b;
    return x < y ? -1 : x > y;
}
#define LEN (8 << 20)
int main(int argc, char **argv)
{
    int N = atoi(argv[2]);
    char pa[512], pb[512];
    snprintf(pa, 512, "%s/a", argv[1]);
    snprintf(pb, 512, "%s/b", argv[1]);
    int fa = open(pa, O_RDWR | O_CREAT | O_TRUNC, 0644);
    fallocate(fa, 0, 0, LEN);
    uint8_t *map = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fa, 0);
    int fb = open(pb, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    fallocate(fb, 0, 0, LEN);
    void *z;
    posix_memalign(&z, 4096, 1 << 20);
    memset(z, 0, 1 << 20);
    for (off_t o = 0; o < LEN; o += 1 << 20)
        pwrite(fb, z, 1 << 20, o);
    fdatasync(fb);
    struct io_uring r;
    io_uring_queue_init(8, &r, 0);
    uint8_t *blk;
    posix_memalign((void **)&blk, 4096, 1 << 20);
    memset(blk, 0, 1 << 20);
    struct iovec iov = {blk, 1 << 20};
    io_uring_register_buffers(&r, &iov, 1);
    io_uring_register_files(&r, &fb, 1);
    double *A = malloc(N * 8), *B = malloc(N * 8), *R = malloc(N * 8), *C = malloc(N * 8);
    uint64_t off = 4096;
    char rec[140];
    memset(rec, 'x', 140);
    uint8_t *stage = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < N; i++) {
        uint64_t t0 = now();
        memcpy(map + off, rec, 140);
        fdatasync(fa);
        A[i] = (now() - t0) / 1e3;
        t0 = now();
        memcpy(stage + off, rec, 140);
        uint64_t bs = off & ~4095ull, end = off + 140, pad = ((end - bs) + 4095) & ~4095ull;
        memcpy(blk, stage + bs, end - bs);
        memset(blk + (end - bs), 0, pad - (end - bs));
        struct io_uring_sqe *s = io_uring_get_sqe(&r);
        io_uring_prep_write_fixed(s, 0, blk, pad, bs, 0);
        s->flags |= IOSQE_FIXED_FILE;
        s->rw_flags = RWF_DSYNC;
        io_uring_submit_and_wait(&r, 1);
        struct io_uring_cqe *c;
        io_uring_wait_cqe(&r, &c);
        if (c->res < 0)
            fprintf(stderr, "res %d\n", c->res);
        io_uring_cqe_seen(&r, c);
        B[i] = (now() - t0) / 1e3;
        R[i] = B[i] / A[i];
        t0 = now();
        if (pwritev2(fb, &(struct iovec){blk, pad}, 1, bs, RWF_DSYNC) < 0)
            perror("pw");
        C[i] = (now() - t0) / 1e3;
        off += 140;
    }
    qsort(C, N, 8, cmp);
    qsort(A, N, 8, cmp);
    qsort(B, N, 8, cmp);
    qsort(R, N, 8, cmp);
    printf("pwritev2 dio dsync p50 %.0f p99 %.0f\n", C[N / 2], C[N * 99 / 100]);
    printf("mmap+fdatasync p50 %.0f p99 %.0f | uring dio dsync p50 %.0f p99 %.0f | paired ratio "
           "uring/mmap median %.2f\n",
           A[N / 2], A[N * 99 / 100], B[N / 2], B[N * 99 / 100], R[N / 2]);
    unlink(pa);
    unlink(pb);
}
