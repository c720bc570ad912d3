/*
 * kvdbackup.h — for the suites that fetch kvd's /admin/backup and load the
 * stream through the engine API (they link ringcask): a reader over the
 * fetched bytes, the fetch and the load. Include after kvdtest.h.
 */
#ifndef KVD_TEST_KVDBACKUP_H
#define KVD_TEST_KVDBACKUP_H

#include <stdint.h>

#include "kvdtest.h"
#include "ringcask.h"

/* An rc_read_fn over a buffer in memory (a fetched backup stream). */
typedef struct membuf {
    const char *data;
    size_t len, off;
} membuf;

static inline long mem_read(void *ctx, void *buf, size_t len)
{
    membuf *m = ctx;
    size_t n = m->len - m->off < len ? m->len - m->off : len;
    memcpy(buf, m->data + m->off, n);
    m->off += n;
    return (long)n;
}

/* GET /admin/backup?since=SINCE with TOKEN: a 200 with the stream. */
static inline resp kvd_backup_since(const char *token, uint64_t since)
{
    char path[64];
    snprintf(path, sizeof path, "/admin/backup?since=%llu", (unsigned long long)since);
    resp r = call_as(token, "GET", path, NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "backup since %llu: %ld %.200s", (unsigned long long)since,
                 r.status, r.body);
    return r;
}

/* Load the stream R holds into DB; its end (info.until). */
static inline uint64_t kvd_load_stream(rc_db *db, const resp *r)
{
    membuf m = {r->body, r->len, 0};
    rc_backup_info info;
    memset(&info, 0, sizeof info);
    cr_assert_eq(rc_load(db, mem_read, &m, NULL, NULL, &info), 0, "load: %s",
                 rc_last_error_message());
    return info.until;
}

#endif
