/*
 * metrics.h — request counters and latency histograms per route, operation
 * counts per key; rendered as Prometheus text or as one flat JSON object.
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

/* Rendered bodies, malloc'ed (free()). NULL on allocation failure. */
char *metrics_prometheus(kvd *srv, size_t *len);
char *metrics_json(kvd *srv, size_t *len);

#endif
