/*
 * route_merge.c — POST /admin/merge: merge now, for operators and tests.
 *
 * The background merger picks victims by thresholds (--merge-threshold) and
 * runs when it gets round to it; an operator who just deleted a lot, or a
 * test that needs the tombstone horizon to move, wants it now. The request
 * runs rc_merge on its own MHD thread and answers once it is done, with what
 * it reclaimed (the engine's merge counters before and after). Only the
 * server's admin token may ask (the router checks it, as for /admin/backup).
 *
 * One at a time: a second request while one runs answers 409
 * merge_running at once rather than queueing behind the engine's merge
 * mutex (the background merger may still hold that mutex for a while; the
 * request then waits for it, which is the merge it asked for, only later).
 *
 * Replica groups: only the leader merges on request. A follower's history
 * must stay a prefix of the leader's, and the leader's tombstone horizon is
 * the one that decides which followers re-clone (GET /admin/backup refuses a
 * since below it); a forced merge there is what an operator means. On a
 * follower or a node without a valid lease the answer is 503 not_leader (no
 * redirect: an operator merging a node asked for that node); the leader's
 * URL is in the answer.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "routes.h"

static atomic_bool merging;

static json_t *merge_result(const rc_stats *a, const rc_stats *b, uint64_t ms)
{
    return json_pack(
        "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "merged", b->merges > a->merges,
        "bytes_reclaimed", (json_int_t)(b->merge_bytes_reclaimed - a->merge_bytes_reclaimed),
        "bytes_read", (json_int_t)(b->merge_bytes_read - a->merge_bytes_read), "bytes_written",
        (json_int_t)(b->merge_bytes_written - a->merge_bytes_written), "segments_before",
        (json_int_t)a->segments, "segments_after", (json_int_t)b->segments, "dead_bytes_before",
        (json_int_t)a->dead_bytes, "dead_bytes_after", (json_int_t)b->dead_bytes,
        "tombstone_horizon", (json_int_t)b->tombstone_horizon, "duration_ms", (json_int_t)ms);
}

void route_merge(kvd_request *req)
{
    kvd *srv = req->srv;
    if (srv->cluster != NULL && cluster_current_role(srv) != CLUSTER_LEADER) {
        char leader[CLUSTER_URL_MAX];
        cluster_leader_of(srv, leader, sizeof leader);
        json_t *o = http_error_json("not_leader", -1,
                                    "this node is not the leader of its replica group: a forced "
                                    "merge runs on the leader only (POST /admin/merge there)");
        if (o != NULL && leader[0] != '\0')
            json_object_set_new(o, "leader", json_string(leader));
        http_json(req, 503, o);
        return;
    }
    if (req->body_len > 0) {
        http_error(req, 400, "bad_request", "POST /admin/merge takes no body (nothing was merged)");
        return;
    }
    bool idle = false;
    if (!atomic_compare_exchange_strong(&merging, &idle, true)) {
        http_error(req, 409, "merge_running", "a merge requested earlier is still running");
        return;
    }
    rc_stats before, after;
    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    uint64_t t0 = kvd_mono_ns();
    int rc = rc_stats_db(srv->db, &before);
    if (rc == 0)
        rc = rc_merge(srv->db);
    const char *detail = rc != 0 ? rc_last_error_message() : "";
    if (rc == 0)
        rc = rc_stats_db(srv->db, &after);
    uint64_t ms = (kvd_mono_ns() - t0) / 1000000u;
    atomic_store(&merging, false);
    if (rc != 0) {
        kvd_log(LOG_ERROR, "merge on request failed: %s: %s", rc_strerror(rc), detail);
        http_engine_error_detail(req, rc, -1, detail);
        return;
    }
    kvd_log(LOG_INFO,
            "merge on request: reclaimed %" PRIu64 " bytes, segments %" PRIu64 " -> %" PRIu64
            ", tombstone horizon %" PRIu64 ", %" PRIu64 " ms",
            after.merge_bytes_reclaimed - before.merge_bytes_reclaimed, before.segments,
            after.segments, after.tombstone_horizon, ms);
    req->cluster_read = true; /* nothing written: no acknowledgement to wait for */
    http_json(req, 200, merge_result(&before, &after, ms));
}
