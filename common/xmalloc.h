/* xmalloc.h: allocation that aborts on failure (STYLE.md: OOM is not an error path). */
#ifndef CREDITD_XMALLOC_H
#define CREDITD_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
/* Grow the byte buffer *buf (capacity *cap) to hold at least need bytes,
 * doubling from first (or from *cap); no change when it already does. */
void xreserve(char **buf, size_t *cap, size_t need, size_t first);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
