/* ratelimit — the decision of a sliding-window rate limit, kept apart from
 * Redis so it can be tested alone. The window is approximated with two
 * fixed buckets (the usual sliding-window counter): the count of the
 * current bucket plus the previous bucket's count weighed by the share of
 * it that still lies inside the last window. Unlike a plain fixed window,
 * this never lets a client through twice the limit across a bucket edge.
 * Pure functions: any thread. */
#ifndef PLACE_RATELIMIT_H
#define PLACE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Number of the bucket holding now_ms for windows of window_s seconds. */
int64_t ratelimit_bucket(int64_t now_ms, int window_s);

/* Whether a hit at now_ms is allowed when cur hits (this one included) are
 * counted in the current bucket and prev in the one before, with at most
 * max hits a window. When it is not, *retry_s (out) is how long to wait
 * without further hits until one would be: 1 s up to window_s + window_s /
 * max when no more than max were let in (a burst at the start of a bucket
 * still weighs almost whole at the start of the next; an exact sliding
 * window would need at most window_s), up to 2 * window_s when more were
 * (the limit was lowered meanwhile). */
bool ratelimit_allow(int64_t cur, int64_t prev, int max, int64_t now_ms, int window_s,
                     int64_t *retry_s);

#endif
