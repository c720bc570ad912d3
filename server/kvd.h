/*
 * kvd.h — the state of one kvd process, shared by every module of the server.
 *
 * One struct kvd holds the configuration parsed from the command line, the
 * engine handle, the system keyspace with the server secret, the bucket
 * policy cache and the metrics. It is created by main.c and passed (as the
 * MHD closure) to every request; nothing in the server is a global except
 * the log level, which the logger reads on every call.
 */
#ifndef KVD_KVD_H
#define KVD_KVD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcu_text.h"
#include "ringcask.h"

#define KVD_SECRET_BYTES 32u
#define KVD_BUCKET_NAME_MAX RCU_BUCKET_NAME_MAX
#define KVD_BATCH_OPS_MAX 10000u
#define KVD_SYS_KEYSPACE "sys"
#define KVD_BUCKET_KS_PREFIX "b:"
#define KVD_CTYPE_KS_PREFIX "c:"

struct policy_cache;
struct metrics;
struct backup_shipper;
struct park;
struct feed;
struct cluster;

typedef enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;
typedef enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } log_format;

typedef struct kvd_config {
    const char *dir;
    const char *listen; /* HOST:PORT as given */
    rc_options engine;
    const char *default_bucket; /* NULL: none */
    const char *admin_token_file;
    uint64_t max_value;       /* bytes in one value (PUT body) */
    uint64_t max_batch_bytes; /* bytes in one batch body */
    unsigned threads;         /* MHD thread pool size */
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0: no per-address limit */
    unsigned conn_timeout_s;         /* idle / slow clients are closed after this */
    size_t max_header_bytes;         /* MHD per-connection memory pool (headers) */
    uint64_t script_instructions;
    uint64_t script_memory;
    uint64_t script_timeout_ms;
    unsigned shutdown_grace_s;      /* how long SIGTERM waits for in-flight requests */
    uint64_t max_response_bytes;    /* memory one request may hold for its answer; 0: none */
    uint64_t max_inflight_bytes;    /* memory all requests together may hold; 0: none */
    bool allow_anonymous_buckets;   /* POST / without credentials (no admin token) */
    unsigned bucket_create_per_min; /* bucket creations per client address per minute; 0: none */
    uint64_t max_buckets;           /* buckets in all; 0: no limit */
    log_level log_level;
    const char *backup_to;    /* s3://BUCKET/PREFIX, NULL: no continuous backups */
    uint64_t backup_every_ms; /* --backup-every */
    unsigned backup_keep_full;
    log_format log_format;
    const char *log_file;           /* NULL: stderr */
    const char *metrics_token_file; /* NULL: /metrics needs no credential */
    unsigned max_waiters;           /* parked ?wait= requests (park.c) */
    /* replica group (cluster.h); cluster_group NULL: a single node */
    const char *cluster_group;
    const char *etcd_urls;
    const char *node_id;
    const char *advertise;
    int replication; /* 0 sync, 1 async */
    unsigned lease_ttl_s;
} kvd_config;

typedef struct kvd {
    kvd_config cfg;
    rc_db *db;
    rc_keyspace *sys; /* policies, server secret, scripts of the scripts module */
    unsigned char secret[KVD_SECRET_BYTES];
    char *admin_token;   /* NULL when --admin-token-file was not given */
    char *metrics_token; /* NULL when --metrics-token-file was not given */
    struct policy_cache *policies;
    struct metrics *metrics;
    void *scripts;                  /* owned by the scripts module (route_scripts.c) */
    struct backup_shipper *shipper; /* --backup-to, else NULL */
    struct cluster *cluster;        /* --cluster (cluster.h), else NULL */
    atomic_bool shutting_down;
    atomic_long in_flight;         /* requests between first header call and completion */
    atomic_long parked;            /* writes waiting for the engine's callback (durable.c) */
    _Atomic uint64_t mem_inflight; /* bytes charged by requests (budget.c) */
    _Atomic uint64_t budget_refused_large; /* 413 response_too_large answers */
    _Atomic uint64_t budget_refused_busy;  /* 503 busy answers */
    struct bucket_limiter *bucket_limiter; /* bucket_limits.c */
    struct park *park;                     /* parked requests (park.c); NULL: none park */
    struct feed *feed;                     /* the change feed (feed.c) */
} kvd;

/* Log one line with a timestamp and LEVEL (log.c: stderr or --log-file, text
 * or JSON); thread-safe. Lines above kvd_log_level are dropped. */
extern log_level kvd_log_level;
void kvd_log(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Current wall-clock time. */
int64_t kvd_now_ms(void);
uint64_t kvd_mono_ns(void);

#endif
