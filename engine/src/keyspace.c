/*
 * keyspace.c — named keyspaces and their catalogue.
 *
 * The catalogue is keyspace 0: one record per keyspace name whose value
 * (format/catalog.h) holds the keyspace id, its state and default TTL. The
 * newest record per name wins, as for any key, so creating, dropping and
 * changing a keyspace is one atomic record, and recovery rebuilds the set of
 * keyspaces from the keydir of keyspace 0. Records of a keyspace id that the
 * catalogue does not list as live are dead: that is how a drop of any size
 * becomes durable with one write, and why ids are never reused.
 *
 * A dropped name needs no record of its own (its absence makes its id
 * dead), only the highest id ever given must stay named, or a reopened
 * database would give it again. So the catalogue keeps one dropped record:
 * the dropped keyspace with the highest id (db->cat_dropped_*). A drop of a
 * lower id writes a tombstone of its name; a drop of a higher id writes its
 * dropped record and, in the same batch, a tombstone of the previous kept
 * one. The catalogue's index thus holds the live keyspaces plus one, however
 * many keyspaces came and went. (Databases written before this may hold
 * older dropped records; they are harmless and stay.)
 *
 * Handles are reference counted: the database holds one reference while
 * the keyspace is live, and each rc_keyspace_open/rc_keyspace_retain one
 * more. A drop frees the keydir once no reader or writer can be inside it
 * (an epoch grace period) and gives back the database's reference; the
 * handle itself (a small struct and its name) goes with its last
 * reference, after another grace period, so that a holder of a reference
 * always gets RC_ENOKEYSPACE rather than a dangling pointer. A caller that
 * never releases keeps the old guarantee: the handle lasts until rc_close.
 */
#include "db.h"
#include "format/catalog.h"
#include "format/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rc_keyspace *rci_ks_new(rc_db *db, const char *name, uint32_t id, int64_t ttl)
{
    rc_keyspace *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return NULL;
    ks->db = db;
    ks->id = id;
    atomic_store(&ks->refs, 1); /* the database's, while live */
    ks->name = strdup(name ? name : "");
    ks->kd = rci_keydir_new();
    atomic_store(&ks->default_ttl_ms, ttl);
    ks->lc = malloc(sizeof(*ks->lc));
    ks->counters = calloc(COUNTER_SHARDS, sizeof(*ks->counters));
    if (ks->lc)
        rci_lc_init(ks->lc);
    if (!ks->name || !ks->kd || !ks->lc || !ks->counters) {
        if (ks->lc)
            rci_lc_destroy(ks->lc);
        free(ks->lc);
        free(ks->counters);
        rci_keydir_free(ks->kd);
        free(ks->name);
        free(ks);
        return NULL;
    }
    return ks;
}

/* Free the large parts of KS (nobody can be inside them) and point the
 * handle at the database's stand-ins: what a dropped keyspace keeps until
 * rc_close is its small handle and its name. */
static void ks_release_body(rc_db *db, rc_keyspace *ks)
{
    if (ks->lc != db->retired_lc) {
        rci_lc_destroy(ks->lc);
        free(ks->lc);
        free(ks->counters);
        rci_keydir_free(ks->kd);
        db->retired_handles++;
    }
    ks->lc = db->retired_lc;
    ks->counters = db->retired_counters;
    ks->kd = db->retired_kd;
}

static void ks_destroy(rc_db *db, rc_keyspace *ks);

/* Free the handle of a dropped keyspace whose last reference is gone (ks_mu
 * held, no epoch held). Nobody outside holds it; a background task may
 * still have read it from ks_by_id before the drop cleared that slot, so
 * wait for every epoch first. */
static void ks_free_handle(rc_db *db, rc_keyspace *ks)
{
    for (size_t i = 0; i < db->ks_all_n; i++) {
        if (db->ks_all[i] == ks) {
            db->ks_all[i] = db->ks_all[--db->ks_all_n];
            break;
        }
    }
    rci_epoch_synchronize(db);
    ks_destroy(db, ks);
}

