/* wsk — the WebSocket opening handshake's pure parts (RFC 6455 section 4):
 * Sec-WebSocket-Key validation, the Sec-WebSocket-Accept value, header
 * token lists and the Origin allow-list. No I/O, no globals. */
#ifndef PLACE_WSK_H
#define PLACE_WSK_H

#include <stdbool.h>
#include <stddef.h>

/* True when key (borrowed, NUL-terminated) is base64 of exactly 16 bytes
 * (24 characters ending in "=="). */
bool wsk_key_valid(const char *key);

/* Sec-WebSocket-Accept for a valid key: base64(SHA-1(key + GUID)), 28
 * characters + NUL into out. */
void wsk_accept(const char *key, char out[29]);

/* True when the comma-separated header value (borrowed) contains token,
 * compared case-insensitively with surrounding spaces ignored
 * ("keep-alive, Upgrade" contains "upgrade"). */
bool wsk_has_token(const char *value, const char *token);

/* True when origin (borrowed) is allowed: an exact entry of the
 * comma-separated allow-list, or "*" in the list; an empty list allows only
 * the page's own host (origin equals "http://" or "https://" + host).
 * "null" is never allowed unless listed. */
bool wsk_origin_allowed(const char *origin, const char *allow_list, const char *host);

#endif
