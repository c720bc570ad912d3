/* rc_apply_async: writes applied at once, their callback called exactly once
 * when their group commit is durable (or with the sync's error), from the
 * completion thread; inline when nothing needs a sync; rc_close completes
 * everything pending; an acknowledged write survives a reopen. */
#include "helpers.h"
#include "fault.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static rc_db *db;

static void open_mode(rc_sync_mode mode)
{
    rc_options o;
    th_options(&o);
    o.sync = mode;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    open_mode(RC_SYNC_ALWAYS);
}
static void teardown(void)
{
#ifdef RC_FAULT_INJECTION
    rc_fault_disarm_all();
#endif
    rc_close(db);
    th_rmdir(dir);
}
TestSuite(async, .init = setup, .fini = teardown, .timeout = 120);

/* One write's completion: how often it was called, with what, on which
 * thread, and the detail message it could read. */
typedef struct done_rec {
    atomic_int calls;
    atomic_int status;
    pthread_t thread;
    char msg[256];
} done_rec;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static atomic_int done_total;

static void on_done(void *ctx, int status)
{
    done_rec *d = ctx;
    d->thread = pthread_self();
    snprintf(d->msg, sizeof(d->msg), "%s", rc_last_error_message());
    atomic_store(&d->status, status);
    atomic_fetch_add(&d->calls, 1);
    pthread_mutex_lock(&done_mu);
    atomic_fetch_add(&done_total, 1);
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&done_mu);
}

/* Block until at least N completions happened since the last reset. */
static void wait_done(int n)
{
    pthread_mutex_lock(&done_mu);
    while (atomic_load(&done_total) < n)
        pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);
}

static int put_async(const char *k, const char *v, done_rec *d)
{
    rc_op op = {.kind = RC_OP_PUT, .key = k, .klen = strlen(k), .val = v, .vlen = strlen(v)};
    return rc_apply_async(db, &op, 1, NULL, on_done, d);
}

#define WRITERS 8
#define PER_WRITER 300

typedef struct writer {
    int id;
    done_rec *recs;
    int errors;
} writer;

static void *write_many(void *arg)
{
    writer *w = arg;
    char k[32], v[48];
    for (int i = 0; i < PER_WRITER; i++) {
        snprintf(k, sizeof(k), "w%d-%d", w->id, i);
        snprintf(v, sizeof(v), "value-%d-%d", w->id, i);
        if (put_async(k, v, &w->recs[i]) != 0)
            w->errors++;
    }
    return NULL;
}

Test(async, many_concurrent_writers_each_called_back_exactly_once_and_durable)
{
    atomic_store(&done_total, 0);
    done_rec *recs = calloc(WRITERS * PER_WRITER, sizeof(*recs));
    cr_assert_not_null(recs);
    pthread_t th[WRITERS];
    writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer){.id = i, .recs = recs + i * PER_WRITER};
        pthread_create(&th[i], NULL, write_many, &w[i]);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].errors, 0, "writer %d: %d refused writes", i, w[i].errors);
    }
    wait_done(WRITERS * PER_WRITER);
    pthread_t self = pthread_self();
    for (int i = 0; i < WRITERS * PER_WRITER; i++) {
        cr_assert_eq(atomic_load(&recs[i].calls), 1, "write %d called back %d times", i,
                     atomic_load(&recs[i].calls));
        cr_assert_eq(atomic_load(&recs[i].status), 0, "write %d: %s", i, recs[i].msg);
        cr_assert(!pthread_equal(recs[i].thread, self), "a queued write completed inline");
    }
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_gt(st.fsyncs, 0, "no fdatasync covered the writes");
    /* every one acknowledged: all there after a reopen */
    cr_assert_eq(rc_close(db), 0);
    open_mode(RC_SYNC_ALWAYS);
    char k[32], v[48];
    for (int t = 0; t < WRITERS; t++)
        for (int i = 0; i < PER_WRITER; i++) {
            snprintf(k, sizeof(k), "w%d-%d", t, i);
            snprintf(v, sizeof(v), "value-%d-%d", t, i);
            cr_assert(th_has(db, NULL, k, v), "acknowledged %s is lost", k);
        }
    /* still called exactly once after the close */
    for (int i = 0; i < WRITERS * PER_WRITER; i++)
        cr_assert_eq(atomic_load(&recs[i].calls), 1);
    free(recs);
}