/* Give back one reference (ks_mu held when LOCKED). 0, or RC_EINVAL when
 * none is left to give back: a live keyspace keeps the database's. */
static int ks_unref(rc_db *db, rc_keyspace *ks, bool locked)
{
    uint32_t r = atomic_load(&ks->refs);
    do {
        if (r == 0 || (r == 1 && !atomic_load_explicit(&ks->dropped, memory_order_acquire)))
            return rc_fail(RC_EINVAL, "keyspace '%s': released more often than opened", ks->name);
    } while (!atomic_compare_exchange_weak(&ks->refs, &r, r - 1));
    if (r - 1 > 0)
        return 0;
    if (locked) {
        ks_free_handle(db, ks);
        return 0;
    }
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    ks_free_handle(db, ks);
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return 0;
}

void rc_keyspace_retain(rc_keyspace *ks)
{
    if (ks)
        atomic_fetch_add(&ks->refs, 1);
}

int rc_keyspace_release(rc_db *db, rc_keyspace *ks)
{
    rci_error_clear();
    if (!ks)
        return 0;
    if (!db || ks->db != db)
        return rc_fail(RC_EINVAL, "the keyspace handle is not of this database");
    return ks_unref(db, ks, false);
}

static void ks_destroy(rc_db *db, rc_keyspace *ks)
{
    if (ks->lc != db->retired_lc) {
        rci_lc_destroy(ks->lc);
        free(ks->lc);
        free(ks->counters);
        rci_keydir_free(ks->kd);
    }
    free(ks->name);
    free(ks);
}

int rci_ks_init_retired(rc_db *db)
{
    /* untouched pages of the chunk pointer array cost no memory */
    db->ks_top = calloc(KS_CHUNKS, sizeof(*db->ks_top));
    db->retired_kd = rci_keydir_new();
    db->retired_lc = malloc(sizeof(*db->retired_lc));
    if (!db->ks_top || !db->retired_kd || !db->retired_lc) {
        free(db->ks_top);
        rci_keydir_free(db->retired_kd);
        free(db->retired_lc);
        db->ks_top = NULL;
        db->retired_kd = NULL;
        db->retired_lc = NULL;
        return RC_ENOMEM;
    }
    rci_lc_init(db->retired_lc);
    return 0;
}

/* ---- the id table (db.h): chunks never move, so a reader holding an
 * epoch reads a slot while ks_mu's holder registers another id */

rc_keyspace *rci_ks_by_id(rc_db *db, uint32_t id)
{
    if (id > KS_ID_MAX)
        return NULL;
    rc_keyspace **c = __atomic_load_n(&db->ks_top[id >> KS_CHUNK_BITS], __ATOMIC_ACQUIRE);
    return c ? __atomic_load_n(&c[id & (KS_CHUNK - 1)], __ATOMIC_ACQUIRE) : NULL;
}

rc_keyspace *rci_ks_next(rc_db *db, uint32_t *id)
{
    uint32_t end = __atomic_load_n(&db->next_ks_id, __ATOMIC_ACQUIRE);
    for (uint32_t i = *id; i < end && i <= KS_ID_MAX;) {
        rc_keyspace **c = __atomic_load_n(&db->ks_top[i >> KS_CHUNK_BITS], __ATOMIC_ACQUIRE);
        if (!c) {
            i = (i | (KS_CHUNK - 1)) + 1;
            continue;
        }
        rc_keyspace *ks = __atomic_load_n(&c[i & (KS_CHUNK - 1)], __ATOMIC_ACQUIRE);
        if (ks) {
            *id = i;
            return ks;
        }
        i++;
    }
    return NULL;
}

/* Clear ID's slot (ks_mu held or the opening thread; no epoch held). A
 * chunk left empty whose every id was already given is never written
 * again: it goes after a grace period (readers hold an epoch). */
