#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *x__malloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *x__calloc(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size, file, line);
    return p;
}

void *x__realloc(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

void *x__reallocarray(void *p, size_t n, size_t size, const char *file, int line)
{
    if (size && n > ((size_t)-1) / size) oom((size_t)-1, file, line);
    return x__realloc(p, n * size, file, line);
}

char *x__strdup(const char *s, const char *file, int line)
{
    size_t n = strlen(s);
    char *d = x__malloc(n + 1, file, line);
    memcpy(d, s, n + 1);
    return d;
}

char *x__strndup(const char *s, size_t n, const char *file, int line)
{
    size_t len = strnlen(s, n);
    char *d = x__malloc(len + 1, file, line);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}
