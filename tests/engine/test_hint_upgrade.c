/* Hint files, version 2 (FORMAT.md 6): keyless entries in blocks, one hint
 * loaded by several threads; the upgrade path from version 1.
 *
 * - One segment of 20000 records (more than four blocks) reopens to the same
 *   state with 1 and with 4 recovery threads, from its hint.
 * - Version 1 hints (made here from the v2 ones and the segments) still load,
 *   to the same state; a merge rewrites them as version 2.
 * - A v2 hint whose entry disagrees with the record it names is not used:
 *   the segment is scanned instead. */
#include "helpers.h"

#include "format/hint.h"
#include "format/record.h"
#include "format/segment.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

TestSuite(hint2, .init = setup, .fini = teardown);

static rc_db *open_db(uint32_t threads)
{
    rc_options o;
    th_options(&o);
    o.segment_bytes = 4u << 20;
    o.recovery_threads = threads;
    rc_db *db = NULL;
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open: %s", rc_last_error_message());
    return db;
}

/* 20000 keys in two keyspaces, overwrites, deletes and TTLs. */
static void fill(rc_db *db)
{
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "other", RC_KS_CREATE, &ks), 0);
    char key[32], val[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "key-%06d", (i * 7919) % 20000);
        snprintf(val, sizeof val, "v%d", i);
        rc_op op = {.kind = RC_OP_PUT,
                    .ks = i % 5 == 0 ? ks : NULL,
                    .key = key,
                    .klen = strlen(key),
                    .val = val,
                    .vlen = strlen(val),
                    .ttl_ms = i % 7 == 0 ? 3600000 : RC_TTL_DEFAULT};
        cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    }
    for (int i = 0; i < 20000; i += 3) {
        snprintf(key, sizeof key, "key-%06d", i);
        rc_delete(db, NULL, key, strlen(key), NULL);
    }
}

static uint64_t hints_used(rc_db *db)
{
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    return st.hint_files_used;
}

static uint8_t *slurp(const char *name, size_t *len)
{
    const char *p = th_path(dir, name);
    long long sz = th_file_size(p);
    cr_assert_geq(sz, 0, "%s", name);
    uint8_t *buf = malloc((size_t)sz + 1);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, (size_t)sz, 0), sz);
    close(fd);
    *len = (size_t)sz;
    return buf;
}

