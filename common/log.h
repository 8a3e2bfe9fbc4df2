/* log — one JSON line per event on stderr:
 * {"time":"…","level":"info","instance":"…","thread":"…","event":"…","msg":"…"}
 * Level and instance are set once at start (log_setup); thread names per
 * thread (log_thread_name, which also names the thread for the kernel unless
 * it is the main one). Safe from any thread. */
#ifndef PLACE_LOG_H
#define PLACE_LOG_H

#include <stdbool.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Returns false for an unknown level name. */
bool log_level_parse(const char *name, log_level_t *out);
void log_setup(log_level_t level, const char *instance);
void log_thread_name(const char *name); /* borrowed, copied */
bool log_enabled(log_level_t level);
/* event: short snake_case name (borrowed). The formatted message is escaped. */
void log_msg(log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like log_msg but `json_fields` (borrowed) is a pre-encoded fragment of
 * extra members, e.g. "\"rid\":\"ab12\",\"ms\":3", appended verbatim. */
void log_fields(log_level_t level, const char *event, const char *json_fields, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

#define log_debug(ev, ...) log_msg(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOG_ERROR, ev, __VA_ARGS__)

#endif