static void ks_unset(rc_db *db, uint32_t id)
{
    rc_keyspace **c = db->ks_top[id >> KS_CHUNK_BITS];
    if (!c)
        return;
    __atomic_store_n(&c[id & (KS_CHUNK - 1)], NULL, __ATOMIC_RELEASE);
    uint32_t first = id & ~(KS_CHUNK - 1);
    if ((uint64_t)first + KS_CHUNK > db->next_ks_id)
        return; /* ids still to come land here */
    for (uint32_t i = 0; i < KS_CHUNK; i++)
        if (c[i])
            return;
    __atomic_store_n(&db->ks_top[id >> KS_CHUNK_BITS], NULL, __ATOMIC_RELEASE);
    db->ks_chunks_n--;
    rci_epoch_synchronize(db);
    free(c);
}

int rci_ks_register(rc_db *db, rc_keyspace *ks)
{
    if (ks->id > KS_ID_MAX)
        return RC_EINVAL;
    rc_keyspace ***top = &db->ks_top[ks->id >> KS_CHUNK_BITS];
    if (!*top) {
        rc_keyspace **c = calloc(KS_CHUNK, sizeof(*c));
        if (!c)
            return RC_ENOMEM;
        __atomic_store_n(top, c, __ATOMIC_RELEASE);
        db->ks_chunks_n++;
    }
    if (db->ks_all_n == db->ks_all_cap) {
        size_t cap = db->ks_all_cap ? db->ks_all_cap * 2 : 16;
        rc_keyspace **n = realloc(db->ks_all, cap * sizeof(*n));
        if (!n)
            return RC_ENOMEM;
        db->ks_all = n;
        db->ks_all_cap = cap;
    }
    db->ks_all[db->ks_all_n++] = ks;
    if (ks->id >= db->next_ks_id)
        __atomic_store_n(&db->next_ks_id, ks->id + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&(*top)[ks->id & (KS_CHUNK - 1)], ks, __ATOMIC_RELEASE);
    return 0;
}

void rci_ks_free_all(rc_db *db)
{
    for (size_t i = 0; i < db->ks_all_n; i++)
        ks_destroy(db, db->ks_all[i]);
    if (db->retired_lc) {
        rci_lc_destroy(db->retired_lc);
        free(db->retired_lc);
    }
    rci_keydir_free(db->retired_kd);
    db->retired_lc = NULL;
    db->retired_kd = NULL;
    free(db->ks_all);
    if (db->ks_top)
        for (uint32_t c = 0; c < KS_CHUNKS; c++)
            free(db->ks_top[c]);
    free(db->ks_top);
    db->ks_all = NULL;
    db->ks_top = NULL;
    db->ks_all_n = db->ks_all_cap = 0;
    db->ks_chunks_n = 0;
}

rc_keyspace *rci_ks_resolve(rc_db *db, rc_keyspace *ks)
{
    if (!ks)
        ks = rci_ks_by_id(db, FMT_KS_DEFAULT);
    if (atomic_load_explicit(&ks->dropped, memory_order_acquire))
        return NULL;
    return ks;
}

rc_keyspace *rc_default_keyspace(rc_db *db)
{
    return rci_ks_by_id(db, FMT_KS_DEFAULT);
}

const char *rc_keyspace_name(const rc_keyspace *ks)
{
    return ks->name;
}

int64_t rc_keyspace_default_ttl(const rc_keyspace *ks)
{
    return atomic_load(&((rc_keyspace *)ks)->default_ttl_ms);
}

static int check_name(const char *name)
{
    if (!name)
        return rc_fail(RC_EINVAL, "keyspace name is NULL");
    size_t len = strlen(name);
    if (len == 0 || len > RC_KEYSPACE_NAME_MAX)
        return rc_fail(RC_EINVAL, "keyspace name must be 1..%u bytes", RC_KEYSPACE_NAME_MAX);
    return 0;
}

/* Find a live keyspace by name (ks_mu held). Linear in the number of
 * keyspaces; servers keep the handle they got. */
static rc_keyspace *find_live(rc_db *db, const char *name)
{
    rc_keyspace *ks;
    for (uint32_t id = 1; (ks = rci_ks_next(db, &id)); id++)
        if (!atomic_load(&ks->dropped) && strcmp(ks->name, name) == 0)
            return ks;
    return NULL;
}

