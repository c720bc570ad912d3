/*
 * manifest.c — build, print and check backup-chain manifests (Jansson).
 */
#include "manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define FORMAT_NAME "ringcask-backup-manifest"

bool rcm_db_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > RCM_DB_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

void rcm_full_name(char *out, size_t cap, const char *db, uint64_t until)
{
    snprintf(out, cap, "%s/full/%016" PRIx64 ".rcb", db, until);
}

void rcm_inc_name(char *out, size_t cap, const char *db, uint64_t since, uint64_t until)
{
    snprintf(out, cap, "%s/inc/%016" PRIx64 "-%016" PRIx64 ".rcb", db, since, until);
}

void rcm_manifest_name(char *out, size_t cap, const char *db, uint64_t until)
{
    snprintf(out, cap, "%s/manifest/%016" PRIx64 ".json", db, until);
}

/* 16 lowercase hex digits at S; returns 0 and *V or -1. */
static int hex16(const char *s, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 16; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            return -1;
        r = r << 4 | d;
    }
    *v = r;
    return 0;
}

/* Split "<db>/<rest>": copies db, returns rest or NULL. */
static const char *split_db(const char *rel, char *db)
{
    const char *slash = strchr(rel, '/');
    if (slash == NULL || slash == rel || (size_t)(slash - rel) > RCM_DB_ID_MAX)
        return NULL;
    memcpy(db, rel, (size_t)(slash - rel));
    db[slash - rel] = '\0';
    return rcm_db_id_valid(db) ? slash + 1 : NULL;
}

int rcm_parse_manifest_name(const char *rel, char *db, uint64_t *until)
{
    const char *rest = split_db(rel, db);
    if (rest == NULL || strncmp(rest, "manifest/", 9) != 0)
        return -1;
    rest += 9;
    if (strlen(rest) != 21 || strcmp(rest + 16, ".json") != 0)
        return -1;
    return hex16(rest, until);
}

int rcm_parse_object_name(const char *rel, char *db, uint64_t *until)
{
    const char *rest = split_db(rel, db);
    uint64_t since;
    if (rest == NULL)
        return -1;
    if (strncmp(rest, "full/", 5) == 0) {
        rest += 5;
        if (strlen(rest) != 20 || strcmp(rest + 16, ".rcb") != 0)
            return -1;
        return hex16(rest, until);
    }
    if (strncmp(rest, "inc/", 4) == 0) {
        rest += 4;
        if (strlen(rest) != 37 || rest[16] != '-' || strcmp(rest + 33, ".rcb") != 0)
            return -1;
        return hex16(rest, &since) == 0 && hex16(rest + 17, until) == 0 ? 0 : -1;
    }
    return -1;
}

int rcm_append(rcm_manifest *m, const rcm_object *obj)
{
    if (m->n >= RCM_CHAIN_MAX)
        return -1;
    rcm_object *nc = realloc(m->chain, (m->n + 1) * sizeof *nc);
    if (nc == NULL)
        return -1;
    m->chain = nc;
    m->chain[m->n++] = *obj;
    m->bytes += obj->size;
    m->until = obj->until;
    return 0;
}

void rcm_free(rcm_manifest *m)
{
    free(m->chain);
    memset(m, 0, sizeof *m);
}

void rcm_format_time(int64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", base, (int)(ms % 1000));
}

static int digits(const char **p, int n, int *v)
{
    int r = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return -1;
        r = r * 10 + (ch - '0');
    }
    *p += n;
    *v = r;
    return 0;
}

int rcm_parse_time(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, se;
    const char *p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    int frac_ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            n++, p++;
        }
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se > 59 ? 59 : se;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac_ms;
    return 0;
}

char *rcm_dump(const rcm_manifest *m)
{
    char when[40];
    rcm_format_time(m->time_ms, when, sizeof when);
    json_t *chain = json_array();
    json_t *o = json_pack("{s:s, s:i, s:s, s:I, s:s, s:I}", "format", FORMAT_NAME, "version", 1,
                          "database", m->database, "until", (json_int_t)m->until, "time", when,
                          "bytes", (json_int_t)m->bytes);
    if (chain == NULL || o == NULL) {
        json_decref(chain);
        json_decref(o);
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        const rcm_object *x = &m->chain[i];
        json_t *e =
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "name", x->name, "kind",
                      x->full ? "full" : "incremental", "since", (json_int_t)x->since, "until",
                      (json_int_t)x->until, "size", (json_int_t)x->size, "sha256", x->sha256);
        if (e == NULL || json_array_append_new(chain, e) != 0) {
            json_decref(chain);
            json_decref(o);
            return NULL;
        }
    }
    json_object_set_new(o, "chain", chain);
    char *text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

