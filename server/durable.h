/*
 * durable.h — a request whose durable write is on its way to the disk.
 *
 * Under --sync always a write is acknowledged only once its group commit is
 * durable. Rather than holding an HTTP thread for that fdatasync, a route
 * issues its ops with durable_apply: the engine applies them at once
 * (rc_apply_async) and the connection is suspended (libmicrohttpd
 * suspend/resume) until the engine's completion thread calls back; then the
 * connection is resumed, the access handler runs again on its MHD thread and
 * durable_resume calls the route's FINISH to answer. A few threads thus carry
 * hundreds of waiting writers. When nothing waits (another sync mode, a
 * write of nothing), FINISH runs at once, without suspending.
 */
#ifndef KVD_DURABLE_H
#define KVD_DURABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* Answer REQ once its write is durable (STATUS 0) or failed to become
 * durable (STATUS < 0: answer durable_error). Runs on REQ's MHD thread. */
typedef void (*durable_finish_fn)(kvd_request *req, int status);

/* Apply OPS[0..N) for REQ (rc_apply_async). Non-zero: the engine's error
 * (*FAILED its op), nothing written, REQ untouched — answer it now. 0: the
 * ops are applied and their results filled (OPS may be reused); the caller
 * notes what its answer needs in REQ (park_seq, park_http) and then calls
 * durable_wait, after which it must not touch REQ. */
int durable_apply(kvd_request *req, rc_op *ops, size_t n, size_t *failed, durable_finish_fn finish);

/* FINISH(REQ, status) now if the write is durable already, else suspend the
 * connection until it is (the resumed handler calls FINISH). */
void durable_wait(kvd_request *req);

/* Called first by the access handler for a request it sees again: true when
 * REQ was waiting for durability (it is answered now, or still waits). */
bool durable_resume(kvd_request *req);

/* The error answer for a write that did not become durable (5xx, with the
 * engine's detail captured on the completion thread). */
void durable_error(kvd_request *req, int status);

/* Block until no request waits for the engine (shutdown, before
 * MHD_stop_daemon: a callback resumes its connection). */
void durable_drain(kvd *srv);

#endif
