/*
 * store.c — the object-store side of backup chains: opening a location,
 * finding and reading manifests, and retention.
 */
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

int rcbs_open(rcbs *s, const char *url)
{
    memset(s, 0, sizeof *s);
    if (rcs3_parse_url(url, &s->bucket, &s->prefix, s->err, sizeof s->err) != 0)
        return -1;
    snprintf(s->url, sizeof s->url, "s3://%s%s%s", s->bucket, s->prefix[0] ? "/" : "", s->prefix);
    s->s3 = rcs3_new(s->bucket, s->err, sizeof s->err);
    if (s->s3 == NULL) {
        free(s->bucket);
        free(s->prefix);
        s->bucket = s->prefix = NULL;
        return -1;
    }
    return 0;
}

void rcbs_close(rcbs *s)
{
    rcs3_free(s->s3);
    free(s->bucket);
    free(s->prefix);
    s->s3 = NULL;
    s->bucket = s->prefix = NULL;
}

const char *rcbs_error(const rcbs *s)
{
    return s->err;
}

int rcbsi_store_error(rcbs *s)
{
    snprintf(s->err, sizeof s->err, "%s", rcs3_error(s->s3));
    return RCBS_ESTORE;
}

int rcbsi_key(const rcbs *s, const char *rel, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s%s", s->prefix, s->prefix[0] ? "/" : "", rel);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* The part of KEY after "<prefix>/", or NULL. */
static const char *relative(const rcbs *s, const char *key)
{
    size_t pl = strlen(s->prefix);
    if (pl == 0)
        return key;
    if (strncmp(key, s->prefix, pl) != 0 || key[pl] != '/')
        return NULL;
    return key + pl + 1;
}

int rcbsi_get_manifest(rcbs *s, const char *db, uint64_t until, rcm_manifest *m)
{
    char rel[RCM_DB_ID_MAX + 48], key[1200], why[256];
    rcm_manifest_name(rel, sizeof rel, db, until);
    if (rcbsi_key(s, rel, key, sizeof key) != 0)
        return RCBS_ELOCAL;
    char *text = NULL;
    size_t len = 0;
    int rc = rcs3_get_mem(s->s3, key, 64u << 20, &text, &len);
    if (rc == RCS3_ENOTFOUND) {
        snprintf(s->err, sizeof s->err, "manifest %s/%s vanished (deleted meanwhile?)", s->url,
                 rel);
        return RCBS_ENONE;
    }
    if (rc != 0)
        return rcbsi_store_error(s);
    rc = rcm_parse(text, len, m, why, sizeof why);
    free(text);
    if (rc != 0) {
        snprintf(s->err, sizeof s->err, "manifest %s/%s is invalid: %s", s->url, rel, why);
        return RCBS_ECORRUPT;
    }
    if (strcmp(m->database, db) != 0 || m->until != until) {
        snprintf(s->err, sizeof s->err, "manifest %s/%s names another database or point", s->url,
                 rel);
        rcm_free(m);
        return RCBS_ECORRUPT;
    }
    return 0;
}

/* ------------------------------------------------------------- listing */

typedef struct found {
    const rcbs *s;
    const char *db; /* NULL: every database */
    struct mname {
        char db[RCM_DB_ID_MAX + 1];
        uint64_t until;
    } * v;
    size_t n, cap;
    bool oom;
} found;

static int on_manifest_key(void *ctx, const char *key, uint64_t size)
{
    found *f = ctx;
    (void)size;
    const char *rel = relative(f->s, key);
    struct mname x;
    if (rel == NULL || rcm_parse_manifest_name(rel, x.db, &x.until) != 0)
        return 0;
    if (f->db != NULL && strcmp(f->db, x.db) != 0)
        return 0;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct mname *nv = realloc(f->v, cap * sizeof *nv);
        if (nv == NULL) {
            f->oom = true;
            return 1;
        }
        f->v = nv;
        f->cap = cap;
    }
    f->v[f->n++] = x;
    return 0;
}

static int cmp_mname(const void *a, const void *b)
{
    const struct mname *x = a, *y = b;
    int c = strcmp(x->db, y->db);
    if (c != 0)
        return c;
    return x->until < y->until ? -1 : x->until > y->until;
}

/* Names of manifests under the prefix (of DB, or all), sorted. */
static int find_manifests(rcbs *s, const char *db, found *f)
{
    memset(f, 0, sizeof *f);
    f->s = s;
    f->db = db;
    char rel[RCM_DB_ID_MAX + 16], key[1200];
    if (db != NULL)
        snprintf(rel, sizeof rel, "%s/manifest/", db);
    else
        rel[0] = '\0';
    if (rcbsi_key(s, rel, key, sizeof key) != 0)
        return RCBS_ELOCAL;
    if (db == NULL && s->prefix[0] != '\0')
        snprintf(key, sizeof key, "%s/", s->prefix);
    int rc = rcs3_list(s->s3, key, on_manifest_key, f);
    if (f->oom) {
        snprintf(s->err, sizeof s->err, "out of memory");
        free(f->v);
        return RCBS_ELOCAL;
    }
    if (rc != 0) {
        free(f->v);
        f->v = NULL;
        return rc == RCS3_ENOTFOUND
                   ? (snprintf(s->err, sizeof s->err, "no bucket '%s' at %s", s->bucket, s->url),
                      RCBS_ESTORE)
                   : rcbsi_store_error(s);
    }
    if (f->n > 1)
        qsort(f->v, f->n, sizeof *f->v, cmp_mname);
    return 0;
}

