/*
 * test_kvd_metrics.c — /metrics as Prometheus and an operator meet it: the
 * exposition passes `promtool check metrics`; ringcask_build_info and the
 * standard process_* figures are there with plausible values;
 * --metrics-token-file closes /metrics to everyone but that token and the
 * admin token; /metrics?bucket=NAME shows one bucket's figures to its own
 * admin key and to nobody else's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvdtest.h"
#include "ringcask.h"

static char tokdir[64], tokfile[128];
static const char METRICS_TOKEN[] = "metrics-token-0123456789";
static const char ADMIN_TOKEN[] = "admin-token-0123456789ab";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* kvd with --metrics-token-file and --admin-token-file, bucket t made with the admin token. */
static void start_with_tokens(void)
{
    snprintf(tokdir, sizeof tokdir, "/tmp/kvdtest.XXXXXX");
    cr_assert(mkdtemp(tokdir) != NULL);
    char admin[128];
    snprintf(tokfile, sizeof tokfile, "%s/metrics-token", tokdir);
    snprintf(admin, sizeof admin, "%s/admin-token", tokdir);
    write_file(tokfile, METRICS_TOKEN);
    write_file(admin, ADMIN_TOKEN);
    const char *extra[] = {"--metrics-token-file", tokfile, "--admin-token-file", admin, NULL};
    cr_assert(kvd_start(&K, NULL, extra));
    const char *body = "{\"name\":\"t\"}";
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", ADMIN_TOKEN);
    const char *hdrs[] = {auth, NULL};
    resp r = http(&K, "POST", "/", body, strlen(body), hdrs);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *j = resp_json(&r);
    snprintf(B, sizeof B, "%s", json_string_value(json_object_get(j, "bucket")));
    snprintf(AK, sizeof AK, "%s", json_string_value(json_object_get(j, "admin_key")));
    json_decref(j);
    resp_free(&r);
    cr_assert(AK[0] != '\0', "no admin_key in the bucket creation answer");
}

static void teardown_tokens(void)
{
    kvd_teardown();
    if (tokdir[0] != '\0') {
        unlink(tokfile);
        char admin[128];
        snprintf(admin, sizeof admin, "%s/admin-token", tokdir);
        unlink(admin);
        rmdir(tokdir);
        tokdir[0] = '\0';
    }
}

/* The value of the sample line that starts with SERIES (name plus labels, or
 * a name alone), or -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

/* Run promtool check metrics on TEXT: 0 passes, 77 promtool absent, else its output. */
static int promtool_check(const char *text, char *out, size_t cap)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        return 77;
    char in[] = "/tmp/kvdtest.promXXXXXX";
    int fd = mkstemp(in);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", in);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    unlink(in);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(metrics, exposition_passes_promtool_and_has_build_and_process_figures, .init = kvd_setup,
     .fini = kvd_teardown)
{
    resp r = call("PUT", "/t/k", "hello");
    EXPECT(r, 201);
    resp_free(&r);
    r = http_get(&K, "/metrics");
    EXPECT(r, 200);
    /* the existing names keep working */
    cr_expect_eq(sample(r.body, "kvd_keys_stored"), 1);
    cr_expect_eq(sample(r.body, "kvd_value_bytes_stored"), 5);
    cr_expect_eq(sample(r.body, "kvd_operations_total{op=\"set\"}"), 1);
    cr_expect_geq(sample(r.body, "ringcask_segments"), 1);
    /* build info: value 1, the library's version among its labels */
    char series[64];
    snprintf(series, sizeof series, "ringcask_build_info{version=\"%d.%d.%d\"", RC_VERSION_MAJOR,
             RC_VERSION_MINOR, RC_VERSION_PATCH);
    const char *bi = strstr(r.body, series);
    cr_assert(bi != NULL, "no %s in\n%s", series, r.body);
    const char *eol = strchr(bi, '\n');
    cr_assert(eol != NULL && eol - bi > 3 && strncmp(eol - 3, "} 1", 3) == 0, "build_info: %.*s",
              (int)(eol ? eol - bi : 80), bi);
    cr_expect(strstr(bi, "build_type=\"") != NULL && strstr(bi, "compiler=\"") != NULL);
    /* process_*: plausible values, not placeholders */
    double now = (double)time(NULL);
    double start = sample(r.body, "process_start_time_seconds");
    cr_expect(start > now - 3600 && start <= now + 2, "start time %f, now %f", start, now);
    cr_expect_geq(sample(r.body, "process_cpu_seconds_total"), 0);
    cr_expect_gt(sample(r.body, "process_resident_memory_bytes"), 1 << 20);
    cr_expect_gt(sample(r.body, "process_virtual_memory_bytes"),
                 sample(r.body, "process_resident_memory_bytes"));
    double fds = sample(r.body, "process_open_fds"), max = sample(r.body, "process_max_fds");
    cr_expect(fds >= 4 && fds < 10000, "open fds %f", fds); /* std streams, listener, segments */
    cr_expect(max >= fds, "max fds %f < open %f", max, fds);
    char out[8192];
    int rc = promtool_check(r.body, out, sizeof out);
    if (rc == 77) {
        resp_free(&r);
        cr_skip_test("promtool is not installed (Debian package prometheus): the exposition was "
                     "not linted; the figures above were checked");
    }
    cr_expect_eq(rc, 0, "promtool check metrics failed:\n%s", out);
    resp_free(&r);
}

