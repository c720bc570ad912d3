/*
 * s3_xml.h — the few facts the S3 client needs from an XML response, read
 * with expat: every element's text is handed to a callback with the element's
 * path ("ListBucketResult/Contents/Key").
 */
#ifndef RC_TOOLS_S3_XML_H
#define RC_TOOLS_S3_XML_H

#include <stddef.h>

/* TEXT is the element's own character data (NUL-terminated, at most 4095
 * bytes kept; longer text sets it to NULL). PATH joins the open elements
 * (namespace prefixes are not expected: S3 uses a default namespace). */
typedef void (*rcs3_xml_fn)(void *ctx, const char *path, const char *text);

/* Returns 0, or -1 when XML is malformed or nested deeper than 16 levels. */
int rcs3_xml_walk(const char *xml, size_t len, rcs3_xml_fn fn, void *ctx);

/* The name of the root element (into OUT, truncated to CAP), or "" when the
 * document is malformed. */
void rcs3_xml_root(const char *xml, size_t len, char *out, size_t cap);

#endif
