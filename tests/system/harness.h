/*
 * harness.h — start the real kvd on 127.0.0.1 (port 0, temp dir), talk to it
 * with libcurl, stop it. Every wait is bounded; a kvd started here dies with
 * the test process (PR_SET_PDEATHSIG) even when the test crashes.
 */
#ifndef KVD_TEST_HARNESS_H
#define KVD_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "testkit.h"

typedef struct kvd_proc {
    pid_t pid;
    int port;
    char dir[256];
    char url[64];
    char ready_line[512];
} kvd_proc;

/* Start kvd with a fresh temp dir (or DIR when not NULL) and extra flags
 * (NULL-terminated, may be NULL). Returns false when it did not get ready. */
bool kvd_start(kvd_proc *k, const char *dir, const char *const *extra);
/* kvd_start passes --allow-anonymous-buckets (most suites create buckets
 * without credentials); this one only when ANONYMOUS_BUCKETS. */
bool kvd_start_as(kvd_proc *k, const char *dir, const char *const *extra, bool anonymous_buckets);
/* Send SIG (SIGTERM), wait up to 15 s (then SIGKILL). Returns the exit code,
 * or -1 when it had to be killed / died of a signal. */
int kvd_stop(kvd_proc *k, int sig);
/* Stop if running and remove the temp dir. */
void kvd_cleanup(kvd_proc *k);

typedef tk_resp resp; /* status, body (len bytes), headers (the raw block) */

/* One request. HDRS: NULL-terminated "Name: value" lines, may be NULL.
 * BODY NULL sends no body. PATH is sent as is (already encoded). */
resp http(const kvd_proc *k, const char *method, const char *path, const char *body, size_t blen,
          const char *const *hdrs);
/* Shorthands. */
resp http_get(const kvd_proc *k, const char *path);
resp http_put(const kvd_proc *k, const char *path, const char *body);
resp http_auth(const kvd_proc *k, const char *method, const char *path, const char *body,
               const char *bearer);
/* A response header's value (copied into BUF), or NULL. */
const char *resp_header(const resp *r, const char *name, char *buf, size_t cap);
json_t *resp_json(const resp *r);
void resp_free(resp *r);

/* Raw bytes over one new connection: send REQ (LEN bytes, as much as the
 * server takes), then read until the server closes or WAIT_MS passes.
 * Returns the bytes read (NUL-terminated in BUF); *CLOSED tells whether the
 * server closed the connection. */
size_t raw_exchange(const kvd_proc *k, const char *req, size_t len, char *buf, size_t cap,
                    int wait_ms, bool *closed);
/* How many HTTP/1.x status lines ANSWER holds, and the first one's status
 * (0 when none). */
int raw_status(const char *answer, int *count);

/* Create a bucket (NAME may be NULL) and copy its name and admin key. */
bool make_bucket(const kvd_proc *k, const char *body, char *name, size_t ncap, char *key,
                 size_t kcap);
/* Issue a token on BUCKET with ADMIN key. */
bool make_token(const kvd_proc *k, const char *bucket, const char *admin, const char *body,
                char *tok, size_t cap);

#endif