/* Write catalogue records (ks_mu held) as one batch and wait for them: the
 * record for NAME (E; NULL: a tombstone of NAME) and, when TOMB is not NULL,
 * a tombstone of the name TOMB. */
static int write_catalog2(rc_db *db, const char *name, const fmt_catalog_entry *e, const char *tomb)
{
    uint8_t val[FMT_CATALOG_VALUE_LEN];
    rc_keyspace *cat = rci_ks_by_id(db, FMT_KS_CATALOG);
    log_rec r[2] = {{.ks = FMT_KS_CATALOG, .key = name, .klen = (uint32_t)strlen(name)}};
    size_t n = 1;
    if (e) {
        fmt_catalog_encode(val, e);
        r[0].val = val;
        r[0].vlen = sizeof(val);
    } else {
        r[0].flags = FMT_REC_TOMBSTONE;
    }
    if (tomb)
        r[n++] = (log_rec){.flags = FMT_REC_TOMBSTONE,
                           .ks = FMT_KS_CATALOG,
                           .key = tomb,
                           .klen = (uint32_t)strlen(tomb)};
    uint64_t lsn = 0;
    epoch_slot *ep = rci_epoch_enter(db);
    int err = rci_log_append(db, r, n, &lsn);
    for (size_t i = 0; i < n && !err; i++)
        rci_index_apply(db, cat, rci_keydir_hash(r[i].key, r[i].klen), &r[i], r[i].vlen);
    rci_epoch_exit(ep);
    if (!err)
        err = rci_log_wait(db, lsn);
    return err;
}

static int write_catalog(rc_db *db, const char *name, const fmt_catalog_entry *e)
{
    int err = write_catalog2(db, name, e, NULL);
    /* a live record for the kept dropped name replaces it; its id is higher */
    if (!err && !e->dropped && strcmp(name, db->cat_dropped_name) == 0)
        db->cat_dropped_name[0] = 0;
    return err;
}

/* Note a dropped catalogue record (ID, NAME of KLEN bytes) met while
 * loading the catalogue: the highest id is the kept one. */
static void note_dropped(rc_db *db, const uint8_t *name, size_t klen, uint32_t id)
{
    if (db->cat_dropped_name[0] && id <= db->cat_dropped_id)
        return;
    memcpy(db->cat_dropped_name, name, klen);
    db->cat_dropped_name[klen] = 0;
    db->cat_dropped_id = id;
}

/* The catalogue half of dropping NAME (id ID; ks_mu held). */
static int write_drop(rc_db *db, const char *name, uint32_t id)
{
    if (db->cat_dropped_name[0] && db->cat_dropped_id > id)
        return write_catalog2(db, name, NULL, NULL);
    fmt_catalog_entry e = {.dropped = true, .ks_id = id, .default_ttl_ms = 0};
    const char *prev = db->cat_dropped_name[0] && strcmp(db->cat_dropped_name, name) != 0
                           ? db->cat_dropped_name
                           : NULL;
    int err = write_catalog2(db, name, &e, prev);
    if (!err) {
        snprintf(db->cat_dropped_name, sizeof(db->cat_dropped_name), "%s", name);
        db->cat_dropped_id = id;
    }
    return err;
}

