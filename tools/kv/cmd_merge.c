/*
 * cmd_merge.c — kv merge: make the running kvd merge now (POST /admin/merge,
 * kvd's admin token as --key) and print what it reclaimed.
 *
 * kvd answers once the merge is done. In a replica group only the leader
 * merges on request: a follower answers 503 not_leader naming the leader,
 * and kv repeats the request there once, so any member's URL will do.
 */
#include "kv.h"

#include <stdio.h>
#include <string.h>

static const char merge_about[] =
    "Merge the running kvd's data now: rewrite every segment holding dead data\n"
    "(overwritten or deleted values, old tombstones) and print what was\n"
    "reclaimed, once the merge is done. Needs kvd's admin token\n"
    "(--admin-token-file) as --key. In a replica group the leader merges (kv\n"
    "finds it). Exit 6 when a merge asked for earlier is still running.\n";

static long long field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* 503 not_leader from a follower: its "leader" URL into OUT. */
static bool follower_answer(kv_ctx *ctx, char *out, size_t cap)
{
    if (ctx->status != 503)
        return false;
    json_t *o = json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, 0, NULL);
    const char *code = json_string_value(json_object_get(o, "error"));
    const char *leader = json_string_value(json_object_get(o, "leader"));
    bool ok = code && strcmp(code, "not_leader") == 0 && leader && strlen(leader) < cap;
    if (ok)
        snprintf(out, cap, "%s", leader);
    json_decref(o);
    return ok;
}

int kv_cmd_merge(kv_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    const rcu_opt opts[] = {KV_JSON_OPT(json), {0}};
    int rc = kv_parse_options(ctx, &argc, argv, opts, "[--json]", merge_about);
    if (rc >= 0)
        return rc;
    if (argc > 1)
        return kv_usage_error(ctx, "unexpected argument '%s'", argv[1]);
    if ((rc = kv_http(ctx, "POST", "/admin/merge", "", 0, NULL)) != 0)
        return rc;
    char leader[512];
    if (follower_answer(ctx, leader, sizeof leader)) {
        ctx->nurls = 0; /* the leader alone from here */
        ctx->url = leader;
        if ((rc = kv_http(ctx, "POST", "/admin/merge", "", 0, NULL)) != 0)
            return rc;
    }
    if (ctx->status == 403 && !ctx->key)
        return kv_fail(ctx, KV_EXIT_AUTH,
                       "cannot merge: kvd at %s has no admin token (--admin-token-file)", ctx->url);
    if (ctx->status == 409)
        return kv_fail(ctx, KV_EXIT_REFUSED,
                       "kvd at %s is already running a merge asked for earlier", ctx->url);
    if (ctx->status < 200 || ctx->status > 299)
        return kv_http_error(ctx, "merge", NULL);
    if (json)
        return kv_print_body_json(ctx);
    json_t *o = kv_json_body(ctx, "merge");
    if (!o)
        return KV_EXIT_SERVER;
    printf("reclaimed %lld bytes (read %lld, wrote %lld), segments %lld -> %lld, tombstone "
           "horizon %lld, %lld ms\n",
           field(o, "bytes_reclaimed"), field(o, "bytes_read"), field(o, "bytes_written"),
           field(o, "segments_before"), field(o, "segments_after"), field(o, "tombstone_horizon"),
           field(o, "duration_ms"));
    json_decref(o);
    return kv_finish_stdout(ctx);
}
