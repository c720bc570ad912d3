/* test_keyspace_refs.c — keyspace handles are reference counted and a
 * dropped keyspace leaves nothing behind in memory: its handle goes with its
 * last reference, its catalogue name with the drop (one dropped record is
 * kept, the highest id, so that ids are never given twice). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

static char *dir;
static rc_db *db;

static void open_db(void)
{
    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    open_db();
}

static void teardown(void)
{
    rc_close(db);
    th_rmdir(dir);
}

static rc_stats stats(void)
{
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    return st;
}

TestSuite(ksrefs, .init = setup, .fini = teardown);

Test(ksrefs, released_dropped_keyspaces_leave_nothing_in_memory)
{
    rc_keyspace *keep;
    cr_assert_eq(rc_keyspace_open(db, "keep", RC_KS_CREATE, &keep), 0);
    th_put(db, keep, "k", "v");
    rc_stats st0 = stats();
    enum { CYCLES = 500 };
    char name[32];
    for (int i = 0; i < CYCLES; i++) {
        rc_keyspace *ks;
        snprintf(name, sizeof(name), "b:bucket%04d", i);
        cr_assert_eq(rc_keyspace_open(db, name, RC_KS_CREATE, &ks), 0);
        th_put(db, ks, "key", "value");
        cr_assert_eq(rc_keyspace_drop(db, name), 0);
        rc_value v;
        cr_assert_eq(rc_get(db, ks, "key", 3, &v), RC_ENOKEYSPACE, "a held handle stays safe");
        cr_assert_eq(rc_keyspace_release(db, ks), 0);
    }
    rc_stats st = stats();
    cr_assert_eq(st.dropped_keyspaces, CYCLES);
    cr_assert_eq(st.keyspaces, st0.keyspaces);
    cr_assert_eq(st.keyspace_handles, st0.keyspace_handles, "handles: %llu, before %llu",
                 (unsigned long long)st.keyspace_handles, (unsigned long long)st0.keyspace_handles);
    /* the live names and the one dropped record kept for the highest id */
    cr_assert_eq(st.catalog_entries, st0.catalog_entries + 1, "catalogue: %llu, before %llu",
                 (unsigned long long)st.catalog_entries, (unsigned long long)st0.catalog_entries);
    rc_close(db);
    open_db();
    st = stats();
    cr_assert_eq(st.keyspace_handles, st0.keyspace_handles);
    cr_assert_eq(st.catalog_entries, st0.catalog_entries + 1);
    cr_assert_eq(rc_keyspace_open(db, "keep", 0, &keep), 0);
    cr_assert(th_has(db, keep, "k", "v"));
    cr_assert_eq(rc_keyspace_open(db, "b:bucket0007", 0, &keep), RC_ENOKEYSPACE);
}

Test(ksrefs, a_handle_stays_valid_until_its_last_reference)
{
    rc_keyspace *a, *b;
    cr_assert_eq(rc_keyspace_open(db, "x", RC_KS_CREATE, &a), 0);
    cr_assert_eq(rc_keyspace_open(db, "x", 0, &b), 0);
    cr_assert_eq(a, b);
    rc_keyspace_retain(a);
    uint64_t handles = stats().keyspace_handles;
    cr_assert_eq(rc_keyspace_drop(db, "x"), 0);
    cr_assert_eq(stats().keyspace_handles, handles, "three references are held");
    cr_assert_eq(rc_keyspace_release(db, a), 0);
    cr_assert_eq(rc_keyspace_release(db, b), 0);
    cr_assert_eq(rc_put(db, a, "k", 1, "v", 1, NULL), RC_ENOKEYSPACE);
    cr_assert_str_eq(rc_keyspace_name(a), "x");
    cr_assert_eq(rc_keyspace_release(db, a), 0);
    cr_assert_eq(stats().keyspace_handles, handles - 1, "the last reference freed it");
    /* a live keyspace keeps its handle when every caller released it */
    cr_assert_eq(rc_keyspace_open(db, "y", RC_KS_CREATE, &a), 0);
    th_put(db, a, "k", "v");
    cr_assert_eq(rc_keyspace_release(db, a), 0);
    cr_assert_eq(rc_keyspace_release(db, a), RC_EINVAL, "released more often than opened");
    cr_assert(strstr(rc_last_error_message(), "released more often") != NULL);
    cr_assert_eq(rc_keyspace_open(db, "y", 0, &b), 0);
    cr_assert(th_has(db, b, "k", "v"));
    cr_assert_eq(rc_keyspace_release(db, NULL), 0);
    cr_assert_eq(rc_keyspace_release(db, rc_default_keyspace(db)), RC_EINVAL);
    /* dropping a keyspace nobody holds frees its handle at once */
    cr_assert_eq(rc_keyspace_release(db, b), 0);
    handles = stats().keyspace_handles;
    cr_assert_eq(rc_keyspace_drop(db, "y"), 0);
    cr_assert_eq(stats().keyspace_handles, handles - 1);
}

