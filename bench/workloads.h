/*
 * workloads.h — the workloads kvbench runs against one backend, and the
 * session state (open handle, which keys are loaded) carried between them.
 */
#ifndef KVB_WORKLOADS_H
#define KVB_WORKLOADS_H

#include "backend.h"
#include "histogram.h"
#include "procstat.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define KVB_KEY_MAX 1024u /* the smallest key limit of the engines (ringcask) */

typedef struct kvb_params {
    uint64_t n;      /* keys to load / ops per workload */
    size_t key_size; /* >= 8 */
    size_t value_size;
    int threads;   /* default worker threads */
    kvb_sync sync; /* --sync for every workload but fillsync */
    int append_io; /* --append-io for ringcask: 0 auto, 1 mmap, 2 uring */
    uint32_t sync_interval_ms;
    unsigned read_pct;   /* mixed: % of ops that read */
    size_t batch;        /* fillbatch: puts per batch / transaction */
    unsigned delete_pct; /* deleterandom: % of the present keys to delete */
    size_t scan_limit;   /* scan: keys per listing */
    double seconds;      /* cap on each timed phase */
    uint64_t seed;
    bool keep; /* leave the data directories behind (kvbench --keep) */
} kvb_params;

typedef struct kvb_result {
    char workload[32];
    const char *engine;
    int threads;
    uint64_t ops; /* completed operations (keys for batches) */
    uint64_t found, missing, errors;
    double secs;             /* wall time of the timed phase */
    uint64_t cpu_ns;         /* process CPU time (all threads) over the phase */
    kvb_hist hist;           /* per-op latency, all threads merged */
    uint64_t user_bytes;     /* key+value bytes the workload wrote */
    uint64_t io_write_bytes; /* /proc/self/io write_bytes delta */
    kvb_mem mem_before, mem_after;
    kvb_mem mem_trimmed;  /* after the phase and malloc_trim(0) */
    kvb_dusage du;        /* the data dir after the workload */
    uint64_t live_keys;   /* keys loaded after the workload */
    kvb_engine_stats est; /* engine statistics after the workload */
    uint64_t side_ops;    /* readwhilewriting: the writer's ops */
    bool capped;          /* the --seconds cap ended it before N ops */
    bool skipped;
    int repeats;             /* runs this result is the median of (kvbench --repeat) */
    double ops_min, ops_max; /* with repeats: the slowest and fastest run's ops/s */
    bool failed;             /* the engine returned an error */
    char note[160];
} kvb_result;

typedef struct kvb_session {
    const kvb_backend *be;
    const kvb_params *p;
    char dir[PATH_MAX];
    void *db;
    kvb_sync open_sync; /* the mode DB was opened with */
    uint64_t loaded;    /* keys with index [0, loaded) were loaded ... */
    uint64_t deleted;   /* ... and those of [0, deleted) deleted since */
    uint64_t topped_up; /* keys the last workload's untimed load added */
    uint64_t *sorted;   /* key numbers of [0, n) in byte order (fillseq) */
    pthread_t syncer;   /* --sync interval:MS for peers without it */
    bool syncer_running;
    volatile bool syncer_stop;
} kvb_session;

/* Workload names in the order --help lists them; NULL-terminated. */
extern const char *const kvb_workload_names[];
bool kvb_workload_known(const char *name);

int kvb_session_start(kvb_session *s, const kvb_backend *be, const kvb_params *p, const char *dir);
/* Close the engine, keeping its data; the next kvb_run reopens it (untimed).
 * Closing waits for the engine's background work, so none of it runs while
 * another engine is being measured. */
void kvb_session_park(kvb_session *s);
/* Close the engine and delete its directory. */
void kvb_session_end(kvb_session *s);
/* Internal to kvbench (session.c): (re)open the engine with MODE, emptying
 * its directory first when FRESH; close it (joining the interval syncer). */
int kvb_engine_open(kvb_session *s, kvb_sync mode, bool fresh);
void kvb_engine_close(kvb_session *s);

/* Run workload NAME with THREADS threads; fills *OUT. 0 or -1 (engine error). */
int kvb_run(kvb_session *s, const char *name, int threads, kvb_result *out);

#endif /* KVB_WORKLOADS_H */