Test(async, results_are_filled_and_visible_before_the_callback)
{
    atomic_store(&done_total, 0);
    done_rec d = {0};
    rc_op ops[2] = {
        {.kind = RC_OP_PUT, .key = "a", .klen = 1, .val = "1", .vlen = 1},
        {.kind = RC_OP_INCR, .key = "n", .klen = 1, .by = {.type = RC_TYPE_INT, .i = 5}},
    };
    cr_assert_eq(rc_apply_async(db, ops, 2, NULL, on_done, &d), 0, "%s", rc_last_error_message());
    cr_assert_gt(ops[0].seq, 0);
    cr_assert_eq(ops[1].seq, ops[0].seq + 1);
    cr_assert_eq(ops[1].result.len, 1);
    cr_assert_eq(memcmp(ops[1].result.data, "5", 1), 0);
    rc_value_free(&ops[1].result);
    /* the same visibility as rc_apply: readable at once */
    cr_assert(th_has(db, NULL, "a", "1"));
    wait_done(1);
    cr_assert_eq(atomic_load(&d.calls), 1);
    cr_assert_eq(atomic_load(&d.status), 0);
}

Test(async, refused_batch_writes_nothing_and_never_calls_back)
{
    atomic_store(&done_total, 0);
    done_rec d = {0};
    th_put(db, NULL, "x", "old");
    rc_op ops[2] = {
        {.kind = RC_OP_PUT, .key = "y", .klen = 1, .val = "new", .vlen = 3},
        {.kind = RC_OP_PUT, .key = "x", .klen = 1, .val = "new", .vlen = 3, .cond = RC_IF_ABSENT},
    };
    size_t failed = 99;
    cr_assert_eq(rc_apply_async(db, ops, 2, &failed, on_done, &d), RC_EEXISTS);
    cr_assert_eq(failed, 1);
    cr_assert_eq(th_has(db, NULL, "y", "new"), 0, "a refused batch wrote");
    cr_assert_eq(rc_apply_async(db, ops, 1, NULL, NULL, NULL), RC_EINVAL);
    cr_assert_eq(th_has(db, NULL, "y", "new"), 0, "a call without callback wrote");
    /* rc_close drains: had anything been queued it would be called now */
    cr_assert_eq(rc_close(db), 0);
    open_mode(RC_SYNC_ALWAYS);
    cr_assert_eq(atomic_load(&d.calls), 0);
}

Test(async, completes_inline_when_nothing_waits_for_a_sync)
{
    atomic_store(&done_total, 0);
    /* a read-only batch under sync=always */
    done_rec r = {0};
    rc_op get = {.kind = RC_OP_GET, .key = "nothing", .klen = 7};
    cr_assert_eq(rc_apply_async(db, &get, 1, NULL, on_done, &r), 0);
    cr_assert_eq(atomic_load(&r.calls), 1, "not completed before returning");
    cr_assert(pthread_equal(r.thread, pthread_self()));
    /* any write under sync=none */
    rc_close(db);
    open_mode(RC_SYNC_NONE);
    done_rec d = {0};
    cr_assert_eq(put_async("k", "v", &d), 0);
    cr_assert_eq(atomic_load(&d.calls), 1);
    cr_assert_eq(atomic_load(&d.status), 0);
    cr_assert(pthread_equal(d.thread, pthread_self()));
}

/* A callback that writes again (allowed: rc_apply_async never waits). */
typedef struct chain {
    atomic_int left;
    atomic_int calls;
} chain;

static void chain_done(void *ctx, int status)
{
    chain *c = ctx;
    cr_assert_eq(status, 0);
    atomic_fetch_add(&c->calls, 1);
    int left = atomic_fetch_sub(&c->left, 1);
    if (left > 1) {
        char k[16];
        snprintf(k, sizeof(k), "chain%d", left);
        rc_op op = {.kind = RC_OP_PUT, .key = k, .klen = strlen(k), .val = "c", .vlen = 1};
        cr_assert_eq(rc_apply_async(db, &op, 1, NULL, chain_done, c), 0);
    } else {
        pthread_mutex_lock(&done_mu);
        atomic_fetch_add(&done_total, 1);
        pthread_cond_broadcast(&done_cv);
        pthread_mutex_unlock(&done_mu);
    }
}

Test(async, a_callback_may_issue_the_next_write)
{
    atomic_store(&done_total, 0);
    chain c = {.left = 20};
    rc_op op = {.kind = RC_OP_PUT, .key = "chain21", .klen = 7, .val = "c", .vlen = 1};
    cr_assert_eq(rc_apply_async(db, &op, 1, NULL, chain_done, &c), 0);
    wait_done(1);
    cr_assert_eq(atomic_load(&c.calls), 20);
    cr_assert(th_has(db, NULL, "chain2", "c"));
}

Test(async, close_completes_every_pending_write)
{
    atomic_store(&done_total, 0);
    enum { N = 2000 };
    done_rec *recs = calloc(N, sizeof(*recs));
    cr_assert_not_null(recs);
    char k[32];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "pending-%d", i);
        cr_assert_eq(put_async(k, "v", &recs[i]), 0);
    }
    /* no waiting: rc_close must sync and call back whatever is queued */
    cr_assert_eq(rc_close(db), 0);
    db = NULL;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(atomic_load(&recs[i].calls), 1, "write %d: %d calls", i,
                     atomic_load(&recs[i].calls));
        cr_assert_eq(atomic_load(&recs[i].status), 0);
    }
    open_mode(RC_SYNC_ALWAYS);
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "pending-%d", i);
        cr_assert(th_has(db, NULL, k, "v"), "%s lost", k);
    }
    free(recs);
}

