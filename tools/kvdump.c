/*
 * kvdump — write a backup stream of a ringcask data directory.
 *
 * The directory is opened read-only (no lock, no merges, no sweeps,
 * no writes), so kvdump can run while kvd serves the same directory without
 * disturbing it; rc_backup takes a consistent snapshot. Everything stream-
 * related (framing, checksums, compression, the tombstone-horizon check)
 * lives in the engine; this file is options, output placement and messages.
 *
 * A file output is written under a temporary name and renamed only once the
 * stream is complete and synced, so a failed or interrupted dump never leaves
 * something that looks like a backup under the requested name.
 *
 * Exit status: 0 ok; 1 the data directory does not exist; 2 usage; 3 --since
 * is below the tombstone horizon (take a full backup); 4 the directory cannot
 * be opened (locked by a non-sharing writer, corrupt, newer version); 5 the
 * output cannot be written; 6 the backup failed otherwise (I/O, interrupted).
 */
#include "stream_io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "rcu_opt.h"
#include "ringcask.h"
#ifdef RC_HAVE_S3
#include "s3_cli.h"
#endif

enum {
    DUMP_OK = 0,
    DUMP_NO_DIR = 1,
    DUMP_USAGE = 2,
    DUMP_HORIZON = 3,
    DUMP_OPEN = 4,
    DUMP_OUTPUT = 5,
    DUMP_FAILED = 6,
};

static int usage_error(const char *fmt, const char *arg)
{
    fputs("kvdump: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see kvdump --help)\n", stderr);
    return DUMP_USAGE;
}

static int parse_since(const char *s, void *dest, char *why, size_t cap)
{
    if (rct_parse_seq(s, dest) == 0)
        return 0;
    snprintf(why, cap, "'%s' is not a sequence number", s);
    return -1;
}

