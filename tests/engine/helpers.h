/* Shared helpers of the engine tests: scratch directories and small-segment
 * options, so that tests exercise rotation and many files quickly. */
#ifndef RC_TEST_HELPERS_H
#define RC_TEST_HELPERS_H

#include "ringcask.h"
#include <stddef.h>
#include <stdint.h>

/* A fresh empty directory under $TMPDIR (or /tmp); free with th_rmdir. */
char *th_tmpdir(void);
/* Remove DIR and everything in it, and free the string. */
void th_rmdir(char *dir);
/* Defaults with sync none, 64 KiB segments, background merge off. The
 * append path comes from $RC_TEST_APPEND_IO (mmap, uring, pwrite; unset:
 * auto), so that ctest runs the crash and fault suites against each: "uring"
 * and "pwrite" leave auto here (those paths need sync always) and
 * th_sync_always asks for them. */
void th_options(rc_options *o);
/* O->sync = RC_SYNC_ALWAYS with the append path $RC_TEST_APPEND_IO names
 * (uring: RC_APPEND_URING, pwrite: RC_APPEND_PWRITE, so that rc_open fails
 * rather than fall back). */
void th_sync_always(rc_options *o);
/* The path $RC_TEST_APPEND_IO names for sync always (RC_APPEND_AUTO unset). */
rc_append_io th_append_io(void);
/* Path of DIR/NAME in a static buffer. */
const char *th_path(const char *dir, const char *name);
/* Size of a file, -1 if absent. */
long long th_file_size(const char *path);
/* Names ending in EXT in DIR, sorted; returns the count (at most MAX). */
int th_list(const char *dir, const char *ext, char names[][64], int max);
/* Put/get conveniences on NUL-terminated strings (asserting success). */
void th_put(rc_db *db, rc_keyspace *ks, const char *k, const char *v);
/* 1 if KEY has value V, 0 if absent; fails the test on any other outcome. */
int th_has(rc_db *db, rc_keyspace *ks, const char *k, const char *v);

/* A stream in memory for rc_backup/rc_load: th_mem_write (an rc_write_fn)
 * appends to P, growing it (free P); th_mem_read (an rc_read_fn) reads from
 * POS, at most MAX_READ bytes per call when it is not 0. */
typedef struct th_membuf {
    uint8_t *p;
    size_t len, cap, pos;
    size_t max_read;
} th_membuf;
int th_mem_write(void *ctx, const void *buf, size_t len);
long th_mem_read(void *ctx, void *buf, size_t len);
/* The whole visible state as text (free it): keyspaces, default TTLs, and
 * per key its value, type, seq and expiry. */
char *th_dump(rc_db *db);

#endif
