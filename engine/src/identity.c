/*
 * identity.c — the database identity (FORMAT.md 10.4, file IDENTITY).
 *
 * Every directory is one database, named by 128 random bits (getrandom)
 * chosen when it is created. A directory is in one of three states:
 *
 *   - its own database (flags 0): its writes make its history;
 *   - REPLICA of ID: everything in it came from loads of streams of database
 *     ID (a full load adopts the stream's identity; incrementals keep it), so
 *     its history is a prefix of ID's and ID's later incrementals apply;
 *   - FORKED from PARENT: it was a replica of PARENT up to seq FORKED_AT and
 *     then took a local write. That write makes it a new database (a fresh
 *     ID), so its own streams never pass for PARENT's, and PARENT's
 *     incrementals are refused as "diverged".
 *
 * The state changes only under append_mu: a local write (rci_log_append with
 * seqs to assign) turns a replica into a fork — the new IDENTITY is durable
 * before the write is appended, so a crash can only leave a fork without
 * the write, never a replica with one — and a full load adopts the stream's
 * identity once its segments are committed.
 *
 * Directories made before this file existed have no IDENTITY: their id is
 * derived from the 64-bit id of their segment headers (the same for the
 * read-only opener that cannot write it and for the writer that then does),
 * so both agree.
 */
