/*
 * policy.c — bucket policies.
 *
 * A bucket is an engine keyspace ("b:" + name) plus a policy record in the
 * system keyspace ("sys", key "bucket/" + name): JSON with the default TTL,
 * the public permissions, the signing-key version of its tokens and, per
 * role, the BLAKE2b-256 hash of that role's bucket key. Bucket keys are 256
 * random bits, so an unsalted hash is enough, and nothing stored is a usable
 * secret. The one secret is the server secret ("sys"/"secret", 32 random
 * bytes made at first start) from which every signing key is derived
 * (auth_token.c); because it lives in the engine, a backup restored elsewhere
 * keeps every credential valid.
 *
 * Policies are read on every bucket request, so they are cached in memory:
 * a chained hash table under a rwlock, copied out to the request (a policy is
 * ~250 bytes). Every copy holds its own references to the bucket's keyspace
 * handles (rc_keyspace_retain), given back with policy_release: the cache's
 * copy when the entry goes, a request's when it completes. So a deleted
 * bucket's handles are freed by the engine once its last request is done,
 * and a request still running after the delete gets RC_ENOKEYSPACE. kvd is the only writer of its
 * directory (the engine's LOCK), so the cache is coherent as long as every change goes through
 * here. Create, update and delete serialise on one mutex: they are rare, and it makes "create if
 * the name is free" and "delete then recreate" simple.
 */
#include "policy.h"
#include "cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define CACHE_SLOTS 1024u
#define SYS_SECRET_KEY "secret"
#define SYS_BUCKET_PREFIX "bucket/"

typedef struct cache_entry {
    struct cache_entry *next;
    policy pol;
} cache_entry;

struct policy_cache {
    pthread_rwlock_t lock;
    pthread_mutex_t admin;
    cache_entry *slots[CACHE_SLOTS];
};

static const char *const role_names[ROLE_COUNT] = {"read", "write", "delete", "enumerate", "admin"};

const char *role_name(int role)
{
    return role >= 0 && role < ROLE_COUNT ? role_names[role] : "?";
}

int role_from_name(const char *name)
{
    for (int i = 0; i < ROLE_COUNT; i++)
        if (strcmp(name, role_names[i]) == 0)
            return i;
    return -1;
}

unsigned role_perms(int role)
{
    return role == ROLE_ADMIN ? PERM_ALL : (1u << role);
}

unsigned perm_from_name(const char *name)
{
    int r = role_from_name(name);
    return r < 0 ? 0 : 1u << r;
}

int perms_from_json(const json_t *arr, unsigned *out)
{
    size_t i;
    json_t *v;
    unsigned p = 0;
    if (!json_is_array(arr))
        return -1;
    json_array_foreach(arr, i, v)
    {
        unsigned bit = json_is_string(v) ? perm_from_name(json_string_value(v)) : 0;
        if (bit == 0)
            return -1;
        p |= bit;
    }
    *out = p;
    return 0;
}

json_t *perms_to_json(unsigned perms)
{
    json_t *a = json_array();
    for (int i = 0; a != NULL && i < ROLE_COUNT; i++)
        if (perms & (1u << i))
            json_array_append_new(a, json_string(role_names[i]));
    return a;
}

/* ------------------------------------------------------------ storage */

json_t *policy_to_storage_json(const policy *p)
{
    json_t *o = json_object(), *hashes = json_object();
    if (o == NULL || hashes == NULL)
        goto fail;
    for (int r = 0; r < ROLE_COUNT; r++) {
        if (!p->has_key[r])
            continue;
        char hex[2 * KEY_HASH_BYTES + 1];
        sodium_bin2hex(hex, sizeof hex, p->key_hash[r], KEY_HASH_BYTES);
        json_object_set_new(hashes, role_names[r], json_string(hex));
    }
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "created_at", json_integer(p->created_at));
    json_object_set_new(o, "default_ttl", json_integer(p->default_ttl_s));
    json_object_set_new(o, "public", perms_to_json(p->public_perms));
    json_object_set_new(o, "signing_key_version", json_integer(p->signing_version));
    if (p->has_incarnation) {
        char hex[2 * INCARNATION_BYTES + 1];
        sodium_bin2hex(hex, sizeof hex, p->incarnation, INCARNATION_BYTES);
        json_object_set_new(o, "incarnation", json_string(hex));
    }
    json_object_set_new(o, "key_hashes", hashes);
    if (p->content_types)
        json_object_set_new(o, "content_types", json_true());
    return o;
