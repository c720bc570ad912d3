#define _GNU_SOURCE
#include <liburing.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <errno.h>
static uint64_t now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000ull + t.tv_nsec;
}
static int cmp(const void *a, const void *b)
{
    uint64_t x = *(uint64_t *)a, y = *(uint64_t *)b;
    return x < y ? -1 : x > y;
}
static int count_wrk(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    char p[256], c[64];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f) {
            if (fgets(c, sizeof c, f) && strncmp(c, "iou-wrk", 7) == 0)
                n++;
            fclose(f);
        }
    }
    closedir(d);
    return n;
}
#define N 1500
#define REC 140
#define LEN (16 << 20)
int main(int argc, char **argv)
{
    int mode = atoi(argv[1]);
    const char *path = argv[2];
    unlink(path);
    int direct = (mode == 3 || mode == 4 || mode == 5);
    int fd = open(path, O_RDWR | O_CREAT | (direct ? O_DIRECT : 0), 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    if (fallocate(fd, 0, 0, LEN)) {
        perror("fallocate");
        return 1;
    }
    if (mode == 4 || mode == 5) { /* zero-fill: written extents */
        void *z;
        posix_memalign(&z, 4096, 1 << 20);
        memset(z, 0, 1 << 20);
        for (off_t o = 0; o < LEN; o += 1 << 20)
            if (pwrite(fd, z, 1 << 20, o) != 1 << 20) {
                perror("zero");
                return 1;
            }
        fdatasync(fd);
        free(z);
    }
    uint8_t *map = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    struct io_uring r;
    io_uring_queue_init(64, &r, 0);
    uint8_t *blk;
    posix_memalign((void **)&blk, 4096, 1 << 20);
    memset(blk, 0, 1 << 20);
    struct iovec iov = {blk, 1 << 20};
    if (io_uring_register_buffers(&r, &iov, 1))
        perror("regbuf");
    if (io_uring_register_files(&r, &fd, 1))
        perror("regfile");
    uint64_t lat[N];
    uint64_t off = 4096;
    char rec[REC];
    memset(rec, 'x', REC);
    for (int i = 0; i < N; i++) {
        uint64_t t0 = now();
        if (mode == 0) {
            memcpy(map + off, rec, REC);
            fdatasync(fd);
        } else if (mode == 1 || mode == 2) {
            struct io_uring_sqe *s = io_uring_get_sqe(&r);
            io_uring_prep_write(s, fd, rec, REC, off);
            if (mode == 1) {
                s->flags |= IOSQE_IO_LINK;
                s = io_uring_get_sqe(&r);
                io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
            } else
                s->rw_flags = RWF_DSYNC;
            io_uring_submit_and_wait(&r, mode == 1 ? 2 : 1);
            struct io_uring_cqe *c;
            for (int k = 0; k < (mode == 1 ? 2 : 1); k++) {
                io_uring_wait_cqe(&r, &c);
                if (c->res < 0)
                    fprintf(stderr, "res %d\n", c->res);
                io_uring_cqe_seen(&r, c);
            }
        } else { /* direct: write the blocks covering [blockstart, off+REC) */
            uint64_t bs = off & ~4095ull, end = (off + REC + 4095) & ~4095ull;
            memcpy(blk + (off - bs), rec, REC);
            if (mode == 5) {
                if (pwritev2(fd, &(struct iovec){blk, end - bs}, 1, bs, RWF_DSYNC) < 0)
                    perror("pw");
            } else {
                struct io_uring_sqe *s = io_uring_get_sqe(&r);
                io_uring_prep_write_fixed(s, 0, blk, end - bs, bs, 0);
                s->flags |= IOSQE_FIXED_FILE;
                s->rw_flags = RWF_DSYNC;
                io_uring_submit_and_wait(&r, 1);
                struct io_uring_cqe *c;
                io_uring_wait_cqe(&r, &c);
                if (c->res < 0)
                    fprintf(stderr, "res %d\n", c->res);
                io_uring_cqe_seen(&r, c);
            }
            off += REC;
            if ((off & ~4095ull) != bs) {
                memmove(blk, blk + (end - bs - 4096) + 0, 0); /* keep simple: shift partial */
                uint64_t nb = off & ~4095ull;
                memmove(blk, blk + (nb - bs), 4096);
                memset(blk + 4096, 0, 4096);
            }
            lat[i] = now() - t0;
            continue;
        }
        off += REC;
        lat[i] = now() - t0;
    }
    qsort(lat, N, 8, cmp);
    uint64_t s = 0;
    for (int i = 0; i < N; i++)
        s += lat[i];
    printf("mode %d avg %6.1f p50 %6.1f p99 %6.1f us  iou-wrk %d\n", mode, s / 1e3 / N,
           lat[N / 2] / 1e3, lat[N * 99 / 100] / 1e3, count_wrk());
    /* verify content via map */
    if (memcmp(map + 4096, rec, REC))
        printf("  map incoherent!\n");
    return 0;
}
