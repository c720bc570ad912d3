/*
 * manifest.h — the manifest of a backup chain in an object store, as JSON
 * (Jansson). A manifest names every object of one chain, from its full
 * backup to its newest incremental, with each object's size, SHA-256, since
 * and until; readers trust nothing a manifest does not name.
 *
 * {"format": "ringcask-backup-manifest", "version": 1,
 *  "database": "<id>", "until": 1234, "time": "2026-12-05T18:40:00.123Z",
 *  "bytes": 5678,
 *  "chain": [{"name": "<id>/full/00000000000004d2.rcb", "kind": "full",
 *             "since": 0, "until": 1234, "size": 5678, "sha256": "<hex>"}, ...]}
 *
 * Names are relative to the store's PREFIX, so a whole prefix can be copied
 * elsewhere and still restore. Parsing checks everything a reader relies on:
 * the chain starts with a full (since 0), each object's since is the previous
 * until, the last until is the manifest's, and every name is exactly the one
 * its kind, since and until give (so a manifest cannot point outside its
 * database's objects).
 */
#ifndef RC_TOOLS_S3_MANIFEST_H
#define RC_TOOLS_S3_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RCM_DB_ID_MAX 64
#define RCM_CHAIN_MAX 100000

typedef struct rcm_object {
    char name[RCM_DB_ID_MAX + 48]; /* relative to PREFIX */
    bool full;
    uint64_t since, until, size;
    char sha256[65]; /* lowercase hex */
} rcm_object;

typedef struct rcm_manifest {
    char database[RCM_DB_ID_MAX + 1];
    uint64_t until;
    int64_t time_ms; /* wall clock, Unix milliseconds */
    uint64_t bytes;  /* sum of the chain's sizes */
    rcm_object *chain;
    size_t n;
} rcm_manifest;

/* A database id usable in object names: 1-64 of A-Z a-z 0-9 _ - . (not
 * starting with '.'). */
bool rcm_db_id_valid(const char *id);

/* The names of objects (relative to PREFIX; OUT of at least
 * RCM_DB_ID_MAX + 48 bytes). */
void rcm_full_name(char *out, size_t cap, const char *db, uint64_t until);
void rcm_inc_name(char *out, size_t cap, const char *db, uint64_t since, uint64_t until);
void rcm_manifest_name(char *out, size_t cap, const char *db, uint64_t until);

/* Parse "<db>/manifest/<16 hex>.json" (relative name): 0 and *DB (cap
 * RCM_DB_ID_MAX + 1), *UNTIL; -1 if it is not a manifest name. */
int rcm_parse_manifest_name(const char *rel, char *db, uint64_t *until);
/* Parse "<db>/full/<hex>.rcb" or "<db>/inc/<hex>-<hex>.rcb": 0 and *UNTIL. */
int rcm_parse_object_name(const char *rel, char *db, uint64_t *until);

/* Append OBJ to M's chain (M owns a malloc'd array). Returns 0 or -1 (ENOMEM). */
int rcm_append(rcm_manifest *m, const rcm_object *obj);

/* JSON text (malloc'd; caller frees), or NULL on allocation failure. */
char *rcm_dump(const rcm_manifest *m);
/* Parse and check TEXT. Returns 0, or -1 with a reason in ERR; M is empty then. */
int rcm_parse(const char *text, size_t len, rcm_manifest *m, char *err, size_t errcap);
void rcm_free(rcm_manifest *m);

/* RFC 3339 UTC with milliseconds ("2026-12-05T18:40:00.123Z"; OUT >= 32). */
void rcm_format_time(int64_t ms, char *out, size_t cap);
/* Parse RFC 3339 ("2026-12-05T18:40:00Z", fractions and +hh:mm offsets too)
 * into Unix milliseconds. Returns 0 or -1. */
int rcm_parse_time(const char *s, int64_t *ms);

#endif
