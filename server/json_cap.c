/*
 * json_cap.c — see json_cap.h.
 *
 * Counting is by allocation (free is not credited): a parse's tree plus its
 * lexer's transient buffers, which only overstates what it holds. What a
 * parse charged to the server-wide budget stays charged until the request
 * completes (budget_release), whether or not its tree was freed sooner.
 */
#include "json_cap.h"

#include <stdlib.h>

#define CAP_OVERHEAD 16u          /* malloc's header per allocation */
#define CAP_FREE_BYTES (1u << 20) /* a parse's first MiB is not charged */
#define CAP_CHUNK (1u << 20)      /* then it is charged a MiB at a time */

typedef struct cap_state {
    uint64_t limit;
    bool (*charge)(void *ctx, uint64_t n);
    void *ctx;
    bool counting;          /* inside json_cap_load */
    uint64_t used, charged; /* by this parse; charges stay with the request */
    int refused;
} cap_state;

static _Thread_local cap_state cap;

static void *cap_malloc(size_t n)
{
    if (!cap.counting)
        return malloc(n);
    cap.used += n + CAP_OVERHEAD;
    if (cap.limit != 0 && cap.used > cap.limit) {
        cap.refused = 413;
        return NULL;
    }
    while (cap.charge != NULL && cap.used > CAP_FREE_BYTES + cap.charged) {
        if (!cap.charge(cap.ctx, CAP_CHUNK)) {
            cap.refused = 503;
            return NULL;
        }
        cap.charged += CAP_CHUNK;
    }
    return malloc(n);
}

void json_cap_install(void)
{
    json_set_alloc_funcs(cap_malloc, free);
}

void json_cap_begin(uint64_t limit, bool (*charge)(void *ctx, uint64_t n), void *ctx)
{
    cap = (cap_state){.limit = limit, .charge = charge, .ctx = ctx};
}

void json_cap_end(void)
{
    cap = (cap_state){0};
}

json_t *json_cap_load(const char *data, size_t len, size_t flags, json_error_t *err)
{
    cap.refused = 0;
    cap.used = cap.charged = 0;
    cap.counting = true;
    json_t *j = json_loadb(data, len, flags, err);
    cap.counting = false;
    if (cap.refused != 0 && j != NULL) { /* cannot happen: a failed allocation fails the parse */
        json_decref(j);
        j = NULL;
    }
    return j;
}

int json_cap_refused(uint64_t *limit)
{
    if (cap.refused == 413 && limit != NULL)
        *limit = cap.limit;
    return cap.refused;
}
