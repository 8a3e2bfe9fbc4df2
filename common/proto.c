#include "proto.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Reads x, y, color from a placement object (type, when allowed, already
 * checked by the caller). */
static int place_from_object(json_t *root, const canvas_geom_t *g, bool allow_type,
                             proto_place_t *out, char *msg, size_t msglen)
{
    json_int_t v[3] = {0, 0, 0};
    static const char *const names[3] = {"x", "y", "color"};
    const char *key;
    json_t *val;
    size_t seen = 0;
    json_object_foreach(root, key, val) {
        if (allow_type && !strcmp(key, "type")) continue;
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(key, names[i])) k = i;
        if (k < 0) {
            snprintf(msg, msglen, "unknown field '%.40s'", key);
            return PX_EPROTO;
        }
        if (!json_is_integer(val)) {
            snprintf(msg, msglen, "%s must be an integer", names[k]);
            return PX_EPROTO;
        }
        v[k] = json_integer_value(val);
        seen |= 1u << k;
    }
    if (seen != 7) {
        snprintf(msg, msglen, "x, y and color are required");
        return PX_EPROTO;
    }
    int rc = canvas_validate(g, v[0], v[1], v[2]);
    if (rc == PX_EBOUNDS)
        snprintf(msg, msglen, "coordinates must be within 0..%d x 0..%d", g->width - 1,
                 g->height - 1);
    else if (rc == PX_ECOLOR)
        snprintf(msg, msglen, "color must be a palette index 0..%d", g->palette_len - 1);
    else {
        out->x = (int)v[0];
        out->y = (int)v[1];
        out->color = (int)v[2];
    }
    return rc;
}

static json_t *load_object(const char *body, size_t len, char *msg, size_t msglen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(msg, msglen, "invalid JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(msg, msglen, "body must be a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

int proto_parse_place(const char *body, size_t len, const canvas_geom_t *g, bool want_type,
                      proto_place_t *out, char *msg, size_t msglen)
{
    json_t *root = load_object(body, len, msg, msglen);
    if (!root) return PX_EPROTO;
    int rc = PX_EPROTO;
    if (want_type) {
        json_t *t = json_object_get(root, "type");
        if (!t) {
            snprintf(msg, msglen, "type is required");
            goto out;
        }
        if (!json_is_string(t) || strcmp(json_string_value(t), "place") != 0) {
            snprintf(msg, msglen, "type must be \"place\"");
            goto out;
        }
    }
    rc = place_from_object(root, g, want_type, out, msg, msglen);
out:
    json_decref(root);
    return rc;
}

int proto_parse_ws(const char *body, size_t len, const canvas_geom_t *g, proto_ws_msg_t *out,
                   char *msg, size_t msglen)
{
    json_t *root = load_object(body, len, msg, msglen);
    if (!root) return PX_EPROTO;
    int rc = PX_EPROTO;
    json_t *t = json_object_get(root, "type");
    const char *type = json_is_string(t) ? json_string_value(t) : NULL;
    if (!type) {
        snprintf(msg, msglen, "\"type\" (a string) is required");
    } else if (!strcmp(type, "place")) {
        out->type = PROTO_WS_PLACE;
        rc = place_from_object(root, g, true, &out->place, msg, msglen);
    } else if (!strcmp(type, "ping")) {
        out->type = PROTO_WS_PING; /* other members are ignored (e.g. a client timestamp) */
        rc = 0;
    } else {
        snprintf(msg, msglen, "unknown message type '%.40s'", type);
    }
    json_decref(root);
    return rc;
}

bool proto_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) k = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) k = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) k = 3, cp = c & 0x07, min = 0x10000;
        else return false;
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k + 1;
    }
    return true;
}

const char *proto_error_code(int px)
{
    switch (px) {
    case PX_EBOUNDS: return "INVALID_COORDS";
    case PX_ECOLOR: return "INVALID_COLOR";
    case PX_ECOOLDOWN: return "RATE_LIMITED";
    case PX_EBANNED: return "BANNED";
    case PX_EPROTO: return "BAD_REQUEST";
    case PX_ENOTFOUND: return "NOT_FOUND";
    case PX_ETOOBIG: return "PAYLOAD_TOO_LARGE";
    case PX_EBACKEND:
    case PX_ENOCANVAS:
    case PX_ETIMEOUT: return "UNAVAILABLE";
    default: return "INTERNAL";
    }
}

