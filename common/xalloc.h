/* x — allocation wrappers that abort with file:line on failure (Redis zmalloc).
 * Every client-driven size is capped elsewhere, so OOM here is a bug or a
 * genuinely exhausted machine. */
#ifndef PLACE_XALLOC_H
#define PLACE_XALLOC_H

#include <stddef.h>

#define xmalloc(n) x__malloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) x__calloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) x__realloc((p), (n), __FILE__, __LINE__)
#define xreallocarray(p, n, s) x__reallocarray((p), (n), (s), __FILE__, __LINE__)
#define xstrdup(s) x__strdup((s), __FILE__, __LINE__)
#define xstrndup(s, n) x__strndup((s), (n), __FILE__, __LINE__)

void *x__malloc(size_t n, const char *file, int line);
void *x__calloc(size_t n, size_t size, const char *file, int line);
void *x__realloc(void *p, size_t n, const char *file, int line);
void *x__reallocarray(void *p, size_t n, size_t size, const char *file, int line);
char *x__strdup(const char *s, const char *file, int line);
char *x__strndup(const char *s, size_t n, const char *file, int line);

#endif
