/*
 * cmd_backup.c — kv backup: the backup stream of a running kvd, through
 * GET /admin/backup (kvd's admin token as --key), to a file or stdout.
 *
 * The stream is kvdump's format: `kvload` applies it offline. kvd streams it
 * with chunked encoding and ends a failed transfer without its final chunk,
 * which libcurl reports, so a partial stream is never taken for a backup: a
 * file is written under a temporary name and renamed only once complete and
 * synced. There is no restore through kvd (it has no route that loads a
 * stream into a serving database): restore with kvload while kvd is stopped.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct backup_out {
    const char *path; /* NULL: stdout */
    char *tmp;
    FILE *f;
} backup_out;

static int out_open(kv_ctx *ctx, backup_out *o)
{
    if (!o->path) {
        if (kv_stdout_is_tty())
            return kv_usage_error(ctx, "refusing to write a binary stream to a terminal: use -o "
                                       "FILE or redirect stdout");
        o->f = stdout;
        return 0;
    }
    size_t n = strlen(o->path) + 16;
    o->tmp = malloc(n);
    if (!o->tmp)
        return kv_fail(ctx, KV_EXIT_LOCAL, "out of memory");
    snprintf(o->tmp, n, "%s.tmpXXXXXX", o->path);
    int fd = mkstemp(o->tmp);
    if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        free(o->tmp);
        o->tmp = NULL;
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot create '%s': %s", o->path, strerror(err));
    }
    return 0;
}

/* Make the file complete under its name (OK) or remove it. */
static int out_close(kv_ctx *ctx, backup_out *o, bool ok)
{
    int rc = 0;
    if (o->f == stdout) {
        if (ok)
            rc = kv_finish_stdout(ctx);
        return rc;
    }
    if (!o->f)
        return 0;
    if (ok && (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0))
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot write '%s': %s", o->path, strerror(errno));
    if (fclose(o->f) != 0 && ok && rc == 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot write '%s': %s", o->path, strerror(errno));
    if (ok && rc == 0 && rename(o->tmp, o->path) != 0)
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot rename to '%s': %s", o->path, strerror(errno));
    if (!ok || rc != 0)
        unlink(o->tmp);
    free(o->tmp);
    return rc;
}

int kv_cmd_backup(kv_ctx *ctx, int argc, char **argv)
{
    backup_out out = {0};
    uint64_t since = 0;
    const rcu_opt opts[] = {
        {"output", 'o', RCU_OPT_STRING, &out.path, .meta = "FILE", .def = "stdout",
         .help = "where the stream goes (written under a temporary name, renamed when complete)"},
        {"since", 's', RCU_OPT_INT, &since, sizeof since, .meta = "SEQ",
         .help = "only what was written after sequence number SEQ (0: a full backup)"},
        {0},
    };
    int rc = kv_parse_options(
        ctx, &argc, argv, opts, "[--since SEQ] [-o FILE]",
        "Write the backup stream of the running kvd (every bucket; kvdump's format,\n"
        "applied with kvload while kvd is stopped) to FILE or stdout. Needs kvd's\n"
        "admin token (--admin-token-file) as --key. Exit 6 when SEQ is below the\n"
        "tombstone horizon (take a full backup).\n");
    if (rc >= 0)
        return rc;
    if (argc > 1)
        return kv_usage_error(ctx, "unexpected argument '%s'", argv[1]);
    if ((rc = out_open(ctx, &out)) != 0)
        return rc;
    char path[64];
    snprintf(path, sizeof path, "/admin/backup?since=%llu", (unsigned long long)since);
    ctx->sink = out.f;
    ctx->sink_bytes = 0;
    rc = kv_http(ctx, "GET", path, NULL, 0, NULL);
    ctx->sink = NULL;
    if (rc == 0 && ctx->status == 403 && !ctx->key)
        rc = kv_fail(ctx, KV_EXIT_AUTH,
                     "cannot back up: kvd at %s has no admin token "
                     "(--admin-token-file), so it serves no backups",
                     ctx->url);
    else if (rc == 0 && (ctx->status < 200 || ctx->status > 299))
        rc = kv_http_error(ctx, "back up", NULL);
    int crc = out_close(ctx, &out, rc == 0);
    if (rc == 0)
        rc = crc;
    if (rc != 0)
        return rc;
    char until[32];
    if (kv_header(ctx, "X-Ringcask-Until", until, sizeof until) == 0)
        fprintf(stderr, "%llu bytes, seq %llu..%s\n", (unsigned long long)ctx->sink_bytes,
                (unsigned long long)since, until);
    else
        fprintf(stderr, "%llu bytes\n", (unsigned long long)ctx->sink_bytes);
    return 0;
}
