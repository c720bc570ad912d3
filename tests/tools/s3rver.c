/*
 * s3rver.c — start and stop s3rver for the object-store tests.
 */
#include "s3rver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tool_proc.h"

const char *s3rv_binary(char *why, size_t cap)
{
    const char *bin = getenv("S3RVER_BIN");
    if (bin == NULL || *bin == '\0')
        bin = S3RVER_DEFAULT_BIN;
    if (access(bin, X_OK) != 0) {
        snprintf(why, cap,
                 "s3rver is not installed at %s (run tests/tools/s3rver_install.sh, which needs "
                 "node, npm and the npm registry)",
                 bin);
        return NULL;
    }
    return bin;
}

static bool accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int s3rv_start(s3rv *s, const char *data_dir, int port, char *why, size_t cap)
{
    const char *bin = s3rv_binary(why, cap);
    if (bin == NULL)
        return -1;
    memset(s, 0, sizeof *s);
    s->pid = -1;
    snprintf(s->dir, sizeof s->dir, "%s", data_dir);
    s->port = port ? port : tp_free_port();
    snprintf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%d", s->port);
    snprintf(s->env_endpoint, sizeof s->env_endpoint, "AWS_ENDPOINT_URL=%s", s->endpoint);
    char port_s[16], log[600];
    snprintf(port_s, sizeof port_s, "%d", s->port);
    snprintf(log, sizeof log, "%s.log", data_dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (fd >= 0 && in >= 0) {
            dup2(in, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "--address", "127.0.0.1", "--port", port_s, "--directory", data_dir,
              "--configure-bucket", "bkt", "--silent", (char *)NULL);
        _exit(127);
    }
    if (pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        return -1;
    }
    s->pid = pid;
    for (int waited = 0; waited < 60000; waited += 50) {
        if (accepts(s->port))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = -1;
            snprintf(why, cap, "s3rver exited at start (status %d); see %s", st, log);
            return -1;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    s3rv_kill(s);
    snprintf(why, cap, "s3rver did not listen within 60 s; see %s", log);
    return -1;
}

void s3rv_kill(s3rv *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = -1;
    }
}

void s3rv_setenv(const s3rv *s)
{
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_ENDPOINT_URL", s->endpoint, 1);
    unsetenv("AWS_SESSION_TOKEN");
}