fail:
    json_decref(o);
    json_decref(hashes);
    return NULL;
}

int policy_from_storage_json(const json_t *o, policy *out)
{
    memset(out, 0, sizeof *out);
    const char *name = json_string_value(json_object_get(o, "name"));
    json_t *hashes = json_object_get(o, "key_hashes");
    if (name == NULL || !rcu_bucket_name_valid(name, strlen(name)) || !json_is_object(hashes))
        return -1;
    snprintf(out->name, sizeof out->name, "%s", name);
    out->created_at = json_integer_value(json_object_get(o, "created_at"));
    out->default_ttl_s = json_integer_value(json_object_get(o, "default_ttl"));
    out->signing_version = (uint32_t)json_integer_value(json_object_get(o, "signing_key_version"));
    out->content_types = json_is_true(json_object_get(o, "content_types"));
    if (perms_from_json(json_object_get(o, "public"), &out->public_perms) != 0)
        return -1;
    json_t *inc = json_object_get(o, "incarnation");
    if (inc != NULL) {
        const char *hex = json_string_value(inc);
        size_t n = 0;
        if (hex == NULL ||
            sodium_hex2bin(out->incarnation, INCARNATION_BYTES, hex, strlen(hex), NULL, &n, NULL) !=
                0 ||
            n != INCARNATION_BYTES)
            return -1;
        out->has_incarnation = true;
    }
    for (int r = 0; r < ROLE_COUNT; r++) {
        const char *hex = json_string_value(json_object_get(hashes, role_names[r]));
        size_t n = 0;
        if (hex == NULL)
            continue;
        if (sodium_hex2bin(out->key_hash[r], KEY_HASH_BYTES, hex, strlen(hex), NULL, &n, NULL) !=
                0 ||
            n != KEY_HASH_BYTES)
            return -1;
        out->has_key[r] = true;
    }
    return 0;
}

json_t *policy_public_json(const policy *p)
{
    json_t *o = json_object(), *roles = json_array();
    if (o == NULL || roles == NULL) {
        json_decref(o);
        json_decref(roles);
        return NULL;
    }
    for (int r = 0; r < ROLE_COUNT; r++)
        if (p->has_key[r])
            json_array_append_new(roles, json_string(role_names[r]));
    json_object_set_new(o, "bucket", json_string(p->name));
    json_object_set_new(o, "created_at", json_integer(p->created_at));
    json_object_set_new(o, "default_ttl", json_integer(p->default_ttl_s));
    json_object_set_new(o, "public", perms_to_json(p->public_perms));
    json_object_set_new(o, "roles", roles);
    json_object_set_new(o, "signing_key_version", json_integer(p->signing_version));
    return o;
}

const unsigned char *policy_incarnation(const policy *p)
{
    return p->has_incarnation ? p->incarnation : NULL;
}

void policy_incarnation_text(const policy *p, char out[2 * INCARNATION_BYTES + 1])
{
    if (p->has_incarnation)
        sodium_bin2hex(out, 2 * INCARNATION_BYTES + 1, p->incarnation, INCARNATION_BYTES);
    else
        snprintf(out, 2 * INCARNATION_BYTES + 1, "%lld", (long long)p->created_at);
}

static void storage_key(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", SYS_BUCKET_PREFIX, name);
}

static void keyspace_name(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", KVD_BUCKET_KS_PREFIX, name);
}

static void ctype_keyspace_name(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", KVD_CTYPE_KS_PREFIX, name);
}

