/*
 * metrics_bucket.h — per-bucket request counters: responses by status
 * class, request body bytes received and response body bytes sent, counted
 * for requests to an existing bucket. Read through GET /metrics?bucket=NAME.
 */
#ifndef KVD_METRICS_BUCKET_H
#define KVD_METRICS_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many buckets are counted; later ones are not (documented). */
#define BUCKET_COUNTERS_MAX 65536u

typedef struct bucket_table bucket_table;

typedef struct bucket_figures {
    uint64_t status_class[6]; /* index status / 100 */
    uint64_t requests, bytes_in, bytes_out;
} bucket_figures;

bucket_table *bucket_table_new(void);
void bucket_table_free(bucket_table *bt);

/* Count one request of bucket NAME (LEN bytes). Thread-safe; lock-free when
 * the bucket was seen before (a read lock and relaxed atomics). The first
 * request of a bucket inserts its counters only if LIVE(CTX) (when LIVE is
 * not NULL), asked under the table's write lock: a request completing after
 * its bucket was deleted and forgotten must not bring its counters back. */
void bucket_table_count(bucket_table *bt, const char *name, size_t len, unsigned status,
                        uint64_t bytes_in, uint64_t bytes_out, bool (*live)(void *), void *ctx);

/* The figures of NAME since start (or since the bucket was deleted); zeros
 * when it has none. */
void bucket_table_get(bucket_table *bt, const char *name, size_t len, bucket_figures *out);

/* Drop NAME's counters (its bucket was deleted). */
void bucket_table_forget(bucket_table *bt, const char *name, size_t len);

/* How many buckets have counters now. */
size_t bucket_table_live(bucket_table *bt);

#endif