void proto_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[bytes[i] >> 4];
        out[2 * i + 1] = hx[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void proto_uuid_format(const uint8_t in[16], char out[37])
{
    uint8_t b[16];
    memcpy(b, in, 16);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    proto_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool proto_hex_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_hex(s[i])) return false;
    return s[n] == '\0';
}

bool proto_uuid_valid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) return false;
    }
    return s[36] == '\0';
}

bool proto_ip_group(const char *ip, char out[PROTO_IP_GROUP_LEN])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, ip, &a4) == 1)
        return inet_ntop(AF_INET, &a4, out, PROTO_IP_GROUP_LEN) != NULL;
    if (inet_pton(AF_INET6, ip, &a6) != 1) return false;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(a6.s6_addr, mapped, sizeof mapped)) { /* ::ffff:a.b.c.d is IPv4 */
        memcpy(&a4, a6.s6_addr + 12, 4);
        return inet_ntop(AF_INET, &a4, out, PROTO_IP_GROUP_LEN) != NULL;
    }
    memset(a6.s6_addr + 8, 0, 8); /* one /64: what one subscriber gets */
    if (!inet_ntop(AF_INET6, &a6, out, PROTO_IP_GROUP_LEN - 3)) return false;
    strcat(out, "/64");
    return true;
}

bool proto_parse_i64(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 20) return false;
    size_t i = 0;
    bool neg = s[0] == '-';
    if (neg && ++i == len) return false;
    /* accumulate negatively: the range of int64 is one larger below zero */
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, s[i] - '0', &v))
            return false;
    }
    if (!neg) {
        if (v == INT64_MIN) return false;
        v = -v;
    }
    *out = v;
    return true;
}

/* "<id> <seq> <x> <y> <c> <u> <t>": the one field e of an entry. */
static int event_from_packed(const char *v, size_t l, canvas_event_t *out)
{
    const char *tok[7];
    size_t tl[7], k = 0, start = 0;
    for (size_t i = 0; i <= l; i++) {
        if (i < l && v[i] != ' ') continue;
        if (k == 7) return PX_EPROTO;
        tok[k] = v + start;
        tl[k++] = i - start;
        start = i + 1;
    }
    if (k != 7) return PX_EPROTO;
    static const char *const names[7] = {"id", "seq", "x", "y", "c", "u", "t"};
    return proto_event_from_fields(names, tok, tl, 7, out);
}

int proto_event_from_fields(const char *const *fields, const char *const *values,
                            const size_t *lens, size_t n, canvas_event_t *out)
{
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    if (n == 1 && !strcmp(fields[0], "e")) return event_from_packed(values[0], lens[0], out);
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i], *v = values[i];
        size_t l = lens[i];
        int64_t num;
        if (!strcmp(f, "id")) {
            if (l != 32) return PX_EPROTO;
            memcpy(out->id, v, 32);
            out->id[32] = '\0';
            if (!proto_hex_valid(out->id, 32)) return PX_EPROTO;
            seen |= 1;
        } else if (!strcmp(f, "u")) {
            if (l != 36) return PX_EPROTO;
            memcpy(out->user_id, v, 36);
            out->user_id[36] = '\0';
            if (!proto_uuid_valid(out->user_id)) return PX_EPROTO;
            seen |= 2;
        } else {
            if (!proto_parse_i64(v, l, &num)) return PX_EPROTO;
            if (!strcmp(f, "seq") && num > 0) out->seq = num, seen |= 4;
            else if (!strcmp(f, "x") && num >= 0 && num < 65536) out->x = (int)num, seen |= 8;
            else if (!strcmp(f, "y") && num >= 0 && num < 65536) out->y = (int)num, seen |= 16;
            else if (!strcmp(f, "c") && num >= 0 && num < 256) out->color = (int)num, seen |= 32;
            else if (!strcmp(f, "t") && num > 0) out->time_ms = num, seen |= 64;
            else return PX_EPROTO;
        }
    }
    return seen == 127 ? 0 : PX_EPROTO;
}

void proto_time_format(int64_t ms, char out[32])
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) sec--, rem += 1000;
    time_t s = (time_t)sec;
    struct tm tm;
    gmtime_r(&s, &tm);
    int y = tm.tm_year + 1900;
    if (y < 0) y = 0;
    if (y > 9999) y = 9999;
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
             (int)rem);
}

bool proto_username_valid(const char *u, size_t len)
{
    if (len < 3 || len > 32 || strlen(u) != len) return false;
    for (size_t i = 0; i < len; i++) {
        char c = u[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}