static int get_u64(json_t *o, const char *name, uint64_t *v)
{
    json_t *x = json_object_get(o, name);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return -1;
    *v = (uint64_t)json_integer_value(x);
    return 0;
}

static bool hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errcap, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

int rcm_parse(const char *text, size_t len, rcm_manifest *m, char *err, size_t errcap)
{
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        snprintf(err, errcap, "not JSON: %s (line %d)", je.text, je.line);
        return -1;
    }
    const char *fmt = json_string_value(json_object_get(o, "format"));
    const char *db = json_string_value(json_object_get(o, "database"));
    const char *when = json_string_value(json_object_get(o, "time"));
    json_t *chain = json_object_get(o, "chain");
    uint64_t version = 0, bytes = 0;
    if (fmt == NULL || strcmp(fmt, FORMAT_NAME) != 0)
        BAD("not a ringcask backup manifest");
    if (get_u64(o, "version", &version) != 0 || version != 1)
        BAD("unsupported manifest version");
    if (db == NULL || !rcm_db_id_valid(db))
        BAD("bad \"database\"");
    snprintf(m->database, sizeof m->database, "%s", db);
    uint64_t top_until = 0;
    if (get_u64(o, "until", &top_until) != 0)
        BAD("bad \"until\"");
    if (when == NULL || rcm_parse_time(when, &m->time_ms) != 0)
        BAD("bad \"time\"");
    if (get_u64(o, "bytes", &bytes) != 0)
        BAD("bad \"bytes\"");
    if (!json_is_array(chain) || json_array_size(chain) == 0 ||
        json_array_size(chain) > RCM_CHAIN_MAX)
        BAD("bad \"chain\"");
    uint64_t prev_until = 0;
    for (size_t i = 0; i < json_array_size(chain); i++) {
        json_t *e = json_array_get(chain, i);
        rcm_object x;
        memset(&x, 0, sizeof x);
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        const char *sha = json_string_value(json_object_get(e, "sha256"));
        if (!json_is_object(e) || name == NULL || kind == NULL || sha == NULL ||
            get_u64(e, "since", &x.since) || get_u64(e, "until", &x.until) ||
            get_u64(e, "size", &x.size) || !hex64(sha))
            BAD("chain entry %zu is incomplete", i);
        x.full = strcmp(kind, "full") == 0;
        if (!x.full && strcmp(kind, "incremental") != 0)
            BAD("chain entry %zu: unknown kind '%s'", i, kind);
        if ((i == 0) != x.full || (x.full && x.since != 0))
            BAD("the chain must start with its full backup, and only there");
        if (i > 0 && x.since != prev_until)
            BAD("chain entry %zu does not follow on (since %" PRIu64 ", expected %" PRIu64 ")", i,
                x.since, prev_until);
        if (x.until < x.since || (!x.full && x.until == x.since))
            BAD("chain entry %zu: until before since", i);
        if (x.full)
            rcm_full_name(x.name, sizeof x.name, db, x.until);
        else
            rcm_inc_name(x.name, sizeof x.name, db, x.since, x.until);
        if (strcmp(name, x.name) != 0)
            BAD("chain entry %zu: name '%s' is not '%s'", i, name, x.name);
        memcpy(x.sha256, sha, 65);
        prev_until = x.until;
        uint64_t keep_bytes = m->bytes;
        if (rcm_append(m, &x) != 0)
            BAD("out of memory");
        m->bytes = keep_bytes + x.size;
    }
    if (prev_until != top_until)
        BAD("the chain ends at %" PRIu64 ", the manifest says until %" PRIu64, prev_until,
            top_until);
    if (bytes != m->bytes)
        BAD("\"bytes\" is not the sum of the chain's sizes");
    m->until = prev_until;
    json_decref(o);
    return 0;
fail:
    json_decref(o);
    rcm_free(m);
    return -1;
}
