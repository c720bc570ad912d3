/*
 * apply.c — rc_apply: every write, alone or in an atomic batch.
 *
 * 1. apply_validate: every op (sizes, kinds, keyspaces) before touching
 *    anything.
 * 2. apply_lock: the key stripes of every key involved, in ascending order.
 *    Holding them makes the batch's reads and writes atomic with respect to
 *    every other writer and to every multi-key read (which takes the same
 *    stripes).
 * 3. apply_evaluate: the ops in order against the current state seen through
 *    an overlay of the batch's own earlier writes: conditions, increments,
 *    appends. The first failing op aborts the batch with nothing written.
 * 4. apply_append_publish: the resulting records as one framed run (log.c),
 *    into the keydir; then rc_apply releases the stripes and waits for
 *    durability outside the locks so that one fdatasync covers many writers
 *    (group commit). rc_apply_async stops here and hands the wait to the
 *    completion thread (commit.c), which calls back once it is durable.
 *
 * Values at or above compress_min_bytes are zstd-compressed when that saves
 * space. A writer's new value is visible to readers as soon as the keydir
 * is updated, which may be just before its fdatasync completes.
 */
#include "db.h"
#include "format/compress.h"
#include "format/record.h"
#include "numeric.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending {
    size_t op; /* index of the op that produced it */
    rc_keyspace *ks;
    uint64_t hash;
    log_rec rec;
    const void *plain; /* the uncompressed value, for later ops' overlay */
    size_t plain_len;
    uint64_t user_vlen;
    void *owned_plain; /* computed values (incr/append) */
    void *owned_disk;  /* compressed bytes */
} pending;

typedef struct key_state {
    bool exists;
    uint64_t seq;
    rc_type type;
    int64_t expires_at_ms;
    const void *data;
    size_t len;
    rc_value fetched; /* owns data when read from the store */
} key_state;

typedef struct batch_ctx {
    rc_db *db;
    rc_op *ops;
    size_t n;
    rc_keyspace **ks; /* resolved keyspace per op */
    uint64_t *hash;
    pending *pend;
    size_t npend;
    uint32_t *overlay; /* open-addressed index into pend (+1), 0 = empty */
    size_t overlay_cap;
    int64_t now;
} batch_ctx;

static bool is_write(rc_op_kind k)
{
    return k != RC_OP_GET;
}

static int validate_op(rc_db *db, rc_op *op)
{
    if (!op->key || op->klen == 0 || op->klen > RC_KEY_MAX)
        return rc_fail(RC_EKEYSIZE, "key length %zu is outside 1..%u", op->klen, RC_KEY_MAX);
    if ((unsigned)op->kind > RC_OP_GET)
        return rc_fail(RC_EINVAL, "unknown op kind %d", (int)op->kind);
    if ((unsigned)op->cond > RC_IF_PRESENT)
        return rc_fail(RC_EINVAL, "unknown condition %d", (int)op->cond);
    if (op->kind == RC_OP_PUT || op->kind == RC_OP_APPEND || op->kind == RC_OP_GETSET) {
        if (op->vlen > RC_VALUE_MAX)
            return rc_fail(RC_EVALUESIZE, "value of %zu bytes is over the %u-byte limit", op->vlen,
                           RC_VALUE_MAX);
        if (op->vlen && !op->val)
            return rc_fail(RC_EINVAL, "value pointer is NULL");
        if ((unsigned)op->type > RC_TYPE_JSON)
            return rc_fail(RC_EINVAL, "unknown value type %d", (int)op->type);
    }
    if (op->kind == RC_OP_INCR && op->by.type != RC_TYPE_INT && op->by.type != RC_TYPE_FLOAT)
        return rc_fail(RC_EINVAL, "increment must be an int or a float");
    if (op->kind == RC_OP_INCR && op->by.type == RC_TYPE_FLOAT && !isfinite(op->by.f))
        return rc_fail(RC_EINVAL, "increment is not a finite number");
    if (op->ttl_ms < RC_TTL_NONE)
        return rc_fail(RC_EINVAL, "ttl_ms %lld is negative", (long long)op->ttl_ms);
    (void)db;
    return 0;
}

/* ---- overlay of the batch's own writes */

