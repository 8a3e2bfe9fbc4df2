/* F1: the WebSocket message parser (proto_parse_ws) and the REST placement
 * body parser (proto_parse_place), fed arbitrary bytes. Besides "no crash,
 * no leak, no UB" it checks what an accepted message means: jansson reads
 * the same bytes as a JSON object whose x, y and color are those integers,
 * inside the canvas and the palette. */
#include <jansson.h>

#include "fuzz.h"
#include "proto.h"

static const canvas_geom_t geom = {500, 400, 16};

static void same_as_jansson(const uint8_t *data, size_t size, const proto_place_t *p)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    FUZZ_CHECK(o && json_is_object(o));
    FUZZ_CHECK(json_integer_value(json_object_get(o, "x")) == p->x);
    FUZZ_CHECK(json_integer_value(json_object_get(o, "y")) == p->y);
    FUZZ_CHECK(json_integer_value(json_object_get(o, "color")) == p->color);
    json_decref(o);
    FUZZ_CHECK(p->x >= 0 && p->x < geom.width && p->y >= 0 && p->y < geom.height);
    FUZZ_CHECK(p->color >= 0 && p->color < geom.palette_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[200];
    proto_ws_msg_t m;
    int rc = proto_parse_ws((const char *)data, size, &geom, &m, msg, sizeof msg);
    if (rc == 0 && m.type == PROTO_WS_PLACE) same_as_jansson(data, size, &m.place);
    if (rc) FUZZ_CHECK(memchr(msg, '\0', sizeof msg) && msg[0]); /* a message, terminated */
    proto_place_t p;
    rc = proto_parse_place((const char *)data, size, &geom, false, &p, msg, sizeof msg);
    if (rc == 0) same_as_jansson(data, size, &p);
    else FUZZ_CHECK(memchr(msg, '\0', sizeof msg) && msg[0]);
    return 0;
}
