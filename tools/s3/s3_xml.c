/*
 * s3_xml.c — element paths and texts from an S3 XML response, with expat.
 * Only the path of open elements and the current element's text are kept;
 * both are bounded, so a hostile response costs at most a few kilobytes.
 */
#include "s3_xml.h"

#include <expat.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define XML_DEPTH_MAX 16
#define XML_PATH_MAX 512
#define XML_TEXT_MAX 4096

typedef struct walk {
    XML_Parser p;
    rcs3_xml_fn fn;
    void *ctx;
    char path[XML_PATH_MAX];
    size_t path_len;
    size_t marks[XML_DEPTH_MAX + 1]; /* path length before each open element */
    unsigned depth;
    char text[XML_TEXT_MAX];
    size_t text_len;
    bool text_overflow;
    bool failed;
    char *root; /* rcs3_xml_root only */
    size_t root_cap;
} walk;

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    walk *w = ud;
    (void)attrs;
    if (w->root != NULL) {
        snprintf(w->root, w->root_cap, "%s", name);
        XML_StopParser(w->p, XML_FALSE);
        return;
    }
    size_t n = strlen(name);
    if (w->depth >= XML_DEPTH_MAX || w->path_len + n + 2 > sizeof w->path) {
        w->failed = true;
        XML_StopParser(w->p, XML_FALSE);
        return;
    }
    w->marks[w->depth++] = w->path_len;
    if (w->path_len > 0)
        w->path[w->path_len++] = '/';
    memcpy(w->path + w->path_len, name, n + 1);
    w->path_len += n;
    w->text_len = 0;
    w->text_overflow = false;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    walk *w = ud;
    (void)name;
    if (w->depth == 0)
        return;
    w->text[w->text_len] = '\0';
    w->fn(w->ctx, w->path, w->text_overflow ? NULL : w->text);
    w->path_len = w->marks[--w->depth];
    w->path[w->path_len] = '\0';
    w->text_len = 0;
    w->text_overflow = false;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    walk *w = ud;
    if (len <= 0 || w->text_overflow)
        return;
    if ((size_t)len >= sizeof w->text - w->text_len) {
        w->text_overflow = true;
        return;
    }
    memcpy(w->text + w->text_len, s, (size_t)len);
    w->text_len += (size_t)len;
}

static int run(walk *w, const char *xml, size_t len)
{
    if (len > INT_MAX)
        return -1;
    w->p = XML_ParserCreate("UTF-8");
    if (w->p == NULL)
        return -1;
    XML_SetUserData(w->p, w);
    XML_SetElementHandler(w->p, on_start, on_end);
    XML_SetCharacterDataHandler(w->p, on_text);
    enum XML_Status st = XML_Parse(w->p, xml, (int)len, XML_TRUE);
    bool ok = st == XML_STATUS_OK || (st == XML_STATUS_SUSPENDED) ||
              (st == XML_STATUS_ERROR && XML_GetErrorCode(w->p) == XML_ERROR_ABORTED && w->root);
    XML_ParserFree(w->p);
    return ok && !w->failed ? 0 : -1;
}

int rcs3_xml_walk(const char *xml, size_t len, rcs3_xml_fn fn, void *ctx)
{
    walk w;
    memset(&w, 0, sizeof w);
    w.fn = fn;
    w.ctx = ctx;
    return run(&w, xml, len);
}

static void ignore(void *ctx, const char *path, const char *text)
{
    (void)ctx, (void)path, (void)text;
}

void rcs3_xml_root(const char *xml, size_t len, char *out, size_t cap)
{
    walk w;
    memset(&w, 0, sizeof w);
    w.fn = ignore;
    w.root = out;
    w.root_cap = cap;
    if (cap > 0)
        out[0] = '\0';
    if (run(&w, xml, len) != 0 && cap > 0)
        out[0] = '\0';
}