static size_t overlay_slot(batch_ctx *b, uint32_t ks_id, uint64_t hash)
{
    return (size_t)((hash ^ ks_id) & (b->overlay_cap - 1));
}

static pending *overlay_find(batch_ctx *b, rc_keyspace *ks, uint64_t hash, const void *key,
                             size_t klen)
{
    if (!b->overlay)
        return NULL;
    for (size_t i = overlay_slot(b, ks->id, hash);; i = (i + 1) & (b->overlay_cap - 1)) {
        uint32_t v = b->overlay[i];
        if (!v)
            return NULL;
        pending *p = &b->pend[v - 1];
        if (p->ks == ks && p->hash == hash && p->rec.klen == klen &&
            memcmp(p->rec.key, key, klen) == 0)
            return p;
    }
}

static void overlay_set(batch_ctx *b, size_t pidx)
{
    if (!b->overlay)
        return;
    pending *p = &b->pend[pidx];
    for (size_t i = overlay_slot(b, p->ks->id, p->hash);; i = (i + 1) & (b->overlay_cap - 1)) {
        uint32_t v = b->overlay[i];
        if (!v) {
            b->overlay[i] = (uint32_t)pidx + 1;
            return;
        }
        pending *q = &b->pend[v - 1];
        if (q->ks == p->ks && q->hash == p->hash && q->rec.klen == p->rec.klen &&
            memcmp(q->rec.key, p->rec.key, p->rec.klen) == 0) {
            b->overlay[i] = (uint32_t)pidx + 1; /* newest write wins */
            return;
        }
    }
}

/* The key's state as the batch sees it at this op. */
static int current_state(batch_ctx *b, size_t i, bool want_value, bool through_overlay,
                         key_state *st)
{
    rc_op *op = &b->ops[i];
    memset(st, 0, sizeof(*st));
    if (through_overlay) {
        pending *p = overlay_find(b, b->ks[i], b->hash[i], op->key, op->klen);
        if (p) {
            st->exists = !(p->rec.flags & FMT_REC_TOMBSTONE);
            /* not assigned yet: no compare-and-swap can name it, and it must
             * not pass for "absent" (seq 0) either */
            st->seq = st->exists ? UINT64_MAX : 0;
            st->type = (rc_type)((p->rec.flags & FMT_REC_TYPE_MASK) >> FMT_REC_TYPE_SHIFT);
            st->expires_at_ms = (int64_t)p->rec.expires_at_ms;
            st->data = p->plain;
            st->len = p->plain_len;
            return 0;
        }
    }
    int err =
        rci_read_key(b->db, b->ks[i], b->hash[i], op->key, op->klen, &st->fetched, want_value);
    if (err == RC_ENOTFOUND)
        return 0;
    if (err)
        return err;
    st->exists = true;
    st->seq = st->fetched.seq;
    st->type = st->fetched.type;
    st->expires_at_ms = st->fetched.expires_at_ms;
    st->data = st->fetched.data;
    st->len = st->fetched.len;
    return 0;
}

static int check_cond(const rc_op *op, const key_state *st)
{
    switch (op->cond) {
    case RC_IF_ABSENT:
        if (st->exists)
            return rc_fail(RC_EEXISTS, "key exists");
        break;
    case RC_IF_SEQ:
        if ((st->exists ? st->seq : 0) != op->if_seq)
            return rc_fail(RC_ECONFLICT, "current sequence %llu, expected %llu",
                           (unsigned long long)(st->exists ? st->seq : 0),
                           (unsigned long long)op->if_seq);
        break;
    case RC_IF_PRESENT:
        if (!st->exists)
            return rc_fail(RC_ENOTFOUND, "key is absent");
        break;
    case RC_IF_ANY:
        break;
    }
    return 0;
}

static int expiry_for(batch_ctx *b, size_t i, const key_state *st, bool keep_existing,
                      uint64_t *out)
{
    rc_op *op = &b->ops[i];
    int64_t ttl = op->ttl_ms;
    if (ttl == RC_TTL_NONE) {
        *out = 0;
        return 0;
    }
    if (ttl == RC_TTL_DEFAULT) {
        if (keep_existing && st->exists) {
            *out = (uint64_t)st->expires_at_ms;
            return 0;
        }
        ttl = atomic_load(&b->ks[i]->default_ttl_ms);
        if (ttl <= 0) {
            *out = 0;
            return 0;
        }
    }
    if (b->now == 0)
        b->now = db_now_ms(b->db);
    if (ttl > INT64_MAX - b->now)
        return rc_fail(RC_EINVAL, "ttl of %lld ms overflows the clock", (long long)ttl);
    *out = (uint64_t)(b->now + ttl);
    return 0;
}

