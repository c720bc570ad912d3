/*
 * park.h — park an HTTP request until something happens, with no thread
 * per waiting request.
 *
 * A route that has nothing to answer yet calls park_request(): the request's
 * libmicrohttpd connection is suspended (MHD_suspend_connection; the daemon
 * runs with MHD_ALLOW_SUSPEND_RESUME) and a small waiter record goes into
 * the registry, indexed by what it waits for (a "topic") and by its
 * deadline. Nothing runs for it until one of:
 *   - park_notify() from any thread reports a change that matches its topic
 *     (why PARK_WOKEN);
 *   - its deadline passes (PARK_DEADLINE);
 *   - its client closes the connection (the socket is watched for
 *     EPOLLRDHUP): the connection is resumed and closed without an answer;
 *   - park_shutdown() (PARK_SHUTDOWN), which kvd calls on SIGTERM before it
 *     stops the daemon (libmicrohttpd must not be stopped with a connection
 *     still suspended).
 * Whoever takes the waiter out of the registry (under its lock) is the only
 * one to call MHD_resume_connection, so a request is resumed exactly once.
 * The connection's own pool thread then calls the access handler again, and
 * http.c runs the RESUME function given to park_request on that thread, with
 * the request as it was: the function answers (http_send and friends) or
 * parks the request again (a wake is a hint: re-check and re-park when it
 * was for another key). Nothing of the route runs on the notifying thread.
 *
 * One thread (park's "timer") sleeps in epoll_wait on an eventfd and the
 * parked sockets, with the earliest deadline as its timeout (a binary heap):
 * 300 or 30000 parked requests cost the same single thread. Memory per
 * waiter: about 120 bytes plus its topic (bucket name and key or prefix),
 * besides the connection libmicrohttpd keeps (its socket and buffers).
 *
 * Topics. A waiter waits on a CHANNEL (PARK_CH_DATA is the change feed of
 * the database; other modules take PARK_CH_USER + n for their own events)
 * for a notification with a seq greater than its AFTER, optionally only for
 * one keyspace and one key or key prefix. A notification names a channel, a
 * seq and optionally a keyspace and a key; one without a keyspace ("many
 * keys changed up to SEQ", as after a stream was loaded) wakes every waiter
 * of the channel with AFTER < SEQ. Exact-key waiters sit in a hash, so a
 * write costs one hash probe plus a walk of the channel's prefix and
 * any-key waiters; with nothing parked a notification costs one atomic load.
 *
 * Thread safety: every function may be called from any thread. park_request
 * and park_wake must be called from the access handler of REQ (on its pool
 * thread).
 */
#ifndef KVD_PARK_H
#define KVD_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvd_request;
typedef struct park park;

enum {
    PARK_CH_DATA = 0, /* the database's change feed (feed.c) */
    PARK_CH_USER = 1, /* first channel free for other modules */
    /* a replica group's leader: writes answered once the sync standby has
     * them (cluster_http.c); a notification's seq is the standby's
     * acknowledged seq, UINT64_MAX for "leadership or lease changed" */
    PARK_CH_ACK = PARK_CH_USER + 1,
    PARK_CHANNELS = 8,
};

typedef enum park_why {
    PARK_WOKEN = 1,    /* a matching notification (or park_wake) */
    PARK_DEADLINE = 2, /* the deadline passed */
    PARK_SHUTDOWN = 3, /* kvd is stopping: answer now */
} park_why;

/* Runs on REQ's pool thread once REQ is resumed: answer it, or park it
 * again. */
typedef void (*park_resume_fn)(struct kvd_request *req, park_why why);

typedef struct park_topic {
    unsigned channel; /* < PARK_CHANNELS */
    uint64_t after;   /* wake on a notification with seq > after */
    const char *ks;   /* keyspace name (NUL-terminated), NULL: any */
    const void *key;  /* with KS: the key or prefix (copied), NULL: any key */
    size_t klen;
    bool prefix; /* KEY is a prefix: any key starting with it */
} park_topic;

typedef struct park_stats {
    uint64_t parked;    /* waiting now */
    uint64_t refused;   /* park_request refused by the limit (the route answers 503) */
    uint64_t woken;     /* resumed by a notification */
    uint64_t deadlines; /* resumed at their deadline */
    uint64_t gone;      /* clients that closed the connection while parked */
} park_stats;

/* A registry for at most MAX_WAITERS parked requests, with its timer
 * thread. NULL on failure (errno set). Free with park_free after the HTTP
 * daemon stopped. */
park *park_new(unsigned max_waiters);
void park_free(park *p);

#define PARK_OK 0
#define PARK_FULL (-1)    /* MAX_WAITERS are parked: answer 503 */
#define PARK_CLOSED (-2)  /* shutting down: answer now */
#define PARK_NOMEM (-3)   /* out of memory: answer now or 503 */
#define PARK_NOTPARK (-4) /* no registry (P NULL) */

/* Park REQ until T matches a notification, DEADLINE_NS (kvd_mono_ns clock)
 * passes or the client goes. AGAIN: REQ was parked before for the same
 * wait (re-parking after a wake is not refused by the limit). On PARK_OK
 * the caller returns without answering; RESUME runs later. Otherwise REQ
 * is not parked and the caller answers it. */
int park_request(park *p, struct kvd_request *req, const park_topic *t, uint64_t deadline_ns,
                 park_resume_fn resume, bool again);

/* A counter that every park_notify on CHANNEL raises. Read it before
 * looking at the state a wait depends on; when it moved by the time the
 * request is parked, call park_wake (a change may have slipped between the
 * look and the registration). */
uint64_t park_generation(park *p, unsigned channel);

/* Resume REQ (parked by this thread's handler a moment ago) with PARK_WOKEN
 * unless something already did: for the re-check after registering. */
void park_wake(park *p, struct kvd_request *req);

/* Report a change on CHANNEL up to SEQ: of KEY (KLEN bytes) in keyspace KS,
 * or of any key of KS (KEY NULL), or of anything (KS NULL). */
void park_notify(park *p, unsigned channel, const char *ks, const void *key, size_t klen,
                 uint64_t seq);

/* Resume every parked request with PARK_SHUTDOWN and refuse new ones
 * (PARK_CLOSED); returns once every resume was handed to libmicrohttpd. */
void park_shutdown(park *p);

/* Called by http.c: the resumed REQ's waiter is released and RESUME and
 * WHY returned; *GONE when the client went away (close the connection). */
park_resume_fn park_take(struct kvd_request *req, park_why *why, bool *gone);
/* Called by http.c when REQ completes: releases a waiter still attached. */
void park_forget(park *p, struct kvd_request *req);

void park_get_stats(park *p, park_stats *out);

#endif