/* Ids are never given twice, whichever order keyspaces are dropped in: a
 * keyspace made after a reopen (and a merge) never sees a dropped one's
 * records, which would be the case if it got the dropped one's id. */
static void no_id_reuse(bool high_first)
{
    rc_keyspace *lo, *hi, *n;
    cr_assert_eq(rc_keyspace_open(db, "lo", RC_KS_CREATE, &lo), 0);
    cr_assert_eq(rc_keyspace_open(db, "hi", RC_KS_CREATE, &hi), 0);
    th_put(db, lo, "lo-key", "old");
    th_put(db, hi, "hi-key", "old");
    cr_assert_eq(rc_keyspace_drop(db, high_first ? "hi" : "lo"), 0);
    cr_assert_eq(rc_keyspace_drop(db, high_first ? "lo" : "hi"), 0);
    cr_assert_eq(stats().catalog_entries, 1, "one dropped record is kept");
    rc_close(db);
    open_db();
    cr_assert_eq(rc_keyspace_open(db, "lo", 0, &lo), RC_ENOKEYSPACE);
    cr_assert_eq(rc_keyspace_open(db, "hi", 0, &hi), RC_ENOKEYSPACE);
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "n%d", i);
        cr_assert_eq(rc_keyspace_open(db, name, RC_KS_CREATE, &n), 0);
        rc_value v;
        cr_assert_eq(rc_get(db, n, "lo-key", 6, &v), RC_ENOTFOUND, "%s reused an id", name);
        cr_assert_eq(rc_get(db, n, "hi-key", 6, &v), RC_ENOTFOUND, "%s reused an id", name);
    }
    cr_assert_eq(rc_keyspace_drop(db, "n2"), 0);
    cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    rc_close(db);
    open_db();
    cr_assert_eq(rc_keyspace_open(db, "n1", 0, &n), 0);
    cr_assert_eq(rc_keyspace_open(db, "m", RC_KS_CREATE, &n), 0);
    rc_value v;
    cr_assert_eq(rc_get(db, n, "lo-key", 6, &v), RC_ENOTFOUND);
    cr_assert_eq(rc_get(db, n, "hi-key", 6, &v), RC_ENOTFOUND);
    cr_assert_eq(stats().keyspaces, 4, "default, n0, n1, m");
}

Test(ksrefs, ids_are_never_reused_dropping_the_highest_first)
{
    no_id_reuse(true);
}

Test(ksrefs, ids_are_never_reused_dropping_the_lowest_first)
{
    no_id_reuse(false);
}

typedef struct user_arg {
    rc_db *db;
    rc_keyspace *ks; /* a reference of this thread's own */
    int ok, gone, other;
} user_arg;

static void *user(void *p)
{
    user_arg *a = p;
    for (int i = 0; i < 2000; i++) {
        int rc = rc_put(a->db, a->ks, "k", 1, "v", 1, NULL);
        if (rc == 0)
            a->ok++;
        else if (rc == RC_ENOKEYSPACE)
            a->gone++;
        else
            a->other++;
    }
    rc_keyspace_release(a->db, a->ks);
    return NULL;
}

/* Threads keep using their references while the keyspace is dropped and the
 * other references go: no use after free (ASan), only RC_ENOKEYSPACE. */
Test(ksrefs, references_held_by_threads_survive_a_drop)
{
    for (int round = 0; round < 5; round++) {
        rc_keyspace *ks;
        cr_assert_eq(rc_keyspace_open(db, "shared", RC_KS_CREATE, &ks), 0);
        pthread_t t[3];
        user_arg a[3];
        for (int i = 0; i < 3; i++) {
            rc_keyspace_retain(ks);
            a[i] = (user_arg){.db = db, .ks = ks};
            pthread_create(&t[i], NULL, user, &a[i]);
        }
        cr_assert_eq(rc_keyspace_release(db, ks), 0);
        cr_assert_eq(rc_keyspace_drop(db, "shared"), 0);
        for (int i = 0; i < 3; i++) {
            pthread_join(t[i], NULL);
            cr_assert_eq(a[i].other, 0);
            cr_assert_eq(a[i].ok + a[i].gone, 2000);
        }
    }
    cr_assert_eq(stats().keyspace_handles, 2, "the catalogue and default only");
}

