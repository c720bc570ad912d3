/*
 * test_backup_identity.c — kvdump/kvload as binaries and database identity:
 * an incremental that is not from the target's history (another database,
 * a target that diverged by a local write, a version 1 stream naming no
 * database) is refused with exit 8, says which case, and leaves the target
 * directory byte for byte as it was; chains in order and restores of
 * restores work; streams go through pipes (tape) and describe themselves.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcask.h"
#include "tool_proc.h"

static char *workdir;

static void make_workdir(void)
{
    workdir = tp_tempdir();
    cr_assert(workdir);
}

static void remove_workdir(void)
{
    tp_rmtree(workdir);
    free(workdir);
}

TestSuite(backup_identity, .init = make_workdir, .fini = remove_workdir, .timeout = 120);

static char *path_in(const char *name)
{
    char *p = malloc(strlen(workdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", workdir, name);
    return p;
}

static rc_db *open_db(const char *dir)
{
    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE;
    o.merge_check_ms = 0;
    rc_db *db = NULL;
    int err = rc_open(dir, &o, &db);
    cr_assert_eq(err, 0, "rc_open %s: %s", dir, rc_strerror(err));
    return db;
}

static void put_in(const char *dir, const char *k, const char *v)
{
    rc_db *db = open_db(dir);
    cr_assert_eq(rc_put(db, NULL, k, strlen(k), v, strlen(v), NULL), 0);
    rc_close(db);
}

/* 1 if KEY holds V in DIR's default keyspace, 0 if absent. */
static int has(const char *dir, const char *k, const char *v)
{
    rc_db *db = open_db(dir);
    rc_value val;
    int err = rc_get(db, NULL, k, strlen(k), &val);
    int r = 0;
    if (err == 0) {
        r = val.len == strlen(v) && memcmp(val.data, v, val.len) == 0;
        cr_expect(r, "%s holds another value", k);
        rc_value_free(&val);
    } else {
        cr_assert_eq(err, RC_ENOTFOUND, "get %s: %s", k, rc_strerror(err));
    }
    rc_close(db);
    return r;
}

static char *id_of(const char *dir)
{
    rc_db *db = open_db(dir);
    char *id = malloc(RC_DATABASE_ID_LEN + 1);
    cr_assert_eq(rc_database_id(db, id), 0);
    rc_close(db);
    return id;
}

/* Every file of DIR (names and contents), hashed: "byte for byte". */
static unsigned long long dir_hash(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && ls -A | LC_ALL=C sort | while read f; do "
             "echo \"$f\"; sha256sum \"$f\"; done | sha256sum",
             dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    tp_result r = tp_run(argv, NULL, NULL);
    cr_assert_eq(r.status, 0, "hash %s: %s", dir, r.err);
    unsigned long long h = strtoull(r.out, NULL, 16); /* the first 16 hex digits */
    cr_assert_neq(h, 0ull);
    tp_result_free(&r);
    return h;
}

/* kvdump DIR --since SINCE to FILE; returns the stream's until. */
static unsigned long long dump(const char *dir, unsigned long long since, const char *file)
{
    char s[32];
    snprintf(s, sizeof s, "%llu", since);
    char *argv[] = {KVDUMP_BIN, "--dir", (char *)dir, "--since", s, "-o", (char *)file, NULL};
    tp_result r = tp_run(argv, NULL, NULL);
    cr_assert_eq(r.status, 0, "kvdump: %s", r.err);
    const char *dots = strstr(r.err, "..");
    cr_assert(dots, "summary: %s", r.err);
    unsigned long long until = strtoull(dots + 2, NULL, 10);
    tp_result_free(&r);
    return until;
}

static tp_result load(const char *dir, const char *file)
{
    char *argv[] = {KVLOAD_BIN, "--dir", (char *)dir, "-i", (char *)file, NULL};
    return tp_run(argv, NULL, NULL);
}

/* kvload of FILE into DIR refused with exit 8 naming WHY, DIR unchanged;
 * --verify-only --dir says the same, also exit 8. */
static void refused(const char *dir, const char *file, const char *why)
{
    unsigned long long before = dir_hash(dir);
    char *argv[] = {KVLOAD_BIN, "--verify-only", "--dir", (char *)dir, "-i", (char *)file, NULL};
    tp_result r = tp_run(argv, NULL, NULL);
    cr_expect_eq(r.status, 8, "verify-only --dir (%s): %d %s", why, r.status, r.err);
    cr_expect(strstr(r.err, why), "verify-only names '%s': %s", why, r.err);
    tp_result_free(&r);
    r = load(dir, file);
    cr_expect_eq(r.status, 8, "kvload (%s): %d %s", why, r.status, r.err);
    cr_expect(strstr(r.err, why), "kvload names '%s': %s", why, r.err);
    cr_expect(strstr(r.err, "nothing was applied"), "%s", r.err);
    tp_result_free(&r);
    cr_expect_eq(dir_hash(dir), before, "%s: the target directory changed", why);
}

/* The reported bug, through the tools: restore A into Y, write one key on
 * Y, load A's next incremental. It used to exit 0 with A's key missing. */
