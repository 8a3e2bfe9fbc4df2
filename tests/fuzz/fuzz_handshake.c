/* F4: the parsers of the WebSocket handshake and of client identifiers:
 * Sec-WebSocket-Key (wsk_key_valid, wsk_accept), Connection/Upgrade tokens
 * (wsk_has_token), Origin against the allow list and Host
 * (wsk_origin_allowed), the session id a cookie or bearer token carries
 * (64 hex digits), uuids, the client address grouping of per_ip and
 * decimal integers. The input is split at NUL bytes into the fields. */
#include <ctype.h>
#include <strings.h>

#include "fuzz.h"
#include "proto.h"
#include "wsk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    const char *f[4] = {"", "", "", ""};
    size_t len[4] = {0, 0, 0, 0};
    size_t n = fuzz_split(data, size, buf, f, len, 4);
    (void)n;

    if (wsk_key_valid(f[0])) {
        FUZZ_CHECK(len[0] == 24 && f[0][22] == '=' && f[0][23] == '=');
        char acc[29];
        wsk_accept(f[0], acc);
        FUZZ_CHECK(strlen(acc) == 28);
    }
    if (wsk_has_token(f[0], f[1])) FUZZ_CHECK(len[1] > 0 && len[0] >= len[1]);
    if (wsk_origin_allowed(f[0], f[1], f[2])) {
        /* an allowed origin is an entry of the list (or the list allows "*"),
         * or, with an empty list, the page's own host */
        bool own = (!strncmp(f[0], "http://", 7) && !strcasecmp(f[0] + 7, f[2])) ||
                   (!strncmp(f[0], "https://", 8) && !strcasecmp(f[0] + 8, f[2]));
        FUZZ_CHECK(own || strchr(f[1], '*') || (len[0] > 0 && strstr(f[1], f[0])));
    }
    if (proto_hex_valid(f[0], 64)) FUZZ_CHECK(len[0] == 64);
    if (proto_uuid_valid(f[0])) FUZZ_CHECK(len[0] == 36);
    char g[PROTO_IP_GROUP_LEN], g2[PROTO_IP_GROUP_LEN];
    if (proto_ip_group(f[0], g)) {
        FUZZ_CHECK(strlen(g) < sizeof g);
        if (!strchr(g, '/')) FUZZ_CHECK(proto_ip_group(g, g2) && !strcmp(g, g2)); /* IPv4: stable */
    }
    int64_t v;
    if (proto_parse_i64(f[0], len[0], &v)) {
        FUZZ_CHECK(len[0] > 0 && (isdigit((unsigned char)f[0][0]) || f[0][0] == '-'));
        FUZZ_CHECK(v >= 0 || f[0][0] == '-');
    }
    free(buf);
    return 0;
}
