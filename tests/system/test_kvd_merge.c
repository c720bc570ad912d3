/*
 * test_kvd_merge.c — POST /admin/merge and `kv merge` end to end:
 *  - only the server's admin token may ask (401 without it or with a bucket
 *    key, 403 on a kvd without --admin-token-file), only by POST (405 with
 *    Allow: POST);
 *  - the answer comes when the merge is done: dead bytes gone, what was
 *    reclaimed, the tombstone horizon moved past the deletes (an incremental
 *    backup from below it is now refused), live keys intact, deleted ones
 *    still absent; a second merge finds nothing to do;
 *  - `kv merge` prints the same figures and fails without the token.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvdtest.h"

static const char admin_token[] = "merge-admin-token-0123456789";
/* no tombstone retention: deletes become droppable; and segments large
 * enough that the test's data stays in the active one, which the background
 * merger leaves alone (it seals a dead active segment only from 1/8 of this
 * size): only the requested merge reclaims anything */
static const char *const merge_flags[] = {"--segment-bytes", "1M", "--tombstone-retention", "0",
                                          NULL};

static void merge_setup(void)
{
    kvd_admin_setup(admin_token, merge_flags);
}

static void merge_teardown(void)
{
    kvd_admin_teardown();
}

TestSuite(merge, .init = merge_setup, .fini = merge_teardown, .timeout = 600);

static json_int_t jint(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    cr_assert(json_is_integer(v), "no integer '%s' in the merge answer", name);
    return json_integer_value(v);
}

/* 300 keys of ~200 bytes, then the first 250 deleted: most bytes dead. */
static void write_and_delete(void)
{
    char path[64], value[201];
    memset(value, 'v', 200);
    value[200] = '\0';
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof path, "/t/k%03d", i);
        resp r = call("PUT", path, value);
        EXPECT(r, 201);
        resp_free(&r);
    }
    for (int i = 0; i < 250; i++) {
        snprintf(path, sizeof path, "/t/k%03d", i);
        resp r = call("DELETE", path, NULL);
        EXPECT(r, 204);
        resp_free(&r);
    }
}

