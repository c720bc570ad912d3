/*
 * route_tokens.c — POST /:bucket/tokens/: issue an access token.
 *
 * A token never grants more than its issuer holds: its permissions must be
 * within the caller's and its prefix must extend the caller's prefix. A token
 * with the admin permission must have an empty prefix (admin routes act on
 * the whole bucket, so a prefixed admin token would be a scope escape).
 */
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "budget.h"
#include "auth_token.h"
#include "json_util.h"
#include "routes.h"

#define TOKEN_DEFAULT_TTL_S 3600

void route_tokens(kvd_request *req)
{
    const char *why = NULL;
    json_t *o = json_parse_object(req->body, req->body_len, &why);
    token_claims c;
    memset(&c, 0, sizeof c);
    if (o == NULL) {
        if (!budget_json_refused(req))
            http_error(req, 400, "bad_request", "%s", why);
        return;
    }
    /* a misspelt "prefix" must not mint a token for the whole bucket */
    static const char *const fields[] = {"prefix", "permissions", "ttl"};
    char shown[65];
    if (json_unknown_field(o, fields, sizeof fields / sizeof *fields, shown, sizeof shown)) {
        http_error(req, 400, "bad_request",
                   "unknown field \"%s\": a token takes prefix, permissions and ttl", shown);
        goto done;
    }
    json_t *jp = json_object_get(o, "prefix");
    if (jp != NULL && !json_is_null(jp)) {
        if (!json_is_string(jp) || json_string_length(jp) > TOKEN_PREFIX_MAX) {
            http_error(req, 400, "bad_request", "prefix must be a string of at most %u bytes",
                       TOKEN_PREFIX_MAX);
            goto done;
        }
        c.prefix_len = json_string_length(jp);
        memcpy(c.prefix, json_string_value(jp), c.prefix_len);
    }
    if (perms_from_json(json_object_get(o, "permissions"), &c.perms) != 0 || c.perms == 0) {
        http_error(req, 400, "bad_request",
                   "permissions must list some of read, write, delete, enumerate, admin");
        goto done;
    }
    long long ttl = TOKEN_DEFAULT_TTL_S;
    if (json_get_int(o, "ttl", &ttl) != 0 || ttl <= 0 || ttl > TTL_MAX_S) {
        http_error(req, 400, "bad_request", "ttl must be whole seconds, 1 .. %lld",
                   (long long)TTL_MAX_S);
        goto done;
    }
    if ((c.perms & PERM_ADMIN) && c.prefix_len > 0) {
        http_error(req, 400, "bad_request", "a token with admin permission cannot have a prefix");
        goto done;
    }
    const scope *s = &req->scope;
    if (!scope_allows(s, c.perms, c.prefix, c.prefix_len)) {
        http_error(req, 403, "forbidden", "a token cannot grant more than its issuer holds");
        goto done;
    }
    c.incarnation = policy_incarnation(&req->pol);
    c.signing_version = req->pol.signing_version;
    c.expires_at = kvd_now_ms() / 1000 + ttl;
    memcpy(c.bucket, req->bucket, req->bucket_len);
    c.bucket_len = req->bucket_len;
    char text[TOKEN_TEXT_MAX + 1];
    if (token_encode(&c, req->srv->secret, text, sizeof text) < 0) {
        http_error(req, 500, "internal", "could not encode the token");
        goto done;
    }
    json_t *ans = json_object();
    if (ans != NULL) {
        json_object_set_new(ans, "token", json_string(text));
        json_object_set_new(ans, "expires_at", json_integer(c.expires_at));
    }
    sodium_memzero(text, sizeof text);
    http_json(req, 200, ans);
done:
    json_decref(o);
}
