/*
 * cluster_repl.c — a follower's replication: pull the leader's backup
 * stream since our last seq, apply it with rc_load, repeat.
 *
 * GET LEADER/admin/backup?since=N&wait=PULL_WAIT with the admin token: a
 * long poll. The leader parks the pull (park.h, the change feed) until it
 * has something after N, so an idle group exchanges one empty answer per
 * PULL_WAIT per follower and a busy one ships every write committed while
 * the previous batch was applied in the next answer. The headers
 * X-Ringcask-Node and X-Ringcask-Applied tell the leader who pulls and what
 * it holds durably, which is how a sync-mode leader learns that its standby
 * has a write (the next pull after an apply, sent at once): one round trip
 * acknowledges every write the batch held. On a server that answers at
 * once anyway, an empty answer is followed by a short sleep. The body goes to an unnamed
 * temporary file in the data directory, then rc_load applies it: verified
 * whole first, atomic, records keeping their seqs, a no-op when repeated.
 *
 * Divergence: rc_load_check refuses a stream from another database or from
 * a history that forked from ours (RC_EIDENTITY: the leader changed and
 * wrote, or we led and wrote what nobody received), and the leader refuses
 * a since it cannot serve (409: below its tombstone horizon, or past its
 * last seq because we hold writes it never had). Either way the follower
 * re-clones: the full stream into DIR.reclone, marked complete, and then kvd
 * restarts itself on it (main.c swaps the directories and re-executes; one
 * log line says why).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cluster_int.h"
#include "policy.h"

#define PULL_WAIT "2s"
#define EMPTY_SLEEP_MS 20

typedef struct pull {
    int fd;
    uint64_t bytes;
    bool write_failed;
    long status;
    char code[64];                       /* the error code of a JSON error answer */
    char parent[RC_DATABASE_ID_LEN + 1]; /* X-Ringcask-Parent: the leader's a fork of it */
    uint64_t forked_at;                  /* X-Ringcask-Forked-At */
    cluster *c;                          /* a long poll: given up when ... */
    const char *leader;                  /* ... this is no longer the leader */
    bool abandoned;                      /* (and it was) */
} pull;

/* A long poll stops as soon as this node stops following LEADER (a new
 * leader was elected, or kvd stops), so that a pull parked on a frozen or
 * deposed leader does not keep the new one waiting for this follower. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    pull *p = ud;
    cluster *c = p->c;
    if (atomic_load(&c->stop) || (cluster_role)atomic_load(&c->role) != CLUSTER_FOLLOWER)
        return 1;
    char now[CLUSTER_URL_MAX];
    cluster_leader_url(c, now, sizeof now, NULL, 0);
    return strcmp(now, p->leader) != 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    pull *p = ud;
    size_t n = size * nitems;
    char line[128];
    if (n >= sizeof line)
        return n;
    memcpy(line, buf, n);
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "X-Ringcask-Parent: ", 19) == 0 &&
        strlen(line + 19) == RC_DATABASE_ID_LEN)
        snprintf(p->parent, sizeof p->parent, "%s", line + 19);
    else if (strncasecmp(line, "X-Ringcask-Forked-At: ", 22) == 0)
        p->forked_at = strtoull(line + 22, NULL, 10);
    return n;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    pull *p = ud;
    size_t n = size * nmemb, off = 0;
    while (off < n) {
        ssize_t w = write(p->fd, ptr + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            p->write_failed = true;
            return 0;
        }
        off += (size_t)w;
    }
    p->bytes += n;
    return n;
}

static int temp_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4096];
    snprintf(path, sizeof path, "%s/pull-XXXXXX.tmp", dir);
    fd = mkostemps(path, 4, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* GET the stream since SINCE from LEADER into a temporary file in DIR.
 * 0 with P->fd positioned at 0, or -1 (P->status / P->code say why). */
