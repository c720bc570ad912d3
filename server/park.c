/*
 * park.c — the registry of parked requests and its timer thread (design in
 * park.h).
 *
 * Lock order: park's mutex is never held while calling into libmicrohttpd
 * (suspend and resume take the daemon's own mutex). A waiter is taken out
 * of the registry under the mutex and collected on a local list; the list
 * is resumed after the mutex is released. A waiter's memory belongs to the
 * registry while it is registered, then to its request (park_take frees it
 * on the request's thread); the resuming thread reads what it needs from it
 * before calling MHD_resume_connection.
 */
#include "park.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "http.h"

#define PARK_BUCKETS 4096u

typedef struct park_waiter {
    struct park_waiter *prev_all, *next_all; /* the channel's list of every waiter */
    struct park_waiter *prev_idx, *next_idx; /* a hash bucket (exact key) or the wild list */
    struct park_waiter *fire_next;
    struct MHD_Connection *conn;
    park_resume_fn resume;
    uint64_t after, deadline, hash;
    size_t heap_idx;
    int fd;
    unsigned channel;
    park_why why;
    bool registered, gone, exact, prefix, any_ks;
    size_t klen;
    char *ks;           /* into data, NUL-terminated; NULL: any keyspace */
    unsigned char *key; /* into data */
    unsigned char data[];
} park_waiter;

struct park {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* resuming and pending back to 0 */
    unsigned max;
    unsigned count;    /* registered */
    unsigned pending;  /* counted in but not yet registered (suspending) */
    unsigned resuming; /* taken out, MHD_resume_connection not yet called */
    bool closed, stop;
    park_waiter *all[PARK_CHANNELS];
    park_waiter *wild[PARK_CHANNELS];
    park_waiter *buckets[PARK_BUCKETS];
    park_waiter **heap;
    size_t heap_n, heap_cap;
    park_waiter **byfd;
    size_t byfd_cap;
    int epfd, evfd;
    pthread_t thread;
    bool thread_started;
    _Atomic uint64_t gen[PARK_CHANNELS];
    _Atomic unsigned active; /* count + pending, for notify's fast path */
    park_stats st;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t topic_hash(unsigned ch, const char *ks, const void *key, size_t klen)
{
    uint64_t h = fnv(14695981039346656037ull, &ch, sizeof ch);
    h = fnv(h, ks, strlen(ks) + 1);
    return fnv(h, key, klen);
}

/* ------------------------------------------------------------ the heap */

static void heap_set(park *p, size_t i, park_waiter *w)
{
    p->heap[i] = w;
    w->heap_idx = i;
}

static void heap_up(park *p, size_t i)
{
    park_waiter *w = p->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (p->heap[parent]->deadline <= w->deadline)
            break;
        heap_set(p, i, p->heap[parent]);
        i = parent;
    }
    heap_set(p, i, w);
}

static void heap_down(park *p, size_t i)
{
    park_waiter *w = p->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->heap_n)
            break;
        if (c + 1 < p->heap_n && p->heap[c + 1]->deadline < p->heap[c]->deadline)
            c++;
        if (p->heap[c]->deadline >= w->deadline)
            break;
        heap_set(p, i, p->heap[c]);
        i = c;
    }
    heap_set(p, i, w);
}

static void heap_remove(park *p, park_waiter *w)
{
    size_t i = w->heap_idx;
    park_waiter *last = p->heap[--p->heap_n];
    if (i == p->heap_n)
        return;
    heap_set(p, i, last);
    heap_up(p, i);
    heap_down(p, last->heap_idx);
}

/* ------------------------------------------------------- registration */

static park_waiter **idx_head(park *p, park_waiter *w)
{
    return w->exact ? &p->buckets[w->hash % PARK_BUCKETS] : &p->wild[w->channel];
}

