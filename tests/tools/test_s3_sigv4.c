/*
 * test_s3_sigv4.c — the object-store client signs requests exactly as AWS's
 * published Signature Version 4 examples for S3 say ("Examples: Signature
 * Calculations in AWS Signature Version 4", header-based auth: GET Object,
 * PUT Object, GET Bucket): the request the client sends (libcurl's SigV4
 * with the headers rcs3_prepare adds) is captured by a listener on 127.0.0.1
 * standing in for examplebucket.s3.amazonaws.com, and its Authorization
 * header is compared byte for byte. libcurl joins the three parts with ", "
 * where the AWS page writes ","; everything else is AWS's text.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "s3.h"

typedef struct listener {
    int fd;
    int port;
    char request[16384];
    pthread_t thread;
} listener;

static void *serve_one(void *arg)
{
    listener *l = arg;
    int c = accept(l->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    struct timeval tv = {10, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t n = 0;
    while (n < sizeof l->request - 1) {
        ssize_t got = recv(c, l->request + n, sizeof l->request - 1 - n, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
        l->request[n] = '\0';
        if (strstr(l->request, "\r\n\r\n"))
            break;
    }
    static const char answer[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    send(c, answer, sizeof answer - 1, MSG_NOSIGNAL);
    close(c);
    return NULL;
}

static void listen_once(listener *l)
{
    memset(l, 0, sizeof *l);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(l->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert_eq(bind(l->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l->fd, 1), 0);
    cr_assert_eq(getsockname(l->fd, (struct sockaddr *)&a, &al), 0);
    l->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&l->thread, NULL, serve_one, l), 0);
}

/* The value of header NAME in the captured request (static buffer). */
static const char *header(const listener *l, const char *name)
{
    static char value[1024];
    const char *p = l->request;
    size_t nl = strlen(name);
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(value, sizeof value, "%.*s", (int)len, v);
            return value;
        }
    }
    return NULL;
}

static rcs3 *example_client(void)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL");
    char err[256];
    rcs3 *c = rcs3_new("examplebucket", err, sizeof err);
    cr_assert(c, "%s", err);
    return c;
}

/* Send METHOD to http://examplebucket.s3.amazonaws.com/PATH (connected to
 * the listener), with BODY (may be NULL), and return the captured request. */
static void send_example(listener *l, const char *method, const char *path, const char *body,
                         const char *payload_hex, const char *const *extra)
{
    rcs3 *c = example_client();
    listen_once(l);
    CURL *h = curl_easy_init();
    cr_assert(h);
    char url[512], connect_to[128];
    snprintf(url, sizeof url, "http://examplebucket.s3.amazonaws.com%s", path);
    snprintf(connect_to, sizeof connect_to, "examplebucket.s3.amazonaws.com:80:127.0.0.1:%d",
             l->port);
    struct curl_slist *headers = NULL, *ct = curl_slist_append(NULL, connect_to);
    cr_assert_eq(rcs3_prepare(c, h, method, url, payload_hex, extra, &headers), 0);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode cc = curl_easy_perform(h);
    cr_assert_eq(cc, CURLE_OK, "%s", curl_easy_strerror(cc));
    pthread_join(l->thread, NULL);
    close(l->fd);
    curl_slist_free_all(headers);
    curl_slist_free_all(ct);
    curl_easy_cleanup(h);
    rcs3_free(c);
}

