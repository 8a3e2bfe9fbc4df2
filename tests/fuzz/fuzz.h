/* fuzz.h — what the libFuzzer targets share (tests/fuzz/README.md). */
#ifndef PLACE_FUZZ_H
#define PLACE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed invariant: print it and abort, which libFuzzer reports as a
 * crash with the input that caused it. */
#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Splits data at NUL bytes into at most max fields, each copied into one
 * NUL-terminated buffer (buf: out, size + 1 bytes); field[i] points into it,
 * len[i] is its length. Returns the number of fields (>= 1). */
static inline size_t fuzz_split(const uint8_t *data, size_t size, char *buf, const char **field,
                                size_t *len, size_t max)
{
    memcpy(buf, data, size);
    buf[size] = '\0';
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < max; i++) {
        if (i == size || buf[i] == '\0') {
            field[n] = buf + start;
            len[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

#endif
