/*
 * script_fake_host.h — an in-memory bucket for rcscript tests: the host
 * vtable over a small array, with counters and fault switches, so the
 * runtime is tested without the engine or the server.
 */
#ifndef TESTS_SCRIPT_FAKE_HOST_H
#define TESTS_SCRIPT_FAKE_HOST_H

#include <stddef.h>

#include "script.h"

#define FAKE_MAX 4096

typedef struct fake_entry {
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
    rc_type type;
    int64_t ttl_ms;
    uint64_t seq;
} fake_entry;

typedef struct fake_host {
    fake_entry e[FAKE_MAX];
    size_t n;
    unsigned commits;   /* commit calls */
    size_t last_nops;   /* ops in the last commit */
    rc_op last_ops[64]; /* kinds/ttl/by of the last commit (pointers dangle) */
    int commit_error;   /* return this from commit (nothing applied) */
    int get_error;      /* return this from get for every key */
    unsigned gets, lists;
    int64_t now_ms; /* 0: real clock */
    uint64_t last_seq;
    /* a concurrent writer: before each of the next BUMPS commits, KEY is
     * incremented by 100 behind the script's back */
    const char *bump_key;
    unsigned bumps;
} fake_host;

void fake_init(fake_host *f);
void fake_free(fake_host *f);
/* Set KEY (NUL-terminated) to VAL with TYPE, directly. */
void fake_put(fake_host *f, const char *key, const char *val, rc_type type);
/* The entry of KEY or NULL. */
const fake_entry *fake_find(const fake_host *f, const char *key);
/* The vtable over F. */
script_host fake_vtable(fake_host *f);

/* Run SRC with full permissions, no prefix, on ENG; a one-call helper. */
int fake_run(script_engine *eng, fake_host *f, const char *src, script_result *res);
/* Same with a scope. */
int fake_run_scoped(script_engine *eng, fake_host *f, const char *src, const char *prefix,
                    unsigned perms, script_result *res);

#endif
