/*
 * stream_io.c — file plumbing for kvdump and kvload.
 *
 * A backup that stops half way must never look like a backup: kvdump writes
 * to "<name>.tmp.XXXXXX" in the target's directory and renames it onto the
 * final name only after fsync, then fsyncs the directory so the rename itself
 * survives a crash. Interruption (SIGINT/SIGTERM) sets a flag that makes the
 * next stream callback fail; the engine call then returns and the tool removes
 * its temporary file instead of dying with it in place.
 */
#include "stream_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t rct_interrupted = 0;

static void on_signal(int sig)
{
    rct_interrupted = sig;
}

void rct_catch_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe becomes EPIPE, reported as such */
}

int rct_output_open(rct_output *out, const char *path)
{
    *out = (rct_output){0};
    if (!path || strcmp(path, "-") == 0) {
        out->file = stdout;
        return 0;
    }
    size_t n = strlen(path);
    out->path = strdup(path);
    out->tmp_path = malloc(n + sizeof ".tmp.XXXXXX");
    if (!out->path || !out->tmp_path)
        goto fail_nomem;
    memcpy(out->tmp_path, path, n);
    memcpy(out->tmp_path + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkostemp(out->tmp_path, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    out->file = fdopen(fd, "wb");
    if (!out->file) {
        int err = errno;
        close(fd);
        unlink(out->tmp_path);
        errno = err;
        goto fail;
    }
    return 0;
fail_nomem:
    errno = ENOMEM;
fail : {
    int err = errno;
    free(out->path);
    free(out->tmp_path);
    *out = (rct_output){0};
    errno = err;
    return -1;
}
}

int rct_output_write(void *ctx, const void *buf, size_t len)
{
    rct_output *out = ctx;
    if (rct_interrupted) {
        out->error = EINTR;
        return -1;
    }
    if (len && fwrite(buf, 1, len, out->file) != len) {
        out->error = errno ? errno : EIO;
        return -1;
    }
    out->bytes += len;
    return 0;
}

static int fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rct_output_commit(rct_output *out)
{
    if (!out->path) {
        if (fflush(out->file) != 0)
            return -1;
        return 0;
    }
    int rc = 0, err = 0;
    if (fflush(out->file) != 0 || fsync(fileno(out->file)) != 0)
        rc = -1, err = errno;
    if (fclose(out->file) != 0 && rc == 0)
        rc = -1, err = errno;
    out->file = NULL;
    if (rc == 0 && rename(out->tmp_path, out->path) != 0)
        rc = -1, err = errno;
    if (rc == 0)
        fsync_parent_dir(out->path); /* best effort: the data itself is synced */
    else
        unlink(out->tmp_path);
    free(out->path);
    free(out->tmp_path);
    out->path = out->tmp_path = NULL;
    errno = err;
    return rc;
}

void rct_output_abort(rct_output *out)
{
    if (out->path) {
        if (out->file)
            fclose(out->file);
        unlink(out->tmp_path);
        free(out->path);
        free(out->tmp_path);
    } else if (out->file) {
        fflush(out->file);
    }
    *out = (rct_output){0};
}

int rct_input_open(rct_input *in, const char *path)
{
    *in = (rct_input){0};
    if (!path || strcmp(path, "-") == 0) {
        in->file = stdin;
        in->name = "stdin";
        return 0;
    }
    in->name = path;
    in->file = fopen(path, "rb");
    return in->file ? 0 : -1;
}

long rct_input_peek(rct_input *in, size_t want)
{
    if (want > sizeof(in->peeked))
        want = sizeof(in->peeked);
    while (in->peek_len < want) {
        size_t n = fread(in->peeked + in->peek_len, 1, want - in->peek_len, in->file);
        if (n == 0) {
            if (ferror(in->file)) {
                in->error = errno ? errno : EIO;
                return -1;
            }
            break;
        }
        in->peek_len += n;
        in->bytes += n;
    }
    return (long)(in->peek_len - in->peek_off);
}

long rct_input_read(void *ctx, void *buf, size_t len)
{
    rct_input *in = ctx;
    if (rct_interrupted) {
        in->error = EINTR;
        return -1;
    }
    if (in->peek_off < in->peek_len) {
        size_t n = in->peek_len - in->peek_off;
        if (n > len)
            n = len;
        memcpy(buf, in->peeked + in->peek_off, n);
        in->peek_off += n;
        return (long)n;
    }
    if (len > (size_t)LONG_MAX)
        len = (size_t)LONG_MAX;
    size_t n = fread(buf, 1, len, in->file);
    if (n == 0 && ferror(in->file)) {
        in->error = errno ? errno : EIO;
        return -1;
    }
    in->bytes += n;
    return (long)n;
}

void rct_input_close(rct_input *in)
{
    if (in->file && in->file != stdin)
        fclose(in->file);
    in->file = NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rct_progress_init(rct_progress *p, const char *label)
{
    *p = (rct_progress){.enabled = isatty(STDERR_FILENO) == 1, .label = label};
}

void rct_progress_update(void *ctx, uint64_t done, uint64_t total)
{
    rct_progress *p = ctx;
    if (!p || !p->enabled)
        return;
    uint64_t now = now_ms();
    if (p->drawn && now - p->last_draw_ms < 100 && done < total)
        return;
    p->last_draw_ms = now;
    p->drawn = true;
    enum { width = 30 };
    if (total == 0 || done > total) {
        fprintf(stderr, "\r%s %llu", p->label, (unsigned long long)done);
    } else {
        unsigned filled = (unsigned)((double)done / (double)total * width);
        char bar[width + 1];
        for (unsigned i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %3u%%", p->label, bar,
                (unsigned)((double)done / (double)total * 100.0));
    }
    fflush(stderr);
}

void rct_progress_finish(rct_progress *p)
{
    if (p->enabled && p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = false;
}

int rct_parse_seq(const char *s, uint64_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int rct_open_db(const char *dir, bool read_only, rc_db **db)
{
    rc_options o;
    rc_options_default(&o);
    o.merge_check_ms = 0;
    o.ttl_sweep_ms = 0;
    if (read_only) {
        o.read_only = true;
        o.create_if_missing = false;
        o.write_hints = false;
    } else {
        o.sync = RC_SYNC_NONE;
        o.create_if_missing = true;
    }
    return rc_open(dir, &o, db);
}

const char *rct_engine_detail(int err)
{
    const char *detail = rc_last_error_message();
    return detail && *detail ? detail : rc_strerror(err);
}
