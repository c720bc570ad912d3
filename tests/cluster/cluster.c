/*
 * cluster.c — see cluster.h: processes (etcd, kvd nodes) and relays. The
 * clock, ports, spawning and HTTP are testkit.h's, shared with the kvd
 * system suites.
 */
#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#ifndef KVD_BIN
#error "KVD_BIN must name the kvd binary"
#endif
#ifndef KVDUMP_BIN
#error "KVDUMP_BIN must name the kvdump binary"
#endif

/* fork+exec ARGS with stdout and stderr appended to LOG; the child dies with
 * this thread. */
static pid_t spawn(const char *const *args, const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_t pid = tk_spawn(args, fd, fd);
    if (fd >= 0)
        close(fd);
    return pid;
}

#define alive tk_alive
#define reap tk_reap
#define hreq_on tk_request

hresp hreq(const char *base, const char *method, const char *path, const char *body, size_t blen,
           const char *bearer, long timeout_ms, const char *const *hdrs)
{
    return tk_request(NULL, base, method, path, body, blen, bearer, timeout_ms, hdrs);
}

const char *hresp_header(const hresp *r, const char *name, char *out, size_t cap)
{
    return tk_resp_header(r, name, out, cap);
}

json_t *hresp_json(const hresp *r)
{
    return tk_resp_json(r);
}

void hresp_free(hresp *r)
{
    tk_resp_free(r);
}

/* ---------------------------------------------------------------- etcd */

static bool etcd_wait(etcd_proc *e)
{
    long long deadline = mono_ms() + 60000;
    while (mono_ms() < deadline && alive(e->pid)) {
        hresp r = hreq(e->url, "GET", "/health", NULL, 0, NULL, 1000, NULL);
        bool ok = r.status == 200 && strstr(r.body, "true") != NULL;
        hresp_free(&r);
        if (ok)
            return true;
        usleep(100000);
    }
    return false;
}

bool etcd_restart(etcd_proc *e)
{
    char cu[64], pu[64], ic[96], data[320], log[320];
    snprintf(cu, sizeof cu, "http://127.0.0.1:%d", e->client_port);
    snprintf(pu, sizeof pu, "http://127.0.0.1:%d", e->peer_port);
    snprintf(ic, sizeof ic, "e0=%s", pu);
    snprintf(data, sizeof data, "%s/data", e->dir);
    snprintf(log, sizeof log, "%s/etcd.log", e->dir);
    const char *args[] = {"/usr/bin/etcd",
                          "--name",
                          "e0",
                          "--data-dir",
                          data,
                          "--listen-client-urls",
                          cu,
                          "--advertise-client-urls",
                          cu,
                          "--listen-peer-urls",
                          pu,
                          "--initial-advertise-peer-urls",
                          pu,
                          "--initial-cluster",
                          ic,
                          "--heartbeat-interval",
                          "50",
                          "--election-timeout",
                          "500",
                          NULL};
    snprintf(e->url, sizeof e->url, "%s", cu);
    e->pid = spawn(args, log);
    if (e->pid < 0)
        return false;
    if (!etcd_wait(e)) {
        fprintf(stderr, "etcd did not become healthy (see %s)\n", log);
        return false;
    }
    return true;
}

bool etcd_start(etcd_proc *e, const char *root)
{
    snprintf(e->dir, sizeof e->dir, "%s/etcd", root);
    if (mkdir(e->dir, 0700) != 0)
        return false;
    for (int attempt = 0; attempt < 5; attempt++) {
        e->client_port = free_port();
        e->peer_port = free_port();
        if (e->client_port > 0 && e->peer_port > 0 && e->client_port != e->peer_port &&
            etcd_restart(e))
            return true;
        reap(&e->pid);
    }
    return false;
}

void etcd_kill(etcd_proc *e)
{
    reap(&e->pid);
}

/* ---------------------------------------------------------------- nodes */

static group *registered;

static void cleanup_at_exit(void)
{
    if (registered != NULL)
        group_cleanup(registered);
}

