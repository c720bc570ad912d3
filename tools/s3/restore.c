/*
 * restore.c — restore a chain from the object store into a new directory.
 *
 * Every object the chosen manifest names is downloaded to an unlinked
 * temporary file and checked — size and SHA-256 against the manifest, then
 * the stream itself (rc_verify_stream: framing, checksums, since/until) —
 * before anything is applied. The chain is then loaded into a staging
 * directory next to the target, which is renamed onto the target only when
 * every stream has loaded and been synced: a failure anywhere leaves the
 * target as it was.
 */
#include "store_internal.h"
#include "stream_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long fd_read(void *ctx, void *buf, size_t len)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -1 : (long)n;
    }
}

/* 0: DIR is absent or an empty directory; RCBS_ETARGET otherwise. */
static int check_target(rcbs *s, const char *dir, bool *exists)
{
    struct stat st;
    *exists = false;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(s->err, sizeof s->err, "cannot use '%s': %s", dir, strerror(errno));
        return RCBS_ETARGET;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(s->err, sizeof s->err, "'%s' exists and is not a directory", dir);
        return RCBS_ETARGET;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(s->err, sizeof s->err, "cannot read '%s': %s", dir, strerror(errno));
        return RCBS_ETARGET;
    }
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(d);
    if (!empty) {
        snprintf(s->err, sizeof s->err,
                 "'%s' is not empty: a restore from an object store goes into a new or empty "
                 "directory",
                 dir);
        return RCBS_ETARGET;
    }
    *exists = true;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Choose the manifest: newest of DB at or before POINT. */
static int choose(rcbs *s, const char *db, const rcbs_point *point, rcm_manifest *m)
{
    rcm_manifest *list = NULL;
    size_t n = 0;
    int rc = rcbs_list(s, db, &list, &n);
    if (rc != 0)
        return rc;
    if (n == 0) {
        rcbs_free_list(list, n);
        if (db)
            snprintf(s->err, sizeof s->err, "no backup of database %s under %s", db, s->url);
        else
            snprintf(s->err, sizeof s->err, "no backup under %s", s->url);
        return RCBS_ENONE;
    }
    if (db == NULL) {
        for (size_t i = 1; i < n; i++)
            if (strcmp(list[i].database, list[0].database) != 0) {
                snprintf(s->err, sizeof s->err,
                         "%s holds backups of several databases (%s, %s, ...): name one with "
                         "--database ID",
                         s->url, list[0].database, list[i].database);
                rcbs_free_list(list, n);
                return RCBS_EMANY;
            }
    }
    size_t pick = SIZE_MAX;
    for (size_t i = n; i-- > 0;) {
        if (point->by_seq && list[i].until > point->seq)
            continue;
        if (point->by_time && list[i].time_ms > point->time_ms)
            continue;
        pick = i;
        break;
    }
    if (pick == SIZE_MAX) {
        char when[40];
        rcm_format_time(list[0].time_ms, when, sizeof when);
        snprintf(s->err, sizeof s->err,
                 "no backup under %s at or before the point asked: the oldest is seq %" PRIu64
                 " at %s",
                 s->url, list[0].until, when);
        rcbs_free_list(list, n);
        return RCBS_ENONE;
    }
    *m = list[pick];
    memset(&list[pick], 0, sizeof list[pick]);
    rcbs_free_list(list, n);
    return 0;
}

/* Download and check one object into a temporary file; *FD receives it. */
static int fetch(rcbs *s, const char *database, const rcm_object *x, int *fd)
{
    char key[1200];
    if (rcbsi_key(s, x->name, key, sizeof key) != 0)
        return RCBS_ELOCAL;
    *fd = rcbsi_tmpfile();
    if (*fd < 0) {
        snprintf(s->err, sizeof s->err, "cannot create a temporary file: %s", strerror(errno));
        return RCBS_ELOCAL;
    }
    uint64_t size = 0;
    unsigned char sha[32];
    char hex[65];
    int rc = rcs3_get_fd(s->s3, key, *fd, x->size + 1, &size, sha);
    if (rc == RCS3_ENOTFOUND) {
        snprintf(s->err, sizeof s->err, "%s/%s, named by the manifest, is missing", s->url,
                 x->name);
        return RCBS_ECORRUPT;
    }
    if (rc == RCS3_EPROTO && size == 0) {
        snprintf(s->err, sizeof s->err, "%s/%s is larger than the manifest says (%" PRIu64 ")",
                 s->url, x->name, x->size);
        return RCBS_ECORRUPT;
    }
    if (rc != 0)
        return rcbsi_store_error(s);
    rcs3_hex(sha, hex);
    if (size != x->size || strcmp(hex, x->sha256) != 0) {
        snprintf(s->err, sizeof s->err,
                 "%s/%s does not match its manifest (%" PRIu64 " bytes, SHA-256 %.16s...; "
                 "expected %" PRIu64 " bytes, %.16s...)",
                 s->url, x->name, size, hex, x->size, x->sha256);
        return RCBS_ECORRUPT;
    }
    rc_backup_info info = {0};
    if (lseek(*fd, 0, SEEK_SET) != 0)
        return RCBS_ELOCAL;
    int err = rc_verify_stream(fd_read, fd, &info);
    if (err != 0) {
        snprintf(s->err, sizeof s->err, "%s/%s is not a valid backup stream: %s", s->url, x->name,
                 rct_engine_detail(err));
        return RCBS_ECORRUPT;
    }
#ifdef RC_DATABASE_ID_LEN
    if (info.database[0] != '\0' && strcmp(info.database, database) != 0) {
        snprintf(s->err, sizeof s->err, "%s/%s is a backup of database %s, not %s", s->url, x->name,
                 info.database, database);
        return RCBS_ECORRUPT;
    }
#endif
    if (info.since != x->since || info.until != x->until) {
        snprintf(s->err, sizeof s->err,
                 "%s/%s holds seq %" PRIu64 "..%" PRIu64 ", the manifest says %" PRIu64
                 "..%" PRIu64,
                 s->url, x->name, info.since, info.until, x->since, x->until);
        return RCBS_ECORRUPT;
    }
    return 0;
}

