/*
 * test_kvd_logs.c — kvd's log as an operator reads it: every line has an
 * RFC 3339 UTC timestamp with milliseconds and a level, in text and in JSON
 * (--log-format); the access line names the client, the bucket and the body
 * bytes in and out; --log-file is reopened on SIGHUP (logrotate) with one
 * line logged, and SIGHUP never stops kvd.
 */
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

static kvd_proc K;
static char logpath[300];

static void teardown(void)
{
    kvd_cleanup(&K);
}

/* Start kvd logging at info to a file in a fresh temp dir; FORMAT "text" or "json". */
static void start_logging(const char *format)
{
    char dir[] = "/tmp/kvdtest.XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(K.dir, sizeof K.dir, "%s", dir);
    snprintf(logpath, sizeof logpath, "%s/kvd.log", dir);
    /* the data directory is a subdirectory so the log file sits beside it */
    char data[300];
    snprintf(data, sizeof data, "%s/data", dir);
    const char *extra[] = {"--log-level",  "info", "--log-file", logpath,
                           "--log-format", format, NULL};
    kvd_proc tmp = {0};
    cr_assert(kvd_start(&tmp, data, extra), "kvd did not become ready");
    tmp.dir[0] = '\0';
    K.pid = tmp.pid;
    K.port = tmp.port;
    snprintf(K.url, sizeof K.url, "%s", tmp.url);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&data, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return data;
}

/* Wait until the file at PATH contains NEEDLE (bounded at 120 s: a net for
 * a hang, never reached by a correct kvd however loaded the machine). */
static char *wait_for(const char *path, const char *needle)
{
    for (int i = 0; i < 12000; i++) {
        char *text = slurp(path);
        if (text != NULL && strstr(text, needle) != NULL)
            return text;
        free(text);
        usleep(10000);
    }
    return NULL;
}

static const char stamp_re[] = "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
                               "\\.[0-9]{3}Z$";

static bool stamp_ok(const char *s)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, stamp_re, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    /* and it is now, give or take a day: UTC, not a local or a zero time */
    struct tm tm = {0};
    if (ok && strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) != NULL) {
        time_t t = timegm(&tm), now = time(NULL);
        ok = t > now - 86400 && t < now + 86400;
    }
    return ok;
}

static bool level_ok(const char *s)
{
    return strcmp(s, "error") == 0 || strcmp(s, "warn") == 0 || strcmp(s, "info") == 0 ||
           strcmp(s, "debug") == 0;
}

/* A PUT of 5 bytes and a GET of them in bucket t, then a clean stop. */
static void traffic_and_stop(void)
{
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", name, sizeof name, key, sizeof key));
    resp r = http_auth(&K, "PUT", "/t/k1", "hello", key);
    cr_assert_eq(r.status, 201, "PUT: %ld %s", r.status, r.body);
    resp_free(&r);
    r = http_auth(&K, "GET", "/t/k1", NULL, key);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0, "kvd did not exit 0 on SIGTERM");
}

Test(logs, json_lines_parse_and_carry_the_access_fields, .fini = teardown)
{
    start_logging("json");
    traffic_and_stop();
    char *text = slurp(logpath);
    cr_assert(text != NULL, "no log file %s", logpath);
    int lines = 0, put = 0, get = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        cr_assert(json_is_object(o), "not a JSON object: %s", line);
        const char *ts = json_string_value(json_object_get(o, "ts"));
        const char *level = json_string_value(json_object_get(o, "level"));
        const char *msg = json_string_value(json_object_get(o, "msg"));
        cr_assert(ts != NULL && stamp_ok(ts), "bad ts in %s", line);
        cr_assert(level != NULL && level_ok(level), "bad level in %s", line);
        cr_assert(msg != NULL, "no msg in %s", line);
        lines++;
        if (strcmp(msg, "access") == 0 &&
            strcmp(json_string_value(json_object_get(o, "path")), "/t/k1") == 0) {
            const char *method = json_string_value(json_object_get(o, "method"));
            const char *client = json_string_value(json_object_get(o, "client"));
            cr_assert(client != NULL && strncmp(client, "127.0.0.1:", 10) == 0, "client: %s", line);
            cr_assert(atoi(client + 10) > 0, "client port: %s", line);
            cr_assert_str_eq(json_string_value(json_object_get(o, "bucket")), "t");
            cr_assert(json_is_integer(json_object_get(o, "duration_us")), "%s", line);
            long long in = json_integer_value(json_object_get(o, "bytes_in"));
            long long out = json_integer_value(json_object_get(o, "bytes_out"));
            long long status = json_integer_value(json_object_get(o, "status"));
            if (strcmp(method, "PUT") == 0) {
                put++;
                cr_expect_eq(status, 201);
                cr_expect_eq(in, 5, "PUT bytes_in: %s", line);
                cr_expect_eq(out, 0, "PUT bytes_out: %s", line);
            } else if (strcmp(method, "GET") == 0) {
                get++;
                cr_expect_eq(status, 200);
                cr_expect_eq(in, 0, "GET bytes_in: %s", line);
                cr_expect_eq(out, 5, "GET bytes_out: %s", line);
            }
        }
        if (strcmp(msg, "access") == 0 &&
            strcmp(json_string_value(json_object_get(o, "path")), "/") == 0)
            cr_expect(json_is_null(json_object_get(o, "bucket")), "bucket creation: %s", line);
        json_decref(o);
    }
    cr_expect_eq(put, 1, "one PUT access line");
    cr_expect_eq(get, 1, "one GET access line");
    cr_expect_geq(lines, 5, "lines: access x3, shutting down, stopped");
    free(text);
}

