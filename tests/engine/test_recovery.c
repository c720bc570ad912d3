/* Recovery: hints and scans agree, a torn tail is cut at every possible
 * byte, a damaged record in an older segment costs only that record, and
 * strict mode refuses to open. Files are damaged directly on disk. */
#include "helpers.h"
#include "format/record.h"
#include "format/segment.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = th_tmpdir();
}
static void teardown(void)
{
    th_rmdir(dir);
}
TestSuite(recovery, .init = setup, .fini = teardown);

static rc_db *open_db(bool hints)
{
    rc_options o;
    th_options(&o);
    o.write_hints = hints;
    rc_db *db;
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open: %s", rc_last_error_message());
    return db;
}

static void fill(rc_db *db, int n, int round)
{
    char k[32], v[64];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%04d", i);
        snprintf(v, sizeof(v), "v%d-%d", round, i);
        th_put(db, NULL, k, v);
    }
}

/* A digest of the whole visible state: every key, value, seq. */
static uint64_t digest(rc_db *db)
{
    rc_list *l;
    rc_list_opts lo = {.values = true};
    cr_assert_eq(rc_list_keys(db, NULL, &lo, &l), 0);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < l->count; i++) {
        const uint8_t *p = l->items[i].key;
        for (size_t j = 0; j < l->items[i].klen; j++)
            h = (h ^ p[j]) * 1099511628211ull;
        p = l->items[i].value.data;
        for (size_t j = 0; j < l->items[i].value.len; j++)
            h = (h ^ p[j]) * 1099511628211ull;
        h = (h ^ l->items[i].value.seq) * 1099511628211ull;
    }
    h ^= l->count;
    rc_list_free(l);
    return h;
}

Test(recovery, hints_and_scan_give_identical_state)
{
    rc_db *db = open_db(true);
    fill(db, 1500, 0);
    fill(db, 700, 1);
    for (int i = 0; i < 1500; i += 5) {
        char k[32];
        snprintf(k, sizeof(k), "key%04d", i);
        rc_delete(db, NULL, k, strlen(k), NULL);
    }
    uint64_t before = digest(db);
    rc_close(db);

    db = open_db(true);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_gt(st.hint_files_used, 0, "hints were not used");
    uint64_t with_hints = digest(db);
    uint64_t keys_hints = st.live_keys, bytes_hints = st.live_value_bytes;
    rc_close(db);

    char names[512][64];
    int nh = th_list(dir, ".hint", names, 512);
    for (int i = 0; i < nh; i++)
        unlink(th_path(dir, names[i]));
    db = open_db(false);
    rc_stats_db(db, &st);
    cr_assert_eq(st.hint_files_used, 0);
    cr_assert_gt(st.segments_scanned, 0);
    cr_assert_eq(digest(db), with_hints);
    cr_assert_eq(with_hints, before);
    cr_assert_eq(st.live_keys, keys_hints);
    cr_assert_eq(st.live_value_bytes, bytes_hints);
    rc_close(db);
}

Test(recovery, corrupt_hint_falls_back_to_scan)
{
    rc_db *db = open_db(true);
    fill(db, 3000, 0);
    uint64_t before = digest(db);
    rc_close(db);
    char names[512][64];
    int nh = th_list(dir, ".hint", names, 512);
    cr_assert_gt(nh, 0);
    int fd = open(th_path(dir, names[0]), O_RDWR);
    uint8_t b;
    pread(fd, &b, 1, 60);
    b ^= 0x10;
    pwrite(fd, &b, 1, 60);
    close(fd);
    db = open_db(true);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_geq(st.segments_scanned, 1);
    cr_assert_eq(digest(db), before);
    rc_close(db);
}

/* The newest data file, its name and size. */
static long long newest_segment(char *name)
{
    char names[512][64];
    int nd = th_list(dir, ".data", names, 512);
    cr_assert_gt(nd, 0);
    /* the newest non-empty one (the last open left an empty active file) */
    for (int i = nd - 1; i >= 0; i--) {
        long long sz = th_file_size(th_path(dir, names[i]));
        if (sz > 40) {
            strcpy(name, names[i]);
            return sz;
        }
    }
    cr_assert_fail("no non-empty segment");
    return 0;
}