static void note(rcbs_note_fn fn, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(rcbs_note_fn fn, void *ctx, const char *fmt, ...)
{
    if (fn == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fn(ctx, line);
}

/* Load the checked streams FDS into a new directory STAGE. */
static int load_chain(rcbs *s, const char *stage, const rcm_manifest *m, const int *fds)
{
    rc_db *db = NULL;
    int err = rct_open_db(stage, false, &db);
    if (err != 0) {
        snprintf(s->err, sizeof s->err, "cannot create '%s': %s", stage, rct_engine_detail(err));
        s->engine_err = err;
        return RCBS_EENGINE;
    }
    for (size_t i = 0; i < m->n && err == 0; i++) {
        int fd = fds[i];
        rc_backup_info info = {0};
        if (lseek(fd, 0, SEEK_SET) != 0)
            err = RC_EIO;
        else
            err = rc_load(db, fd_read, &fd, NULL, NULL, &info);
        if (err != 0) {
            snprintf(s->err, sizeof s->err, "loading %s failed: %s", m->chain[i].name,
                     rct_engine_detail(err));
        }
    }
    if (err == 0) {
        err = rc_sync(db);
        if (err != 0)
            snprintf(s->err, sizeof s->err, "syncing '%s' failed: %s", stage, rc_strerror(err));
    }
    int cerr = rc_close(db);
    if (err == 0 && cerr != 0) {
        err = cerr;
        snprintf(s->err, sizeof s->err, "closing '%s' failed: %s", stage, rc_strerror(err));
    }
    s->engine_err = err;
    return err == 0 ? 0 : RCBS_EENGINE;
}

static void sync_parent(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int rcbs_restore(rcbs *s, const char *db, const rcbs_point *point, const char *dir,
                 rcbs_note_fn note_fn, void *note_ctx, rcm_manifest *m)
{
    memset(m, 0, sizeof *m);
    bool exists = false;
    int rc = check_target(s, dir, &exists);
    if (rc != 0)
        return rc;
    rc = choose(s, db, point, m);
    if (rc != 0)
        return rc;
    char when[40];
    rcm_format_time(m->time_ms, when, sizeof when);
    note(note_fn, note_ctx,
         "restoring database %s at seq %" PRIu64 " (%s): %zu objects, %" PRIu64 " bytes",
         m->database, m->until, when, m->n, m->bytes);
    int *fds = malloc(m->n * sizeof *fds);
    if (fds == NULL) {
        snprintf(s->err, sizeof s->err, "out of memory");
        rcm_free(m);
        return RCBS_ELOCAL;
    }
    for (size_t i = 0; i < m->n; i++)
        fds[i] = -1;
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        rc = fetch(s, m->database, &m->chain[i], &fds[i]);
        if (rc == 0)
            note(note_fn, note_ctx, "checked %s (%" PRIu64 " bytes)", m->chain[i].name,
                 m->chain[i].size);
    }
    char stage[PATH_MAX];
    if (rc == 0) {
        size_t dl = strlen(dir);
        while (dl > 1 && dir[dl - 1] == '/')
            dl--;
        if (snprintf(stage, sizeof stage, "%.*s.restore-XXXXXX", (int)dl, dir) >=
                (int)sizeof stage ||
            mkdtemp(stage) == NULL) {
            snprintf(s->err, sizeof s->err, "cannot create a staging directory next to '%s': %s",
                     dir, strerror(errno));
            rc = RCBS_ELOCAL;
        }
    }
    if (rc == 0) {
        rc = load_chain(s, stage, m, fds);
        if (rc == 0 && exists && rmdir(dir) != 0) {
            snprintf(s->err, sizeof s->err, "cannot replace the empty directory '%s': %s", dir,
                     strerror(errno));
            rc = RCBS_ELOCAL;
        }
        if (rc == 0 && rename(stage, dir) != 0) {
            snprintf(s->err, sizeof s->err, "cannot rename '%s' to '%s': %s", stage, dir,
                     strerror(errno));
            rc = RCBS_ELOCAL;
        }
        if (rc != 0)
            rmtree(stage);
        else
            sync_parent(dir);
    }
    for (size_t i = 0; i < m->n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    if (rc != 0)
        rcm_free(m);
    return rc;
}