static int copy_result(rc_value *dst, const void *data, size_t len, rc_type type, uint64_t seq,
                       int64_t exp)
{
    dst->data = malloc(len + 1);
    if (!dst->data)
        return RC_ENOMEM;
    if (len)
        memcpy(dst->data, data, len);
    ((char *)dst->data)[len] = 0;
    dst->len = len;
    dst->type = type;
    dst->seq = seq;
    dst->expires_at_ms = exp;
    return 0;
}

/* Compute the record an op writes into a new pending entry. */
static int evaluate_write(batch_ctx *b, size_t i)
{
    rc_op *op = &b->ops[i];
    key_state st;
    bool need_value =
        op->kind == RC_OP_INCR || op->kind == RC_OP_APPEND || op->kind == RC_OP_GETSET;
    int err = 0;
    pending *p = NULL;
    if (op->kind == RC_OP_PUT && op->cond == RC_IF_ANY)
        memset(&st, 0, sizeof(st)); /* a blind write needs no read */
    else
        err = current_state(b, i, need_value, true, &st);
    if (err)
        return err;
    err = check_cond(op, &st);
    if (err)
        goto out;
    p = &b->pend[b->npend];
    memset(p, 0, sizeof(*p));
    p->op = i;
    p->ks = b->ks[i];
    p->hash = b->hash[i];
    p->rec.ks = b->ks[i]->id;
    p->rec.key = op->key;
    p->rec.klen = (uint32_t)op->klen;
    rc_type type = op->type;
    const void *val = op->val;
    size_t vlen = op->vlen;
    uint64_t exp = 0;

    switch (op->kind) {
    case RC_OP_DELETE:
        if (!st.exists)
            goto out; /* nothing to write; result seq 0 tells it was absent */
        p->rec.flags = FMT_REC_TOMBSTONE;
        break;
    case RC_OP_PUT:
    case RC_OP_GETSET:
        err = expiry_for(b, i, &st, false, &exp);
        if (err)
            goto out;
        if (op->kind == RC_OP_GETSET && st.exists) {
            err = copy_result(&op->result, st.data, st.len, st.type, st.seq, st.expires_at_ms);
            if (err)
                goto out;
        }
        break;
    case RC_OP_INCR: {
        num_value cur = {.is_float = false, .i = 0};
        if (st.exists) {
            if (st.type != RC_TYPE_INT && st.type != RC_TYPE_FLOAT) {
                err = rc_fail(RC_ETYPE, "increment of a %s value",
                              st.type == RC_TYPE_JSON ? "JSON" : "raw");
                goto out;
            }
            if (rci_num_parse(st.data, st.len, &cur) != 0) {
                err = rc_fail(RC_ETYPE, "stored number does not parse");
                goto out;
            }
        }
        num_value by = {.is_float = op->by.type == RC_TYPE_FLOAT, .i = op->by.i, .f = op->by.f};
        num_value res;
        err = rci_num_add(&cur, &by, &res);
        if (err)
            goto out;
        p->owned_plain = malloc(NUM_TEXT_MAX);
        if (!p->owned_plain) {
            err = RC_ENOMEM;
            goto out;
        }
        vlen = rci_num_format(&res, p->owned_plain);
        val = p->owned_plain;
        type = res.is_float ? RC_TYPE_FLOAT : RC_TYPE_INT;
        err = expiry_for(b, i, &st, true, &exp);
        if (err)
            goto out;
        break;
    }
    case RC_OP_APPEND: {
        if (st.exists && (st.type == RC_TYPE_INT || st.type == RC_TYPE_FLOAT)) {
            err = rc_fail(RC_ETYPE, "append to a number");
            goto out;
        }
        size_t base = st.exists ? st.len : 0;
        if (base + op->vlen > RC_VALUE_MAX) {
            err = rc_fail(RC_EVALUESIZE, "appended value would be %zu bytes", base + op->vlen);
            goto out;
        }
        p->owned_plain = malloc(base + op->vlen + 1);
        if (!p->owned_plain) {
            err = RC_ENOMEM;
            goto out;
        }
        if (base)
            memcpy(p->owned_plain, st.data, base);
        if (op->vlen)
            memcpy((char *)p->owned_plain + base, op->val, op->vlen);
        val = p->owned_plain;
        vlen = base + op->vlen;
        type = st.exists ? st.type : RC_TYPE_RAW;
        err = expiry_for(b, i, &st, true, &exp);
        if (err)
            goto out;
        break;
    }
    case RC_OP_GET:
        break;
    }
    if (op->kind != RC_OP_DELETE) {
        /* every write that leaves a value (a put, an append, an increment's
         * text) keeps to the keyspace's limit: the batch fails, nothing applies */
        uint64_t limit = atomic_load(&b->ks[i]->max_value);
        if (limit != 0 && vlen > limit) {
            err = rc_fail(RC_EVALUESIZE, "the value would be %zu bytes, over this keyspace's %llu",
                          vlen, (unsigned long long)limit);
            goto out;
        }
        p->rec.flags = (uint8_t)((unsigned)type << FMT_REC_TYPE_SHIFT);
        p->rec.expires_at_ms = exp;
        p->plain = val;
        p->plain_len = vlen;
        p->user_vlen = vlen;
        p->rec.val = val;
        p->rec.vlen = (uint32_t)vlen;
        uint32_t min = b->db->opt.compress_min_bytes;
        if (min && vlen >= min) {
            size_t cap = fmt_compress_bound(vlen);
            p->owned_disk = malloc(cap);
            size_t c = p->owned_disk
                           ? fmt_compress(p->owned_disk, cap, val, vlen, b->db->opt.compress_level)
                           : 0;
            if (c) {
                p->rec.val = p->owned_disk;
                p->rec.vlen = (uint32_t)c;
                p->rec.flags |= FMT_REC_COMPRESSED;
            }
        }
    }
    overlay_set(b, b->npend);
    b->npend++;
out:
    if (err)
        rc_value_free(&op->result);
    if (err && p != NULL) {
        /* the entry is not kept (npend not advanced): its buffers go now */
        free(p->owned_plain);
        free(p->owned_disk);
        p->owned_plain = p->owned_disk = NULL;
    }
    rc_value_free(&st.fetched);
    return err;
}

