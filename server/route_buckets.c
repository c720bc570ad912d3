/*
 * route_buckets.c — POST / (create) and HEAD/GET/PATCH/DELETE /:bucket.
 *
 * A random bucket name is 18 random bytes in base64url (24 characters of
 * [A-Za-z0-9_-], 144 bits: unguessable). The admin key is shown once, in the
 * 201 answer; only its hash is stored. PATCH "new_keys" replaces the key of
 * each named role (one key per role, so asking for a new admin key revokes
 * the old one) and answers the fresh keys once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bucket_limits.h"
#include "budget.h"
#include "json_util.h"
#include "routes.h"

#define RANDOM_NAME_BYTES 18u

static bool parse_ttl_field(kvd_request *req, const json_t *o, int64_t *out)
{
    long long ttl = *out;
    if (json_get_int(o, "default_ttl", &ttl) != 0 || ttl < 0 || ttl > TTL_MAX_S) {
        http_error(req, 400, "bad_request", "default_ttl must be whole seconds >= 0");
        return false;
    }
    *out = ttl;
    return true;
}

static bool parse_public_field(kvd_request *req, const json_t *o, unsigned *out)
{
    json_t *pub = json_object_get(o, "public");
    if (pub == NULL)
        return true;
    if (perms_from_json(pub, out) != 0) {
        http_error(req, 400, "bad_request",
                   "public must be a list of read, write, delete, enumerate, admin");
        return false;
    }
    return true;
}

/* Refuse a field not in KNOWN by name: a misspelt field such as
 * {"bucket": "demo"} must not silently create a randomly named bucket, nor a
 * PATCH do nothing. */
static bool only_known_fields(kvd_request *req, json_t *o, const char *const *known, size_t n,
                              const char *what)
{
    char shown[65];
    if (!json_unknown_field(o, known, n, shown, sizeof shown))
        return true;
    http_error(req, 400, "bad_request", "unknown field \"%s\": %s", shown, what);
    return false;
}

static const char *const create_fields[] = {"name", "default_ttl", "public"};
static const char *const patch_fields[] = {"default_ttl", "public", "new_keys",
                                           "rotate_signing_key"};

