/*
 * test_cluster_relay.c — the harness's own parts, before any replica group
 * leans on them: the TCP relay passes, refuses, black-holes (and resumes)
 * and delays traffic to a real single kvd; its target can move; a single
 * etcd starts on free ports, dies and comes back with its data.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cluster.h"
#include "harness.h"

static kvd_proc K;

static void setup(void)
{
    cr_assert(kvd_start(&K, NULL, NULL), "kvd did not start");
}

static void teardown(void)
{
    kvd_cleanup(&K);
}

TestSuite(relay, .init = setup, .fini = teardown, .timeout = 600);

static hresp through(relay *r, const char *method, const char *path, const char *body,
                     long timeout_ms)
{
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", relay_port(r));
    return hreq(base, method, path, body, body ? strlen(body) : 0, NULL, timeout_ms, NULL);
}

Test(relay, passes_requests_and_large_bodies_both_ways)
{
    relay *r = relay_start(K.port);
    cr_assert(r != NULL);
    hresp h = through(r, "GET", "/healthz", NULL, 30000);
    cr_assert_eq(h.status, 200);
    hresp_free(&h);
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"b\"}", name, sizeof name, key, sizeof key));
    size_t big = 3u << 20;
    char *v = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)('a' + i % 23);
    v[big] = '\0';
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", relay_port(r));
    h = hreq(base, "PUT", "/b/big", v, big, key, 60000, NULL);
    cr_assert(h.status == 201 || h.status == 200, "PUT through the relay: %ld", h.status);
    hresp_free(&h);
    h = hreq(base, "GET", "/b/big", NULL, 0, key, 60000, NULL);
    cr_assert_eq(h.status, 200);
    cr_assert_eq(h.len, big);
    cr_assert(memcmp(h.body, v, big) == 0, "the value came back changed");
    hresp_free(&h);
    cr_assert_geq(relay_bytes(r), 2 * big);
    free(v);
    relay_stop(r);
}

Test(relay, refuse_resets_at_once_and_pass_restores)
{
    relay *r = relay_start(K.port);
    relay_set_mode(r, RELAY_REFUSE, 0);
    hresp h = through(r, "GET", "/healthz", NULL, 20000);
    cr_assert_eq(h.status, 0, "a refused link answered %ld", h.status);
    hresp_free(&h);
    /* a reset or a close, not silence (the 60 s poll is a net only a
     * black-holing relay reaches) */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)relay_port(r))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    ssize_t sent = send(fd, req, strlen(req), MSG_NOSIGNAL);
    (void)sent; /* may already fail with the reset */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 60000), 1, "a refused connection stayed silent");
    char b[64];
    cr_assert_leq(recv(fd, b, sizeof b, 0), 0, "a refused connection carried bytes");
    close(fd);
    relay_set_mode(r, RELAY_PASS, 0);
    h = through(r, "GET", "/healthz", NULL, 30000);
    cr_assert_eq(h.status, 200);
    hresp_free(&h);
    relay_stop(r);
}

typedef struct held {
    relay *r;
    hresp h;
    long long t;
} held;

static void *held_request(void *arg)
{
    held *x = arg;
    x->h = through(x->r, "GET", "/healthz", NULL, 120000);
    x->t = mono_ms();
    return NULL;
}

Test(relay, blackhole_stalls_and_resumes_on_pass)
{
    relay *r = relay_start(K.port);
    relay_set_mode(r, RELAY_BLACKHOLE, 0);
    hresp h = through(r, "GET", "/healthz", NULL, 1000);
    cr_assert_eq(h.status, 0, "a black-holed request was answered");
    hresp_free(&h);
    held x = {.r = r};
    pthread_t th;
    uint64_t before = relay_accepted(r);
    pthread_create(&th, NULL, held_request, &x);
    while (relay_accepted(r) == before) /* bounded by the request's timeout */
        usleep(10000);
    usleep(500000);
    long long released = mono_ms();
    relay_set_mode(r, RELAY_PASS, 0);
    pthread_join(th, NULL);
    cr_assert_eq(x.h.status, 200, "the held request did not resume: %ld", x.h.status);
    cr_assert_geq(x.t, released);
    hresp_free(&x.h);
    relay_stop(r);
}

Test(relay, delay_holds_each_exchange_at_least_the_delay)
{
    relay *r = relay_start(K.port);
    relay_set_mode(r, RELAY_DELAY, 400);
    long long t0 = mono_ms();
    hresp h = through(r, "GET", "/healthz", NULL, 60000);
    cr_assert_eq(h.status, 200);
    /* request and answer each wait 400 ms */
    cr_assert_geq(mono_ms() - t0, 800);
    hresp_free(&h);
    relay_stop(r);
}

Test(relay, target_moves_to_a_restarted_server)
{
    relay *r = relay_start(0);
    hresp h = through(r, "GET", "/healthz", NULL, 5000);
    cr_assert_eq(h.status, 0, "a relay without a target answered");
    hresp_free(&h);
    relay_set_target(r, K.port);
    h = through(r, "GET", "/healthz", NULL, 30000);
    cr_assert_eq(h.status, 200);
    hresp_free(&h);
    kvd_stop(&K, SIGKILL);
    h = through(r, "GET", "/healthz", NULL, 5000);
    cr_assert_eq(h.status, 0, "a dead target answered");
    hresp_free(&h);
    cr_assert(kvd_start(&K, K.dir, NULL));
    relay_set_target(r, K.port);
    h = through(r, "GET", "/healthz", NULL, 30000);
    cr_assert_eq(h.status, 200);
    hresp_free(&h);
    relay_stop(r);
}

Test(relay, etcd_starts_dies_and_returns_with_its_data)
{
    char root[] = "/tmp/kvdtest.XXXXXX";
    cr_assert(mkdtemp(root) != NULL);
    etcd_proc e = {0};
    cr_assert(etcd_start(&e, root), "etcd did not start");
    const char *put = "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}"; /* foo = bar */
    hresp h = hreq(e.url, "POST", "/v3/kv/put", put, strlen(put), NULL, 30000, NULL);
    cr_assert_eq(h.status, 200, "etcd put: %ld %s", h.status, h.body);
    hresp_free(&h);
    etcd_kill(&e);
    h = hreq(e.url, "GET", "/health", NULL, 0, NULL, 2000, NULL);
    cr_assert_eq(h.status, 0, "a killed etcd answered");
    hresp_free(&h);
    cr_assert(etcd_restart(&e), "etcd did not come back");
    const char *get = "{\"key\":\"Zm9v\"}";
    h = hreq(e.url, "POST", "/v3/kv/range", get, strlen(get), NULL, 30000, NULL);
    cr_assert_eq(h.status, 200);
    cr_assert(strstr(h.body, "YmFy") != NULL, "the key did not survive: %s", h.body);
    hresp_free(&h);
    etcd_kill(&e);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}