typedef struct creator_arg {
    rc_db *db;
    atomic_bool done;
    int made;
} creator_arg;

static void *creator(void *p)
{
    creator_arg *a = p;
    char name[32];
    for (int i = 0; i < 300; i++) {
        rc_keyspace *ks;
        snprintf(name, sizeof(name), "grow%03d", i);
        if (rc_keyspace_open(a->db, name, RC_KS_CREATE, &ks) == 0) {
            a->made++;
            rc_keyspace_release(a->db, ks);
        }
        if (i % 3 == 0) /* some go again: their slots are cleared */
            rc_keyspace_drop(a->db, name);
    }
    atomic_store(&a->done, true);
    return NULL;
}

/* Merges look keyspaces up by id without the keyspace lock while another
 * thread creates hundreds (the id table grows past several sizes) and drops
 * some: the table must never move under a reader (TSan, ASan). */
Test(ksrefs, id_lookups_race_keyspace_creation)
{
    rc_keyspace *data;
    cr_assert_eq(rc_keyspace_open(db, "data", RC_KS_CREATE, &data), 0);
    char key[32], val[200];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    creator_arg a = {.db = db};
    pthread_t t;
    pthread_create(&t, NULL, creator, &a);
    int merges = 0;
    for (int round = 0; round < 400 && (round < 3 || !atomic_load(&a.done)); round++) {
        for (int i = 0; i < 400; i++) { /* about a segment and a half */
            snprintf(key, sizeof(key), "key%03d", i);
            th_put(db, data, key, val);
        }
        cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
        merges++;
    }
    pthread_join(t, NULL);
    cr_assert_eq(a.made, 300);
    cr_assert_gt(merges, 0);
    cr_assert(th_has(db, data, "key399", val));
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "grow299", 0, &ks), 0);
    rc_keyspace_release(db, ks);
    cr_assert_eq(rc_keyspace_open(db, "grow297", 0, &ks), RC_ENOKEYSPACE);
    rc_keyspace_release(db, data);
}

/* Recovery never indexes a dropped keyspace's records (no keydir is built
 * for it, however many came and went): they are dead bytes from the start,
 * counted as before the restart, so that merge reclaims them. */
Test(ksrefs, recovery_counts_dropped_keyspaces_dead_without_indexing_them)
{
    rc_keyspace *keep;
    cr_assert_eq(rc_keyspace_open(db, "keep", RC_KS_CREATE, &keep), 0);
    th_put(db, keep, "k", "v");
    char name[32];
    for (int i = 0; i < 200; i++) {
        rc_keyspace *ks;
        snprintf(name, sizeof(name), "gone%03d", i);
        cr_assert_eq(rc_keyspace_open(db, name, RC_KS_CREATE, &ks), 0);
        th_put(db, ks, "key", "a value of a dropped keyspace");
        cr_assert_eq(rc_keyspace_drop(db, name), 0);
        cr_assert_eq(rc_keyspace_release(db, ks), 0);
    }
    rc_stats before = stats();
    rc_keyspace_release(db, keep);
    rc_close(db);
    open_db();
    rc_stats after = stats();
    cr_assert_eq(after.recovered_keys, before.live_keys, "recovered %llu keys, live before %llu",
                 (unsigned long long)after.recovered_keys, (unsigned long long)before.live_keys);
    /* before: the 200 values count dead since their drops; after: as well */
    cr_assert_geq(after.dead_bytes, before.dead_bytes,
                  "dead bytes %llu after the restart, %llu before",
                  (unsigned long long)after.dead_bytes, (unsigned long long)before.dead_bytes);
    cr_assert_eq(after.keyspace_handles, before.keyspace_handles);
    cr_assert_eq(rc_keyspace_open(db, "keep", 0, &keep), 0);
    cr_assert(th_has(db, keep, "k", "v"));
    cr_assert_eq(rc_keyspace_open(db, "gone007", 0, &keep), RC_ENOKEYSPACE);
    cr_assert_eq(rc_keyspace_open(db, "gone199", 0, &keep), RC_ENOKEYSPACE);
}
