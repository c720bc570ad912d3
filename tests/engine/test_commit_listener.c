/*
 * test_commit_listener.c — rc_set_commit_listener and rc_last_seq: what a
 * listener hears from rc_apply (the ops, their seqs, nothing for failed or
 * read-only batches) and from rc_load ("anything up to seq S").
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

typedef struct heard {
    int calls;
    size_t n;
    bool ops_null;
    uint64_t last_seq;
    uint64_t seqs[8];
    char keys[8][16];
    const char *ks_names[8];
} heard;

static void listen_fn(void *ctx, const rc_commit *c)
{
    heard *h = ctx;
    h->calls++;
    h->n = c->n;
    h->ops_null = c->ops == NULL;
    h->last_seq = c->last_seq;
    for (size_t i = 0; i < c->n && i < 8; i++) {
        h->seqs[i] = c->ops[i].seq;
        size_t k = c->ops[i].klen < 15 ? c->ops[i].klen : 15;
        memcpy(h->keys[i], c->ops[i].key, k);
        h->keys[i][k] = '\0';
        h->ks_names[i] = c->ops[i].ks ? rc_keyspace_name(c->ops[i].ks) : NULL;
    }
}

Test(commit_listener, hears_every_write_with_its_seq_and_nothing_else)
{
    char *dir = th_tmpdir();
    rc_options o;
    th_options(&o);
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    cr_assert_eq(rc_last_seq(db), 0);
    cr_assert_eq(rc_last_seq(NULL), 0);
    heard h = {0};
    cr_assert_eq(rc_set_commit_listener(NULL, listen_fn, &h), RC_EINVAL);
    cr_assert_eq(rc_set_commit_listener(db, listen_fn, &h), 0);
    rc_keyspace *ks = NULL;
    cr_assert_eq(rc_keyspace_open(db, "users", RC_KS_CREATE, &ks), 0);
    int before = h.calls; /* creating a keyspace may write its own record */
    uint64_t seq = 0;
    cr_assert_eq(rc_put(db, ks, "a", 1, "1", 1, &seq), 0);
    cr_assert_eq(h.calls, before + 1);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.seqs[0], seq);
    cr_assert_eq(h.last_seq, seq);
    cr_assert_eq(rc_last_seq(db), seq);
    cr_assert_str_eq(h.keys[0], "a");
    cr_assert_str_eq(h.ks_names[0], "users");

    /* a batch: one call, every op, the highest seq */
    rc_op ops[3] = {
        {.kind = RC_OP_PUT, .key = "b", .klen = 1, .val = "2", .vlen = 1},
        {.kind = RC_OP_GET, .ks = ks, .key = "a", .klen = 1},
        {.kind = RC_OP_DELETE, .ks = ks, .key = "a", .klen = 1},
    };
    cr_assert_eq(rc_apply(db, ops, 3, NULL), 0);
    rc_value_free(&ops[1].result);
    cr_assert_eq(h.calls, before + 2);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(h.seqs[1], 0); /* the read wrote nothing */
    cr_assert_gt(h.seqs[2], h.seqs[0]);
    cr_assert_eq(h.last_seq, h.seqs[2]);
    cr_assert_eq(rc_last_seq(db), h.last_seq);

    /* a failed batch and a read-only one: not heard */
    rc_op bad = {.kind = RC_OP_PUT,
                 .ks = ks,
                 .key = "c",
                 .klen = 1,
                 .val = "x",
                 .vlen = 1,
                 .cond = RC_IF_SEQ,
                 .if_seq = 12345};
    cr_assert_eq(rc_apply(db, &bad, 1, NULL), RC_ECONFLICT);
    rc_op get = {.kind = RC_OP_GET, .ks = ks, .key = "b", .klen = 1};
    cr_assert_eq(rc_apply(db, &get, 1, NULL), 0);
    rc_value_free(&get.result);
    cr_assert_eq(rc_delete(db, ks, "zz", 2, NULL), RC_ENOTFOUND);
    cr_assert_eq(h.calls, before + 2);

    /* a loaded stream: one call, no ops, up to its last seq */
    th_membuf m = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(db, 0, th_mem_write, &m, NULL, NULL, &info), 0);
    char *dir2 = th_tmpdir();
    rc_db *db2 = NULL;
    cr_assert_eq(rc_open(dir2, &o, &db2), 0);
    heard h2 = {0};
    cr_assert_eq(rc_set_commit_listener(db2, listen_fn, &h2), 0);
    cr_assert_eq(rc_load(db2, th_mem_read, &m, NULL, NULL, &info), 0);
    cr_assert_eq(h2.calls, 1);
    cr_assert(h2.ops_null);
    cr_assert_eq(h2.n, 0);
    cr_assert_eq(h2.last_seq, rc_last_seq(db2));
    cr_assert_eq(rc_last_seq(db2), rc_last_seq(db));
    /* the same stream again is a no-op: not heard */
    m.pos = 0;
    cr_assert_eq(rc_load(db2, th_mem_read, &m, NULL, NULL, &info), RC_ENOTEMPTY);
    cr_assert_eq(h2.calls, 1);

    /* removed: silence */
    cr_assert_eq(rc_set_commit_listener(db, NULL, NULL), 0);
    cr_assert_eq(rc_put(db, ks, "d", 1, "4", 1, NULL), 0);
    cr_assert_eq(h.calls, before + 2);
    free(m.p);
    rc_close(db2);
    rc_close(db);
    th_rmdir(dir2);
    th_rmdir(dir);
}