static int evaluate_get(batch_ctx *b, size_t i)
{
    rc_op *op = &b->ops[i];
    int err = rci_read_key(b->db, b->ks[i], b->hash[i], op->key, op->klen, &op->result, true);
    if (err == RC_ENOTFOUND) {
        memset(&op->result, 0, sizeof(op->result));
        return 0;
    }
    return err;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void free_pending(batch_ctx *b)
{
    for (size_t i = 0; i < b->npend; i++) {
        free(b->pend[i].owned_plain);
        free(b->pend[i].owned_disk);
    }
}

/* Step 1: reset every op's outputs, validate it, resolve its keyspace, hash
 * its key and note its stripe; refuse writes to a read-only database. On
 * failure *BAD is the failing op (ops[*BAD].status its error). */
static int apply_validate(batch_ctx *b, uint32_t *stripes, bool *writes, size_t *bad)
{
    rc_db *db = b->db;
    rc_op *ops = b->ops;
    *writes = false;
    for (size_t i = 0; i < b->n; i++) {
        memset(&ops[i].result, 0, sizeof(ops[i].result));
        ops[i].seq = 0;
        ops[i].status = 0;
        ops[i].existed = false;
        int err = validate_op(db, &ops[i]);
        if (!err) {
            b->ks[i] = rci_ks_resolve(db, ops[i].ks);
            if (!b->ks[i])
                err = rc_fail(RC_ENOKEYSPACE, "the keyspace was dropped");
        }
        if (err) {
            *bad = i;
            ops[i].status = err;
            return err;
        }
        b->hash[i] = rci_keydir_hash(ops[i].key, ops[i].klen);
        stripes[i] = stripe_of(b->ks[i]->id, b->hash[i]);
        *writes |= is_write(ops[i].kind);
    }
    if (*writes && (db->opt.read_only || atomic_load(&db->write_error)))
        return rc_fail(RC_EREADONLY, db->opt.read_only ? "the database was opened read-only"
                                                       : "an earlier fdatasync failed: the "
                                                         "database is read-only until reopened");
    return 0;
}

/* The distinct stripes of a batch, locked in ascending order. */
typedef struct stripe_locks {
    uint32_t small[8];
    uint32_t *order;
    size_t n;
} stripe_locks;

/* Step 2: lock the distinct stripes of STRIPES[0..N) in ascending order. */
static int apply_lock(rc_db *db, const uint32_t *stripes, size_t n, stripe_locks *l)
{
    l->order = n <= 8 ? l->small : malloc(n * sizeof(*l->order));
    if (!l->order)
        return RC_ENOMEM;
    memcpy(l->order, stripes, n * sizeof(*l->order));
    qsort(l->order, n, sizeof(*l->order), cmp_u32);
    l->n = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || l->order[i] != l->order[i - 1])
            l->order[l->n++] = l->order[i];
    for (size_t i = 0; i < l->n; i++) {
        RCI_LOCKING(RANK_STRIPE, l->order[i]);
        pthread_mutex_lock(&db->stripes[l->order[i]]);
    }
    return 0;
}