Test(backup_identity, incremental_onto_a_diverged_restore_is_refused)
{
    char *a = path_in("a"), *y = path_in("y"), *full = path_in("full.rcb");
    char *inc = path_in("inc.rcb");
    put_in(a, "a1", "1");
    unsigned long long u0 = dump(a, 0, full);
    put_in(a, "a2", "2");
    dump(a, u0, inc);
    tp_result r = load(y, full);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    char *ida = id_of(a), *idy = id_of(y);
    cr_expect_str_eq(ida, idy, "the restore is database A");
    put_in(y, "local", "x"); /* Y diverges */
    refused(y, inc, "diverged");
    cr_expect_eq(has(y, "a2", "2"), 0);
    cr_expect_eq(has(y, "local", "x"), 1);
    free(ida);
    free(idy);
    free(a);
    free(y);
    free(full);
    free(inc);
}

Test(backup_identity, incremental_of_another_database_is_refused)
{
    char *a = path_in("a"), *b = path_in("b"), *y = path_in("y"), *fa = path_in("fa.rcb");
    char *ib = path_in("ib.rcb"), *none = path_in("nothing-here");
    put_in(a, "a", "1");
    put_in(b, "b", "1");
    put_in(b, "b", "2");
    dump(a, 0, fa);
    dump(b, 1, ib);
    tp_result r = load(y, fa);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    refused(y, ib, "other database");
    refused(a, ib, "other database");
    cr_expect_eq(has(y, "b", "2"), 0);
    /* onto a directory that does not exist: refused, and not created */
    r = load(none, ib);
    cr_expect_eq(r.status, 8, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "other database"), "%s", r.err);
    tp_result_free(&r);
    char *c;
    cr_expect_eq(tp_read_file(none, &c), -1, "the directory was not created");
    free(a);
    free(b);
    free(y);
    free(fa);
    free(ib);
    free(none);
}

/* The chain in order succeeds, also through a restore of a restore; the
 * stream goes through pipes and zstd as on a tape, and verify-only prints
 * the database id it names. */
Test(backup_identity, chain_in_order_through_pipes_and_a_restore_of_a_restore)
{
    char *a = path_in("a"), *y = path_in("y"), *z = path_in("z");
    char *f0 = path_in("f0.rcb.zst"), *i1 = path_in("i1.rcb"), *fy = path_in("fy.rcb");
    put_in(a, "k0", "0");
    /* tape: kvdump -o - | zstd > FILE */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --dir '%s' -o - | zstd -q > '%s'", KVDUMP_BIN, a, f0);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    tp_result r = tp_run(sh, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *dots = strstr(r.err, "..");
    cr_assert(dots, "%s", r.err);
    unsigned long long u0 = strtoull(dots + 2, NULL, 10);
    tp_result_free(&r);
    put_in(a, "k1", "1");
    dump(a, u0, i1);
    /* restore: zstd -dc FILE | kvload -i - */
    snprintf(cmd, sizeof cmd, "zstd -dc '%s' | '%s' --dir '%s' -i -", f0, KVLOAD_BIN, y);
    r = tp_run(sh, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    /* self-describing: the header names the database and the range */
    snprintf(cmd, sizeof cmd, "zstd -dc '%s' | '%s' --verify-only -i -", f0, KVLOAD_BIN);
    r = tp_run(sh, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *ida = id_of(a), want[64];
    snprintf(want, sizeof want, "database %s", ida);
    cr_expect(strstr(r.out, want), "verify-only prints the id: %s", r.out);
    cr_expect(strstr(r.out, "full backup stream"), "%s", r.out);
    tp_result_free(&r);
    char *argv[] = {KVLOAD_BIN, "--verify-only", "--dir", y, "-i", i1, NULL};
    r = tp_run(argv, NULL, NULL);
    cr_expect_eq(r.status, 0, "the dry run says it would apply: %s", r.err);
    cr_expect(strstr(r.out, "would apply"), "%s", r.out);
    tp_result_free(&r);
    /* a restore of a restore: y's full into z, then a's incremental */
    unsigned long long uy = dump(y, 0, fy);
    cr_expect_eq(uy, u0);
    r = load(z, fy);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    r = load(z, i1);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    r = load(y, i1);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    cr_expect_eq(has(z, "k1", "1"), 1);
    cr_expect_eq(has(y, "k1", "1"), 1);
    cr_expect_eq(has(z, "k0", "0"), 1);
    free(ida);
    free(a);
    free(y);
    free(z);
    free(f0);
    free(i1);
    free(fy);
}

/* Streams written by the version 1 release (tests/fixtures/README.md): a
 * full loads, an incremental is refused as "identity unknown". */
Test(backup_identity, version_1_streams)
{
    char *y = path_in("y");
    const char *full = FIXTURES "/v1_full.rcb", *inc = FIXTURES "/v1_inc.rcb";
    char *argv[] = {KVLOAD_BIN, "--verify-only", "-i", (char *)inc, NULL};
    tp_result r = tp_run(argv, NULL, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "database unknown"), "%s", r.out);
    cr_expect(strstr(r.out, "seq 7..9"), "%s", r.out);
    tp_result_free(&r);
    r = load(y, full);
    cr_assert_eq(r.status, 0, "a v1 full loads: %s", r.err);
    tp_result_free(&r);
    rc_db *db = open_db(y);
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "b:default", 0, &ks), 0); /* kvd's bucket "default" */
    rc_value v;
    cr_assert_eq(rc_get(db, ks, "c", 1, &v), 0);
    cr_expect(v.len == 1 && memcmp(v.data, "3", 1) == 0);
    rc_value_free(&v);
    rc_close(db);
    refused(y, inc, "identity unknown");
    free(y);
    /* (the fixture's own bytes are what the v1 release wrote: version 1) */
}
