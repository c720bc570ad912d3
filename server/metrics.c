/*
 * metrics.c — counters and latency histograms, lock-free.
 *
 * Every counter is a relaxed atomic: a request adds to its route's histogram
 * bucket, count and sum, and to one status-class counter; operations are
 * counted per key (a batch of three sets adds 3 to "set"). Readers render a
 * snapshot that may be a few increments inconsistent between lines, which
 * Prometheus tolerates. Stored keys and value bytes come from the engine
 * (rc_stats_db minus the system keyspace, so only user data is counted).
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_bucket.h"
#include "metrics_process.h"
#include "metrics_text.h"
#include "backup_shipper.h"
#include "park.h"
#include "routes.h"

static const double hist_bounds_s[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
#define HIST_N (sizeof hist_bounds_s / sizeof hist_bounds_s[0])

typedef struct route_hist {
    atomic_uint_fast64_t buckets[HIST_N + 1]; /* last: +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
} route_hist;

struct metrics {
    atomic_uint_fast64_t ops[MOP_COUNT];
    atomic_uint_fast64_t status_class[6]; /* index status / 100 */
    atomic_uint_fast64_t script_runs, script_limit_hits;
    route_hist routes[ROUTE_COUNT];
    uint64_t start_ns;
    double start_time_s; /* process start, seconds since the epoch */
    bucket_table *buckets;
};

static const char *const op_names[MOP_COUNT] = {"get", "set", "delete", "patch"};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->start_ns = kvd_mono_ns();
    m->start_time_s = process_start_time();
    m->buckets = bucket_table_new();
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m != NULL)
        bucket_table_free(m->buckets);
    free(m);
}

void metrics_bucket_request(struct metrics *m, const char *bucket, size_t len, unsigned status,
                            uint64_t bytes_in, uint64_t bytes_out, bool (*live)(void *), void *ctx)
{
    bucket_table_count(m->buckets, bucket, len, status, bytes_in, bytes_out, live, ctx);
}

void metrics_bucket_forget(struct metrics *m, const char *bucket, size_t len)
{
    bucket_table_forget(m->buckets, bucket, len);
}

void metrics_count_op(struct metrics *m, metric_op op, uint64_t n)
{
    if ((unsigned)op < MOP_COUNT)
        atomic_fetch_add_explicit(&m->ops[op], n, memory_order_relaxed);
}

void metrics_script_run(struct metrics *m, bool limit_hit)
{
    atomic_fetch_add_explicit(&m->script_runs, 1, memory_order_relaxed);
    if (limit_hit)
        atomic_fetch_add_explicit(&m->script_limit_hits, 1, memory_order_relaxed);
}

