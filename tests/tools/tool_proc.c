/*
 * tool_proc.c — process plumbing for the tools' system tests.
 *
 * Output is captured through temporary files rather than pipes: no risk of a
 * child blocking on a full pipe while the test waits for it, and binary
 * output (kv get of a value with every byte) comes back exactly. Every wait
 * is bounded so a hung binary fails its test instead of hanging the suite.
 */
#include "tool_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void tp_result_free(tp_result *r)
{
    free(r->out);
    free(r->err);
    *r = (tp_result){0};
}

char *tp_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char templ[512];
    snprintf(templ, sizeof templ, "%s/rctools.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(templ) ? strdup(templ) : NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void tp_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tp_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && n == len ? 0 : -1;
}

long tp_read_file(const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    buf[len] = '\0';
    *out = buf;
    return (long)len;
}

static int wait_bounded(pid_t pid, long limit_ms)
{
    int st = 0;
    for (long waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0)
            return -1;
        if (waited >= limit_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        sleep_ms(10);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

tp_result tp_run(char *const argv[], const char *stdin_path, char *const env[])
{
    tp_result r = {.status = -1};
    char *dir = tp_tempdir();
    if (!dir)
        return r;
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0)
        r.status = wait_bounded(pid, 300000); /* nets for a hang, not speed tests */
    long n = tp_read_file(out_path, &r.out);
    r.out_len = n > 0 ? (size_t)n : 0;
    n = tp_read_file(err_path, &r.err);
    r.err_len = n > 0 ? (size_t)n : 0;
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    tp_rmtree(dir);
    free(dir);
    return r;
}

int tp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* One GET /healthz over a fresh connection; true on a 200. */
static bool healthz_ok(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = false;
    struct timeval tv = {1, 0};
    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Connection: close\r\n\r\n";
        char buf[64] = {0};
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1) &&
            read(fd, buf, sizeof buf - 1) > 12)
            ok = strncmp(buf, "HTTP/1.1 200", 12) == 0 || strncmp(buf, "HTTP/1.0 200", 12) == 0;
    }
    close(fd);
    return ok;
}

static void print_log(const tp_kvd *k)
{
    char path[600], *log = NULL;
    snprintf(path, sizeof path, "%s/kvd.log", k->dir);
    if (tp_read_file(path, &log) >= 0)
        fprintf(stderr, "--- kvd log ---\n%s\n---------------\n", log);
    free(log);
}

bool tp_kvd_as_user = false;

int tp_kvd_start(tp_kvd *k, const char *program, bool via_kv_serve, char *const args[])
{
    return tp_kvd_start_in(k, program, via_kv_serve, NULL, args);
}

int tp_kvd_start_in(tp_kvd *k, const char *program, bool via_kv_serve, const char *data_dir,
                    char *const args[])
{
    *k = (tp_kvd){.pid = -1};
    k->dir = tp_tempdir();
    if (!k->dir)
        return -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        k->port = tp_free_port();
        snprintf(k->url, sizeof k->url, "http://127.0.0.1:%d", k->port);
        snprintf(k->env_url, sizeof k->env_url, "KV_URL=%s", k->url);
        char data[600], log[600], listen[64];
        if (data_dir)
            snprintf(data, sizeof data, "%s", data_dir);
        else
            snprintf(data, sizeof data, "%s/data", k->dir);
        snprintf(log, sizeof log, "%s/kvd.log", k->dir);
        snprintf(listen, sizeof listen, "127.0.0.1:%d", k->port);
        char *argv[64];
        size_t n = 0;
        argv[n++] = (char *)program;
        if (via_kv_serve)
            argv[n++] = "serve";
        else {
            argv[n++] = "--default-bucket";
            argv[n++] = "default";
        }
        argv[n++] = "--dir";
        argv[n++] = data;
        argv[n++] = "--listen";
        argv[n++] = listen;
        if (!tp_kvd_as_user)
            argv[n++] = "--allow-anonymous-buckets"; /* the tests create buckets */
        for (size_t i = 0; args && args[i] && n < 62; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
            int in = open("/dev/null", O_RDONLY);
            if (fd < 0 || in < 0)
                _exit(126);
            dup2(in, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            execv(program, argv);
            _exit(127);
        }
        if (pid < 0)
            return -1;
        k->pid = pid;
        for (int waited = 0; waited < 120000; waited += 20) {
            if (healthz_ok(k->port))
                return 0;
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                k->pid = -1; /* died: maybe the port was taken meanwhile; retry */
                break;
            }
            sleep_ms(20);
        }
        if (k->pid > 0) {
            kill(k->pid, SIGKILL);
            waitpid(k->pid, NULL, 0);
            k->pid = -1;
        }
    }
    print_log(k);
    tp_rmtree(k->dir);
    free(k->dir);
    k->dir = NULL;
    return -1;
}

int tp_kvd_stop(tp_kvd *k)
{
    int status = -1;
    if (k->pid > 0) {
        kill(k->pid, SIGTERM);
        status = wait_bounded(k->pid, 120000);
        k->pid = -1;
    }
    if (k->dir) {
        tp_rmtree(k->dir);
        free(k->dir);
        k->dir = NULL;
    }
    return status;
}
