#include "pwhash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define SALT_LEN 16
#define HASH_LEN 32

static int derive(const char *pw, size_t len, const unsigned char *salt, int ln, int r, int p,
                  unsigned char out[HASH_LEN])
{
    if (ln < 1 || ln > 24 || r < 1 || r > 32 || p < 1 || p > 16) return PX_EPROTO;
    uint64_t n = (uint64_t)1 << ln;
    /* scrypt needs 128 * N * r bytes (plus a little): allow twice that */
    uint64_t maxmem = 256ull * n * (uint64_t)r + (1u << 20);
    if (EVP_PBE_scrypt(pw, len, salt, SALT_LEN, n, (uint64_t)r, (uint64_t)p, maxmem, out,
                       HASH_LEN) != 1)
        return PX_EBACKEND;
    return 0;
}

/* base64 of exactly n bytes into out; returns the length */
static int b64(const unsigned char *in, int n, char *out)
{
    return EVP_EncodeBlock((unsigned char *)out, in, n);
}

/* decodes exactly want bytes from a base64 text of exactly the right length */
static bool unb64(const char *s, size_t slen, unsigned char *out, int want)
{
    size_t expect = (size_t)((want + 2) / 3 * 4);
    if (slen != expect) return false;
    unsigned char tmp[64];
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)slen);
    int pad = (s[slen - 1] == '=') + (s[slen - 2] == '=');
    if (n < 0 || n - pad != want) return false;
    memcpy(out, tmp, (size_t)want);
    return true;
}

int pwhash_hash(const char *pw, size_t len, int ln, int r, int p, char out[PWHASH_MAX])
{
    unsigned char salt[SALT_LEN], h[HASH_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1) return PX_EBACKEND;
    int rc = derive(pw, len, salt, ln, r, p, h);
    if (rc) return rc;
    char s64[32], h64[48];
    b64(salt, SALT_LEN, s64);
    b64(h, HASH_LEN, h64);
    OPENSSL_cleanse(h, sizeof h);
    snprintf(out, PWHASH_MAX, "$scrypt$ln=%d,r=%d,p=%d$%s$%s", ln, r, p, s64, h64);
    return 0;
}

int pwhash_verify(const char *pw, size_t len, const char *stored, bool *ok)
{
    *ok = false;
    int ln, r, p, n = 0;
    if (!stored || sscanf(stored, "$scrypt$ln=%d,r=%d,p=%d$%n", &ln, &r, &p, &n) != 3 || !n)
        return PX_EPROTO;
    const char *salt64 = stored + n;
    const char *dollar = strchr(salt64, '$');
    if (!dollar) return PX_EPROTO;
    unsigned char salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
    if (!unb64(salt64, (size_t)(dollar - salt64), salt, SALT_LEN) ||
        !unb64(dollar + 1, strlen(dollar + 1), want, HASH_LEN))
        return PX_EPROTO;
    int rc = derive(pw, len, salt, ln, r, p, got);
    if (rc) return rc;
    *ok = CRYPTO_memcmp(got, want, HASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return 0;
}