void metrics_observe(struct metrics *m, route_id route, unsigned status, uint64_t ns)
{
    if ((unsigned)route >= ROUTE_COUNT)
        route = ROUTE_NONE;
    route_hist *h = &m->routes[route];
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < HIST_N && s > hist_bounds_s[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
    unsigned cls = status / 100;
    if (cls < 6)
        atomic_fetch_add_explicit(&m->status_class[cls], 1, memory_order_relaxed);
}

/* User-visible figures: the whole database minus the system keyspace. */
static void user_totals(kvd *srv, rc_stats *db, uint64_t *keys, uint64_t *bytes)
{
    rc_stats sys;
    memset(db, 0, sizeof *db);
    memset(&sys, 0, sizeof sys);
    rc_stats_db(srv->db, db);
    rc_stats_keyspace(srv->db, srv->sys, &sys);
    uint64_t hidden_keys = sys.live_keys, hidden_bytes = sys.live_value_bytes;
    /* recorded Content-Types ("c:" keyspaces) are not user keys either */
    char **names = NULL;
    size_t count = 0;
    if (rc_keyspace_list(srv->db, &names, &count) == 0) {
        for (size_t i = 0; i < count; i++) {
            rc_keyspace *ks = NULL;
            rc_stats cs;
            if (strncmp(names[i], KVD_CTYPE_KS_PREFIX, strlen(KVD_CTYPE_KS_PREFIX)) != 0 ||
                rc_keyspace_open(srv->db, names[i], 0, &ks) != 0)
                continue;
            if (rc_stats_keyspace(srv->db, ks, &cs) == 0) {
                hidden_keys += cs.live_keys;
                hidden_bytes += cs.live_value_bytes;
            }
            rc_keyspace_release(srv->db, ks);
        }
        rc_names_free(names, count);
    }
    *keys = db->live_keys >= hidden_keys ? db->live_keys - hidden_keys : 0;
    *bytes = db->live_value_bytes >= hidden_bytes ? db->live_value_bytes - hidden_bytes : 0;
}

static uint64_t load(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void render_engine(textbuf *t, const rc_stats *s)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } g[] = {
#define F(n, ty, h, field) {n, ty, h, offsetof(rc_stats, field)}
        F("ringcask_segments", "gauge", "Segment files", segments),
        F("ringcask_keyspaces", "gauge", "Keyspaces (buckets + system)", keyspaces),
        F("ringcask_disk_bytes", "gauge", "Segment and hint bytes on disk", disk_bytes),
        F("ringcask_live_value_bytes", "gauge", "Live value bytes (all keyspaces)",
          live_value_bytes),
        F("ringcask_dead_bytes", "gauge", "Bytes in segments no longer live", dead_bytes),
        F("ringcask_keydir_bytes", "gauge", "RAM held by the keydir", keydir_bytes),
        F("ringcask_list_cache_bytes", "gauge", "RAM held by sorted-key caches of listings",
          list_cache_bytes),
        F("ringcask_last_seq", "gauge", "Highest sequence number", last_seq),
        F("ringcask_batches_total", "counter", "Batches written", batches),
        F("ringcask_fsyncs_total", "counter", "fdatasync calls", fsyncs),
        F("ringcask_merges_total", "counter", "Merge runs", merges),
        F("ringcask_merge_bytes_read_total", "counter", "Bytes read by merge", merge_bytes_read),
        F("ringcask_merge_bytes_written_total", "counter", "Bytes written by merge",
          merge_bytes_written),
        F("ringcask_merge_bytes_reclaimed_total", "counter", "Bytes reclaimed by merge",
          merge_bytes_reclaimed),
        F("ringcask_expired_swept_total", "counter", "Keys removed by the TTL sweeper",
          expired_swept),
        F("ringcask_tombstone_horizon", "gauge", "Lowest valid since for incremental backups",
          tombstone_horizon),
        F("ringcask_recovered_keys", "gauge", "Keys recovered at open", recovered_keys),
        F("ringcask_hint_files_used", "gauge", "Hint files used at open", hint_files_used),
        F("ringcask_corrupt_records", "gauge", "Corrupt records skipped at open", corrupt_records),
        F("ringcask_torn_bytes", "gauge", "Bytes truncated from the tail at open", torn_bytes),
        F("ringcask_lost_bytes", "gauge",
          "Acknowledged bytes dropped at open (cut or damaged segments)", lost_bytes),
        F("ringcask_damaged_files", "gauge", "Segment files that lost bytes at open",
          damaged_files),
        F("ringcask_corrupt_reads_total", "counter",
          "Records found corrupt by reads (each dropped once, then absent)", corrupt_reads),
        F("ringcask_dropped_keyspaces", "gauge",
          "Keyspaces dropped since start (their keydirs freed)", dropped_keyspaces),
        F("ringcask_keyspace_bytes", "gauge", "RAM held by keyspace handles and keydirs",
          keyspace_bytes),
        F("ringcask_keyspace_handles", "gauge",
          "Keyspace handles in memory (live keyspaces and dropped ones still in use)",
          keyspace_handles),
        F("ringcask_catalog_entries", "gauge",
          "Names in the keyspace catalogue's index (live keyspaces and at most one dropped)",
          catalog_entries),
        F("ringcask_write_errors_total", "counter", "Failed writes", write_errors),
#undef F
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)s + g[i].off, sizeof v);
        tb_metric_u64(t, g[i].name, g[i].type, g[i].help, v);
    }
    tb_metric_f64(t, "ringcask_fsync_seconds_total", "counter", "Time spent in fdatasync",
                  (double)s->fsync_ns_total / 1e9);
    tb_metric_f64(t, "ringcask_fsync_seconds_max", "gauge", "Longest fdatasync",
                  (double)s->fsync_ns_max / 1e9);
    tb_metric_f64(t, "ringcask_recovery_seconds", "gauge", "Time the last open spent recovering",
                  (double)s->recovery_ms / 1e3);
    tb_metric_u64(t, "ringcask_read_only", "gauge", "1 when the engine turned read-only",
                  s->read_only ? 1 : 0);
}