static int fetch(cluster *c, CURL *curl, const char *leader, const char *dir, uint64_t since,
                 bool wait, pull *p)
{
    memset(p, 0, sizeof *p);
    p->fd = temp_file(dir);
    if (p->fd < 0) {
        kvd_log(LOG_ERROR, "cluster: no temporary file in %s: %s", dir, strerror(errno));
        return -1;
    }
    char url[CLUSTER_URL_MAX + 96], auth[1100], node[CLUSTER_ID_MAX + 32], applied[64];
    char dbid[RC_DATABASE_ID_LEN + 1] = "", dbh[RC_DATABASE_ID_LEN + 32];
    rc_database_id(c->srv->db, dbid);
    snprintf(dbh, sizeof dbh, "X-Ringcask-Database: %s", dbid);
    snprintf(url, sizeof url, "%s/admin/backup?since=%" PRIu64 "%s", leader, since,
             wait ? "&wait=" PULL_WAIT : "");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->srv->admin_token);
    snprintf(node, sizeof node, "X-Ringcask-Node: %s", c->cfg.node_id);
    snprintf(applied, sizeof applied, "X-Ringcask-Applied: %" PRIu64, atomic_load(&c->applied));
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, node);
    h = curl_slist_append(h, applied);
    h = curl_slist_append(h, dbh);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 10L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (wait) {
        p->c = c;
        p->leader = leader;
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    /* the connection is kept between pulls: no HTTP thread of the leader
     * ever blocks (a write waiting for this very pull's confirmation is
     * parked, not holding its thread), so a kept-alive pull is always
     * served */
    CURLcode cc = curl_easy_perform(curl);
    curl_slist_free_all(h);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p->status);
    p->abandoned = cc == CURLE_ABORTED_BY_CALLBACK;
    if (cc != CURLE_OK || p->write_failed) {
        kvd_log(LOG_DEBUG, "cluster: pull from %s: %s", leader,
                p->write_failed ? "cannot write the temporary file" : curl_easy_strerror(cc));
        p->status = 0;
        return -1;
    }
    if (lseek(p->fd, 0, SEEK_SET) != 0)
        return -1;
    if (p->status != 200) {
        char buf[512];
        ssize_t n = read(p->fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        const char *e = strstr(buf, "\"error\":\"");
        if (e != NULL)
            sscanf(e + 9, "%63[^\"]", p->code);
        return -1;
    }
    return 0;
}

static long read_fd(void *ctx, void *buf, size_t len)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        return (long)n;
    }
}

static int stream_header(int fd, rc_stream_header *h)
{
    unsigned char buf[RC_STREAM_HEADER_MAX];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n <= 0)
        return -1;
    return rc_stream_header_parse(buf, (size_t)n, h) == 0 ? 0 : -1;
}

int cluster_clone_into(cluster *c, rc_db *db, const char *leader)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return -1;
    pull p;
    int rc = -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", c->srv->cfg.dir);
    if (fetch(c, curl, leader, dir, 0, false, &p) == 0) {
        rc_backup_info info;
        int lrc = rc_load(db, read_fd, &p.fd, NULL, NULL, &info);
        if (lrc == 0)
            rc = 0;
        else
            kvd_log(LOG_ERROR, "cluster: loading the clone from %s: %s: %s", leader,
                    rc_strerror(lrc), rc_last_error_message());
    } else {
        kvd_log(LOG_WARN, "cluster: cloning from %s: HTTP %ld %s", leader, p.status, p.code);
    }
    if (p.fd >= 0)
        close(p.fd);
    curl_easy_cleanup(curl);
    return rc;
}

/* Clone into DIR.reclone, mark it complete, and ask main to restart on it. */
static void reclone(cluster *c, const char *leader, const char *why)
{
    char staging[4096], marker[4200];
    snprintf(staging, sizeof staging, "%s.reclone", c->srv->cfg.dir);
    snprintf(marker, sizeof marker, "%s/RECLONED", staging);
    cluster_dir_remove(staging);
    rc_db *db = NULL;
    int rc = rc_open(staging, &c->srv->cfg.engine, &db);
    if (rc != 0) {
        kvd_log(LOG_ERROR, "cluster: cannot create %s to re-clone: %s", staging, rc_strerror(rc));
        sleep_ms(1000);
        return;
    }
    int crc = cluster_clone_into(c, db, leader);
    rc = rc_close(db);
    char dwhy[300];
    if (crc != 0 || rc != 0 || cluster_dir_claim(staging, c->cfg.group, dwhy, sizeof dwhy) != 0) {
        cluster_dir_remove(staging);
        sleep_ms(1000);
        return;
    }
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0)
            close(fd);
        cluster_dir_remove(staging);
        sleep_ms(1000);
        return;
    }
    close(fd);
    kvd_log(LOG_WARN,
            "cluster: re-cloned from the leader %s because %s; restarting on the "
            "clone",
            leader, why);
    atomic_store(&c->reclone, true);
    kill(getpid(), SIGUSR1); /* main's sigwait: swap the directories, re-execute */
}

