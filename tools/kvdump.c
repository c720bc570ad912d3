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
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "ringcask.h"

enum {
    DUMP_OK = 0,
    DUMP_NO_DIR = 1,
    DUMP_USAGE = 2,
    DUMP_HORIZON = 3,
    DUMP_OPEN = 4,
    DUMP_OUTPUT = 5,
    DUMP_FAILED = 6,
};

static const char usage[] =
    "usage: kvdump --dir PATH [--since SEQ] [-o FILE|-]\n"
    "\n"
    "Write a backup stream of every live record and tombstone with a sequence\n"
    "number above SEQ (default 0: a full backup) of the data directory PATH,\n"
    "also while kvd serves it. The stream goes to FILE (written under a temporary\n"
    "name, renamed when complete) or to stdout ('-', the default).\n"
    "On stderr: 'records R, tombstones T, seq N..M'; M is the next --since.\n"
    "\n"
    "Exit status: 0 ok, 1 no such directory, 2 usage, 3 SEQ is below the\n"
    "directory's tombstone horizon (take a full backup), 4 cannot open the\n"
    "directory, 5 cannot write the output, 6 backup failed.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("kvdump: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see kvdump --help)\n", stderr);
    return DUMP_USAGE;
}

static const char *engine_detail(int err)
{
    const char *detail = rc_last_error_message();
    return detail && *detail ? detail : rc_strerror(err);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"since", required_argument, NULL, 's'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *dir = NULL, *output = "-";
    uint64_t since = 0;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":d:s:o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 's':
            if (rct_parse_seq(optarg, &since) != 0)
                return usage_error("--since '%s' is not a sequence number", optarg);
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return DUMP_OK;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!dir)
        return usage_error("%s", "--dir PATH is required");
    bool to_stdout = strcmp(output, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        return usage_error("%s", "refusing to write a binary stream to a terminal: use -o FILE "
                                 "or redirect stdout");

    rc_options o;
    rc_options_default(&o);
    o.read_only = true;
    o.create_if_missing = false;
    o.merge_check_ms = 0;
    o.ttl_sweep_ms = 0;
    o.write_hints = false;
    rc_db *db = NULL;
    int err = rc_open(dir, &o, &db);
    if (err == RC_ENOTFOUND) {
        fprintf(stderr, "kvdump: no data directory at '%s'\n", dir);
        return DUMP_NO_DIR;
    }
    if (err != 0) {
        fprintf(stderr, "kvdump: cannot open data directory '%s': %s\n", dir, engine_detail(err));
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
        fprintf(stderr, "kvdump: backup of '%s' failed: %s\n", dir, engine_detail(err));
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