/* kvd --backup-to: what the shipper reports. */
static void render_backup(textbuf *t, struct backup_shipper *b)
{
    backup_stats bs;
    backup_shipper_stats(b, &bs);
    tb_metric_u64(t, "kvd_backup_last_shipped_seq", "gauge",
                  "Until of the newest backup known in the store", bs.last_shipped_seq);
    tb_metric_f64(t, "kvd_backup_last_shipped_timestamp_seconds", "gauge",
                  "Unix time of the last upload", (double)bs.last_shipped_ms / 1e3);
    tb_metric_u64(t, "kvd_backup_consecutive_failures", "gauge",
                  "Failed backup rounds since the last success", bs.consecutive_failures);
    tb_metric_u64(t, "kvd_backup_uploads_total", "counter", "Backups uploaded", bs.uploads);
    tb_metric_u64(t, "kvd_backup_failures_total", "counter", "Failed backup rounds", bs.failures);
    tb_metric_u64(t, "kvd_backup_pruned_objects_total", "counter", "Objects deleted by retention",
                  bs.pruned);
}

char *metrics_prometheus(kvd *srv, size_t *len)
{
    struct metrics *m = srv->metrics;
    textbuf t = {0};
    rc_stats s;
    uint64_t keys, bytes;
    user_totals(srv, &s, &keys, &bytes);
    tb_printf(&t,
              "# HELP kvd_keys_stored Keys stored in all buckets\n"
              "# TYPE kvd_keys_stored gauge\nkvd_keys_stored %" PRIu64 "\n",
              keys);
    tb_printf(&t,
              "# HELP kvd_value_bytes_stored Value bytes stored in all buckets\n"
              "# TYPE kvd_value_bytes_stored gauge\nkvd_value_bytes_stored %" PRIu64 "\n",
              bytes);
    tb_printf(&t,
              "# HELP kvd_inflight_bytes Memory held by requests in flight (answers, bodies)\n"
              "# TYPE kvd_inflight_bytes gauge\nkvd_inflight_bytes %" PRIu64 "\n"
              "# HELP kvd_memory_refusals_total Requests refused by a memory budget\n"
              "# TYPE kvd_memory_refusals_total counter\n"
              "kvd_memory_refusals_total{limit=\"max_response_bytes\"} %" PRIu64 "\n"
              "kvd_memory_refusals_total{limit=\"max_inflight_bytes\"} %" PRIu64 "\n",
              (uint64_t)atomic_load(&srv->mem_inflight),
              (uint64_t)atomic_load(&srv->budget_refused_large),
              (uint64_t)atomic_load(&srv->budget_refused_busy));
    tb_metric_u64(&t, "kvd_buckets_counted", "gauge",
                  "Buckets with per-bucket request counters in memory (deleted ones have none)",
                  bucket_table_live(m->buckets));
    park_stats ps;
    park_get_stats(srv->park, &ps);
    tb_printf(&t,
              "# HELP kvd_waiters Requests parked now: ?wait=, /admin/backup?wait= and (replica "
              "group leader) writes waiting for the sync standby\n"
              "# TYPE kvd_waiters gauge\nkvd_waiters %" PRIu64 "\n"
              "# HELP kvd_waits_ended_total Parked requests resumed, by why\n"
              "# TYPE kvd_waits_ended_total counter\n"
              "kvd_waits_ended_total{why=\"change\"} %" PRIu64 "\n"
              "kvd_waits_ended_total{why=\"deadline\"} %" PRIu64 "\n"
              "kvd_waits_ended_total{why=\"client_gone\"} %" PRIu64 "\n"
              "# HELP kvd_waiters_refused_total Waits refused by --max-waiters (503)\n"
              "# TYPE kvd_waiters_refused_total counter\nkvd_waiters_refused_total %" PRIu64 "\n",
              ps.parked, ps.woken, ps.deadlines, ps.gone, ps.refused);
    tb_printf(&t, "# HELP kvd_operations_total Key operations, counted per key\n"
                  "# TYPE kvd_operations_total counter\n");
    for (int i = 0; i < MOP_COUNT; i++)
        tb_printf(&t, "kvd_operations_total{op=\"%s\"} %" PRIu64 "\n", op_names[i],
                  load(&m->ops[i]));
    tb_printf(&t, "# HELP kvd_http_responses_total Responses by status class\n"
                  "# TYPE kvd_http_responses_total counter\n");
    for (int c = 1; c < 6; c++)
        tb_printf(&t, "kvd_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", c,
                  load(&m->status_class[c]));
    tb_printf(&t,
              "# HELP kvd_script_runs_total Script runs\n# TYPE kvd_script_runs_total "
              "counter\nkvd_script_runs_total %" PRIu64 "\n",
              load(&m->script_runs));
    tb_printf(&t,
              "# HELP kvd_script_limit_hits_total Script runs stopped by a limit\n"
              "# TYPE kvd_script_limit_hits_total counter\nkvd_script_limit_hits_total %" PRIu64
              "\n",
              load(&m->script_limit_hits));
    tb_printf(&t, "# HELP kvd_http_request_duration_seconds Request latency by route\n"
                  "# TYPE kvd_http_request_duration_seconds histogram\n");
    for (int r = 1; r < ROUTE_COUNT; r++) {
        route_hist *h = &m->routes[r];
        const char *label = route_label((route_id)r);
        uint64_t cum = 0;
        for (size_t b = 0; b < HIST_N; b++) {
            cum += load(&h->buckets[b]);
            tb_printf(&t,
                      "kvd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64
                      "\n",
                      label, hist_bounds_s[b], cum);
        }
        cum += load(&h->buckets[HIST_N]);
        tb_printf(
            &t, "kvd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
            label, cum);
        tb_printf(&t, "kvd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", label,
                  (double)load(&h->sum_ns) / 1e9);
        tb_printf(&t, "kvd_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n", label,
                  load(&h->count));
    }
    tb_printf(&t,
              "# HELP kvd_uptime_seconds Seconds since start\n# TYPE kvd_uptime_seconds "
              "gauge\nkvd_uptime_seconds %.1f\n",
              (double)(kvd_mono_ns() - m->start_ns) / 1e9);
    render_engine(&t, &s);
    metrics_render_build_info(&t);
    metrics_render_process(&t, m->start_time_s);
    if (srv->shipper != NULL)
        render_backup(&t, srv->shipper);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    *len = t.len;
    return t.data;
}