int rc_keyspace_open(rc_db *db, const char *name, int flags, rc_keyspace **out)
{
    rci_error_clear();
    int err = check_name(name);
    if (err)
        return err;
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    rc_keyspace *ks = find_live(db, name);
    if (ks) {
        if ((flags & RC_KS_CREATE) && (flags & RC_KS_EXCL)) {
            err = rc_fail(RC_EEXISTS, "keyspace '%s' already exists", name);
        } else {
            atomic_fetch_add(&ks->refs, 1);
            *out = ks;
        }
        goto out;
    }
    if (!(flags & RC_KS_CREATE)) {
        err = rc_fail(RC_ENOKEYSPACE, "no keyspace named '%s'", name);
        goto out;
    }
    if (db->next_ks_id > KS_ID_MAX) {
        err = rc_fail(RC_ELIMIT, "this database has used all %u keyspace ids", KS_ID_MAX);
        goto out;
    }
    fmt_catalog_entry e = {.dropped = false, .ks_id = db->next_ks_id, .default_ttl_ms = 0};
    ks = rci_ks_new(db, name, e.ks_id, 0);
    if (!ks) {
        err = RC_ENOMEM;
        goto out;
    }
    err = write_catalog(db, name, &e);
    if (!err)
        err = rci_ks_register(db, ks);
    if (err) {
        ks_destroy(db, ks);
        goto out;
    }
    atomic_fetch_add(&ks->refs, 1); /* the caller's */
    *out = ks;
out:
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return err;
}

static int drop_account(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    rc_keyspace *ks = ctx;
    rci_index_account_removed(ks->db, ks, loc, klen);
    return 0;
}

/* The in-memory half of a drop, once the catalogue says so (ks_mu held, no
 * epoch held): the handle answers RC_ENOKEYSPACE, its keys' bytes count as
 * dead, and the database gives back its reference (which frees the handle
 * when nobody else holds one: KS must not be used after this). Shared by rc_keyspace_drop and
 * rci_ks_refresh_catalog (rc_load). */
static void ks_retire(rc_db *db, rc_keyspace *ks)
{
    atomic_store_explicit(&ks->dropped, true, memory_order_release);
    rci_epoch_synchronize(db); /* nobody is inside ks->kd after this */
    epoch_slot *ep = rci_epoch_enter(db);
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++)
        rci_keydir_shard_foreach(ks->kd, s, drop_account, ks);
    rci_epoch_exit(ep);
    /* no lister, writer or background task is inside the cache either: each
     * holds an epoch and checks `dropped` inside it */
    ks_release_body(db, ks);
    ks_unset(db, ks->id);
    ks_unref(db, ks, true);
}

