/* The crash loop: a child process runs a deterministic stream of puts,
 * deletes, atomic batches and increments with sync=always while merges run
 * (explicit and in the background), acknowledging each op through a pipe.
 * The parent SIGKILLs it at a random moment, reopens, and requires the whole
 * database to equal the model after exactly the acknowledged ops or after
 * one more (the op in flight) — so every acknowledged write is present with
 * its exact value, every acknowledged delete is absent, batches are
 * all-or-nothing and the counter equals the increments. 100 rounds, each
 * continuing from the state the previous one recovered. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEYS 48
#define ROUNDS 100

typedef struct model {
    char val[KEYS][24]; /* "" = absent */
    long ctr;
} model;

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Op I of the stream, applied to the model. */
static void model_apply(model *m, long i)
{
    uint64_t r = mix((uint64_t)i);
    int kind = (int)(r % 10);
    int k = (int)((r >> 8) % KEYS);
    if (kind <= 4) {
        snprintf(m->val[k], sizeof(m->val[k]), "v%ld", i);
    } else if (kind <= 6) {
        m->val[k][0] = 0;
    } else if (kind <= 8) {
        for (int j = 0; j < 4; j++) {
            int kk = (k + j * 7) % KEYS;
            if (j % 2 == 0)
                snprintf(m->val[kk], sizeof(m->val[kk]), "b%ld-%d", i, j);
            else
                m->val[kk][0] = 0;
        }
    } else {
        m->ctr++;
    }
}

static void key_name(int k, char *out)
{
    snprintf(out, 8, "k%02d", k);
}

/* Op I against the database; 0 when acknowledged. */
static int db_apply(rc_db *db, long i)
{
    uint64_t r = mix((uint64_t)i);
    int kind = (int)(r % 10);
    int k = (int)((r >> 8) % KEYS);
    char key[8], val[24];
    key_name(k, key);
    if (kind <= 4) {
        snprintf(val, sizeof(val), "v%ld", i);
        return rc_put(db, NULL, key, strlen(key), val, strlen(val), NULL);
    }
    if (kind <= 6) {
        int rc = rc_delete(db, NULL, key, strlen(key), NULL);
        return rc == RC_ENOTFOUND ? 0 : rc;
    }
    if (kind <= 8) {
        char keys[4][8], vals[4][24];
        rc_op ops[4];
        for (int j = 0; j < 4; j++) {
            key_name((k + j * 7) % KEYS, keys[j]);
            snprintf(vals[j], sizeof(vals[j]), "b%ld-%d", i, j);
            ops[j] = (rc_op){.kind = j % 2 == 0 ? RC_OP_PUT : RC_OP_DELETE,
                             .key = keys[j],
                             .klen = strlen(keys[j]),
                             .val = vals[j],
                             .vlen = strlen(vals[j])};
        }
        return rc_apply(db, ops, 4, NULL);
    }
    rc_op op = {.kind = RC_OP_INCR, .key = "ctr", .klen = 3, .by = {.type = RC_TYPE_INT, .i = 1}};
    int rc = rc_apply(db, &op, 1, NULL);
    rc_value_free(&op.result);
    return rc;
}

static void child(const char *dir, long start, int fd)
{
    rc_options o;
    th_options(&o);
    th_sync_always(&o);
    o.segment_bytes = 8192;
    o.tombstone_retention_ms = 0;
    o.merge_check_ms = 10;
    o.merge_dead_pct = 30;
    rc_db *db;
    int rc = rc_open(dir, &o, &db);
    if (rc != 0) {
        fprintf(stderr, "child: open: %s (%s)\n", rc_strerror(rc), rc_last_error_message());
        _exit(3);
    }
    for (long i = start;; i++) {
        if ((rc = db_apply(db, i)) != 0) {
            fprintf(stderr, "child: op %ld: %s (%s)\n", i, rc_strerror(rc),
                    rc_last_error_message());
            _exit(4);
        }
        if (write(fd, &i, sizeof(i)) != sizeof(i))
            _exit(5);
        if (i % 64 == 0 && (rc = rc_merge(db)) != 0) {
            fprintf(stderr, "child: merge: %s (%s)\n", rc_strerror(rc), rc_last_error_message());
            _exit(6);
        }
    }
}