static void apply_unlock(rc_db *db, stripe_locks *l)
{
    for (size_t i = l->n; i-- > 0;) {
        pthread_mutex_unlock(&db->stripes[l->order[i]]);
        RCI_UNLOCKED(RANK_STRIPE, l->order[i]);
    }
    if (l->order != l->small)
        free(l->order);
}

/* Step 3: evaluate the ops in order; the first failure stops (*BAD). */
static int apply_evaluate(batch_ctx *b, size_t *bad)
{
    for (size_t i = 0; i < b->n; i++) {
        rc_op *op = &b->ops[i];
        int err = op->kind == RC_OP_GET ? evaluate_get(b, i) : evaluate_write(b, i);
        if (err) {
            *bad = i;
            op->status = err;
            return err;
        }
    }
    return 0;
}

/* Step 4, under the locks: the pending records' results once appended. */
static int publish_one(batch_ctx *b, pending *p)
{
    rc_op *op = &b->ops[p->op];
    rc_type type = (rc_type)((p->rec.flags & FMT_REC_TYPE_MASK) >> FMT_REC_TYPE_SHIFT);
    int err = 0;
    op->existed = rci_index_apply(b->db, p->ks, p->hash, &p->rec, p->user_vlen);
    op->seq = p->rec.seq;
    if (op->kind == RC_OP_PUT) {
        op->result.type = type;
        op->result.seq = p->rec.seq;
        op->result.expires_at_ms = (int64_t)p->rec.expires_at_ms;
    }
    if (op->kind == RC_OP_INCR || op->kind == RC_OP_APPEND)
        err = copy_result(&op->result, p->plain, p->plain_len, type, p->rec.seq,
                          (int64_t)p->rec.expires_at_ms);
    int which = op->kind == RC_OP_PUT ? CNT_PUT : op->kind == RC_OP_DELETE ? CNT_DEL : CNT_OP;
    ks_count(p->ks, which, 1);
    return err;
}

/* Step 4, under the locks: append the pending records as one framed run,
 * publish them in the keydir and fill the ops' results. *LSN is what
 * durability waits for, after the locks are released. */
static int apply_append_publish(batch_ctx *b, uint64_t *lsn)
{
    log_rec recs_small[4];
    log_rec *recs = b->npend <= 4 ? recs_small : malloc(b->npend * sizeof(*recs));
    if (!recs)
        return RC_ENOMEM;
    for (size_t k = 0; k < b->npend; k++)
        recs[k] = b->pend[k].rec;
    int err = rci_log_append(b->db, recs, b->npend, lsn);
    if (!err) {
        for (size_t k = 0; k < b->npend; k++) {
            b->pend[k].rec = recs[k];
            int perr = publish_one(b, &b->pend[k]);
            if (perr)
                err = perr;
        }
        if (b->npend > 1)
            atomic_fetch_add_explicit(&b->db->batches, 1, memory_order_relaxed);
    }
    if (recs != recs_small)
        free(recs);
    return err;
}