/* Take W out of every index and put it on *FIRE. Under the mutex. */
static void detach(park *p, park_waiter *w, park_why why, park_waiter **fire)
{
    if (w->prev_all)
        w->prev_all->next_all = w->next_all;
    else
        p->all[w->channel] = w->next_all;
    if (w->next_all)
        w->next_all->prev_all = w->prev_all;
    park_waiter **head = idx_head(p, w);
    if (w->prev_idx)
        w->prev_idx->next_idx = w->next_idx;
    else
        *head = w->next_idx;
    if (w->next_idx)
        w->next_idx->prev_idx = w->prev_idx;
    heap_remove(p, w);
    if (w->fd >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        if ((size_t)w->fd < p->byfd_cap && p->byfd[w->fd] == w)
            p->byfd[w->fd] = NULL;
    }
    w->registered = false;
    w->why = why;
    p->count--;
    atomic_fetch_sub(&p->active, 1);
    if (w->gone)
        p->st.gone++;
    else if (why == PARK_WOKEN)
        p->st.woken++;
    else if (why == PARK_DEADLINE)
        p->st.deadlines++;
    w->fire_next = *fire;
    *fire = w;
    p->resuming++;
}

/* Resume every waiter of FIRE (taken out under the mutex, now released). */
static void fire_all(park *p, park_waiter *fire)
{
    unsigned n = 0;
    while (fire != NULL) {
        park_waiter *next = fire->fire_next;
        struct MHD_Connection *conn = fire->conn;
        /* from here on the request's thread may run and free FIRE */
        MHD_resume_connection(conn);
        fire = next;
        n++;
    }
    if (n == 0)
        return;
    pthread_mutex_lock(&p->mu);
    p->resuming -= n;
    if (p->resuming == 0 && p->pending == 0)
        pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->mu);
}

/* Room for one more waiter (with socket FD) in the heap and the fd table,
 * so that attach cannot fail once the connection is suspended. */
static bool reserve(park *p, int fd)
{
    size_t need = (size_t)p->count + p->pending + 1;
    if (need > p->heap_cap) {
        size_t cap = p->heap_cap ? p->heap_cap : 256;
        while (cap < need)
            cap *= 2;
        park_waiter **h = realloc(p->heap, cap * sizeof *h);
        if (h == NULL)
            return false;
        p->heap = h;
        p->heap_cap = cap;
    }
    if (fd >= 0 && (size_t)fd >= p->byfd_cap) {
        size_t cap = p->byfd_cap ? p->byfd_cap : 1024;
        while (cap <= (size_t)fd)
            cap *= 2;
        park_waiter **b = realloc(p->byfd, cap * sizeof *b);
        if (b == NULL)
            return false;
        memset(b + p->byfd_cap, 0, (cap - p->byfd_cap) * sizeof *b);
        p->byfd = b;
        p->byfd_cap = cap;
    }
    return true;
}

/* Put W into every index (room reserved). Under the mutex. */
static void attach(park *p, park_waiter *w)
{
    w->prev_all = NULL;
    w->next_all = p->all[w->channel];
    if (w->next_all)
        w->next_all->prev_all = w;
    p->all[w->channel] = w;
    park_waiter **head = idx_head(p, w);
    w->prev_idx = NULL;
    w->next_idx = *head;
    if (*head)
        (*head)->prev_idx = w;
    *head = w;
    p->heap_n++;
    heap_set(p, p->heap_n - 1, w);
    heap_up(p, p->heap_n - 1);
    if (w->fd >= 0) {
        struct epoll_event ev = {.events = EPOLLRDHUP, .data.fd = w->fd};
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0)
            p->byfd[w->fd] = w;
    }
    w->registered = true;
    p->count++;
}

static void kick_timer(park *p)
{
    uint64_t one = 1;
    ssize_t r = write(p->evfd, &one, sizeof one);
    (void)r;
}

