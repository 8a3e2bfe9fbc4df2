/* wsframe — frame-boundary tracker (see wsframe.h). */
#include "wsframe.h"

#include <string.h>

enum {
    PART_HDR0 = 0, /* FIN, RSV, opcode */
    PART_HDR1,     /* MASK, 7-bit length */
    PART_EXTLEN,   /* 2 or 8 bytes of length, big-endian */
    PART_MASK,     /* 4 bytes of masking key */
    PART_PAYLOAD,
};

void wsframe_init(wsframe_t *t)
{
    memset(t, 0, sizeof *t);
}

/* the length is known (in _left): the masking key or the payload follows */
static void length_done(wsframe_t *t)
{
    if (t->_masked) {
        t->_part = PART_MASK;
        t->_n = 4;
    } else {
        t->_part = t->_left ? PART_PAYLOAD : PART_HDR0;
    }
}

void wsframe_feed(wsframe_t *t, const uint8_t *p, size_t n)
{
    while (n) {
        switch (t->_part) {
        case PART_HDR0: {
            unsigned fin = p[0] >> 7, opcode = p[0] & 0x0f;
            /* control frames (opcode >= 8) leave the message state alone */
            if (opcode != 0 && opcode < 8 && !fin) t->_in_msg = true;
            else if (opcode == 0 && fin) t->_in_msg = false;
            t->_part = PART_HDR1;
            p++, n--;
            break;
        }
        case PART_HDR1: {
            unsigned len7 = p[0] & 0x7f;
            t->_masked = (p[0] & 0x80) != 0;
            p++, n--;
            t->_left = 0;
            if (len7 >= 126) {
                t->_part = PART_EXTLEN;
                t->_n = len7 == 126 ? 2 : 8;
            } else {
                t->_left = len7;
                length_done(t);
            }
            break;
        }
        case PART_EXTLEN:
            t->_left = t->_left << 8 | p[0];
            p++, n--;
            if (--t->_n == 0) length_done(t);
            break;
        case PART_MASK: {
            size_t k = n < t->_n ? n : t->_n;
            p += k, n -= k;
            t->_n = (uint8_t)(t->_n - k);
            if (t->_n == 0) t->_part = t->_left ? PART_PAYLOAD : PART_HDR0;
            break;
        }
        default: { /* PART_PAYLOAD: skipped in bulk */
            size_t k = (uint64_t)n < t->_left ? n : (size_t)t->_left;
            p += k, n -= k;
            t->_left -= k;
            if (t->_left == 0) t->_part = PART_HDR0;
            break;
        }
        }
    }
}

bool wsframe_idle(const wsframe_t *t)
{
    return t->_part == PART_HDR0 && !t->_in_msg;
}