/* One pull and apply. Returns the milliseconds to sleep before the next. */
static unsigned pull_once(cluster *c, CURL *curl)
{
    char leader[CLUSTER_URL_MAX];
    cluster_leader_url(c, leader, sizeof leader, NULL, 0);
    if ((cluster_role)atomic_load(&c->role) != CLUSTER_FOLLOWER || leader[0] == '\0')
        return 100;
    kvd *srv = c->srv;
    uint64_t since = cluster_last_seq(srv);
    pull p;
    /* a long poll: a parked pull resumes on the HTTP thread that accepted
     * it, which is free (the acknowledgement wait of a sync write parks
     * too) */
    int rc = fetch(c, curl, leader, srv->cfg.dir, since, true, &p);
    unsigned pause = 0;
    if (rc != 0) {
        if (p.status == 409) {
            char why[128];
            snprintf(why, sizeof why, "the leader cannot send what follows seq %" PRIu64 " (%s)",
                     since, p.code);
            reclone(c, leader, why);
        } else if (p.status == 401 || p.status == 403) {
            kvd_log(LOG_ERROR,
                    "cluster: the leader %s refuses our admin token (HTTP %ld): every "
                    "member needs the same --admin-token-file",
                    leader, p.status);
            pause = 2000;
        } else if (!p.abandoned) {
            pause = 200; /* the leader is unreachable: no busy loop */
        }
        goto out;
    }
    rc_stream_header h;
    if (stream_header(p.fd, &h) != 0) {
        pause = 200;
        goto out;
    }
    int chk = rc_load_check(srv->db, &h);
    if (chk == RC_EIDENTITY && p.parent[0] != '\0') {
        /* a new leader that wrote: its history is ours up to its fork */
        pthread_mutex_lock(&c->apply_mu);
        int frc = rc_follow_fork(srv->db, h.database, p.parent, p.forked_at);
        pthread_mutex_unlock(&c->apply_mu);
        if (frc == 0) {
            kvd_log(LOG_INFO,
                    "cluster: following the leader's history %s (a fork of %s at seq "
                    "%" PRIu64 ")",
                    h.database, p.parent, p.forked_at);
            chk = rc_load_check(srv->db, &h);
        }
    }
    if (chk == RC_EIDENTITY || chk == RC_EGAP) {
        char why[300];
        snprintf(why, sizeof why, "our history diverged from the leader's (%s)",
                 rc_last_error_message());
        reclone(c, leader, why);
        goto out;
    }
    if (h.until <= since) {
        if (h.until > atomic_load(&c->applied) || since > atomic_load(&c->applied)) {
            atomic_store(&c->applied, since > h.until ? since : h.until);
            cluster_elect_wake(c, WAKE_LOCAL); /* publish it */
        }
        pause = EMPTY_SLEEP_MS;
        goto out;
    }
    pthread_mutex_lock(&c->apply_mu);
    if ((cluster_role)atomic_load(&c->role) == CLUSTER_FOLLOWER) {
        rc_backup_info info;
        int lrc = rc_load(srv->db, read_fd, &p.fd, NULL, NULL, &info);
        if (lrc == 0) {
            atomic_store(&c->applied, info.until);
            cluster_elect_wake(c, WAKE_LOCAL); /* publish it */
            /* watchers are woken by the engine's commit listener */
            policy_cache_clear(srv);
        } else if (lrc == RC_EIDENTITY || lrc == RC_EGAP) {
            pthread_mutex_unlock(&c->apply_mu);
            reclone(c, leader, rc_last_error_message());
            goto out;
        } else {
            kvd_log(LOG_WARN, "cluster: applying the stream from %s: %s: %s", leader,
                    rc_strerror(lrc), rc_last_error_message());
            pause = 500;
        }
    }
    pthread_mutex_unlock(&c->apply_mu);
out:
    if (p.fd >= 0)
        close(p.fd);
    return pause;
}

void *cluster_pull_main(void *arg)
{
    cluster *c = arg;
    CURL *curl = curl_easy_init();
    while (curl != NULL && !atomic_load(&c->stop) && !atomic_load(&c->reclone)) {
        unsigned pause = pull_once(c, curl);
        for (unsigned slept = 0; slept < pause && !atomic_load(&c->stop); slept += 20)
            sleep_ms(pause - slept < 20 ? pause - slept : 20);
    }
    curl_easy_cleanup(curl);
    return NULL;
}