#include "db.h"
#include "format/meta.h"
#include "format/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define IDENTITY_FILE "IDENTITY"

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static int random_id(uint8_t out[RCI_ID_BYTES])
{
    size_t have = 0;
    while (have < RCI_ID_BYTES) {
        ssize_t n = getrandom(out + have, RCI_ID_BYTES - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return rc_fail(rc_from_errno(errno), "getrandom failed: %s", strerror(errno));
        have += (size_t)n;
    }
    if (is_zero(out, RCI_ID_BYTES)) /* 2^-128; the all-zero id is reserved */
        out[0] = 1;
    return 0;
}

void rci_id_hex(const uint8_t id[RCI_ID_BYTES], char out[RC_DATABASE_ID_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < RCI_ID_BYTES; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[RC_DATABASE_ID_LEN] = '\0';
}

/* A directory from before IDENTITY: derived from the segment headers' id. */
static void legacy_id(uint64_t db_id, uint8_t out[RCI_ID_BYTES])
{
    uint8_t b[8];
    fmt_put_u64(b, db_id);
    memcpy(out, b, 8);
    fmt_put_u64(out + 8, fmt_hash64(b, 8));
    if (is_zero(out, RCI_ID_BYTES))
        out[0] = 1;
}

/* Write ID as DIR/IDENTITY durably. */
static int write_file(rc_db *db, const fmt_identity *id)
{
    uint8_t buf[FMT_IDENTITY_LEN];
    fmt_identity_encode(buf, id);
    return rci_dir_write_file(db, IDENTITY_FILE, buf, sizeof(buf));
}

static void set_state(rc_db *db, const fmt_identity *id)
{
    memcpy(db->ident.id, id->id, RCI_ID_BYTES);
    memcpy(db->ident.parent, id->parent, RCI_ID_BYTES);
    db->ident.forked_at = id->forked_at;
    db->ident.flags = id->flags;
    atomic_store(&db->ident_replica, (id->flags & FMT_IDENTITY_REPLICA) != 0);
}

int rci_identity_open(rc_db *db, bool had_segments)
{
    fmt_identity id;
    memset(&id, 0, sizeof(id));
    int fd = openat(db->dir_fd, IDENTITY_FILE, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        uint8_t buf[FMT_IDENTITY_LEN + 1];
        ssize_t got = pread(fd, buf, sizeof(buf), 0);
        close(fd);
        int rc = got < 0 ? FMT_ECORRUPT : fmt_identity_decode(buf, (size_t)got, &id);
        if (rc == FMT_EVERSION)
            return rc_fail(RC_EVERSION,
                           "%s/%s has version %u, written by a newer ringcask; this build "
                           "reads version %u",
                           db->dir, IDENTITY_FILE, (unsigned)fmt_get_u16(buf + 4),
                           FMT_META_VERSION);
        if (rc != FMT_OK)
            return rc_fail(RC_ECORRUPT,
                           "%s/%s is corrupt: the database's identity is unknown, so "
                           "incremental backups could not be checked against it",
                           db->dir, IDENTITY_FILE);
        set_state(db, &id);
        return 0;
    }
    if (errno != ENOENT)
        return rc_fail(rc_from_errno(errno), "cannot open %s/%s: %s", db->dir, IDENTITY_FILE,
                       strerror(errno));
    if (had_segments) {
        legacy_id(db->db_id, id.id);
    } else {
        int err = random_id(id.id);
        if (err)
            return err;
    }
    if (!db->opt.read_only) {
        int err = write_file(db, &id);
        if (err)
            return err;
    }
    set_state(db, &id);
    return 0;
}

int rci_identity_diverge(rc_db *db)
{
    if (!atomic_load(&db->ident_replica))
        return 0;
    fmt_identity id = {.flags = FMT_IDENTITY_FORKED, .forked_at = atomic_load(&db->last_seq)};
    memcpy(id.parent, db->ident.id, RCI_ID_BYTES);
    int err = random_id(id.id);
    if (!err)
        err = write_file(db, &id);
    if (err) {
        char why[256];
        snprintf(why, sizeof(why), "%s", rc_last_error_message());
        return rc_fail(err,
                       "the first local write after a load must record that %s has diverged "
                       "from the database it was loaded from, and could not: %s",
                       db->dir, why);
    }
    set_state(db, &id);
    return 0;
}

int rci_identity_adopt(rc_db *db, const uint8_t *source, uint64_t until)
{
    fmt_identity id;
    memset(&id, 0, sizeof(id));
    int err = 0;
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    if (!source) {
        /* a stream that does not name its database: this one is a new one */
        err = random_id(id.id);
    } else if (atomic_load(&db->last_seq) != until) {
        /* a local write raced the load: loaded, then written */
        id.flags = FMT_IDENTITY_FORKED;
        memcpy(id.parent, source, RCI_ID_BYTES);
        id.forked_at = until;
        err = random_id(id.id);
    } else {
        id.flags = FMT_IDENTITY_REPLICA;
        memcpy(id.id, source, RCI_ID_BYTES);
    }
    if (!err)
        err = write_file(db, &id);
    if (!err)
        set_state(db, &id);
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    return err;
}

int rci_identity_check(rc_db *db, const fmt_stream_header *h)
{
    if (h->since == 0)
        return 0; /* a full stream: any identity (it is adopted) */
    char mine[RC_DATABASE_ID_LEN + 1], theirs[RC_DATABASE_ID_LEN + 1];
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    rci_ident st = db->ident;
    uint64_t last = atomic_load(&db->last_seq);
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    rci_id_hex(st.id, mine);
    if (h->version < 2)
        return rc_fail(RC_EIDENTITY,
                       "identity unknown: the stream (format version %u) does not name the "
                       "database it came from, so this incremental cannot be checked against "
                       "%s (database %s); load a full backup instead",
                       (unsigned)h->version, db->dir, mine);
    if (memcmp(h->id, st.id, RCI_ID_BYTES) == 0)
        return 0;
    rci_id_hex(h->id, theirs);
    if ((st.flags & FMT_IDENTITY_FORKED) && memcmp(h->id, st.parent, RCI_ID_BYTES) == 0)
        return rc_fail(RC_EIDENTITY,
                       "diverged: %s was loaded from database %s up to seq %llu and then "
                       "written locally (it is now database %s), so %s's later changes no "
                       "longer apply to it; load a full backup of %s into an empty directory",
                       db->dir, theirs, (unsigned long long)st.forked_at, mine, theirs, theirs);
    return rc_fail(RC_EIDENTITY,
                   "other database: the stream comes from database %s but %s is database "
                   "%s%s; an incremental applies only onto the database it came from",
                   theirs, db->dir, mine,
                   last == 0 ? " (empty: load that database's full backup first)" : "");
}

int rc_database_lineage(rc_db *db, rc_lineage *out)
{
    rci_error_clear();
    if (!db || !out)
        return rc_fail(RC_EINVAL, "rc_database_lineage needs a database and a result");
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&db->append_mu);
    rci_ident st = db->ident;
    pthread_mutex_unlock(&db->append_mu);
    rci_id_hex(st.id, out->id);
    out->replica = (st.flags & FMT_IDENTITY_REPLICA) != 0;
    out->forked = (st.flags & FMT_IDENTITY_FORKED) != 0;
    if (out->forked) {
        rci_id_hex(st.parent, out->parent);
        out->forked_at = st.forked_at;
    }
    return 0;
}

static int id_from_hex(const char *hex, uint8_t out[RCI_ID_BYTES])
{
    if (!hex || strlen(hex) != RC_DATABASE_ID_LEN)
        return -1;
    for (size_t i = 0; i < RC_DATABASE_ID_LEN; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return is_zero(out, RCI_ID_BYTES) ? -1 : 0;
}

int rc_follow_fork(rc_db *db, const char *child, const char *parent, uint64_t forked_at)
{
    rci_error_clear();
    uint8_t c[RCI_ID_BYTES], p[RCI_ID_BYTES];
    if (!db)
        return rc_fail(RC_EINVAL, "rc_follow_fork needs a database");
    if (id_from_hex(child, c) != 0 || id_from_hex(parent, p) != 0)
        return rc_fail(RC_EINVAL, "rc_follow_fork: the ids must be %d lowercase hex digits",
                       RC_DATABASE_ID_LEN);
    if (db->opt.read_only)
        return rc_fail(RC_EREADONLY, "rc_follow_fork: %s is open read-only", db->dir);
    int err = 0;
    pthread_mutex_lock(&db->append_mu);
    uint64_t last = atomic_load(&db->last_seq);
    if (memcmp(db->ident.id, p, RCI_ID_BYTES) != 0) {
        char mine[RC_DATABASE_ID_LEN + 1];
        rci_id_hex(db->ident.id, mine);
        err = rc_fail(RC_EIDENTITY,
                      "%s is database %s, not %s: it cannot follow that "
                      "database's fork",
                      db->dir, mine, parent);
    } else if (last > forked_at) {
        err =
            rc_fail(RC_EGAP,
                    "%s holds seqs up to %llu, past the fork of %s at %llu: its "
                    "history diverged from %s's",
                    db->dir, (unsigned long long)last, child, (unsigned long long)forked_at, child);
    } else if (memcmp(c, p, RCI_ID_BYTES) != 0) {
        fmt_identity id;
        memset(&id, 0, sizeof(id));
        id.flags = FMT_IDENTITY_REPLICA;
        memcpy(id.id, c, RCI_ID_BYTES);
        err = write_file(db, &id);
        if (!err)
            set_state(db, &id);
    }
    pthread_mutex_unlock(&db->append_mu);
    return err;
}

int rc_database_id(rc_db *db, char out[RC_DATABASE_ID_LEN + 1])
{
    rci_error_clear();
    if (!db || !out)
        return rc_fail(RC_EINVAL, "rc_database_id needs a database and a buffer");
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    rci_id_hex(db->ident.id, out);
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    return 0;
}