#ifdef RC_FAULT_INJECTION
static void failed_sync_reaches_callback(int errnum, const char *why)
{
    atomic_store(&done_total, 0);
    done_rec before = {0}, d = {0}, later = {0};
    cr_assert_eq(put_async("before", "ok", &before), 0);
    wait_done(1);
    cr_assert_eq(atomic_load(&before.status), 0);
    rc_fault_arm(FAULT_SYNC, 0, 1000000, errnum);
    cr_assert_eq(put_async("during", "x", &d), 0);
    wait_done(2);
    cr_assert_eq(atomic_load(&d.calls), 1);
    cr_assert_eq(atomic_load(&d.status), RC_EIO, "got %d", atomic_load(&d.status));
    cr_assert_not_null(strstr(d.msg, why), "the detail \"%s\" does not name %s", d.msg, why);
    /* the database is read-only now: refused at once, never called back */
    cr_assert_eq(put_async("later", "x", &later), RC_EREADONLY);
    rc_fault_disarm_all();
    rc_close(db);
    cr_assert_eq(atomic_load(&later.calls), 0);
    open_mode(RC_SYNC_ALWAYS);
    cr_assert(th_has(db, NULL, "before", "ok"), "an acknowledged write is lost");
    cr_assert_eq(th_has(db, NULL, "later", "x"), 0);
}

Test(async, failed_fdatasync_eio_reaches_the_callback)
{
    failed_sync_reaches_callback(EIO, strerror(EIO));
}

Test(async, failed_fdatasync_enospc_reaches_the_callback)
{
    failed_sync_reaches_callback(ENOSPC, strerror(ENOSPC));
}

Test(async, failed_sync_completes_every_waiter_of_its_round)
{
    atomic_store(&done_total, 0);
    enum { N = 500 };
    done_rec *recs = calloc(N, sizeof(*recs));
    cr_assert_not_null(recs);
    rc_fault_arm(FAULT_SYNC, 0, 1000000, EIO);
    char k[32];
    int queued = 0;
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "f-%d", i);
        int rc = put_async(k, "v", &recs[i]);
        if (rc == 0)
            queued++;
        else
            cr_assert_eq(rc, RC_EREADONLY, "write %d: %s", i, rc_strerror(rc));
    }
    cr_assert_gt(queued, 0);
    wait_done(queued);
    for (int i = 0; i < N; i++) {
        int calls = atomic_load(&recs[i].calls);
        cr_assert_leq(calls, 1);
        if (calls)
            cr_assert_eq(atomic_load(&recs[i].status), RC_EIO, "write %d acknowledged", i);
    }
    rc_fault_disarm_all();
    free(recs);
}

Test(async, full_disk_on_append_is_refused_synchronously)
{
    atomic_store(&done_total, 0);
    char big[4000];
    srand(7);
    for (size_t i = 0; i + 1 < sizeof(big); i++)
        big[i] = (char)('!' + rand() % 90);
    big[sizeof(big) - 1] = 0;
    rc_fault_arm(FAULT_GROW, 0, 1000000, ENOSPC);
    rc_fault_arm(FAULT_CREATE, 0, 1000000, ENOSPC);
    int refused = 0, queued = 0;
    static done_rec recs[200];
    static int rcs[200];
    memset(recs, 0, sizeof(recs));
    char k[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "f%d", i);
        rcs[i] = put_async(k, big, &recs[i]);
        if (rcs[i] == RC_ENOSPC)
            refused++;
        else if (rcs[i] == 0)
            queued++;
        else
            cr_assert_fail("write %d: %s", i, rc_strerror(rcs[i]));
    }
    cr_assert_gt(refused, 0, "the fault never fired");
    wait_done(queued);
    rc_fault_disarm_all();
    rc_close(db);
    open_mode(RC_SYNC_ALWAYS);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "f%d", i);
        if (rcs[i] == 0) {
            cr_assert_eq(atomic_load(&recs[i].calls), 1, "write %d", i);
            cr_assert_eq(atomic_load(&recs[i].status), 0, "write %d", i);
            cr_assert(th_has(db, NULL, k, big), "acknowledged %s lost", k);
        } else {
            cr_assert_eq(atomic_load(&recs[i].calls), 0, "refused write %d called back", i);
            cr_assert_eq(th_has(db, NULL, k, big), 0, "refused %s is there", k);
        }
    }
}
#endif
