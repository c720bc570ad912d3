/*
 * test_kvd_durable.c — durable writes that wait for their group commit with
 * the connection suspended (server/durable.c), under --sync always and only
 * two HTTP threads:
 *   - 24 clients x 40 PUTs and DELETEs at once: every one answered, and
 *     every acknowledged write is there after SIGKILL and a restart;
 *   - 24 clients x 30 PATCH increments, batches and script runs at once
 *     (all three wait with the connection suspended too): every answer is
 *     right, and every acknowledged write survives SIGKILL;
 *   - a failed fdatasync (the engine's fault seam, armed by SIGUSR2 in test
 *     builds) answers 5xx to the write that waited for it and to every
 *     later write, and nothing acknowledged before is lost;
 *   - clients that hang up while their write waits leave a server that
 *     keeps answering and stops cleanly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "kvdtest.h"

static const char *const durable_flags[] = {"--sync", "always", "--threads", "2", NULL};

static void durable_setup(void)
{
    cr_assert(kvd_start(&K, NULL, durable_flags), "kvd did not become ready");
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK),
              "could not create bucket t");
}

TestSuite(durable, .init = durable_setup, .fini = kvd_teardown, .timeout = 600);

#define CLIENTS 24
#define PER_CLIENT 40

typedef struct client {
    int id;
    long status[PER_CLIENT]; /* of each PUT */
    long del_status;         /* of the DELETE of the client's first key */
    long failures;
} client;

static size_t discard(char *p, size_t s, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return s * n;
}

static long put_once(CURL *c, const char *path, const char *method, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", K.url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    long status = 0;
    if (curl_easy_perform(c) != CURLE_OK)
        return -1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static CURL *client_handle(struct curl_slist **h)
{
    char auth[200];
    CURL *c = curl_easy_init();
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", AK);
    *h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L); /* a net for a hang */
    return c;
}

