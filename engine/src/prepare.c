/*
 * prepare.c — the preparer: a thread per writable database that grows the
 * active segment's preallocation ahead of the writers, so that the append
 * critical section (append_mu) almost never runs fallocate, the io_uring
 * path's O_DIRECT zero-fill (up to 4 MiB of writes), or the journal commit
 * that the first sync after a growth would otherwise pay.
 *
 * An appender whose append leaves less than half a preallocation step of
 * room kicks it (rci_prep_kick, once per step: seg->prep_pending); the
 * preparer then preallocates one more step (rci_seg_prepare) while the
 * writers keep appending into the room that is left. When they outrun it,
 * an appender grows the file itself as before (rci_seg_reserve under
 * grow_mu, which it waits for while the preparer works), so a failed
 * background growth (ENOSPC) changes nothing: the appender's own attempt
 * fails the write as it always did.
 *
 * grow_mu guards every change of a segment's file_len and prep_seg; it is
 * taken after append_mu (appenders, rotation) or alone (the preparer, which
 * never takes append_mu), so the preparer never waits for a writer, and a
 * kick only tries it (a busy preparer is kicked again by a later append). The
 * thread starts at the first kick and stops in rc_close before the active
 * segment is sealed. A rotation forgets a pending kick for the old segment
 * under grow_mu (rci_prep_forget), after which the preparer never touches
 * it.
 */
#include "db.h"

#include <pthread.h>

static void *prep_main(void *arg)
{
    rc_db *db = arg;
    bool sync = db->opt.sync == RC_SYNC_ALWAYS;
    pthread_mutex_lock(&db->grow_mu);
    while (!db->prep_stop) {
        segment *seg = db->prep_seg;
        if (!seg) {
            pthread_cond_wait(&db->prep_cv, &db->grow_mu);
            continue;
        }
        db->prep_seg = NULL;
        /* a failure leaves the room as it was: the appender that needs it
         * grows the file itself and reports the error then */
        rci_seg_prepare(seg, sync);
        atomic_store(&seg->prep_pending, false);
        atomic_fetch_add(&db->prep_grows, 1);
    }
    pthread_mutex_unlock(&db->grow_mu);
    return NULL;
}

void rci_prep_kick(rc_db *db, segment *seg)
{
    if (!rci_seg_wants_room(seg) || atomic_exchange(&seg->prep_pending, true))
        return;
    /* never wait under append_mu: while the preparer is busy (it holds
     * grow_mu), a later append kicks again */
    if (pthread_mutex_trylock(&db->grow_mu) != 0) {
        atomic_store(&seg->prep_pending, false);
        return;
    }
    if (!db->prep_running && !db->prep_stop && !db->prep_failed) {
        if (pthread_create(&db->prep_thread, NULL, prep_main, db) == 0)
            db->prep_running = true;
        else
            db->prep_failed = true; /* appenders keep growing the file themselves */
    }
    if (db->prep_running) {
        db->prep_seg = seg;
        pthread_cond_signal(&db->prep_cv);
    } else {
        atomic_store(&seg->prep_pending, false);
    }
    pthread_mutex_unlock(&db->grow_mu);
}

void rci_prep_forget(rc_db *db, segment *seg)
{
    pthread_mutex_lock(&db->grow_mu);
    if (db->prep_seg == seg)
        db->prep_seg = NULL;
    atomic_store(&seg->prep_pending, false);
    pthread_mutex_unlock(&db->grow_mu);
}

void rci_prep_stop(rc_db *db)
{
    pthread_mutex_lock(&db->grow_mu);
    db->prep_stop = true;
    bool running = db->prep_running;
    db->prep_running = false;
    pthread_cond_signal(&db->prep_cv);
    pthread_mutex_unlock(&db->grow_mu);
    if (running)
        pthread_join(db->prep_thread, NULL);
}
