/*
 * backup_shipper.h — kvd --backup-to: a background thread that ships the
 * running database to an S3-compatible object store (tools/s3/store.h).
 *
 * Every --backup-every it uploads an incremental since the newest manifest in
 * the store (whoever wrote it), or a full one when there is none, when the
 * incremental would miss deletes (tombstone horizon) or when the chain's
 * incrementals have outgrown its full; after each upload it prunes to the
 * newest --backup-keep-full fulls. rc_backup reads a snapshot, so writes are
 * never blocked; a failure is logged, counted and retried with backoff
 * (1 s, 2 s, 4 s ... up to the smaller of --backup-every and 60 s).
 */
#ifndef KVD_BACKUP_SHIPPER_H
#define KVD_BACKUP_SHIPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd.h"

struct backup_shipper;

typedef struct backup_stats {
    uint64_t last_shipped_seq;     /* until of the newest manifest known good */
    int64_t last_shipped_ms;       /* wall clock of the last upload (0: none yet) */
    uint64_t consecutive_failures; /* since the last success */
    uint64_t uploads, failures, pruned;
} backup_stats;

/* Validate the URL and the AWS_* environment and start the thread. Returns 0,
 * or -1 after printing a one-line reason on stderr. */
int backup_shipper_start(kvd *srv, const char *url, uint64_t every_ms, unsigned keep_full,
                         struct backup_shipper **out);
/* Stop (cancelling a transfer under way) and join. NULL is a no-op. */
void backup_shipper_stop(struct backup_shipper *b);
void backup_shipper_stats(struct backup_shipper *b, backup_stats *out);

/* Parse a duration: N (seconds) or N followed by ms, s, m, h, d. Returns 0
 * and *MS, or -1. */
int backup_parse_duration(const char *s, uint64_t *ms);

#endif
