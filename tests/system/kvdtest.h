/*
 * kvdtest.h — the fixture shared by the kvd system suites: one fresh kvd per
 * test (Criterion runs each test in its own process), one bucket "t" with its
 * admin key, and call(), which sends the admin key unless told otherwise.
 */
#ifndef KVD_TEST_KVDTEST_H
#define KVD_TEST_KVDTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

static kvd_proc K;
static char B[96], AK[96];

/* kvd's flags for every suite that takes the default fixture: a script's
 * wall-clock cap far beyond any test's scripts, so a slow machine cannot turn
 * a run into a 422 "time limit" (the one test of that cap sets its own). */
static const char *const kvd_test_flags[] = {"--script-timeout", "600000", NULL};

static inline void kvd_setup(void)
{
    cr_assert(kvd_start(&K, NULL, kvd_test_flags), "kvd did not become ready");
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK),
              "could not create bucket t");
}

static inline void kvd_teardown(void)
{
    kvd_cleanup(&K);
}

/* Suites that run kvd with a server admin token (--admin-token-file): the
 * token file, and a directory a test restored a backup into (removed by
 * kvd_admin_teardown when set). */
static char kvd_tokfile[64];
static char kvd_restored[64];

/* METHOD PATH with the admin key (CRED NULL) or CRED ("" for none), a body
 * (NULL for none) and up to two extra headers. */
static inline resp call_as(const char *cred, const char *method, const char *path, const char *body,
                           const char *h1, const char *h2)
{
    char auth[4200];
    const char *hdrs[4];
    size_t n = 0;
    if (cred == NULL)
        cred = AK;
    if (cred[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", cred);
        hdrs[n++] = auth;
    }
    if (h1 != NULL)
        hdrs[n++] = h1;
    if (h2 != NULL)
        hdrs[n++] = h2;
    hdrs[n] = NULL;
    return http(&K, method, path, body, body ? strlen(body) : 0, hdrs);
}

static inline resp call(const char *method, const char *path, const char *body)
{
    return call_as(NULL, method, path, body, NULL, NULL);
}

/* kvd with the server admin token TOKEN (written to a temp file) and the
 * flags EXTRA (NULL-terminated, may be NULL); bucket "t" made with TOKEN. */
static inline void kvd_admin_setup(const char *token, const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    snprintf(kvd_tokfile, sizeof kvd_tokfile, "/tmp/kvdtok.XXXXXX");
    int fd = mkstemp(kvd_tokfile);
    cr_assert(fd >= 0);
    cr_assert(write(fd, token, strlen(token)) > 0);
    close(fd);
    args[n++] = "--admin-token-file";
    args[n++] = kvd_tokfile;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 23; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cr_assert(kvd_start(&K, NULL, args), "kvd did not become ready");
    resp r = call_as(token, "POST", "/", "{\"name\":\"t\"}", NULL, NULL);
    cr_assert_eq(r.status, 201, "could not create bucket t: %ld %.200s", r.status, r.body);
    json_t *j = resp_json(&r);
    snprintf(B, sizeof B, "t");
    snprintf(AK, sizeof AK, "%s", json_string_value(json_object_get(j, "admin_key")));
    json_decref(j);
    resp_free(&r);
}

static inline void kvd_admin_teardown(void)
{
    kvd_cleanup(&K);
    if (kvd_tokfile[0] != '\0')
        unlink(kvd_tokfile);
    if (kvd_restored[0] != '\0') {
        kvd_proc other = {0};
        snprintf(other.dir, sizeof other.dir, "%s", kvd_restored);
        kvd_cleanup(&other);
    }
}

#define EXPECT(r, code)                                                                            \
    cr_assert_eq((r).status, (code), "%s:%d: expected %d, got %ld: %.300s", __FILE__, __LINE__,    \
                 (code), (r).status, (r).body)

/* Status and the JSON error code of an error response. */
#define EXPECT_ERR(r, code, err)                                                                   \
    do {                                                                                           \
        EXPECT(r, code);                                                                           \
        json_t *ej_ = resp_json(&(r));                                                             \
        cr_assert(ej_ != NULL, "error body is not JSON: %.200s", (r).body);                        \
        cr_assert(json_is_string(json_object_get(ej_, "message")), "no message");                  \
        cr_assert_str_eq(json_string_value(json_object_get(ej_, "error")), (err));                 \
        json_decref(ej_);                                                                          \
    } while (0)

#define BODY_IS(r, text)                                                                           \
    cr_assert(((r).len == strlen(text) && memcmp((r).body, (text), (r).len) == 0),                 \
              "body: expected '%s', got '%.*s'", (text), (int)(r).len, (r).body)

#endif
