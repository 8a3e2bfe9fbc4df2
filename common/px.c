#include "px.h"

#include <string.h>

const char *px_strerror(int code)
{
    switch (code) {
    case PX_OK: return "ok";
    case PX_EPROTO: return "malformed input";
    case PX_EBOUNDS: return "coordinates outside the canvas";
    case PX_ECOLOR: return "colour not in the palette";
    case PX_ECOOLDOWN: return "cooldown active";
    case PX_EBACKEND: return "backend failure";
    case PX_EBANNED: return "user is banned";
    case PX_ECONFIG: return "bad configuration";
    case PX_ENOTFOUND: return "not found";
    case PX_ETOOBIG: return "too big";
    case PX_ENOCANVAS: return "no canvas in Redis";
    case PX_ETIMEOUT: return "timed out";
    default: break;
    }
    if (code < 0 && code > -1000) return strerror(-code);
    return "unknown error";
}
