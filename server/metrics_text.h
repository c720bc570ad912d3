/*
 * metrics_text.h — building a Prometheus text exposition (format 0.0.4): a
 * growable buffer and one call per metric family, so a module that adds
 * figures (backup shipping, memory budgets...) writes each in one line and
 * cannot forget its HELP and TYPE.
 */
#ifndef KVD_METRICS_TEXT_H
#define KVD_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct textbuf {
    char *data; /* malloc'ed; the caller frees it (or takes it) */
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete */
} textbuf;

void tb_printf(textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "# HELP NAME HELP" and "# TYPE NAME TYPE" (TYPE: counter, gauge, histogram). */
void tb_family(textbuf *t, const char *name, const char *type, const char *help);

/* A family with one unlabelled sample: an integer or a float value. */
void tb_metric_u64(textbuf *t, const char *name, const char *type, const char *help, uint64_t v);
void tb_metric_f64(textbuf *t, const char *name, const char *type, const char *help, double v);

/* Append S as a label value: '\\', '"' and newlines escaped. */
void tb_label_value(textbuf *t, const char *s);

#endif
