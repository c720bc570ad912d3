/*
 * workloads.c — kvbench's workloads, run the same way against every backend.
 *
 * Keys. Key number u = mix(i) for key index i, where mix is the SplitMix64
 * finaliser: a bijection on 64 bits, so index i always names the same key,
 * distinct indexes name distinct keys, and index order is a random key order.
 * A key is u as 16 lowercase hex digits (8 big-endian bytes for key sizes
 * 8..15) padded to --key-size with bytes derived from u, so byte order equals
 * numeric order of u (fillseq sorts the numbers once, untimed). "Loaded"
 * means indexes [0, loaded) are present; absent keys use indexes >= 2^63.
 *
 * Values are slices at random offsets of a per-thread pool of PRNG bytes:
 * incompressible, deterministic for a seed, no per-op generation cost.
 *
 * Threads claim chunks of op indexes from one atomic counter, so the
 * keyspace is split without a fixed partition, and a fill stopped by the
 * --seconds cap (checked between chunks) still leaves a prefix of indexes
 * loaded. Each op is timed alone into the thread's histogram.
 *
 * Fills (fillseq, fillrandom, fillbatch, fillsync) start from an empty
 * directory; every other workload first makes all N keys present, untimed:
 * a full load when nothing is loaded, or the rest of the keys after a fill
 * the --seconds cap stopped early (so no engine reads a smaller data set than
 * another: its row notes how many keys were added). The engine is (re)opened whenever a workload
 * needs another sync mode: fillsync always runs with every write durable.
 */
#include "workloads.h"
#include "keys.h"
#include "ycsb.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const kvb_workload_names[] = {
    "fillseq",
    "fillrandom",
    "fillbatch",
    "overwrite",
    "readrandom",
    "readmissing",
    "readwhilewriting",
    "fillsync",
    "deleterandom",
    "mixed",
    "idle",
    "scan",
    "recovery",
    "compact",
    "mixedwhilecompact",
    "ycsb-a",
    "ycsb-b",
    "ycsb-c",
    "ycsb-d",
    "ycsb-e",
    "ycsb-f",
    NULL,
};

