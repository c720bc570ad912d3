/*
 * tool_proc.h — helpers for system tests that drive the real binaries:
 * run a program with captured stdout/stderr, and start/stop a real kvd on
 * 127.0.0.1 on a free port in a temporary directory.
 */
#ifndef TESTS_TOOLS_TOOL_PROC_H
#define TESTS_TOOLS_TOOL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The outcome of one run. OUT/ERR are NUL-terminated (the length counts the
 * bytes, which may include NULs). */
typedef struct tp_result {
    int status; /* exit status; 128+N when killed by signal N */
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
} tp_result;

void tp_result_free(tp_result *r);

/* Run ARGV[0] (a path) with ARGV, stdin from STDIN_PATH (NULL: /dev/null),
 * extra environment entries ENV ("K=V", NULL-terminated, may be NULL), and a
 * time limit of 60 s (killed after it). Returns the result. */
tp_result tp_run(char *const argv[], const char *stdin_path, char *const env[]);

/* A fresh temporary directory (caller frees the string; tp_rmtree removes it). */
char *tp_tempdir(void);
void tp_rmtree(const char *path);
/* Write LEN bytes to PATH; returns 0 or -1. */
int tp_write_file(const char *path, const void *data, size_t len);
/* Read PATH whole into *OUT (malloc'd, NUL-terminated); returns the length or -1. */
long tp_read_file(const char *path, char **out);

/* A kvd child process. */
typedef struct tp_kvd {
    pid_t pid;
    int port;
    char *dir;        /* temporary directory: data/ and kvd.log inside */
    char url[64];     /* http://127.0.0.1:PORT */
    char env_url[80]; /* KV_URL=... */
} tp_kvd;

/* Start PROGRAM (kvd, or kv with first argument "serve") with ARGS
 * (NULL-terminated, may be NULL) plus --dir and --listen, and wait (bounded,
 * 20 s) until GET /healthz answers 200. Returns 0 or -1 (the log is printed). */
int tp_kvd_start(tp_kvd *k, const char *program, bool via_kv_serve, char *const args[]);
/* tp_kvd_start passes --allow-anonymous-buckets (the suites create buckets
 * without credentials) unless this is true: then kvd, or kv serve, runs with
 * only the flags a user would give. */
extern bool tp_kvd_as_user;
/* The same with the data directory DATA_DIR (NULL: <k->dir>/data). */
int tp_kvd_start_in(tp_kvd *k, const char *program, bool via_kv_serve, const char *data_dir,
                    char *const args[]);
/* SIGTERM, wait (bounded; SIGKILL after 10 s), remove the directory. Returns
 * the exit status of kvd. Safe to call on a never-started or stopped k. */
int tp_kvd_stop(tp_kvd *k);
/* A TCP port that nothing listened on a moment ago. */
int tp_free_port(void);

#endif
