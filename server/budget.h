/*
 * budget.h — memory budgets: what one request may hold for its answer
 * (--max-response-bytes) and what all requests in flight may hold together,
 * request bodies included (--max-inflight-bytes).
 *
 * A route charges the bytes it is about to allocate (engine value buffers,
 * the rendered answer) before it allocates them, from sizes it can learn
 * cheaply (rc_get_meta); everything a request charged is given back when
 * MHD reports it complete (the answer sent or the connection gone). Past
 * the request's budget the answer is 413 `response_too_large`; past the
 * server's, 503 `busy` with Retry-After. See docs/HTTP.md "Limits".
 */
#ifndef KVD_BUDGET_H
#define KVD_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

/* Charge N bytes of answer to REQ. false: refused, and REQ was answered
 * (413 or 503); nothing stays charged. */
bool budget_charge(kvd_request *req, uint64_t n);

/* Charge N bytes of request body (server-wide budget only). false: the
 * server is full; nothing is charged and nothing is answered. */
bool budget_charge_body(kvd_request *req, uint64_t n);

/* Give back N bytes charged earlier (freed before the request ends). */
void budget_uncharge(kvd_request *req, uint64_t n);

/* Give back everything REQ still holds (request completion). */
void budget_release(kvd_request *req);

/* The last JSON parse of a request body on this thread (json_cap_load)
 * stopped at a memory bound: REQ is answered (413 `too_large` naming
 * --max-response-bytes, or 503 busy) and true. false: it did not. */
bool budget_json_refused(kvd_request *req);

/* Install the JSON bound for REQ on this thread around its route (http.c):
 * --max-response-bytes per parse, the server-wide budget past the first
 * MiB; budget_json_end after. */
void budget_json_begin(kvd_request *req);
void budget_json_end(void);

/* Answer 503 busy with Retry-After (a body that did not fit). */
void budget_refuse_busy(kvd_request *req, uint64_t want);

#endif