Test(recovery, torn_tail_is_truncated_at_every_byte)
{
    rc_db *db = open_db(false);
    th_put(db, NULL, "first", "kept");
    th_put(db, NULL, "second", "also kept");
    rc_close(db);
    char name[64];
    long long base = newest_segment(name);
    char path[1024];
    strcpy(path, th_path(dir, name));
    /* append one more record, then cut it at every length */
    db = open_db(false);
    th_put(db, NULL, "last", "the torn one");
    rc_close(db);
    char name2[64];
    long long full = newest_segment(name2);
    char path2[1024];
    strcpy(path2, th_path(dir, name2));
    cr_assert_str_neq(name, name2, "the last write went to a new segment");
    int fd = open(path2, O_RDONLY);
    char *img = malloc((size_t)full);
    cr_assert_eq(pread(fd, img, (size_t)full, 0), full);
    close(fd);
    unlink(th_path(dir, "00000003.hint")); /* hints would bypass the scan */
    char hints[64][64];
    int nh = th_list(dir, ".hint", hints, 64);
    for (int i = 0; i < nh; i++)
        unlink(th_path(dir, hints[i]));
    (void)base;
    for (long long cut = 40; cut < full; cut++) {
        fd = open(path2, O_WRONLY | O_TRUNC);
        cr_assert_eq(pwrite(fd, img, (size_t)cut, 0), cut);
        close(fd);
        db = open_db(false);
        cr_assert(th_has(db, NULL, "first", "kept"), "cut %lld", cut);
        cr_assert(th_has(db, NULL, "second", "also kept"), "cut %lld", cut);
        cr_assert_eq(th_has(db, NULL, "last", "the torn one"), 0, "cut %lld", cut);
        rc_stats st;
        rc_stats_db(db, &st);
        long long nz = cut; /* torn bytes end at the last non-zero byte */
        while (nz > 40 && img[nz - 1] == 0)
            nz--;
        cr_assert_eq(st.torn_bytes, (uint64_t)(nz - 40), "cut %lld: torn %llu", cut,
                     (unsigned long long)st.torn_bytes);
        rc_close(db);
        cr_assert_eq(th_file_size(path2), 40, "cut %lld: tail not truncated", cut);
        /* the reopen made an empty segment: remove it to keep the test linear */
        char all[512][64];
        int nd = th_list(dir, ".data", all, 512);
        for (int i = 0; i < nd; i++)
            if (strcmp(all[i], name2) > 0)
                unlink(th_path(dir, all[i]));
        nh = th_list(dir, ".hint", hints, 64);
        for (int i = 0; i < nh; i++)
            unlink(th_path(dir, hints[i]));
    }
    /* the whole record back: it is there */
    fd = open(path2, O_WRONLY | O_TRUNC);
    pwrite(fd, img, (size_t)full, 0);
    close(fd);
    db = open_db(false);
    cr_assert(th_has(db, NULL, "last", "the torn one"));
    rc_close(db);
    free(img);
}

Test(recovery, zero_filled_preallocated_tail_is_not_corruption)
{
    rc_db *db = open_db(false);
    th_put(db, NULL, "a", "1");
    rc_close(db);
    char name[64];
    long long sz = newest_segment(name);
    int fd = open(th_path(dir, name), O_WRONLY);
    cr_assert_eq(ftruncate(fd, sz + 8 * 1024 * 1024), 0); /* as after a crash */
    close(fd);
    db = open_db(false);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_records, 0);
    cr_assert_eq(st.torn_bytes, 0);
    cr_assert(th_has(db, NULL, "a", "1"));
    rc_close(db);
    cr_assert_eq(th_file_size(th_path(dir, name)), sz);
}

Test(recovery, flipped_byte_in_older_segment_costs_only_that_record)
{
    rc_db *db = open_db(false);
    char k[32], v[64];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "value-%03d", i);
        th_put(db, NULL, k, v);
    }
    rc_close(db);
    db = open_db(false); /* the first segment is now an older one */
    th_put(db, NULL, "newer", "x");
    rc_close(db);
    char names[64][64];
    th_list(dir, ".data", names, 64);
    const char *first = th_path(dir, names[0]);
    long long sz = th_file_size(first);
    int fd = open(first, O_RDWR);
    long long at = 40 + (sz - 40) / 2; /* somewhere in the middle */
    uint8_t b;
    pread(fd, &b, 1, at);
    b ^= 0x01;
    pwrite(fd, &b, 1, at);
    close(fd);
    db = open_db(false);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_records, 1);
    int missing = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "value-%03d", i);
        rc_value val;
        int rc = rc_get(db, NULL, k, strlen(k), &val);
        if (rc == RC_ENOTFOUND) {
            missing++;
            continue;
        }
        cr_assert_eq(rc, 0);
        cr_assert_eq(val.len, strlen(v));
        cr_assert(memcmp(val.data, v, val.len) == 0, "wrong value for %s", k);
        rc_value_free(&val);
    }
    cr_assert_eq(missing, 1, "%d keys missing", missing);
    cr_assert(th_has(db, NULL, "newer", "x"));
    rc_close(db);

    rc_options o;
    th_options(&o);
    o.strict = true;
    o.write_hints = false;
    char hints[64][64];
    int nh = th_list(dir, ".hint", hints, 64);
    for (int i = 0; i < nh; i++)
        unlink(th_path(dir, hints[i]));
    cr_assert_eq(rc_open(dir, &o, &db), RC_ECORRUPT);
}

