/*
 * session.c — one engine's life inside a kvbench run: open (fresh or not)
 * with a sync mode, park between interleaved turns, reopen, delete at the
 * end. For --sync interval:MS on a peer without such a mode, a syncer thread
 * calls the backend's sync_now every MS while the engine is open, so every
 * engine gets the same durability contract.
 */
#include "workloads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int kvb_buf_reserve(kvb_buf *buf, size_t n)
{
    if (buf->cap >= n)
        return 0;
    void *p = realloc(buf->data, n);
    if (!p)
        return -1;
    buf->data = p;
    buf->cap = n;
    return 0;
}

static void *syncer_main(void *arg)
{
    kvb_session *s = arg;
    while (!s->syncer_stop) {
        struct timespec ts = {s->p->sync_interval_ms / 1000,
                              (long)(s->p->sync_interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (!s->syncer_stop)
            s->be->sync_now(s->db);
    }
    return NULL;
}

void kvb_engine_close(kvb_session *s)
{
    if (s->syncer_running) {
        s->syncer_stop = true;
        pthread_join(s->syncer, NULL);
        s->syncer_running = false;
    }
    if (s->db)
        s->be->close(s->db);
    s->db = NULL;
}

int kvb_engine_open(kvb_session *s, kvb_sync mode, bool fresh)
{
    kvb_engine_close(s);
    if (fresh) {
        kvb_rmtree(s->dir);
        s->loaded = 0;
        s->deleted = 0;
    }
    if (kvb_mkdirs(s->dir) != 0) {
        fprintf(stderr, "kvbench: cannot create %s\n", s->dir);
        return -1;
    }
    kvb_open_opts o = {
        .dir = s->dir,
        .sync = mode,
        .sync_interval_ms = s->p->sync_interval_ms,
        .expected_bytes = s->p->n * (s->p->key_size + s->p->value_size + 64),
        .append_io = s->p->append_io,
    };
    if (s->be->open(&o, &s->db) != 0)
        return -1;
    s->open_sync = mode;
    if (mode == KVB_SYNC_INTERVAL && !s->be->native_interval_sync && s->be->sync_now) {
        s->syncer_stop = false;
        if (pthread_create(&s->syncer, NULL, syncer_main, s) == 0)
            s->syncer_running = true;
    }
    return 0;
}

int kvb_session_start(kvb_session *s, const kvb_backend *be, const kvb_params *p, const char *dir)
{
    memset(s, 0, sizeof *s);
    s->be = be;
    s->p = p;
    if (snprintf(s->dir, sizeof s->dir, "%s/%s", dir, be->name) >= (int)sizeof s->dir)
        return -1;
    return kvb_engine_open(s, p->sync, true);
}

void kvb_session_park(kvb_session *s)
{
    kvb_engine_close(s);
}

void kvb_session_end(kvb_session *s)
{
    kvb_engine_close(s);
    if (s->p->keep)
        fprintf(stderr, "kvbench: kept %s\n", s->dir);
    else
        kvb_rmtree(s->dir);
    free(s->sorted);
    s->sorted = NULL;
}
