/*
 * durable.c — see durable.h.
 *
 * The handler and the engine's completion thread race: the callback may
 * fire before the handler has suspended the connection (or even inline,
 * inside rc_apply_async). One atomic state per request settles who resumes:
 *
 *   WAITING    set before rc_apply_async;
 *   DONE       set by the callback (after it stored the status);
 *   SUSPENDED  set by the handler once MHD_suspend_connection returned.
 *
 * The callback resumes the connection only if it finds SUSPENDED; the
 * handler, if its WAITING -> SUSPENDED exchange finds DONE, resumes it
 * itself. Either way a suspended connection is resumed exactly once, and
 * nothing touches the request after the resume but its MHD thread (the
 * connection cannot be closed while it is suspended, so the request lives
 * until then). srv->parked counts requests between rc_apply_async and the
 * callback; shutdown waits for it to drop to 0 before MHD_stop_daemon.
 */
#include "durable.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

enum { PARK_NONE = 0, PARK_WAITING, PARK_SUSPENDED, PARK_DONE };

static void on_durable(void *ctx, int status)
{
    kvd_request *req = ctx;
    kvd *srv = req->srv;
    struct MHD_Connection *conn = req->conn;
    req->park_status = status;
    if (status != 0)
        snprintf(req->park_msg, sizeof req->park_msg, "%s", rc_last_error_message());
    int prev = atomic_exchange(&req->park_state, PARK_DONE);
    if (prev == PARK_SUSPENDED)
        MHD_resume_connection(conn);
    /* REQ may be gone from here on */
    atomic_fetch_sub(&srv->parked, 1);
}

int durable_apply(kvd_request *req, rc_op *ops, size_t n, size_t *failed, durable_finish_fn finish)
{
    kvd *srv = req->srv;
    req->park_finish = finish;
    atomic_store(&req->park_state, PARK_WAITING);
    atomic_fetch_add(&srv->parked, 1);
    int rc = rc_apply_async(srv->db, ops, n, failed, on_durable, req);
    if (rc != 0) {
        atomic_fetch_sub(&srv->parked, 1);
        atomic_store(&req->park_state, PARK_NONE);
        req->park_finish = NULL;
        return rc;
    }
    return 0;
}

void durable_wait(kvd_request *req)
{
    if (atomic_load(&req->park_state) == PARK_DONE) {
        /* completed already (inline): answer without suspending */
        durable_resume(req);
        return;
    }
    MHD_suspend_connection(req->conn);
    int expected = PARK_WAITING;
    if (!atomic_compare_exchange_strong(&req->park_state, &expected, PARK_SUSPENDED))
        MHD_resume_connection(req->conn); /* the callback came in between */
}

bool durable_resume(kvd_request *req)
{
    if (req->park_finish == NULL)
        return false;
    if (atomic_load(&req->park_state) != PARK_DONE)
        return true; /* not yet: stay quiet */
    durable_finish_fn fn = req->park_finish;
    req->park_finish = NULL;
    atomic_store(&req->park_state, PARK_NONE);
    fn(req, req->park_status);
    if (!req->responded)
        http_send(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
    return true;
}

void durable_error(kvd_request *req, int status)
{
    http_engine_error_detail(req, status, -1, req->park_msg);
}

void durable_drain(kvd *srv)
{
    while (atomic_load(&srv->parked) > 0) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
