/*
 * make_recovery_seeds.c — seeds for fuzz_recovery: real segment and hint
 * files written by the engine (puts, a batch, a delete, a TTL, a keyspace
 * with a default TTL, a compressed value), each packed as the harness reads
 * them: control byte, u32 data length, data, hint (or, with control bit 2, a
 * LOADING marker: one naming segment 1, one naming other ids).
 * Usage: make_recovery_seeds CORPUS_DIR (writes CORPUS_DIR/fuzz_recovery/).
 */
#include "ringcask.h"
#include "format/meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *n = 0;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

static void put(const char *out, const char *name, uint8_t ctl, const uint8_t *d, size_t dn,
                const uint8_t *h, size_t hn)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/fuzz_recovery/%s-%u", out, name, ctl);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint8_t hdr[5] = {ctl, (uint8_t)dn, (uint8_t)(dn >> 8), (uint8_t)(dn >> 16),
                      (uint8_t)(dn >> 24)};
    fwrite(hdr, 1, 5, f);
    fwrite(d, 1, dn, f);
    if (h)
        fwrite(h, 1, hn, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    char sub[1024], tmpl[] = "/tmp/rc-seeds-XXXXXX";
    snprintf(sub, sizeof(sub), "%s/fuzz_recovery", argv[1]);
    if (mkdir(sub, 0755) != 0 && errno != EEXIST)
        return 1;
    char *dir = mkdtemp(tmpl);
    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE;
    o.merge_check_ms = 0;
    rc_db *db;
    if (!dir || rc_open(dir, &o, &db) != 0)
        return 1;
    rc_put(db, NULL, "alpha", 5, "one", 3, NULL);
    rc_put(db, NULL, "beta", 4, "two", 3, NULL);
    rc_op ops[3] = {
        {.kind = RC_OP_PUT, .key = "b1", .klen = 2, .val = "x", .vlen = 1},
        {.kind = RC_OP_INCR, .key = "ctr", .klen = 3, .by = {.type = RC_TYPE_INT, .i = 5}},
        {.kind = RC_OP_PUT,
         .key = "j",
         .klen = 1,
         .val = "{}",
         .vlen = 2,
         .type = RC_TYPE_JSON,
         .ttl_ms = 3600000},
    };
    rc_apply(db, ops, 3, NULL);
    rc_value_free(&ops[1].result);
    rc_delete(db, NULL, "beta", 4, NULL);
    rc_keyspace *ks;
    rc_keyspace_open(db, "users", RC_KS_CREATE, &ks);
    rc_keyspace_set_default_ttl(ks, 60000);
    char big[2048];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "abcd"[i % 4];
    rc_put(db, ks, "big", 3, big, sizeof(big), NULL);
    rc_close(db);
    char p1[512], p2[512];
    snprintf(p1, sizeof(p1), "%s/00000001.data", dir);
    snprintf(p2, sizeof(p2), "%s/00000001.hint", dir);
    size_t dn, hn;
    uint8_t *d = slurp(p1, &dn), *h = slurp(p2, &hn);
    if (!d)
        return 1;
    put(argv[1], "segment", 0, d, dn, NULL, 0);
    put(argv[1], "segment", 1, d, dn, NULL, 0);
    put(argv[1], "segment-strict", 3, d, dn, NULL, 0);
    if (h) {
        put(argv[1], "with-hint", 0, d, dn, h, hn);
        put(argv[1], "with-hint", 1, d, dn, h, hn);
    }
    put(argv[1], "torn", 1, d, dn - 3, NULL, 0);
    uint8_t mk[FMT_LOADING_LEN];
    fmt_loading_encode(mk, 1, 1);
    put(argv[1], "loading", 5, d, dn, mk, sizeof(mk));
    fmt_loading_encode(mk, 2, 40);
    put(argv[1], "loading-other", 5, d, dn, mk, sizeof(mk));
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    free(d);
    free(h);
    return 0;
}
