/*
 * watch.h — ?wait=SEQ[&timeout=DURATION] on key GETs and listings, and the
 * long-poll of GET /admin/backup?since=N&wait=DURATION.
 *
 * A key wait answers as a plain GET as soon as the key changed after SEQ
 * (written with a seq > SEQ, deleted, or expired), else at the timeout with
 * the current state; a listing wait (?prefix=P&wait=SEQ) does the same for
 * any key under P and answers the listing. The request is parked (park.h)
 * meanwhile: no thread waits for it. Every check is one keydir lookup for a
 * key, one scan of the keys under P for a listing (at most WATCH_KEYS_MAX:
 * a broader prefix is refused with 400).
 */
#ifndef KVD_WATCH_H
#define KVD_WATCH_H

#include <stdbool.h>

#include "http.h"

#define WATCH_TIMEOUT_DEFAULT_MS 30000u
#define WATCH_TIMEOUT_MAX_MS 600000u
#define WATCH_KEYS_MAX 100000u /* keys under a watched prefix (each check scans them) */

/* GET/HEAD /:bucket/:key: false when the request has no ?wait= (the caller
 * answers it as usual); true when handled (answered or parked). ANSWER is
 * the plain GET that the wait ends with. */
bool watch_key(kvd_request *req, void (*answer)(kvd_request *req));
/* GET/HEAD /:bucket/ with ?wait=, as watch_key. */
bool watch_list(kvd_request *req, void (*answer)(kvd_request *req));

/* A duration query value: a bare number of seconds or a number with ms, s
 * or m. False when malformed. Exposed for unit tests. */
bool watch_parse_duration(const char *s, size_t len, uint64_t *ms);

#endif