/* 1 when the database holds exactly M. */
static int matches(rc_db *db, const model *m)
{
    char key[8];
    for (int k = 0; k < KEYS; k++) {
        key_name(k, key);
        rc_value v;
        int rc = rc_get(db, NULL, key, strlen(key), &v);
        if (rc == RC_ENOTFOUND) {
            if (m->val[k][0])
                return 0;
            continue;
        }
        cr_assert_eq(rc, 0, "get %s: %s", key, rc_last_error_message());
        int same = m->val[k][0] && v.len == strlen(m->val[k]) && !memcmp(v.data, m->val[k], v.len);
        rc_value_free(&v);
        if (!same)
            return 0;
    }
    rc_value v;
    int rc = rc_get(db, NULL, "ctr", 3, &v);
    long c = rc == 0 ? atol(v.data) : 0;
    rc_value_free(&v);
    return c == m->ctr;
}

Test(crashloop, hundred_kills_lose_nothing_acknowledged, .timeout = 1800)
{
    char *dir = th_tmpdir();
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    model base;
    memset(&base, 0, sizeof(base));
    long next = 0; /* ops [0, next) are in the database */
    long total_acked = 0, in_flight_landed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            child(dir, next, p[1]);
        }
        close(p[1]);
        /* let the child acknowledge one op first, however loaded the
         * machine is, then kill it at a random moment */
        long i, acked = next - 1;
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, -1) == 1 && read(p[0], &i, sizeof(i)) == sizeof(i))
            acked = i;
        usleep((useconds_t)(rand() % 25000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "round %d: child exited with %d", round,
                  WEXITSTATUS(status));
        while (read(p[0], &i, sizeof(i)) == sizeof(i))
            acked = i;
        close(p[0]);
        total_acked += acked - (next - 1);

        model after = base; /* the model after every acknowledged op */
        for (long j = next; j <= acked; j++)
            model_apply(&after, j);
        model plus = after; /* ... and after the op in flight */
        model_apply(&plus, acked + 1);

        rc_options o;
        th_options(&o);
        rc_db *db;
        cr_assert_eq(rc_open(dir, &o, &db), 0, "round %d: %s", round, rc_last_error_message());
        if (matches(db, &after)) {
            base = after;
            next = acked + 1;
        } else {
            if (!matches(db, &plus)) {
                char key[8];
                for (int k = 0; k < KEYS; k++) {
                    key_name(k, key);
                    rc_value v;
                    int rc = rc_get(db, NULL, key, strlen(key), &v);
                    const char *got = rc == 0 ? (const char *)v.data : "(absent)";
                    if (strcmp(got, after.val[k][0] ? after.val[k] : "(absent)") ||
                        strcmp(got, plus.val[k][0] ? plus.val[k] : "(absent)"))
                        fprintf(stderr, "  %s: db=%s after=%s plus=%s\n", key, got, after.val[k],
                                plus.val[k]);
                    rc_value_free(&v);
                }
                rc_stats st;
                rc_stats_db(db, &st);
                fprintf(stderr,
                        "  ctr after=%ld; corrupt %llu torn %llu merges %llu horizon %llu\n",
                        after.ctr, (unsigned long long)st.corrupt_records,
                        (unsigned long long)st.torn_bytes, (unsigned long long)st.merges,
                        (unsigned long long)st.tombstone_horizon);
            }
            cr_assert(matches(db, &plus),
                      "round %d: the database is neither the state after the %ld acknowledged "
                      "ops nor after one more",
                      round, acked + 1);
            base = plus;
            next = acked + 2;
            in_flight_landed++;
        }
        rc_close(db);
    }
    printf("crash loop: %d rounds, %ld acknowledged ops verified, %ld in-flight ops landed\n",
           ROUNDS, total_acked, in_flight_landed);
    cr_assert_geq(total_acked, ROUNDS, "too few writes to mean anything");
    th_rmdir(dir);
}
