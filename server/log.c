/*
 * log.c — the logger: timestamp and level on every line, text or JSON lines,
 * stderr or a file that SIGHUP reopens.
 *
 * A line is formatted into a buffer and written with one write(2), so lines
 * from different threads never interleave (the file is opened O_APPEND; a
 * pipe such as journald's stderr takes writes up to PIPE_BUF atomically).
 * The log's descriptor number never changes: a reopen opens the new file and
 * dup2()s it over the old number, which the kernel does atomically, so
 * writers need no lock and a line goes wholly to the old file or wholly to
 * the new one. Text from clients (paths, messages that quote them) is
 * sanitized: control bytes, non-ASCII and '\' become \xHH, so a request
 * cannot break or forge a line; JSON lines are built with Jansson.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

log_level kvd_log_level = LOG_INFO;

static int log_fd = STDERR_FILENO;
static char *log_path;
static log_format log_fmt = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int kvd_log_open(const char *path, log_format fmt)
{
    log_fmt = fmt;
    if (path == NULL)
        return 0;
    int fd = open_log(path);
    if (fd < 0)
        return fd;
    log_path = strdup(path);
    if (log_path == NULL) {
        close(fd);
        return -ENOMEM;
    }
    log_fd = fd;
    return 0;
}

int kvd_log_reopen(void)
{
    if (log_path == NULL)
        return 1;
    int fd = open_log(log_path);
    if (fd < 0)
        return fd;
    int rc = dup2(fd, log_fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

const char *kvd_log_path(void)
{
    return log_path;
}

char *kvd_log_sanitize(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return out;
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = c >= 0x20 && c < 0x7f && c != '\\';
        size_t need = plain ? 1 : 4;
        if (o + need >= cap)
            break;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

static void stamp_now(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    char base[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

static void write_line(const char *line, size_t len);

/* Write LINE as formatted by snprintf into CAP bytes (N its result): a
 * truncated line still ends in a newline. */
static void write_formatted(char *line, size_t cap, int n)
{
    if (n <= 0)
        return;
    if ((size_t)n >= cap) {
        n = (int)cap - 1;
        line[n - 1] = '\n';
    }
    write_line(line, (size_t)n);
}

static void write_line(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t w = write(log_fd, line, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere left to report it */
        line += w;
        len -= (size_t)w;
    }
}

/* Write O (stolen) as one JSON line. */
static void write_json(json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return;
    }
    line[n] = '\n';
    write_line(line, n + 1);
    free(line);
}

static json_t *json_head(const char *stamp, log_level level, const char *msg)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "ts", json_string(stamp));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "msg", json_string(msg));
    return o;
}

void kvd_log(log_level level, const char *fmt, ...)
{
    if (level > kvd_log_level || (unsigned)level > LOG_DEBUG)
        return;
    char raw[1024], msg[1024], stamp[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    kvd_log_sanitize(raw, msg, sizeof msg);
    stamp_now(stamp, sizeof stamp);
    if (log_fmt == LOG_FORMAT_JSON) {
        write_json(json_head(stamp, level, msg));
        return;
    }
    char line[1200];
    int n = snprintf(line, sizeof line, "%s kvd %s: %s\n", stamp, level_names[level], msg);
    write_formatted(line, sizeof line, n);
}

void kvd_log_access(const access_entry *e)
{
    if (LOG_INFO > kvd_log_level)
        return;
    char stamp[40], path[2048], client[80], bucket[80];
    stamp_now(stamp, sizeof stamp);
    kvd_log_sanitize(e->path ? e->path : "-", path, sizeof path);
    kvd_log_sanitize(e->client ? e->client : "-", client, sizeof client);
    bool has_bucket = e->bucket != NULL && e->bucket[0] != '\0';
    kvd_log_sanitize(has_bucket ? e->bucket : "-", bucket, sizeof bucket);
    const char *method = e->method ? e->method : "-";
    char m[16];
    kvd_log_sanitize(method, m, sizeof m);
    if (log_fmt == LOG_FORMAT_JSON) {
        json_t *o = json_head(stamp, LOG_INFO, "access");
        if (o == NULL)
            return;
        json_object_set_new(o, "method", json_string(m));
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "status", json_integer((json_int_t)e->status));
        json_object_set_new(o, "duration_us", json_integer((json_int_t)e->duration_us));
        json_object_set_new(o, "client", json_string(client));
        json_object_set_new(o, "bucket", has_bucket ? json_string(bucket) : json_null());
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)e->bytes_in));
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)e->bytes_out));
        if (e->aborted)
            json_object_set_new(o, "aborted", json_true());
        write_json(o);
        return;
    }
    char line[2400];
    int n = snprintf(line, sizeof line,
                     "%s kvd info: %s %s %u %lluus client=%s bucket=%s in=%llu "
                     "out=%llu%s\n",
                     stamp, m, path, e->status, (unsigned long long)e->duration_us, client, bucket,
                     (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out,
                     e->aborted ? " (aborted)" : "");
    write_formatted(line, sizeof line, n);
}
