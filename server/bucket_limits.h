/*
 * bucket_limits.h — who may create buckets (POST /), and how many.
 *
 * With --admin-token-file, creating a bucket needs that token (401). Without
 * it, creating a bucket without credentials is off unless kvd runs with
 * --allow-anonymous-buckets (403 saying so). Anyone without the server's
 * admin token may create at most
 * --bucket-create-rate buckets a minute from one address (429 with
 * Retry-After), and nobody more than --max-buckets in all (403).
 */
#ifndef KVD_BUCKET_LIMITS_H
#define KVD_BUCKET_LIMITS_H

#include <stdbool.h>

#include "http.h"

int bucket_limits_init(kvd *srv);
void bucket_limits_free(kvd *srv);

/* At header time of POST /: credentials, anonymous creation and the rate.
 * false: answered. */
bool bucket_create_admitted(kvd_request *req);

/* Before creating: the total cap. false: answered. */
bool bucket_cap_ok(kvd_request *req);

#endif
