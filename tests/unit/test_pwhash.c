/* test_pwhash — the stored format, round trips, wrong passwords, salts
 * differ, malformed stored strings refused, the OWASP cost accepted, a
 * tampered hash refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pwhash.h"

static void test_round_trip(void **state)
{
    (void)state;
    char a[PWHASH_MAX], b[PWHASH_MAX];
    assert_int_equal(pwhash_hash("correct horse", 13, 10, 8, 1, a), 0);
    assert_int_equal(pwhash_hash("correct horse", 13, 10, 8, 1, b), 0);
    assert_true(strncmp(a, "$scrypt$ln=10,r=8,p=1$", 22) == 0);
    assert_string_not_equal(a, b); /* per-user salt */
    bool ok = false;
    assert_int_equal(pwhash_verify("correct horse", 13, a, &ok), 0);
    assert_true(ok);
    assert_int_equal(pwhash_verify("correct horsf", 13, a, &ok), 0);
    assert_false(ok);
    assert_int_equal(pwhash_verify("correct hors", 12, a, &ok), 0);
    assert_false(ok);
    assert_int_equal(pwhash_verify("", 0, a, &ok), 0);
    assert_false(ok);
    /* bytes after a NUL count: the length is what is hashed */
    assert_int_equal(pwhash_hash("a\0b", 3, 10, 8, 1, a), 0);
    assert_int_equal(pwhash_verify("a\0c", 3, a, &ok), 0);
    assert_false(ok);
    assert_int_equal(pwhash_verify("a\0b", 3, a, &ok), 0);
    assert_true(ok);
}

static void test_owasp_cost(void **state)
{
    (void)state;
    char h[PWHASH_MAX];
    assert_int_equal(pwhash_hash("password123", 11, PWHASH_LN, PWHASH_R, PWHASH_P, h), 0);
    assert_true(strncmp(h, "$scrypt$ln=17,r=8,p=1$", 22) == 0);
    bool ok = false;
    assert_int_equal(pwhash_verify("password123", 11, h, &ok), 0);
    assert_true(ok);
}

static void test_p16_and_tamper(void **state)
{
    (void)state;
    /* RFC 7914's parameter set 2 (N=1024, r=8, p=16) round-trips, and a
     * changed character of the stored hash no longer verifies */
    char h[PWHASH_MAX];
    assert_int_equal(pwhash_hash("password", 8, 10, 8, 16, h), 0);
    bool ok = false;
    assert_int_equal(pwhash_verify("password", 8, h, &ok), 0);
    assert_true(ok);
    size_t n = strlen(h);
    h[n - 3] = h[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(pwhash_verify("password", 8, h, &ok), 0);
    assert_false(ok);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL, "", "plain", "$scrypt$", "$scrypt$ln=10,r=8,p=1$", "$scrypt$ln=10,r=8,p=1$abc$def",
        "$scrypt$ln=99,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "$scrypt$ln=10,r=0,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "$bcrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = true;
        if (pwhash_verify("x", 1, bad[i], &ok) != PX_EPROTO || ok)
            fail_msg("malformed stored string %zu accepted", i);
    }
    char h[PWHASH_MAX];
    assert_int_equal(pwhash_hash("x", 1, 0, 8, 1, h), PX_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_owasp_cost),
        cmocka_unit_test(test_p16_and_tamper),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