/* Text: "<stamp> kvd <level>: <message>" on every line. */
Test(logs, text_lines_have_stamp_level_and_access_fields, .fini = teardown)
{
    start_logging("text");
    traffic_and_stop();
    char *text = slurp(logpath);
    cr_assert(text != NULL);
    int lines = 0, put = 0, get = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char stamp[64], level[16];
        int off = 0;
        cr_assert_eq(sscanf(line, "%63s kvd %15[a-z]: %n", stamp, level, &off), 2, "line: %s",
                     line);
        cr_assert(off > 0, "no message: %s", line);
        cr_assert(stamp_ok(stamp), "bad stamp in %s", line);
        cr_assert(level_ok(level), "bad level in %s", line);
        lines++;
        const char *m = line + off;
        char method[8], path[64], client[64], bucket[80];
        unsigned status;
        unsigned long long us, in, out;
        if (sscanf(m, "%7s %63s %u %lluus client=%63s bucket=%79s in=%llu out=%llu", method, path,
                   &status, &us, client, bucket, &in, &out) == 8 &&
            strcmp(path, "/t/k1") == 0) {
            cr_assert(strncmp(client, "127.0.0.1:", 10) == 0, "client: %s", line);
            cr_assert_str_eq(bucket, "t");
            if (strcmp(method, "PUT") == 0) {
                put++;
                cr_expect(status == 201 && in == 5 && out == 0, "PUT: %s", line);
            } else if (strcmp(method, "GET") == 0) {
                get++;
                cr_expect(status == 200 && in == 0 && out == 5, "GET: %s", line);
            }
        }
    }
    cr_expect_eq(put, 1);
    cr_expect_eq(get, 1);
    cr_expect_geq(lines, 5);
    free(text);
}

/* logrotate's way: rename the file, SIGHUP, and the next lines land in a new
 * file at the old path; kvd keeps serving. */
Test(logs, sighup_reopens_the_log_file, .fini = teardown)
{
    start_logging("text");
    char rotated[320];
    snprintf(rotated, sizeof rotated, "%s.1", logpath);
    cr_assert_eq(rename(logpath, rotated), 0);
    cr_assert_eq(kill(K.pid, SIGHUP), 0);
    char *fresh = wait_for(logpath, "SIGHUP: reopened the log file");
    cr_assert(fresh != NULL, "no reopen line in a new %s", logpath);
    free(fresh);
    resp r = http_get(&K, "/healthz");
    cr_assert_eq(r.status, 200, "kvd stopped serving after SIGHUP");
    resp_free(&r);
    fresh = wait_for(logpath, "GET /healthz 200");
    cr_assert(fresh != NULL, "the access line did not go to the new file");
    free(fresh);
    char *old = slurp(rotated);
    cr_assert(old != NULL);
    cr_expect(strstr(old, "/healthz") == NULL, "the old file still gets lines: %s", old);
    free(old);
    /* a second rotation works as well */
    cr_assert_eq(rename(logpath, rotated), 0);
    cr_assert_eq(kill(K.pid, SIGHUP), 0);
    fresh = wait_for(logpath, "SIGHUP: reopened");
    cr_assert(fresh != NULL);
    free(fresh);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
}

/* Without --log-file SIGHUP is logged and ignored: kvd neither dies nor restarts. */
Test(logs, sighup_without_a_log_file_keeps_kvd_running, .fini = teardown)
{
    cr_assert(kvd_start(&K, NULL, NULL));
    pid_t before = K.pid;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(kill(K.pid, SIGHUP), 0);
    resp r = http_get(&K, "/healthz");
    cr_assert_eq(r.status, 200, "kvd died on SIGHUP");
    resp_free(&r);
    cr_assert_eq(K.pid, before);
    cr_assert_eq(kill(K.pid, 0), 0, "kvd is gone");
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
}

/* A log file kvd cannot open is a start-up failure that names the flag. */
Test(logs, unwritable_log_file_fails_start, .fini = teardown)
{
    const char *extra[] = {"--log-file", "/nonexistent-dir/kvd.log", NULL};
    cr_assert_not(kvd_start(&K, NULL, extra), "kvd started without its log file");
}
