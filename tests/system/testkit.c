/*
 * testkit.c — see testkit.h.
 */
#include "testkit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

pid_t tk_spawn(const char *const *args, int out_fd, int err_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (out_fd >= 0)
        dup2(out_fd, 1);
    if (err_fd >= 0)
        dup2(err_fd, 2);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    execv(args[0], (char *const *)args);
    _exit(127);
}

bool tk_alive(pid_t pid)
{
    int st;
    return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

void tk_reap(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    kill(*pid, SIGCONT);
    int st;
    while (waitpid(*pid, &st, 0) < 0 && errno == EINTR) {
    }
    *pid = 0;
}

typedef struct buf {
    char *data;
    size_t len;
} buf;

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    buf *b = ctx;
    size_t add = size * n;
    char *nd = realloc(b->data, b->len + add + 1);
    if (nd == NULL)
        return 0;
    memcpy(nd + b->len, p, add);
    b->len += add;
    nd[b->len] = '\0';
    b->data = nd;
    return add;
}

static tk_resp request_on(CURL *c, const char *base, const char *method, const char *path,
                          const char *body, size_t blen, const char *bearer, long timeout_ms,
                          const char *const *hdrs)
{
    tk_resp r = {0};
    buf b = {0}, h = {0};
    char url[4096], auth[4200];
    struct curl_slist *list = NULL;
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    list = curl_slist_append(list, "Expect:");
    if (body != NULL)
        list = curl_slist_append(list, "Content-Type:");
    if (bearer != NULL && bearer[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        list = curl_slist_append(list, auth);
    }
    for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++)
        list = curl_slist_append(list, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    r.body = b.data ? b.data : calloc(1, 1);
    r.len = b.len;
    r.headers = h.data ? h.data : calloc(1, 1);
    return r;
}

tk_resp tk_request(CURL *c, const char *base, const char *method, const char *path,
                   const char *body, size_t blen, const char *bearer, long timeout_ms,
                   const char *const *hdrs)
{
    if (c != NULL)
        return request_on(c, base, method, path, body, blen, bearer, timeout_ms, hdrs);
    tk_resp r = {0};
    c = curl_easy_init();
    if (c == NULL) {
        r.body = calloc(1, 1);
        r.headers = calloc(1, 1);
        return r;
    }
    r = request_on(c, base, method, path, body, blen, bearer, timeout_ms, hdrs);
    curl_easy_cleanup(c);
    return r;
}

const char *tk_resp_header(const tk_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = r->headers, *found = NULL;
    size_t flen = 0;
    /* curl keeps the header lines of every answer it got (a 100, a
     * redirect): each starts with its status line, and the last one counts */
    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll >= 5 && strncmp(p, "HTTP/", 5) == 0) {
            found = NULL;
        } else if (found == NULL && ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            found = v;
            flen = ll - (size_t)(v - p);
        }
        p = eol ? eol + 2 : NULL;
    }
    if (found == NULL || cap == 0)
        return NULL;
    if (flen >= cap)
        flen = cap - 1;
    memcpy(out, found, flen);
    out[flen] = '\0';
    return out;
}

json_t *tk_resp_json(const tk_resp *r)
{
    json_error_t e;
    return r->body ? json_loadb(r->body, r->len, JSON_ALLOW_NUL, &e) : NULL;
}

void tk_resp_free(tk_resp *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}
