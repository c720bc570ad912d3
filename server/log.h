/*
 * log.h — kvd's log: where it goes (stderr or --log-file), its format (text
 * or JSON lines), reopening on SIGHUP, and the access log line.
 *
 * Every line carries a timestamp (RFC 3339, UTC, milliseconds) and a level.
 * Text:  2026-12-05T18:32:10.123Z kvd info: message
 * JSON:  {"ts":"2026-12-05T18:32:10.123Z","level":"info","msg":"message"}
 * The general entry point is kvd_log() (declared in kvd.h, used by every
 * module); kvd_log_access() writes the one line per request.
 */
#ifndef KVD_LOG_H
#define KVD_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "kvd.h"

/* Send the log to PATH (appended, created 0640) instead of stderr; PATH NULL
 * keeps stderr. FMT applies either way. 0, or -errno when PATH cannot be
 * opened (the log stays on stderr). Call once, before threads start. */
int kvd_log_open(const char *path, log_format fmt);

/* Reopen the --log-file (after logrotate moved it): the new file replaces
 * the old one atomically for every thread. 0, 1 when the log is stderr
 * (nothing to reopen), or -errno (the old file stays in use). */
int kvd_log_reopen(void);

/* The log file's path, or NULL when the log is stderr. */
const char *kvd_log_path(void);

/* One request, as the access log sees it. Strings may be NULL ("-"). */
typedef struct access_entry {
    const char *method;
    const char *path;   /* raw, still percent-encoded */
    const char *client; /* "ADDR:PORT" or "[ADDR6]:PORT" */
    const char *bucket; /* NULL or "" outside bucket routes */
    unsigned status;
    uint64_t duration_us;
    uint64_t bytes_in;  /* request body bytes received */
    uint64_t bytes_out; /* response body bytes queued */
    bool aborted;       /* the connection ended before the response completed */
} access_entry;

/* Write the access line of E at level info (nothing when the level is lower). */
void kvd_log_access(const access_entry *e);

/* Copy S into OUT (CAP bytes, NUL added, truncated to fit) with every byte
 * outside printable ASCII, and '\\', written as \xHH, so a client cannot
 * break a line or forge one. Exposed for tests. Returns OUT. */
char *kvd_log_sanitize(const char *s, char *out, size_t cap);

#endif
