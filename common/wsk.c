#include "wsk.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool wsk_key_valid(const char *key)
{
    if (!key || strlen(key) != 24 || strcmp(key + 22, "==") != 0) return false;
    for (int i = 0; i < 22; i++) {
        char c = key[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok) return false;
    }
    /* the last character before the padding carries 4 unused bits: must be 0 */
    return strchr("AQgw", key[21]) != NULL;
}

void wsk_accept(const char *key, char out[29])
{
    unsigned char d[SHA_DIGEST_LENGTH];
    char cat[24 + sizeof GUID];
    size_t n = strnlen(key, 24);
    memcpy(cat, key, n);
    memcpy(cat + n, GUID, sizeof GUID - 1);
    SHA1((const unsigned char *)cat, n + sizeof GUID - 1, d);
    EVP_EncodeBlock((unsigned char *)out, d, SHA_DIGEST_LENGTH); /* 28 chars + NUL */
}

/* Calls match on each trimmed, non-empty item of a comma list. */
static bool any_item(const char *list, bool (*match)(const char *s, size_t n, const void *arg),
                     const void *arg)
{
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t')) m--;
        if (m && match(p, m, arg)) return true;
        p += n;
    }
    return false;
}

static bool token_eq(const char *s, size_t n, const void *arg)
{
    const char *t = arg;
    return strlen(t) == n && !strncasecmp(s, t, n);
}

bool wsk_has_token(const char *value, const char *token)
{
    return value && any_item(value, token_eq, token);
}

static bool exact_or_star(const char *s, size_t n, const void *arg)
{
    const char *origin = arg;
    return (n == 1 && s[0] == '*') || (strlen(origin) == n && !strncmp(s, origin, n));
}

bool wsk_origin_allowed(const char *origin, const char *allow_list, const char *host)
{
    if (!origin) return false;
    bool empty = true;
    for (const char *p = allow_list; p && *p; p++)
        if (*p != ' ' && *p != ',' && *p != '\t') empty = false;
    if (!empty) return any_item(allow_list, exact_or_star, origin);
    if (!host || !*host) return false;
    const char *rest = !strncmp(origin, "http://", 7)    ? origin + 7
                       : !strncmp(origin, "https://", 8) ? origin + 8
                                                         : NULL;
    return rest && !strcasecmp(rest, host);
}
