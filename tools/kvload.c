/*
 * kvload — apply a backup stream to a ringcask data directory, or only check
 * one (--verify-only).
 *
 * The engine does the work that matters: rc_load verifies the whole stream
 * (checksums, framing, trailer) before applying anything, refuses a full
 * stream on a non-empty database and an incremental stream that does not
 * follow on, and applies in atomic chunks in sequence order so that a crash
 * mid-load leaves a prefix that rerunning the same stream completes. kvload
 * opens the directory for writing (which takes its exclusive lock: kvd must
 * not be serving it), loads with sync off, and makes everything durable with
 * one rc_sync at the end — a crash before that loses only work a rerun redoes.
 *
 * Before it opens the directory for writing, kvload reads the stream's
 * header (it names the source database, since and until) and checks it
 * against the directory opened read-only (rc_load_check): a stream that would
 * be refused — from another database, onto a directory that diverged, of
 * unknown identity, a gap, a full onto a non-empty directory — is refused
 * with the directory untouched, byte for byte (a write open would already
 * rewrite LOCK and start a segment). rc_load checks again under its lock.
 *
 * Exit status: 0 ok; 1 the input file does not exist; 2 usage; 3 the stream
 * is corrupt, truncated or of an unsupported version (nothing applied); 4 a
 * full stream onto a non-empty directory; 5 an incremental stream that leaves
 * a gap after the directory's highest sequence number; 6 the directory cannot
 * be opened (locked by kvd, corrupt); 7 the load failed otherwise (I/O, disk
 * full, interrupted); 8 an incremental stream that is not from the
 * directory's history (another database, a directory that diverged by a
 * local write after its last load, or a version 1 stream naming no database).
 */
#include "stream_io.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rcu_opt.h"
#include "ringcask.h"
#ifdef RC_HAVE_S3
#include "s3_cli.h"
#endif

enum {
    LOAD_OK = 0,
    LOAD_NO_INPUT = 1,
    LOAD_USAGE = 2,
    LOAD_CORRUPT = 3,
    LOAD_NOT_EMPTY = 4,
    LOAD_GAP = 5,
    LOAD_OPEN = 6,
    LOAD_FAILED = 7,
    LOAD_IDENTITY = 8,
};

static int usage_error(const char *fmt, const char *arg)
{
    fputs("kvload: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see kvload --help)\n", stderr);
    return LOAD_USAGE;
}

/* The engine's detail of the failed call; kept_detail holds it when other
 * engine calls (rc_close) ran after the failure and emptied it. */
static char kept_detail[512];

static const char *engine_detail(int err)
{
    return kept_detail[0] ? kept_detail : rct_engine_detail(err);
}

static void print_counts(FILE *f, const rc_backup_info *info)
{
    fprintf(f, "records %llu, tombstones %llu, seq %llu..%llu\n", (unsigned long long)info->records,
            (unsigned long long)info->tombstones, (unsigned long long)info->since,
            (unsigned long long)info->until);
}

/* Map a failure of rc_verify_stream/rc_load to a message and exit status. */
static int report(int err, const rct_input *in, const char *dir, const rc_backup_info *info)
{
    if (in->error) {
        if (in->error == EINTR)
            fprintf(stderr, "kvload: interrupted; %s\n",
                    dir ? "rerun the same stream to complete the load" : "nothing was written");
        else
            fprintf(stderr, "kvload: cannot read %s: %s\n", in->name, strerror(in->error));
        return LOAD_FAILED;
    }
    switch (err) {
    case RC_ECORRUPT:
        fprintf(stderr,
                "kvload: %s is not a valid backup stream (corrupt or truncated): %s; "
                "nothing was applied\n",
                in->name, engine_detail(err));
        return LOAD_CORRUPT;
    case RC_EVERSION:
        fprintf(stderr, "kvload: %s has an unsupported stream version: %s; nothing was applied\n",
                in->name, engine_detail(err));
        return LOAD_CORRUPT;
    case RC_ENOTEMPTY:
        fprintf(stderr,
                "kvload: '%s' is not empty: a full backup loads only into an empty "
                "directory; nothing was applied\n",
                dir);
        return LOAD_NOT_EMPTY;
    case RC_EIDENTITY:
        fprintf(stderr, "kvload: refused: %s; nothing was applied\n", engine_detail(err));
        return LOAD_IDENTITY;
    case RC_EGAP:
        if (info->since)
            fprintf(stderr,
                    "kvload: the stream starts after seq %llu, past the end of '%s': load "
                    "the missing incrementals first; nothing was applied\n",
                    (unsigned long long)info->since, dir);
        else
            fprintf(stderr,
                    "kvload: the stream does not follow on from '%s' (a gap): load the "
                    "missing incrementals first; nothing was applied\n",
                    dir);
        return LOAD_GAP;
    default:
        fprintf(stderr, "kvload: %s of %s failed: %s\n", dir ? "load" : "verification", in->name,
                engine_detail(err));
        return LOAD_FAILED;
    }
}

