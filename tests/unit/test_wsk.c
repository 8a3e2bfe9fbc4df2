/* test_wsk — the handshake helpers: Sec-WebSocket-Key validation, the
 * RFC 6455 accept value, header token lists and the Origin allow-list
 * (exact entries, "*", empty = same host, null and look-alikes refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wsk.h"

static void test_key_valid(void **state)
{
    (void)state;
    assert_true(wsk_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_true(wsk_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_true(wsk_key_valid("/+/+/+/+/+/+/+/+/+/+/w=="));
    static const char *const bad[] = {
        NULL, "", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
        "dGhlIHNhbXBsZSBub25jZQ=x", "dGhlIHNhbXBsZSBub25jZ===", "dGhlIHNhbXBsZSBub25jZR==",
        "dGhlIHNhbXBsZSBub25j ZQ==", "dGhlIHNhbXBsZSBub25jZQ==\n", "dGhl-HNhbXBsZSBub25jZQ==",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (wsk_key_valid(bad[i])) fail_msg("accepted key %zu '%s'", i, bad[i] ? bad[i] : "NULL");
}

static void test_accept_rfc_example(void **state)
{
    (void)state;
    char out[29];
    memset(out, 'x', sizeof out);
    wsk_accept("dGhlIHNhbXBsZSBub25jZQ==", out); /* RFC 6455 section 1.3 */
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_has_token(void **state)
{
    (void)state;
    assert_true(wsk_has_token("Upgrade", "upgrade"));
    assert_true(wsk_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(wsk_has_token("  UPGRADE  ", "upgrade"));
    assert_true(wsk_has_token("websocket", "websocket"));
    assert_false(wsk_has_token(NULL, "upgrade"));
    assert_false(wsk_has_token("", "upgrade"));
    assert_false(wsk_has_token("keep-alive", "upgrade"));
    assert_false(wsk_has_token("upgrades", "upgrade"));
    assert_false(wsk_has_token("up grade", "upgrade"));
    assert_false(wsk_has_token("websocket2", "websocket"));
}

static void test_origin(void **state)
{
    (void)state;
    const char *list = "http://localhost:3001, https://app.example";
    assert_true(wsk_origin_allowed("http://localhost:3001", list, "x"));
    assert_true(wsk_origin_allowed("https://app.example", list, "x"));
    static const char *const refused[] = {
        "null", "", "http://localhost:3002", "https://app.example.evil", "https://evil.app.example",
        "http://app.example", "https://app.example/", "https://APP.example", "http://localhost:300",
        "https://app.exampl"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (wsk_origin_allowed(refused[i], list, "app.example"))
            fail_msg("allowed origin '%s'", refused[i]);
    assert_false(wsk_origin_allowed(NULL, list, "x"));
    /* "*" allows any origin */
    assert_true(wsk_origin_allowed("https://anything.example", "*", NULL));
    assert_true(wsk_origin_allowed("null", "http://a, *", NULL));
    /* empty list: only the page's own host */
    assert_true(wsk_origin_allowed("http://127.0.0.1:3000", "", "127.0.0.1:3000"));
    assert_true(wsk_origin_allowed("https://place.example", " , ", "place.example"));
    assert_false(wsk_origin_allowed("http://127.0.0.1:3000", "", "127.0.0.1:3001"));
    assert_false(wsk_origin_allowed("null", "", "null"));
    assert_false(wsk_origin_allowed("ftp://h", "", "h"));
    assert_false(wsk_origin_allowed("http://h", "", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