Test(recovery, damaged_record_is_never_returned_by_get)
{
    rc_db *db = open_db(false);
    th_put(db, NULL, "victim", "original value");
    rc_close(db);
    char name[64];
    newest_segment(name);
    const char *p = th_path(dir, name);
    long long sz = th_file_size(p);
    int fd = open(p, O_RDWR);
    uint8_t b;
    pread(fd, &b, 1, sz - 2);
    b ^= 0xFF;
    pwrite(fd, &b, 1, sz - 2);
    close(fd);
    char hints[64][64];
    int nh = th_list(dir, ".hint", hints, 64);
    for (int i = 0; i < nh; i++)
        unlink(th_path(dir, hints[i]));
    db = open_db(false);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "victim", 6, &v), RC_ENOTFOUND);
    rc_close(db);
}

Test(recovery, overwrites_and_deletes_resolve_by_sequence_across_segments)
{
    rc_db *db = open_db(true);
    th_put(db, NULL, "k", "old");
    th_put(db, NULL, "gone", "soon");
    rc_close(db);
    db = open_db(true);
    th_put(db, NULL, "k", "new");
    cr_assert_eq(rc_delete(db, NULL, "gone", 4, NULL), 0);
    rc_close(db);
    db = open_db(true);
    cr_assert(th_has(db, NULL, "k", "new"));
    cr_assert_eq(th_has(db, NULL, "gone", "soon"), 0);
    th_put(db, NULL, "gone", "back");
    rc_close(db);
    db = open_db(false);
    cr_assert(th_has(db, NULL, "gone", "back"));
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 2);
    rc_close(db);
}

Test(recovery, corruption_inside_a_batch_drops_the_whole_batch)
{
    rc_db *db = open_db(false);
    th_put(db, NULL, "before", "ok");
    rc_op ops[3] = {
        {.kind = RC_OP_PUT, .key = "b1", .klen = 2, .val = "one", .vlen = 3},
        {.kind = RC_OP_PUT, .key = "b2", .klen = 2, .val = "two", .vlen = 3},
        {.kind = RC_OP_PUT, .key = "b3", .klen = 2, .val = "three", .vlen = 5},
    };
    cr_assert_eq(rc_apply(db, ops, 3, NULL), 0);
    th_put(db, NULL, "after", "ok");
    rc_close(db);
    db = open_db(false); /* seal that segment: it is no longer the tail */
    th_put(db, NULL, "newest", "ok");
    rc_close(db);
    char names[64][64];
    th_list(dir, ".data", names, 64);
    const char *first = th_path(dir, names[0]);
    int fd = open(first, O_RDWR);
    long long sz = th_file_size(first);
    char *img = malloc((size_t)sz);
    pread(fd, img, (size_t)sz, 0);
    char *b1 = memmem(img, (size_t)sz, "b1one", 5);
    cr_assert_not_null(b1);
    img[b1 - img + 3] ^= 0x20; /* damage the batch's first record */
    pwrite(fd, img, (size_t)sz, 0);
    close(fd);
    free(img);
    char hints[64][64];
    int nh = th_list(dir, ".hint", hints, 64);
    for (int i = 0; i < nh; i++)
        unlink(th_path(dir, hints[i]));
    db = open_db(false);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_records, 1);
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "b2", 2, &v), RC_ENOTFOUND, "half a batch was applied");
    cr_assert_eq(rc_get(db, NULL, "b3", 2, &v), RC_ENOTFOUND, "half a batch was applied");
    cr_assert(th_has(db, NULL, "before", "ok"));
    cr_assert(th_has(db, NULL, "after", "ok"));
    cr_assert(th_has(db, NULL, "newest", "ok"));
    rc_close(db);
}

/* A record naming an absurd keyspace id (found by fuzz_recovery: recovery
 * sized its id-indexed table by it and asked for 8 GiB) is damage. */
