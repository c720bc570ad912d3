/*
 * test_asserts.c — the engine's rule checks (engine/src/check.h) fire on a
 * broken rule and stay silent on a kept one; in a build without RC_ASSERTS
 * they compile to nothing. The rest of the suites run with the checks on
 * (Debug and sanitizer builds), so every test also checks the rules.
 */
#include "db.h"
#include "helpers.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>

#if RC_ASSERTS

Test(asserts, lock_order_kept_is_silent)
{
    RCI_LOCKING(RANK_KS_MU, 0);
    RCI_LOCKING(RANK_STRIPE, 1);
    RCI_LOCKING(RANK_STRIPE, 7);
    RCI_LOCKING(RANK_APPEND_MU, 0);
    RCI_LOCKING(RANK_KEYDIR_SHARD, 3);
    RCI_UNLOCKED(RANK_KEYDIR_SHARD, 3);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    RCI_UNLOCKED(RANK_STRIPE, 7);
    RCI_UNLOCKED(RANK_STRIPE, 1);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    RCI_LOCKING(RANK_APPEND_MU, 0); /* nothing held any more */
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
}

Test(asserts, stripe_after_append_mu_aborts, .signal = SIGABRT)
{
    RCI_LOCKING(RANK_APPEND_MU, 0);
    RCI_LOCKING(RANK_STRIPE, 5);
}

Test(asserts, stripes_descending_abort, .signal = SIGABRT)
{
    RCI_LOCKING(RANK_STRIPE, 9);
    RCI_LOCKING(RANK_STRIPE, 3);
}

Test(asserts, ks_mu_under_a_stripe_aborts, .signal = SIGABRT)
{
    RCI_LOCKING(RANK_STRIPE, 0);
    RCI_LOCKING(RANK_KS_MU, 0);
}

Test(asserts, release_of_unheld_lock_aborts, .signal = SIGABRT)
{
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
}

Test(asserts, try_lock_may_go_against_the_order)
{
    RCI_LOCKING(RANK_APPEND_MU, 0);
    RCI_LOCKED_TRY(RANK_KS_MU, 0);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
}

static rc_db *open_db(char **dir)
{
    rc_options o;
    th_options(&o);
    *dir = th_tmpdir();
    rc_db *db;
    cr_assert_eq(rc_open(*dir, &o, &db), 0);
    return db;
}

Test(asserts, nested_epochs_closed_in_order_are_silent)
{
    char *d1, *d2;
    rc_db *a = open_db(&d1), *b = open_db(&d2);
    epoch_slot *ea = rci_epoch_enter(a);
    epoch_slot *eb = rci_epoch_enter(b);
    rci_epoch_exit(eb);
    rci_epoch_synchronize(b); /* only a's epoch is open */
    rci_epoch_exit(ea);
    rci_epoch_synchronize(a);
    cr_assert_eq(rc_close(a), 0);
    cr_assert_eq(rc_close(b), 0);
    th_rmdir(d1);
    th_rmdir(d2);
}

Test(asserts, epochs_closed_out_of_order_abort, .signal = SIGABRT)
{
    char *d1, *d2;
    rc_db *a = open_db(&d1), *b = open_db(&d2);
    epoch_slot *ea = rci_epoch_enter(a);
    (void)rci_epoch_enter(b);
    rci_epoch_exit(ea);
}

Test(asserts, epoch_exit_without_enter_aborts, .signal = SIGABRT)
{
    char *d;
    rc_db *db = open_db(&d);
    rci_epoch_exit(&db->epochs[0]);
}

/* Without the check this would wait for ever for the thread's own slot. */
Test(asserts, synchronize_inside_own_epoch_aborts, .signal = SIGABRT, .timeout = 60)
{
    char *d;
    rc_db *db = open_db(&d);
    (void)rci_epoch_enter(db);
    rci_epoch_synchronize(db);
}

Test(asserts, the_engine_keeps_its_rules_while_working)
{
    char *d;
    rc_db *db = open_db(&d);
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "other", RC_KS_CREATE, &ks), 0);
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        th_put(db, i % 2 ? ks : NULL, k, "value");
    }
    rc_op ops[3] = {
        {.kind = RC_OP_PUT, .key = "a", .klen = 1, .val = "1", .vlen = 1, .type = RC_TYPE_INT},
        {.kind = RC_OP_INCR, .ks = ks, .key = "b", .klen = 1, .by = {.type = RC_TYPE_INT, .i = 2}},
        {.kind = RC_OP_GET, .key = "a", .klen = 1},
    };
    cr_assert_eq(rc_apply(db, ops, 3, NULL), 0);
    for (int i = 0; i < 3; i++)
        rc_value_free(&ops[i].result);
    cr_assert_eq(rc_merge(db), 0);
    cr_assert_eq(rc_keyspace_drop(db, "other"), 0);
    cr_assert_eq(rc_close(db), 0);
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(d, &o, &db), 0); /* recovery: scans and batch framing */
    cr_assert_eq(th_has(db, NULL, "k000", "value"), 1);
    cr_assert_eq(rc_close(db), 0);
    th_rmdir(d);
}

#else

/* Release-style build: the checks are compiled out and cost nothing. */
Test(asserts, compiled_out_without_rc_asserts)
{
    RCI_LOCKING(RANK_APPEND_MU, 0);
    RCI_LOCKING(RANK_STRIPE, 5); /* would abort with RC_ASSERTS */
    RCI_UNLOCKED(RANK_KS_MU, 0);
    RCI_ASSERT(0);
}

#endif
