/*
 * test_s3_backup.c — backups in an S3-compatible object store, end to end:
 * the real kvdump --to/--list, kvload --from and kvd --backup-to against
 * s3rver on 127.0.0.1. Data is written through the engine API (or kv), and
 * every restore is compared key by key, all keyspaces, with an expected
 * state made independently (a plain kvdump -o / kvload of the source at that
 * moment). Skips, saying why, only when s3rver cannot be installed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringcask.h"
#include "s3.h"
#include "s3rver.h"
#include "tool_proc.h"

static char *workdir;
static s3rv store;

static void stop_all(void)
{
    s3rv_kill(&store);
    if (workdir) {
        tp_rmtree(workdir);
        free(workdir);
        workdir = NULL;
    }
}

static char *path_in(const char *name)
{
    char *p = malloc(strlen(workdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", workdir, name);
    return p;
}

static void start_all(void)
{
    workdir = tp_tempdir();
    cr_assert(workdir);
    char why[600], *data = path_in("s3data");
    mkdir(data, 0700);
    if (s3rv_start(&store, data, 0, why, sizeof why) != 0) {
        free(data);
        stop_all();
        cr_skip_test("object-store tests skipped: %s", why);
    }
    free(data);
    s3rv_setenv(&store);
}

TestSuite(s3_backup, .init = start_all, .fini = stop_all, .timeout = 400);

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --------------------------------------------------------------- engine */

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

static void put(rc_db *db, rc_keyspace *ks, const char *k, const char *v)
{
    cr_assert_eq(rc_put(db, ks, k, strlen(k), v, strlen(v), NULL), 0);
}

/* Round R of changes: new keys, overwrites and deletes in two keyspaces. */
static void change(const char *dir, int round)
{
    rc_db *db = open_db(dir);
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "photos", RC_KS_CREATE, &ks), 0);
    char k[32], v[64];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "r%d-key%03d", round, i);
        snprintf(v, sizeof v, "value %d of round %d", i, round);
        put(db, NULL, k, v);
        put(db, ks, k, v);
    }
    if (round > 0) {
        for (int i = 0; i < 50; i += 5) {
            snprintf(k, sizeof k, "r%d-key%03d", round - 1, i);
            cr_assert_eq(rc_delete(db, NULL, k, strlen(k), NULL), 0);
        }
        snprintf(k, sizeof k, "r%d-key001", round - 1);
        put(db, ks, k, "overwritten");
    }
    rc_close(db);
}

static uint64_t last_seq(const char *dir)
{
    rc_db *db = open_db(dir);
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    rc_close(db);
    return st.last_seq;
}

/* Every keyspace's keys and values of A equal B's. */
static void expect_same_content(const char *a_dir, const char *b_dir)
{
    rc_db *a = open_db(a_dir), *b = open_db(b_dir);
    char **names_a, **names_b;
    size_t na, nb;
    cr_assert_eq(rc_keyspace_list(a, &names_a, &na), 0);
    cr_assert_eq(rc_keyspace_list(b, &names_b, &nb), 0);
    cr_assert_eq(na, nb, "keyspace count %zu vs %zu (%s vs %s)", na, nb, a_dir, b_dir);
    for (size_t i = 0; i < na; i++) {
        cr_assert_str_eq(names_a[i], names_b[i]);
        rc_keyspace *ka, *kb;
        cr_assert_eq(rc_keyspace_open(a, names_a[i], 0, &ka), 0);
        cr_assert_eq(rc_keyspace_open(b, names_b[i], 0, &kb), 0);
        rc_list_opts lo = {.values = true};
        rc_list *la, *lb;
        cr_assert_eq(rc_list_keys(a, ka, &lo, &la), 0);
        cr_assert_eq(rc_list_keys(b, kb, &lo, &lb), 0);
        cr_assert_eq(la->count, lb->count, "keyspace %s: %zu vs %zu keys", names_a[i], la->count,
                     lb->count);
        for (size_t j = 0; j < la->count; j++) {
            rc_list_item *x = &la->items[j], *y = &lb->items[j];
            cr_assert(x->klen == y->klen && memcmp(x->key, y->key, x->klen) == 0, "key %zu", j);
            cr_assert(x->value.len == y->value.len &&
                          memcmp(x->value.data, y->value.data, x->value.len) == 0,
                      "value of key %zu of %s", j, names_a[i]);
        }
        rc_list_free(la);
        rc_list_free(lb);
    }
    rc_names_free(names_a, na);
    rc_names_free(names_b, nb);
    rc_close(a);
    rc_close(b);
}

