/*
 * recovery.h — what the two halves of recovery share. Internal.
 *
 * recovery.c lists the segments, scans those without a usable hint and
 * finishes the open; recovery_hint.c loads hinted segments, several threads
 * at a time, in windows (see there). Both insert records through
 * rci_rec_insert, which resolves conflicts by sequence number and counts
 * live and dead bytes.
 */
#ifndef RC_RECOVERY_H
#define RC_RECOVERY_H

#include "db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_TOMBSTONE_MARK 1    /* expires_at_ms of a tombstone during recovery */
#define RECOVERY_THREADS_MAX 8u /* cap of rc_options.recovery_threads */

/* Byte accounting of the inserts one thread makes: kept in plain fields and
 * added to the shared atomics when the segment or keyspace changes and at
 * the end, so that two loading threads do not bounce those cache lines. */
typedef struct rec_acct {
    rc_db *db;
    segment *seg;
    uint64_t seg_dead;
    rc_keyspace *ks;
    uint64_t ks_dead, ks_vbytes, ks_kbytes;
    uint64_t corrupt; /* records naming an impossible keyspace id */
} rec_acct;

/* Add what A counted to the shared counters and zero it. */
void rci_rec_acct_flush(rec_acct *a);

/* Make SEG the segment A counts into (flushing the previous one's counts). */
static inline void rci_rec_acct_seg(rec_acct *a, segment *seg)
{
    if (seg != a->seg) {
        rci_rec_acct_flush(a);
        a->seg = seg;
    }
}

/* Sequence numbers seen in one segment. */
typedef struct seq_range {
    uint64_t min, max;
} seq_range;

static inline void rci_seq_note(seq_range *r, uint64_t seq)
{
    if (seq > r->max)
        r->max = seq;
    if (!r->min || seq < r->min)
        r->min = seq;
}

/* Recovery reads the segments twice (recovery.c): pass 1 indexes the
 * catalogue's records (keyspace 0) only, then the live keyspaces are made
 * from it; pass 2 indexes the records of those. A record of any other id
 * belongs to a dropped keyspace and is never indexed. */
enum { REC_PASS_CATALOG = 1, REC_PASS_REST = 2 };

/* Insert one record of segment A->seg into KS (NULL: no live keyspace has
 * the id: a dropped keyspace's record, dead; or, above KS_ID_MAX, which no
 * keyspace ever had, damage). Records the current pass does not index are
 * skipped whole. FLAGS are the record's
 * (TOMBSTONE and COMPRESSED matter), HASH is rci_keydir_hash of the key. The
 * caller owns the key's keydir shard. 0 or RC_ENOMEM. */
int rci_rec_insert(rec_acct *a, rc_keyspace *ks, uint8_t flags, uint64_t seq, uint32_t ks_id,
                   uint64_t exp, const uint8_t *key, uint32_t klen, uint32_t off, uint32_t total,
                   uint64_t hash);

/* Publish R as SEG's seq range and raise the database's last seq. */
void rci_rec_publish_seqs(rc_db *db, segment *seg, const seq_range *r);

/* Read SEG by scanning its records (no usable hint); TAIL: the segment a
 * writer was appending to (its first bad record ends the log). */
int rci_rec_scan_one(rc_db *db, segment *seg, bool tail);

/* ---- hinted segments (recovery_hint.c) */

typedef struct rec_window rec_window;

/* A window of hinted segments to be loaded by THREADS threads (the opening
 * thread included); NULL on ENOMEM. */
rec_window *rci_window_new(rc_db *db, unsigned threads);
/* Queue SEG's hint if it has one worth trying: true if queued, false if SEG
 * must be scanned instead (after rci_window_flush of what is queued). */
bool rci_window_add(rec_window *w, segment *seg);
/* The window holds as many hint bytes as it should load at once. */
bool rci_window_full(const rec_window *w);
/* Load every queued segment in segment order (a hint that does not verify,
 * or does not match its segment: that segment scanned in its turn, TAIL_ID
 * in tail mode), then empty the window. 0, RC_ENOMEM or a scan's error. */
int rci_window_flush(rec_window *w, uint64_t tail_id);
void rci_window_free(rec_window *w);

#endif