/* Tell the commit listener what this batch wrote (rc_set_commit_listener). */
static void notify_commit(rc_db *db, const rc_op *ops, size_t n)
{
    rc_commit c = {.ops = ops, .n = n};
    for (size_t i = 0; i < n; i++)
        if (ops[i].seq > c.last_seq)
            c.last_seq = ops[i].seq;
    if (c.last_seq)
        db->commit_fn(db->commit_ctx, &c);
}

int rc_set_commit_listener(rc_db *db, rc_commit_fn fn, void *ctx)
{
    rci_error_clear();
    if (!db)
        return rc_fail(RC_EINVAL, "NULL database");
    db->commit_fn = fn;
    db->commit_ctx = fn ? ctx : NULL;
    return 0;
}

uint64_t rc_last_seq(rc_db *db)
{
    return db ? atomic_load_explicit(&db->last_seq, memory_order_acquire) : 0;
}

/* Steps 1-4 of rc_apply, without the wait: *LSN (0 when nothing was
 * written) is what durability waits for. */
static int apply_run(rc_db *db, rc_op *ops, size_t n, size_t *failed, uint64_t *lsn_out)
{
    *lsn_out = 0;
    if (!db || (!ops && n))
        return rc_fail(RC_EINVAL, "NULL database or ops");
    if (n == 0)
        return 0;
    if (n > RC_BATCH_MAX)
        return rc_fail(RC_ELIMIT, "%zu ops in one batch, the limit is %u", n, RC_BATCH_MAX);
    size_t bad = 0;
    int err = 0;
    /* one allocation for the per-op arrays */
    size_t overlay_cap = 0;
    if (n > 1) {
        overlay_cap = 8;
        while (overlay_cap < 2 * n)
            overlay_cap *= 2;
    }
    size_t bytes =
        n * (sizeof(rc_keyspace *) + sizeof(uint64_t) + sizeof(pending) + sizeof(uint32_t)) +
        overlay_cap * sizeof(uint32_t);
    /* small batches (most calls are single ops) use the stack */
    _Alignas(16) char small[4 * (sizeof(pending) + sizeof(rc_keyspace *) + 2 * sizeof(uint64_t) +
                                 2 * sizeof(uint32_t)) +
                            16 * sizeof(uint32_t)];
    char *mem = small;
    if (bytes <= sizeof(small))
        memset(small, 0, bytes);
    else if (!(mem = calloc(1, bytes)))
        return RC_ENOMEM;
    batch_ctx b = {.db = db, .ops = ops, .n = n, .overlay_cap = overlay_cap};
    b.pend = (pending *)mem;
    b.ks = (rc_keyspace **)(b.pend + n);
    b.hash = (uint64_t *)(b.ks + n);
    uint32_t *stripes = (uint32_t *)(b.hash + n);
    b.overlay = overlay_cap ? stripes + n : NULL;

    epoch_slot *ep = rci_epoch_enter(db);
    bool writes = false;
    err = apply_validate(&b, stripes, &writes, &bad);
    if (err)
        goto done;
    /* count this writer in until its records are appended (group commit:
     * a sync leader waits briefly for such writers to join its sync) */
    bool counted = writes && db->opt.sync == RC_SYNC_ALWAYS;
    if (counted)
        atomic_fetch_add_explicit(&db->appending, 1, memory_order_acq_rel);
    stripe_locks locks;
    err = apply_lock(db, stripes, n, &locks);
    if (err) {
        if (counted)
            atomic_fetch_sub_explicit(&db->appending, 1, memory_order_acq_rel);
        goto done;
    }
    err = apply_evaluate(&b, &bad);
    uint64_t lsn = 0;
    if (!err && b.npend) {
        err = apply_append_publish(&b, &lsn);
        if (err)
            bad = 0;
    }
    if (counted) {
        atomic_fetch_sub_explicit(&db->appending, 1, memory_order_acq_rel);
        rci_log_group_poke(db);
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i].kind == RC_OP_GET)
            ks_count(b.ks[i], CNT_GET, 1);
    apply_unlock(db, &locks);
    rci_epoch_exit(ep);
    ep = NULL;
    if (!err)
        *lsn_out = lsn;
    /* visible now (as to any reader), durable when the caller's wait ends */
    if (!err && b.npend && db->commit_fn)
        notify_commit(db, ops, n);
