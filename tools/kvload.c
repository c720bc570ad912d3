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
 * Exit status: 0 ok; 1 the input file does not exist; 2 usage; 3 the stream
 * is corrupt, truncated or of an unsupported version (nothing applied); 4 a
 * full stream onto a non-empty directory; 5 an incremental stream that leaves
 * a gap after the directory's highest sequence number; 6 the directory cannot
 * be opened (locked by kvd, corrupt); 7 the load failed otherwise (I/O, disk
 * full, interrupted).
 */
#include "stream_io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "rcu_opt.h"
#include "ringcask.h"

enum {
    LOAD_OK = 0,
    LOAD_NO_INPUT = 1,
    LOAD_USAGE = 2,
    LOAD_CORRUPT = 3,
    LOAD_NOT_EMPTY = 4,
    LOAD_GAP = 5,
    LOAD_OPEN = 6,
    LOAD_FAILED = 7,
};

static int usage_error(const char *fmt, const char *arg)
{
    fputs("kvload: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see kvload --help)\n", stderr);
    return LOAD_USAGE;
}

static const char *engine_detail(int err)
{
    const char *detail = rc_last_error_message();
    return detail && *detail ? detail : rc_strerror(err);
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

int main(int argc, char **argv)
{
    const char *dir = NULL, *input = "-";
    bool verify_only = false;
    const rcu_opt opts[] = {
        {"dir", 'd', RCU_OPT_STRING, &dir, .meta = "PATH",
         .help = "the data directory to load into (created if missing)"},
        {"input", 'i', RCU_OPT_STRING, &input, .meta = "FILE|-",
         .help = "the stream to read ('-': stdin)"},
        {"verify-only", 0, RCU_OPT_BOOL, &verify_only,
         .help = "check the stream and print its header and counts; writes nothing"},
        {0},
    };
    const rcu_opt_prog prog = {
        .name = "kvload",
        .usage = "--dir PATH [-i FILE|-]\n--verify-only [-i FILE|-]",
        .about = "Apply a backup stream written by kvdump to the data directory PATH. A full\n"
                 "stream needs an empty directory; an incremental one must start at or below\n"
                 "the directory's highest sequence number. The stream is verified entirely\n"
                 "before anything is applied. kvd must not be serving PATH meanwhile.\n",
        .epilog = "Exit status: 0 ok, 1 no such input file, 2 usage, 3 corrupt or truncated\n"
                  "stream, 4 full stream onto a non-empty directory, 5 incremental stream\n"
                  "leaves a gap, 6 cannot open the directory, 7 load failed.\n",
        .opts = opts,
    };
    int prc = rcu_opt_parse(&prog, argc, argv, NULL);
    if (prc != RCU_OPT_GO_ON)
        return prc;
    if (!dir && !verify_only)
        return usage_error("%s", "--dir PATH is required (or --verify-only)");
    if (dir && verify_only)
        return usage_error("%s", "--verify-only writes nothing and takes no --dir");
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
    if (verify_only) {
        int err = rc_verify_stream(rct_input_read, &in, &info);
        if (err != 0) {
            status = report(err, &in, NULL, &info);
        } else {
            printf("%s backup stream, %llu bytes\n", info.since ? "incremental" : "full",
                   (unsigned long long)(info.bytes ? info.bytes : in.bytes));
            print_counts(stdout, &info);
            if (fflush(stdout) != 0)
                status = LOAD_FAILED;
        }
        rct_input_close(&in);
        return status;
    }

    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE; /* one rc_sync at the end instead of one per chunk */
    o.create_if_missing = true;
    o.merge_check_ms = 0;
    o.ttl_sweep_ms = 0;
    rc_db *db = NULL;
    int err = rc_open(dir, &o, &db);
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