static void show_since(const void *dest, char *out, size_t cap)
{
    snprintf(out, cap, "%llu", (unsigned long long)*(const uint64_t *)dest);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *output = "-", *to = NULL, *list = NULL, *database = NULL;
    bool full = false, output_given = false, since_given = false;
    uint64_t since = 0;
    const rcu_opt opts[] = {
        {"dir", 'd', RCU_OPT_STRING, &dir, .meta = "PATH", .help = "the data directory (required)"},
        {"since", 's', RCU_OPT_FUNC, &since, .meta = "SEQ", .parse = parse_since,
         .show = show_since, .seen = &since_given,
         .help = "only records and tombstones with a sequence number above SEQ (0: a full "
                 "backup)"},
        {"output", 'o', RCU_OPT_STRING, &output, .meta = "FILE|-", .seen = &output_given,
         .help = "where the stream goes ('-': stdout)"},
        {"to", 0, RCU_OPT_STRING, &to, .meta = "s3://BUCKET/PREFIX",
         .help = "upload the next backup to an S3-compatible object store: an incremental "
                 "since this database's newest manifest there, else a full one; objects "
                 "first, the manifest naming the whole chain last"},
        {"full", 0, RCU_OPT_BOOL, &full, .help = "with --to: a full backup whatever is there"},
        {"list", 0, RCU_OPT_STRING, &list, .meta = "s3://BUCKET/PREFIX",
         .help = "print one line per manifest: until, time, chain length, bytes, database id"},
        {"database", 0, RCU_OPT_STRING, &database, .meta = "ID",
         .help = "with --list: only this database"},
        {0},
    };
    const rcu_opt_prog prog = {
        .name = "kvdump",
        .usage = "--dir PATH [--since SEQ] [-o FILE|-]\n--dir PATH --to s3://BUCKET/PREFIX "
                 "[--full]\n--list s3://BUCKET/PREFIX [--database ID]",
        .about = "Write a backup stream of every live record and tombstone with a sequence\n"
                 "number above SEQ of the data directory PATH, also while kvd serves it.\n"
                 "A FILE is written under a temporary name and renamed when complete.\n"
                 "On stderr: 'records R, tombstones T, seq N..M'; M is the next --since.\n"
                 "The object store comes from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
                 "AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL\n"
                 "(path-style addressing).\n",
        .epilog = "Exit status: 0 ok, 1 no such directory (--list: no backup there), 2 usage,\n"
                  "3 SEQ is below the directory's tombstone horizon (take a full backup),\n"
                  "4 cannot open the directory, 5 cannot write the output, 6 backup failed,\n"
                  "9 the object store failed.\n",
        .opts = opts,
    };
    int prc = rcu_opt_parse(&prog, argc, argv, NULL);
    if (prc != RCU_OPT_GO_ON)
        return prc;
    if (list && (dir || to || full || since_given || output_given))
        return usage_error("%s", "--list takes only the URL (and --database)");
    if (database && !list)
        return usage_error("%s", "--database goes with --list");
    if (full && !to)
        return usage_error("%s", "--full goes with --to");
    if (to && (since_given || output_given))
        return usage_error("%s", "--to chooses the since itself and writes no -o output");
    if (list || to) {
#ifdef RC_HAVE_S3
        if (list)
            return rcs3_cli_list(list, database);
        if (!dir)
            return usage_error("%s", "--dir PATH is required");
        return rcs3_cli_dump_to(dir, to, full);
#else
        return usage_error("%s", "this kvdump was built without object-store support");
#endif
    }
    if (!dir)
        return usage_error("%s", "--dir PATH is required");
    bool to_stdout = strcmp(output, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        return usage_error("%s", "refusing to write a binary stream to a terminal: use -o FILE "
                                 "or redirect stdout");

    rc_db *db = NULL;
    int err = rct_open_db(dir, true, &db);
    if (err == RC_ENOTFOUND) {
        fprintf(stderr, "kvdump: no data directory at '%s'\n", dir);
        return DUMP_NO_DIR;
    }
    if (err != 0) {
        fprintf(stderr, "kvdump: cannot open data directory '%s': %s\n", dir,
                rct_engine_detail(err));
        return DUMP_OPEN;
    }

    rct_catch_signals();
    rct_output out;
    if (rct_output_open(&out, output) != 0) {
        fprintf(stderr, "kvdump: cannot create '%s': %s\n", output, strerror(errno));
        rc_close(db);
        return DUMP_OUTPUT;
    }
    rct_progress progress;
    rct_progress_init(&progress, "kvdump");
    rc_backup_info info = {0};
    err = rc_backup(db, since, rct_output_write, &out, rct_progress_update, &progress, &info);
    rct_progress_finish(&progress);
    const char *out_name = to_stdout ? "stdout" : output;
    int status = DUMP_OK;
    if (err == RC_EHORIZON) {
        rc_stats st = {0};
        rc_stats_db(db, &st);
        fprintf(stderr,
                "kvdump: --since %llu is below the tombstone horizon %llu of '%s': deletes "
                "after %llu may be missing, take a full backup (--since 0)\n",
                (unsigned long long)since, (unsigned long long)st.tombstone_horizon, dir,
                (unsigned long long)since);
        status = DUMP_HORIZON;
    } else if (err != 0 && out.error) {
        fprintf(stderr, "kvdump: %s '%s': %s\n",
                out.error == EINTR ? "interrupted writing" : "cannot write", out_name,
                strerror(out.error));
        status = out.error == EINTR ? DUMP_FAILED : DUMP_OUTPUT;
    } else if (err != 0) {
        fprintf(stderr, "kvdump: backup of '%s' failed: %s\n", dir, rct_engine_detail(err));
        status = DUMP_FAILED;
    } else if (rct_output_commit(&out) != 0) {
        fprintf(stderr, "kvdump: cannot write '%s': %s\n", out_name, strerror(errno));
        status = DUMP_OUTPUT;
    }
    if (status != DUMP_OK)
        rct_output_abort(&out);
    rc_close(db);
    if (status == DUMP_OK)
        fprintf(stderr, "records %llu, tombstones %llu, seq %llu..%llu\n",
                (unsigned long long)info.records, (unsigned long long)info.tombstones,
                (unsigned long long)since, (unsigned long long)info.until);
    return status;
}
