/* Crash safety: a child process writes batches and increments with
 * sync=always and reports each acknowledged one through a pipe; the parent
 * SIGKILLs it at a random moment, reopens, and checks that every batch is
 * all-or-nothing and nothing acknowledged was lost. Repeated for many rounds
 * on the same directory, so recovery also runs over earlier torn tails.
 * A second test does the same with eight writer threads sharing group
 * commits (leaders, sleepers and the gathering all in play). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH_KEYS 8

static void child_main(const char *dir, int fd, int start_gen)
{
    rc_options o;
    th_options(&o);
    th_sync_always(&o);
    o.segment_bytes = 16 * 1024; /* rotate often */
    rc_db *db;
    if (rc_open(dir, &o, &db) != 0)
        _exit(3);
    char keys[BATCH_KEYS][8], val[16];
    for (int i = 0; i < BATCH_KEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
    for (int g = start_gen;; g++) {
        snprintf(val, sizeof(val), "%d", g);
        rc_op ops[BATCH_KEYS + 1];
        for (int i = 0; i < BATCH_KEYS; i++)
            ops[i] = (rc_op){
                .kind = RC_OP_PUT, .key = keys[i], .klen = 2, .val = val, .vlen = strlen(val)};
        ops[BATCH_KEYS] = (rc_op){
            .kind = RC_OP_INCR, .key = "ctr", .klen = 3, .by = {.type = RC_TYPE_INT, .i = 1}};
        if (rc_apply(db, ops, BATCH_KEYS + 1, NULL) != 0)
            _exit(4);
        rc_value_free(&ops[BATCH_KEYS].result);
        if (write(fd, &g, sizeof(g)) != sizeof(g)) /* acknowledged */
            _exit(5);
    }
}

static int get_int(rc_db *db, const char *k, int dflt)
{
    rc_value v;
    int rc = rc_get(db, NULL, k, strlen(k), &v);
    if (rc == RC_ENOTFOUND)
        return dflt;
    cr_assert_eq(rc, 0, "get %s: %s", k, rc_last_error_message());
    int x = atoi(v.data);
    rc_value_free(&v);
    return x;
}

Test(crash, sigkill_never_tears_a_batch_or_loses_an_ack, .timeout = 600)
{
    char *dir = th_tmpdir();
    srand((unsigned)time(NULL));
    int acked_total = 0; /* increments acknowledged over all rounds */
    int next_gen = 1;
    int rounds = 40;
    for (int round = 0; round < rounds; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            child_main(dir, p[1], next_gen);
        }
        close(p[1]);
        int g, last_acked = next_gen - 1, acks = 0;
        /* one acknowledged batch first, however loaded the machine is (no
         * time limit: a child that dies closes the pipe) */
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, -1) == 1 && read(p[0], &g, sizeof(g)) == sizeof(g)) {
            last_acked = g;
            acks++;
        }
        usleep((useconds_t)(rand() % 40000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "round %d: child exited with %d before the kill", round,
                  WEXITSTATUS(status));
        while (read(p[0], &g, sizeof(g)) == sizeof(g)) {
            last_acked = g;
            acks++;
        }
        close(p[0]);
        acked_total += acks;

        rc_options o;
        th_options(&o);
        rc_db *db;
        cr_assert_eq(rc_open(dir, &o, &db), 0, "round %d: %s", round, rc_last_error_message());
        int first = get_int(db, "k0", 0);
        for (int i = 1; i < BATCH_KEYS; i++) {
            char k[8];
            snprintf(k, sizeof(k), "k%d", i);
            cr_assert_eq(get_int(db, k, 0), first, "round %d: torn batch (k0=%d, %s differs)",
                         round, first, k);
        }
        cr_assert_geq(first, last_acked, "round %d: acknowledged generation %d lost (found %d)",
                      round, last_acked, first);
        cr_assert_leq(first, last_acked + 1, "round %d: generation from nowhere", round);
        int ctr = get_int(db, "ctr", 0);
        /* the counter counts batches that reached the disk */
        cr_assert_geq(ctr, acked_total, "round %d: counter %d < acknowledged %d", round, ctr,
                      acked_total);
        cr_assert_leq(ctr, acked_total + round + 1, "round %d: counter too high", round);
        acked_total = ctr; /* an unacknowledged but durable batch counts from now on */
        next_gen = first + 1;
        rc_close(db);
    }
    cr_assert_geq(acked_total, rounds, "too few writes happened to mean anything");
    th_rmdir(dir);
}

