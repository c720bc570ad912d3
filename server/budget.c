/*
 * budget.c — per-request and server-wide memory budgets (budget.h).
 *
 * The server-wide sum is one atomic counter: a charge adds first and backs
 * out when the sum passed the limit, so concurrent charges can never hold
 * more than the limit together (one may be refused that a moment later
 * would have fitted: the client retries after Retry-After).
 */
#include "budget.h"
#include "json_cap.h"

#include <inttypes.h>
#include <stdio.h>

static bool server_take(kvd *srv, uint64_t n)
{
    uint64_t max = srv->cfg.max_inflight_bytes;
    uint64_t now = atomic_fetch_add(&srv->mem_inflight, n) + n;
    if (max != 0 && now > max) {
        atomic_fetch_sub(&srv->mem_inflight, n);
        return false;
    }
    return true;
}

void budget_refuse_busy(kvd_request *req, uint64_t want)
{
    kvd *srv = req->srv;
    atomic_fetch_add(&srv->budget_refused_busy, 1);
    char msg[256];
    snprintf(msg, sizeof msg,
             "kvd is short of memory for requests in flight (this one needs %" PRIu64
             " bytes more; --max-inflight-bytes %" PRIu64 "): retry later",
             want, srv->cfg.max_inflight_bytes);
    struct MHD_Response *r = http_json_response(http_error_json("busy", -1, msg));
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    http_send(req, 503, r);
}

bool budget_charge(kvd_request *req, uint64_t n)
{
    kvd *srv = req->srv;
    uint64_t max = srv->cfg.max_response_bytes;
    if (max != 0 && (n > max || req->mem_charged > max - n)) {
        atomic_fetch_add(&srv->budget_refused_large, 1);
        http_error(req, 413, "response_too_large",
                   "the answer needs about %" PRIu64
                   " bytes, more than --max-response-bytes %" PRIu64
                   ": ask for fewer or smaller values (limit=, fewer gets per batch)",
                   req->mem_charged + n, max);
        return false;
    }
    if (!server_take(srv, n)) {
        budget_refuse_busy(req, n);
        return false;
    }
    req->mem_charged += n;
    return true;
}

bool budget_charge_body(kvd_request *req, uint64_t n)
{
    if (!server_take(req->srv, n))
        return false;
    req->body_charged += n;
    return true;
}

void budget_uncharge(kvd_request *req, uint64_t n)
{
    if (n > req->mem_charged)
        n = req->mem_charged;
    req->mem_charged -= n;
    atomic_fetch_sub(&req->srv->mem_inflight, n);
}

void budget_release(kvd_request *req)
{
    budget_uncharge(req, req->mem_charged);
    atomic_fetch_sub(&req->srv->mem_inflight, req->body_charged);
    req->body_charged = 0;
}

static bool charge_json(void *ctx, uint64_t n)
{
    return budget_charge_body(ctx, n);
}

void budget_json_begin(kvd_request *req)
{
    json_cap_begin(req->srv->cfg.max_response_bytes, charge_json, req);
}

void budget_json_end(void)
{
    json_cap_end();
}

bool budget_json_refused(kvd_request *req)
{
    uint64_t limit = 0;
    int status = json_cap_refused(&limit);
    if (status == 0)
        return false;
    if (status == 503) {
        budget_refuse_busy(req, 1u << 20);
        return true;
    }
    atomic_fetch_add(&req->srv->budget_refused_large, 1);
    http_error(req, 413, "too_large",
               "the body's JSON needs more than %" PRIu64 " bytes of memory once parsed "
               "(--max-response-bytes): send fewer or smaller items",
               limit);
    return true;
}