Test(metrics, bucket_view_passes_promtool, .init = kvd_setup, .fini = kvd_teardown)
{
    resp r = call("GET", "/metrics?bucket=t", NULL);
    EXPECT(r, 200);
    char out[8192];
    int rc = promtool_check(r.body, out, sizeof out);
    if (rc == 77) {
        resp_free(&r);
        cr_skip_test("promtool is not installed (Debian package prometheus)");
    }
    cr_expect_eq(rc, 0, "promtool check metrics failed:\n%s\n%s", out, r.body);
    resp_free(&r);
}

/* Without --metrics-token-file /metrics stays open (kv metrics relies on it). */
Test(metrics, open_without_a_metrics_token, .init = kvd_setup, .fini = kvd_teardown)
{
    resp r = call_as("", "GET", "/metrics?format=json", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    /* but a bucket's figures are its admin's */
    r = call_as("", "GET", "/metrics?bucket=t", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
}

Test(metrics, metrics_token_closes_the_server_view, .init = start_with_tokens,
     .fini = teardown_tokens)
{
    resp r = call_as("", "GET", "/metrics", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    r = call_as("not-the-metrics-token-at-all", "GET", "/metrics", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "invalid_credentials");
    resp_free(&r);
    r = call_as(AK, "GET", "/metrics", NULL, NULL, NULL); /* a bucket admin key is not enough */
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(METRICS_TOKEN, "GET", "/metrics", NULL, NULL, NULL);
    EXPECT(r, 200);
    cr_expect(strstr(r.body, "kvd_keys_stored") != NULL);
    resp_free(&r);
    r = call_as(ADMIN_TOKEN, "GET", "/metrics?format=json", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    /* ?access_token= works too, as everywhere */
    char path[128];
    snprintf(path, sizeof path, "/metrics?access_token=%s", METRICS_TOKEN);
    r = call_as("", "GET", path, NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

Test(metrics, bucket_figures_for_its_admin_only, .init = start_with_tokens, .fini = teardown_tokens)
{
    /* bucket u, with its own admin key and a little data of its own */
    char auth[128], u[96], uk[96];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", ADMIN_TOKEN);
    const char *hdrs[] = {auth, NULL};
    const char *ubody = "{\"name\":\"u\"}";
    resp r = http(&K, "POST", "/", ubody, strlen(ubody), hdrs);
    EXPECT(r, 201);
    json_t *j = resp_json(&r);
    snprintf(u, sizeof u, "%s", json_string_value(json_object_get(j, "bucket")));
    snprintf(uk, sizeof uk, "%s", json_string_value(json_object_get(j, "admin_key")));
    json_decref(j);
    resp_free(&r);
    r = call_as(uk, "PUT", "/u/x", "0123456789", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);

    r = call("PUT", "/t/k1", "hello");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PUT", "/t/k2", "abc");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/k1", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call("GET", "/t/nothere", NULL);
    EXPECT(r, 404);
    resp_free(&r);

    r = call("GET", "/metrics?bucket=t", NULL);
    EXPECT(r, 200);
    cr_expect_eq(sample(r.body, "kvd_bucket_keys_stored{bucket=\"t\"}"), 2, "%s", r.body);
    cr_expect_eq(sample(r.body, "kvd_bucket_value_bytes_stored{bucket=\"t\"}"), 8);
    cr_expect_eq(sample(r.body, "kvd_bucket_received_bytes_total{bucket=\"t\"}"), 8);
    cr_expect_geq(sample(r.body, "kvd_bucket_sent_bytes_total{bucket=\"t\"}"), 5);
    cr_expect_eq(sample(r.body, "kvd_bucket_http_responses_total{bucket=\"t\",class=\"2xx\"}"), 3);
    cr_expect_eq(sample(r.body, "kvd_bucket_http_responses_total{bucket=\"t\",class=\"4xx\"}"), 1);
    cr_expect(strstr(r.body, "bucket=\"u\"") == NULL, "bucket u's figures leak into t's view");
    cr_expect(strstr(r.body, "kvd_keys_stored ") == NULL, "server totals in a bucket view");
    resp_free(&r);

    r = call("GET", "/metrics?bucket=t&format=json", NULL);
    EXPECT(r, 200);
    j = resp_json(&r);
    cr_assert(j != NULL, "%s", r.body);
    cr_expect_str_eq(json_string_value(json_object_get(j, "bucket")), "t");
    cr_expect_eq(json_integer_value(json_object_get(j, "keys")), 2);
    cr_expect_eq(json_integer_value(json_object_get(j, "bytes")), 8);
    json_decref(j);
    resp_free(&r);

    /* u's admin key cannot read t's figures, nor can a read-only token of t */
    r = call_as(uk, "GET", "/metrics?bucket=t", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    char tok[512];
    cr_assert(make_token(&K, "t", AK, "{\"permissions\": [\"read\"]}", tok, sizeof tok));
    r = call_as(tok, "GET", "/metrics?bucket=t", NULL, NULL, NULL);
    EXPECT_ERR(r, 403, "forbidden");
    resp_free(&r);
    r = call_as("", "GET", "/metrics?bucket=t", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    /* the operator's tokens read any bucket's view */
    r = call_as(METRICS_TOKEN, "GET", "/metrics?bucket=u", NULL, NULL, NULL);
    EXPECT(r, 200);
    cr_expect_eq(sample(r.body, "kvd_bucket_keys_stored{bucket=\"u\"}"), 1);
    resp_free(&r);
    r = call_as(ADMIN_TOKEN, "GET", "/metrics?bucket=nosuch", NULL, NULL, NULL);
    EXPECT_ERR(r, 404, "no_such_bucket");
    resp_free(&r);
    r = call_as(ADMIN_TOKEN, "GET", "/metrics?bucket=bad%20name", NULL, NULL, NULL);
    EXPECT_ERR(r, 404, "no_such_bucket");
    resp_free(&r);

    /* a deleted and re-created bucket starts from zero */
    r = call_as(uk, "DELETE", "/u", NULL, NULL, NULL);
    EXPECT(r, 204);
    resp_free(&r);
    r = http(&K, "POST", "/", ubody, strlen(ubody), hdrs);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(METRICS_TOKEN, "GET", "/metrics?bucket=u", NULL, NULL, NULL);
    EXPECT(r, 200);
    cr_expect_eq(sample(r.body, "kvd_bucket_keys_stored{bucket=\"u\"}"), 0);
    cr_expect_eq(sample(r.body, "kvd_bucket_received_bytes_total{bucket=\"u\"}"), 0, "%s", r.body);
    resp_free(&r);
}
