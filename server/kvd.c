/*
 * kvd.c — process-wide helpers: the logger and the clocks.
 *
 * The log goes to stderr, one fprintf per line (stdio locks the stream, so
 * lines from different threads never interleave), with a UTC timestamp.
 */
#include "kvd.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

log_level kvd_log_level = LOG_INFO;

void kvd_log(log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > kvd_log_level)
        return;
    char msg[1024], stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ kvd %s: %s\n", stamp, ts.tv_nsec / 1000000, names[level], msg);
}

int64_t kvd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t kvd_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
