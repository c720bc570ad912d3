/*
 * route_admin.c — server-wide routes: GET /, /healthz, /metrics, /admin/backup.
 *
 * The backup is streamed, never buffered: a thread runs rc_backup into a
 * pipe and MHD reads the other end through a content-reader callback, so
 * memory stays at the pipe's 64 KiB however large the database is (the
 * engine reads a consistent snapshot meanwhile). A client that goes away
 * closes the read end; the writer then fails with EPIPE (SIGPIPE is ignored)
 * and rc_backup stops. A failure mid-stream ends the chunked response
 * without its terminating chunk, so the client sees a truncated transfer as
 * well as a stream without its trailer, which kvload refuses.
 *
 * The response headers X-Ringcask-Database, X-Ringcask-Since and
 * X-Ringcask-Until come from the stream's own header (read before the
 * response starts), so a shipper knows the next since without parsing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "metrics.h"
#include "park.h"
#include "routes.h"
#include "valuetype.h"
#include "watch.h"

void route_healthz(kvd_request *req)
{
    json_t *o = json_object();
    if (o != NULL)
        json_object_set_new(o, "status", json_string("ok"));
    http_json(req, 200, o);
}

/* What answers here, for someone who points a browser or curl at kvd. The
 * version is the engine's (ringcask.h), as in ringcask_build_info. */
void route_root(kvd_request *req)
{
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", RC_VERSION_MAJOR, RC_VERSION_MINOR,
             RC_VERSION_PATCH);
    json_t *o =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s}", "name", "kvd", "version", version, "links",
                  "healthz", "/healthz", "metrics", "/metrics", "metrics_json",
                  "/metrics?format=json", "docs", "docs/HTTP.md in the ringcask source tree");
    http_json(req, 200, o);
}

void route_metrics(kvd_request *req)
{
    char fmt[16];
    size_t n = 0, len = 0;
    bool json = http_query(req, "format", fmt, sizeof fmt, &n) == 0 && strcmp(fmt, "json") == 0;
    char *text;
    if (req->has_policy) /* ?bucket=NAME, authorised by the router */
        text = json ? metrics_bucket_json(req->srv, &req->pol, &len)
                    : metrics_bucket_prometheus(req->srv, &req->pol, &len);
    else
        text = json ? metrics_json(req->srv, &len) : metrics_prometheus(req->srv, &len);
    if (text == NULL) {
        http_error(req, 500, "internal", "could not render metrics");
        return;
    }
    struct MHD_Response *r = http_response_take(text, len);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                json ? "application/json" : "text/plain; version=0.0.4");
    http_send(req, 200, r);
}

typedef struct backup_job {
    kvd *srv;
    uint64_t since;
    uint64_t until; /* the bound (UINT64_MAX: none), see ship_limit */
    int rfd, wfd;
    pthread_t thread;
    bool joined;
    int rc;
    char why[256];
    rc_backup_info info;
    uint64_t *sent;        /* the request's resp_bytes: the reader never runs after completion */
    char first[64 * 1024]; /* read before answering, so a failing start gets a status */
    size_t first_len, first_off;
} backup_job;