Test(recovery, absurd_keyspace_id_is_damage_not_an_allocation)
{
    uint8_t seg[256];
    fmt_segment_header h = {.segment_id = 7, .db_id = 1, .created_ms = 1};
    fmt_segment_header_encode(seg, &h);
    fmt_record r = {.seq = 1,
                    .ks = 1u << 30,
                    .key = (const uint8_t *)"k",
                    .klen = 1,
                    .val = (const uint8_t *)"v",
                    .vlen = 1};
    size_t n = fmt_record_encode(seg + FMT_SEG_HEADER_LEN, sizeof(seg) - FMT_SEG_HEADER_LEN, &r);
    cr_assert_gt(n, 0);
    fmt_record ok = {.seq = 2,
                     .ks = 1,
                     .key = (const uint8_t *)"good",
                     .klen = 4,
                     .val = (const uint8_t *)"yes",
                     .vlen = 3};
    size_t m =
        fmt_record_encode(seg + FMT_SEG_HEADER_LEN + n, sizeof(seg) - FMT_SEG_HEADER_LEN - n, &ok);
    int fd = open(th_path(dir, "00000007.data"), O_WRONLY | O_CREAT, 0644);
    cr_assert_eq(write(fd, seg, FMT_SEG_HEADER_LEN + n + m), (ssize_t)(FMT_SEG_HEADER_LEN + n + m));
    close(fd);
    rc_db *db = open_db(false);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.corrupt_records, 1);
    cr_assert(th_has(db, NULL, "good", "yes"));
    rc_close(db);
}

/* A segment written by a newer format version (FORMAT.md section 2): the open
 * is refused with RC_EVERSION naming the file, and nothing on disk changes —
 * an older build must never take the newer header for a torn one and cut the
 * segment (an operator going back a version after an upgrade). */
static void read_all(const char *path, unsigned char *buf, long long len)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pread(fd, buf, (size_t)len, 0), (ssize_t)len);
    close(fd);
}

Test(recovery, newer_segment_version_is_refused_and_left_untouched)
{
    rc_db *db = open_db(false); /* no hints: the open must scan */
    fill(db, 20, 1);
    cr_assert_eq(rc_close(db), 0);
    char names[8][64];
    cr_assert_eq(th_list(dir, ".data", names, 8), 1);
    const char *seg = th_path(dir, names[0]);
    long long len = th_file_size(seg);
    cr_assert_gt(len, FMT_SEG_HEADER_LEN);
    unsigned char *before = malloc((size_t)len), *after = malloc((size_t)len);
    read_all(seg, before, len);
    unsigned char v2[2] = {FMT_SEG_VERSION + 1, 0};
    int fd = open(seg, O_WRONLY);
    cr_assert_eq(pwrite(fd, v2, 2, 4), 2);
    close(fd);
    before[4] = v2[0];
    before[5] = v2[1];

    rc_options o;
    th_options(&o);
    cr_assert_eq(rc_open(dir, &o, &db), RC_EVERSION);
    cr_expect(strstr(rc_last_error_message(), names[0]) != NULL, "%s", rc_last_error_message());
    cr_expect(strstr(rc_last_error_message(), "newer") != NULL, "%s", rc_last_error_message());
    cr_assert_eq(th_file_size(seg), len, "the newer segment was truncated");
    read_all(seg, after, len);
    cr_assert(memcmp(before, after, (size_t)len) == 0, "the newer segment was modified");
    cr_assert_eq(th_list(dir, ".data", names, 8), 1, "the refused open created a segment");
    free(before);
    free(after);
}

/* The small files follow the same rule: a HORIZON or MERGING of a newer
 * version is refused with RC_EVERSION, and a MERGING is neither acted on nor
 * removed. */
Test(recovery, newer_small_file_versions_are_refused)
{
    rc_db *db = open_db(true);
    fill(db, 5, 1);
    cr_assert_eq(rc_close(db), 0);
    static const char *const files[] = {"HORIZON", "MERGING"};
    static const unsigned char magic[][4] = {{'R', 'C', 'H', 'Z'}, {'R', 'C', 'M', 'G'}};
    for (int i = 0; i < 2; i++) {
        unsigned char buf[32] = {0};
        memcpy(buf, magic[i], 4);
        buf[4] = 9; /* version 9 */
        const char *path = th_path(dir, files[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
        close(fd);
        rc_options o;
        th_options(&o);
        cr_assert_eq(rc_open(dir, &o, &db), RC_EVERSION, "%s v9: %s", files[i],
                     rc_last_error_message());
        cr_expect(strstr(rc_last_error_message(), files[i]) != NULL, "%s", rc_last_error_message());
        cr_assert_eq(th_file_size(th_path(dir, files[i])), (long long)sizeof buf, "%s was changed",
                     files[i]);
        unlink(th_path(dir, files[i]));
    }
    db = open_db(true);
    cr_assert_eq(th_has(db, NULL, "key0004", "v1-4"), 1);
    cr_assert_eq(rc_close(db), 0);
}
