/*
 * test_identity.c — database identity and backup chains (FORMAT.md 10.4,
 * stream version 2): an incremental applies only onto the database whose
 * history is a prefix of the source's; every other case is refused with
 * RC_EIDENTITY, says which case it is, and changes nothing.
 */
#include "helpers.h"
#include "db.h" /* white box: last_seq */
#include "format/stream.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rc_db *open_db(const char *dir, bool read_only)
{
    rc_options o;
    th_options(&o);
    o.ttl_sweep_ms = 0;
    o.read_only = read_only;
    rc_db *db;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "open %s: %s", dir, rc_last_error_message());
    return db;
}

static th_membuf backup(rc_db *db, uint64_t since, rc_backup_info *info)
{
    th_membuf m = {0};
    int rc = rc_backup(db, since, th_mem_write, &m, NULL, NULL, info);
    cr_assert_eq(rc, 0, "backup since %llu: %s", (unsigned long long)since,
                 rc_last_error_message());
    return m;
}

static int load(rc_db *db, const th_membuf *s)
{
    th_membuf m = {.p = s->p, .len = s->len};
    rc_backup_info info;
    return rc_load(db, th_mem_read, &m, NULL, NULL, &info);
}

static void id_of(rc_db *db, char out[RC_DATABASE_ID_LEN + 1])
{
    cr_assert_eq(rc_database_id(db, out), 0);
    cr_assert_eq(strlen(out), RC_DATABASE_ID_LEN);
    for (size_t i = 0; i < RC_DATABASE_ID_LEN; i++)
        cr_assert(strchr("0123456789abcdef", out[i]), "lowercase hex: %s", out);
}

/* A refusal: RC_EIDENTITY naming CASE, and the target's state unchanged. */
static void refused(rc_db *dst, const th_membuf *s, const char *why)
{
    char *before = th_dump(dst);
    uint64_t last = atomic_load(&dst->last_seq);
    char id_before[RC_DATABASE_ID_LEN + 1], id_after[RC_DATABASE_ID_LEN + 1];
    id_of(dst, id_before);
    rc_stream_header h;
    cr_assert_eq(rc_stream_header_parse(s->p, s->len, &h), 0);
    cr_assert_eq(rc_load_check(dst, &h), RC_EIDENTITY, "check: %s", why);
    cr_assert(strstr(rc_last_error_message(), why), "message names '%s': %s", why,
              rc_last_error_message());
    cr_assert_eq(load(dst, s), RC_EIDENTITY, "load: %s", why);
    cr_assert(strstr(rc_last_error_message(), why), "message names '%s': %s", why,
              rc_last_error_message());
    char *after = th_dump(dst);
    cr_assert_str_eq(before, after, "%s: the target changed", why);
    cr_assert_eq(atomic_load(&dst->last_seq), last);
    id_of(dst, id_after);
    cr_assert_str_eq(id_before, id_after);
    free(before);
    free(after);
}

TestSuite(identity, .timeout = 120);

Test(identity, created_persisted_and_carried_by_streams)
{
    char *dir = th_tmpdir(), *other = th_tmpdir();
    rc_db *db = open_db(dir, false), *db2 = open_db(other, false);
    char a[RC_DATABASE_ID_LEN + 1], b[RC_DATABASE_ID_LEN + 1], c[RC_DATABASE_ID_LEN + 1];
    id_of(db, a);
    id_of(db2, b);
    cr_assert_str_neq(a, b, "two directories, two databases");
    th_put(db, NULL, "k", "v");
    rc_backup_info info;
    th_membuf s = backup(db, 0, &info);
    cr_assert_str_eq(info.database, a);
    rc_stream_header h;
    cr_assert_eq(rc_stream_header_parse(s.p, s.len, &h), 0);
    cr_assert_eq(h.version, 2);
    cr_assert_str_eq(h.database, a, "the header names the source");
    cr_assert_eq(h.since, 0);
    cr_assert_eq(h.until, info.until, "the header carries until before the body");
    cr_assert_eq(h.length, FMT_STREAM_HEADER_LEN);
    rc_close(db);
    db = open_db(dir, true); /* persisted; a read-only handle sees it */
    id_of(db, c);
    cr_assert_str_eq(a, c);
    rc_close(db);
    db = open_db(dir, false);
    id_of(db, c);
    cr_assert_str_eq(a, c);
    cr_assert_geq(th_file_size(th_path(dir, "IDENTITY")), 56);
    free(s.p);
    rc_close(db);
    rc_close(db2);
    th_rmdir(dir);
    th_rmdir(other);
}