static void *client_main(void *arg)
{
    client *cl = arg;
    struct curl_slist *h = NULL;
    CURL *c = client_handle(&h);
    char path[128], val[64];
    for (int i = 0; i < PER_CLIENT; i++) {
        snprintf(path, sizeof path, "/t/c%d-%d", cl->id, i);
        snprintf(val, sizeof val, "value of c%d-%d", cl->id, i);
        cl->status[i] = put_once(c, path, "PUT", val);
        if (cl->status[i] != 201)
            cl->failures++;
    }
    snprintf(path, sizeof path, "/t/c%d-0", cl->id);
    cl->del_status = put_once(c, path, "DELETE", NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

Test(durable, concurrent_writes_on_two_threads_all_acknowledged_survive_sigkill)
{
    curl_global_init(CURL_GLOBAL_ALL);
    static client cl[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (client){.id = i};
        cr_assert_eq(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CLIENTS; i++) {
        cr_assert_eq(cl[i].failures, 0, "client %d: %ld PUTs not answered 201", i, cl[i].failures);
        cr_assert_eq(cl[i].del_status, 204, "client %d: DELETE answered %ld", i, cl[i].del_status);
    }
    /* acknowledged => durable: no clean shutdown to help */
    kvd_stop(&K, SIGKILL);
    cr_assert(kvd_start(&K, K.dir, durable_flags), "kvd did not restart");
    char path[128], val[64];
    for (int c = 0; c < CLIENTS; c++)
        for (int i = 0; i < PER_CLIENT; i++) {
            snprintf(path, sizeof path, "/t/c%d-%d", c, i);
            resp r = call("GET", path, NULL);
            if (i == 0) {
                cr_assert_eq(r.status, 404, "%s: its acknowledged DELETE was lost (%ld)", path,
                             r.status);
            } else {
                snprintf(val, sizeof val, "value of c%d-%d", c, i);
                cr_assert_eq(r.status, 200, "%s: acknowledged, then lost (%ld)", path, r.status);
                cr_assert(r.len == strlen(val) && memcmp(r.body, val, r.len) == 0,
                          "%s: wrong value after restart", path);
            }
            resp_free(&r);
        }
    curl_global_cleanup();
}

#define RMW_ROUNDS 30

typedef struct rmw_client {
    int id;
    long failures; /* answers that were not 200/201 with the right body */
    char last_bad[256];
} rmw_client;

typedef struct sink {
    char *buf;
    size_t cap, len;
} sink;

static size_t keep(char *p, size_t s, size_t n, void *ctx)
{
    sink *k = ctx;
    size_t b = s * n;
    size_t room = k->cap - 1 - k->len;
    size_t take = b < room ? b : room;
    memcpy(k->buf + k->len, p, take);
    k->len += take;
    k->buf[k->len] = 0;
    return b;
}

/* One request: its status, and the start of its body in OUT. */
static long rmw_call(CURL *c, const char *method, const char *path, const char *body, char *out,
                     size_t cap)
{
    sink k = {.buf = out, .cap = cap};
    out[0] = 0;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    long st = put_once(c, path, method, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    return st;
}

static void rmw_bad(rmw_client *cl, const char *what, long st, const char *body)
{
    if (cl->failures++ == 0)
        snprintf(cl->last_bad, sizeof cl->last_bad, "%s: %ld %.150s", what, st, body);
}

static void *rmw_main(void *arg)
{
    rmw_client *cl = arg;
    struct curl_slist *h = NULL;
    CURL *c = client_handle(&h);
    char path[128], body[256], out[512], want[64];
    for (int i = 1; i <= RMW_ROUNDS; i++) {
        /* PATCH: an increment of the client's own counter answers its new value */
        snprintf(path, sizeof path, "/t/ctr-%d", cl->id);
        long st = rmw_call(c, "PATCH", path, "+1", out, sizeof out);
        snprintf(want, sizeof want, "%d", i);
        if (st != (i == 1 ? 201 : 200) || strcmp(out, want) != 0)
            rmw_bad(cl, "PATCH", st, out);
        /* a batch: a set, an increment of a shared counter, a get */
        snprintf(body, sizeof body,
                 "{\"ops\":[{\"set\":\"b%d-%d\",\"value\":\"v%d\"},"
                 "{\"incr\":\"shared\",\"by\":1},{\"get\":\"ctr-%d\"}]}",
                 cl->id, i, i, cl->id);
        st = rmw_call(c, "POST", "/t/", body, out, sizeof out);
        snprintf(want, sizeof want, "{\"value\":\"%d\"}", i);
        if (st != 200 || strstr(out, "etag") == NULL || strstr(out, want) == NULL)
            rmw_bad(cl, "batch", st, out);
        /* a script run that increments a second counter of the client */
        snprintf(path, sizeof path, "/t/scripts/bump/run?k=s-%d", cl->id);
        st = rmw_call(c, "GET", path, NULL, out, sizeof out);
        snprintf(want, sizeof want, "%d", i);
        if (st != 200 || strcmp(out, want) != 0)
            rmw_bad(cl, "script", st, out);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

Test(durable, concurrent_patch_batch_and_script_writes_answered_and_survive_sigkill)
{
    curl_global_init(CURL_GLOBAL_ALL);
    resp r = call("PUT", "/t/scripts/bump", "local n = assert(kv.incr(kv.args.k))\nkv.say(n)");
    cr_assert(r.status == 200 || r.status == 201, "upload: %ld %.300s", r.status, r.body);
    resp_free(&r);
    static rmw_client cl[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (rmw_client){.id = i};
        cr_assert_eq(pthread_create(&th[i], NULL, rmw_main, &cl[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(cl[i].failures, 0, "client %d: %ld wrong answers, first %s", i, cl[i].failures,
                     cl[i].last_bad);
    kvd_stop(&K, SIGKILL);
    cr_assert(kvd_start(&K, K.dir, durable_flags), "kvd did not restart");
    char path[128], want[64];
    snprintf(want, sizeof want, "%d", CLIENTS * RMW_ROUNDS);
    r = call("GET", "/t/shared", NULL);
    EXPECT(r, 200);
    BODY_IS(r, want);
    resp_free(&r);
    snprintf(want, sizeof want, "%d", RMW_ROUNDS);
    for (int c = 0; c < CLIENTS; c++) {
        snprintf(path, sizeof path, "/t/ctr-%d", c);
        r = call("GET", path, NULL);
        EXPECT(r, 200);
        BODY_IS(r, want);
        resp_free(&r);
        snprintf(path, sizeof path, "/t/s-%d", c);
        r = call("GET", path, NULL);
        EXPECT(r, 200);
        BODY_IS(r, want);
        resp_free(&r);
        snprintf(path, sizeof path, "/t/b%d-%d", c, RMW_ROUNDS);
        r = call("GET", path, NULL);
        EXPECT(r, 200);
        snprintf(want, sizeof want, "v%d", RMW_ROUNDS);
        BODY_IS(r, want);
        resp_free(&r);
        snprintf(want, sizeof want, "%d", RMW_ROUNDS);
    }
    curl_global_cleanup();
}

Test(durable, failed_fdatasync_answers_5xx_and_loses_nothing_acknowledged)
{
    char path[64], val[64];
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/t/before-%d", i);
        snprintf(val, sizeof val, "before %d", i);
        resp r = call("PUT", path, val);
        EXPECT(r, 201);
        resp_free(&r);
    }
    cr_assert_eq(kill(K.pid, SIGUSR2), 0);
    /* the signal is taken by kvd's main thread a moment later: write until
     * a write fails (bounded), then every write must fail */
    long first_fail = 0;
    char first_body[512] = "";
    int acked = 0, i = 0;
    static bool ok[400];
    for (; i < 400 && first_fail == 0; i++) {
        snprintf(path, sizeof path, "/t/after-%d", i);
        resp r = call("PUT", path, "after");
        if (r.status == 201) {
            ok[i] = true;
            acked++;
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        } else {
            first_fail = r.status;
            snprintf(first_body, sizeof first_body, "%.*s", (int)r.len, r.body ? r.body : "");
        }
        resp_free(&r);
    }
    cr_assert_neq(first_fail, 0, "no write failed after SIGUSR2 armed the fault");
    /* the write that waited for the failed sync: a 500 naming the sync */
    cr_assert_eq(first_fail, 500, "the waiting write got %ld: %s", first_fail, first_body);
    cr_assert_not_null(strstr(first_body, "fdatasync"), "%s", first_body);
    for (int j = 0; j < 20; j++) {
        snprintf(path, sizeof path, "/t/later-%d", j);
        resp r = call("PUT", path, "later");
        cr_assert_geq(r.status, 500, "a write after the failed sync got %ld", r.status);
        resp_free(&r);
        r = call("DELETE", "/t/before-0", NULL);
        cr_assert_geq(r.status, 500, "a delete after the failed sync got %ld", r.status);
        resp_free(&r);
    }
    kvd_stop(&K, SIGKILL);
    cr_assert(kvd_start(&K, K.dir, durable_flags), "kvd did not restart");
    for (int j = 0; j < 20; j++) {
        snprintf(path, sizeof path, "/t/before-%d", j);
        snprintf(val, sizeof val, "before %d", j);
        resp r = call("GET", path, NULL);
        EXPECT(r, 200);
        BODY_IS(r, val);
        resp_free(&r);
    }
    for (int j = 0; j < i; j++) {
        if (!ok[j])
            continue;
        snprintf(path, sizeof path, "/t/after-%d", j);
        resp r = call("GET", path, NULL);
        cr_assert_eq(r.status, 200, "%s was acknowledged, then lost", path);
        resp_free(&r);
    }
    /* writable again after the restart */
    resp r = call("PUT", "/t/again", "yes");
    EXPECT(r, 201);
    resp_free(&r);
}

/* Send a PUT on a new connection and hang up without reading the answer. */
static void put_and_hang_up(int i)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)K.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[700];
    int n = snprintf(req, sizeof req,
                     "PUT /t/gone-%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 4\r\n\r\ngone",
                     i, AK);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    close(fd);
}

Test(durable, clients_hanging_up_while_their_write_waits)
{
    for (int i = 0; i < 300; i++)
        put_and_hang_up(i);
    /* still answering, durable writes included */
    resp r = call("PUT", "/t/after", "ok");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/after", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "ok");
    resp_free(&r);
    /* and a clean stop: no connection left suspended */
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0, "kvd did not stop cleanly");
}
