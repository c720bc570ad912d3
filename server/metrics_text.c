/*
 * metrics_text.c — see metrics_text.h.
 */
#include "metrics_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void tb_printf(textbuf *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 8192;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *nd = realloc(t->data, cap);
        if (nd == NULL) {
            t->failed = true;
            return;
        }
        t->data = nd;
        t->cap = cap;
    }
}

void tb_family(textbuf *t, const char *name, const char *type, const char *help)
{
    tb_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tb_metric_u64(textbuf *t, const char *name, const char *type, const char *help, uint64_t v)
{
    tb_family(t, name, type, help);
    tb_printf(t, "%s %" PRIu64 "\n", name, v);
}

void tb_metric_f64(textbuf *t, const char *name, const char *type, const char *help, double v)
{
    tb_family(t, name, type, help);
    tb_printf(t, "%s %.6f\n", name, v);
}

void tb_label_value(textbuf *t, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '\\')
            tb_printf(t, "\\\\");
        else if (*s == '"')
            tb_printf(t, "\\\"");
        else if (*s == '\n')
            tb_printf(t, "\\n");
        else
            tb_printf(t, "%c", *s);
    }
}