/* The reported bug: restore A into Y, write on Y, load A's next
 * incremental: it used to succeed with one of A's keys missing. */
Test(identity, a_local_write_after_a_load_diverges)
{
    char *adir = th_tmpdir(), *ydir = th_tmpdir();
    rc_db *a = open_db(adir, false), *y = open_db(ydir, false);
    th_put(a, NULL, "a1", "1");
    rc_backup_info i0, i1;
    th_membuf full = backup(a, 0, &i0);
    th_put(a, NULL, "a2", "2");
    th_membuf inc = backup(a, i0.until, &i1);
    cr_assert_eq(load(y, &full), 0, "%s", rc_last_error_message());
    char ida[RC_DATABASE_ID_LEN + 1], idy[RC_DATABASE_ID_LEN + 1];
    id_of(a, ida);
    id_of(y, idy);
    cr_assert_str_eq(ida, idy, "a full load adopts the source's identity");
    th_put(y, NULL, "local", "x");
    id_of(y, idy);
    cr_assert_str_neq(ida, idy, "a local write makes it another database");
    refused(y, &inc, "diverged");
    /* persisted: still refused after a reopen */
    rc_close(y);
    y = open_db(ydir, false);
    refused(y, &inc, "diverged");
    cr_assert_eq(th_has(y, NULL, "a2", "2"), 0);
    free(full.p);
    free(inc.p);
    rc_close(a);
    rc_close(y);
    th_rmdir(adir);
    th_rmdir(ydir);
}

Test(identity, an_incremental_from_another_database_is_refused)
{
    char *adir = th_tmpdir(), *bdir = th_tmpdir(), *ydir = th_tmpdir();
    rc_db *a = open_db(adir, false), *b = open_db(bdir, false), *y = open_db(ydir, false);
    th_put(a, NULL, "a", "1");
    th_put(b, NULL, "b", "1");
    th_put(b, NULL, "b", "2");
    rc_backup_info ia, ib;
    th_membuf fa = backup(a, 0, &ia);
    th_membuf ib1 = backup(b, 1, &ib); /* since 1 <= y's last seq: not a gap */
    cr_assert_eq(load(y, &fa), 0);
    refused(y, &ib1, "other database");
    refused(a, &ib1, "other database");
    free(fa.p);
    free(ib1.p);
    rc_close(a);
    rc_close(b);
    rc_close(y);
    th_rmdir(adir);
    th_rmdir(bdir);
    th_rmdir(ydir);
}

/* A chain applied in order works, also through a restore of a restore, and
 * a replica's own streams continue the source's chain. */
Test(identity, chains_and_restores_of_restores)
{
    char *adir = th_tmpdir(), *ydir = th_tmpdir(), *zdir = th_tmpdir();
    rc_db *a = open_db(adir, false), *y = open_db(ydir, false), *z = open_db(zdir, false);
    th_put(a, NULL, "k0", "0");
    rc_backup_info i0, i1, i2, iy;
    th_membuf s0 = backup(a, 0, &i0);
    th_put(a, NULL, "k1", "1");
    th_membuf s1 = backup(a, i0.until, &i1);
    cr_assert_eq(rc_delete(a, NULL, "k0", 2, NULL), 0);
    th_put(a, NULL, "k2", "2");
    th_membuf s2 = backup(a, i1.until, &i2);
    cr_assert_eq(load(y, &s0), 0);
    cr_assert_eq(load(y, &s1), 0, "%s", rc_last_error_message());
    cr_assert_eq(load(y, &s1), 0, "the same incremental again: a no-op");
    /* z restores y's full (a restore of a restore), then a's incremental */
    th_membuf sy = backup(y, 0, &iy);
    cr_assert_eq(iy.until, i1.until);
    cr_assert_eq(load(z, &sy), 0, "%s", rc_last_error_message());
    cr_assert_eq(load(z, &s2), 0, "%s", rc_last_error_message());
    cr_assert_eq(load(y, &s2), 0, "%s", rc_last_error_message());
    char *da = th_dump(a), *dy = th_dump(y), *dz = th_dump(z);
    cr_assert_str_eq(da, dy);
    cr_assert_str_eq(da, dz);
    char ida[RC_DATABASE_ID_LEN + 1], idz[RC_DATABASE_ID_LEN + 1];
    id_of(a, ida);
    id_of(z, idz);
    cr_assert_str_eq(ida, idz);
    free(da);
    free(dy);
    free(dz);
    free(s0.p);
    free(s1.p);
    free(s2.p);
    free(sy.p);
    rc_close(a);
    rc_close(y);
    rc_close(z);
    th_rmdir(adir);
    th_rmdir(ydir);
    th_rmdir(zdir);
}