/* An incremental onto a directory that does not exist yet: the load would
 * create a new database, which no incremental continues. */
static int refuse_missing(const char *dir, const rc_stream_header *h)
{
    if (h->version < 2)
        fprintf(stderr,
                "kvload: refused: identity unknown: the stream (format version %u) does not "
                "name the database it came from, and '%s' does not exist; load a full backup "
                "instead; nothing was applied\n",
                h->version, dir);
    else
        fprintf(stderr,
                "kvload: refused: other database: the stream is an incremental of database %s "
                "(since %llu) but '%s' does not exist (it would be a new, empty database); "
                "load that database's full backup first; nothing was applied\n",
                h->database, (unsigned long long)h->since, dir);
    return LOAD_IDENTITY;
}

/* Would a stream with header H apply to DIR? Checked on a read-only handle,
 * which writes nothing (no LOCK, no segment), so that a refusal leaves DIR
 * exactly as it was. Returns LOAD_OK or the exit status of the refusal. */
static int precheck(const char *dir, const rc_stream_header *h, const rct_input *in)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            return h->since == 0 ? LOAD_OK : refuse_missing(dir, h);
        fprintf(stderr, "kvload: cannot open data directory '%s': %s\n", dir, strerror(errno));
        return LOAD_OPEN;
    }
    rc_db *db = NULL;
    int err = rct_open_db(dir, true, &db);
    if (err != 0) {
        fprintf(stderr, "kvload: cannot open data directory '%s': %s\n", dir, engine_detail(err));
        return LOAD_OPEN;
    }
    err = rc_load_check(db, h);
    if (err != 0) /* rc_close empties the thread's detail */
        snprintf(kept_detail, sizeof kept_detail, "%s", rc_last_error_message());
    rc_close(db);
    if (err == 0)
        return LOAD_OK;
    rc_backup_info info = {.since = h->since, .until = h->until};
    return report(err, in, dir, &info);
}