long node_log_size(const group *g, int i)
{
    struct stat st;
    return stat(g->nodes[i].log, &st) == 0 ? (long)st.st_size : 0;
}

char *node_log(const group *g, int i, long offset)
{
    FILE *f = fopen(g->nodes[i].log, "r");
    if (f == NULL)
        return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (offset > size)
        offset = size;
    char *s = malloc((size_t)(size - offset) + 1);
    fseek(f, offset, SEEK_SET);
    size_t n = s ? fread(s, 1, (size_t)(size - offset), f) : 0;
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

bool node_start(group *g, int i)
{
    node *nd = &g->nodes[i];
    char etcd[64], port[40], ttl_default[8] = "2";
    const char *args[64];
    size_t n = 0;
    const char *bin = getenv("KVD_TEST_BIN") ? getenv("KVD_TEST_BIN") : KVD_BIN;
    snprintf(etcd, sizeof etcd, "http://127.0.0.1:%d", relay_port(nd->to_etcd));
    snprintf(port, sizeof port, "127.0.0.1:%d", nd->port);
    args[n++] = bin;
    args[n++] = "--dir";
    args[n++] = nd->dir;
    args[n++] = "--listen";
    args[n++] = port;
    args[n++] = "--log-level";
    args[n++] = getenv("KVD_TEST_LOG") ? getenv("KVD_TEST_LOG") : "info";
    args[n++] = "--admin-token-file";
    args[n++] = g->token_file;
    args[n++] = "--script-timeout";
    args[n++] = "600000";
    args[n++] = "--cluster";
    args[n++] = g->name;
    args[n++] = "--etcd";
    args[n++] = etcd;
    args[n++] = "--node-id";
    args[n++] = nd->id;
    args[n++] = "--advertise";
    args[n++] = nd->adv;
    bool ttl_given = false;
    for (size_t k = 0; g->extra[k] != NULL && n < 60; k++) {
        if (strcmp(g->extra[k], "--lease-ttl") == 0)
            ttl_given = true;
        args[n++] = g->extra[k];
    }
    if (!ttl_given) {
        args[n++] = "--lease-ttl";
        args[n++] = ttl_default;
    }
    args[n] = NULL;
    FILE *lf = fopen(nd->log, "a");
    if (lf) {
        fprintf(lf, "=== harness: start %s at %lld ms\n", nd->id, mono_ms());
        fclose(lf);
    }
    nd->pid = spawn(args, nd->log);
    nd->stopped = false;
    if (nd->pid < 0)
        return false;
    relay_set_target(nd->front, nd->port);
    long long deadline = mono_ms() + 120000; /* a net for a hang */
    while (mono_ms() < deadline) {
        if (!alive(nd->pid)) {
            nd->pid = 0;
            fprintf(stderr, "node %s exited during start (log %s)\n", nd->id, nd->log);
            return false;
        }
        hresp r = hreq(nd->url, "GET", "/healthz", NULL, 0, NULL, 1000, NULL);
        long st = r.status;
        hresp_free(&r);
        if (st == 200)
            return true;
        usleep(50000);
    }
    fprintf(stderr, "node %s did not answer /healthz (log %s)\n", nd->id, nd->log);
    return false;
}

void node_kill(group *g, int i, int sig)
{
    node *nd = &g->nodes[i];
    if (nd->pid <= 0)
        return;
    if (sig == SIGKILL) {
        reap(&nd->pid);
        nd->stopped = false;
        return;
    }
    kill(nd->pid, sig);
    if (sig == SIGSTOP)
        nd->stopped = true;
    if (sig == SIGCONT)
        nd->stopped = false;
}

static bool mkroot(group *g)
{
    snprintf(g->root, sizeof g->root, "/tmp/kvdtest.XXXXXX");
    if (mkdtemp(g->root) == NULL)
        return false;
    snprintf(g->token_file, sizeof g->token_file, "%s/admin-token", g->root);
    snprintf(g->token, sizeof g->token, "clustertest-admin-%d", (int)getpid());
    FILE *f = fopen(g->token_file, "w");
    if (f == NULL)
        return false;
    fprintf(f, "%s\n", g->token);
    fclose(f);
    return true;
}

bool group_start(group *g, int n, const char *const *extra)
{
    memset(g, 0, sizeof *g);
    curl_global_init(CURL_GLOBAL_ALL);
    if (!mkroot(g))
        return false;
    registered = g;
    static bool hooked;
    if (!hooked) {
        atexit(cleanup_at_exit);
        hooked = true;
    }
    snprintf(g->name, sizeof g->name, "g%d", (int)getpid());
    for (size_t k = 0; extra != NULL && extra[k] != NULL && k < 23; k++)
        g->extra[k] = extra[k];
    if (!etcd_start(&g->etcd, g->root)) {
        fprintf(stderr, "etcd did not start\n");
        return false;
    }
    g->n = n;
    for (int i = 0; i < n; i++) {
        node *nd = &g->nodes[i];
        snprintf(nd->id, sizeof nd->id, "n%d", i + 1);
        snprintf(nd->dir, sizeof nd->dir, "%s/%s", g->root, nd->id);
        snprintf(nd->log, sizeof nd->log, "%s/%s.log", g->root, nd->id);
        nd->port = free_port();
        snprintf(nd->url, sizeof nd->url, "http://127.0.0.1:%d", nd->port);
        nd->front = relay_start(nd->port);
        nd->to_etcd = relay_start(g->etcd.client_port);
        if (nd->front == NULL || nd->to_etcd == NULL)
            return false;
        snprintf(nd->adv, sizeof nd->adv, "http://127.0.0.1:%d", relay_port(nd->front));
    }
    for (int i = 0; i < n; i++)
        if (!node_start(g, i))
            return false;
    return wait_leader(g, 60000, NULL, -1) >= 0;
}

void group_cleanup(group *g)
{
    for (int i = 0; i < g->n; i++) {
        reap(&g->nodes[i].pid);
        relay_stop(g->nodes[i].front);
        relay_stop(g->nodes[i].to_etcd);
        g->nodes[i].front = g->nodes[i].to_etcd = NULL;
    }
    g->n = 0;
    etcd_kill(&g->etcd);
    if (g->root[0] != '\0' && strncmp(g->root, "/tmp/kvdtest.", 13) == 0 &&
        getenv("CLUSTER_KEEP") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g->root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g->root);
    } else if (g->root[0] != '\0') {
        fprintf(stderr, "cluster test files kept in %s\n", g->root);
    }
    g->root[0] = '\0';
    if (registered == g)
        registered = NULL;
}

