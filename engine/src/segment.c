/*
 * segment.c — segment files and the slot table.
 *
 * The active segment is preallocated with fallocate, in steps that grow with
 * the file (SEG_PREALLOC_MIN .. SEG_PREALLOC_MAX, segment.h), and written
 * through a MAP_SHARED mapping: a record copied into the mapping
 * is in the page cache at once, so it survives a crash of the process without
 * a system call per write, and a full disk shows up as a clean ENOSPC from
 * fallocate before anything is copied, never as a SIGBUS. Durability is the
 * log's job (group-committed). A crash leaves a zero-filled preallocated
 * tail that recovery truncates.
 *
 * On the io_uring append path (DIRECT, see segment.h) the active segment's
 * map is anonymous staging memory instead, the preallocation is zero-filled
 * with O_DIRECT (so that group writes overwrite written extents), and durable
 * chunks are mapped from the file over the staging memory (rci_seg_remap).
 *
 * Immutable segments are mapped read-only over their length; reads are
 * memcpy from the mapping (no system call). Slots are 16-bit so that a keydir
 * entry names its segment in two bytes; slots are reused only after the
 * segment they named was reclaimed.
 */
#include "segment.h"
#include "append_uring.h"
#include "db.h"
#include "fault.h"
#include "format/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int rci_seg_table_init(segment_table *t)
{
    t->slots = calloc(SEG_SLOTS, sizeof(*t->slots));
    if (!t->slots)
        return RC_ENOMEM;
    t->next_free_hint = 0;
    pthread_mutex_init(&t->mu, NULL);
    return 0;
}

void rci_seg_table_free(segment_table *t)
{
    if (!t->slots)
        return;
    for (uint32_t i = 0; i < SEG_SLOTS; i++)
        if (t->slots[i])
            rci_seg_close(t->slots[i]);
    free(t->slots);
    t->slots = NULL;
    pthread_mutex_destroy(&t->mu);
}

int rci_seg_table_add(segment_table *t, segment *seg)
{
    RCI_LOCKING(RANK_SEGS_MU, 0);
    pthread_mutex_lock(&t->mu);
    for (uint32_t n = 0; n < SEG_SLOTS; n++) {
        uint32_t i = (t->next_free_hint + n) % SEG_SLOTS;
        if (!t->slots[i]) {
            seg->slot = (uint16_t)i;
            __atomic_store_n(&t->slots[i], seg, __ATOMIC_RELEASE);
            t->next_free_hint = i + 1;
            pthread_mutex_unlock(&t->mu);
            RCI_UNLOCKED(RANK_SEGS_MU, 0);
            return 0;
        }
    }
    pthread_mutex_unlock(&t->mu);
    RCI_UNLOCKED(RANK_SEGS_MU, 0);
    return rc_fail(RC_ELIMIT, "more than %u segments are open: run a merge", SEG_SLOTS);
}

void rci_seg_table_remove(segment_table *t, segment *seg)
{
    RCI_LOCKING(RANK_SEGS_MU, 0);
    pthread_mutex_lock(&t->mu);
    if (t->slots[seg->slot] == seg)
        __atomic_store_n(&t->slots[seg->slot], NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->mu);
    RCI_UNLOCKED(RANK_SEGS_MU, 0);
}

void rci_seg_name(char *buf, size_t cap, uint64_t id, const char *ext)
{
    snprintf(buf, cap, "%08llu.%s", (unsigned long long)id, ext);
}

static segment *seg_alloc(uint64_t id, int fd)
{
    segment *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->id = id;
    seg->fd = fd;
    seg->dfd = -1;
    return seg;
}