Test(s3_sigv4, aws_example_get_object)
{
    listener l;
    const char *extra[] = {"Range: bytes=0-9", "x-amz-date: 20130524T000000Z", NULL};
    send_example(&l, "GET", "/test.txt", NULL,
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", extra);
    cr_assert(strncmp(l.request, "GET /test.txt HTTP/1.1\r\n", 24) == 0, "%s", l.request);
    cr_assert_str_eq(header(&l, "Host"), "examplebucket.s3.amazonaws.com");
    cr_assert_str_eq(
        header(&l, "Authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "request:\n%s", l.request);
}

Test(s3_sigv4, aws_example_put_object_with_an_encoded_key)
{
    listener l;
    const char *extra[] = {"Date: Fri, 24 May 2013 00:00:00 GMT", "x-amz-date: 20130524T000000Z",
                           "x-amz-storage-class: REDUCED_REDUNDANCY", NULL};
    char path[64] = "/";
    rcs3_uri_encode(path + 1, sizeof path - 1, "test$file.text", false);
    cr_assert_str_eq(path, "/test%24file.text");
    send_example(&l, "PUT", path, "Welcome to Amazon S3.",
                 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", extra);
    cr_assert_str_eq(
        header(&l, "Authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        "request:\n%s", l.request);
}

Test(s3_sigv4, aws_example_list_objects_with_a_canonical_query)
{
    listener l;
    const char *extra[] = {"x-amz-date: 20130524T000000Z", NULL};
    send_example(&l, "GET", "/?max-keys=2&prefix=J", NULL,
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", extra);
    cr_assert_str_eq(
        header(&l, "Authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        "request:\n%s", l.request);
}

Test(s3_sigv4, session_token_is_sent_and_signed)
{
    listener l;
    rcs3_free(example_client()); /* sets the example's keys */
    setenv("AWS_SESSION_TOKEN", "TOKEN-XYZ", 1);
    char err[256];
    rcs3 *c = rcs3_new("examplebucket", err, sizeof err);
    cr_assert(c, "%s", err);
    listen_once(&l);
    CURL *h = curl_easy_init();
    char url[128], connect_to[128];
    snprintf(url, sizeof url, "http://examplebucket.s3.amazonaws.com/k");
    snprintf(connect_to, sizeof connect_to, "examplebucket.s3.amazonaws.com:80:127.0.0.1:%d",
             l.port);
    struct curl_slist *headers = NULL, *ct = curl_slist_append(NULL, connect_to);
    cr_assert_eq(rcs3_prepare(c, h, "GET", url,
                              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                              NULL, &headers),
                 0);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
    cr_assert_eq(curl_easy_perform(h), CURLE_OK);
    pthread_join(l.thread, NULL);
    close(l.fd);
    cr_assert_str_eq(header(&l, "x-amz-security-token"), "TOKEN-XYZ");
    cr_assert(strstr(header(&l, "Authorization"),
                     "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"),
              "%s", l.request);
    curl_slist_free_all(headers);
    curl_slist_free_all(ct);
    curl_easy_cleanup(h);
    rcs3_free(c);
    unsetenv("AWS_SESSION_TOKEN");
}

Test(s3_sigv4, urls_and_environment_are_checked)
{
    char *b, *p, err[256];
    cr_assert_eq(rcs3_parse_url("s3://my-bucket/a/b/", &b, &p, err, sizeof err), 0);
    cr_assert_str_eq(b, "my-bucket");
    cr_assert_str_eq(p, "a/b");
    free(b), free(p);
    cr_assert_eq(rcs3_parse_url("s3://bkt", &b, &p, err, sizeof err), 0);
    cr_assert_str_eq(p, "");
    free(b), free(p);
    cr_assert_eq(rcs3_parse_url("http://bkt/x", &b, &p, err, sizeof err), -1);
    cr_assert_eq(rcs3_parse_url("s3://b/x", &b, &p, err, sizeof err), -1);
    cr_assert_eq(rcs3_parse_url("s3://Upper/x", &b, &p, err, sizeof err), -1);
    cr_assert_eq(rcs3_parse_url("s3://bkt/a//b", &b, &p, err, sizeof err), -1);
    unsetenv("AWS_ACCESS_KEY_ID");
    cr_assert_null(rcs3_new("bkt", err, sizeof err));
    cr_assert(strstr(err, "AWS_ACCESS_KEY_ID"), "%s", err);
    setenv("AWS_ACCESS_KEY_ID", "x", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "y", 1);
    setenv("AWS_ENDPOINT_URL", "ftp://x", 1);
    cr_assert_null(rcs3_new("bkt", err, sizeof err));
    cr_assert(strstr(err, "AWS_ENDPOINT_URL"), "%s", err);
    unsetenv("AWS_ENDPOINT_URL");
}
