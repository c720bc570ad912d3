/*
 * json_cap.h — the JSON a request brings is parsed under a memory bound.
 *
 * Jansson builds a tree whose size is not its text's: `{"get":"k"}` is 12
 * bytes of body and ~400 bytes of tree, so a 57 MiB batch of tiny ops once
 * made kvd allocate 1.9 GiB before it could count them. kvd has Jansson
 * allocate through json_cap (json_cap_install, once at start); while a
 * thread serves a request (json_cap_begin), every parse of request text
 * through json_cap_load counts what it allocates: past the request's limit
 * the parse fails (413), and each MiB past the first is charged to the
 * server-wide budget through CHARGE (refused: 503). Outside a request, and
 * for everything but json_cap_load (answers kvd builds), Jansson allocates
 * as plain malloc does.
 */
#ifndef KVD_JSON_CAP_H
#define KVD_JSON_CAP_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* Route Jansson's allocations through json_cap. Once, before serving. */
void json_cap_install(void);

/* This thread now serves a request whose parses may allocate LIMIT bytes
 * (0: no limit) and charge CHARGE(CTX, bytes) (NULL: nothing to charge);
 * json_cap_end when it is done. */
void json_cap_begin(uint64_t limit, bool (*charge)(void *ctx, uint64_t n), void *ctx);
void json_cap_end(void);

/* json_loadb under the thread's bound. NULL as json_loadb, or when the bound
 * was hit (json_cap_refused tells). */
json_t *json_cap_load(const char *data, size_t len, size_t flags, json_error_t *err);

/* Whether the last json_cap_load on this thread stopped at the bound: 0, or
 * 413 (the request's limit, *LIMIT set) or 503 (the server-wide budget). */
int json_cap_refused(uint64_t *limit);

#endif
