/* proto — wire formats: JSON request bodies, error codes, ids, stream
 * entries. Pure: no I/O, no globals. */
#ifndef PLACE_PROTO_H
#define PLACE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canvas.h"
#include "px.h"

typedef struct proto_place {
    int x, y, color;
} proto_place_t;

/* Parses a placement body: a JSON object with integer members x, y, color
 * (and, when `want_type`, "type":"place"; otherwise "type" is not allowed).
 * Unknown or duplicate members, non-integers (1.0, 1e2, "1", true), invalid
 * UTF-8 and trailing garbage are PX_EPROTO; then PX_EBOUNDS / PX_ECOLOR from
 * canvas_validate. `body` is borrowed, not NUL-terminated. On error writes a
 * human message into msg (out, msglen bytes). */
PX_MUST_CHECK int proto_parse_place(const char *body, size_t len, const canvas_geom_t *g,
                                    bool want_type, proto_place_t *out, char *msg,
                                    size_t msglen);

typedef enum { PROTO_WS_PLACE = 1, PROTO_WS_PING } proto_ws_type_t;

typedef struct proto_ws_msg {
    proto_ws_type_t type;
    proto_place_t place; /* PROTO_WS_PLACE */
} proto_ws_msg_t;

/* Parses one client WebSocket message: {"type":"place",x,y,color} (strict,
 * as proto_parse_place with want_type) or {"type":"ping",...}. A missing or
 * unknown type is PX_EPROTO with a message. */
PX_MUST_CHECK int proto_parse_ws(const char *body, size_t len, const canvas_geom_t *g,
                                 proto_ws_msg_t *out, char *msg, size_t msglen);

/* A username: 3-32 ASCII letters, digits, '_' or '-' (len bytes; a NUL
 * inside makes it invalid). */
bool proto_username_valid(const char *u, size_t len);

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool proto_utf8_valid(const uint8_t *s, size_t n);

/* The protocol error code for a px code: "INVALID_COORDS", "INVALID_COLOR",
 * "RATE_LIMITED", "BANNED", "BAD_REQUEST", "UNAVAILABLE", ... Never NULL. */
const char *proto_error_code(int px);

/* 16 random bytes -> 32 lower-case hex digits + NUL (out). */
void proto_hex(const uint8_t *bytes, size_t n, char *out);
/* 16 bytes -> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (version 4 / variant bits set). */
void proto_uuid_format(const uint8_t bytes[16], char out[37]);
/* True for a canonical uuid text (8-4-4-4-12 hex digits, any case). */
bool proto_uuid_valid(const char *s);
/* The group a client address counts in for per-address limits: an IPv4
 * address as itself (also when written ::ffff:a.b.c.d), an IPv6 address as
 * its /64 ("2001:db8:1:2::/64"). False for text that is no address. */
#define PROTO_IP_GROUP_LEN 48
bool proto_ip_group(const char *ip, char out[PROTO_IP_GROUP_LEN]);
/* True for exactly n lower/upper-case hex digits. */
bool proto_hex_valid(const char *s, size_t n);

/* Builds a canvas_event_t from the field/value pairs of a canvas:events
 * stream entry (borrowed; fields[i] / values[i], n pairs, values with
 * lengths). An entry is one field e = "<id> <seq> <x> <y> <c> <u> <t>"
 * (what the scripts write), or, as written before 2026-11-23 and still
 * read, a field each: id, seq, x, y, c, u, t. Returns 0 or PX_EPROTO for a
 * missing or malformed field. */
PX_MUST_CHECK int proto_event_from_fields(const char *const *fields, const char *const *values,
                                          const size_t *value_lens, size_t n,
                                          canvas_event_t *out);

/* Formats time_ms as an RFC 3339 UTC timestamp with milliseconds (out, 32 bytes). */
void proto_time_format(int64_t time_ms, char out[32]);

/* Parses a decimal int64 from exactly len bytes; false on anything else. */
bool proto_parse_i64(const char *s, size_t len, int64_t *out);

#endif