char *metrics_json(kvd *srv, size_t *len)
{
    struct metrics *m = srv->metrics;
    rc_stats s;
    uint64_t keys, bytes, requests = 0;
    user_totals(srv, &s, &keys, &bytes);
    for (int r = 0; r < ROUTE_COUNT; r++)
        requests += load(&m->routes[r].count);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "keys", json_integer((json_int_t)keys));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    for (int i = 0; i < MOP_COUNT; i++)
        json_object_set_new(o, op_names[i], json_integer((json_int_t)load(&m->ops[i])));
    json_object_set_new(o, "requests", json_integer((json_int_t)requests));
    json_object_set_new(o, "script_runs", json_integer((json_int_t)load(&m->script_runs)));
    json_object_set_new(o, "segments", json_integer((json_int_t)s.segments));
    json_object_set_new(o, "disk_bytes", json_integer((json_int_t)s.disk_bytes));
    json_object_set_new(o, "dead_bytes", json_integer((json_int_t)s.dead_bytes));
    json_object_set_new(o, "merges", json_integer((json_int_t)s.merges));
    json_object_set_new(o, "last_seq", json_integer((json_int_t)s.last_seq));
    park_stats ps;
    park_get_stats(srv->park, &ps);
    json_object_set_new(o, "waiters", json_integer((json_int_t)ps.parked));
    json_object_set_new(o, "waiters_refused", json_integer((json_int_t)ps.refused));
    json_object_set_new(o, "uptime_s",
                        json_integer((json_int_t)((kvd_mono_ns() - m->start_ns) / 1000000000u)));
    if (srv->shipper != NULL) {
        backup_stats bs;
        backup_shipper_stats(srv->shipper, &bs);
        json_object_set_new(o, "backup_last_shipped_seq",
                            json_integer((json_int_t)bs.last_shipped_seq));
        json_object_set_new(o, "backup_last_shipped_ms",
                            json_integer((json_int_t)bs.last_shipped_ms));
        json_object_set_new(o, "backup_consecutive_failures",
                            json_integer((json_int_t)bs.consecutive_failures));
        json_object_set_new(o, "backup_uploads", json_integer((json_int_t)bs.uploads));
        json_object_set_new(o, "backup_pruned_objects", json_integer((json_int_t)bs.pruned));
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

/* The figures of one bucket: keys and value bytes from the engine, request
 * counters from the bucket table. */
static void bucket_figures_of(kvd *srv, const policy *p, uint64_t *keys, uint64_t *bytes,
                              bucket_figures *f)
{
    rc_stats ks;
    memset(&ks, 0, sizeof ks);
    rc_stats_keyspace(srv->db, p->ks, &ks);
    *keys = ks.live_keys;
    *bytes = ks.live_value_bytes;
    bucket_table_get(srv->metrics->buckets, p->name, strlen(p->name), f);
}

char *metrics_bucket_prometheus(kvd *srv, const policy *p, size_t *len)
{
    textbuf t = {0};
    uint64_t keys, bytes;
    bucket_figures f;
    bucket_figures_of(srv, p, &keys, &bytes, &f);
    tb_family(&t, "kvd_bucket_keys_stored", "gauge", "Keys stored in the bucket");
    tb_printf(&t, "kvd_bucket_keys_stored{bucket=\"%s\"} %" PRIu64 "\n", p->name, keys);
    tb_family(&t, "kvd_bucket_value_bytes_stored", "gauge", "Value bytes stored in the bucket");
    tb_printf(&t, "kvd_bucket_value_bytes_stored{bucket=\"%s\"} %" PRIu64 "\n", p->name, bytes);
    tb_family(&t, "kvd_bucket_http_responses_total", "counter",
              "Responses to requests on the bucket, by status class");
    for (int c = 1; c < 6; c++)
        tb_printf(&t, "kvd_bucket_http_responses_total{bucket=\"%s\",class=\"%dxx\"} %" PRIu64 "\n",
                  p->name, c, f.status_class[c]);
    tb_family(&t, "kvd_bucket_received_bytes_total", "counter",
              "Request body bytes received for the bucket");
    tb_printf(&t, "kvd_bucket_received_bytes_total{bucket=\"%s\"} %" PRIu64 "\n", p->name,
              f.bytes_in);
    tb_family(&t, "kvd_bucket_sent_bytes_total", "counter",
              "Response body bytes sent for the bucket");
    tb_printf(&t, "kvd_bucket_sent_bytes_total{bucket=\"%s\"} %" PRIu64 "\n", p->name, f.bytes_out);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    *len = t.len;
    return t.data;
}

char *metrics_bucket_json(kvd *srv, const policy *p, size_t *len)
{
    uint64_t keys, bytes;
    bucket_figures f;
    bucket_figures_of(srv, p, &keys, &bytes, &f);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "bucket", json_string(p->name));
    json_object_set_new(o, "keys", json_integer((json_int_t)keys));
    json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(o, "requests", json_integer((json_int_t)f.requests));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)f.bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)f.bytes_out));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text != NULL)
        *len = strlen(text);
    return text;
}