/* ---------------------------------------------------------------- tools */

static tp_result run(char *const argv[])
{
    return tp_run(argv, NULL, NULL);
}

static void ship(const char *dir, bool full)
{
    char *argv[] = {KVDUMP_BIN, "--dir", (char *)dir, "--to", "s3://bkt/bk", full ? "--full" : NULL,
                    NULL};
    tp_result r = run(argv);
    cr_assert_eq(r.status, 0, "kvdump --to: %s", r.err);
    cr_assert(strstr(r.err, "uploaded s3://bkt/bk/"), "%s", r.err);
    tp_result_free(&r);
}

/* An expected state: a copy of SRC made by plain kvdump -o / kvload -i. */
static char *snapshot(const char *src, const char *name)
{
    char *file = path_in(name), *dir = NULL;
    char *argv[] = {KVDUMP_BIN, "--dir", (char *)src, "-o", file, NULL};
    tp_result r = run(argv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    size_t n = strlen(file) + 5;
    dir = malloc(n);
    snprintf(dir, n, "%s.dir", file);
    char *argv2[] = {KVLOAD_BIN, "--dir", dir, "-i", file, NULL};
    r = run(argv2);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    free(file);
    return dir;
}

static tp_result restore(const char *dir, const char *opt, const char *val)
{
    char *argv[] = {KVLOAD_BIN,    "--dir",     (char *)dir, "--from",
                    "s3://bkt/bk", (char *)opt, (char *)val, NULL};
    return run(argv);
}

/* The --list lines: until[i] and the time text[i]. Returns the count. */
static size_t list(uint64_t *until, char (*when)[40], size_t cap)
{
    char *argv[] = {KVDUMP_BIN, "--list", "s3://bkt/bk", NULL};
    tp_result r = run(argv);
    size_t n = 0;
    if (r.status == 0) {
        char *save = NULL;
        for (char *line = strtok_r(r.out, "\n", &save); line && n < cap;
             line = strtok_r(NULL, "\n", &save)) {
            unsigned long long u;
            char t[40];
            size_t chain;
            unsigned long long bytes;
            cr_assert_eq(sscanf(line, "%llu %39s %zu %llu", &u, t, &chain, &bytes), 4, "%s", line);
            until[n] = u;
            snprintf(when[n], 40, "%s", t);
            n++;
        }
    } else {
        cr_assert_eq(r.status, 1, "kvdump --list: %s", r.err);
    }
    tp_result_free(&r);
    return n;
}

static bool dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static bool dir_empty(const char *p)
{
    DIR *d = opendir(p);
    cr_assert(d, "%s", p);
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    closedir(d);
    return empty;
}

/* No staging directory was left next to the targets. */
static void expect_no_staging(void)
{
    DIR *d = opendir(workdir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        cr_expect_null(strstr(e->d_name, ".restore-"), "left behind: %s", e->d_name);
    closedir(d);
}

/* ---------------------------------------------------------- the store API */

static rcs3 *client(void)
{
    char err[256];
    rcs3 *c = rcs3_new("bkt", err, sizeof err);
    cr_assert(c, "%s", err);
    return c;
}

typedef struct keys {
    char k[256][160];
    size_t n;
} keys;

static int collect(void *ctx, const char *key, uint64_t size)
{
    keys *ks = ctx;
    (void)size;
    if (ks->n < 256)
        snprintf(ks->k[ks->n++], 160, "%s", key);
    return 0;
}

static void list_keys(keys *ks)
{
    rcs3 *c = client();
    ks->n = 0;
    cr_assert_eq(rcs3_list(c, "bk/", collect, ks), 0, "%s", rcs3_error(c));
    rcs3_free(c);
}

/* The key of the store holding NEEDLE (e.g. "/inc/"), or NULL. */
static const char *find_key(const keys *ks, const char *needle)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strstr(ks->k[i], needle))
            return ks->k[i];
    return NULL;
}