static void print_header(const rc_backup_info *info, const rct_input *in)
{
    printf("%s backup stream, %llu bytes\n", info->since ? "incremental" : "full",
           (unsigned long long)(info->bytes ? info->bytes : in->bytes));
    if (info->database[0])
        printf("database %s\n", info->database);
    else
        printf("database unknown (stream version %u names none)\n", info->version);
    print_counts(stdout, info);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *input = "-", *from = NULL, *database = NULL;
    bool verify_only = false, input_given = false, by_seq = false, by_time = false;
    uint64_t until_seq = 0;
    const char *until_time = NULL;
    const rcu_opt opts[] = {
        {"dir", 'd', RCU_OPT_STRING, &dir, .meta = "PATH",
         .help = "the data directory to load into (created if missing)"},
        {"input", 'i', RCU_OPT_STRING, &input, .meta = "FILE|-", .seen = &input_given,
         .help = "the stream to read ('-': stdin)"},
        {"verify-only", 0, RCU_OPT_BOOL, &verify_only,
         .help = "check the stream and print its header (the source database's id) and counts; "
                 "writes nothing. With --dir, a dry run: says whether the stream would apply "
                 "there and exits as the load would"},
        {"from", 0, RCU_OPT_STRING, &from, .meta = "s3://BUCKET/PREFIX",
         .help = "restore the newest backup chain in an S3-compatible object store into PATH "
                 "(new or empty); every object is checked (SHA-256, stream) before any is "
                 "applied"},
        {"until-seq", 0, RCU_OPT_INT, &until_seq, .width = sizeof until_seq, .meta = "N",
         .max = UINT64_MAX, .seen = &by_seq, .flags = RCU_OPT_NODEFAULT,
         .help = "with --from: the newest chain whose until is at most N"},
        {"until-time", 0, RCU_OPT_STRING, &until_time, .meta = "RFC3339", .seen = &by_time,
         .help = "with --from: the newest chain whose time is at most this (inclusive)"},
        {"database", 0, RCU_OPT_STRING, &database, .meta = "ID",
         .help = "with --from: the database, when the prefix holds several"},
        {0},
    };
    const rcu_opt_prog prog = {
        .name = "kvload",
        .usage =
            "--dir PATH [-i FILE|-]\n--verify-only [--dir PATH] [-i FILE|-]\n--dir PATH --from "
            "s3://BUCKET/PREFIX [--until-seq N | --until-time RFC3339] [--database ID]",
        .about = "Apply a backup stream written by kvdump to the data directory PATH, created\n"
                 "if missing. A full stream needs an empty directory and makes it the source's\n"
                 "database; an incremental one applies only onto that same database, when\n"
                 "nothing was written to PATH since its last load, and must start at or below\n"
                 "its highest sequence number. The stream is verified entirely before anything\n"
                 "is applied; a refused stream leaves PATH untouched. kvd must not be serving\n"
                 "PATH meanwhile. Streams are self-describing: 'zstd -dc FILE | kvload --dir\n"
                 "PATH' restores a compressed one.\n"
                 "--from takes the object store from the AWS_* environment variables (see\n"
                 "kvdump --help); PATH appears only when the whole chain has loaded.\n",
        .epilog = "Exit status: 0 ok, 1 no such input file (--from: no backup at or before the\n"
                  "point), 2 usage, 3 corrupt or truncated stream or object, 4 full stream\n"
                  "onto a non-empty directory, 5 incremental stream leaves a gap, 6 cannot\n"
                  "open the directory, 7 load failed, 8 incremental stream from another\n"
                  "database, onto a diverged directory, or of unknown identity (a version 1\n"
                  "stream), 9 the object store failed.\n",
        .opts = opts,
    };
    int prc = rcu_opt_parse(&prog, argc, argv, NULL);
    if (prc != RCU_OPT_GO_ON)
        return prc;
    if ((by_seq || by_time || database) && !from)
        return usage_error("%s", "--until-seq, --until-time and --database go with --from");
    if (by_seq && by_time)
        return usage_error("%s", "give --until-seq or --until-time, not both");
    if (from) {
        if (verify_only || input_given)
            return usage_error("%s", "--from reads the object store: no -i, no --verify-only");
        if (!dir)
            return usage_error("%s", "--dir PATH is required");
#ifdef RC_HAVE_S3
        int64_t time_ms = 0;
        if (by_time && rcm_parse_time(until_time, &time_ms) != 0)
            return usage_error("--until-time '%s' is not an RFC 3339 time such as "
                               "2026-12-05T18:40:00Z",
                               until_time);
        rcbs_point point = {
            .by_seq = by_seq, .by_time = by_time, .seq = until_seq, .time_ms = time_ms};
        return rcs3_cli_load_from(dir, from, database, &point);
#else
        return usage_error("%s", "this kvload was built without object-store support");
#endif
    }
    if (!dir && !verify_only)
        return usage_error("%s", "--dir PATH is required (or --verify-only)");
    if (strcmp(input, "-") == 0 && isatty(STDIN_FILENO))
        return usage_error("%s", "no stream: use -i FILE or redirect stdin");

    rct_input in;
    if (rct_input_open(&in, input) != 0) {
        int err = errno;
        fprintf(stderr, "kvload: cannot open '%s': %s\n", input, strerror(err));
        return err == ENOENT ? LOAD_NO_INPUT : LOAD_FAILED;
    }
    rct_catch_signals();
    rc_backup_info info = {0};
    int status = LOAD_OK;
    /* the header first: which database, which range (a pipe cannot seek, so
     * the bytes are read ahead and then served to the engine again) */
    long got = rct_input_peek(&in, RC_STREAM_HEADER_MAX);
    rc_stream_header h;
    int herr = got < 0 ? RC_EIO : rc_stream_header_parse(in.peeked, (size_t)got, &h);
    if (verify_only) {
        int err = rc_verify_stream(rct_input_read, &in, &info);
        if (err != 0) {
            status = report(err, &in, NULL, &info);
        } else {
            print_header(&info, &in);
            if (dir) {
                status = herr ? report(herr, &in, NULL, &info) : precheck(dir, &h, &in);
                if (status == LOAD_OK)
                    printf("would apply to '%s'\n", dir);
            }
            if (fflush(stdout) != 0 && status == LOAD_OK)
                status = LOAD_FAILED;
        }
        rct_input_close(&in);
        return status;
    }
    if (herr != 0) { /* not a stream: refused before the directory is touched */
        status = report(herr, &in, dir, &info);
        rct_input_close(&in);
        return status;
    }
    status = precheck(dir, &h, &in);
    if (status != LOAD_OK) {
        rct_input_close(&in);
        return status;
    }

    rc_db *db = NULL; /* sync=none: one rc_sync at the end instead of one per chunk */
    int err = rct_open_db(dir, false, &db);
    if (err != 0) {
        fprintf(stderr, "kvload: cannot open data directory '%s': %s%s\n", dir, engine_detail(err),
                err == RC_ELOCKED ? " (stop kvd first)" : "");
        rct_input_close(&in);
        return LOAD_OPEN;
    }
    rct_progress progress;
    rct_progress_init(&progress, "kvload");
    err = rc_load(db, rct_input_read, &in, rct_progress_update, &progress, &info);
    rct_progress_finish(&progress);
    if (err == 0)
        err = rc_sync(db);
    if (err != 0)
        snprintf(kept_detail, sizeof kept_detail, "%s", rc_last_error_message());
    int close_err = rc_close(db);
    if (err == 0)
        err = close_err;
    if (err != 0)
        status = report(err, &in, dir, &info);
    else
        print_counts(stderr, &info);
    rct_input_close(&in);
    return status;
}
