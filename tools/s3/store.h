/*
 * store.h — backup chains in an object store: ship a database's next backup
 * (incremental since the newest manifest, or full), list manifests, prune
 * by retention, and restore a chain into a new data directory.
 *
 * Layout under s3://BUCKET/PREFIX (sequence numbers as 16 hex digits):
 *   <db>/full/<until>.rcb           a full backup stream
 *   <db>/inc/<since>-<until>.rcb    an incremental stream
 *   <db>/manifest/<until>.json      written last: the chain back to its full
 *
 * Writes go first and the manifest last, so an interrupted upload leaves
 * nothing a reader trusts. Streams are spooled to an unlinked temporary file
 * in $TMPDIR (default /tmp) while their SHA-256 is computed, then uploaded
 * (multipart above 64 MiB). A restore downloads and checks every object of a
 * chain (size, SHA-256, stream framing and since/until) before applying any,
 * into a new directory that is renamed into place only when complete.
 *
 * Shared by kvdump --to/--list, kvload --from and kvd's backup shipper.
 */
#ifndef RC_TOOLS_S3_STORE_H
#define RC_TOOLS_S3_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "manifest.h"
#include "ringcask.h"
#include "s3.h"

/* Results (negative), beside 0. */
enum {
    RCBS_ESTORE = -1,   /* the object store failed (rcbs_error says how) */
    RCBS_ENONE = -2,    /* no manifest (at or before the point asked) */
    RCBS_ECORRUPT = -3, /* a manifest or an object failed its checks */
    RCBS_EBEHIND = -4,  /* the store holds a newer backup than this database */
    RCBS_EENGINE = -5,  /* rc_backup / rc_load / rc_open failed */
    RCBS_ELOCAL = -6,   /* temporary file, memory */
    RCBS_ETARGET = -7,  /* restore: the target exists and is not empty */
    RCBS_EMANY = -8,    /* several databases under the prefix: name one */
};

typedef struct rcbs {
    rcs3 *s3;
    char *bucket, *prefix;
    char url[600]; /* s3://bucket/prefix for messages */
    char err[1024];
    int engine_err; /* with RCBS_EENGINE: the rc_* code */
} rcbs;

/* Parse s3://BUCKET/PREFIX and configure a client from the environment.
 * Returns 0, or -1 with a reason in S->err (usage: bad URL/env). */
int rcbs_open(rcbs *s, const char *url);
void rcbs_close(rcbs *s);
const char *rcbs_error(const rcbs *s);

/* The identity of DB as used in object names (RCM_DB_ID_MAX + 1 bytes). */
int rcbs_database_id(rc_db *db, const char *dir, char *out, size_t cap);

/* The newest manifest of database DB. 0 (M filled; rcm_free it), RCBS_ENONE,
 * RCBS_ESTORE, RCBS_ECORRUPT. */
int rcbs_newest(rcbs *s, const char *db, rcm_manifest *m);

typedef struct rcbs_ship_opts {
    bool force_full;
    bool auto_full; /* also a full when the incrementals outgrow the full or
                       the chain reaches RCBS_CHAIN_FULL objects (kvd) */
} rcbs_ship_opts;
#define RCBS_CHAIN_FULL 1000

typedef struct rcbs_ship_result {
    bool uploaded; /* false: nothing new since the newest manifest */
    bool full;
    bool horizon; /* a full because the incremental met the tombstone horizon */
    uint64_t since, until, bytes, records, tombstones;
    size_t chain; /* objects in the new manifest's chain */
    char object[RCM_DB_ID_MAX + 48];
} rcbs_ship_result;

/* Back up DB (identity DB_ID) to the store. */
int rcbs_ship(rcbs *s, rc_db *db, const char *db_id, const rcbs_ship_opts *o,
              rcbs_ship_result *res);

/* Keep the newest KEEP_FULL fulls with the manifests built on them; delete
 * every other manifest, then every object no kept manifest names (objects
 * newer than the newest manifest are left: an upload may be under way).
 * *DELETED counts removed objects. */
int rcbs_prune(rcbs *s, const char *db_id, unsigned keep_full, unsigned *deleted);

/* Every valid manifest under the prefix, of database DB (NULL: all),
 * ordered by database then until. *OUT is malloc'd (rcbs_free_list). */
int rcbs_list(rcbs *s, const char *db, rcm_manifest **out, size_t *n);
void rcbs_free_list(rcm_manifest *list, size_t n);

typedef struct rcbs_point {
    bool by_seq, by_time;
    uint64_t seq;
    int64_t time_ms;
} rcbs_point;

typedef void (*rcbs_note_fn)(void *ctx, const char *line);

/* Restore the newest chain of database DB (NULL: the only one under the
 * prefix, else RCBS_EMANY) at or before POINT into DIR, which must not exist
 * or be empty. NOTE (may be NULL) receives progress lines. *M receives the
 * manifest restored (rcm_free it). */
int rcbs_restore(rcbs *s, const char *db, const rcbs_point *point, const char *dir,
                 rcbs_note_fn note, void *note_ctx, rcm_manifest *m);

#endif
