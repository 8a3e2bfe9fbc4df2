#include "ratelimit.h"

#include <math.h>

int64_t ratelimit_bucket(int64_t now_ms, int window_s)
{
    return now_ms / ((int64_t)window_s * 1000);
}

bool ratelimit_allow(int64_t cur, int64_t prev, int max, int64_t now_ms, int window_s,
                     int64_t *retry_s)
{
    double w = (double)window_s * 1000.0;
    double f = (double)(now_ms % ((int64_t)window_s * 1000)) / w; /* into the bucket, 0..1 */
    if (prev < 0) prev = 0;
    if ((double)cur + (double)prev * (1.0 - f) <= (double)max + 1e-9) return true;
    /* refused, so this hit is not counted: the next one is allowed once
     * (cur - 1) + 1 + weight * (what is left of the older bucket) <= max */
    double c = (double)(cur > 0 ? cur - 1 : 0), wait_ms;
    if (c + 1.0 <= (double)max) {
        /* later in this bucket, as the previous one slides out */
        double f_ok = prev > 0 ? 1.0 - ((double)max - c - 1.0) / (double)prev : f;
        if (f_ok > 1) f_ok = 1; /* at the next bucket's start the older one is gone */
        wait_ms = (f_ok - f) * w;
    } else {
        /* in the next bucket, as this one slides out */
        double f_ok = c > 0 ? 1.0 - ((double)max - 1.0) / c : 0.0;
        if (f_ok < 0) f_ok = 0;
        wait_ms = (1.0 - f) * w + f_ok * w;
    }
    /* whole seconds, up: a wait of exactly 20 s computed as 20.0000001 is 20 */
    int64_t s = (int64_t)ceil(wait_ms / 1000.0 - 1e-6);
    if (s < 1) s = 1;
    if (s > 2 * (int64_t)window_s) s = 2 * (int64_t)window_s;
    *retry_s = s;
    return false;
}