/* -------------------------------------------------------------- tests */

Test(s3_backup, full_and_incrementals_restore_each_point)
{
    char *src = path_in("src"), *exp[3];
    uint64_t seq[3];
    for (int round = 0; round < 3; round++) {
        change(src, round);
        ship(src, false); /* round 0: no manifest yet, so a full */
        seq[round] = last_seq(src);
        char name[16];
        snprintf(name, sizeof name, "snap%d", round);
        exp[round] = snapshot(src, name);
    }
    /* nothing new: nothing uploaded, exit 0 */
    char *argv[] = {KVDUMP_BIN, "--dir", src, "--to", "s3://bkt/bk", NULL};
    tp_result r = run(argv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "nothing uploaded"), "%s", r.err);
    tp_result_free(&r);

    uint64_t until[8];
    char when[8][40];
    cr_assert_eq(list(until, when, 8), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(until[i], seq[i], "manifest %d until %" PRIu64 ", source at %" PRIu64, i,
                     until[i], seq[i]);
    keys ks;
    list_keys(&ks);
    cr_assert(find_key(&ks, "/full/") && find_key(&ks, "/inc/"), "objects: %zu", ks.n);

    /* newest */
    char *dst = path_in("dst");
    r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, src);
    expect_same_content(dst, exp[2]);
    free(dst);

    /* --until-seq: exactly a manifest's until, and between two */
    char s[32];
    dst = path_in("at-seq1");
    snprintf(s, sizeof s, "%" PRIu64, seq[1]);
    r = restore(dst, "--until-seq", s);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, exp[1]);
    free(dst);
    dst = path_in("between");
    snprintf(s, sizeof s, "%" PRIu64, seq[2] - 1);
    r = restore(dst, "--until-seq", s);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, exp[1]);
    free(dst);

    /* --until-time: the first manifest's time (inclusive) */
    dst = path_in("at-time0");
    r = restore(dst, "--until-time", when[0]);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, exp[0]);
    free(dst);

    /* older than every manifest: refused, nothing created */
    dst = path_in("too-old");
    snprintf(s, sizeof s, "%" PRIu64, seq[0] - 1);
    r = restore(dst, "--until-seq", s);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "at or before"), "%s", r.err);
    tp_result_free(&r);
    r = restore(dst, "--until-time", "2000-01-01T00:00:00Z");
    cr_assert_eq(r.status, 1, "%s", r.err);
    tp_result_free(&r);
    cr_assert_not(dir_exists(dst));
    expect_no_staging();
    free(dst);

    /* a full on demand starts a new chain */
    change(src, 3);
    ship(src, true);
    cr_assert_eq(list(until, when, 8), 4);
    dst = path_in("after-full");
    r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "from 1 objects"), "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, src);
    free(dst);
    for (int i = 0; i < 3; i++)
        free(exp[i]);
    free(src);
}