int rcbs_newest(rcbs *s, const char *db, rcm_manifest *m)
{
    found f;
    int rc = find_manifests(s, db, &f);
    if (rc != 0)
        return rc;
    if (f.n == 0) {
        free(f.v);
        snprintf(s->err, sizeof s->err, "no backup of database %s under %s", db, s->url);
        return RCBS_ENONE;
    }
    rc = rcbsi_get_manifest(s, db, f.v[f.n - 1].until, m);
    free(f.v);
    return rc;
}

void rcbs_free_list(rcm_manifest *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rcm_free(&list[i]);
    free(list);
}

int rcbs_list(rcbs *s, const char *db, rcm_manifest **out, size_t *n)
{
    found f;
    *out = NULL;
    *n = 0;
    int rc = find_manifests(s, db, &f);
    if (rc != 0)
        return rc;
    rcm_manifest *list = calloc(f.n ? f.n : 1, sizeof *list);
    if (list == NULL) {
        free(f.v);
        snprintf(s->err, sizeof s->err, "out of memory");
        return RCBS_ELOCAL;
    }
    size_t k = 0;
    for (size_t i = 0; i < f.n; i++) {
        rc = rcbsi_get_manifest(s, f.v[i].db, f.v[i].until, &list[k]);
        if (rc == 0)
            k++;
        else if (rc == RCBS_ENONE || rc == RCBS_ECORRUPT)
            rc = 0; /* deleted meanwhile, or not trusted: not listed */
        else
            break;
    }
    free(f.v);
    if (rc != 0) {
        rcbs_free_list(list, k);
        return rc;
    }
    *out = list;
    *n = k;
    return 0;
}

/* ------------------------------------------------------------ retention */

typedef struct objects {
    const rcbs *s;
    char **keys;
    size_t n, cap;
    bool oom;
} objects;

static int on_object_key(void *ctx, const char *key, uint64_t size)
{
    objects *o = ctx;
    (void)size;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        char **nk = realloc(o->keys, cap * sizeof *nk);
        if (nk == NULL) {
            o->oom = true;
            return 1;
        }
        o->keys = nk;
        o->cap = cap;
    }
    if ((o->keys[o->n] = strdup(key)) == NULL) {
        o->oom = true;
        return 1;
    }
    o->n++;
    return 0;
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static bool kept_full(const uint64_t *fulls, size_t nf, uint64_t until)
{
    for (size_t i = 0; i < nf; i++)
        if (fulls[i] == until)
            return true;
    return false;
}

int rcbs_prune(rcbs *s, const char *db_id, unsigned keep_full, unsigned *deleted)
{
    *deleted = 0;
    rcm_manifest *list = NULL;
    size_t nm = 0;
    int rc = rcbs_list(s, db_id, &list, &nm);
    if (rc != 0)
        return rc;
    if (nm == 0 || keep_full == 0) {
        rcbs_free_list(list, nm);
        return 0;
    }
    /* the fulls named by manifests, newest first; keep the first KEEP_FULL */
    uint64_t *fulls = malloc(nm * sizeof *fulls), newest = 0;
    size_t nf = 0;
    if (fulls == NULL) {
        rcbs_free_list(list, nm);
        snprintf(s->err, sizeof s->err, "out of memory");
        return RCBS_ELOCAL;
    }
    for (size_t i = 0; i < nm; i++) {
        if (list[i].until > newest)
            newest = list[i].until;
        if (!kept_full(fulls, nf, list[i].chain[0].until))
            fulls[nf++] = list[i].chain[0].until;
    }
    if (nf > 1)
        qsort(fulls, nf, sizeof *fulls, cmp_u64_desc);
    if (nf > keep_full)
        nf = keep_full;

    /* 1. manifests of dropped chains go first, so no reader trusts a chain
     * whose objects are about to go */
    char rel[RCM_DB_ID_MAX + 48], key[1200];
    for (size_t i = 0; i < nm && rc == 0; i++) {
        if (kept_full(fulls, nf, list[i].chain[0].until))
            continue;
        rcm_manifest_name(rel, sizeof rel, db_id, list[i].until);
        if (rcbsi_key(s, rel, key, sizeof key) == 0) {
            if (rcs3_delete(s->s3, key) != 0)
                rc = rcbsi_store_error(s);
            else
                (*deleted)++;
        }
    }
    /* 2. objects no kept manifest names and not newer than the newest
     * manifest (a newer one may belong to an upload under way) */
    objects o = {.s = s};
    char dir[RCM_DB_ID_MAX + 8];
    snprintf(dir, sizeof dir, "%s/", db_id);
    if (rc == 0 && rcbsi_key(s, dir, key, sizeof key) == 0) {
        int lr = rcs3_list(s->s3, key, on_object_key, &o);
        if (o.oom) {
            snprintf(s->err, sizeof s->err, "out of memory");
            rc = RCBS_ELOCAL;
        } else if (lr != 0) {
            rc = rcbsi_store_error(s);
        }
    }
    for (size_t k = 0; k < o.n && rc == 0; k++) {
        const char *r = relative(s, o.keys[k]);
        char kdb[RCM_DB_ID_MAX + 1];
        uint64_t until;
        if (r == NULL || rcm_parse_object_name(r, kdb, &until) != 0 || strcmp(kdb, db_id) != 0 ||
            until > newest)
            continue;
        bool named = false;
        for (size_t i = 0; i < nm && !named; i++) {
            if (!kept_full(fulls, nf, list[i].chain[0].until))
                continue;
            for (size_t j = 0; j < list[i].n && !named; j++)
                named = strcmp(list[i].chain[j].name, r) == 0;
        }
        if (named)
            continue;
        if (rcs3_delete(s->s3, o.keys[k]) != 0)
            rc = rcbsi_store_error(s);
        else
            (*deleted)++;
    }
    for (size_t k = 0; k < o.n; k++)
        free(o.keys[k]);
    free(o.keys);
    free(fulls);
    rcbs_free_list(list, nm);
    return rc;
}