bool kvb_workload_known(const char *name)
{
    for (int i = 0; kvb_workload_names[i]; i++)
        if (strcmp(kvb_workload_names[i], name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------ the workers */

typedef enum op_kind {
    OP_FILL_SEQ,
    OP_FILL_RANDOM,
    OP_FILL_BATCH,
    OP_OVERWRITE,
    OP_READ,
    OP_READ_MISSING,
    OP_DELETE,
    OP_MIXED,
    OP_SCAN,
    OP_YCSB_A, /* 50 % read, 50 % update; zipfian */
    OP_YCSB_B, /* 95 % read, 5 % update; zipfian */
    OP_YCSB_C, /* 100 % read; zipfian */
    OP_YCSB_D, /* 95 % read of the latest, 5 % insert */
    OP_YCSB_E, /* 95 % short scan (1..100 keys) from a zipfian key, 5 % insert */
    OP_YCSB_F, /* 50 % read, 50 % read-modify-write; zipfian */
} op_kind;

typedef struct shared {
    kvb_session *s;
    op_kind kind;
    _Atomic uint64_t next; /* next op index to claim */
    uint64_t total;        /* op indexes to run */
    uint64_t chunk;
    uint64_t deadline_ns;
    _Atomic bool readers_done; /* readwhilewriting: stops the writer */
    _Atomic bool capped;
    const kvb_zipf *zipf;      /* YCSB workloads: over the loaded keys */
    _Atomic uint64_t inserted; /* YCSB D and E: keys [loaded, loaded + inserted) */
    pthread_barrier_t start;
} shared;

typedef struct worker {
    shared *sh;
    int tid;
    bool side_writer; /* readwhilewriting's writer: overwrites until readers end */
    pthread_t th;
    kvb_hist hist;
    uint64_t ops, found, missing, errors;
} worker;

static int count_get(worker *w, int rc)
{
    if (rc == KVB_FOUND)
        w->found++;
    else if (rc == KVB_MISSING)
        w->missing++;
    return rc < 0 ? -1 : 0;
}

/* One YCSB operation (reads and updates on zipfian keys, inserts of new
 * keys, short scans, read-modify-writes): the op mixes of the paper's core
 * workloads A-F. An insert takes the next key index after the loaded ones,
 * so the keys stay those of fillrandom. */
static int ycsb_op(shared *sh, void *tctx, op_kind kind, uint64_t *rng, unsigned char *key,
                   const unsigned char *val, kvb_buf *buf, worker *w)
{
    kvb_session *s = sh->s;
    size_t ks = s->p->key_size, vs = s->p->value_size;
    unsigned pct = (unsigned)(rng_next(rng) % 100);
    double u = kvb_unit(rng_next(rng));
    static const unsigned read_pct[] = {50, 95, 100, 95, 95, 50}; /* A..F */
    bool read = pct < read_pct[kind - OP_YCSB_A];
    if ((kind == OP_YCSB_D || kind == OP_YCSB_E) && !read) { /* insert */
        uint64_t idx = s->loaded + atomic_fetch_add(&sh->inserted, 1);
        key_format(mix64(idx), ks, key);
        return s->be->put(s->db, tctx, key, ks, val, vs);
    }
    if (kind == OP_YCSB_D) {
        uint64_t count = s->loaded + atomic_load(&sh->inserted);
        key_format(mix64(kvb_zipf_latest(sh->zipf, u, count)), ks, key);
        return count_get(w, s->be->get(s->db, tctx, key, ks, buf));
    }
    key_format(mix64(kvb_zipf_scrambled(sh->zipf, u)), ks, key);
    if (kind == OP_YCSB_E) {
        size_t len = 1 + (size_t)(rng_next(rng) % KVB_YCSB_MAX_SCAN);
        long got = s->be->scan(s->db, tctx, key, ks, len, buf);
        if (got < 0)
            return -1;
        w->found += (uint64_t)got;
        return 0;
    }
    if (read)
        return count_get(w, s->be->get(s->db, tctx, key, ks, buf));
    if (kind == OP_YCSB_F) { /* read-modify-write: the read, then the write */
        int rc = s->be->get(s->db, tctx, key, ks, buf);
        if (rc < 0 || count_get(w, rc) != 0)
            return -1;
    }
    return s->be->put(s->db, tctx, key, ks, val, vs);
}

static int do_op(shared *sh, void *tctx, op_kind kind, uint64_t idx, uint64_t *rng,
                 unsigned char *key, const unsigned char *pool, size_t pool_len, kvb_buf *buf,
                 worker *w)
{
    kvb_session *s = sh->s;
    const kvb_params *p = s->p;
    size_t ks = p->key_size, vs = p->value_size;
    const unsigned char *val = pool + rng_next(rng) % (pool_len - vs + 1);
    int rc;
    switch (kind) {
    case OP_FILL_SEQ:
        key_format(s->sorted[idx], ks, key);
        return s->be->put(s->db, tctx, key, ks, val, vs);
    case OP_FILL_RANDOM:
        key_format(mix64(idx), ks, key);
        return s->be->put(s->db, tctx, key, ks, val, vs);
    case OP_OVERWRITE:
        key_format(mix64(rng_next(rng) % s->loaded), ks, key);
        return s->be->put(s->db, tctx, key, ks, val, vs);
    case OP_DELETE:
        key_format(mix64(s->deleted + idx), ks, key);
        rc = s->be->del(s->db, tctx, key, ks);
        break;
    case OP_MIXED:
        key_format(mix64(rng_next(rng) % s->loaded), ks, key);
        if (rng_next(rng) % 100 >= p->read_pct)
            return s->be->put(s->db, tctx, key, ks, val, vs);
        rc = s->be->get(s->db, tctx, key, ks, buf);
        break;
    case OP_READ:
        key_format(mix64(rng_next(rng) % s->loaded), ks, key);
        rc = s->be->get(s->db, tctx, key, ks, buf);
        break;
    case OP_READ_MISSING:
        key_format(mix64((1ull << 63) | (rng_next(rng) >> 1)), ks, key);
        rc = s->be->get(s->db, tctx, key, ks, buf);
        break;
    case OP_SCAN: {
        key_format(mix64(rng_next(rng) % s->loaded), ks, key);
        long got = s->be->scan(s->db, tctx, key, ks, p->scan_limit, buf);
        if (got < 0)
            return -1;
        w->found += (uint64_t)got; /* keys listed */
        return 0;
    }
    case OP_YCSB_A:
    case OP_YCSB_B:
    case OP_YCSB_C:
    case OP_YCSB_D:
    case OP_YCSB_E:
    case OP_YCSB_F:
        return ycsb_op(sh, tctx, kind, rng, key, val, buf, w);
    default:
        return -1;
    }
    return count_get(w, rc);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    kvb_session *s = sh->s;
    const kvb_params *p = s->p;
    uint64_t rng = p->seed * 1000003u + (uint64_t)w->tid * 7919u + 1;
    size_t pool_len = p->value_size * 4 > (1u << 20) ? p->value_size * 4 : (1u << 20);
    unsigned char *pool = malloc(pool_len);
    unsigned char *key = malloc(p->key_size);
    kvb_kv *kvs = calloc(p->batch, sizeof *kvs);
    unsigned char *bkeys = malloc(p->batch * p->key_size);
    kvb_buf buf = {0};
    void *tctx = s->be->thread_init(s->db);
    kvb_hist_init(&w->hist);
    bool ok = pool && key && kvs && bkeys && tctx;
    for (size_t i = 0; ok && i < pool_len; i += 8) {
        uint64_t r = rng_next(&rng);
        memcpy(pool + i, &r, pool_len - i < 8 ? pool_len - i : 8);
    }
    pthread_barrier_wait(&sh->start); /* ready: the main thread measures */
    pthread_barrier_wait(&sh->start); /* go */
    if (!ok) {
        w->errors++;
        goto done;
    }
    if (w->side_writer) {
        while (!atomic_load(&sh->readers_done)) {
            uint64_t t0 = kvb_now_ns();
            if (do_op(sh, tctx, OP_OVERWRITE, 0, &rng, key, pool, pool_len, &buf, w) != 0) {
                w->errors++;
                break;
            }
            kvb_hist_record(&w->hist, kvb_now_ns() - t0);
            w->ops++;
        }
        goto done;
    }
    for (;;) {
        if (kvb_now_ns() > sh->deadline_ns) {
            if (atomic_load(&sh->next) < sh->total)
                atomic_store(&sh->capped, true);
            break;
        }
        uint64_t first = atomic_fetch_add(&sh->next, sh->chunk);
        if (first >= sh->total)
            break;
        uint64_t last = first + sh->chunk < sh->total ? first + sh->chunk : sh->total;
        if (sh->kind == OP_FILL_BATCH) {
            for (uint64_t b = first; b < last; b += p->batch) {
                size_t n = (size_t)(last - b < p->batch ? last - b : p->batch);
                for (size_t j = 0; j < n; j++) {
                    unsigned char *k = bkeys + j * p->key_size;
                    key_format(mix64(b + j), p->key_size, k);
                    kvs[j] = (kvb_kv){k, p->key_size,
                                      pool + rng_next(&rng) % (pool_len - p->value_size + 1),
                                      p->value_size};
                }
                uint64_t t0 = kvb_now_ns();
                if (s->be->put_batch(s->db, tctx, kvs, n) != 0) {
                    w->errors++;
                    goto done;
                }
                kvb_hist_record(&w->hist, kvb_now_ns() - t0);
                w->ops += n;
            }
            continue;
        }
        for (uint64_t i = first; i < last; i++) {
            uint64_t t0 = kvb_now_ns();
            if (do_op(sh, tctx, sh->kind, i, &rng, key, pool, pool_len, &buf, w) != 0) {
                w->errors++;
                goto done;
            }
            kvb_hist_record(&w->hist, kvb_now_ns() - t0);
            w->ops++;
        }
    }
done:
    if (!w->side_writer)
        atomic_store(&sh->readers_done, true); /* harmless for fills */
    if (tctx)
        s->be->thread_fini(s->db, tctx);
    free(buf.data);
    free(bkeys);
    free(kvs);
    free(key);
    free(pool);
    return NULL;
}

/* A few hundred untimed reads: engines that free retired memory lazily
 * (epoch-based reclamation) do it on later operations, as they would in use. */
static void touch_some(kvb_session *s, uint64_t loaded)
{
    void *tctx = s->be->thread_init(s->db);
    kvb_buf buf = {0};
    unsigned char key[KVB_KEY_MAX];
    for (uint64_t i = 0; tctx && loaded && i < 512; i++) {
        key_format(mix64(i % loaded), s->p->key_size, key);
        s->be->get(s->db, tctx, key, s->p->key_size, &buf);
    }
    if (tctx)
        s->be->thread_fini(s->db, tctx);
    free(buf.data);
}

/* Run KIND over op indexes [FIRST, TOTAL) on THREADS threads (+1 writer when
 * SIDE_WRITER), merging what they measured into R. */
static int run_phase_z(kvb_session *s, op_kind kind, uint64_t first, uint64_t total, int threads,
                       bool side_writer, const kvb_zipf *zipf, kvb_result *r)
{
    shared sh;
    memset(&sh, 0, sizeof sh);
    sh.next = first;
    sh.s = s;
    sh.zipf = zipf;
    sh.kind = kind;
    sh.total = total;
    sh.chunk = kind == OP_SCAN ? 1 : s->open_sync == KVB_SYNC_ALWAYS ? 4 : 1024;
    if (kind == OP_FILL_BATCH)
        sh.chunk = s->p->batch * (s->p->batch >= 1024 ? 1 : 1024 / s->p->batch);
    int nw = threads + (side_writer ? 1 : 0);
    worker *ws = calloc((size_t)nw, sizeof *ws);
    if (!ws)
        return -1;
    pthread_barrier_init(&sh.start, NULL, (unsigned)nw + 1);
    int started = 0;
    for (int t = 0; t < nw; t++) {
        ws[t].sh = &sh;
        ws[t].tid = t;
        ws[t].side_writer = side_writer && t == threads;
        if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0)
            break;
        started++;
    }
    if (started < nw) { /* cannot happen short of a broken system: give up */
        fprintf(stderr, "kvbench: cannot start %d threads\n", nw);
        exit(1);
    }
    pthread_barrier_wait(&sh.start); /* every worker is ready */
    uint64_t w0 = kvb_io_write_bytes();
    kvb_mem_read(&r->mem_before);
    uint64_t c0 = kvb_cpu_ns();
    uint64_t t0 = kvb_now_ns();
    sh.deadline_ns = t0 + (uint64_t)(s->p->seconds * 1e9);
    pthread_barrier_wait(&sh.start);
    for (int t = 0; t < nw; t++)
        pthread_join(ws[t].th, NULL);
    r->secs = (double)(kvb_now_ns() - t0) / 1e9;
    r->cpu_ns = kvb_cpu_ns() - c0;
    kvb_mem_read(&r->mem_after);
    if (kind <= OP_FILL_BATCH) {
        touch_some(s, total);
        kvb_mem_settle(&r->mem_trimmed);
    } else
        r->mem_trimmed = r->mem_after;
    r->io_write_bytes = kvb_io_write_bytes() - w0;
    r->capped = atomic_load(&sh.capped);
    kvb_hist_init(&r->hist);
    for (int t = 0; t < nw; t++) {
        r->errors += ws[t].errors;
        if (ws[t].side_writer) {
            r->side_ops += ws[t].ops;
            continue;
        }
        kvb_hist_merge(&r->hist, &ws[t].hist);
        r->ops += ws[t].ops;
        r->found += ws[t].found;
        r->missing += ws[t].missing;
    }
    pthread_barrier_destroy(&sh.start);
    free(ws);
    s->loaded += atomic_load(&sh.inserted); /* YCSB D and E inserted after them */
    return r->errors ? -1 : 0;
}

static int run_phase(kvb_session *s, op_kind kind, uint64_t total, int threads, bool side_writer,
                     kvb_result *r)
{
    return run_phase_z(s, kind, 0, total, threads, side_writer, NULL, r);
}

/* One thread over op indexes [FIRST, TOTAL): an untimed load's top-up. */
static int run_phase_from(kvb_session *s, op_kind kind, uint64_t first, uint64_t total,
                          kvb_result *r)
{
    return run_phase_z(s, kind, first, total, 1, false, NULL, r);
}

/* YCSB workload LETTER ('a'..'f') over the loaded keys: N operations. */
static int workload_ycsb(kvb_session *s, char letter, int threads, kvb_result *r)
{
    if (s->deleted) { /* the zipfian ranges over [0, loaded): all present */
        fprintf(stderr, "kvbench: ycsb after deleterandom: reload first\n");
        return -1;
    }
    kvb_zipf z;
    kvb_zipf_init(&z, s->loaded);
    op_kind kind = (op_kind)(OP_YCSB_A + (letter - 'a'));
    uint64_t before = s->loaded;
    int rc = run_phase_z(s, kind, 0, s->p->n, threads, false, &z, r);
    static const unsigned write_pct[] = {50, 5, 0, 5, 5, 50};
    r->user_bytes = r->ops * write_pct[letter - 'a'] / 100 * (s->p->key_size + s->p->value_size);
    snprintf(r->note, sizeof r->note, "zipfian theta %.2f over %llu keys; %llu inserted",
             KVB_YCSB_THETA, (unsigned long long)before, (unsigned long long)(s->loaded - before));
    return rc;
}

/* Make keys [0, N) present before a timed read: load them untimed (batched,
 * never capped) into an empty engine, or top up [loaded, N) after a fill that
 * the --seconds cap stopped early, so that every engine's reads run on the
 * same full data set. Records in s->topped_up how many keys it added. */
static int ensure_loaded(kvb_session *s)
{
    bool fresh = s->loaded == 0;
    s->topped_up = 0;
    if (fresh || !s->db || s->open_sync != s->p->sync)
        if (kvb_engine_open(s, s->p->sync, fresh) != 0)
            return -1;
    if (s->loaded >= s->p->n)
        return 0;
    kvb_result tmp;
    memset(&tmp, 0, sizeof tmp);
    kvb_params p = *s->p;
    p.seconds = 1e9; /* a load is never capped */
    const kvb_params *saved = s->p;
    s->p = &p;
    int rc = run_phase_from(s, OP_FILL_BATCH, s->loaded, p.n, &tmp);
    s->p = saved;
    if (rc != 0)
        return -1;
    if (!fresh)
        s->topped_up = p.n - s->loaded;
    s->loaded = p.n;
    return 0;
}

static int workload_recovery(kvb_session *s, kvb_result *r)
{
    kvb_hist_init(&r->hist);
    kvb_buf buf = {0};
    int rc = 0;
    uint64_t wall = 0, cpu = 0;
    for (int rep = 0; rep < 3 && rc == 0; rep++) {
        kvb_engine_close(s); /* untimed: the close's own flushing is not recovery */
        unsigned char key[KVB_KEY_MAX];
        key_format(mix64(0), s->p->key_size, key);
        uint64_t t0 = kvb_now_ns(), c0 = kvb_cpu_ns();
        if (kvb_engine_open(s, s->p->sync, false) != 0)
            return -1;
        void *tctx = s->be->thread_init(s->db);
        int g = s->be->get(s->db, tctx, key, s->p->key_size, &buf);
        uint64_t dt = kvb_now_ns() - t0;
        cpu += kvb_cpu_ns() - c0;
        wall += dt;
        kvb_hist_record(&r->hist, dt);
        s->be->thread_fini(s->db, tctx);
        if (g < 0)
            rc = -1;
        else if (g == KVB_FOUND)
            r->found++;
        else
            r->missing++;
        r->ops++;
    }
    r->secs = (double)wall / 1e9;
    r->cpu_ns = cpu;
    free(buf.data);
    snprintf(r->note, sizeof r->note, "open+first get, %llu reps", (unsigned long long)r->ops);
    return rc;
}

static int workload_compact(kvb_session *s, kvb_result *r)
{
    kvb_hist_init(&r->hist);
    if (!s->be->compact) {
        r->skipped = true;
        snprintf(r->note, sizeof r->note, "no compaction in %s", s->be->name);
        return 0;
    }
    kvb_dusage before;
    kvb_du(s->dir, &before);
    uint64_t w0 = kvb_io_write_bytes();
    uint64_t t0 = kvb_now_ns(), c0 = kvb_cpu_ns();
    int rc = s->be->compact(s->db);
    uint64_t dt = kvb_now_ns() - t0;
    r->cpu_ns = kvb_cpu_ns() - c0;
    r->io_write_bytes = kvb_io_write_bytes() - w0;
    kvb_hist_record(&r->hist, dt);
    r->ops = 1;
    r->secs = (double)dt / 1e9;
    snprintf(r->note, sizeof r->note, "disk before %.1f MiB", (double)before.allocated / 1048576.0);
    return rc;
}

/* mixedwhilecompact: one full compaction (ringcask: rc_merge) in a side
 * thread while the timed threads run the mixed workload, so that a `mixed`
 * row and a `mixedwhilecompact` row of one invocation give foreground
 * latency without and with a merge running. */
typedef struct compact_side {
    kvb_session *s;
    uint64_t ns;
    int rc;
} compact_side;

static void *compact_main(void *arg)
{
    compact_side *c = arg;
    uint64_t t0 = kvb_now_ns();
    c->rc = c->s->be->compact(c->s->db);
    c->ns = kvb_now_ns() - t0;
    return NULL;
}

static int workload_mixed_while_compact(kvb_session *s, int threads, kvb_result *r)
{
    if (!s->be->compact) {
        kvb_hist_init(&r->hist);
        r->skipped = true;
        snprintf(r->note, sizeof r->note, "no compaction in %s", s->be->name);
        return 0;
    }
    kvb_dusage before;
    kvb_du(s->dir, &before);
    compact_side c = {.s = s};
    pthread_t t;
    if (pthread_create(&t, NULL, compact_main, &c) != 0)
        return -1;
    int rc = run_phase(s, OP_MIXED, s->p->n, threads, false, r);
    pthread_join(t, NULL);
    double secs = (double)c.ns / 1e9;
    snprintf(r->note, sizeof r->note,
             "compaction beside it: %.0f ms, %.1f MiB on disk before (%.0f MiB/s)", secs * 1e3,
             (double)before.allocated / 1048576.0,
             secs > 0 ? (double)before.allocated / 1048576.0 / secs : 0.0);
    return rc ? rc : c.rc;
}

int kvb_run(kvb_session *s, const char *name, int threads, kvb_result *r)
{
    const kvb_params *p = s->p;
    memset(r, 0, sizeof *r);
    s->topped_up = 0;
    snprintf(r->workload, sizeof r->workload, "%s", name);
    r->engine = s->be->name;
    r->threads = threads;
    int rc = 0;
    bool fill = true;
    uint64_t total = p->n;
    op_kind kind;
    if (strcmp(name, "fillseq") == 0) {
        kind = OP_FILL_SEQ;
        if (!s->sorted) {
            s->sorted = malloc(p->n * sizeof *s->sorted);
            if (!s->sorted)
                return -1;
            for (uint64_t i = 0; i < p->n; i++)
                s->sorted[i] = mix64(i);
            qsort(s->sorted, p->n, sizeof *s->sorted, kvb_cmp_u64);
        }
    } else if (strcmp(name, "fillrandom") == 0) {
        kind = OP_FILL_RANDOM;
    } else if (strcmp(name, "fillbatch") == 0) {
        kind = OP_FILL_BATCH;
    } else if (strcmp(name, "fillsync") == 0) {
        kind = OP_FILL_RANDOM;
    } else {
        fill = false;
    }
    if (fill) {
        kvb_sync mode = strcmp(name, "fillsync") == 0 ? KVB_SYNC_ALWAYS : p->sync;
        if (kvb_engine_open(s, mode, true) != 0)
            return -1;
        rc = run_phase(s, kind, total, threads, false, r);
        /* Loaded: a prefix of indexes [0, ops). A capped fillseq loaded a
         * prefix in byte order instead: reload before the next read. */
        s->loaded = kind == OP_FILL_SEQ && r->ops < total ? 0 : r->ops;
        r->user_bytes = r->ops * (p->key_size + p->value_size);
    } else if (strcmp(name, "idle") == 0) {
        /* No ops: give background work (merge, compaction) --seconds, then
         * report the disk. */
        if (!s->db && kvb_engine_open(s, p->sync, false) != 0)
            return -1;
        kvb_hist_init(&r->hist);
        uint64_t c0 = kvb_cpu_ns(), w0 = kvb_io_write_bytes();
        struct timespec ts = {(time_t)p->seconds, 0};
        nanosleep(&ts, NULL);
        r->secs = p->seconds;
        r->cpu_ns = kvb_cpu_ns() - c0;
        r->io_write_bytes = kvb_io_write_bytes() - w0;
        snprintf(r->note, sizeof r->note, "idle %.0f s; background CPU %.0f ms, writes %.1f MiB",
                 p->seconds, (double)r->cpu_ns / 1e6, (double)r->io_write_bytes / 1048576.0);
    } else if (strcmp(name, "recovery") == 0 || strcmp(name, "compact") == 0) {
        if (ensure_loaded(s) != 0)
            return -1;
        rc = name[0] == 'r' ? workload_recovery(s, r) : workload_compact(s, r);
    } else if (strcmp(name, "mixedwhilecompact") == 0) {
        if (ensure_loaded(s) != 0)
            return -1;
        rc = workload_mixed_while_compact(s, threads, r);
    } else if (strncmp(name, "ycsb-", 5) == 0 && name[5] >= 'a' && name[5] <= 'f' && !name[6]) {
        if (ensure_loaded(s) != 0)
            return -1;
        rc = workload_ycsb(s, name[5], threads, r);
    } else {
        if (ensure_loaded(s) != 0)
            return -1;
        bool side = false;
        if (strcmp(name, "overwrite") == 0) {
            kind = OP_OVERWRITE;
        } else if (strcmp(name, "readrandom") == 0) {
            kind = OP_READ;
        } else if (strcmp(name, "readmissing") == 0) {
            kind = OP_READ_MISSING;
        } else if (strcmp(name, "readwhilewriting") == 0) {
            kind = OP_READ;
            side = true;
        } else if (strcmp(name, "deleterandom") == 0) {
            kind = OP_DELETE; /* --delete-pct of the keys still present */
            total = (s->loaded - s->deleted) * p->delete_pct / 100;
        } else if (strcmp(name, "mixed") == 0) {
            kind = OP_MIXED;
        } else if (strcmp(name, "scan") == 0) {
            kind = OP_SCAN; /* touch about N keys in all */
            total = p->n / p->scan_limit ? p->n / p->scan_limit : 1;
        } else {
            return -1;
        }
        rc = run_phase(s, kind, total, threads, side, r);
        if (kind == OP_OVERWRITE || side)
            r->user_bytes = (r->ops + r->side_ops) * (p->key_size + p->value_size);
        if (kind == OP_MIXED)
            r->user_bytes = (r->ops * (100 - p->read_pct) / 100) * (p->key_size + p->value_size);
        if (kind == OP_DELETE) {
            r->user_bytes = r->ops * p->key_size;
            s->deleted += r->ops;
            if (s->deleted >= s->loaded) /* all gone: the next read reloads */
                s->loaded = s->deleted = 0;
        }
    }
    if (s->topped_up) {
        size_t at = strlen(r->note);
        snprintf(r->note + at, sizeof r->note - at,
                 "%s%llu keys loaded untimed after a capped fill", at ? "; " : "",
                 (unsigned long long)s->topped_up);
    }
    kvb_du(s->dir, &r->du);
    r->live_keys = s->loaded - s->deleted;
    if (s->be->stats && s->db)
        s->be->stats(s->db, &r->est);
    return rc;
}
