#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static _Atomic int g_level = LOG_INFO;
static char g_instance[64] = "place";
static __thread char t_name[24] = "main";

static const char *const names[] = {"debug", "info", "warn", "error"};

bool log_level_parse(const char *name, log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(name, names[i])) {
            *out = (log_level_t)i;
            return true;
        }
    }
    return false;
}

void log_setup(log_level_t level, const char *instance)
{
    atomic_store(&g_level, (int)level);
    snprintf(g_instance, sizeof g_instance, "%s", instance);
}

void log_thread_name(const char *name)
{
    snprintf(t_name, sizeof t_name, "%s", name);
    /* and the kernel's name (top -H, perf, /proc/PID/task/TID/comm), for
     * threads other than the main one, whose name is the process's (ps -C) */
    if (gettid() != getpid()) {
        char comm[16]; /* the kernel keeps 15 bytes */
        snprintf(comm, sizeof comm, "%s", name);
        pthread_setname_np(pthread_self(), comm);
    }
}

bool log_enabled(log_level_t level) { return (int)level >= atomic_load(&g_level); }

static void put_escaped(buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
}

__attribute__((format(printf, 4, 0))) static void emit(log_level_t level, const char *event,
                                                       const char *fields, const char *fmt,
                                                       va_list ap)
{
    if (!log_enabled(level)) return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
               (long)(tv.tv_usec / 1000), names[level]);
    buf_puts(&b, "\"instance\":\"");
    put_escaped(&b, g_instance);
    buf_puts(&b, "\",\"thread\":\"");
    put_escaped(&b, t_name);
    buf_puts(&b, "\",\"event\":\"");
    put_escaped(&b, event);
    buf_puts(&b, "\"");
    if (fields && *fields) {
        buf_putc(&b, ',');
        buf_puts(&b, fields);
    }
    if (msg[0]) {
        buf_puts(&b, ",\"msg\":\"");
        put_escaped(&b, msg);
        buf_puts(&b, "\"");
    }
    buf_puts(&b, "}\n");
    /* one write per line so lines from threads never interleave */
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    buf_deinit(&b);
}

void log_msg(log_level_t level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, event, NULL, fmt, ap);
    va_end(ap);
}

void log_fields(log_level_t level, const char *event, const char *json_fields, const char *fmt,
                ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, event, json_fields, fmt, ap);
    va_end(ap);
}