static int pipe_write(void *ctx, const void *buf, size_t len)
{
    backup_job *job = ctx;
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(job->wfd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void *backup_thread(void *arg)
{
    backup_job *job = arg;
    job->rc = rc_backup_until(job->srv->db, job->since, job->until, pipe_write, job, NULL, NULL,
                              &job->info);
    if (job->rc != 0)
        snprintf(job->why, sizeof job->why, "%s", rc_last_error_message());
    if (job->rc != 0)
        kvd_log(LOG_ERROR, "backup since %" PRIu64 " failed: %s", job->since, rc_strerror(job->rc));
    else
        kvd_log(LOG_INFO,
                "backup since %" PRIu64 ": %" PRIu64 " records, %" PRIu64
                " tombstones, until %" PRIu64,
                job->since, job->info.records, job->info.tombstones, job->info.until);
    close(job->wfd);
    job->wfd = -1;
    return NULL;
}

static void job_join(backup_job *job)
{
    if (!job->joined) {
        pthread_join(job->thread, NULL);
        job->joined = true;
    }
}

static ssize_t backup_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    backup_job *job = cls;
    if (job->first_off < job->first_len) {
        size_t n = job->first_len - job->first_off;
        if (n > max)
            n = max;
        memcpy(buf, job->first + job->first_off, n);
        job->first_off += n;
        *job->sent += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = read(job->rfd, buf, max);
        if (n > 0) {
            *job->sent += (uint64_t)n;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        job_join(job);
        return job->rc == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void backup_free(void *cls)
{
    backup_job *job = cls;
    close(job->rfd); /* a writer still running now fails with EPIPE and stops */
    job_join(job);
    free(job);
}

static void backup_stream(kvd_request *req, int64_t since, uint64_t until);

/* A pull of a replica group's follower: the most its stream may hold
 * (cluster_ship_limit); UINT64_MAX for anyone else. */
static uint64_t ship_limit(kvd_request *req)
{
    const char *node = http_header(req, "X-Ringcask-Node");
    return req->srv->cluster != NULL && node != NULL ? cluster_ship_limit(req->srv, node)
                                                     : UINT64_MAX;
}

/* ?wait=DURATION: park until the database has something after since (its
 * last seq passed it) that this puller may have, the duration passed or
 * kvd stops; then stream. A follower held back by its ship limit waits on
 * the sync standby's progress (PARK_CH_ACK) instead of the data. */
static void backup_step(kvd_request *req, park_why why)
{
    park *p = req->srv->park;
    uint64_t gen_data = park_generation(p, PARK_CH_DATA);
    uint64_t gen_ack = park_generation(p, PARK_CH_ACK);
    uint64_t limit = ship_limit(req), last = rc_last_seq(req->srv->db);
    /* last < since: answered at once (the error says why) */
    bool ready = last < req->wait_seq || (last > req->wait_seq && limit > req->wait_seq);
    if (why == PARK_SHUTDOWN || atomic_load(&req->srv->shutting_down) ||
        kvd_mono_ns() >= req->wait_deadline_ns || ready) {
        backup_stream(req, (int64_t)req->wait_seq, limit);
        return;
    }
    bool held = last > req->wait_seq; /* there is more, not yet for this puller */
    unsigned ch = held ? PARK_CH_ACK : PARK_CH_DATA;
    uint64_t gen = held ? gen_ack : gen_data;
    park_topic t = {.channel = ch, .after = req->wait_seq};
    int rc = park_request(p, req, &t, req->wait_deadline_ns, backup_step, req->wait_parked);
    if (rc == PARK_FULL) {
        struct MHD_Response *r = http_json_response(http_error_json(
            "too_many_waiters", -1, "too many requests are waiting (--max-waiters); retry"));
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        http_send(req, 503, r);
        return;
    }
    if (rc != PARK_OK) {
        backup_stream(req, (int64_t)req->wait_seq, limit);
        return;
    }
    req->wait_parked = true;
    if (park_generation(p, ch) != gen)
        park_wake(p, req);
}

void route_backup(kvd_request *req)
{
    char buf[32];
    size_t n = 0;
    int64_t since = 0;
    int q = http_query(req, "since", buf, sizeof buf, &n);
    if (q == -1 || (q == 0 && (!parse_int64(buf, n, &since) || since < 0))) {
        http_error(req, 400, "bad_request", "since must be a sequence number >= 0");
        return;
    }
    const char *node = http_header(req, "X-Ringcask-Node");
    if (req->srv->cluster != NULL && node != NULL) {
        /* a follower of our replica group: its pull proves what it holds */
        uint64_t applied = (uint64_t)since;
        const char *a = http_header(req, "X-Ringcask-Applied");
        int64_t av = 0;
        if (a != NULL && parse_int64(a, strlen(a), &av) && av > since)
            applied = (uint64_t)av;
        cluster_note_pull(req->srv, node, http_header(req, "X-Ringcask-Database"), applied);
    }
    uint64_t wait_ms = 0;
    q = http_query(req, "wait", buf, sizeof buf, &n);
    if (q == -1 ||
        (q == 0 && (!watch_parse_duration(buf, n, &wait_ms) || wait_ms > WATCH_TIMEOUT_MAX_MS))) {
        http_error(req, 400, "bad_request",
                   "wait must be a duration of 0 .. 10m (such as 500ms, 30s, 10m; a bare number "
                   "is seconds)");
        return;
    }
    if (wait_ms > 0) {
        req->wait_seq = (uint64_t)since;
        req->wait_deadline_ns = kvd_mono_ns() + wait_ms * 1000000u;
        backup_step(req, PARK_WOKEN);
        return;
    }
    backup_stream(req, since, ship_limit(req));
}

static void backup_stream(kvd_request *req, int64_t since, uint64_t until)
{
    rc_stats s;
    memset(&s, 0, sizeof s);
    int rc = rc_stats_db(req->srv->db, &s);
    if (rc == 0 && since > 0 && (uint64_t)since < s.tombstone_horizon) {
        http_error(req, 409, "horizon",
                   "since %" PRId64 " is below the tombstone horizon %" PRIu64
                   ": take a full backup (since=0)",
                   since, s.tombstone_horizon);
        return;
    }
    backup_job *job = calloc(1, sizeof *job);
    int fds[2];
    if (job == NULL || pipe2(fds, O_CLOEXEC) != 0) {
        free(job);
        http_error(req, 503, "unavailable", "could not start the backup");
        return;
    }
    job->srv = req->srv;
    job->sent = &req->resp_bytes;
    job->since = (uint64_t)since;
    job->until = until;
    job->rfd = fds[0];
    job->wfd = fds[1];
    if (pthread_create(&job->thread, NULL, backup_thread, job) != 0) {
        close(fds[0]);
        close(fds[1]);
        free(job);
        http_error(req, 503, "unavailable", "could not start the backup");
        return;
    }
    /* wait for the stream's header (or the end): an error before any byte
     * was written can still be answered with a proper status, and the
     * header names the database, since and until for the response headers */
    while (job->first_len < RC_STREAM_HEADER_MAX) {
        ssize_t n = read(job->rfd, job->first + job->first_len, sizeof job->first - job->first_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        job->first_len += (size_t)n;
    }
    if (job->first_len == 0) {
        job_join(job);
        if (job->rc != 0) {
            int err = job->rc;
            char why[300];
            snprintf(why, sizeof why, "backup failed: %s%s%s", rc_strerror(err),
                     job->why[0] ? ": " : "", job->why);
            backup_free(job);
            const char *code = "internal";
            unsigned status = http_status_for(err, &code);
            /* the caller's since can be wrong in two ways: below the horizon
             * (take a full backup) or past this database's last seq (another
             * database): both 409; anything else is the server's failure */
            if (status < 500 && err != RC_EHORIZON && err != RC_EGAP)
                status = 500;
            http_error(req, status, status == 500 ? "backup_failed" : code, "%s", why);
            return;
        }
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                                               backup_read, job, backup_free);
    if (r == NULL) {
        backup_free(job);
        http_send(req, 500, NULL);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    rc_stream_header h;
    if (rc_stream_header_parse(job->first, job->first_len, &h) == 0) {
        char num[24];
        MHD_add_response_header(r, "X-Ringcask-Database", h.database);
        snprintf(num, sizeof num, "%" PRIu64, h.since);
        MHD_add_response_header(r, "X-Ringcask-Since", num);
        snprintf(num, sizeof num, "%" PRIu64, h.until);
        MHD_add_response_header(r, "X-Ringcask-Until", num);
        /* a fork names its parent: a replica of the parent up to the fork
         * can follow it (rc_follow_fork) instead of starting over */
        rc_lineage lin;
        if (rc_database_lineage(req->srv->db, &lin) == 0 && lin.forked &&
            strcmp(lin.id, h.database) == 0) {
            MHD_add_response_header(r, "X-Ringcask-Parent", lin.parent);
            snprintf(num, sizeof num, "%" PRIu64, lin.forked_at);
            MHD_add_response_header(r, "X-Ringcask-Forked-At", num);
        }
    }
    http_send(req, 200, r);
}
