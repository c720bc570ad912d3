/* Disk footprint, measured as kvbench measures it: the allocated blocks
 * (st_blocks) of every file in the directory, against the raw key and value
 * bytes of the live keys (16-byte keys, 100-byte values). Data plus hints
 * stay within 1.15x raw after a fill and a clean close, and within it after
 * a reopen (whose new active segment preallocates only a little); after
 * every key was overwritten and the database merged, within 1.3x the live
 * bytes. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEYS 300000u
#define KLEN 16u
#define VLEN 100u
#define RAW ((double)KEYS * (KLEN + VLEN))

static char *dir;

static void setup(void)
{
    dir = th_tmpdir();
}
static void teardown(void)
{
    th_rmdir(dir);
}

/* Allocated bytes of the files in DIR; *NEWEST_DATA: those of the newest
 * segment file. */
static unsigned long long disk_use(unsigned long long *newest_data)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    unsigned long long sum = 0, newest = 0;
    char best[64] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        struct stat st;
        cr_assert_eq(stat(th_path(dir, e->d_name), &st), 0);
        unsigned long long used = (unsigned long long)st.st_blocks * 512u;
        sum += used;
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".data") == 0 && strcmp(e->d_name, best) > 0) {
            snprintf(best, sizeof best, "%s", e->d_name);
            newest = used;
        }
    }
    closedir(d);
    if (newest_data)
        *newest_data = newest;
    return sum;
}

static rc_db *open_db(uint64_t segment_bytes)
{
    rc_options o;
    th_options(&o);
    o.segment_bytes = segment_bytes;
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
    return db;
}

/* Put every key once with a value that depends on ROUND (incompressible
 * enough: the values are below the compression threshold anyway). */
static void fill(rc_db *db, unsigned round)
{
    uint8_t key[KLEN + 1], val[VLEN];
    uint64_t x = 0x9E3779B97F4A7C15ull * (round + 1);
    for (unsigned i = 0; i < KEYS; i++) {
        snprintf((char *)key, sizeof key, "key%013u", i);
        for (unsigned b = 0; b < VLEN; b++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            val[b] = (uint8_t)x;
        }
        cr_assert_eq(rc_put(db, NULL, key, KLEN, val, VLEN, 0), 0);
    }
}

Test(footprint, data_and_hints_stay_within_1_15x_raw_and_a_reopen_adds_little, .init = setup,
     .fini = teardown, .timeout = 600)
{
    rc_db *db = open_db(256u << 20);
    fill(db, 0);
    cr_assert_eq(rc_close(db), 0);
    unsigned long long closed = disk_use(NULL);
    cr_assert_leq((double)closed, 1.15 * RAW, "after close: %.3fx raw", (double)closed / RAW);

    db = open_db(256u << 20);
    unsigned long long active = 0, open = disk_use(&active);
    /* the new, empty active segment holds its first preallocation step */
    cr_assert_leq(active, 256u * 1024u + 4096u, "idle active segment: %llu bytes", active);
    cr_assert_leq((double)open, 1.15 * RAW, "reopened: %.3fx raw", (double)open / RAW);
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_eq(st.live_keys, KEYS);
    cr_assert_eq(st.hint_files_used, 1);
    cr_assert_eq(rc_close(db), 0);
}

Test(footprint, after_overwrites_and_a_merge_within_1_3x_live, .init = setup, .fini = teardown,
     .timeout = 600)
{
    rc_db *db = open_db(8u << 20);
    fill(db, 0);
    fill(db, 1);
    fill(db, 2);
    cr_assert_eq(rc_close(db), 0); /* seals the active segment */
    db = open_db(8u << 20);
    cr_assert_eq(rc_merge(db), 0);
    unsigned long long merged = disk_use(NULL);
    cr_assert_leq((double)merged, 1.3 * RAW, "after merge: %.3fx live", (double)merged / RAW);
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_eq(st.live_keys, KEYS);
    cr_assert_eq(rc_close(db), 0);
    merged = disk_use(NULL);
    cr_assert_leq((double)merged, 1.3 * RAW, "after close: %.3fx live", (double)merged / RAW);
}