/* Rewrite a v2 stream as version 1 with the old encoder path (the 40-byte
 * header naming no database, the chain seeded with it). */
static th_membuf as_v1(const th_membuf *s)
{
    fmt_stream_reader rd;
    cr_assert_eq(fmt_stream_reader_init(&rd, s->p, s->len), FMT_OK);
    fmt_stream_header h = rd.header;
    h.version = 1;
    h.db_id = 42;
    fmt_stream_writer w;
    uint8_t head[FMT_STREAM_HEADER_MAX];
    th_membuf out = {0};
    th_mem_write(&out, head, fmt_stream_writer_init(&w, &h, head));
    size_t pos = FMT_STREAM_HEADER_LEN;
    fmt_stream_trailer t = {0};
    for (;;) {
        fmt_stream_frame f;
        cr_assert_eq(fmt_stream_frame_header_decode(s->p + pos, s->len - pos, &f), FMT_OK);
        const uint8_t *payload = s->p + pos + FMT_STREAM_FRAME_HEADER_LEN;
        pos += FMT_STREAM_FRAME_HEADER_LEN + f.stored_len;
        if (f.type == FMT_STREAM_FRAME_TRAILER) {
            cr_assert_eq(fmt_stream_read_trailer(&rd, &f, payload, &t), FMT_OK);
            break;
        }
        uint8_t *raw = malloc(f.raw_len);
        cr_assert_eq(fmt_stream_read_records(&rd, &f, payload, raw, f.raw_len), FMT_OK);
        size_t cap = fmt_stream_frame_bound(f.raw_len), n;
        uint8_t *enc = malloc(cap);
        cr_assert_eq(fmt_stream_frame_encode(&w, raw, f.raw_len, 1, enc, cap, &n), FMT_OK);
        th_mem_write(&out, enc, n);
        free(enc);
        free(raw);
    }
    uint8_t trailer[FMT_STREAM_TRAILER_FRAME_LEN];
    cr_assert_eq(fmt_stream_trailer_encode(&w, t.until, trailer), FMT_OK);
    th_mem_write(&out, trailer, sizeof(trailer));
    return out;
}

Test(identity, version_1_streams_identity_unknown)
{
    char *adir = th_tmpdir(), *ydir = th_tmpdir(), *zdir = th_tmpdir();
    rc_db *a = open_db(adir, false), *y = open_db(ydir, false), *z = open_db(zdir, false);
    th_put(a, NULL, "k0", "0");
    rc_backup_info i0, i1;
    th_membuf s0 = backup(a, 0, &i0);
    th_put(a, NULL, "k1", "1");
    th_membuf s1 = backup(a, i0.until, &i1);
    th_membuf v0 = as_v1(&s0), v1 = as_v1(&s1);
    rc_stream_header h;
    cr_assert_eq(rc_stream_header_parse(v0.p, v0.len, &h), 0);
    cr_assert_eq(h.version, 1);
    cr_assert_str_eq(h.database, "");
    cr_assert_eq(h.length, 40);
    rc_backup_info vi;
    th_membuf m = {.p = v1.p, .len = v1.len};
    cr_assert_eq(rc_verify_stream(th_mem_read, &m, &vi), 0, "a v1 stream verifies");
    cr_assert_eq(vi.version, 1);
    cr_assert_eq(vi.until, i1.until, "until from the trailer");
    /* a full v1 loads (the target becomes a database of its own) */
    cr_assert_eq(load(y, &v0), 0, "%s", rc_last_error_message());
    cr_assert_eq(th_has(y, NULL, "k0", "0"), 1);
    char ida[RC_DATABASE_ID_LEN + 1], idy[RC_DATABASE_ID_LEN + 1];
    id_of(a, ida);
    id_of(y, idy);
    cr_assert_str_neq(ida, idy);
    /* an incremental v1 is refused, onto anything */
    refused(y, &v1, "identity unknown");
    refused(a, &v1, "identity unknown");
    /* the v2 incremental onto the v1-restored copy: its identity is not a's */
    refused(y, &s1, "other database");
    /* the v2 chain still works on another target */
    cr_assert_eq(load(z, &s0), 0);
    cr_assert_eq(load(z, &s1), 0);
    free(s0.p);
    free(s1.p);
    free(v0.p);
    free(v1.p);
    rc_close(a);
    rc_close(y);
    rc_close(z);
    th_rmdir(adir);
    th_rmdir(ydir);
    th_rmdir(zdir);
}