static int store_policy(kvd *srv, const policy *p, rc_cond cond)
{
    char key[sizeof SYS_BUCKET_PREFIX + KVD_BUCKET_NAME_MAX];
    json_t *o = policy_to_storage_json(p);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL)
        return RC_ENOMEM;
    storage_key(p->name, key, sizeof key);
    rc_op op = {.kind = RC_OP_PUT,
                .ks = srv->sys,
                .key = key,
                .klen = strlen(key),
                .val = text,
                .vlen = strlen(text),
                .type = RC_TYPE_JSON,
                .ttl_ms = RC_TTL_NONE,
                .cond = cond};
    int rc = rc_apply(srv->db, &op, 1, NULL);
    free(text);
    return rc;
}

/* -------------------------------------------------------------- cache */

static void policy_hold(policy *p)
{
    rc_keyspace_retain(p->ks);
    rc_keyspace_retain(p->ctype_ks);
}

void policy_release(kvd *srv, policy *p)
{
    rc_keyspace_release(srv->db, p->ks);
    rc_keyspace_release(srv->db, p->ctype_ks);
    p->ks = NULL;
    p->ctype_ks = NULL;
}

static size_t slot_of(const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
    return (size_t)(h % CACHE_SLOTS);
}

static bool cache_lookup(struct policy_cache *c, const char *name, size_t len, policy *out)
{
    bool found = false;
    pthread_rwlock_rdlock(&c->lock);
    for (cache_entry *e = c->slots[slot_of(name, len)]; e != NULL; e = e->next) {
        if (strlen(e->pol.name) == len && memcmp(e->pol.name, name, len) == 0) {
            *out = e->pol;
            policy_hold(out);
            found = true;
            break;
        }
    }
    pthread_rwlock_unlock(&c->lock);
    return found;
}

/* Unlink NAME's entry and return it (NULL: none); the caller frees it with
 * entry_free once the lock is released. */
static cache_entry *cache_unlink_locked(struct policy_cache *c, const char *name)
{
    cache_entry **pp = &c->slots[slot_of(name, strlen(name))];
    while (*pp != NULL) {
        if (strcmp((*pp)->pol.name, name) == 0) {
            cache_entry *dead = *pp;
            *pp = dead->next;
            return dead;
        }
        pp = &(*pp)->next;
    }
    return NULL;
}

static void entry_free(kvd *srv, cache_entry *e)
{
    if (e == NULL)
        return;
    policy_release(srv, &e->pol);
    free(e);
}

void policy_cache_clear(kvd *srv)
{
    struct policy_cache *c = srv->policies;
    if (c == NULL)
        return;
    cache_entry *dead = NULL;
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        while (c->slots[i] != NULL) {
            cache_entry *e = c->slots[i];
            c->slots[i] = e->next;
            e->next = dead;
            dead = e;
        }
    }
    pthread_rwlock_unlock(&c->lock);
    while (dead != NULL) {
        cache_entry *next = dead->next;
        entry_free(srv, dead);
        dead = next;
    }
}

/* Cache a copy of P, which takes references of its own. */
static void cache_put(kvd *srv, const policy *p)
{
    struct policy_cache *c = srv->policies;
    cache_entry *e = malloc(sizeof *e);
    if (e != NULL) {
        e->pol = *p;
        policy_hold(&e->pol);
    }
    pthread_rwlock_wrlock(&c->lock);
    cache_entry *dead = cache_unlink_locked(c, p->name);
    if (e != NULL) {
        size_t s = slot_of(p->name, strlen(p->name));
        e->next = c->slots[s];
        c->slots[s] = e;
    }
    pthread_rwlock_unlock(&c->lock);
    entry_free(srv, dead);
}

static void cache_remove(kvd *srv, const char *name)
{
    struct policy_cache *c = srv->policies;
    pthread_rwlock_wrlock(&c->lock);
    cache_entry *dead = cache_unlink_locked(c, name);
    pthread_rwlock_unlock(&c->lock);
    entry_free(srv, dead);
}

/* Read a policy from the system keyspace and open its keyspaces: *OUT
 * holds their references on success, none on failure. */
