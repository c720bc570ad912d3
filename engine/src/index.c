/*
 * index.c — applying a written record to the keydir, with the accounting
 * that merge and the stats depend on: the replaced record's bytes become dead
 * in its segment, tombstones are dead from birth, and the keyspace's live
 * key/value byte counters follow every change.
 *
 * Called with the key's stripe lock and an epoch held, so the replaced
 * record's segment is still mapped when its header is read for its size.
 */
#include "db.h"
#include "format/record.h"

void rci_index_account_removed(rc_db *db, rc_keyspace *ks, const kd_loc *old, size_t klen)
{
    uint32_t total = 0;
    uint64_t vlen = 0;
    if (rci_record_sizes(db, old, &total, &vlen) == 0) {
        segment *seg = seg_at(&db->segs, old->seg);
        if (seg)
            atomic_fetch_add_explicit(&seg->dead_bytes, total, memory_order_relaxed);
        ks_dead_add(ks, total);
        atomic_fetch_sub_explicit(&ks->live_value_bytes, vlen, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&ks->live_key_bytes, klen, memory_order_relaxed);
}

bool rci_index_apply(rc_db *db, rc_keyspace *ks, uint64_t hash, const log_rec *r,
                     uint64_t user_vlen)
{
    /* the keydir only ever names open segment slots */
    RCI_ASSERT(seg_at(&db->segs, r->seg) != NULL);
    unsigned shard = keydir_shard_of(hash);
    kd_loc old;
    bool had = false;
    rci_keydir_wrlock(ks->kd, shard);
    if (r->flags & FMT_REC_TOMBSTONE) {
        had = rci_keydir_remove(ks->kd, hash, r->key, r->klen, &old);
    } else {
        kd_loc loc = {.seg = r->seg,
                      .off = r->off,
                      .seq = r->seq,
                      .expires_at_ms = (int64_t)r->expires_at_ms};
        if (rci_keydir_put(ks->kd, hash, r->key, r->klen, &loc, &old, &had) != 0) {
            /* The record is on disk but not indexed: it reappears on reopen.
             * Stop taking writes rather than serve a state that differs. */
            atomic_store(&db->write_error, 12 /* ENOMEM */);
        } else if (!had) {
            lc_note_new_key(ks, shard, r->key, r->klen);
        }
    }
    rci_keydir_unlock(ks->kd, shard);
    if (had)
        rci_index_account_removed(db, ks, &old, r->klen);
    if (r->flags & FMT_REC_TOMBSTONE) {
        segment *seg = seg_at(&db->segs, r->seg);
        if (seg)
            atomic_fetch_add_explicit(&seg->dead_bytes, r->total_len, memory_order_relaxed);
        ks_dead_add(ks, r->total_len);
    } else {
        atomic_fetch_add_explicit(&ks->live_value_bytes, user_vlen, memory_order_relaxed);
        atomic_fetch_add_explicit(&ks->live_key_bytes, r->klen, memory_order_relaxed);
    }
    /* an entry the sweeper had not reached yet was already absent */
    return had && !(old.expires_at_ms && db_now_ms(db) >= old.expires_at_ms);
}