int rc_keyspace_drop(rc_db *db, const char *name)
{
    rci_error_clear();
    int err = check_name(name);
    if (err)
        return err;
    if (strcmp(name, "default") == 0)
        return rc_fail(RC_EINVAL, "the keyspace 'default' cannot be dropped");
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    rc_keyspace *ks = find_live(db, name);
    if (!ks) {
        err = rc_fail(RC_ENOKEYSPACE, "no keyspace named '%s'", name);
        goto out;
    }
    err = write_drop(db, name, ks->id);
    if (err)
        goto out;
    ks_retire(db, ks);
out:
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return err;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rc_keyspace_list(rc_db *db, char ***names, size_t *count)
{
    rci_error_clear();
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    size_t n = 0;
    rc_keyspace *ks;
    for (uint32_t id = 1; (ks = rci_ks_next(db, &id)); id++)
        if (!atomic_load(&ks->dropped))
            n++;
    char **v = calloc(n ? n : 1, sizeof(*v));
    int err = 0;
    size_t k = 0;
    if (!v) {
        err = RC_ENOMEM;
        goto out;
    }
    for (uint32_t id = 1; k < n && (ks = rci_ks_next(db, &id)); id++) {
        if (atomic_load(&ks->dropped))
            continue;
        v[k] = strdup(ks->name);
        if (!v[k]) {
            rc_names_free(v, k);
            err = RC_ENOMEM;
            goto out;
        }
        k++;
    }
    qsort(v, k, sizeof(*v), cmp_names);
    *names = v;
    *count = k;
out:
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return err;
}

void rc_names_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

int rc_keyspace_set_max_value(rc_keyspace *ks, uint64_t bytes)
{
    rci_error_clear();
    if (!ks)
        return rc_fail(RC_EINVAL, "NULL keyspace");
    if (bytes > RC_VALUE_MAX)
        return rc_fail(RC_EINVAL, "a value limit of %llu bytes is over the engine's %u",
                       (unsigned long long)bytes, RC_VALUE_MAX);
    atomic_store(&ks->max_value, bytes);
    return 0;
}

int rc_keyspace_set_default_ttl(rc_keyspace *ks, int64_t ttl_ms)
{
    rci_error_clear();
    if (!ks || ttl_ms < 0)
        return rc_fail(RC_EINVAL, "default TTL must be >= 0 ms");
    rc_db *db = ks->db;
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    int err = 0;
    if (atomic_load(&ks->dropped)) {
        err = rc_fail(RC_ENOKEYSPACE, "keyspace '%s' was dropped", ks->name);
        goto out;
    }
    fmt_catalog_entry e = {.dropped = false, .ks_id = ks->id, .default_ttl_ms = ttl_ms};
    err = write_catalog(db, ks->name, &e);
    if (!err)
        atomic_store(&ks->default_ttl_ms, ttl_ms);
out:
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return err;
}

/* Recovery, between its two passes (recovery.c): keydir 0 holds the
 * newest catalogue record per name. Make a keyspace for each live id, so
 * that the second pass indexes their records; records of any other id are
 * dead and never indexed. */
typedef struct catalog_scan {
    rc_db *db;
    int err;
} catalog_scan;

static int catalog_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    catalog_scan *cs = ctx;
    rc_db *db = cs->db;
    rc_value v = {0};
    int err = rci_read_record(db, loc, &v, true);
    fmt_catalog_entry e;
    if (err || fmt_catalog_decode(v.data, v.len, &e) != FMT_OK || klen > RC_KEYSPACE_NAME_MAX) {
        rc_value_free(&v);
        db->corrupt_records++;
        return 0; /* a bad catalogue record: its keyspace stays unknown */
    }
    rc_value_free(&v);
    if (e.ks_id > KS_ID_MAX) {
        db->corrupt_records++;
        return 0;
    }
    if (e.ks_id >= db->next_ks_id)
        __atomic_store_n(&db->next_ks_id, e.ks_id + 1, __ATOMIC_RELEASE);
    if (e.ks_id == FMT_KS_DEFAULT && !e.dropped) {
        atomic_store(&rci_ks_by_id(db, FMT_KS_DEFAULT)->default_ttl_ms, e.default_ttl_ms);
        return 0;
    }
    if (e.dropped && memchr(key, 0, klen) == NULL)
        note_dropped(db, key, klen, e.ks_id);
    if (e.dropped || e.ks_id <= FMT_KS_DEFAULT)
        return 0;
    char name[RC_KEYSPACE_NAME_MAX + 1];
    memcpy(name, key, klen);
    name[klen] = 0;
    rc_keyspace *ks = rci_ks_by_id(db, e.ks_id);
    if (ks) {
        free(ks->name);
        ks->name = strdup(name);
        if (!ks->name) {
            cs->err = RC_ENOMEM;
            return 1;
        }
    } else {
        ks = rci_ks_new(db, name, e.ks_id, 0);
        if (!ks || rci_ks_register(db, ks) != 0) {
            cs->err = RC_ENOMEM;
            return 1;
        }
    }
    atomic_store(&ks->default_ttl_ms, e.default_ttl_ms);
    return 0;
}

int rci_ks_load_catalog(rc_db *db)
{
    rc_keyspace *cat = rci_ks_by_id(db, FMT_KS_CATALOG);
    catalog_scan cs = {.db = db};
    for (unsigned s = 0; s < KEYDIR_SHARDS && !cs.err; s++)
        rci_keydir_shard_foreach(cat->kd, s, catalog_visit, &cs);
    return cs.err;
}

/* ---- rc_load (load.c): after catalogue records were appended and indexed
 * into keydir 0, make the keyspace handles match the catalogue. Unlike
 * rci_ks_load_catalog (recovery) this runs on a live database: existing handles
 * keep their name (an id never changes its name), missing ones are created,
 * and handles whose id the catalogue no longer lists as live are retired as
 * by a drop. next_ks_id moves above every id the catalogue names, live or
 * dropped, so that ids are never reused. */
typedef struct catalog_item {
    uint32_t id;
    bool dropped;
    int64_t ttl;
    char name[RC_KEYSPACE_NAME_MAX + 1];
} catalog_item;

