/* buf — growable byte buffer. A buf_t is a value (caller-provided storage):
 * buf_init / buf_deinit. data is always NUL-terminated past len so text can
 * be used as a C string. */
#ifndef PLACE_BUF_H
#define PLACE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
} buf_t;

void buf_init(buf_t *b);
void buf_deinit(buf_t *b);
void buf_reset(buf_t *b); /* len = 0, keeps the memory */
void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *data, size_t n);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Gives the data (caller frees with free()) and leaves b empty. Never NULL. */
char *buf_steal(buf_t *b, size_t *len);

#endif
