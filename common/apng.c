#include "apng.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const uint8_t SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

struct apng {
    uint8_t *data; /* checked realloc: a job-sized buffer must not abort */
    size_t len, cap;
    uint32_t width, height;
    uint32_t seq; /* next fcTL/fdAT sequence number */
    int frames, declared;
    int fps;
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int reserve(apng_t *a, size_t extra)
{
    if (extra <= a->cap - a->len) return 0;
    size_t cap = a->cap ? a->cap : 65536;
    while (cap - a->len < extra) {
        if (cap > SIZE_MAX / 2) return -ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(a->data, cap);
    if (!p) return -ENOMEM;
    a->data = p;
    a->cap = cap;
    return 0;
}

/* One chunk: length, type, [prefix (4 bytes, a sequence number) +] body, CRC. */
static int chunk(apng_t *a, const char type[4], const uint8_t *prefix4, const uint8_t *body,
                 size_t n)
{
    size_t plen = prefix4 ? 4 : 0;
    if (n + plen > 0x7fffffffu) return PX_EPROTO;
    int rc = reserve(a, 12 + plen + n);
    if (rc) return rc;
    uint8_t *p = a->data + a->len;
    wr32(p, (uint32_t)(n + plen));
    memcpy(p + 4, type, 4);
    if (plen) memcpy(p + 8, prefix4, 4);
    if (n) memcpy(p + 8 + plen, body, n);
    uLong crc = crc32(0L, p + 4, (uInt)(4 + plen));
    /* crc32 takes uInt lengths: feed large bodies in pieces */
    for (size_t off = 0; off < n;) {
        size_t k = n - off > 0x40000000u ? 0x40000000u : n - off;
        crc = crc32(crc, body + off, (uInt)k);
        off += k;
    }
    wr32(p + 8 + plen + n, (uint32_t)crc);
    a->len += 12 + plen + n;
    return 0;
}

static int fctl(apng_t *a)
{
    uint8_t b[26];
    wr32(b, a->seq++);
    wr32(b + 4, a->width);
    wr32(b + 8, a->height);
    wr32(b + 12, 0); /* x offset */
    wr32(b + 16, 0); /* y offset */
    b[20] = 0;       /* delay = 1 / fps s */
    b[21] = 1;
    b[22] = (uint8_t)(a->fps >> 8);
    b[23] = (uint8_t)a->fps;
    b[24] = 0; /* dispose NONE */
    b[25] = 0; /* blend SOURCE */
    return chunk(a, "fcTL", NULL, b, sizeof b);
}

int apng_begin(const uint8_t *png, size_t len, int frames, int fps, apng_t **out)
{
    *out = NULL;
    if (frames < 1 || fps < 1 || fps > 1000 || len < 8 + 25 || memcmp(png, SIG, 8) != 0)
        return PX_EPROTO;

    /* Walk the chunks once to check the layout before writing anything. */
    size_t pos = 8, first_idat = 0, end = 0;
    bool ihdr = false;
    while (pos + 12 <= len) {
        uint32_t n = rd32(png + pos);
        if (n > len - pos - 12) return PX_EPROTO;
        const uint8_t *type = png + pos + 4;
        if (!ihdr) {
            if (memcmp(type, "IHDR", 4) != 0 || n != 13) return PX_EPROTO;
            if (png[pos + 8 + 12] != 0) return PX_EPROTO; /* interlaced */
            ihdr = true;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            if (!first_idat)
                first_idat = pos;
            else if (end)
                return PX_EPROTO; /* IDATs must be consecutive */
        } else if (first_idat && !end) {
            if (memcmp(type, "IEND", 4) != 0) return PX_EPROTO;
            end = pos;
        } else if (memcmp(type, "acTL", 4) == 0 || memcmp(type, "fcTL", 4) == 0) {
            return PX_EPROTO; /* already animated */
        }
        pos += 12 + (size_t)n;
    }
    if (!first_idat || !end) return PX_EPROTO;

    apng_t *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->width = rd32(png + 16);
    a->height = rd32(png + 20);
    a->declared = frames;
    a->fps = fps;
    uint8_t actl[8];
    wr32(actl, (uint32_t)frames);
    wr32(actl + 4, 0); /* loop forever */
    int rc = reserve(a, len + 128);
    if (rc == 0) {
        memcpy(a->data, png, first_idat); /* signature, IHDR, PLTE, ... */
        a->len = first_idat;
        rc = chunk(a, "acTL", NULL, actl, sizeof actl);
    }
    if (rc == 0) rc = fctl(a);
    if (rc == 0) {
        memcpy(a->data + a->len, png + first_idat, end - first_idat); /* the IDATs as they are */
        a->len += end - first_idat;
        a->frames = 1;
        *out = a;
        return 0;
    }
    apng_free(a);
    return rc;
}

int apng_add_frame(apng_t *a, const uint8_t *zdata, size_t len)
{
    if (a->frames >= a->declared || !a->data) return PX_EPROTO;
    int rc = fctl(a);
    /* at least one fdAT, even for an empty stream */
    for (size_t off = 0; rc == 0;) {
        size_t k = len - off > APNG_MAX_CHUNK ? APNG_MAX_CHUNK : len - off;
        uint8_t s[4];
        wr32(s, a->seq++);
        rc = chunk(a, "fdAT", s, zdata + off, k);
        off += k;
        if (off >= len) break;
    }
    if (rc == 0) a->frames++;
    return rc;
}

int apng_frames(const apng_t *a)
{
    return a->frames;
}

size_t apng_size(const apng_t *a)
{
    return a->len;
}

int apng_finish(apng_t *a, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int rc = a->frames == a->declared && a->data ? chunk(a, "IEND", NULL, NULL, 0) : PX_EPROTO;
    if (rc == 0) {
        uint8_t *p = realloc(a->data, a->len);
        *out = p ? p : a->data;
        *len = a->len;
        a->data = NULL;
    } else {
        free(a->data);
        a->data = NULL;
    }
    a->len = a->cap = 0;
    return rc;
}

void apng_free(apng_t *a)
{
    if (!a) return;
    free(a->data);
    free(a);
}