Test(s3_backup, a_bad_object_is_refused_and_the_target_is_unchanged)
{
    char *src = path_in("src");
    change(src, 0);
    ship(src, false);
    change(src, 1);
    ship(src, false);
    keys ks;
    list_keys(&ks);
    const char *inc = find_key(&ks, "/inc/");
    cr_assert(inc);
    char inc_key[160];
    snprintf(inc_key, sizeof inc_key, "%s", inc);

    /* an upload that never got its manifest is invisible */
    rcs3 *c = client();
    char orphan[200];
    snprintf(orphan, sizeof orphan, "%.*s/inc/7ffffffffffffff0-7ffffffffffffff1.rcb",
             (int)(strstr(inc_key, "/inc/") - inc_key), inc_key);
    cr_assert_eq(rcs3_put_mem(c, orphan, "junk", 4, NULL), 0, "%s", rcs3_error(c));
    char *dst = path_in("dst");
    tp_result r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, src);
    tp_rmtree(dst);

    /* the incremental replaced by other bytes: the whole restore refuses */
    char *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(rcs3_get_mem(c, inc_key, 1u << 20, &bytes, &len), 0);
    bytes[len / 2] ^= 0x20;
    cr_assert_eq(rcs3_put_mem(c, inc_key, bytes, len, NULL), 0);
    mkdir(dst, 0700); /* an existing empty directory stays as it is */
    r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 3, "%s", r.err);
    cr_assert(strstr(r.err, "does not match its manifest") && strstr(r.err, "nothing was applied"),
              "%s", r.err);
    tp_result_free(&r);
    cr_assert(dir_empty(dst));
    expect_no_staging();

    /* a missing object likewise */
    cr_assert_eq(rcs3_delete(c, inc_key), 0);
    r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 3, "%s", r.err);
    cr_assert(strstr(r.err, "is missing"), "%s", r.err);
    tp_result_free(&r);
    cr_assert(dir_empty(dst));

    /* a non-empty target is refused before anything is fetched */
    r = restore(src, NULL, NULL);
    cr_assert_eq(r.status, 4, "%s", r.err);
    tp_result_free(&r);
    free(bytes);
    rcs3_free(c);
    free(dst);
    free(src);
}

/* A source of about 72 MiB of incompressible values: streams in parts. */
static void fill_big(const char *dir)
{
    rc_db *db = open_db(dir);
    size_t vlen = 256 * 1024;
    char *v = malloc(vlen), k[32];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 290; i++) {
        for (size_t j = 0; j < vlen; j += 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(v + j, &x, 8);
        }
        snprintf(k, sizeof k, "big%04d", i);
        cr_assert_eq(rc_put(db, NULL, k, strlen(k), v, vlen, NULL), 0);
    }
    free(v);
    rc_close(db);
}

static pid_t spawn_ship(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(KVDUMP_BIN, KVDUMP_BIN, "--dir", dir, "--to", "s3://bkt/bk", "--full", (char *)NULL);
        _exit(127);
    }
    cr_assert(pid > 0);
    return pid;
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(s3_backup, a_killed_uploader_leaves_the_last_good_manifest)
{
    char *src = path_in("src");
    fill_big(src);
    uint64_t t0 = ms_now();
    ship(src, false); /* > 64 MiB: a multipart upload */
    uint64_t took = ms_now() - t0;
    uint64_t until[16];
    char when[16][40];
    cr_assert_eq(list(until, when, 16), 1);
    uint64_t newest = until[0];
    /* SIGKILL kvdump --to --full (spool, ~70 MiB of parts, then the manifest)
     * at points spread over one upload's duration: each time the newest
     * manifest is the last good one or the complete new one, never a
     * partial one */
    int killed_running = 0;
    for (int i = 0; i < 3; i++) {
        change(src, i);
        uint64_t seq = last_seq(src);
        pid_t pid = spawn_ship(src);
        sleep_ms((unsigned)(took * (30 + 30 * i) / 100));
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st))
            killed_running++;
        size_t n = list(until, when, 16);
        cr_assert(until[n - 1] == newest || until[n - 1] == seq,
                  "kill %d: newest manifest %" PRIu64 ", expected %" PRIu64 " or %" PRIu64, i,
                  until[n - 1], newest, seq);
        newest = until[n - 1];
    }
    cr_assert(killed_running > 0, "no kill landed while kvdump ran (%" PRIu64 " ms uploads)", took);
    /* the bucket continues from its last good manifest and restores the source */
    change(src, 3);
    ship(src, false);
    char *dst = path_in("dst");
    tp_result r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, src);
    free(dst);
    free(src);
}

/* --------------------------------------------------------------- kvd */

/* A number from kv metrics --json, or -1. */
static long long metric(const tp_kvd *k, const char *name)
{
    char *argv[] = {KV_BIN, "metrics", "--json", NULL};
    char *env[] = {(char *)k->env_url, NULL};
    tp_result r = tp_run(argv, NULL, env);
    long long v = -1;
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = r.status == 0 ? strstr(r.out, pat) : NULL;
    if (p)
        v = strtoll(p + strlen(pat), NULL, 10);
    tp_result_free(&r);
    return v;
}

