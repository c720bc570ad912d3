/*
 * commit.c — completions of rc_apply_async: the queue of writes waiting for
 * durability and the thread that completes them.
 *
 * rc_apply_async appends and publishes like rc_apply, then, instead of
 * waiting in the group commit itself, queues {end lsn, callback} here. A
 * completion thread (two per database: while one calls back, the other
 * leads the next sync) takes the whole queue, waits for its
 * highest lsn through the ordinary group commit (rci_log_wait: it leads the
 * fdatasync or joins the one in flight, exactly like a blocking writer, so
 * blocking and asynchronous writers share syncs), then calls every callback
 * it took. Writes queued during a sync go to the next round: one sync is in
 * flight at a time and a round covers everything that arrived meanwhile,
 * however many callers wait, so a few threads can keep hundreds of writes
 * in flight.
 *
 * A failed sync completes the round's writes with its error, except those
 * whose bytes an earlier sync had already made durable (durable_lsn). The
 * threads start with the first queued write and stop in rc_close after they
 * have drained the queue (rc_close syncs what is pending and completes it).
 * Each queued write counts as an arrival for the leader's gathering (log.c),
 * so a sync waits briefly for as many writers as the last one covered,
 * exactly as with blocking writers.
 * Two arrays alternate as queue and round, so the steady state allocates
 * nothing; if the queue cannot grow (or the thread cannot start), the caller
 * waits for the sync itself and completes inline.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>

/* Completion threads per database. Two, so that one calls back the round
 * it synced while the other already leads (or waits to lead) the next
 * sync, and a completion never waits for one descheduled thread. */
#define COMMIT_THREADS 2

typedef struct commit_item {
    uint64_t lsn;
    rc_durable_fn fn;
    void *ctx;
} commit_item;

struct rci_commitq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    commit_item *items; /* the queue */
    size_t n, cap;
    commit_item *spare; /* the other array, reused by the next round */
    size_t spare_cap;
    pthread_t threads[COMMIT_THREADS];
    int nthreads;
    bool stop;
};

int rci_commit_init(rc_db *db)
{
    rci_commitq *q = calloc(1, sizeof(*q));
    if (!q)
        return RC_ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    db->commitq = q;
    return 0;
}

static uint64_t durable_lsn(rc_db *db)
{
    return atomic_load(&db->durable_lsn);
}

/* Complete one round: sync up to its highest lsn, then call back. */
static void complete_round(rc_db *db, commit_item *it, size_t n)
{
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (it[i].lsn > max)
            max = it[i].lsn;
    rci_error_clear();
    int err = rci_log_wait(db, max);
    char msg[512] = "";
    uint64_t durable = 0;
    if (err) {
        snprintf(msg, sizeof(msg), "%s", rc_last_error_message());
        durable = durable_lsn(db);
    }
    for (size_t i = 0; i < n; i++) {
        int st = err && it[i].lsn > durable ? err : 0;
        if (st)
            rc_fail(st, "%s", msg); /* a callback may have cleared it */
        else
            rci_error_clear();
        it[i].fn(it[i].ctx, st);
    }
    rci_error_clear();
}

static void *commit_main(void *arg)
{
    rc_db *db = arg;
    rci_commitq *q = db->commitq;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->n == 0 && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->n == 0)
            break; /* stopping, and nothing is left */
        commit_item *round = q->items;
        size_t n = q->n, cap = q->cap;
        q->items = q->spare;
        q->cap = q->spare_cap;
        q->n = 0;
        q->spare = NULL;
        q->spare_cap = 0;
        pthread_mutex_unlock(&q->mu);

        complete_round(db, round, n);

        pthread_mutex_lock(&q->mu);
        if (q->spare == NULL) {
            q->spare = round; /* keep the capacity for a later round */
            q->spare_cap = cap;
        } else {
            free(round);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Queue {LSN, FN, CTX}; false when it could not be queued (no memory, no
 * thread, or the database is closing): the caller then waits itself. */
static bool commit_enqueue(rc_db *db, uint64_t lsn, rc_durable_fn fn, void *ctx)
{
    rci_commitq *q = db->commitq;
    bool ok = false;
    pthread_mutex_lock(&q->mu);
    if (q->stop)
        goto out;
    while (q->nthreads < COMMIT_THREADS) {
        if (pthread_create(&q->threads[q->nthreads], NULL, commit_main, db) != 0)
            break;
        q->nthreads++;
    }
    if (q->nthreads == 0)
        goto out;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        commit_item *g = realloc(q->items, cap * sizeof(*g));
        if (!g)
            goto out;
        q->items = g;
        q->cap = cap;
    }
    q->items[q->n++] = (commit_item){.lsn = lsn, .fn = fn, .ctx = ctx};
    /* an arrival for the group commit's gathering (log.c gather_group), as a
     * blocking writer counts itself when it starts waiting: a leader waits
     * briefly until as many writers arrived as its last sync covered */
    atomic_fetch_add(&db->arrivals, 1);
    rci_log_group_poke(db);
    if (q->n == 1)
        pthread_cond_signal(&q->cv);
    ok = true;
out:
    pthread_mutex_unlock(&q->mu);
    return ok;
}

void rci_commit_complete(rc_db *db, uint64_t lsn, rc_durable_fn fn, void *ctx)
{
    if (lsn == 0 || db->opt.sync != RC_SYNC_ALWAYS) {
        rci_error_clear();
        fn(ctx, 0);
        return;
    }
    if (commit_enqueue(db, lsn, fn, ctx))
        return;
    /* could not queue: wait like rc_apply and complete inline */
    int err = rci_log_wait(db, lsn);
    if (!err)
        rci_error_clear();
    fn(ctx, err);
}

void rci_commit_stop(rc_db *db)
{
    rci_commitq *q = db->commitq;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    int n = q->nthreads;
    q->nthreads = 0;
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < n; i++)
        pthread_join(q->threads[i], NULL); /* they drain the queue first */
}

void rci_commit_free(rc_db *db)
{
    rci_commitq *q = db->commitq;
    if (!q)
        return;
    rci_commit_stop(db);
    free(q->items);
    free(q->spare);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
    db->commitq = NULL;
}