#define GROUP_WRITERS 8

typedef struct group_writer {
    rc_db *db;
    int fd; /* the pipe: {writer, generation} per acknowledged write */
    int id;
    int start_gen;
} group_writer;

static void *group_writer_main(void *arg)
{
    group_writer *w = arg;
    char key[8], val[16];
    snprintf(key, sizeof(key), "t%d", w->id);
    for (int g = w->start_gen;; g++) {
        snprintf(val, sizeof(val), "%d", g);
        rc_op op = {
            .kind = RC_OP_PUT, .key = key, .klen = strlen(key), .val = val, .vlen = strlen(val)};
        if (rc_apply(w->db, &op, 1, NULL) != 0)
            _exit(4);
        int ack[2] = {w->id, g}; /* 8 bytes: one atomic pipe write */
        if (write(w->fd, ack, sizeof(ack)) != sizeof(ack))
            _exit(5);
    }
    return NULL;
}

static void group_child(const char *dir, int fd, const int *start_gen)
{
    rc_options o;
    th_options(&o);
    th_sync_always(&o);
    o.segment_bytes = 16 * 1024; /* rotate often, under concurrent leaders */
    rc_db *db;
    if (rc_open(dir, &o, &db) != 0)
        _exit(3);
    static group_writer w[GROUP_WRITERS];
    pthread_t th[GROUP_WRITERS];
    for (int i = 0; i < GROUP_WRITERS; i++) {
        w[i] = (group_writer){.db = db, .fd = fd, .id = i, .start_gen = start_gen[i]};
        if (pthread_create(&th[i], NULL, group_writer_main, &w[i]) != 0)
            _exit(6);
    }
    for (;;)
        pause(); /* until the SIGKILL */
}

Test(crash, sigkill_loses_no_ack_of_eight_writers_sharing_group_commits, .timeout = 600)
{
    char *dir = th_tmpdir();
    srand((unsigned)time(NULL) ^ 0x5eed);
    int next_gen[GROUP_WRITERS];
    for (int i = 0; i < GROUP_WRITERS; i++)
        next_gen[i] = 1;
    long acks_total = 0;
    const int rounds = 15;
    for (int round = 0; round < rounds; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            group_child(dir, p[1], next_gen);
        }
        close(p[1]);
        int last[GROUP_WRITERS];
        for (int i = 0; i < GROUP_WRITERS; i++)
            last[i] = next_gen[i] - 1;
        int ack[2];
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, -1) == 1 && read(p[0], ack, sizeof(ack)) == sizeof(ack)) {
            cr_assert(ack[0] >= 0 && ack[0] < GROUP_WRITERS);
            last[ack[0]] = ack[1];
            acks_total++;
        }
        usleep((useconds_t)(rand() % 40000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "round %d: child exited with %d before the kill", round,
                  WEXITSTATUS(status));
        while (read(p[0], ack, sizeof(ack)) == sizeof(ack)) {
            cr_assert(ack[0] >= 0 && ack[0] < GROUP_WRITERS);
            if (ack[1] > last[ack[0]])
                last[ack[0]] = ack[1];
            acks_total++;
        }
        close(p[0]);

        rc_options o;
        th_options(&o);
        rc_db *db;
        cr_assert_eq(rc_open(dir, &o, &db), 0, "round %d: %s", round, rc_last_error_message());
        for (int i = 0; i < GROUP_WRITERS; i++) {
            char k[8];
            snprintf(k, sizeof(k), "t%d", i);
            int found = get_int(db, k, 0);
            cr_assert_geq(found, last[i], "round %d: writer %d's acknowledged %d lost (found %d)",
                          round, i, last[i], found);
            cr_assert_leq(found, last[i] + 1, "round %d: writer %d: a value from nowhere", round,
                          i);
            next_gen[i] = found + 1;
        }
        rc_close(db);
    }
    cr_assert_geq(acks_total, rounds, "too few writes happened to mean anything");
    th_rmdir(dir);
}