static void kv_set(const tp_kvd *k, int from, int n)
{
    char *argv[24];
    char args[20][32];
    argv[0] = KV_BIN;
    argv[1] = "set";
    int a = 2;
    for (int i = 0; i < n && i < 20; i++) {
        snprintf(args[i], sizeof args[i], "w%05d=value-%d", from + i, from + i);
        argv[a++] = args[i];
    }
    argv[a] = NULL;
    char *env[] = {(char *)k->env_url, NULL};
    tp_result r = tp_run(argv, NULL, env);
    cr_assert_eq(r.status, 0, "kv set while the store is away must work: %s", r.err);
    tp_result_free(&r);
}

/* Wait (bounded) until kvd has shipped everything it has. */
static void wait_shipped(const tp_kvd *k, int seconds)
{
    long long shipped = -1, last = -2, fails = -1;
    for (int i = 0; i < seconds * 10; i++) {
        shipped = metric(k, "backup_last_shipped_seq");
        last = metric(k, "last_seq");
        fails = metric(k, "backup_consecutive_failures");
        if (shipped == last && fails == 0)
            return;
        sleep_ms(100);
    }
    cr_assert_fail("kvd did not ship: shipped %lld, last seq %lld, failures %lld", shipped, last,
                   fails);
}

#define OUTAGE_S 8

Test(s3_backup, kvd_ships_through_an_outage_and_loses_nothing)
{
    char *data = path_in("kvd-data");
    tp_kvd k;
    char *args[] = {"--backup-to", "s3://bkt/bk", "--backup-every", "1s", "--sync", "none", NULL};
    cr_assert_eq(tp_kvd_start_in(&k, KVD_BIN, false, data, args), 0);
    kv_set(&k, 0, 20);
    wait_shipped(&k, 60);

    /* the store goes away; writes go on */
    s3rv_kill(&store);
    uint64_t t0 = ms_now();
    int n = 20;
    while (ms_now() - t0 < OUTAGE_S * 1000u) {
        kv_set(&k, n, 10);
        n += 10;
        sleep_ms(300);
    }
    cr_assert_geq(metric(&k, "backup_consecutive_failures"), 1);
    cr_assert_lt(metric(&k, "backup_last_shipped_seq"), metric(&k, "last_seq"));

    /* back on the same port and data: everything ships */
    char why[600];
    char *sdata = path_in("s3data");
    cr_assert_eq(s3rv_start(&store, sdata, store.port, why, sizeof why), 0, "%s", why);
    free(sdata);
    wait_shipped(&k, 90);
    cr_assert_eq(tp_kvd_stop(&k), 0);

    char *dst = path_in("dst");
    tp_result r = restore(dst, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, data);
    rc_db *db = open_db(dst);
    char key[32];
    snprintf(key, sizeof key, "w%05d", n - 1);
    rc_keyspace *ks = NULL;
    cr_assert_eq(rc_keyspace_open(db, "b:default", 0, &ks), 0);
    rc_value v;
    cr_assert_eq(rc_get(db, ks, key, strlen(key), &v), 0, "the last write before the restart");
    rc_value_free(&v);
    rc_close(db);
    free(dst);
    free(data);
}