/* A replica group's failover: B and C replicate A; B takes over and writes
 * (a fork of A at its last seq). C, a replica of A no further than the fork,
 * follows B's history with rc_follow_fork and takes B's incrementals; a
 * replica past the fork, or of another database, is refused and unchanged. */
Test(identity, a_replica_follows_a_fork_it_is_a_prefix_of)
{
    char *adir = th_tmpdir(), *bdir = th_tmpdir(), *cdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *a = open_db(adir, false), *b = open_db(bdir, false), *c = open_db(cdir, false);
    rc_db *d = open_db(ddir, false);
    th_put(a, NULL, "k1", "1");
    th_put(a, NULL, "k2", "2");
    rc_backup_info i0, i1, i2;
    th_membuf full = backup(a, 0, &i0);
    cr_assert_eq(load(b, &full), 0, "%s", rc_last_error_message());
    cr_assert_eq(load(c, &full), 0, "%s", rc_last_error_message());
    cr_assert_eq(load(d, &full), 0, "%s", rc_last_error_message());
    char ida[RC_DATABASE_ID_LEN + 1], idb[RC_DATABASE_ID_LEN + 1], idc[RC_DATABASE_ID_LEN + 1];
    id_of(a, ida);
    rc_lineage lb;
    cr_assert_eq(rc_database_lineage(b, &lb), 0);
    cr_assert(lb.replica && !lb.forked && strcmp(lb.id, ida) == 0, "b replicates a");
    /* d receives one more of a's writes: it is past the fork point */
    th_put(a, NULL, "k3", "3");
    th_membuf ainc = backup(a, i0.until, &i1);
    cr_assert_eq(load(d, &ainc), 0, "%s", rc_last_error_message());
    /* b takes over and writes: a fork of a at i0.until */
    th_put(b, NULL, "k4", "4");
    cr_assert_eq(rc_database_lineage(b, &lb), 0);
    id_of(b, idb);
    cr_assert(lb.forked && !lb.replica);
    cr_assert_str_eq(lb.parent, ida);
    cr_assert_eq(lb.forked_at, i0.until);
    th_membuf binc = backup(b, i0.until, &i2);
    refused(c, &binc, "other database"); /* not before following */
    /* c follows: durable, and b's incrementals apply */
    cr_assert_eq(rc_follow_fork(c, lb.id, lb.parent, lb.forked_at), 0, "%s",
                 rc_last_error_message());
    id_of(c, idc);
    cr_assert_str_eq(idc, idb);
    cr_assert_eq(load(c, &binc), 0, "%s", rc_last_error_message());
    cr_assert_eq(th_has(c, NULL, "k4", "4"), 1);
    rc_close(c);
    c = open_db(cdir, false);
    id_of(c, idc);
    cr_assert_str_eq(idc, idb, "following is persisted");
    /* d holds k3 (seq past the fork): refused, unchanged */
    char idd[RC_DATABASE_ID_LEN + 1];
    id_of(d, idd);
    cr_assert_eq(rc_follow_fork(d, lb.id, lb.parent, lb.forked_at), RC_EGAP);
    char idd2[RC_DATABASE_ID_LEN + 1];
    id_of(d, idd2);
    cr_assert_str_eq(idd, idd2);
    /* a itself (the original) holds k3 past the fork too: refused */
    cr_assert_eq(rc_follow_fork(a, lb.id, lb.parent, lb.forked_at), RC_EGAP);
    /* another database: refused */
    char *edir = th_tmpdir();
    rc_db *e = open_db(edir, false);
    cr_assert_eq(rc_follow_fork(e, lb.id, lb.parent, lb.forked_at), RC_EIDENTITY);
    rc_close(e);
    th_rmdir(edir);
    /* malformed ids */
    cr_assert_eq(rc_follow_fork(c, "xyz", lb.parent, lb.forked_at), RC_EINVAL);
    free(full.p);
    free(ainc.p);
    free(binc.p);
    rc_close(a);
    rc_close(b);
    rc_close(c);
    rc_close(d);
    th_rmdir(adir);
    th_rmdir(bdir);
    th_rmdir(cdir);
    th_rmdir(ddir);
}