/* ---------------------------------------------------------------- /cluster */

json_t *cluster_info(const group *g, int i, long timeout_ms)
{
    if (g->nodes[i].pid <= 0 || g->nodes[i].stopped)
        return NULL;
    hresp r = hreq(g->nodes[i].url, "GET", "/cluster", NULL, 0, NULL, timeout_ms, NULL);
    json_t *j = r.status == 200 ? hresp_json(&r) : NULL;
    hresp_free(&r);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

int wait_leader(const group *g, long timeout_ms, long long *epoch, int except)
{
    long long deadline = mono_ms() + timeout_ms;
    do {
        int best = -1;
        long long best_epoch = -1;
        for (int i = 0; i < g->n; i++) {
            if (i == except)
                continue;
            json_t *j = cluster_info(g, i, 1000);
            if (j != NULL && strcmp(jstr(j, "role"), "leader") == 0) {
                long long e = json_integer_value(json_object_get(j, "epoch"));
                if (e > best_epoch) {
                    best_epoch = e;
                    best = i;
                }
            }
            json_decref(j);
        }
        if (best >= 0) {
            if (epoch)
                *epoch = best_epoch;
            return best;
        }
        usleep(50000);
    } while (mono_ms() < deadline);
    return -1;
}

int node_of_url(const group *g, const char *url)
{
    for (int i = 0; i < g->n; i++) {
        size_t al = strlen(g->nodes[i].adv), ul = strlen(g->nodes[i].url);
        if (strncmp(url, g->nodes[i].adv, al) == 0 && (url[al] == '/' || url[al] == '\0'))
            return i;
        if (strncmp(url, g->nodes[i].url, ul) == 0 && (url[ul] == '/' || url[ul] == '\0'))
            return i;
    }
    return -1;
}

static long long last_seq_of(const group *g, int i, const char **role, json_t **keep)
{
    json_t *j = cluster_info(g, i, 2000);
    long long s = j ? json_integer_value(json_object_get(j, "last_seq")) : -1;
    if (role)
        *role = j ? jstr(j, "role") : "";
    if (keep)
        *keep = j;
    else
        json_decref(j);
    return s;
}

bool wait_healthy(const group *g, long timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    long long target = -1;
    do {
        int l = wait_leader(g, 2000, NULL, -1);
        json_t *lj = NULL;
        if (l >= 0) {
            long long ls = last_seq_of(g, l, NULL, &lj);
            if (target < 0)
                target = ls;
            bool ok = lj != NULL && !json_is_null(json_object_get(lj, "sync_standby")) &&
                      json_object_get(lj, "sync_standby") != NULL;
            for (int i = 0; ok && i < g->n; i++) {
                if (i == l || g->nodes[i].pid <= 0)
                    continue;
                const char *role = "";
                json_t *fj = NULL;
                long long s = last_seq_of(g, i, &role, &fj);
                ok = s >= target && strcmp(role, "follower") == 0;
                json_decref(fj);
            }
            json_decref(lj);
            if (ok)
                return true;
        }
        usleep(100000);
    } while (mono_ms() < deadline);
    return false;
}

bool wait_converged(const group *g, long timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    do {
        int l = wait_leader(g, 2000, NULL, -1);
        if (l >= 0) {
            long long ls = last_seq_of(g, l, NULL, NULL);
            bool ok = ls >= 0;
            for (int i = 0; ok && i < g->n; i++)
                if (i != l && g->nodes[i].pid > 0)
                    ok = last_seq_of(g, i, NULL, NULL) == ls;
            if (ok && last_seq_of(g, l, NULL, NULL) == ls)
                return true;
        }
        usleep(100000);
    } while (mono_ms() < deadline);
    return false;
}

/* ---------------------------------------------------------------- ledger */

void ledger_init(ledger *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

void ledger_add(ledger *l, const ack *a)
{
    pthread_mutex_lock(&l->mu);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4096;
        ack *na = realloc(l->acks, nc * sizeof *na);
        if (na == NULL) {
            pthread_mutex_unlock(&l->mu);
            abort();
        }
        l->acks = na;
        l->cap = nc;
    }
    l->acks[l->n++] = *a;
    pthread_mutex_unlock(&l->mu);
}

void ledger_free(ledger *l)
{
    free(l->acks);
    l->acks = NULL;
    l->n = l->cap = 0;
}

static uint64_t etag_seq(const hresp *r)
{
    char e[64];
    if (hresp_header(r, "ETag", e, sizeof e) == NULL)
        return 0;
    const char *p = e;
    while (*p == '"' || *p == 'W' || *p == '/')
        p++;
    return strtoull(p, NULL, 10);
}

typedef struct wctx {
    writers *w;
    int t;
} wctx;

static void *writer_main(void *arg)
{
    wctx *c = arg;
    writers *w = c->w;
    group *g = w->g;
    CURL *h[GROUP_MAX];
    for (int i = 0; i < GROUP_MAX; i++)
        h[i] = curl_easy_init();
    unsigned seed = (unsigned)(c->t * 7919 + getpid());
    long n = 0;
    int rr = c->t;
    while (!atomic_load(&w->stop)) {
        int target = w->to_all ? (rr++ % g->n) : atomic_load(&w->leader_hint);
        if (target < 0)
            target = rr++ % g->n;
        node *nd = &g->nodes[target];
        if (nd->pid <= 0 || nd->stopped) {
            if (!w->to_all)
                atomic_store(&w->leader_hint, -1);
            usleep(w->to_all ? 2000 : 20000);
            continue;
        }
        ack a = {.node = target};
        snprintf(a.key, sizeof a.key, "%s%d-%ld", w->prefix, c->t, n++);
        snprintf(a.value, sizeof a.value, "v%ld-%u", n, rand_r(&seed));
        char path[128];
        snprintf(path, sizeof path, "/%s/%s", g->bucket, a.key);
        a.t_send = mono_ms();
        hresp r = hreq_on(h[target], nd->url, "PUT", path, a.value, strlen(a.value), g->bucket_key,
                          w->timeout_ms, NULL);
        a.t_recv = mono_ms();
        pthread_mutex_lock(&w->led->mu);
        w->led->attempts++;
        pthread_mutex_unlock(&w->led->mu);
        if (r.status == 200 || r.status == 201) {
            a.seq = etag_seq(&r);
            ledger_add(w->led, &a);
            if (!w->to_all)
                atomic_store(&w->leader_hint, target);
        } else if (r.status == 307) {
            char loc[512];
            int to = -1;
            if (hresp_header(&r, "Location", loc, sizeof loc) != NULL)
                to = node_of_url(g, loc);
            if (!w->to_all)
                atomic_store(&w->leader_hint, to);
        } else {
            if (r.status == 0 || r.status >= 500) {
                pthread_mutex_lock(&w->led->mu);
                w->led->unknown++;
                pthread_mutex_unlock(&w->led->mu);
            } else {
                fprintf(stderr, "writer: PUT %s on %s answered %ld: %.200s\n", a.key, nd->id,
                        r.status, r.body);
            }
            if (!w->to_all)
                atomic_store(&w->leader_hint, -1);
            usleep(r.status == 0 ? 20000 : 50000);
        }
        hresp_free(&r);
    }
    for (int i = 0; i < GROUP_MAX; i++)
        curl_easy_cleanup(h[i]);
    free(c);
    return NULL;
}

void writers_start(writers *w, group *g, ledger *l, int threads, bool to_all, const char *prefix)
{
    memset(w, 0, sizeof *w);
    w->g = g;
    w->led = l;
    w->threads = threads > 16 ? 16 : threads;
    w->to_all = to_all;
    w->timeout_ms = 10000;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    atomic_store(&w->leader_hint, -1);
    for (int t = 0; t < w->threads; t++) {
        wctx *c = malloc(sizeof *c);
        c->w = w;
        c->t = t;
        pthread_create(&w->th[t], NULL, writer_main, c);
    }
}

void writers_stop(writers *w)
{
    atomic_store(&w->stop, 1);
    for (int t = 0; t < w->threads; t++)
        pthread_join(w->th[t], NULL);
    w->threads = 0;
}

/* ---------------------------------------------------------------- checks */

typedef struct kv {
    char *key, *value;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv *)a)->key, ((const kv *)b)->key);
}

