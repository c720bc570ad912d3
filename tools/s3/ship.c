/*
 * ship.c — upload a database's next backup to the object store: spool the
 * stream (rc_backup) to an unlinked temporary file while hashing it, upload
 * it under its final name, then write the manifest naming the whole chain.
 */
#include "store_internal.h"
#include "stream_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

int rcbsi_tmpfile(void)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/ringcask-s3.XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

int rcbs_database_id(rc_db *db, const char *dir, char *out, size_t cap)
{
#ifdef RC_DATABASE_ID_LEN
    /* the engine's identity: the X-Ringcask-Database of /admin/backup */
    (void)dir;
    char id[RC_DATABASE_ID_LEN + 1];
    if (cap < sizeof id || rc_database_id(db, id) != 0 || !rcm_db_id_valid(id))
        return -1;
    memcpy(out, id, sizeof id);
    return 0;
#else
    /* Interim identity for an engine without rc_database_id: the SHA-256 of
     * the directory's real path, so one directory ships under one name. */
    (void)db;
    char real[PATH_MAX];
    if (realpath(dir, real) == NULL)
        return -1;
    unsigned char sha[32];
    char hex[65];
    crypto_hash_sha256(sha, (const unsigned char *)real, strlen(real));
    rcs3_hex(sha, hex);
    hex[32] = '\0';
    if (cap < 33)
        return -1;
    memcpy(out, hex, 33);
    return 0;
#endif
}

typedef struct spool {
    int fd;
    crypto_hash_sha256_state sha;
    uint64_t bytes;
    int error;
} spool;

static int spool_write(void *ctx, const void *buf, size_t len)
{
    spool *sp = ctx;
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(sp->fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            sp->error = errno ? errno : EIO;
            return -1;
        }
        done += (size_t)w;
    }
    crypto_hash_sha256_update(&sp->sha, buf, len);
    sp->bytes += len;
    return 0;
}

