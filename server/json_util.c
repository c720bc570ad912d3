/*
 * json_util.c — helpers over Jansson: UTF-8 checks (Jansson strings must be
 * valid UTF-8, keys and values are arbitrary bytes) and body parsing.
 */
#include "json_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "json_cap.h"
#include "rcu_text.h"

json_t *json_bytes(const void *data, size_t len)
{
    if (rcu_utf8_valid(data, len))
        return json_stringn(data, len);
    char *b64 = rcu_base64_encode(data, len, sodium_base64_VARIANT_ORIGINAL);
    if (b64 == NULL)
        return NULL;
    json_t *o = json_object();
    if (o != NULL)
        json_object_set_new(o, "base64", json_string(b64));
    free(b64);
    return o;
}

const char *json_error_why(const json_error_t *err, const char *what)
{
    static _Thread_local char buf[JSON_ERROR_TEXT_LENGTH + 160];
    if (json_cap_refused(NULL))
        return "the body's JSON needs more memory than this request may hold (see "
               "budget_json_refused)";
    snprintf(buf, sizeof buf, "%s: %s (at byte %d)", what, err->text, err->position);
    return buf;
}

json_t *json_parse_object(const char *data, size_t len, const char **why)
{
    json_error_t err;
    if (data == NULL || len == 0) {
        *why = "the body is empty; a JSON object is expected";
        return NULL;
    }
    /* keys are any bytes, so "\u0000" inside a string is allowed */
    json_t *o = json_cap_load(data, len, JSON_ALLOW_NUL, &err);
    if (o == NULL) {
        *why = json_error_why(&err, "the body is not valid JSON");
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *why = "the body must be a JSON object";
        return NULL;
    }
    return o;
}

int json_get_int(const json_t *obj, const char *name, long long *out)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return -1;
    *out = json_integer_value(v);
    return 0;
}

bool json_unknown_field(const json_t *o, const char *const *known, size_t n, char *shown,
                        size_t cap)
{
    const char *field;
    json_t *v;
    json_object_foreach((json_t *)o, field, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(field, known[i]) == 0;
        if (ok)
            continue;
        size_t len = 0;
        for (; field[len] != '\0' && len + 1 < cap; len++)
            shown[len] = field[len] >= 0x20 && field[len] < 0x7f ? field[len] : '?';
        if (cap > 0)
            shown[len] = '\0';
        return true;
    }
    return false;
}