/* Every key of the bucket on node I (JSON listing with values, paged). */
static kv *list_all(const group *g, int i, size_t *count)
{
    kv *all = NULL;
    size_t n = 0, cap = 0;
    char start[96] = "";
    CURL *c = curl_easy_init();
    for (int page = 0; page < 100000; page++) {
        char path[512];
        char *esc = curl_easy_escape(c, start, 0);
        snprintf(path, sizeof path, "/%s/?format=json&values=true&limit=1000%s%s", g->bucket,
                 start[0] ? "&start=" : "", start[0] ? esc : "");
        curl_free(esc);
        hresp r = hreq_on(c, g->nodes[i].url, "GET", path, NULL, 0, g->bucket_key, 60000, NULL);
        json_t *j = r.status == 200 ? hresp_json(&r) : NULL;
        hresp_free(&r);
        if (!json_is_array(j)) {
            json_decref(j);
            break;
        }
        size_t got = json_array_size(j), added = 0;
        for (size_t k = 0; k < got; k++) {
            json_t *e = json_array_get(j, k);
            const char *key = json_string_value(json_array_get(e, 0));
            const char *val = json_string_value(json_array_get(e, 1));
            if (key == NULL || (start[0] && strcmp(key, start) == 0))
                continue; /* start is inclusive: the previous page's last */
            if (n == cap) {
                cap = cap ? cap * 2 : 4096;
                all = realloc(all, cap * sizeof *all);
            }
            all[n].key = strdup(key);
            all[n].value = strdup(val ? val : "");
            n++;
            added++;
        }
        if (got > 0) {
            const char *last = json_string_value(json_array_get(json_array_get(j, got - 1), 0));
            snprintf(start, sizeof start, "%s", last ? last : "");
        }
        json_decref(j);
        if (got < 1000 || added == 0)
            break;
    }
    curl_easy_cleanup(c);
    qsort(all, n, sizeof *all, kv_cmp);
    *count = n;
    return all;
}