static int load_policy(kvd *srv, const char *name, policy *out)
{
    char key[sizeof SYS_BUCKET_PREFIX + KVD_BUCKET_NAME_MAX], ksname[8 + KVD_BUCKET_NAME_MAX];
    rc_value v = {0};
    storage_key(name, key, sizeof key);
    int rc = rc_get(srv->db, srv->sys, key, strlen(key), &v);
    if (rc != 0)
        return rc;
    json_error_t err;
    json_t *o = json_loadb(v.data, v.len, 0, &err);
    rc_value_free(&v);
    if (o == NULL || policy_from_storage_json(o, out) != 0) {
        json_decref(o);
        kvd_log(LOG_ERROR, "the stored policy of bucket %s is corrupt", name);
        return RC_ECORRUPT;
    }
    json_decref(o);
    keyspace_name(name, ksname, sizeof ksname);
    /* a replica-group follower creates nothing: its keyspaces come from
     * the leader's stream (a local write would fork its history) */
    int create = cluster_may_write(srv) ? RC_KS_CREATE : 0;
    rc = rc_keyspace_open(srv->db, ksname, create, &out->ks);
    if (rc == 0)
        rc = rc_keyspace_set_max_value(out->ks, srv->cfg.max_value);
    if (rc == 0 && out->content_types) {
        ctype_keyspace_name(name, ksname, sizeof ksname);
        rc = rc_keyspace_open(srv->db, ksname, create, &out->ctype_ks);
    }
    if (rc != 0)
        policy_release(srv, out);
    return rc;
}

/* Cache or load, with the admin lock held: a load racing a delete could
 * otherwise re-create the keyspace of a bucket being deleted and cache it. */
static int get_locked(kvd *srv, const char *name, size_t len, policy *out)
{
    char buf[KVD_BUCKET_NAME_MAX + 1];
    if (cache_lookup(srv->policies, name, len, out))
        return 0;
    memcpy(buf, name, len);
    buf[len] = '\0';
    int rc = load_policy(srv, buf, out);
    if (rc == 0)
        cache_put(srv, out);
    return rc;
}

int policy_get(kvd *srv, const char *name, size_t len, policy *out)
{
    if (!rcu_bucket_name_valid(name, len))
        return RC_ENOTFOUND;
    if (cache_lookup(srv->policies, name, len, out))
        return 0;
    pthread_mutex_lock(&srv->policies->admin);
    int rc = get_locked(srv, name, len, out);
    pthread_mutex_unlock(&srv->policies->admin);
    return rc;
}