static void spill(const char *name, const uint8_t *buf, size_t len)
{
    int fd = open(th_path(dir, name), O_WRONLY | O_TRUNC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* Every hint's version; returns how many hints there are. */
static int hint_versions(int want)
{
    char names[64][64];
    int n = th_list(dir, ".hint", names, 64);
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *h = slurp(names[i], &len);
        cr_assert_eq(fmt_get_u16(h + 4), want, "%s", names[i]);
        free(h);
    }
    return n;
}

Test(hint2, one_hint_split_across_threads_gives_the_same_state)
{
    rc_db *db = open_db(1);
    fill(db);
    char *before = th_dump(db);
    rc_close(db);
    cr_assert_eq(hint_versions(2), 1, "one segment, one hint");
    size_t len;
    uint8_t *h = slurp("00000001.hint", &len);
    cr_assert_gt(fmt_get_u64(h + 24), 4u * FMT_HINT2_BLOCK, "more than four blocks");
    free(h);
    for (uint32_t threads = 1; threads <= 4; threads += 3) {
        db = open_db(threads);
        cr_assert_eq(hints_used(db), 1);
        char *after = th_dump(db);
        cr_assert_str_eq(after, before, "%u threads", threads);
        free(after);
        rc_close(db);
    }
    free(before);
}

/* Rewrite NAME (a v2 hint) as the version 1 hint of the same records, the
 * keys read from the segment DATA. */
typedef struct to_v1 {
    const uint8_t *data;
    uint8_t *out;
    size_t pos, cap;
} to_v1;

static int v1_entry(void *ctx, const fmt_hint_header *h, uint64_t i, const fmt_hint_entry *e,
                    size_t pos)
{
    (void)h, (void)i, (void)pos;
    to_v1 *t = ctx;
    fmt_record r;
    cr_assert_eq(fmt_record_peek(t->data + e->offset, e->total_len, &r), FMT_OK);
    fmt_hint_entry v = *e;
    v.key = r.key;
    size_t n = fmt_hint_entry_encode(t->out + t->pos, t->cap - t->pos, &v);
    cr_assert_gt(n, 0);
    t->pos += n;
    return 0;
}

static void downgrade(const char *hint_name)
{
    char data_name[64];
    snprintf(data_name, sizeof data_name, "%.8s.data", hint_name);
    size_t hlen, dlen;
    uint8_t *h2 = slurp(hint_name, &hlen);
    uint8_t *data = slurp(data_name, &dlen);
    to_v1 t = {.data = data, .cap = hlen * 8 + 4096 + dlen};
    t.out = malloc(t.cap);
    t.pos = FMT_HINT_HEADER_LEN;
    fmt_hint_header h;
    cr_assert_eq(fmt_hint_file_walk(h2, hlen, &h, v1_entry, &t), FMT_OK);
    h.version = 1;
    fmt_hint_header_encode(t.out, &h);
    fmt_put_u64(t.out + t.pos, fmt_hash64(t.out, t.pos));
    spill(hint_name, t.out, t.pos + FMT_HINT_TRAILER_LEN);
    free(t.out);
    free(h2);
    free(data);
}

Test(hint2, version_1_hints_still_load_and_merge_rewrites_them)
{
    rc_options o;
    th_options(&o);
    o.segment_bytes = 256u << 10; /* several segments */
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    fill(db);
    char *before = th_dump(db);
    rc_close(db);
    char names[64][64];
    int n = th_list(dir, ".hint", names, 64);
    cr_assert_gt(n, 2);
    for (int i = 0; i < n; i++)
        downgrade(names[i]);
    hint_versions(1);
    o.recovery_threads = 2;
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    cr_assert_eq(hints_used(db), (uint64_t)n, "every version 1 hint was used");
    char *after = th_dump(db);
    cr_assert_str_eq(after, before);
    free(after);
    cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    rc_close(db);
    cr_assert_gt(hint_versions(2), 0, "the merge wrote version 2 hints");
    cr_assert_eq(rc_open(dir, &o, &db), 0);
    after = th_dump(db);
    cr_assert_str_eq(after, before);
    free(after);
    rc_close(db);
    free(before);
}

Test(hint2, a_hint_that_disagrees_with_its_segment_is_scanned_instead)
{
    rc_db *db = open_db(2);
    th_put(db, NULL, "first", "1111");
    th_put(db, NULL, "second", "2222");
    th_put(db, NULL, "third", "3333");
    rc_close(db);
    /* turn the record of "second" into a different one: its value type
     * bits change, so the header no longer says what the hint says (and
     * its checksum fails: a scan drops it) */
    size_t len;
    uint8_t *data = slurp("00000001.data", &len);
    uint8_t *hit = memmem(data, len, "second", 6);
    cr_assert_not_null(hit);
    size_t off = FMT_SEG_HEADER_LEN;
    while (off < len) {
        fmt_record r;
        cr_assert_eq(fmt_record_peek(data + off, len - off, &r), FMT_OK);
        if (r.key == hit)
            break;
        off += r.total_len;
    }
    data[off + 4] ^= 1u << 2; /* the type bits of the flags */
    spill("00000001.data", data, len);
    free(data);
    db = open_db(2);
    cr_assert_eq(hints_used(db), 0, "the hint was not used");
    cr_assert(th_has(db, NULL, "first", "1111"));
    cr_assert(th_has(db, NULL, "third", "3333"));
    rc_value v;
    cr_assert_eq(rc_get(db, NULL, "second", 6, &v), RC_ENOTFOUND);
    rc_close(db);
}
