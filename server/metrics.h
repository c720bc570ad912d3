/*
 * metrics.h — request counters and latency histograms per route, operation
 * counts per key, per-bucket request counters; rendered as Prometheus text
 * or as one flat JSON object. To add figures: count them in struct metrics
 * (or read them from their module at render time) and write each family in
 * metrics_prometheus with the metrics_text.h helpers; document the name in
 * docs/OPERATIONS.md.
 */
#ifndef KVD_METRICS_H
#define KVD_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

typedef enum metric_op { MOP_GET, MOP_SET, MOP_DELETE, MOP_PATCH, MOP_COUNT } metric_op;

void metrics_count_op(struct metrics *m, metric_op op, uint64_t n);
/* For the scripts module: one run, and whether it hit a limit. */
void metrics_script_run(struct metrics *m, bool limit_hit);
void metrics_observe(struct metrics *m, route_id route, unsigned status, uint64_t ns);

/* A request to existing bucket BUCKET (LEN bytes) finished: count it for
 * GET /metrics?bucket=; LIVE(CTX) says whether the bucket still exists, for
 * its first count (bucket_table_count). Forget drops a deleted bucket's
 * counters. */
void metrics_bucket_request(struct metrics *m, const char *bucket, size_t len, unsigned status,
                            uint64_t bytes_in, uint64_t bytes_out, bool (*live)(void *), void *ctx);
void metrics_bucket_forget(struct metrics *m, const char *bucket, size_t len);

/* Rendered bodies, malloc'ed (free()). NULL on allocation failure. The
 * server-wide ones (every bucket's totals, engine, build_info, process_*),
 * and those of bucket P alone. */
char *metrics_prometheus(kvd *srv, size_t *len);
char *metrics_json(kvd *srv, size_t *len);
char *metrics_bucket_prometheus(kvd *srv, const policy *p, size_t *len);
char *metrics_bucket_json(kvd *srv, const policy *p, size_t *len);

#endif