typedef struct catalog_collect {
    rc_db *db;
    catalog_item *items;
    size_t n, cap;
    int err;
} catalog_collect;

static int catalog_collect_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    catalog_collect *cc = ctx;
    rc_value v = {0};
    fmt_catalog_entry e;
    int err = rci_read_record(cc->db, loc, &v, true);
    bool ok = !err && klen <= RC_KEYSPACE_NAME_MAX && memchr(key, 0, klen) == NULL &&
              fmt_catalog_decode(v.data, v.len, &e) == FMT_OK && e.ks_id <= KS_ID_MAX;
    rc_value_free(&v);
    if (!ok)
        return 0; /* not a keyspace entry: its id stays unknown */
    if (cc->n == cc->cap) {
        size_t cap = cc->cap ? cc->cap * 2 : 16;
        catalog_item *n = realloc(cc->items, cap * sizeof(*n));
        if (!n)
            return cc->err = RC_ENOMEM;
        cc->items = n;
        cc->cap = cap;
    }
    catalog_item *it = &cc->items[cc->n++];
    it->id = e.ks_id;
    it->dropped = e.dropped;
    it->ttl = e.default_ttl_ms;
    memcpy(it->name, key, klen);
    it->name[klen] = 0;
    return 0;
}

int rci_ks_refresh_catalog(rc_db *db)
{
    rc_keyspace *cat = rci_ks_by_id(db, FMT_KS_CATALOG);
    catalog_collect cc = {.db = db};
    epoch_slot *ep = rci_epoch_enter(db);
    for (unsigned s = 0; s < KEYDIR_SHARDS && !cc.err; s++) {
        rci_keydir_rdlock(cat->kd, s);
        rci_keydir_shard_foreach(cat->kd, s, catalog_collect_visit, &cc);
        rci_keydir_unlock(cat->kd, s);
    }
    rci_epoch_exit(ep);
    db->cat_dropped_name[0] = 0;
    db->cat_dropped_id = 0;
    for (size_t i = 0; i < cc.n; i++)
        if (cc.items[i].dropped)
            note_dropped(db, (const uint8_t *)cc.items[i].name, strlen(cc.items[i].name),
                         cc.items[i].id);
    uint32_t live_cap = db->next_ks_id;
    for (size_t i = 0; i < cc.n; i++)
        if (!cc.items[i].dropped && cc.items[i].id >= live_cap)
            live_cap = cc.items[i].id + 1;
    uint8_t *live = cc.err ? NULL : calloc(live_cap ? live_cap : 1, 1);
    int err = cc.err ? cc.err : live ? 0 : RC_ENOMEM;
    for (size_t i = 0; i < cc.n && !err; i++) {
        catalog_item *it = &cc.items[i];
        if (it->id >= db->next_ks_id)
            __atomic_store_n(&db->next_ks_id, it->id + 1, __ATOMIC_RELEASE);
        if (it->id == FMT_KS_DEFAULT && !it->dropped)
            atomic_store(&rci_ks_by_id(db, FMT_KS_DEFAULT)->default_ttl_ms, it->ttl);
        if (it->dropped || it->id <= FMT_KS_DEFAULT)
            continue;
        live[it->id] = 1;
        rc_keyspace *ks = rci_ks_by_id(db, it->id);
        if (!ks) {
            ks = rci_ks_new(db, it->name, it->id, it->ttl);
            if (!ks)
                err = RC_ENOMEM;
            else if ((err = rci_ks_register(db, ks)) != 0)
                ks_destroy(db, ks);
        }
        if (!err)
            atomic_store(&ks->default_ttl_ms, it->ttl);
    }
    rc_keyspace *ks;
    for (uint32_t id = FMT_KS_DEFAULT + 1; !err && (ks = rci_ks_next(db, &id)); id++)
        if (!atomic_load(&ks->dropped) && (id >= live_cap || !live[id]))
            ks_retire(db, ks);
    free(live);
    free(cc.items);
    return err;
}