Test(merge, needs_the_admin_token_and_post)
{
    resp r = call_as("", "POST", "/admin/merge", "", NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    r = call("POST", "/admin/merge", ""); /* the bucket's admin key is not the server's */
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    r = call_as("not-the-admin-token-0123456789", "POST", "/admin/merge", "", NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    r = call_as(admin_token, "GET", "/admin/merge", NULL, NULL, NULL);
    EXPECT_ERR(r, 405, "method_not_allowed");
    char allow[32];
    cr_assert_str_eq(resp_header(&r, "Allow", allow, sizeof allow), "POST");
    resp_free(&r);
    r = call_as(admin_token, "POST", "/admin/merge", "", NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

Test(merge, answers_when_done_with_what_it_reclaimed)
{
    write_and_delete();
    uint64_t last = 0;
    {
        resp r = call_as(admin_token, "GET", "/metrics?format=json", NULL, NULL, NULL);
        EXPECT(r, 200);
        json_t *m = resp_json(&r);
        cr_assert(jint(m, "dead_bytes") > 0, "nothing dead before the merge");
        last = (uint64_t)jint(m, "last_seq");
        json_decref(m);
        resp_free(&r);
    }
    resp r = call_as(admin_token, "POST", "/admin/merge", "", NULL, NULL);
    EXPECT(r, 200);
    json_t *o = resp_json(&r);
    cr_assert(json_is_true(json_object_get(o, "merged")), "%.300s", r.body);
    cr_assert_gt(jint(o, "bytes_reclaimed"), 250 * 200, "%.300s", r.body);
    cr_assert_gt(jint(o, "dead_bytes_before"), 0);
    cr_assert_eq(jint(o, "dead_bytes_after"), 0, "%.300s", r.body);
    cr_assert_gt(jint(o, "bytes_read"), jint(o, "bytes_written"));
    json_int_t horizon = jint(o, "tombstone_horizon");
    cr_assert_gt(horizon, 300, "the deletes' tombstones were dropped: %.300s", r.body);
    cr_assert_leq((uint64_t)horizon, last);
    cr_assert_geq(jint(o, "duration_ms"), 0);
    json_decref(o);
    resp_free(&r);

    /* what the answer says is what the server now holds */
    r = call_as(admin_token, "GET", "/metrics?format=json", NULL, NULL, NULL);
    json_t *m = resp_json(&r);
    cr_assert_eq(jint(m, "dead_bytes"), 0);
    cr_assert_geq(jint(m, "merges"), 1);
    json_decref(m);
    resp_free(&r);
    r = call_as(admin_token, "GET", "/admin/backup?since=1", NULL, NULL, NULL);
    EXPECT_ERR(r, 409, "horizon");
    resp_free(&r);
    for (int i = 0; i < 300; i += 7) {
        char path[64];
        snprintf(path, sizeof path, "/t/k%03d", i);
        r = call("GET", path, NULL);
        EXPECT(r, i < 250 ? 404 : 200);
        if (i >= 250)
            cr_assert_eq(r.len, 200);
        resp_free(&r);
    }

    /* nothing left to do */
    r = call_as(admin_token, "POST", "/admin/merge", "", NULL, NULL);
    EXPECT(r, 200);
    o = resp_json(&r);
    cr_assert(json_is_false(json_object_get(o, "merged")), "%.300s", r.body);
    cr_assert_eq(jint(o, "bytes_reclaimed"), 0);
    json_decref(o);
    resp_free(&r);
}

/* Run `kv ARGS` against K; its stdout into OUT; the exit status. */
static int run_kv(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --url '%s' %s 2>&1", KV_BIN, K.url, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(merge, kv_merge_prints_what_was_reclaimed)
{
    write_and_delete();
    char out[1024], args[256];
    cr_assert_eq(run_kv("merge", out, sizeof out), 4, "kv merge without the token: %s", out);
    snprintf(args, sizeof args, "--key %s merge", admin_token);
    cr_assert_eq(run_kv(args, out, sizeof out), 0, "kv merge: %s", out);
    unsigned long long reclaimed = 0, horizon = 0;
    cr_assert(sscanf(out, "reclaimed %llu bytes", &reclaimed) == 1, "kv merge printed: %s", out);
    cr_assert_gt(reclaimed, 250 * 200, "%s", out);
    const char *h = strstr(out, "tombstone horizon ");
    cr_assert(h != NULL && sscanf(h, "tombstone horizon %llu", &horizon) == 1, "%s", out);
    cr_assert_gt(horizon, 300, "%s", out);
    snprintf(args, sizeof args, "--key %s merge --json", admin_token);
    cr_assert_eq(run_kv(args, out, sizeof out), 0, "kv merge --json: %s", out);
    json_t *o = json_loads(out, 0, NULL);
    cr_assert(json_is_false(json_object_get(o, "merged")), "a second merge: %s", out);
    json_decref(o);
}

Test(merge, refused_without_an_admin_token)
{
    kvd_proc plain = {0};
    cr_assert(kvd_start(&plain, NULL, NULL), "kvd did not become ready");
    resp r = http(&plain, "POST", "/admin/merge", "", 0, NULL);
    long st = r.status;
    bool forbidden = r.body != NULL && strstr(r.body, "\"forbidden\"") != NULL;
    resp_free(&r);
    kvd_cleanup(&plain);
    cr_assert_eq(st, 403);
    cr_assert(forbidden);
}

/* ---- a merge held open: --merge-rate 1 (one byte a second) makes the
 * requested merge sleep for hours after its first write, so while it runs
 * nothing depends on timing; the teardown kills kvd (SIGKILL). */
static const char *const held_flags[] = {
    "--segment-bytes", "1M", "--tombstone-retention", "0", "--merge-rate", "1", NULL};

typedef struct merge_call {
    pthread_t th;
    _Atomic long status; /* 0 until answered */
    char code[64];
} merge_call;

static merge_call MC[2];
static int NMC;

static void held_setup(void)
{
    kvd_admin_setup(admin_token, held_flags);
}

static void held_teardown(void)
{
    kvd_admin_teardown(); /* SIGKILL: the held merge's request fails at once */
    for (int i = 0; i < NMC; i++)
        pthread_join(MC[i].th, NULL);
    NMC = 0;
}

TestSuite(merge_held, .init = held_setup, .fini = held_teardown, .timeout = 600);

static void *merge_main(void *arg)
{
    merge_call *m = arg;
    resp r = call_as(admin_token, "POST", "/admin/merge", "", NULL, NULL);
    const char *e = r.body ? strstr(r.body, "\"error\":\"") : NULL;
    if (e != NULL)
        sscanf(e + 9, "%63[^\"]", m->code);
    long st = r.status > 0 ? r.status : -1;
    resp_free(&r);
    atomic_store(&m->status, st);
    return NULL;
}

Test(merge_held, a_second_merge_while_one_runs_answers_409)
{
    write_and_delete();
    /* two at once: whichever comes second is refused at once while the
     * other one's merge runs (held by the rate) and has not answered */
    for (int i = 0; i < 2; i++) {
        atomic_store(&MC[i].status, 0);
        cr_assert_eq(pthread_create(&MC[i].th, NULL, merge_main, &MC[i]), 0);
        NMC = i + 1;
    }
    int first = -1;
    for (int k = 0; k < 6000 && first < 0; k++) {
        for (int i = 0; i < 2 && first < 0; i++)
            if (atomic_load(&MC[i].status) != 0)
                first = i;
        if (first < 0)
            usleep(10000);
    }
    cr_assert(first >= 0, "neither POST /admin/merge answered within 60 s");
    cr_assert_eq(atomic_load(&MC[first].status), 409, "the first answer was %ld (%s), not 409",
                 atomic_load(&MC[first].status), MC[first].code);
    cr_assert_str_eq(MC[first].code, "merge_running");
    cr_assert_eq(atomic_load(&MC[1 - first].status), 0,
                 "the merge that was running answered (%ld) before the 409",
                 atomic_load(&MC[1 - first].status));
    /* and again, while it still runs; reads and writes are served meanwhile */
    resp r = call_as(admin_token, "POST", "/admin/merge", "", NULL, NULL);
    EXPECT_ERR(r, 409, "merge_running");
    resp_free(&r);
    r = call("PUT", "/t/during-merge", "x");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/k299", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    cr_assert_eq(atomic_load(&MC[1 - first].status), 0, "the held merge answered");
}

Test(merge, bad_input_is_refused_and_merges_nothing)
{
    write_and_delete();
    /* a body: this route takes none */
    resp r = call_as(admin_token, "POST", "/admin/merge", "{\"all\":true}", NULL, NULL);
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    /* a body past the small-body limit: refused from its Content-Length */
    size_t big = 2u << 20;
    char *huge = malloc(big + 1);
    cr_assert(huge != NULL);
    memset(huge, 'x', big);
    huge[big] = '\0';
    r = call_as(admin_token, "POST", "/admin/merge", huge, NULL, NULL);
    free(huge);
    EXPECT(r, 413);
    resp_free(&r);
    /* other methods */
    const char *methods[] = {"PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < 3; i++) {
        r = call_as(admin_token, methods[i], "/admin/merge", "", NULL, NULL);
        EXPECT_ERR(r, 405, "method_not_allowed");
        resp_free(&r);
    }
    /* nothing was merged by any of them */
    r = call_as(admin_token, "GET", "/metrics?format=json", NULL, NULL, NULL);
    EXPECT(r, 200);
    json_t *m = resp_json(&r);
    cr_assert_eq(jint(m, "merges"), 0, "a refused request merged");
    cr_assert(jint(m, "dead_bytes") > 0);
    json_decref(m);
    resp_free(&r);
}
