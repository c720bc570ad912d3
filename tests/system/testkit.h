/*
 * testkit.h — what the kvd system suites (harness.c) and the replica-group
 * suites (tests/cluster/cluster.c) both need to drive real processes: a
 * monotonic clock, a free port, a child that dies with the test, and one
 * HTTP request through libcurl with its status, body and headers. Linked
 * into both through the kvd_harness library (tests/system/CMakeLists.txt).
 */
#ifndef KVD_TEST_TESTKIT_H
#define KVD_TEST_TESTKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

/* CLOCK_MONOTONIC in milliseconds. */
long long mono_ms(void);
/* A free TCP port on 127.0.0.1 (bound and released: a small race, retried by
 * the starters); -1 when none could be had. */
int free_port(void);

/* fork + execv ARGS (ARGS[0] the binary) with stdin from /dev/null and
 * stdout/stderr on OUT_FD/ERR_FD (-1: inherited); the child dies with the
 * calling thread (PR_SET_PDEATHSIG), even when the test crashes. The pid,
 * or -1 when fork failed. The caller closes its copies of the fds. */
pid_t tk_spawn(const char *const *args, int out_fd, int err_fd);
/* Does PID still run (not yet reaped)? */
bool tk_alive(pid_t pid);
/* SIGKILL (and SIGCONT, for a stopped one) and reap *PID; sets it to 0. */
void tk_reap(pid_t *pid);

/* One HTTP answer: status 0 when none came; BODY and HEADERS (the raw
 * header lines of every answer curl saw) are NUL-terminated and owned. */
typedef struct tk_resp {
    long status;
    char *body;
    size_t len;
    char *headers;
} tk_resp;

/* METHOD BASE+PATH (PATH sent as is, already encoded) on C (curl_easy_reset
 * first; NULL: a handle of its own), BODY (NULL: none, BLEN bytes), BEARER
 * (NULL or "": none) and HDRS ("Name: value" lines, NULL-terminated, may be
 * NULL), bounded by TIMEOUT_MS. Redirects are not followed. */
tk_resp tk_request(CURL *c, const char *base, const char *method, const char *path,
                   const char *body, size_t blen, const char *bearer, long timeout_ms,
                   const char *const *hdrs);
/* Header NAME of the last answer R holds (its first occurrence), copied into
 * OUT (truncated to CAP - 1); OUT, or NULL when absent. */
const char *tk_resp_header(const tk_resp *r, const char *name, char *out, size_t cap);
/* The body as JSON (NULL when it is not). */
json_t *tk_resp_json(const tk_resp *r);
void tk_resp_free(tk_resp *r);

#endif