int park_request(park *p, kvd_request *req, const park_topic *t, uint64_t deadline_ns,
                 park_resume_fn resume, bool again)
{
    if (p == NULL)
        return PARK_NOTPARK;
    size_t kslen = t->ks ? strlen(t->ks) + 1 : 0;
    size_t klen = t->ks && t->key ? t->klen : 0;
    park_waiter *w = calloc(1, sizeof *w + kslen + klen);
    if (w == NULL)
        return PARK_NOMEM;
    w->conn = req->conn;
    w->resume = resume;
    w->after = t->after;
    w->deadline = deadline_ns;
    w->channel = t->channel < PARK_CHANNELS ? t->channel : 0;
    w->any_ks = t->ks == NULL;
    if (t->ks) {
        w->ks = (char *)w->data;
        memcpy(w->ks, t->ks, kslen);
        w->key = w->data + kslen;
        if (klen)
            memcpy(w->key, t->key, klen);
        w->klen = klen;
        w->prefix = t->key != NULL && t->prefix;
        w->exact = t->key != NULL && !t->prefix;
        if (w->exact)
            w->hash = topic_hash(w->channel, w->ks, w->key, klen);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    w->fd = ci != NULL ? ci->connect_fd : -1;

    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        pthread_mutex_unlock(&p->mu);
        free(w);
        return PARK_CLOSED;
    }
    if (!again && p->count + p->pending >= p->max) {
        p->st.refused++;
        pthread_mutex_unlock(&p->mu);
        free(w);
        return PARK_FULL;
    }
    if (!reserve(p, w->fd)) {
        pthread_mutex_unlock(&p->mu);
        free(w);
        return PARK_NOMEM;
    }
    p->pending++;
    atomic_fetch_add(&p->active, 1);
    pthread_mutex_unlock(&p->mu);

    req->waiter = w;
    MHD_suspend_connection(req->conn);

    park_waiter *fire = NULL;
    pthread_mutex_lock(&p->mu);
    p->pending--;
    /* ACTIVE stays: the pending count becomes a registered one */
    attach(p, w);
    if (p->closed)
        detach(p, w, PARK_SHUTDOWN, &fire); /* park_shutdown ran meanwhile */
    bool first = w->registered && p->heap[0] == w;
    if (p->resuming == 0 && p->pending == 0)
        pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->mu);
    fire_all(p, fire);
    if (first)
        kick_timer(p);
    return PARK_OK;
}

uint64_t park_generation(park *p, unsigned channel)
{
    return p ? atomic_load(&p->gen[channel % PARK_CHANNELS]) : 0;
}

void park_wake(park *p, kvd_request *req)
{
    park_waiter *fire = NULL;
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    park_waiter *w = req->waiter;
    if (w != NULL && w->registered)
        detach(p, w, PARK_WOKEN, &fire);
    pthread_mutex_unlock(&p->mu);
    fire_all(p, fire);
}

static bool ks_match(const park_waiter *w, const char *ks)
{
    return w->any_ks || strcmp(w->ks, ks) == 0;
}

void park_notify(park *p, unsigned channel, const char *ks, const void *key, size_t klen,
                 uint64_t seq)
{
    if (p == NULL || channel >= PARK_CHANNELS)
        return;
    atomic_fetch_add(&p->gen[channel], 1);
    if (atomic_load(&p->active) == 0)
        return;
    park_waiter *fire = NULL;
    pthread_mutex_lock(&p->mu);
    if (ks == NULL || key == NULL) {
        for (park_waiter *w = p->all[channel], *next; w != NULL; w = next) {
            next = w->next_all;
            if (w->after < seq && (ks == NULL || ks_match(w, ks)))
                detach(p, w, PARK_WOKEN, &fire);
        }
    } else {
        uint64_t h = topic_hash(channel, ks, key, klen);
        for (park_waiter *w = p->buckets[h % PARK_BUCKETS], *next; w != NULL; w = next) {
            next = w->next_idx;
            if (w->hash == h && w->channel == channel && w->after < seq && w->klen == klen &&
                memcmp(w->key, key, klen) == 0 && strcmp(w->ks, ks) == 0)
                detach(p, w, PARK_WOKEN, &fire);
        }
        for (park_waiter *w = p->wild[channel], *next; w != NULL; w = next) {
            next = w->next_idx;
            if (w->after >= seq || !ks_match(w, ks))
                continue;
            if (w->any_ks || w->klen == 0 || (klen >= w->klen && memcmp(key, w->key, w->klen) == 0))
                detach(p, w, PARK_WOKEN, &fire);
        }
    }
    pthread_mutex_unlock(&p->mu);
    fire_all(p, fire);
}