Test(s3_backup, retention_keeps_exactly_the_newest_fulls_and_their_chains)
{
    char *src = path_in("src");
    for (int round = 0; round < 6; round++) {
        change(src, round);
        ship(src, round % 2 == 0); /* full, inc, full, inc, full, inc */
    }
    uint64_t until[16];
    char when[16][40];
    cr_assert_eq(list(until, when, 16), 6);
    /* fulls at until[0], [2], [4]; incrementals on each */
    keys before;
    list_keys(&before);
    const char *m = find_key(&before, "/manifest/");
    cr_assert(m);
    char dbdir[160];
    snprintf(dbdir, sizeof dbdir, "%.*s", (int)(strstr(m, "/manifest/") - m), m);
    rcs3 *c = client();
    char old_orphan[220], new_orphan[220];
    snprintf(old_orphan, sizeof old_orphan, "%s/inc/%016" PRIx64 "-%016" PRIx64 ".rcb", dbdir,
             until[0], until[0] + 1);
    snprintf(new_orphan, sizeof new_orphan, "%s/full/7ffffffffffffff0.rcb", dbdir);
    cr_assert_eq(rcs3_put_mem(c, old_orphan, "x", 1, NULL), 0);
    cr_assert_eq(rcs3_put_mem(c, new_orphan, "x", 1, NULL), 0);

    tp_kvd k;
    char *args[] = {"--backup-to", "s3://bkt/bk", "--backup-every", "1s", "--backup-keep-full",
                    "2",           NULL};
    cr_assert_eq(tp_kvd_start_in(&k, KVD_BIN, false, src, args), 0);
    kv_set(&k, 0, 5);
    wait_shipped(&k, 60);
    for (int i = 0; i < 600 && metric(&k, "backup_pruned_objects") <= 0; i++)
        sleep_ms(100);
    cr_assert_gt(metric(&k, "backup_pruned_objects"), 0);
    cr_assert_eq(tp_kvd_stop(&k), 0);

    size_t n = list(until + 6, when + 6, 10);
    keys after;
    list_keys(&after);
    char name[220];
    /* the first chain (full at until[0], its incremental) is gone */
    snprintf(name, sizeof name, "%s/full/%016" PRIx64 ".rcb", dbdir, until[0]);
    cr_assert_null(find_key(&after, name), "%s kept", name);
    snprintf(name, sizeof name, "%s/inc/%016" PRIx64 "-%016" PRIx64 ".rcb", dbdir, until[0],
             until[1]);
    cr_assert_null(find_key(&after, name), "%s kept", name);
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s/manifest/%016" PRIx64 ".json", dbdir, until[i]);
        cr_assert_null(find_key(&after, name), "%s kept", name);
    }
    /* the two newest chains are whole: their fulls, incrementals, manifests */
    for (int i = 2; i < 6; i++) {
        snprintf(name, sizeof name, "%s/manifest/%016" PRIx64 ".json", dbdir, until[i]);
        cr_assert(find_key(&after, name), "%s deleted", name);
    }
    for (int i = 2; i < 6; i += 2) {
        snprintf(name, sizeof name, "%s/full/%016" PRIx64 ".rcb", dbdir, until[i]);
        cr_assert(find_key(&after, name), "%s deleted", name);
        snprintf(name, sizeof name, "%s/inc/%016" PRIx64 "-%016" PRIx64 ".rcb", dbdir, until[i],
                 until[i + 1]);
        cr_assert(find_key(&after, name), "%s deleted", name);
    }
    /* kvd's own uploads (its start-up writes, then ours) continued the newest
     * chain: four kept manifests and one or two new ones */
    cr_assert(n == 5 || n == 6, "manifests after: %zu", n);
    /* the unnamed old object is gone, the newer one (an upload under way?) stays */
    cr_assert_null(find_key(&after, old_orphan));
    cr_assert(find_key(&after, new_orphan));
    /* and every kept point still restores */
    char s[32], *dst = path_in("dst");
    snprintf(s, sizeof s, "%" PRIu64, until[3]);
    tp_result r = restore(dst, "--until-seq", s);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    rcs3_free(c);
    free(dst);
    free(src);
}

