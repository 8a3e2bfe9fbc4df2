/* buf — growable byte buffer. A buf_t is a value (caller-provided storage):
 * buf_init / buf_deinit. data is always NUL-terminated past len so text can
 * be used as a C string. */
#ifndef PLACE_BUF_H
#define PLACE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
/* Number formatting without printf, for hot paths. buf_fmt_i64 writes v in
 * decimal at dst (at most 20 bytes, no NUL) and returns the end;
 * buf_fmt_milli writes v / 1000 with three decimals, as printf's "%.3f" of
 * v / 1000.0 would (at most 22 bytes). */
char *buf_fmt_i64(char *dst, int64_t v);
char *buf_fmt_milli(char *dst, int64_t v);
void buf_put_i64(buf_t *b, int64_t v);
/* Copies a string literal to the char pointer p and moves p past it. */
#define BUF_PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)
/* Gives the data (caller frees with free()) and leaves b empty. Never NULL. */
char *buf_steal(buf_t *b, size_t *len);

#endif