park_resume_fn park_take(kvd_request *req, park_why *why, bool *gone)
{
    park_waiter *w = req->waiter;
    if (w == NULL)
        return NULL;
    park_resume_fn fn = w->resume;
    *why = w->why;
    *gone = w->gone;
    req->waiter = NULL;
    free(w);
    return fn;
}

void park_forget(park *p, kvd_request *req)
{
    park_waiter *w = req->waiter;
    if (w == NULL)
        return;
    if (p != NULL) {
        park_waiter *fire = NULL;
        pthread_mutex_lock(&p->mu);
        if (w->registered) {
            detach(p, w, PARK_SHUTDOWN, &fire);
            p->resuming--; /* the connection is gone: nothing to resume */
        }
        pthread_mutex_unlock(&p->mu);
    }
    req->waiter = NULL;
    free(w);
}

void park_shutdown(park *p)
{
    if (p == NULL)
        return;
    park_waiter *fire = NULL;
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    for (unsigned ch = 0; ch < PARK_CHANNELS; ch++)
        while (p->all[ch] != NULL)
            detach(p, p->all[ch], PARK_SHUTDOWN, &fire);
    pthread_mutex_unlock(&p->mu);
    fire_all(p, fire);
    pthread_mutex_lock(&p->mu);
    while (p->resuming != 0 || p->pending != 0)
        pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void park_get_stats(park *p, park_stats *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->parked = p->count;
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------ the timer thread */

static void *timer_main(void *arg)
{
    park *p = arg;
    struct epoll_event evs[64];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        int timeout = -1;
        if (p->heap_n > 0) {
            uint64_t now = kvd_mono_ns(), d = p->heap[0]->deadline;
            uint64_t ms = d > now ? (d - now + 999999) / 1000000 : 0;
            timeout = ms > 60000 ? 60000 : (int)ms;
        }
        pthread_mutex_unlock(&p->mu);
        int n = epoll_wait(p->epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR)
            n = 0;
        park_waiter *fire = NULL;
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == p->evfd) {
                uint64_t v;
                ssize_t r = read(p->evfd, &v, sizeof v);
                (void)r;
                continue;
            }
            park_waiter *w = (size_t)fd < p->byfd_cap ? p->byfd[fd] : NULL;
            if (w != NULL && w->registered) {
                w->gone = true;
                detach(p, w, PARK_WOKEN, &fire);
            }
        }
        uint64_t now = kvd_mono_ns();
        while (p->heap_n > 0 && p->heap[0]->deadline <= now)
            detach(p, p->heap[0], PARK_DEADLINE, &fire);
        pthread_mutex_unlock(&p->mu);
        fire_all(p, fire);
    }
    return NULL;
}

park *park_new(unsigned max_waiters)
{
    park *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->max = max_waiters;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->idle, NULL);
    if (p->epfd < 0 || p->evfd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->evfd};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) != 0)
        goto fail;
    if (pthread_create(&p->thread, NULL, timer_main, p) != 0)
        goto fail;
    p->thread_started = true;
    return p;
fail:
    park_free(p);
    return NULL;
}

void park_free(park *p)
{
    if (p == NULL)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_mutex_unlock(&p->mu);
        kick_timer(p);
        pthread_join(p->thread, NULL);
    }
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->evfd >= 0)
        close(p->evfd);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p->heap);
    free(p->byfd);
    free(p);
}
