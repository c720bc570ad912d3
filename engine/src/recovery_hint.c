/*
 * recovery_hint.c — loading hinted segments at open, on several threads.
 *
 * Consecutive segments with a hint file are gathered into a window (up to
 * WINDOW_HINT_BYTES of hints). Each hint is read whole into memory (pread:
 * no mapping to fault in) and checked: a version 2 hint's header, trailer
 * checksum and block index by the opening thread, after which its blocks are
 * cut into jobs (a few per thread); a version 1 hint is one job.
 *
 * Step 1, one job per thread at a time: decode the job's entries in file
 * order and turn each into an *item* holding everything an insertion needs —
 * seq, keyspace, expiry, flags, offset, length and the key bytes (24 bytes
 * and the key; the key's hash picks the list and is computed again in step
 * 2, cheaper than carrying it) —
 * appended to one of 64 per-shard lists of the job. A version 1 entry
 * carries its key; for a version 2 entry the record's header and key are
 * read from the segment with pread into a buffer of the job (sequential
 * reads, in file order), the header checked against the entry (flags, seq,
 * keyspace, expiry, key length, total length: any disagreement and the hint
 * is not used, the segment is scanned instead) and the key copied out.
 *
 * Step 2, one keydir shard per thread at a time: insert that shard's items
 * of every hint of the window, hint by hint in segment order, job by job,
 * into whichever keyspace each names. Shards are independent (a key lives
 * in one), so each shard sees its records in exactly the order a single
 * thread would insert them, and the result does not depend on the thread
 * count: the same entries win (by seq; on equal seq the first inserted
 * stays), the same bytes are counted dead. Step 2 reads only its items,
 * front to back, never the segment or the hint; the shard's table (~1/64 of
 * the keydir) stays in cache while its entries go in.
 *
 * Memory. Every first touch of a fresh 4 KiB page is a page fault, and on a
 * virtual machine a fault costs several microseconds (measured here: ~10 us
 * per 4 KiB page, ~140 us per 2 MiB huge page); so the hint images and the
 * items come from bump allocators of the window (one for the images, one per
 * step 1 thread for its items and its read buffer) over regions of 2 MiB-
 * aligned anonymous memory advised for transparent huge pages, a job's list
 * blocks sized to its share of a shard (a hint of a few entries takes a few
 * hundred bytes, not 64 pages); a finished window hands its regions to the
 * next (already faulted in), and they are unmapped when the recovery ends.
 * Nothing in step 1 or 2 touches a page of a segment mapping.
 *
 * Between the steps the opening thread joins the jobs of each hint: seq
 * range, keyspace ids (the keyspaces are created here, so step 2 only looks
 * them up) and the segment's checkpoints (rci_seg_ckpt_note). A hint whose
 * job failed is skipped by step 2 and its segment scanned in its turn,
 * between the hints before and after it.
 */
#include "recovery.h"
#include "format/hint.h"
#include "format/record.h"
#include "format/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW_HINT_BYTES (8u << 20) /* hint bytes loaded at once (below) */
#define JOBS_PER_THREAD 4u           /* step 1 jobs per thread and hint */
#define AHEAD 16                     /* items whose slot is fetched ahead */
#define IBLOCK_MIN 256u              /* item bytes per block of a shard list: */
#define IBLOCK_MAX 4080u             /* sized to the job, so small hints stay small */
#define READ_BUF (256u << 10)        /* a thread's segment read buffer */
#define SCRATCH_HINT (8u << 20)      /* regions of the window's bump allocators */
#define REGION_HUGE (2u << 20)       /* regions this big are huge-page backed */
#define REGION_MIN (64u << 10)

#ifdef RC_FAULT_INJECTION
static size_t window_bytes = WINDOW_HINT_BYTES;
void rc_recovery_window(size_t bytes)
{
    window_bytes = bytes ? bytes : WINDOW_HINT_BYTES;
}
#else
#define window_bytes WINDOW_HINT_BYTES
#endif

/* ---- regions: anonymous memory in large, huge-page friendly pieces */

typedef struct region {
    struct region *next;
    size_t len; /* of the whole mapping, this header included */
} region;

#define REGION_HDR ((sizeof(region) + 63u) & ~(size_t)63u)

/* Regions given back by finished hints, reused by later ones (a reused
 * region costs no page fault), unmapped when the recovery ends. */
