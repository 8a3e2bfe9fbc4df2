/* wsframe — where a WebSocket byte stream stands with respect to frame
 * boundaries (RFC 6455 section 5.2), without parsing or keeping anything of
 * the payload. It follows the 2-byte header, the 16- or 64-bit extended
 * length, the 4-byte masking key (when the MASK bit is set: every client
 * frame) and skips the payload; a data frame with FIN=0 opens a fragmented
 * message and a continuation with FIN=1 closes it, control frames may come
 * in between.
 *
 * It does not validate: malformed input (reserved opcodes, a continuation
 * outside a message, oversized control frames) is followed as framed, and is
 * the parser's business. The api uses it to know when wslay holds no input
 * state for a connection (ws.c frees the wslay context then). No I/O, no
 * globals, no allocation. */
#ifndef PLACE_WSFRAME_H
#define PLACE_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A plain value; all-zero (wsframe_init) is the start of a stream. */
typedef struct wsframe {
    /* private */
    uint64_t _left; /* payload bytes left, or the length while it is read */
    uint8_t _part;  /* which part of a frame the next byte belongs to */
    uint8_t _n;     /* bytes left of the extended length or masking key */
    bool _masked;   /* the current frame has a masking key */
    bool _in_msg;   /* inside a fragmented data message */
} wsframe_t;

/* out: t. The state at the start of a stream: between frames, outside any
 * message. Same as zeroing it. */
void wsframe_init(wsframe_t *t);

/* Advances t over n bytes of the stream (borrowed: p; NULL when n is 0).
 * Feeding a stream in one call or in any number of pieces gives the same
 * state. */
void wsframe_feed(wsframe_t *t, const uint8_t *p, size_t n);

/* True when every byte fed so far belongs to complete frames and no
 * fragmented message is open: a fresh parser could take over the stream. */
bool wsframe_idle(const wsframe_t *t);

#endif