done:
    if (ep)
        rci_epoch_exit(ep);
    free_pending(&b);
    if (err) {
        for (size_t i = 0; i < n; i++)
            rc_value_free(&ops[i].result);
        if (failed)
            *failed = bad;
    }
    if (mem != small)
        free(mem);
    return err;
}

int rc_apply(rc_db *db, rc_op *ops, size_t n, size_t *failed)
{
    rci_error_clear();
    uint64_t lsn = 0;
    int err = apply_run(db, ops, n, failed, &lsn);
    if (!err && lsn)
        err = rci_log_wait(db, lsn);
    if (err && lsn) {
        /* applied but not durable: the same answer as before the split */
        for (size_t i = 0; i < n; i++)
            rc_value_free(&ops[i].result);
        if (failed)
            *failed = 0;
    }
    return err;
}

int rc_apply_async(rc_db *db, rc_op *ops, size_t n, size_t *failed, rc_durable_fn done, void *ctx)
{
    rci_error_clear();
    if (!done)
        return rc_fail(RC_EINVAL, "rc_apply_async needs a completion callback");
    uint64_t lsn = 0;
    int err = apply_run(db, ops, n, failed, &lsn);
    if (err)
        return err;
    rci_commit_complete(db, lsn, done, ctx);
    return 0;
}

/* ---- single-key conveniences */

int rc_put(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, const void *val, size_t vlen,
           uint64_t *seq)
{
    rci_error_clear();
    rc_op op = {.kind = RC_OP_PUT, .ks = ks, .key = key, .klen = klen, .val = val, .vlen = vlen};
    int err = rc_apply(db, &op, 1, NULL);
    if (!err && seq)
        *seq = op.seq;
    return err;
}

int rc_delete(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, uint64_t *seq)
{
    rci_error_clear();
    rc_op op = {.kind = RC_OP_DELETE, .ks = ks, .key = key, .klen = klen, .cond = RC_IF_PRESENT};
    int err = rc_apply(db, &op, 1, NULL);
    if (!err && seq)
        *seq = op.seq;
    return err;
}

static int get_common(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_value *out,
                      bool want)
{
    if (!db || !out)
        return rc_fail(RC_EINVAL, "NULL database or output");
    memset(out, 0, sizeof(*out));
    if (!key || klen == 0 || klen > RC_KEY_MAX)
        return rc_fail(RC_EKEYSIZE, "key length %zu is outside 1..%u", klen, RC_KEY_MAX);
    epoch_slot *ep = rci_epoch_enter(db);
    rc_keyspace *k = rci_ks_resolve(db, ks);
    int err;
    if (!k) {
        err = rc_fail(RC_ENOKEYSPACE, "the keyspace was dropped");
    } else {
        err = rci_read_key(db, k, rci_keydir_hash(key, klen), key, klen, out, want);
        ks_count(k, CNT_GET, 1);
    }
    rci_epoch_exit(ep);
    return err;
}

int rc_get(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_value *out)
{
    rci_error_clear();
    return get_common(db, ks, key, klen, out, true);
}

int rc_get_meta(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_value *out)
{
    rci_error_clear();
    return get_common(db, ks, key, klen, out, false);
}

int rc_get_view(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_view_fn fn, void *ctx)
{
    rci_error_clear();
    if (!db || !fn)
        return rc_fail(RC_EINVAL, "NULL database or callback");
    if (!key || klen == 0 || klen > RC_KEY_MAX)
        return rc_fail(RC_EKEYSIZE, "key length %zu is outside 1..%u", klen, RC_KEY_MAX);
    epoch_slot *ep = rci_epoch_enter(db);
    rc_keyspace *k = rci_ks_resolve(db, ks);
    int err;
    if (!k) {
        err = rc_fail(RC_ENOKEYSPACE, "the keyspace was dropped");
    } else {
        ks_count(k, CNT_GET, 1);
        err = rci_read_key_view(db, k, rci_keydir_hash(key, klen), key, klen, fn, ctx);
    }
    rci_epoch_exit(ep);
    return err;
}
