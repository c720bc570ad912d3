/*
 * auth.h — credentials (Bearer, Basic user name, ?access_token) and scopes.
 */
#ifndef KVD_AUTH_H
#define KVD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* Find the credential of REQ. 0 found (copied to BUF, NUL-terminated), 1 none,
 * -1 malformed or longer than CAP - 1. */
int auth_credential(const kvd_request *req, char *buf, size_t cap, size_t *len);

/* Fill req->scope for bucket route REQ (req->pol loaded). Answers the request
 * itself (401) and returns false when a presented credential is invalid. */
bool auth_resolve_scope(kvd_request *req);

/* True when the scope has all of PERMS and KEY lies under its prefix. When not,
 * answers 401 (no credential) or 403 and returns false. OP >= 0 names a batch op. */
bool auth_require(kvd_request *req, unsigned perms, const void *key, size_t klen, long op);

/* As auth_require, without answering. */
bool scope_allows(const scope *s, unsigned perms, const void *key, size_t klen);

/* True when REQ presents the server's --admin-token (constant-time compare).
 * When no admin token is configured, true only if ALLOW_UNSET. */
bool auth_is_server_admin(const kvd_request *req, bool allow_unset);

/* True when REQ presents the --metrics-token-file token or the server's
 * admin token (constant-time compares); false when neither is configured. */
bool auth_is_metrics_reader(const kvd_request *req);

#endif