void policy_new_key(policy *p, int role, char out[BUCKET_KEY_TEXT_MAX + 1])
{
    unsigned char raw[BUCKET_KEY_RAW_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, BUCKET_KEY_TEXT_MAX + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    crypto_generichash(p->key_hash[role], KEY_HASH_BYTES, (const unsigned char *)out, strlen(out),
                       NULL, 0);
    p->has_key[role] = true;
}

int policy_match_key(const policy *p, const char *cred, size_t len)
{
    unsigned char h[KEY_HASH_BYTES];
    int found = -1;
    crypto_generichash(h, sizeof h, (const unsigned char *)cred, len, NULL, 0);
    for (int r = 0; r < ROLE_COUNT; r++)
        if (p->has_key[r] && sodium_memcmp(h, p->key_hash[r], KEY_HASH_BYTES) == 0 && found < 0)
            found = r;
    return found;
}

int policy_create(kvd *srv, const char *name, int64_t default_ttl_s, unsigned public_perms,
                  char admin_key[BUCKET_KEY_TEXT_MAX + 1])
{
    char ksname[8 + KVD_BUCKET_NAME_MAX];
    policy p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.default_ttl_s = default_ttl_s;
    p.public_perms = public_perms;
    p.signing_version = 1;
    p.has_incarnation = true;
    randombytes_buf(p.incarnation, sizeof p.incarnation);
    p.created_at = kvd_now_ms() / 1000;
    policy_new_key(&p, ROLE_ADMIN, admin_key);
    keyspace_name(name, ksname, sizeof ksname);

    pthread_mutex_lock(&srv->policies->admin);
    policy existing;
    int rc = load_policy(srv, p.name, &existing);
    if (rc == 0) {
        policy_release(srv, &existing);
        rc = RC_EEXISTS;
        goto done;
    }
    if (rc != RC_ENOTFOUND)
        goto done;
    rc = rc_keyspace_open(srv->db, ksname, RC_KS_CREATE | RC_KS_EXCL, &p.ks);
    if (rc == RC_EEXISTS) {
        /* left over from a delete that crashed between its two steps */
        rc = rc_keyspace_drop(srv->db, ksname);
        if (rc == 0)
            rc = rc_keyspace_open(srv->db, ksname, RC_KS_CREATE | RC_KS_EXCL, &p.ks);
    }
    if (rc == 0)
        rc = rc_keyspace_set_max_value(p.ks, srv->cfg.max_value);
    if (rc != 0)
        goto done;
    /* recorded Content-Types of an earlier bucket of this name never apply
     * (their seqs are older than any new value), but they would cost RAM */
    ctype_keyspace_name(name, ksname, sizeof ksname);
    rc_keyspace_drop(srv->db, ksname);
    keyspace_name(name, ksname, sizeof ksname);
    if (default_ttl_s > 0)
        rc = rc_keyspace_set_default_ttl(p.ks, default_ttl_s * 1000);
    if (rc == 0)
        rc = store_policy(srv, &p, RC_IF_ABSENT);
    if (rc != 0) {
        rc_keyspace_drop(srv->db, ksname);
        goto done;
    }
    cache_put(srv, &p);
done:
    policy_release(srv, &p);
    pthread_mutex_unlock(&srv->policies->admin);
    return rc;
}

static int update_locked(kvd *srv, const policy *p)
{
    int rc = rc_keyspace_set_default_ttl(p->ks, p->default_ttl_s * 1000);
    if (rc == 0)
        rc = store_policy(srv, p, RC_IF_PRESENT);
    if (rc == 0)
        cache_put(srv, p);
    return rc;
}

int policy_update(kvd *srv, const policy *p)
{
    pthread_mutex_lock(&srv->policies->admin);
    int rc = update_locked(srv, p);
    pthread_mutex_unlock(&srv->policies->admin);
    return rc;
}

int policy_modify(kvd *srv, const char *name, policy_edit_fn fn, void *ctx, policy *out)
{
    policy p;
    memset(&p, 0, sizeof p);
    pthread_mutex_lock(&srv->policies->admin);
    int rc = get_locked(srv, name, strlen(name), &p);
    if (rc == 0)
        rc = fn(&p, ctx);
    if (rc == 0)
        rc = update_locked(srv, &p);
    if (rc == 0 && out != NULL) {
        *out = p; /* with P's references */
        memset(&p, 0, sizeof p);
    }
    pthread_mutex_unlock(&srv->policies->admin);
    policy_release(srv, &p);
    return rc;
}

/* The bucket's scripts live in the system keyspace under "script/NAME/"
 * (route_scripts.c); bucket names hold no '/', so the prefix is exact. Best
 * effort: a re-created bucket uses a new creation stamp in its script keys
 * and never sees leftovers. */
static int delete_scripts(kvd *srv, const char *name)
{
    char prefix[16 + KVD_BUCKET_NAME_MAX];
    snprintf(prefix, sizeof prefix, "script/%s/", name);
    rc_list_opts lo = {.prefix = prefix, .prefix_len = strlen(prefix)};
    rc_list *l = NULL;
    int rc = rc_list_keys(srv->db, srv->sys, &lo, &l);
    if (rc != 0 || l->count == 0) {
        rc_list_free(l);
        return rc;
    }
    rc_op *ops = calloc(l->count, sizeof(*ops));
    if (ops == NULL) {
        rc_list_free(l);
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < l->count; i++)
        ops[i] = (rc_op){
            .kind = RC_OP_DELETE, .ks = srv->sys, .key = l->items[i].key, .klen = l->items[i].klen};
    rc = rc_apply(srv->db, ops, l->count, NULL);
    free(ops);
    rc_list_free(l);
    return rc;
}

int policy_delete(kvd *srv, const char *name)
{
    char key[sizeof SYS_BUCKET_PREFIX + KVD_BUCKET_NAME_MAX], ksname[8 + KVD_BUCKET_NAME_MAX];
    storage_key(name, key, sizeof key);
    keyspace_name(name, ksname, sizeof ksname);
    pthread_mutex_lock(&srv->policies->admin);
    /* policy first: once it is gone the bucket is gone for every client; a
     * crash before the drop leaves an orphan keyspace that create reclaims */
    rc_op op = {.kind = RC_OP_DELETE,
                .ks = srv->sys,
                .key = key,
                .klen = strlen(key),
                .cond = RC_IF_PRESENT};
    int rc = rc_apply(srv->db, &op, 1, NULL);
    if (rc == 0) {
        cache_remove(srv, name);
        int drc = rc_keyspace_drop(srv->db, ksname);
        if (drc != 0 && drc != RC_ENOKEYSPACE)
            kvd_log(LOG_WARN, "bucket %s: dropping its keyspace failed: %s", name,
                    rc_strerror(drc));
        ctype_keyspace_name(name, ksname, sizeof ksname);
        drc = rc_keyspace_drop(srv->db, ksname);
        if (drc != 0 && drc != RC_ENOKEYSPACE)
            kvd_log(LOG_WARN, "bucket %s: dropping its content types failed: %s", name,
                    rc_strerror(drc));
        drc = delete_scripts(srv, name);
        if (drc != 0)
            kvd_log(LOG_WARN, "bucket %s: deleting its scripts failed: %s", name, rc_strerror(drc));
    }
    pthread_mutex_unlock(&srv->policies->admin);
    return rc;
}

static int enable_ctypes(policy *p, void *ctx)
{
    kvd *srv = ctx;
    char ksname[8 + KVD_BUCKET_NAME_MAX];
    if (p->content_types && p->ctype_ks != NULL)
        return 0;
    ctype_keyspace_name(p->name, ksname, sizeof ksname);
    int rc = rc_keyspace_open(srv->db, ksname, RC_KS_CREATE, &p->ctype_ks);
    if (rc == 0)
        p->content_types = true;
    return rc;
}

int policy_enable_content_types(kvd *srv, const char *name, policy *out)
{
    return policy_modify(srv, name, enable_ctypes, srv, out);
}

int policy_store_open(kvd *srv)
{
    struct policy_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RC_ENOMEM;
    pthread_rwlock_init(&c->lock, NULL);
    pthread_mutex_init(&c->admin, NULL);
    srv->policies = c;
    int rc = rc_keyspace_open(srv->db, KVD_SYS_KEYSPACE, RC_KS_CREATE, &srv->sys);
    if (rc != 0)
        return rc;
    rc_value v = {0};
    rc = rc_get(srv->db, srv->sys, SYS_SECRET_KEY, strlen(SYS_SECRET_KEY), &v);
    if (rc == 0) {
        if (v.len != KVD_SECRET_BYTES) {
            rc_value_free(&v);
            return RC_ECORRUPT;
        }
        memcpy(srv->secret, v.data, KVD_SECRET_BYTES);
        sodium_memzero(v.data, v.len);
        rc_value_free(&v);
        return 0;
    }
    if (rc != RC_ENOTFOUND)
        return rc;
    randombytes_buf(srv->secret, KVD_SECRET_BYTES);
    rc_op op = {.kind = RC_OP_PUT,
                .ks = srv->sys,
                .key = SYS_SECRET_KEY,
                .klen = strlen(SYS_SECRET_KEY),
                .val = srv->secret,
                .vlen = KVD_SECRET_BYTES,
                .type = RC_TYPE_RAW,
                .ttl_ms = RC_TTL_NONE,
                .cond = RC_IF_ABSENT};
    return rc_apply(srv->db, &op, 1, NULL);
}

void policy_store_close(kvd *srv)
{
    struct policy_cache *c = srv->policies;
    if (c == NULL)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        cache_entry *e = c->slots[i];
        while (e != NULL) {
            cache_entry *next = e->next;
            entry_free(srv, e);
            e = next;
        }
    }
    pthread_rwlock_destroy(&c->lock);
    pthread_mutex_destroy(&c->admin);
    free(c);
    srv->policies = NULL;
    sodium_memzero(srv->secret, sizeof srv->secret);
}
