/* px — project-wide error band and attributes. System failures are -errno;
 * project codes sit in -1000..-1099 (libuv style). */
#ifndef PLACE_PX_H
#define PLACE_PX_H

#define PX_MUST_CHECK __attribute__((warn_unused_result))

enum {
    PX_OK = 0,
    PX_EPROTO = -1000,    /* malformed input */
    PX_EBOUNDS = -1001,   /* coordinates outside the canvas */
    PX_ECOLOR = -1002,    /* colour outside the palette */
    PX_ECOOLDOWN = -1003, /* user still cooling down */
    PX_EBACKEND = -1004,  /* Redis / PostgreSQL / RabbitMQ failed */
    PX_EBANNED = -1005,   /* user is banned */
    PX_ECONFIG = -1006,   /* bad configuration */
    PX_ENOTFOUND = -1007, /* no such thing */
    PX_ETOOBIG = -1008,   /* size above a configured cap */
    PX_ENOCANVAS = -1009, /* Redis holds no canvas */
    PX_ETIMEOUT = -1010,
};

/* Static description of a code (project band or -errno). Never NULL. */
const char *px_strerror(int code);

#endif