void route_bucket_create(kvd_request *req)
{
    char name[KVD_BUCKET_NAME_MAX + 1], admin_key[BUCKET_KEY_TEXT_MAX + 1];
    int64_t ttl = 0;
    unsigned pub = 0;
    json_t *o = NULL;
    const char *why = NULL;
    name[0] = '\0';
    if (req->body_len > 0) {
        o = json_parse_object(req->body, req->body_len, &why);
        if (o == NULL) {
            if (!budget_json_refused(req))
                http_error(req, 400, "bad_request", "%s", why);
            return;
        }
        if (!only_known_fields(req, o, create_fields, sizeof create_fields / sizeof *create_fields,
                               "POST / takes name, default_ttl and public"))
            goto done;
        json_t *jn = json_object_get(o, "name");
        if (jn != NULL && !json_is_null(jn)) {
            const char *n = json_string_value(jn);
            if (n == NULL || json_string_length(jn) != strlen(n) ||
                !rcu_bucket_name_valid(n, strlen(n))) {
                http_error(req, 400, "bad_bucket_name",
                           "bucket names are 1-64 characters of A-Z a-z 0-9 _ -");
                goto done;
            }
            if (rcu_bucket_name_reserved(n, strlen(n))) {
                http_error(req, 400, "bad_bucket_name", "%s is reserved", n);
                goto done;
            }
            snprintf(name, sizeof name, "%s", n);
        }
        if (!parse_ttl_field(req, o, &ttl) || !parse_public_field(req, o, &pub))
            goto done;
    }
    if (name[0] == '\0') {
        unsigned char raw[RANDOM_NAME_BYTES];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(name, sizeof name, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    if (!bucket_cap_ok(req))
        goto done;
    int rc = policy_create(req->srv, name, ttl, pub, admin_key);
    if (rc == RC_EEXISTS) {
        http_error(req, 409, "exists", "bucket %s exists", name);
        goto done;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        goto done;
    }
    kvd_log(LOG_INFO, "bucket %s created", name);
    json_t *ans = json_object();
    if (ans != NULL) {
        json_object_set_new(ans, "bucket", json_string(name));
        json_object_set_new(ans, "admin_key", json_string(admin_key));
    }
    sodium_memzero(admin_key, sizeof admin_key);
    char loc[KVD_BUCKET_NAME_MAX + 2];
    snprintf(loc, sizeof loc, "/%s", name);
    struct MHD_Response *r = http_json_response(ans);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
    http_send(req, 201, r);
done:
    json_decref(o);
}

/* A validated PATCH body, applied to a fresh copy of the policy under the
 * policy store's lock so concurrent PATCHes never lose each other's changes. */
typedef struct bucket_edit {
    bool set_ttl, set_public, rotate;
    int64_t ttl;
    unsigned pub;
    unsigned new_roles; /* bit per role */
    json_t *fresh;      /* role -> new key text */
} bucket_edit;

static int apply_edit(policy *p, void *ctx)
{
    bucket_edit *e = ctx;
    if (e->set_ttl)
        p->default_ttl_s = e->ttl;
    if (e->set_public)
        p->public_perms = e->pub;
    if (e->rotate)
        p->signing_version++;
    for (int role = 0; role < ROLE_COUNT; role++) {
        if (!(e->new_roles & (1u << role)))
            continue;
        char key[BUCKET_KEY_TEXT_MAX + 1];
        policy_new_key(p, role, key);
        json_object_set_new(e->fresh, role_name(role), json_string(key));
        sodium_memzero(key, sizeof key);
    }
    return 0;
}

static bool parse_edit(kvd_request *req, json_t *o, bucket_edit *e)
{
    if (!only_known_fields(req, o, patch_fields, sizeof patch_fields / sizeof *patch_fields,
                           "PATCH takes default_ttl, public, new_keys and rotate_signing_key"))
        return false;
    e->ttl = req->pol.default_ttl_s;
    e->set_ttl = json_object_get(o, "default_ttl") != NULL;
    e->set_public = json_object_get(o, "public") != NULL;
    if (!parse_ttl_field(req, o, &e->ttl) || !parse_public_field(req, o, &e->pub))
        return false;
    json_t *rot = json_object_get(o, "rotate_signing_key");
    if (rot != NULL && !json_is_boolean(rot)) {
        http_error(req, 400, "bad_request", "rotate_signing_key must be true or false");
        return false;
    }
    e->rotate = json_is_true(rot);
    json_t *nk = json_object_get(o, "new_keys");
    if (nk == NULL)
        return true;
    size_t i;
    json_t *v;
    if (!json_is_array(nk)) {
        http_error(req, 400, "bad_request", "new_keys must be a list of roles");
        return false;
    }
    json_array_foreach(nk, i, v)
    {
        int role = json_is_string(v) ? role_from_name(json_string_value(v)) : -1;
        if (role < 0) {
            http_error(req, 400, "bad_request",
                       "new_keys: roles are read, write, delete, enumerate, admin");
            return false;
        }
        e->new_roles |= 1u << role;
    }
    return true;
}

static void bucket_patch(kvd_request *req)
{
    const char *why = NULL;
    bucket_edit e;
    policy p;
    memset(&e, 0, sizeof e);
    memset(&p, 0, sizeof p);
    json_t *o = json_parse_object(req->body, req->body_len, &why);
    if (o == NULL) {
        if (!budget_json_refused(req))
            http_error(req, 400, "bad_request", "%s", why);
        return;
    }
    if (!parse_edit(req, o, &e))
        goto done;
    e.fresh = json_object();
    if (e.fresh == NULL) {
        http_error(req, 503, "out_of_memory", "out of memory");
        goto done;
    }
    int rc = policy_modify(req->srv, req->pol.name, apply_edit, &e, &p);
    if (rc == RC_ENOTFOUND) {
        http_error(req, 404, "no_such_bucket", "no such bucket");
        goto done;
    }
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        goto done;
    }
    json_t *ans = policy_public_json(&p);
    if (ans != NULL && e.new_roles != 0) {
        json_object_set(ans, "new_keys", e.fresh);
        json_object_set(ans, "keys", e.fresh);
    }
    http_json(req, 200, ans);
done:
    policy_release(req->srv, &p);
    json_decref(e.fresh);
    json_decref(o);
}

void route_bucket(kvd_request *req)
{
    switch (req->method) {
    case METHOD_HEAD:
        http_empty(req, 200);
        break;
    case METHOD_GET:
        http_json(req, 200, policy_public_json(&req->pol));
        break;
    case METHOD_PATCH:
        bucket_patch(req);
        break;
    case METHOD_DELETE: {
        int rc = policy_delete(req->srv, req->pol.name);
        if (rc == RC_ENOTFOUND)
            http_error(req, 404, "no_such_bucket", "no such bucket");
        else if (rc != 0)
            http_engine_error(req, rc, -1);
        else {
            kvd_log(LOG_INFO, "bucket %s deleted", req->pol.name);
            /* its keyspace handles go before the client hears of the delete */
            policy_release(req->srv, &req->pol);
            http_empty(req, 204);
        }
        break;
    }
    default:
        http_error(req, 405, "method_not_allowed", "not allowed");
        break;
    }
}