size_t ledger_missing(const group *g, int i, const ledger *l, size_t from)
{
    size_t n = 0, bad = 0;
    kv *all = list_all(g, i, &n);
    for (size_t k = from; k < l->n; k++) {
        kv probe = {.key = (char *)l->acks[k].key};
        kv *f = bsearch(&probe, all, n, sizeof *all, kv_cmp);
        if (f == NULL || strcmp(f->value, l->acks[k].value) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "acknowledged write %s=%s (seq %llu, by %s at %lld ms) %s on %s\n",
                        l->acks[k].key, l->acks[k].value, (unsigned long long)l->acks[k].seq,
                        g->nodes[l->acks[k].node].id, l->acks[k].t_recv,
                        f ? "has another value" : "is missing", g->nodes[i].id);
        }
    }
    for (size_t k = 0; k < n; k++) {
        free(all[k].key);
        free(all[k].value);
    }
    free(all);
    return bad;
}

bool group_bucket(group *g, int i, const char *name)
{
    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    for (int hop = 0; hop < 4; hop++) {
        hresp r = hreq(g->nodes[i].url, "POST", "/", body, strlen(body), g->token, 30000, NULL);
        if (r.status == 307) {
            char loc[512];
            i = hresp_header(&r, "Location", loc, sizeof loc) ? node_of_url(g, loc) : -1;
            hresp_free(&r);
            if (i < 0)
                return false;
            continue;
        }
        json_t *j = r.status == 201 ? hresp_json(&r) : NULL;
        bool ok = j != NULL;
        if (ok) {
            snprintf(g->bucket, sizeof g->bucket, "%s", jstr(j, "bucket"));
            snprintf(g->bucket_key, sizeof g->bucket_key, "%s", jstr(j, "admin_key"));
        } else {
            fprintf(stderr, "bucket creation on %s answered %ld: %.200s\n", g->nodes[i].id,
                    r.status, r.body);
        }
        json_decref(j);
        hresp_free(&r);
        return ok;
    }
    return false;
}

bool node_dump(const group *g, int i, const char *out, long *records, long *tombstones,
               unsigned long long *lo, unsigned long long *hi)
{
    char errf[320];
    snprintf(errf, sizeof errf, "%s/kvdump-%s.err", g->root, g->nodes[i].id);
    unlink(errf);
    const char *args[] = {KVDUMP_BIN, "--dir", g->nodes[i].dir, "-o", out, NULL};
    pid_t pid = spawn(args, errf);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return false;
    FILE *f = fopen(errf, "r");
    char line[512];
    bool ok = false;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "records ");
        if (p && sscanf(p, "records %ld, tombstones %ld, seq %llu..%llu", records, tombstones, lo,
                        hi) == 4)
            ok = true;
    }
    if (f)
        fclose(f);
    return ok;
}
