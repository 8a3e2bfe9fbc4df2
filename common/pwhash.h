/* pwhash — password hashes with OpenSSL's scrypt, stored as a
 * self-describing string (parameters, salt and hash travel together, so the
 * cost can be raised later without breaking stored hashes):
 *
 *   $scrypt$ln=17,r=8,p=1$<base64 salt, 16 bytes>$<base64 hash, 32 bytes>
 *
 * ln=17,r=8,p=1 (N=2^17, 128 MiB, about 0.3 s here) is OWASP's
 * recommendation. Verification compares in constant time. No globals. */
#ifndef PLACE_PWHASH_H
#define PLACE_PWHASH_H

#include <stdbool.h>
#include <stddef.h>

#include "px.h"

#define PWHASH_LN 17
#define PWHASH_R 8
#define PWHASH_P 1
#define PWHASH_MAX 128 /* bytes of a stored string, NUL included */

/* Hashes pw (borrowed, len bytes) with a fresh random salt and the given
 * cost into out (PWHASH_MAX bytes). 0, or PX_EBACKEND when OpenSSL fails
 * (out of memory, bad parameters). */
PX_MUST_CHECK int pwhash_hash(const char *pw, size_t len, int ln, int r, int p,
                              char out[PWHASH_MAX]);

/* Checks pw against a stored string (borrowed). *ok tells whether it
 * matches. 0; PX_EPROTO for a malformed stored string; PX_EBACKEND when
 * OpenSSL fails. */
PX_MUST_CHECK int pwhash_verify(const char *pw, size_t len, const char *stored, bool *ok);

#endif
