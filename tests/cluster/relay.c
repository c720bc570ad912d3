/*
 * relay.c — see relay.h. One thread per relay: poll() over the listener, a
 * wake-up pipe and both sides of every link; each direction keeps a queue of
 * chunks stamped with the time they may leave (now, or now + delay).
 */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINKS 256
#define CHUNK 16384
#define QUEUE_CAP (4u << 20) /* stop reading a side whose other side lags this much */

typedef struct chunk {
    struct chunk *next;
    long long due_ms;
    size_t len, off;
    char data[];
} chunk;

typedef struct dir {
    chunk *head, *tail;
    size_t queued;
    bool eof;  /* the reading side closed: shut the writing side once drained */
    bool shut; /* shutdown(SHUT_WR) done */
} dir;

typedef struct rlink {
    int fd[2]; /* 0: the client that connected to us, 1: the target */
    bool connecting;
    dir d[2]; /* d[0]: bytes from fd[0] to fd[1]; d[1]: the reverse */
} rlink;

struct relay {
    int lfd, port;
    int wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    int target;
    relay_mode mode;
    int delay_ms;
    bool stop;
    rlink *links[MAX_LINKS];
    _Atomic uint64_t accepted, bytes;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reset_close(int fd)
{
    if (fd < 0)
        return;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void link_free(rlink *l, bool reset)
{
    for (int i = 0; i < 2; i++) {
        if (reset)
            reset_close(l->fd[i]);
        else if (l->fd[i] >= 0)
            close(l->fd[i]);
        chunk *c = l->d[i].head;
        while (c != NULL) {
            chunk *n = c->next;
            free(c);
            c = n;
        }
    }
    free(l);
}

static int connect_target(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read what SIDE offers into the queue toward the other side. False when the
 * rlink is dead. */
static bool pump_in(relay *r, rlink *l, int side, int delay)
{
    dir *d = &l->d[side];
    chunk *c = malloc(sizeof *c + CHUNK);
    if (c == NULL)
        return false;
    ssize_t n = recv(l->fd[side], c->data, CHUNK, 0);
    if (n < 0) {
        free(c);
        return errno == EAGAIN || errno == EINTR;
    }
    if (n == 0) {
        free(c);
        d->eof = true;
        return true;
    }
    c->next = NULL;
    c->len = (size_t)n;
    c->off = 0;
    c->due_ms = now_ms() + delay;
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    d->queued += (size_t)n;
    atomic_fetch_add(&r->bytes, (uint64_t)n);
    return true;
}

/* Send what is due from direction SIDE to the other side. */
static bool pump_out(rlink *l, int side)
{
    dir *d = &l->d[side];
    int to = l->fd[1 - side];
    long long now = now_ms();
    while (d->head != NULL && d->head->due_ms <= now) {
        chunk *c = d->head;
        ssize_t w = send(to, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR;
        c->off += (size_t)w;
        d->queued -= (size_t)w;
        if (c->off < c->len)
            return true;
        d->head = c->next;
        if (d->head == NULL)
            d->tail = NULL;
        free(c);
    }
    if (d->head == NULL && d->eof && !d->shut) {
        shutdown(to, SHUT_WR);
        d->shut = true;
    }
    return true;
}

static void accept_one(relay *r)
{
    int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    /* the mode now, not the one this turn of the loop started with: a
     * switch to PASS just before a connect must let it through */
    pthread_mutex_lock(&r->mu);
    relay_mode mode = r->mode;
    int target = r->target;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&r->accepted, 1);
    if (mode == RELAY_REFUSE || target <= 0) {
        reset_close(fd);
        return;
    }
    int slot = -1;
    for (int i = 0; i < MAX_LINKS; i++)
        if (r->links[i] == NULL) {
            slot = i;
            break;
        }
    rlink *l = slot >= 0 ? calloc(1, sizeof *l) : NULL;
    if (l == NULL) {
        reset_close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->fd[0] = fd;
    l->fd[1] = -1; /* connected when the mode lets bytes through */
    r->links[slot] = l;
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    struct pollfd pf[2 + 2 * MAX_LINKS];
    int map[2 + 2 * MAX_LINKS];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stop;
        relay_mode mode = r->mode;
        int delay = mode == RELAY_DELAY ? r->delay_ms : 0;
        int target = r->target;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        bool moving = mode == RELAY_PASS || mode == RELAY_DELAY;
        long long now = now_ms(), next_due = -1;
        int n = 0;
        pf[n] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
        map[n++] = -1;
        pf[n] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
        map[n++] = -1;
        for (int i = 0; i < MAX_LINKS; i++) {
            rlink *l = r->links[i];
            if (l == NULL)
                continue;
            if (mode == RELAY_REFUSE) {
                link_free(l, true);
                r->links[i] = NULL;
                continue;
            }
            if (moving && l->fd[1] < 0) {
                l->fd[1] = connect_target(target);
                l->connecting = true;
                if (l->fd[1] < 0) {
                    link_free(l, true);
                    r->links[i] = NULL;
                    continue;
                }
            }
            bool done = l->d[0].shut && l->d[1].shut;
            if (done) {
                link_free(l, false);
                r->links[i] = NULL;
                continue;
            }
            for (int s = 0; s < 2 && l->fd[1] >= 0; s++) {
                short ev = 0;
                if (l->connecting) {
                    if (s == 1)
                        ev = POLLOUT;
                } else if (moving) {
                    if (!l->d[s].eof && l->d[s].queued < QUEUE_CAP)
                        ev |= POLLIN;
                    dir *out = &l->d[1 - s]; /* bytes toward fd[s] */
                    if (out->head != NULL) {
                        if (out->head->due_ms <= now)
                            ev |= POLLOUT;
                        else if (next_due < 0 || out->head->due_ms < next_due)
                            next_due = out->head->due_ms;
                    } else if (out->eof && !out->shut) {
                        ev |= POLLOUT;
                    }
                }
                if (moving && !l->connecting && ev == 0 && l->d[s].eof)
                    continue; /* nothing to do here; its HUP would spin */
                pf[n] = (struct pollfd){.fd = l->fd[s], .events = ev};
                map[n++] = i * 2 + s;
            }
        }
        int timeout = 200;
        if (next_due >= 0) {
            long long w = next_due - now;
            timeout = w < 0 ? 0 : (w < 200 ? (int)w : 200);
        }
        int pr = poll(pf, (nfds_t)n, timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (pf[0].revents & POLLIN) {
            char b[64];
            while (read(r->wake[0], b, sizeof b) > 0) {
            }
        }
        if (pf[1].revents & POLLIN)
            accept_one(r);
        for (int k = 2; k < n; k++) {
            if (pf[k].revents == 0)
                continue;
            int i = map[k] / 2, s = map[k] % 2;
            rlink *l = r->links[i];
            if (l == NULL)
                continue;
            bool ok = true;
            if (l->connecting && s == 1) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(l->fd[1], SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0 || (pf[k].revents & (POLLERR | POLLHUP)))
                    ok = false;
                else
                    l->connecting = false;
            } else if (!(mode == RELAY_PASS || mode == RELAY_DELAY)) {
                ok = false; /* a black-holed side hung up or failed: drop the rlink */
            } else {
                if ((pf[k].revents & POLLIN) ||
                    ((pf[k].revents & (POLLHUP | POLLERR)) && !l->d[s].eof))
                    ok = pump_in(r, l, s, delay);
                if (ok && (pf[k].revents & POLLOUT))
                    ok = pump_out(l, 1 - s);
                if (ok && (pf[k].revents & POLLERR))
                    ok = false;
            }
            if (!ok) {
                link_free(l, true);
                r->links[i] = NULL;
            }
        }
    }
    for (int i = 0; i < MAX_LINKS; i++)
        if (r->links[i] != NULL) {
            link_free(r->links[i], true);
            r->links[i] = NULL;
        }
    return NULL;
}

relay *relay_start(int target_port)
{
    relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (r->lfd < 0 || setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(r->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->lfd, 128) != 0 ||
        getsockname(r->lfd, (struct sockaddr *)&a, &al) != 0 ||
        pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        if (r->lfd >= 0)
            close(r->lfd);
        free(r);
        return NULL;
    }
    r->port = ntohs(a.sin_port);
    r->target = target_port;
    r->mode = RELAY_PASS;
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->th, NULL, relay_main, r) != 0) {
        close(r->lfd);
        close(r->wake[0]);
        close(r->wake[1]);
        free(r);
        return NULL;
    }
    return r;
}

int relay_port(const relay *r)
{
    return r->port;
}

static void poke(relay *r)
{
    char c = 1;
    if (write(r->wake[1], &c, 1) < 0) {
        /* full pipe: the thread is awake anyway */
    }
}

void relay_set_target(relay *r, int target_port)
{
    pthread_mutex_lock(&r->mu);
    r->target = target_port;
    pthread_mutex_unlock(&r->mu);
    poke(r);
}

void relay_set_mode(relay *r, relay_mode mode, int delay_ms)
{
    pthread_mutex_lock(&r->mu);
    r->mode = mode;
    r->delay_ms = delay_ms;
    pthread_mutex_unlock(&r->mu);
    poke(r);
}

uint64_t relay_accepted(relay *r)
{
    return atomic_load(&r->accepted);
}

uint64_t relay_bytes(relay *r)
{
    return atomic_load(&r->bytes);
}

void relay_stop(relay *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    poke(r);
    pthread_join(r->th, NULL);
    close(r->lfd);
    close(r->wake[0]);
    close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
