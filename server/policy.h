/*
 * policy.h — buckets: their policies, stored as JSON in the system keyspace,
 * cached in memory, and the hashed bucket keys that grant roles.
 */
#ifndef KVD_POLICY_H
#define KVD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kvd.h"

/* Permission bits. ADMIN implies all the others. */
#define PERM_READ 1u
#define PERM_WRITE 2u
#define PERM_DELETE 4u
#define PERM_ENUMERATE 8u
#define PERM_ADMIN 16u
#define PERM_ALL 31u

/* A role has one bucket key; its permissions are the role's bit (admin: all). */
enum { ROLE_READ, ROLE_WRITE, ROLE_DELETE, ROLE_ENUMERATE, ROLE_ADMIN, ROLE_COUNT };

#define KEY_HASH_BYTES 32u
#define BUCKET_KEY_RAW_BYTES 32u
#define BUCKET_KEY_TEXT_MAX 64u /* base64url of 32 bytes is 43 characters */
#define INCARNATION_BYTES 16u

typedef struct policy {
    char name[KVD_BUCKET_NAME_MAX + 1];
    rc_keyspace *ks;       /* the bucket's keyspace; a reference (policy_release) */
    int64_t default_ttl_s; /* 0: none */
    unsigned public_perms;
    uint32_t signing_version; /* tokens carry it; incremented to revoke them */
    /* random, made when the bucket is created and never reused: every
     * credential derived from the bucket (token signing keys, script keys)
     * is bound to it, so nothing of a deleted bucket works on a new bucket
     * of the same name. has_incarnation false: a bucket stored before
     * incarnations existed (its credentials keep the old derivation). */
    bool has_incarnation;
    unsigned char incarnation[INCARNATION_BYTES];
    int64_t created_at;    /* unix seconds */
    bool content_types;    /* some key was set with its own Content-Type */
    rc_keyspace *ctype_ks; /* "c:" + name, open when content_types */
    bool has_key[ROLE_COUNT];
    unsigned char key_hash[ROLE_COUNT][KEY_HASH_BYTES];
} policy;

/* P's incarnation for key derivation, or NULL for a bucket without one. */
const unsigned char *policy_incarnation(const policy *p);
/* P's incarnation as 32 hex digits (or its creation time for a bucket
 * without one) into OUT: a name part that differs per incarnation. */
void policy_incarnation_text(const policy *p, char out[2 * INCARNATION_BYTES + 1]);

/* Name <-> bit helpers. perm_from_name answers 0 for an unknown name. */
unsigned perm_from_name(const char *name);
const char *role_name(int role);
int role_from_name(const char *name); /* -1 when unknown */
unsigned role_perms(int role);
/* A JSON array of permission names -> bits. -1 when not an array of known names. */
int perms_from_json(const json_t *arr, unsigned *out);
json_t *perms_to_json(unsigned perms);

/* Bucket-name rules: rcu_bucket_name_valid, rcu_bucket_name_reserved. */
#include "rcu_text.h"

/* Open the policy store: load or create the server secret in the system
 * keyspace. 0 or an RC_E* code. */
int policy_store_open(kvd *srv);
void policy_store_close(kvd *srv);
/* Forget every cached policy (a replica-group follower after applying the
 * leader's stream, which may have changed any of them). */
void policy_cache_clear(kvd *srv);

/* Copy the policy of bucket NAME into *OUT. 0, RC_ENOTFOUND or an RC_E* code.
 * On success *OUT holds references to its keyspace handles: give them back
 * with policy_release when done (policy_modify and
 * policy_enable_content_types fill *OUT the same way). */
int policy_get(kvd *srv, const char *name, size_t len, policy *out);
/* Give back P's keyspace references (and clear them); P may hold none. */
void policy_release(kvd *srv, policy *p);

/* Create bucket NAME (its keyspace and policy) with an admin key, written to
 * ADMIN_KEY (NUL-terminated, at most BUCKET_KEY_TEXT_MAX bytes). RC_EEXISTS
 * when the name is taken. */
int policy_create(kvd *srv, const char *name, int64_t default_ttl_s, unsigned public_perms,
                  char admin_key[BUCKET_KEY_TEXT_MAX + 1]);

/* Store P as the bucket's new policy (and its default TTL in the keyspace). */
int policy_update(kvd *srv, const policy *p);

/* Read-modify-write of bucket NAME's policy under the policy store's lock:
 * FN edits a fresh copy (returns 0 to store it, else that code, nothing
 * stored). On success *OUT (if not NULL) holds the stored policy. */
typedef int (*policy_edit_fn)(policy *p, void *ctx);
int policy_modify(kvd *srv, const char *name, policy_edit_fn fn, void *ctx, policy *out);

/* Mark the bucket as holding Content-Types and open its "c:" keyspace
 * (once; cheap when already done). *OUT receives the updated policy. */
int policy_enable_content_types(kvd *srv, const char *name, policy *out);

/* Delete the bucket: its policy, then its keyspace with every key. */
int policy_delete(kvd *srv, const char *name);

/* Make a fresh random key for ROLE, store its hash in P (not yet persisted:
 * call policy_update) and write the key text to OUT. */
void policy_new_key(policy *p, int role, char out[BUCKET_KEY_TEXT_MAX + 1]);

/* The role whose key is CRED, or -1. Constant time per stored hash. */
int policy_match_key(const policy *p, const char *cred, size_t len);

/* The policy as JSON for GET /:bucket (no secrets, no hashes). New reference. */
json_t *policy_public_json(const policy *p);

/* Serialization for the system keyspace (hashes in hex). Exposed for tests. */
json_t *policy_to_storage_json(const policy *p);
int policy_from_storage_json(const json_t *obj, policy *out);

#endif