static int spool_reset(spool *sp)
{
    sp->bytes = 0;
    sp->error = 0;
    crypto_hash_sha256_init(&sp->sha);
    if (ftruncate(sp->fd, 0) != 0 || lseek(sp->fd, 0, SEEK_SET) != 0)
        return -1;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Does the previous chain call for a new full (kvd's policy)? */
static bool chain_outgrown(const rcm_manifest *prev)
{
    if (prev->n >= RCBS_CHAIN_FULL)
        return true;
    uint64_t full = prev->chain[0].size;
    return prev->n > 1 && prev->bytes - full >= full;
}

static int engine_fail(rcbs *s, int err, const char *what)
{
    snprintf(s->err, sizeof s->err, "%s: %s", what, rct_engine_detail(err));
    s->engine_err = err;
    return RCBS_EENGINE;
}

int rcbs_ship(rcbs *s, rc_db *db, const char *db_id, const rcbs_ship_opts *o, rcbs_ship_result *res)
{
    memset(res, 0, sizeof *res);
    rcm_manifest prev = {0};
    bool have_prev = false;
    int rc = rcbs_newest(s, db_id, &prev);
    if (rc == 0)
        have_prev = true;
    else if (rc != RCBS_ENONE)
        return rc;
    bool full = !have_prev || o->force_full || (o->auto_full && chain_outgrown(&prev));
    uint64_t since = full ? 0 : prev.until;
    rc_stats st = {0};
    rc_stats_db(db, &st);
    if (have_prev && st.last_seq < prev.until) {
        snprintf(s->err, sizeof s->err,
                 "the newest backup of database %s in %s reaches seq %" PRIu64
                 ", past this database's last seq %" PRIu64
                 " (restored from an older backup?): nothing uploaded",
                 db_id, s->url, prev.until, st.last_seq);
        rcm_free(&prev);
        return RCBS_EBEHIND;
    }
    if (!full && st.last_seq == since) {
        res->since = res->until = since;
        rcm_free(&prev);
        return 0; /* nothing new */
    }

    spool sp = {.fd = rcbsi_tmpfile()};
    if (sp.fd < 0) {
        snprintf(s->err, sizeof s->err, "cannot create a temporary file in %s: %s",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", strerror(errno));
        rcm_free(&prev);
        return RCBS_ELOCAL;
    }
    crypto_hash_sha256_init(&sp.sha);
    rc_backup_info info = {0};
    int err = rc_backup(db, since, spool_write, &sp, NULL, NULL, &info);
    if (err == RC_EHORIZON && !full) {
        full = true;
        res->horizon = true;
        since = 0;
        if (spool_reset(&sp) != 0) {
            err = RC_EIO;
            sp.error = errno;
        } else {
            err = rc_backup(db, 0, spool_write, &sp, NULL, NULL, &info);
        }
    }
    if (err != 0) {
        if (sp.error)
            snprintf(s->err, sizeof s->err, "cannot write the temporary file: %s",
                     strerror(sp.error));
        rc = sp.error ? RCBS_ELOCAL
             : err == RC_EGAP
                 ? (snprintf(s->err, sizeof s->err,
                             "database %s is behind its newest backup in %s (until %" PRIu64 ")",
                             db_id, s->url, since),
                    RCBS_EBEHIND)
                 : engine_fail(s, err, "backup failed");
        close(sp.fd);
        rcm_free(&prev);
        return rc;
    }
    /* Nothing new; or a full at a point whose full is already stored (its
     * name is taken: uploading again would replace the bytes an existing
     * manifest's SHA-256 names). */
    if ((!full && info.until == since) ||
        (full && have_prev && prev.chain[0].until == info.until)) {
        close(sp.fd);
        res->since = res->until = info.until;
        rcm_free(&prev);
        return 0;
    }

    rcm_object obj;
    memset(&obj, 0, sizeof obj);
    obj.full = full;
    obj.since = since;
    obj.until = info.until;
    obj.size = sp.bytes;
    unsigned char sha[32];
    crypto_hash_sha256_final(&sp.sha, sha);
    rcs3_hex(sha, obj.sha256);
    if (full)
        rcm_full_name(obj.name, sizeof obj.name, db_id, obj.until);
    else
        rcm_inc_name(obj.name, sizeof obj.name, db_id, since, obj.until);

    char key[1200];
    if (rcbsi_key(s, obj.name, key, sizeof key) != 0) {
        close(sp.fd);
        rcm_free(&prev);
        snprintf(s->err, sizeof s->err, "object name too long");
        return RCBS_ELOCAL;
    }
    /* 1. the stream */
    if (rcs3_put_fd(s->s3, key, sp.fd, sp.bytes, sha) != 0) {
        close(sp.fd);
        rcm_free(&prev);
        return rcbsi_store_error(s);
    }
    close(sp.fd);

    /* 2. the manifest, last */
    rcm_manifest m = {0};
    rc = 0;
    snprintf(m.database, sizeof m.database, "%s", db_id);
    if (!full)
        for (size_t i = 0; i < prev.n; i++)
            if (rcm_append(&m, &prev.chain[i]) != 0)
                rc = RCBS_ELOCAL;
    if (rc == 0 && rcm_append(&m, &obj) != 0)
        rc = RCBS_ELOCAL;
    m.time_ms = now_ms();
    char *text = rc == 0 ? rcm_dump(&m) : NULL;
    if (text == NULL) {
        snprintf(s->err, sizeof s->err, "out of memory");
        rcm_free(&m);
        rcm_free(&prev);
        return RCBS_ELOCAL;
    }
    char rel[RCM_DB_ID_MAX + 48];
    rcm_manifest_name(rel, sizeof rel, db_id, m.until);
    rc = rcbsi_key(s, rel, key, sizeof key) != 0 ? RCBS_ELOCAL : 0;
    if (rc == 0 && rcs3_put_mem(s->s3, key, text, strlen(text), "application/json") != 0)
        rc = rcbsi_store_error(s);
    free(text);
    if (rc == 0) {
        res->uploaded = true;
        res->full = full;
        res->since = since;
        res->until = obj.until;
        res->bytes = obj.size;
        res->records = info.records;
        res->tombstones = info.tombstones;
        res->chain = m.n;
        memcpy(res->object, obj.name, sizeof res->object);
    }
    rcm_free(&m);
    rcm_free(&prev);
    return rc;
}
