/*
 * auth.c — who is asking, and what they may do.
 *
 * A credential arrives as "Authorization: Bearer <c>", as HTTP Basic with the
 * credential as user name (KVdb style; the password is ignored), or as
 * ?access_token=<c>. It is one of: a bucket key (43 base64url characters; we
 * hash it and compare against the policy's stored hashes in constant time),
 * the server's --admin-token (all permissions on every bucket), or an access
 * token (verified MAC, then bucket, signing-key version and expiry).
 *
 * The outcome is a scope: permission bits plus a key prefix. A bucket key
 * grants its role plus the bucket's public permissions; a token grants
 * exactly what it carries (public permissions are not added, so a token is
 * a confinement). No credential means the public permissions. A presented
 * but invalid credential is 401 even where public access would suffice, so
 * a client learns early that its token expired.
 */
#include "auth.h"

#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "auth_token.h"

#define CRED_MAX (TOKEN_TEXT_MAX + 16u)

static const char *skip_spaces(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static int copy_cred(const char *s, size_t n, char *buf, size_t cap, size_t *len)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= cap)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *len = n;
    return 0;
}

int auth_credential(const kvd_request *req, char *buf, size_t cap, size_t *len)
{
    const char *h = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h != NULL) {
        h = skip_spaces(h);
        if (strncasecmp(h, "Bearer ", 7) == 0) {
            const char *v = skip_spaces(h + 7);
            return copy_cred(v, strlen(v), buf, cap, len);
        }
        if (strncasecmp(h, "Basic ", 6) == 0) {
            const char *v = skip_spaces(h + 6);
            size_t vl = strlen(v), n = 0;
            if (vl == 0 || vl > 2 * cap)
                return -1;
            unsigned char dec[2 * CRED_MAX];
            if (sodium_base642bin(dec, sizeof dec, v, vl, " \t", &n, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0 &&
                sodium_base642bin(dec, sizeof dec, v, vl, " \t", &n, NULL,
                                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)
                return -1;
            const unsigned char *colon = memchr(dec, ':', n);
            size_t user = colon ? (size_t)(colon - dec) : n;
            return copy_cred((const char *)dec, user, buf, cap, len);
        }
        return -1;
    }
    int q = http_query(req, "access_token", buf, cap, len);
    if (q == 0 && *len == 0)
        return -1;
    return q;
}

bool scope_allows(const scope *s, unsigned perms, const void *key, size_t klen)
{
    unsigned have = (s->perms & PERM_ADMIN) ? PERM_ALL : s->perms;
    if ((have & perms) != perms)
        return false;
    if (key != NULL && s->prefix_len > 0)
        return klen >= s->prefix_len && memcmp(key, s->prefix, s->prefix_len) == 0;
    return true;
}

bool auth_require(kvd_request *req, unsigned perms, const void *key, size_t klen, long op)
{
    if (scope_allows(&req->scope, perms, key, klen))
        return true;
    if (req->scope.kind == CRED_NONE)
        http_error_op(req, 401, "unauthorized", op,
                      "this needs a credential (bucket key or access token)");
    else
        http_error_op(req, 403, "forbidden", op, "the credential does not permit this");
    return false;
}

/* CRED equals the configured token WANT (NULL: none), compared in constant time. */
static bool token_matches(const char *want, const char *cred, size_t len)
{
    unsigned char a[32], b[32];
    if (want == NULL)
        return false;
    crypto_generichash(a, sizeof a, (const unsigned char *)cred, len, NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)want, strlen(want), NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

static bool server_admin_matches(const kvd *srv, const char *cred, size_t len)
{
    return token_matches(srv->admin_token, cred, len);
}

bool auth_is_metrics_reader(const kvd_request *req)
{
    char cred[CRED_MAX];
    size_t len = 0;
    if (auth_credential(req, cred, sizeof cred, &len) != 0)
        return false;
    return token_matches(req->srv->metrics_token, cred, len) ||
           server_admin_matches(req->srv, cred, len);
}

bool auth_is_server_admin(const kvd_request *req, bool allow_unset)
{
    char cred[CRED_MAX];
    size_t len = 0;
    if (req->srv->admin_token == NULL)
        return allow_unset;
    if (auth_credential(req, cred, sizeof cred, &len) != 0)
        return false;
    return server_admin_matches(req->srv, cred, len);
}

static bool reject(kvd_request *req, const char *why)
{
    http_error(req, 401, "invalid_credentials", "%s", why);
    return false;
}

bool auth_resolve_scope(kvd_request *req)
{
    char cred[CRED_MAX];
    size_t len = 0;
    scope *s = &req->scope;
    memset(s, 0, offsetof(scope, prefix));
    s->prefix_len = 0;
    int found = auth_credential(req, cred, sizeof cred, &len);
    if (found < 0)
        return reject(req, "malformed credential");
    if (found == 1) {
        s->kind = CRED_NONE;
        s->perms = req->pol.public_perms;
        return true;
    }
    int role = policy_match_key(&req->pol, cred, len);
    if (role >= 0) {
        s->kind = CRED_KEY;
        s->perms = role_perms(role) | req->pol.public_perms;
        return true;
    }
    if (server_admin_matches(req->srv, cred, len)) {
        s->kind = CRED_ADMIN_TOKEN;
        s->perms = PERM_ALL;
        return true;
    }
    token_claims c;
    if (token_verify(cred, len, req->srv->secret, policy_incarnation(&req->pol), &c) != TOKEN_OK)
        return reject(req, "not a valid bucket key or access token");
    if (c.bucket_len != req->bucket_len || memcmp(c.bucket, req->bucket, c.bucket_len) != 0)
        return reject(req, "the access token belongs to another bucket");
    if (c.signing_version != req->pol.signing_version)
        return reject(req, "the access token was revoked (signing key rotated)");
    if (c.expires_at * 1000 <= kvd_now_ms())
        return reject(req, "the access token has expired");
    s->kind = CRED_TOKEN;
    s->perms = c.perms;
    memcpy(s->prefix, c.prefix, c.prefix_len);
    s->prefix_len = c.prefix_len;
    return true;
}
