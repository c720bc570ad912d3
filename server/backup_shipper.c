/*
 * backup_shipper.c — kvd's continuous backups to an object store.
 *
 * One thread, one S3 client. The state the metrics read is a handful of
 * atomics; the thread sleeps on a condition variable so a stop wakes it at
 * once, and the client's cancel flag aborts a transfer under way.
 */
#include "backup_shipper.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "store.h"

struct backup_shipper {
    kvd *srv;
    rcbs store;
    char db_id[RCM_DB_ID_MAX + 1];
    uint64_t every_ms;
    unsigned keep_full;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
    atomic_uint_fast64_t last_seq, consecutive, uploads, failures, pruned;
    atomic_int_fast64_t last_ms;
};

int backup_parse_duration(const char *s, uint64_t *ms)
{
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        mul = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        mul = 86400ull * 1000;
    else
        return -1;
    if (errno == ERANGE || v > UINT64_MAX / mul)
        return -1;
    *ms = v * mul;
    return 0;
}

/* Sleep MS unless stopped; returns true when stopping. */
static bool nap(struct backup_shipper *b, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    while (!atomic_load(&b->stop)) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&b->mu);
    return atomic_load(&b->stop);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One round: ship, then prune after an upload. Returns 0 or -1 (logged). */
static int ship_once(struct backup_shipper *b)
{
    rcbs_ship_opts o = {.auto_full = true};
    rcbs_ship_result r;
    int rc = rcbs_ship(&b->store, b->srv->db, b->db_id, &o, &r);
    if (rc != 0) {
        kvd_log(LOG_WARN, "backup to %s failed: %s", b->store.url, rcbs_error(&b->store));
        return -1;
    }
    atomic_store(&b->last_seq, r.until);
    if (!r.uploaded)
        return 0;
    atomic_store(&b->last_ms, wall_ms());
    atomic_fetch_add(&b->uploads, 1);
    kvd_log(LOG_INFO, "backup: shipped %s/%s (%s%s, seq %llu..%llu, %llu bytes, chain of %zu)",
            b->store.url, r.object, r.full ? "full" : "incremental",
            r.horizon ? " at the tombstone horizon" : "", (unsigned long long)r.since,
            (unsigned long long)r.until, (unsigned long long)r.bytes, r.chain);
    unsigned deleted = 0;
    rc = rcbs_prune(&b->store, b->db_id, b->keep_full, &deleted);
    atomic_fetch_add(&b->pruned, deleted);
    if (deleted > 0)
        kvd_log(LOG_INFO, "backup: retention removed %u objects (keeping %u fulls)", deleted,
                b->keep_full);
    if (rc != 0) {
        /* the upload stands; the next round prunes again */
        kvd_log(LOG_WARN, "backup: pruning %s failed: %s", b->store.url, rcbs_error(&b->store));
    }
    return 0;
}

static void *run(void *arg)
{
    struct backup_shipper *b = arg;
    uint64_t cap = b->every_ms < 60000 ? b->every_ms : 60000;
    uint64_t delay = 0; /* the first round right away */
    while (!nap(b, delay)) {
        if (ship_once(b) == 0) {
            atomic_store(&b->consecutive, 0);
            delay = b->every_ms;
            continue;
        }
        if (atomic_load(&b->stop))
            break;
        uint64_t k = atomic_fetch_add(&b->consecutive, 1) + 1;
        atomic_fetch_add(&b->failures, 1);
        delay = k >= 17 ? cap : (uint64_t)1000 << (k - 1);
        if (delay > cap)
            delay = cap;
        kvd_log(LOG_WARN, "backup: %llu failures in a row; next attempt in %.1f s",
                (unsigned long long)k, (double)delay / 1000.0);
    }
    return NULL;
}

int backup_shipper_start(kvd *srv, const char *url, uint64_t every_ms, unsigned keep_full,
                         struct backup_shipper **out)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "kvd: --backup-to: libcurl failed to initialise\n");
        return -1;
    }
    struct backup_shipper *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -1;
    if (rcbs_open(&b->store, url) != 0) {
        fprintf(stderr, "kvd: --backup-to: %s\n", rcbs_error(&b->store));
        free(b);
        return -1;
    }
    if (rcbs_database_id(srv->db, srv->cfg.dir, b->db_id, sizeof b->db_id) != 0) {
        fprintf(stderr, "kvd: --backup-to: cannot read the database identity of %s\n",
                srv->cfg.dir);
        rcbs_close(&b->store);
        free(b);
        return -1;
    }
    b->srv = srv;
    b->every_ms = every_ms;
    b->keep_full = keep_full;
    atomic_init(&b->stop, false);
    rcs3_set_cancel(b->store.s3, &b->stop);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        fprintf(stderr, "kvd: --backup-to: cannot start the backup thread\n");
        rcbs_close(&b->store);
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return -1;
    }
    kvd_log(LOG_INFO, "backup: shipping database %s to %s every %.1f s, keeping %u fulls", b->db_id,
            b->store.url, (double)every_ms / 1000.0, keep_full);
    *out = b;
    return 0;
}

void backup_shipper_stop(struct backup_shipper *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->stop, true);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    rcbs_close(&b->store);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void backup_shipper_stats(struct backup_shipper *b, backup_stats *out)
{
    memset(out, 0, sizeof *out);
    if (b == NULL)
        return;
    out->last_shipped_seq = atomic_load(&b->last_seq);
    out->last_shipped_ms = atomic_load(&b->last_ms);
    out->consecutive_failures = atomic_load(&b->consecutive);
    out->uploads = atomic_load(&b->uploads);
    out->failures = atomic_load(&b->failures);
    out->pruned = atomic_load(&b->pruned);
}
