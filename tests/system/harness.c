/*
 * harness.c — see harness.h. The clock, spawning and HTTP are testkit.h's,
 * shared with the replica-group suites (tests/cluster).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#ifndef KVD_BIN
#error "KVD_BIN must name the kvd binary"
#endif

bool kvd_start(kvd_proc *k, const char *dir, const char *const *extra)
{
    return kvd_start_as(k, dir, extra, true);
}

bool kvd_start_as(kvd_proc *k, const char *dir, const char *const *extra, bool anonymous_buckets)
{
    const char *args[64];
    size_t n = 0;
    int out[2];
    if (dir == NULL) {
        snprintf(k->dir, sizeof k->dir, "/tmp/kvdtest.XXXXXX");
        if (mkdtemp(k->dir) == NULL)
            return false;
    } else if (dir != k->dir) {
        snprintf(k->dir, sizeof k->dir, "%s", dir);
    }
    /* KVD_TEST_BIN runs the suite against another build (e.g. one without
     * a fix, to see its test fail) */
    const char *bin = getenv("KVD_TEST_BIN") ? getenv("KVD_TEST_BIN") : KVD_BIN;
    args[n++] = bin;
    args[n++] = "--dir";
    args[n++] = k->dir;
    args[n++] = "--listen";
    args[n++] = "127.0.0.1:0";
    args[n++] = "--log-level";
    args[n++] = getenv("KVD_TEST_LOG") ? getenv("KVD_TEST_LOG") : "warn";
    if (anonymous_buckets)
        args[n++] = "--allow-anonymous-buckets";
    /* KVD_TEST_APPEND_IO=mmap|uring: the append path (ctest runs the server
     * suite once more with mmap; by default kvd takes io_uring for --sync
     * always) */
    if (getenv("KVD_TEST_APPEND_IO")) {
        args[n++] = "--append-io";
        args[n++] = getenv("KVD_TEST_APPEND_IO");
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (pipe2(out, O_CLOEXEC) != 0)
        return false;
    pid_t pid = tk_spawn(args, out[1], -1);
    close(out[1]);
    if (pid < 0) {
        close(out[0]);
        return false;
    }
    k->pid = pid;
    k->port = 0;
    size_t got = 0;
    long long deadline = mono_ms() + 120000; /* a net for a hang, not a speed test */
    k->ready_line[0] = '\0';
    while (mono_ms() < deadline && got < sizeof k->ready_line - 1) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int pr = poll(&p, 1, 200);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            continue;
        ssize_t r = read(out[0], k->ready_line + got, sizeof k->ready_line - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        k->ready_line[got] = '\0';
        if (strchr(k->ready_line, '\n') != NULL)
            break;
    }
    close(out[0]);
    const char *p = strstr(k->ready_line, "http://127.0.0.1:");
    if (p != NULL)
        k->port = atoi(p + strlen("http://127.0.0.1:"));
    if (k->port <= 0) {
        kvd_stop(k, SIGKILL);
        return false;
    }
    snprintf(k->url, sizeof k->url, "http://127.0.0.1:%d", k->port);
    return true;
}

int kvd_stop(kvd_proc *k, int sig)
{
    int st = 0;
    if (k->pid <= 0)
        return -1;
    kill(k->pid, sig);
    long long deadline = mono_ms() + 120000;
    for (;;) {
        pid_t w = waitpid(k->pid, &st, WNOHANG);
        if (w == k->pid)
            break;
        if (w < 0 && errno != EINTR) {
            k->pid = 0;
            return -1;
        }
        if (mono_ms() > deadline) {
            kill(k->pid, SIGKILL);
            waitpid(k->pid, &st, 0);
            k->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    k->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void kvd_cleanup(kvd_proc *k)
{
    if (k->pid > 0)
        kvd_stop(k, SIGKILL);
    if (k->dir[0] != '\0' && strncmp(k->dir, "/tmp/kvdtest.", 13) == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", k->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", k->dir);
        k->dir[0] = '\0';
    }
}

resp http(const kvd_proc *k, const char *method, const char *path, const char *body, size_t blen,
          const char *const *hdrs)
{
    return tk_request(NULL, k->url, method, path, body, blen, NULL, 300000 /* a net for a hang */,
                      hdrs);
}

size_t raw_exchange(const kvd_proc *k, const char *req, size_t len, char *buf, size_t cap,
                    int wait_ms, bool *closed)
{
    size_t got = 0, off = 0;
    *closed = false;
    buf[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)k->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    long long deadline = mono_ms() + wait_ms;
    while (got < cap - 1) {
        long long left = deadline - mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r <= 0) {
            *closed = true;
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
    }
    close(fd);
    return got;
}

int raw_status(const char *answer, int *count)
{
    int first = 0, n = 0;
    for (const char *s = answer; (s = strstr(s, "HTTP/1.")) != NULL; s += 7) {
        int st = 0;
        if (strlen(s) >= 12 && s[8] == ' ' && sscanf(s + 9, "%3d", &st) == 1) {
            if (n++ == 0)
                first = st;
        }
    }
    if (count != NULL)
        *count = n;
    return first;
}

resp http_get(const kvd_proc *k, const char *path)
{
    return http(k, "GET", path, NULL, 0, NULL);
}

resp http_put(const kvd_proc *k, const char *path, const char *body)
{
    return http(k, "PUT", path, body, strlen(body), NULL);
}

resp http_auth(const kvd_proc *k, const char *method, const char *path, const char *body,
               const char *bearer)
{
    char h[4096];
    const char *hdrs[2] = {h, NULL};
    snprintf(h, sizeof h, "Authorization: Bearer %s", bearer);
    return http(k, method, path, body, body ? strlen(body) : 0, bearer ? hdrs : NULL);
}

const char *resp_header(const resp *r, const char *name, char *out, size_t cap)
{
    return tk_resp_header(r, name, out, cap);
}

json_t *resp_json(const resp *r)
{
    return tk_resp_json(r);
}

void resp_free(resp *r)
{
    tk_resp_free(r);
}

bool make_bucket(const kvd_proc *k, const char *body, char *name, size_t ncap, char *key,
                 size_t kcap)
{
    resp r = http(k, "POST", "/", body, body ? strlen(body) : 0, NULL);
    json_t *j = resp_json(&r);
    bool ok = r.status == 201 && j != NULL;
    if (ok) {
        snprintf(name, ncap, "%s", json_string_value(json_object_get(j, "bucket")));
        snprintf(key, kcap, "%s", json_string_value(json_object_get(j, "admin_key")));
    }
    json_decref(j);
    resp_free(&r);
    return ok;
}

bool make_token(const kvd_proc *k, const char *bucket, const char *admin, const char *body,
                char *tok, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "/%s/tokens/", bucket);
    resp r = http_auth(k, "POST", path, body, admin);
    json_t *j = resp_json(&r);
    bool ok = r.status == 200 && j != NULL && json_is_string(json_object_get(j, "token"));
    if (ok)
        snprintf(tok, cap, "%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    resp_free(&r);
    return ok;
}