Test(s3_backup, usage_and_store_errors)
{
    char *src = path_in("src");
    change(src, 0);
    struct {
        char *argv[10];
        int status;
        const char *says;
    } cases[] = {
        {{KVDUMP_BIN, "--dir", src, "--to", "s3://x/p", NULL}, 2, "bucket name"},
        {{KVDUMP_BIN, "--dir", src, "--to", "s3://bkt/p", "--since", "3", NULL}, 2, "--to"},
        {{KVDUMP_BIN, "--list", "s3://bkt/p", "--dir", src, NULL}, 2, "--list"},
        {{KVDUMP_BIN, "--dir", src, "--full", NULL}, 2, "--full"},
        {{KVLOAD_BIN, "--from", "s3://bkt/p", NULL}, 2, "--dir"},
        {{KVLOAD_BIN, "--dir", src, "--from", "s3://bkt/p", "--until-seq", "1", "--until-time",
          "2026-01-01T00:00:00Z", NULL},
         2,
         "not both"},
        {{KVLOAD_BIN, "--dir", src, "--from", "s3://bkt/p", "--until-time", "yesterday", NULL},
         2,
         "RFC 3339"},
        {{KVLOAD_BIN, "--dir", "/nonexistent/x", "--from", "s3://bkt/empty", NULL}, 1, "no backup"},
        {{KVDUMP_BIN, "--list", "s3://bkt/empty", NULL}, 1, "no backup"},
        {{KVDUMP_BIN, "--list", "s3://nobkt/p", NULL}, 9, "no bucket"},
        {{KVD_BIN, "--backup-to", "s3://bkt/p", NULL}, 2, "--backup-every"},
        {{KVD_BIN, "--backup-to", "s3://bkt/p", "--backup-every", "soon", NULL}, 2, "duration"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_result r = run(cases[i].argv);
        cr_expect_eq(r.status, cases[i].status, "case %zu: exit %d: %s", i, r.status, r.err);
        cr_expect(strstr(r.err, cases[i].says), "case %zu: %s", i, r.err);
        tp_result_free(&r);
    }
    /* refused credentials and a dead endpoint */
    char *bad_key[] = {"AWS_ACCESS_KEY_ID=nobody", NULL};
    char *argv[] = {KVDUMP_BIN, "--dir", src, "--to", "s3://bkt/p", NULL};
    tp_result r = tp_run(argv, NULL, bad_key);
    cr_assert_eq(r.status, 9, "%s", r.err);
    cr_assert(strstr(r.err, "403"), "%s", r.err);
    tp_result_free(&r);
    char dead[64];
    snprintf(dead, sizeof dead, "AWS_ENDPOINT_URL=http://127.0.0.1:%d", tp_free_port());
    char *dead_env[] = {dead, NULL};
    r = tp_run(argv, NULL, dead_env);
    cr_assert_eq(r.status, 9, "%s", r.err);
    tp_result_free(&r);
    char *no_key[] = {"AWS_ACCESS_KEY_ID=", NULL};
    r = tp_run(argv, NULL, no_key);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "AWS_ACCESS_KEY_ID"), "%s", r.err);
    tp_result_free(&r);
    free(src);
}

/* ---------------------------------------------------------------- tape */

Test(tape, streams_go_through_pipes_and_identify_themselves)
{
    workdir = tp_tempdir();
    cr_assert(workdir);
    char *src = path_in("src"), *dst = path_in("dst"), *tape = path_in("tape.zst");
    change(src, 0);
    change(src, 1);
    /* the pipe forms of the manual: no seeking anywhere */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -o pipefail; '%s' --dir '%s' | zstd -q | dd of='%s' bs=256k "
             "status=none && dd if='%s' bs=256k status=none | zstd -dq | '%s' --dir '%s'",
             KVDUMP_BIN, src, tape, tape, KVLOAD_BIN, dst);
    char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    tp_result r = tp_run(argv, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tp_result_free(&r);
    expect_same_content(dst, src);
    /* a tape file says what it is */
    snprintf(cmd, sizeof cmd, "zstd -dqc '%s' | '%s' --verify-only", tape, KVLOAD_BIN);
    r = tp_run(argv, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "full backup stream") && strstr(r.out, "seq 0.."), "%s", r.out);
    tp_result_free(&r);
    /* and a truncated one is refused */
    snprintf(cmd, sizeof cmd, "zstd -dqc '%s' | head -c 300 | '%s' --verify-only", tape,
             KVLOAD_BIN);
    r = tp_run(argv, NULL, NULL);
    cr_assert_eq(r.status, 3, "%s", r.err);
    tp_result_free(&r);
    free(src);
    free(dst);
    free(tape);
    tp_rmtree(workdir);
    free(workdir);
    workdir = NULL;
}