typedef struct region_pool {
    pthread_mutex_t mu;
    region *spare;
} region_pool;

/* A bump allocator over regions, owned by one job or one hint. */
typedef struct scratch {
    region_pool *pool;
    region *head;
    uint8_t *cur, *end;
} scratch;

/* A spare region of at least WANT bytes, or NULL. */
static region *pool_take(region_pool *p, size_t want)
{
    region *r = NULL;
    pthread_mutex_lock(&p->mu);
    for (region **at = &p->spare; *at; at = &(*at)->next) {
        if ((*at)->len >= want) {
            r = *at;
            *at = r->next;
            r->next = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return r;
}

static region *region_map(size_t want)
{
    size_t len;
    uint8_t *p;
    if (want >= REGION_HUGE / 2) {
        len = (want + REGION_HUGE - 1) & ~(size_t)(REGION_HUGE - 1);
        /* over-map by 2 MiB and cut, so that the region is aligned */
        uint8_t *raw = mmap(NULL, len + REGION_HUGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw == MAP_FAILED)
            return NULL;
        p = (uint8_t *)(((uintptr_t)raw + REGION_HUGE - 1) & ~(uintptr_t)(REGION_HUGE - 1));
        if (p > raw)
            munmap(raw, (size_t)(p - raw));
        if (raw + len + REGION_HUGE > p + len)
            munmap(p + len, (size_t)(raw + len + REGION_HUGE - (p + len)));
#ifdef MADV_HUGEPAGE
        madvise(p, len, MADV_HUGEPAGE); /* advice: fine if refused */
#endif
    } else {
        len = (want + REGION_MIN - 1) & ~(size_t)(REGION_MIN - 1);
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                 0);
        if (p == MAP_FAILED)
            return NULL;
    }
    region *r = (region *)p;
    r->len = len;
    r->next = NULL;
    return r;
}

/* N bytes (8-aligned) from A, in a new region of at least HINT bytes if the
 * current one is full; NULL on ENOMEM. */
static void *scratch_get(scratch *a, size_t n, size_t hint)
{
    n = (n + 7u) & ~(size_t)7u;
    if ((size_t)(a->end - a->cur) < n) {
        size_t want = REGION_HDR + n;
        if (want < hint)
            want = hint;
        region *r = pool_take(a->pool, want);
        if (!r && !(r = region_map(want)))
            return NULL;
        r->next = a->head;
        a->head = r;
        a->cur = (uint8_t *)r + REGION_HDR;
        a->end = (uint8_t *)r + r->len;
        if ((size_t)(a->end - a->cur) < n)
            return NULL;
    }
    void *p = a->cur;
    a->cur += n;
    return p;
}

/* Give A's regions to its pool; A is empty (and keeps its pool). */
static void scratch_free(scratch *a)
{
    region_pool *p = a->pool;
    if (a->head) {
        pthread_mutex_lock(&p->mu);
        for (region *r = a->head, *next; r; r = next) {
            next = r->next;
            r->next = p->spare;
            p->spare = r;
        }
        pthread_mutex_unlock(&p->mu);
    }
    *a = (scratch){.pool = p};
}

/* ---- items: what step 1 hands step 2, one per hint entry */

typedef struct rec_item {
    uint64_t seq;
    uint32_t off, total;
    uint32_t ks;
    uint16_t klen;
    uint8_t flags; /* the record's, batch bits cleared; HAS_EXPIRY iff expiry */
    uint8_t pad;
    /* then the i64 expiry if flags & HAS_EXPIRY, then the key, to 8 bytes */
} rec_item;

static inline size_t item_size(size_t klen, bool exp)
{
    return (sizeof(rec_item) + (exp ? 8u : 0u) + klen + 7u) & ~(size_t)7u;
}

static inline const uint8_t *item_key(const rec_item *it)
{
    return (const uint8_t *)(it + 1) + (it->flags & FMT_REC_HAS_EXPIRY ? 8u : 0u);
}

static inline uint64_t item_exp(const rec_item *it)
{
    uint64_t v = 0;
    if (it->flags & FMT_REC_HAS_EXPIRY)
        memcpy(&v, it + 1, sizeof(v));
    return v;
}

typedef struct iblock {
    struct iblock *next;
    uint32_t used, cap;
    _Alignas(8) uint8_t data[];
} iblock;

typedef struct ilist {
    iblock *head, *tail;
} ilist;

/* ---- jobs and hints */

typedef struct ck_cand {
    uint64_t off, max;
} ck_cand;

struct hint_src;

/* Step 1's unit: blocks [b0, b1) of a version 2 hint, or a whole version 1
 * hint. Its items, its seqs, keyspaces and checkpoint candidates. */
typedef struct load_job {
    struct hint_src *s;
    uint64_t b0, b1;
    scratch *mem; /* the running thread's (items live until the window ends) */
    uint32_t blk; /* item bytes per new block */
    ilist list[KEYDIR_SHARDS];
    size_t count[KEYDIR_SHARDS];
    /* the segment bytes [at, at + have) in buf (version 2) */
    uint8_t *buf;
    uint64_t at;
    size_t have;
    seq_range seqs;
    uint32_t *ks_ids;
    size_t n_ks, ids_cap;
    uint32_t last_ks;
    /* checkpoint candidates: runs of entries, each noted with its highest seq */
    ck_cand *ck;
    size_t nck, ck_cap;
    uint64_t ck_next, ck_last;
    bool ck_broken;
    int fail; /* 0, FMT_* (hint or record mismatch), or -1 (ENOMEM) */
} load_job;

typedef struct hint_src {
    segment *seg;
    int fd;
    size_t len;
    uint8_t *file; /* the hint file, LEN bytes (in the window's image scratch) */
    bool ok;       /* verified and joined */
    uint16_t version;
    fmt_hint_header h;
    uint64_t nblocks;
    load_job *jobs;
    size_t njobs;
    seq_range seqs;
    uint32_t *ks_ids; /* keyspace ids the entries name (<= KS_ID_MAX), sorted, unique */
    size_t n_ks;
    bool catalog_only;           /* recovery's pass 1: keyspace 0's entries only */
    size_t count[KEYDIR_SHARDS]; /* items per shard, all jobs */
} hint_src;

struct rec_window {
    rc_db *db;
    hint_src *src;
    size_t n, cap;
    size_t bytes;
    unsigned threads;
    /* the current step's work: jobs (step 1) or the run src[lo, hi) (step 2) */
    load_job **jobs;
    size_t njobs;
    size_t lo, hi;
    uint32_t run_ks; /* the one keyspace id the run names, else UINT32_MAX */
    _Atomic size_t next;
    pthread_mutex_t mu; /* guards the fields below (step 2's results) */
    uint64_t corrupt;
    int err;
    region_pool pool; /* regions of finished windows, reused */
    /* the window's bump allocators: hint images (opening thread) and, per
     * step 1 thread, items and a read buffer; emptied into POOL when the
     * window is done */
    scratch imem;
    scratch tmem[RECOVERY_THREADS_MAX];
    uint8_t *rbuf[RECOVERY_THREADS_MAX];
    _Atomic unsigned thread_no; /* hands out tmem[] */
};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- step 1 */

/* Note one entry at OFF with SEQ for the segment's checkpoints: the job
 * keeps runs of entries at least SEG_CKPT_STEP apart, each with its highest
 * seq, which the join notes in order (the same rule as rci_seg_ckpt_note,
 * applied to runs instead of single records). */
static bool ck_entry(load_job *j, uint64_t off, uint64_t seq)
{
    if (off < j->ck_last)
        j->ck_broken = true;
    j->ck_last = off;
    if (j->nck == 0 || (off >= j->ck_next && off > FMT_SEG_HEADER_LEN)) {
        if (j->nck == j->ck_cap) {
            size_t cap = j->ck_cap ? j->ck_cap * 2 : 16;
            ck_cand *n = realloc(j->ck, cap * sizeof(*n));
            if (!n)
                return false;
            j->ck = n;
            j->ck_cap = cap;
        }
        j->ck[j->nck++] = (ck_cand){.off = off, .max = seq};
        if (off > FMT_SEG_HEADER_LEN)
            j->ck_next = off + SEG_CKPT_STEP;
    } else if (seq > j->ck[j->nck - 1].max) {
        j->ck[j->nck - 1].max = seq;
    }
    return true;
}

/* Append one record's item to job J. false on ENOMEM. */
static bool emit(load_job *j, uint8_t flags, uint64_t seq, uint32_t ks, uint64_t exp,
                 const uint8_t *key, uint32_t klen, uint32_t off, uint32_t total)
{
    uint64_t hash = rci_keydir_hash(key, klen);
    unsigned sh = keydir_shard_of(hash);
    size_t sz = item_size(klen, exp != 0);
    ilist *l = &j->list[sh];
    if (!l->tail || l->tail->cap - l->tail->used < sz) {
        uint32_t cap = j->blk < sz ? (uint32_t)sz : j->blk;
        iblock *b = scratch_get(j->mem, sizeof(iblock) + cap, SCRATCH_HINT);
        if (!b)
            return false;
        b->next = NULL;
        b->used = 0;
        b->cap = cap;
        if (l->tail)
            l->tail->next = b;
        else
            l->head = b;
        l->tail = b;
    }
    rec_item *it = (rec_item *)(l->tail->data + l->tail->used);
    l->tail->used += (uint32_t)sz;
    it->seq = seq;
    it->off = off;
    it->total = total;
    it->ks = ks;
    it->klen = (uint16_t)klen;
    it->flags = (uint8_t)((flags & ~(FMT_REC_BATCH | FMT_REC_BATCH_END | FMT_REC_HAS_EXPIRY)) |
                          (exp ? FMT_REC_HAS_EXPIRY : 0));
    it->pad = 0;
    uint8_t *k = (uint8_t *)(it + 1);
    if (exp) {
        memcpy(k, &exp, sizeof(exp));
        k += 8;
    }
    memcpy(k, key, klen);
    j->count[sh]++;
    if (!ck_entry(j, off, seq))
        return false;
    if (ks > KS_ID_MAX)
        return true; /* damage, counted by step 2 */
    rci_seq_note(&j->seqs, seq);
    if (ks != j->last_ks) {
        j->last_ks = ks;
        if (j->n_ks == j->ids_cap) {
            j->ids_cap = j->ids_cap ? j->ids_cap * 2 : 4;
            uint32_t *n = realloc(j->ks_ids, j->ids_cap * sizeof(*n));
            if (!n)
                return false;
            j->ks_ids = n;
        }
        j->ks_ids[j->n_ks++] = ks;
    }
    return true;
}

/* Segment bytes [off, off + need) of J's segment, read ahead up to WANT
 * bytes; NULL if they cannot be read. */
static const uint8_t *seg_bytes(load_job *j, uint64_t off, size_t need, size_t want)
{
    segment *seg = j->s->seg;
    if (seg->fd < 0) /* a private copy in memory (read-only opener) */
        return seg->map ? seg->map + off : NULL;
    if (off >= j->at && off + need <= j->at + j->have)
        return j->buf + (off - j->at);
    if (!j->buf)
        return NULL;
    if (want < need)
        want = need;
    if (want > READ_BUF)
        want = READ_BUF;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(seg->fd, j->buf + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    j->at = off;
    j->have = got;
    return got >= need ? j->buf : NULL;
}

static int v2_entry(void *ctx, const fmt_hint_header *h, uint64_t i, const fmt_hint_entry *e,
                    size_t pos)
{
    (void)h;
    (void)i;
    (void)pos;
    load_job *j = ctx;
    if (j->s->catalog_only && e->ks != FMT_KS_CATALOG)
        return 0; /* pass 1: nothing else is read (pass 2 checks it) */
    /* the block walk checked offset + total_len <= covered = the segment's
     * size; a record's header and key are at most this long */
    size_t need = FMT_REC_HEADER_MAX + (size_t)e->klen;
    if (need > e->total_len)
        need = e->total_len;
    /* small records: read ahead; a large one: its header and key only */
    size_t want = e->total_len >= READ_BUF / 4 ? need : READ_BUF;
    uint64_t size = atomic_load_explicit(&j->s->seg->size, memory_order_relaxed);
    if (want > size - e->offset)
        want = (size_t)(size - e->offset);
    const uint8_t *p = seg_bytes(j, e->offset, need, want);
    fmt_record r;
    const uint8_t ign = FMT_REC_BATCH | FMT_REC_BATCH_END | FMT_REC_HAS_KS | FMT_REC_HAS_EXPIRY;
    if (!p || fmt_record_peek(p, need, &r) != FMT_OK ||
        (r.flags & (uint8_t)~ign) != (e->flags & (uint8_t)~ign) || r.seq != e->seq ||
        r.ks != e->ks || r.expires_at_ms != e->expires_at_ms || r.klen != e->klen ||
        r.total_len != e->total_len)
        return j->fail = FMT_ECORRUPT;
    size_t hdr = r.total_len - r.klen - r.vlen;
    if (hdr + r.klen > need)
        return j->fail = FMT_ECORRUPT;
    if (!emit(j, r.flags, r.seq, r.ks, r.expires_at_ms, p + hdr, r.klen, e->offset, r.total_len))
        return j->fail = -1;
    return 0;
}

static int v1_entry(void *ctx, const fmt_hint_header *h, uint64_t i, const fmt_hint_entry *e,
                    size_t pos)
{
    (void)h;
    (void)i;
    (void)pos;
    load_job *j = ctx;
    if (j->s->catalog_only && e->ks != FMT_KS_CATALOG)
        return 0;
    if (!emit(j, e->flags, e->seq, e->ks, e->expires_at_ms, e->key, e->klen, e->offset,
              e->total_len))
        return j->fail = -1;
    return 0;
}

static void job_run(load_job *j)
{
    hint_src *s = j->s;
    if (s->version == 2) {
        for (uint64_t b = j->b0; b < j->b1 && !j->fail; b++) {
            int rc = fmt_hint2_block_walk(s->file, s->len, &s->h, b, v2_entry, j);
            if (rc && !j->fail)
                j->fail = rc;
        }
        return;
    }
    /* version 1: one pass checks every entry before v1_entry sees it, and
     * nothing it saw is used unless the whole hint verifies */
    fmt_hint_header h;
    int rc = fmt_hint_file_walk(s->file, s->len, &h, v1_entry, j);
    if (!j->fail &&
        (rc != FMT_OK || h.segment_id != s->seg->id || h.covered != atomic_load(&s->seg->size)))
        j->fail = rc != FMT_OK ? rc : FMT_ECORRUPT;
}

static void job_release(load_job *j)
{
    free(j->ks_ids);
    free(j->ck);
}

/* ---- the opening thread: a hint read and cut into jobs, then joined */

/* Read SRC's hint and cut it into jobs: 0, or RC_ENOMEM. A hint that cannot
 * be read or fails its checks is left with no jobs and !ok (its segment is
 * scanned). */
static int src_open(rec_window *w, hint_src *s)
{
    uint8_t *p = scratch_get(&w->imem, s->len, SCRATCH_HINT);
    if (!p) {
        close(s->fd);
        s->fd = -1;
        return RC_ENOMEM;
    }
    size_t got = 0;
    while (got < s->len) {
        ssize_t r = pread(s->fd, p + got, s->len - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(s->fd);
    s->fd = -1;
    if (got != s->len)
        return 0; /* changed or unreadable: scanned */
    s->file = p;
    s->catalog_only = w->db->rec_pass == REC_PASS_CATALOG;
    s->version = fmt_get_u16(p + 4);
    size_t njobs = 1, entries;
    if (s->version == 2) {
        if (fmt_hint2_file_open(p, s->len, &s->h, &s->nblocks) != FMT_OK ||
            s->h.segment_id != s->seg->id || s->h.covered != atomic_load(&s->seg->size))
            return 0;
        if (s->h.count == 0) {
            s->ok = true;
            return 0;
        }
        size_t most = (size_t)w->threads * JOBS_PER_THREAD;
        njobs = s->nblocks < most ? (size_t)s->nblocks : most;
        entries = (size_t)s->h.count;
    } else if (s->version == 1) {
        entries = s->len / 16u; /* a guess: more regions come if needed */
    } else {
        return 0; /* another version: scanned */
    }
    if (!(s->jobs = calloc(njobs, sizeof(*s->jobs))))
        return RC_ENOMEM;
    s->njobs = njobs;
    /* items of 16-byte keys are 40 bytes: blocks about a job's share of
     * one shard, so that a small hint does not take 64 pages */
    size_t per = entries / njobs * 40u / KEYDIR_SHARDS;
    uint32_t blk = per < IBLOCK_MIN ? IBLOCK_MIN : per > IBLOCK_MAX ? IBLOCK_MAX : (uint32_t)per;
    for (size_t i = 0; i < njobs; i++) {
        load_job *j = &s->jobs[i];
        j->s = s;
        j->b0 = s->nblocks * i / njobs;
        j->b1 = s->nblocks * (i + 1) / njobs;
        j->last_ks = UINT32_MAX;
        j->blk = (blk + 7u) & ~7u;
    }
    return 0;
}

/* Join the jobs of SRC after step 1: 0 (SRC->ok set if all succeeded) or
 * RC_ENOMEM. */
static int src_join(hint_src *s)
{
    if (!s->file || !s->njobs)
        return 0;
    size_t nks = 0;
    for (size_t i = 0; i < s->njobs; i++) {
        if (s->jobs[i].fail == -1)
            return RC_ENOMEM;
        if (s->jobs[i].fail)
            return 0; /* the hint does not verify or match its segment: scan it */
        nks += s->jobs[i].n_ks;
    }
    for (size_t i = 0; i < s->njobs; i++) {
        load_job *j = &s->jobs[i];
        for (unsigned sh = 0; sh < KEYDIR_SHARDS; sh++)
            s->count[sh] += j->count[sh];
        if (j->seqs.max) {
            rci_seq_note(&s->seqs, j->seqs.min);
            rci_seq_note(&s->seqs, j->seqs.max);
        }
    }
    if (nks) {
        if (!(s->ks_ids = malloc(nks * sizeof(*s->ks_ids))))
            return RC_ENOMEM;
        for (size_t i = 0; i < s->njobs; i++) {
            if (!s->jobs[i].n_ks)
                continue; /* recovery's pass 1: a job may hold no catalogue entry */
            memcpy(s->ks_ids + s->n_ks, s->jobs[i].ks_ids, s->jobs[i].n_ks * sizeof(uint32_t));
            s->n_ks += s->jobs[i].n_ks;
        }
        qsort(s->ks_ids, s->n_ks, sizeof(*s->ks_ids), cmp_u32);
        size_t k = 1;
        for (size_t i = 1; i < s->n_ks; i++)
            if (s->ks_ids[i] != s->ks_ids[k - 1])
                s->ks_ids[k++] = s->ks_ids[i];
        s->n_ks = k;
    }
    segment *seg = s->seg;
    if (s->catalog_only) {
        s->ok = true; /* pass 2 sees every entry and notes the checkpoints */
        return 0;
    }
    rci_seg_ckpt_reset(seg);
    for (size_t i = 0; i < s->njobs; i++) {
        const load_job *j = &s->jobs[i];
        if (j->ck_broken)
            seg->ck_broken = true; /* entries out of file order */
        for (size_t k = 0; k < j->nck; k++)
            rci_seg_ckpt_note(seg, j->ck[k].off, j->ck[k].max);
    }
    s->ok = true;
    return 0;
}

static void src_release(hint_src *s)
{
    if (s->fd >= 0)
        close(s->fd);
    for (size_t i = 0; i < s->njobs; i++)
        job_release(&s->jobs[i]);
    free(s->jobs);
    free(s->ks_ids);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

/* ---- step 2 */

static inline rc_keyspace *ks_of(rc_db *db, uint32_t id, uint32_t *cache_id, rc_keyspace **cache)
{
    if (id != *cache_id) {
        *cache_id = id;
        *cache = id <= KS_ID_MAX ? rci_ks_by_id(db, id) : NULL;
    }
    return *cache;
}

/* The item after IT in its list (crossing to the next block), or NULL. */
static inline const rec_item *item_next(const rec_item *it, const iblock **b)
{
    const uint8_t *p = (const uint8_t *)it + item_size(it->klen, it->flags & FMT_REC_HAS_EXPIRY);
    if (p < (*b)->data + (*b)->used)
        return (const rec_item *)p;
    for (*b = (*b)->next; *b; *b = (*b)->next)
        if ((*b)->used)
            return (const rec_item *)(*b)->data;
    return NULL;
}

static inline const rec_item *list_first(const ilist *l, const iblock **b)
{
    for (*b = l->head; *b; *b = (*b)->next)
        if ((*b)->used)
            return (const rec_item *)(*b)->data;
    return NULL;
}

/* Insert the items of list L in order; each item's key is hashed and its
 * table slot fetched AHEAD items before its insertion. */
static int load_list(rc_db *db, const ilist *l, rec_acct *a)
{
    const iblock *bi, *ba;
    const rec_item *it = list_first(l, &bi), *ahead = list_first(l, &ba);
    uint32_t cid = UINT32_MAX, aid = UINT32_MAX;
    rc_keyspace *cks = NULL, *aks = NULL;
    uint64_t hash[AHEAD];
    size_t n_ahead = 0, n_done = 0;
    for (; it; it = item_next(it, &bi), n_done++) {
        while (ahead && n_ahead < n_done + AHEAD) {
            uint64_t h = rci_keydir_hash(item_key(ahead), ahead->klen);
            hash[n_ahead++ % AHEAD] = h;
            rc_keyspace *ks = ks_of(db, ahead->ks, &aid, &aks);
            if (ks)
                rci_keydir_prefetch(ks->kd, h);
            ahead = item_next(ahead, &ba);
        }
        int err = rci_rec_insert(a, ks_of(db, it->ks, &cid, &cks), it->flags, it->seq, it->ks,
                                 item_exp(it), item_key(it), it->klen, it->off, it->total,
                                 hash[n_done % AHEAD]);
        if (err)
            return err;
    }
    return 0;
}

/* Step 2 for one shard: its items of the run w->src[lo, hi). */
static int load_shard(rec_window *w, unsigned shard, rec_acct *a)
{
    rc_db *db = w->db;
    /* A run naming one keyspace: size the shard's table for all of its
     * entries at once (no rehash on the way), then give back what
     * duplicates left unused. Best effort: growth copes otherwise. */
    rc_keyspace *rks = w->run_ks <= KS_ID_MAX ? rci_ks_by_id(db, w->run_ks) : NULL;
    if (rks) {
        size_t more = 0;
        for (size_t f = w->lo; f < w->hi; f++)
            more += w->src[f].count[shard];
        (void)rci_keydir_shard_reserve(rks->kd, shard, more);
    }
    int err = 0;
    for (size_t f = w->lo; f < w->hi && !err; f++) {
        hint_src *s = &w->src[f];
        rci_rec_acct_seg(a, s->seg);
        for (size_t k = 0; k < s->njobs && !err; k++)
            err = load_list(db, &s->jobs[k].list[shard], a);
    }
    if (rks)
        rci_keydir_shard_trim(rks->kd, shard);
    return err;
}

static void *step_prepare(void *arg)
{
    rec_window *w = arg;
    unsigned t = atomic_fetch_add(&w->thread_no, 1);
    scratch *m = &w->tmem[t];
    if (!w->rbuf[t])
        w->rbuf[t] = scratch_get(m, READ_BUF, SCRATCH_HINT);
    size_t i;
    while ((i = atomic_fetch_add(&w->next, 1)) < w->njobs) {
        load_job *j = w->jobs[i];
        if (!w->rbuf[t]) {
            j->fail = -1;
            continue;
        }
        j->mem = m;
        j->buf = w->rbuf[t];
        job_run(j);
    }
    return NULL;
}

static void *step_load(void *arg)
{
    rec_window *w = arg;
    rec_acct a = {.db = w->db};
    int err = 0;
    size_t shard;
    while (!err && (shard = atomic_fetch_add(&w->next, 1)) < KEYDIR_SHARDS)
        err = load_shard(w, (unsigned)shard, &a);
    rci_rec_acct_flush(&a);
    pthread_mutex_lock(&w->mu);
    w->corrupt += a.corrupt;
    if (err && !w->err)
        w->err = err;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Run FN on W with up to w->threads threads, this one included. Work is
 * handed out through w->next, so fewer threads (pthread_create failing)
 * only take longer. */
static void run_step(rec_window *w, void *(*fn)(void *), size_t jobs)
{
    atomic_store(&w->next, 0);
    atomic_store(&w->thread_no, 0);
    pthread_t tid[RECOVERY_THREADS_MAX];
    unsigned extra = 0, want = w->threads < jobs ? w->threads : (unsigned)jobs;
    while (extra + 1 < want && pthread_create(&tid[extra], NULL, fn, w) == 0)
        extra++;
    fn(w);
    while (extra)
        pthread_join(tid[--extra], NULL);
}

/* Step 2 for the verified hints src[lo, hi). */
static int load_run(rec_window *w, size_t lo, size_t hi)
{
    rc_db *db = w->db;
    w->lo = lo;
    w->hi = hi;
    w->run_ks = UINT32_MAX;
    for (size_t k = lo; k < hi; k++) {
        const hint_src *s = &w->src[k];
        if (s->n_ks > 1 || (s->n_ks == 1 && w->run_ks != UINT32_MAX && w->run_ks != s->ks_ids[0])) {
            w->run_ks = UINT32_MAX;
            break;
        }
        if (s->n_ks == 1)
            w->run_ks = s->ks_ids[0];
    }
    w->corrupt = 0;
    w->err = 0;
    run_step(w, step_load, KEYDIR_SHARDS);
    db->corrupt_records += w->corrupt;
    for (size_t i = lo; i < hi; i++) {
        hint_src *s = &w->src[i];
        if (db->rec_pass != REC_PASS_CATALOG)
            db->hint_files_used++;
        s->seg->hint_bytes = s->len;
        atomic_store(&s->seg->has_hint, true);
        rci_rec_publish_seqs(db, s->seg, &s->seqs);
        src_release(s);
    }
    return w->err;
}

int rci_window_flush(rec_window *w, uint64_t tail_id)
{
    rc_db *db = w->db;
    int err = 0;
    if (!w->n)
        return 0;
    size_t njobs = 0;
    for (size_t i = 0; i < w->n && !err; i++) {
        err = src_open(w, &w->src[i]);
        njobs += w->src[i].njobs;
    }
    load_job **jobs = err ? NULL : malloc((njobs ? njobs : 1) * sizeof(*jobs));
    if (!err && !jobs)
        err = RC_ENOMEM;
    if (!err) {
        w->njobs = 0;
        for (size_t i = 0; i < w->n; i++)
            for (size_t k = 0; k < w->src[i].njobs; k++)
                jobs[w->njobs++] = &w->src[i].jobs[k];
        w->jobs = jobs;
        run_step(w, step_prepare, w->njobs);
        w->jobs = NULL;
    }
    free(jobs);
    for (size_t i = 0; i < w->n && !err; i++)
        err = src_join(&w->src[i]);
    for (size_t i = 0; i < w->n && !err;) {
        if (!w->src[i].ok) {
            segment *seg = w->src[i].seg;
            src_release(&w->src[i]);
            err = rci_rec_scan_one(db, seg, seg->id == tail_id);
            i++;
            continue;
        }
        size_t j = i;
        while (j < w->n && w->src[j].ok)
            j++;
        err = load_run(w, i, j);
        i = j;
    }
    for (size_t i = 0; i < w->n; i++)
        src_release(&w->src[i]);
    scratch_free(&w->imem);
    for (unsigned t = 0; t < RECOVERY_THREADS_MAX; t++) {
        scratch_free(&w->tmem[t]);
        w->rbuf[t] = NULL;
    }
    w->n = 0;
    w->bytes = 0;
    return err;
}

bool rci_window_add(rec_window *w, segment *seg)
{
    char name[32];
    rci_seg_name(name, sizeof(name), seg->id, "hint");
    int fd = openat(w->db->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN ||
        (uint64_t)st.st_size > SIZE_MAX / 2) {
        close(fd);
        return false;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        hint_src *n = realloc(w->src, cap * sizeof(*n));
        if (!n) {
            close(fd);
            return false; /* scanned instead */
        }
        w->src = n;
        w->cap = cap;
    }
    hint_src *s = &w->src[w->n++];
    memset(s, 0, sizeof(*s));
    s->seg = seg;
    s->fd = fd;
    s->len = (size_t)st.st_size;
    w->bytes += s->len;
    return true;
}

bool rci_window_full(const rec_window *w)
{
    return w->bytes >= window_bytes;
}

rec_window *rci_window_new(rc_db *db, unsigned threads)
{
    rec_window *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->db = db;
    w->threads = threads ? threads : 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->pool.mu, NULL);
    w->imem.pool = &w->pool;
    for (unsigned t = 0; t < RECOVERY_THREADS_MAX; t++)
        w->tmem[t].pool = &w->pool;
    return w;
}

void rci_window_free(rec_window *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        src_release(&w->src[i]);
    free(w->src);
    scratch_free(&w->imem);
    for (unsigned t = 0; t < RECOVERY_THREADS_MAX; t++)
        scratch_free(&w->tmem[t]);
    for (region *r = w->pool.spare, *next; r; r = next) {
        next = r->next;
        munmap(r, r->len);
    }
    pthread_mutex_destroy(&w->pool.mu);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
