/*
 * fuzz_recovery.c — whole-directory recovery on arbitrary files.
 *
 * Input: one control byte, a u32 (little-endian) length L, then L bytes that
 * become 00000001.data and the rest, if any, 00000001.hint. Control bit 0
 * reseals the checksums (segment header, each record the header parser can
 * delimit, the hint trailer) so that mutations reach batch framing, keyspace
 * catalogue, tombstone and TTL handling instead of dying at a checksum; bit 1
 * opens in strict mode; bit 2 makes the rest a LOADING marker (an interrupted
 * full load, FORMAT.md 10.3; resealed with bit 0) instead of the hint. The
 * harness opens the directory (recovery truncates torn tails, skips damage),
 * lists every keyspace with values — every value read is checksum-verified
 * by the engine — writes one key, closes, and reopens once more: no crash,
 * no leak, no sanitizer report, and the second open must succeed whenever
 * the first did.
 */
#include "fuzz_util.h"

#include "format/hint.h"
#include "format/meta.h"
#include "format/record.h"
#include "format/segment.h"
#include "ringcask.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

static char dir[64];

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char path[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

static void reseal(uint8_t *data, size_t len, uint8_t *hint, size_t hlen)
{
    if (len >= FMT_SEG_HEADER_LEN) {
        fmt_put_u32(data + 36, fmt_hash32(data, 36));
        size_t off = FMT_SEG_HEADER_LEN;
        while (off < len) {
            fmt_record r;
            if (fmt_record_peek(data + off, len - off, &r) != FMT_OK || r.total_len < 5 ||
                r.total_len > len - off)
                break;
            fmt_put_u32(data + off, fmt_hash32(data + off + 4, r.total_len - 4));
            off += r.total_len;
        }
    }
    if (hlen >= FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN)
        fmt_put_u64(hint + hlen - 8, fmt_hash64(hint, hlen - 8));
}

static void reseal_loading(uint8_t *m, size_t len)
{
    if (len == FMT_LOADING_LEN)
        fmt_put_u64(m + 24, fmt_hash64(m, 24));
}

static int visit_all(rc_db *db)
{
    char **names;
    size_t n;
    int rc = rc_keyspace_list(db, &names, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc_keyspace *ks;
        if (rc_keyspace_open(db, names[i], 0, &ks) != 0)
            continue;
        rc_list *l;
        rc_list_opts o = {.values = true};
        if (rc_list_keys(db, ks, &o, &l) == 0) {
            for (size_t j = 0; j < l->count; j++) {
                rc_value v;
                int g = rc_get(db, ks, l->items[j].key, l->items[j].klen, &v);
                FUZZ_CHECK(g == 0 || g == RC_ENOTFOUND || g == RC_ECORRUPT);
                if (g == 0) {
                    FUZZ_CHECK(v.len == l->items[j].value.len);
                    rc_value_free(&v);
                }
            }
            rc_list_free(l);
        }
        rc_stats st;
        rc_stats_keyspace(db, ks, &st);
    }
    rc_names_free(names, n);
    return 0;
}

static void remove_dir(void)
{
    clear_dir();
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (!dir[0]) {
        /* tmpfs where there is one: every open and close syncs, and on a
         * real disk that costs more than the recovery being fuzzed */
        snprintf(dir, sizeof(dir), "/dev/shm/fuzz-recovery-XXXXXX");
        if (!mkdtemp(dir)) {
            snprintf(dir, sizeof(dir), "/tmp/fuzz-recovery-XXXXXX");
            FUZZ_CHECK(mkdtemp(dir) != NULL);
        }
        atexit(remove_dir); /* libFuzzer exits normally at -max_total_time */
    }
    if (size < 5)
        return 0;
    uint8_t ctl = in[0];
    size_t len = fmt_get_u32(in + 1);
    if (len > size - 5)
        len = size - 5;
    uint8_t *data = fuzz_copy(in + 5, len);
    size_t hlen = size - 5 - len;
    uint8_t *hint = fuzz_copy(in + 5 + len, hlen);
    bool loading = (ctl & 4) != 0;
    if (ctl & FUZZ_RESEAL) {
        reseal(data, len, loading ? NULL : hint, loading ? 0 : hlen);
        if (loading)
            reseal_loading(hint, hlen);
    }
    clear_dir();
    write_file("00000001.data", data, len);
    if (hlen)
        write_file(loading ? "LOADING" : "00000001.hint", hint, hlen);
    free(data);
    free(hint);

    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE;
    o.merge_check_ms = 0;
    o.ttl_sweep_ms = 0;
    o.strict = (ctl & 2) != 0;
    rc_db *db;
    int rc = rc_open(dir, &o, &db);
    if (rc == 0) {
        visit_all(db);
        rc_put(db, NULL, "fuzz", 4, "x", 1, NULL);
        FUZZ_CHECK(rc_close(db) == 0);
        o.strict = false;
        FUZZ_CHECK(rc_open(dir, &o, &db) == 0); /* what recovered once reopens */
        visit_all(db);
        rc_value v;
        FUZZ_CHECK(rc_get(db, NULL, "fuzz", 4, &v) == 0);
        rc_value_free(&v);
        rc_close(db);
    } else {
        FUZZ_CHECK(rc == RC_ECORRUPT || rc == RC_EVERSION || rc == RC_ENOMEM || rc == RC_EIO ||
                   rc == RC_ELIMIT);
    }
    return 0;
}