int rci_seg_create(int dir_fd, uint64_t id, uint64_t db_id, uint64_t reserve, int64_t now_ms,
                   bool direct, segment **out)
{
    char name[32];
    rci_seg_name(name, sizeof(name), id, "data");
    int err = rci_fault_check(FAULT_CREATE);
    int fd = err ? -1 : openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = err ? err : errno;
        return rc_fail(rc_from_errno(err), "cannot create segment %s: %s", name, strerror(err));
    }
    segment *seg = seg_alloc(id, fd);
    if (!seg) {
        close(fd);
        unlinkat(dir_fd, name, 0);
        return RC_ENOMEM;
    }
    seg->writable = true;
    if (reserve < FMT_SEG_HEADER_LEN + 64)
        reserve = FMT_SEG_HEADER_LEN + 64;
    seg->map_len = (reserve + 4095) & ~(size_t)4095;
    if (direct) {
        seg->direct = true;
        seg->dfd = openat(dir_fd, name, O_WRONLY | O_DIRECT | O_CLOEXEC);
        if (seg->dfd < 0) {
            err =
                rc_fail(RC_EIO, "cannot open segment %s with O_DIRECT: %s", name, strerror(errno));
            goto fail;
        }
        seg->map = mmap(NULL, seg->map_len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    } else {
        seg->map = mmap(NULL, seg->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    if (seg->map == MAP_FAILED) {
        err = rc_fail(RC_ENOMEM, "cannot map segment %s: %s", name, strerror(errno));
        seg->map = NULL;
        goto fail;
    }
    atomic_store(&seg->size, 0);
    err = rci_seg_reserve(seg, FMT_SEG_HEADER_LEN);
    if (err)
        goto fail;
    fmt_segment_header h = {.segment_id = id, .db_id = db_id, .created_ms = (uint64_t)now_ms};
    fmt_segment_header_encode(seg->map, &h);
    seg->created_ms = now_ms;
    if (direct) {
        /* the header's block now (not durable yet: the first group write
         * rewrites it with RWF_DSYNC), so that a process crash before any
         * leader wrote leaves a segment with its header, as the mapping does */
        ssize_t w = pwrite(seg->dfd, seg->map, RCI_DIO_BLOCK, 0);
        if (w != (ssize_t)RCI_DIO_BLOCK) {
            int e = w < 0 ? errno : EIO;
            err = rc_fail(rc_from_errno(e), "cannot write the header of segment %s: %s", name,
                          strerror(e));
            goto fail;
        }
    }
    atomic_store(&seg->size, FMT_SEG_HEADER_LEN);
    if (fsync(dir_fd) != 0) {
        err = rc_fail(rc_from_errno(errno), "cannot sync directory: %s", strerror(errno));
        goto fail;
    }
    *out = seg;
    return 0;
fail:
    rci_seg_close(seg);
    unlinkat(dir_fd, name, 0);
    return err;
}

int rci_seg_open(int dir_fd, uint64_t id, bool writable, segment **out)
{
    char name[32];
    rci_seg_name(name, sizeof(name), id, "data");
    int fd = openat(dir_fd, name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return rc_fail(rc_from_errno(errno), "cannot open segment %s: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rc_fail(rc_from_errno(e), "cannot stat segment %s: %s", name, strerror(e));
    }
    segment *seg = seg_alloc(id, fd);
    if (!seg) {
        close(fd);
        return RC_ENOMEM;
    }
    seg->file_len = (uint64_t)st.st_size;
    atomic_store(&seg->size, (uint64_t)st.st_size);
    if (st.st_size > 0) {
        seg->map_len = (size_t)st.st_size;
        seg->map = mmap(NULL, seg->map_len, PROT_READ, MAP_SHARED, fd, 0);
        if (seg->map == MAP_FAILED) {
            seg->map = NULL;
            rci_seg_close(seg);
            return rc_fail(RC_ENOMEM, "cannot map segment %s: %s", name, strerror(errno));
        }
        madvise(seg->map, seg->map_len, MADV_RANDOM);
        seg->map_of_file = true;
        fmt_segment_header h;
        if (fmt_segment_header_decode(seg->map, seg->map_len, &h) == FMT_OK)
            seg->created_ms = (int64_t)h.created_ms;
    }
    *out = seg;
    return 0;
}

int rci_seg_open_copy(int dir_fd, uint64_t id, segment **out)
{
    char name[32];
    rci_seg_name(name, sizeof(name), id, "data");
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rc_fail(rc_from_errno(errno), "cannot open segment %s: %s", name, strerror(errno));
    struct stat st;
    segment *seg = NULL;
    int err = 0;
    if (fstat(fd, &st) != 0) {
        err = rc_fail(rc_from_errno(errno), "cannot stat segment %s", name);
        goto out;
    }
    seg = seg_alloc(id, -1);
    if (!seg) {
        err = RC_ENOMEM;
        goto out;
    }
    size_t len = (size_t)st.st_size, got = 0;
    if (len) {
        seg->map_len = len;
        seg->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (seg->map == MAP_FAILED) {
            seg->map = NULL;
            err = RC_ENOMEM;
            goto out;
        }
        while (got < len) {
            ssize_t n = pread(fd, seg->map + got, len - got, (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                err = rc_fail(rc_from_errno(errno), "cannot read segment %s", name);
                goto out;
            }
            if (n == 0)
                break; /* the writer shrank it meanwhile */
            got += (size_t)n;
        }
    }
    seg->file_len = got;
    atomic_store(&seg->size, got);
    fmt_segment_header h;
    if (got && fmt_segment_header_decode(seg->map, got, &h) == FMT_OK)
        seg->created_ms = (int64_t)h.created_ms;
    *out = seg;
    seg = NULL;
out:
    rci_seg_close(seg);
    close(fd);
    return err;
}

/* The preallocation step at the file's current length: its own size, from
 * SEG_PREALLOC_MIN up to SEG_PREALLOC_MAX. */
static uint64_t prealloc_step(uint64_t file_len)
{
    return file_len < SEG_PREALLOC_MIN   ? SEG_PREALLOC_MIN
           : file_len > SEG_PREALLOC_MAX ? SEG_PREALLOC_MAX
                                         : file_len;
}

/* Preallocate WANT more bytes (a multiple of the step) after file_len:
 * fallocate, and on the io_uring path zero-fill them (append_uring.h). */
static int seg_grow(segment *seg, uint64_t want)
{
    uint64_t file_len = atomic_load(&seg->file_len);
    if (seg->direct) /* end on a block: the zero-fill is O_DIRECT */
        want = (file_len + want + RCI_DIO_BLOCK - 1) / RCI_DIO_BLOCK * RCI_DIO_BLOCK - file_len;
    if (file_len + want > seg->map_len)
        want = seg->map_len - file_len;
    if (want == 0)
        return 0;
    int err = rci_fault_check(FAULT_GROW);
    if (!err && fallocate(seg->fd, 0, (off_t)file_len, (off_t)want) != 0)
        err = errno;
    if (err == EOPNOTSUPP) /* file systems without fallocate: extend sparsely */
        err = ftruncate(seg->fd, (off_t)(file_len + want)) ? errno : 0;
    if (!err && seg->direct) {
        /* from the first whole block: a file cut at a record's end (a seal
         * whose rotation then failed) reads zeros up to its block's end, and
         * the next group write rewrites that block anyway */
        uint64_t from = (file_len + RCI_DIO_BLOCK - 1) / RCI_DIO_BLOCK * RCI_DIO_BLOCK;
        int r = from < file_len + want ? rci_dw_zero(seg->dfd, from, file_len + want - from) : 0;
        err = r < 0 ? -r : 0;
    }
    if (err)
        return rc_fail(rc_from_errno(err), "cannot grow segment %08llu by %llu bytes: %s",
                       (unsigned long long)seg->id, (unsigned long long)want, strerror(err));
    /* published last: an appender uses the room only once it is ready */
    atomic_store(&seg->file_len, file_len + want);
    return 0;
}

int rci_seg_reserve(segment *seg, uint64_t need)
{
    uint64_t size = atomic_load_explicit(&seg->size, memory_order_relaxed);
    uint64_t file_len = atomic_load(&seg->file_len);
    if (size + need <= file_len)
        return 0;
    if (size + need > seg->map_len)
        return RC_ELIMIT; /* the caller rotates first */
    uint64_t want = size + need - file_len;
    uint64_t step = prealloc_step(file_len);
    return seg_grow(seg, (want + step - 1) / step * step);
}

bool rci_seg_wants_room(const segment *seg)
{
    uint64_t file_len = atomic_load(&seg->file_len);
    uint64_t size = atomic_load_explicit(&seg->size, memory_order_relaxed);
    return file_len < seg->map_len && file_len - size < prealloc_step(file_len) / 2;
}

int rci_seg_prepare(segment *seg, bool sync)
{
    if (!rci_seg_wants_room(seg))
        return 0;
    int err = seg_grow(seg, prealloc_step(atomic_load(&seg->file_len)));
    /* the new extents' metadata (and, on the io_uring path, the zero-fill's
     * conversion to written extents) goes to the journal here, so that the
     * next group write's flush has no journal commit to wait for */
    if (!err && sync && fdatasync(seg->fd) != 0)
        err = rc_fail(rc_from_errno(errno), "cannot sync segment %08llu's preallocation: %s",
                      (unsigned long long)seg->id, strerror(errno));
    return err;
}

int rci_seg_truncate(segment *seg)
{
    uint64_t size = atomic_load(&seg->size);
    if (atomic_load(&seg->file_len) == size)
        return 0;
    if (ftruncate(seg->fd, (off_t)size) != 0)
        return rc_fail(rc_from_errno(errno), "cannot truncate segment %08llu: %s",
                       (unsigned long long)seg->id, strerror(errno));
    atomic_store(&seg->file_len, size);
    return 0;
}

int rci_seg_remap(segment *seg, uint64_t upto)
{
    if (!seg->direct || upto <= seg->remapped)
        return 0;
    if (upto > seg->map_len)
        upto = seg->map_len;
    /* atomic for a reader copying from these pages: the old pages stay until
     * the new mapping is in place (one mmap_lock section), and both hold the
     * same bytes, which are durable and never written again */
    void *p = mmap(seg->map + seg->remapped, upto - seg->remapped, PROT_READ,
                   MAP_SHARED | MAP_FIXED, seg->fd, (off_t)seg->remapped);
    if (p == MAP_FAILED)
        return rc_fail(RC_ENOMEM, "cannot map segment %08llu over its staged bytes: %s",
                       (unsigned long long)seg->id, strerror(errno));
    seg->remapped = upto;
    return 0;
}

void rci_seg_drop_written(segment *seg, uint64_t end, uint64_t keep)
{
    if (seg->direct || !seg->map || end <= keep)
        return;
    long page = sysconf(_SC_PAGESIZE); /* glibc: from the auxiliary vector */
    if (page <= 0)
        page = 4096;
    uint64_t upto = (end - keep) / (uint64_t)page * (uint64_t)page;
    if (upto <= seg->resident_from || upto - seg->resident_from < SEG_DROP_STEP)
        return;
    /* a shared file mapping: the pages go back to the page cache, never lost */
    if (madvise(seg->map + seg->resident_from, upto - seg->resident_from, MADV_DONTNEED) == 0)
        seg->resident_from = upto;
}

void rci_seg_ckpt_reset(segment *seg)
{
    free(seg->ck);
    seg->ck = NULL;
    seg->ck_n = seg->ck_cap = 0;
    seg->ck_next = seg->ck_max = seg->ck_last_off = 0;
    seg->ck_broken = false;
}

void rci_seg_ckpt_note(segment *seg, uint64_t off, uint64_t max)
{
    if (seg->ck_broken)
        return;
    if (off < seg->ck_last_off) {
        seg->ck_broken = true;
        return;
    }
    seg->ck_last_off = off;
    if (off >= seg->ck_next && off > FMT_SEG_HEADER_LEN) {
        if (seg->ck_n == seg->ck_cap) {
            uint32_t cap = seg->ck_cap ? seg->ck_cap * 2 : 16;
            seg_ckpt *n = realloc(seg->ck, cap * sizeof(*n));
            if (!n) {
                seg->ck_broken = true;
                return;
            }
            seg->ck = n;
            seg->ck_cap = cap;
        }
        seg->ck[seg->ck_n++] = (seg_ckpt){.max_before = seg->ck_max, .off = off};
        seg->ck_next = off + SEG_CKPT_STEP;
    }
    if (max > seg->ck_max)
        seg->ck_max = max;
}

uint64_t rci_seg_ckpt_start(const segment *seg, uint64_t since)
{
    if (seg->ck_broken || seg->ck_n == 0 || seg->ck[0].max_before > since)
        return FMT_SEG_HEADER_LEN;
    uint32_t lo = 0, hi = seg->ck_n - 1; /* ck[lo].max_before <= since */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (seg->ck[mid].max_before <= since)
            lo = mid;
        else
            hi = mid - 1;
    }
    return seg->ck[lo].off;
}

void rci_seg_close(segment *seg)
{
    if (!seg)
        return;
    free(seg->ck);
    if (seg->map)
        munmap(seg->map, seg->map_len);
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->dfd >= 0)
        close(seg->dfd);
    free(seg);
}
