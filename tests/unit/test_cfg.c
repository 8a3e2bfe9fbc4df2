/* test_cfg — cfg_load: built-in defaults, the shipped config.ini (which
 * must set every key, to the built-in default), PLACE_<SECTION>_<KEY>
 * environment overrides, case-insensitive names, redis URL parsing, palette
 * syntax, and every kind of bad value (PX_ECONFIG plus a message naming
 * "[section] key"), each given both through a file and the environment.
 * Also log_level_parse (log.h), which cfg uses for [log] level.
 *
 * Runs with cwd = repo root, so the shipped file is "config.ini". Temporary
 * files are made with mkstemp under $TMPDIR (or /tmp) and removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "log.h"

#define SHIPPED "config.ini"

static char *const NO_ENV[] = {NULL};

/* -Wwrite-strings makes literals const; cfg_load takes environ's type and
 * only reads the strings. */
#define E(env) ((char *const *)(env))

static const uint32_t DEFAULT_PALETTE[16] = {
    0xFFFFFF, 0xE4E4E4, 0x888888, 0x222222, 0xFFA7D1, 0xE50000, 0xE59500, 0xA06A42,
    0xE5D900, 0x94E044, 0x02BE01, 0x00D3DD, 0x0083C7, 0x0000EA, 0xCF6EE4, 0x820080,
};

/* ------------------------------------------------------------ helpers */

/* Writes `text` to a new temporary file; returns its path (free + unlink
 * with drop_temp). */
static char *write_temp(const char *text)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/place-cfg-XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

static void drop_temp(char *path)
{
    unlink(path);
    free(path);
}

/* cfg_dump output as a malloc'd string. */
static char *dump(const cfg_t *c)
{
    char *s = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&s, &n);
    assert_non_null(fp);
    cfg_dump(c, fp);
    assert_int_equal(fclose(fp), 0);
    assert_non_null(s);
    return s;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void assert_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    if (a < b || strcmp(s + a - b, suffix) != 0)
        fail_msg("\"%s\" does not end with \"%s\"", s, suffix);
}

/* Loads from the ini text `text` (NULL = no file) and env; returns rc. */
static int load_text(cfg_t *c, const char *text, char *const *env, char *err, size_t errlen)
{
    if (!text) return cfg_load(c, NULL, env, err, errlen);
    char *path = write_temp(text);
    int rc = cfg_load(c, path, env, err, errlen);
    drop_temp(path);
    return rc;
}

static void assert_default_palette(const cfg_t *c)
{
    assert_int_equal(c->canvas.palette_len, 16);
    for (int i = 0; i < 16; i++) {
        if (c->canvas.palette[i] != DEFAULT_PALETTE[i])
            fail_msg("palette[%d] = %06X, want %06X", i, c->canvas.palette[i],
                     DEFAULT_PALETTE[i]);
    }
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
    (void)state;
    cfg_t c;
    char err[256] = "junk";
    assert_int_equal(cfg_load(&c, NULL, NO_ENV, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(c.canvas.width, 500);
    assert_int_equal(c.canvas.height, 500);
    assert_default_palette(&c);
    for (int i = 16; i < CFG_MAX_PALETTE; i++) assert_int_equal(c.canvas.palette[i], 0);
    assert_int_equal(c.canvas.cache_ms, 250);
    assert_int_equal(c.cooldown.seconds, 5);
    assert_int_equal(c.http.port, 3001);
    assert_string_equal(c.http.bind, "127.0.0.1");
    assert_int_equal(c.http.threads, 4);
    assert_int_equal(c.http.max_body_bytes, 16384);
    assert_string_equal(c.http.static_dir, "web");
    assert_int_equal(c.ws.threads, 0);
    assert_int_equal(c.ws.max_message_bytes, 4096);
    assert_string_equal(c.ws.allowed_origins, "http://localhost:3001,http://127.0.0.1:3001");
    assert_int_equal(c.auth.session_ttl_s, 86400);
    assert_string_equal(c.auth.cookie_name, "place_session");
    assert_false(c.auth.cookie_secure);
    assert_int_equal(c.limits.history_max, 1000);
    assert_string_equal(c.redis.url, "redis://127.0.0.1:16379/0");
    assert_string_equal(c.redis.host, "127.0.0.1");
    assert_int_equal(c.redis.port, 16379);
    assert_int_equal(c.redis.db, 0);
    assert_string_equal(c.redis.password, "");
    assert_string_equal(c.postgres.app_role, "place");
    assert_string_equal(c.log.level, "info");
    /* instance empty = hostname:port */
    assert_true(strlen(c.instance) > strlen(":3001"));
    assert_ends_with(c.instance, ":3001");
}

/* envp NULL means environ: with no PLACE_* variables the result equals the
 * defaults. */
static void test_null_envp_uses_environ(void **state)
{
    (void)state;
    cfg_t a, b;
    char err[256];
    assert_int_equal(setenv("PLACE_COOLDOWN_SECONDS", "77", 1), 0);
    assert_int_equal(cfg_load(&a, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(a.cooldown.seconds, 77);
    assert_int_equal(unsetenv("PLACE_COOLDOWN_SECONDS"), 0);
    assert_int_equal(cfg_load(&b, NULL, NO_ENV, err, sizeof err), 0);
    assert_int_equal(b.cooldown.seconds, 5);
}

/* The shipped config.ini gives exactly the built-in defaults: any drift
 * between the file and the table in cfg.c shows up here as a dump line. */
static void test_shipped_file_equals_defaults(void **state)
{
    (void)state;
    cfg_t def, file;
    char err[256];
    assert_int_equal(cfg_load(&def, NULL, NO_ENV, err, sizeof err), 0);
    int rc = cfg_load(&file, SHIPPED, NO_ENV, err, sizeof err);
    if (rc) fail_msg("loading %s: %s", SHIPPED, err);
    char *a = dump(&def), *b = dump(&file);
    if (strcmp(a, b) != 0) {
        /* report the first differing line */
        const char *p = a, *q = b;
        while (*p && *p == *q) p++, q++;
        while (p > a && p[-1] != '\n') p--, q--;
        fail_msg("config.ini differs from the defaults:\n  default: %.*s\n  file:    %.*s",
                 (int)strcspn(p, "\n"), p, (int)strcspn(q, "\n"), q);
    }
    assert_default_palette(&file);
    assert_int_equal(file.canvas.width, 500);
    assert_int_equal(file.canvas.height, 500);
    assert_int_equal(file.cooldown.seconds, 5);
    assert_int_equal(file.http.port, 3001);
    assert_memory_equal(&def, &file, sizeof def);
    free(a);
    free(b);
}

/* config.ini claims to list "every setting with its default": every key
 * cfg_dump knows must appear in the file under its section. */
static void test_shipped_file_sets_every_key(void **state)
{
    (void)state;
    FILE *fp = fopen(SHIPPED, "r");
    if (!fp) fail_msg("cannot open %s (tests run from the repo root)", SHIPPED);
    /* collect "section.key" names from the file */
    char *names = calloc(1, 16384);
    assert_non_null(names);
    size_t used = 0;
    char line[2048], section[64] = "";
    while (fgets(line, sizeof line, fp)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == ';' || *p == '#' || *p == '\n' || !*p) continue;
        if (*p == '[') {
            size_t n = strcspn(p + 1, "]");
            snprintf(section, sizeof section, "%.*s", (int)n, p + 1);
            continue;
        }
        size_t k = strcspn(p, " =");
        used += (size_t)snprintf(names + used, 16384 - used, "|%s.%.*s|", section, (int)k, p);
        assert_true(used < 16384);
    }
    fclose(fp);

    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, NO_ENV, err, sizeof err), 0);
    char *d = dump(&c);
    int nkeys = 0;
    for (char *l = d; *l; l = strchr(l, '\n') + 1) {
        size_t k = strcspn(l, " ");
        char want[128];
        snprintf(want, sizeof want, "|%.*s|", (int)k, l);
        if (!strstr(names, want)) fail_msg("config.ini does not set %.*s", (int)k, l);
        nkeys++;
    }
    assert_true(nkeys >= 40);
    free(d);
    free(names);
}

/* ------------------------------------------------------------ overrides */

static void test_env_overrides_file(void **state)
{
    (void)state;
    const char *const env[] = {"PLACE_HTTP_PORT=4000", "PLACE_CANVAS_WIDTH=2000", NULL};
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, SHIPPED, E(env), err, sizeof err), 0);
    assert_int_equal(c.http.port, 4000);
    assert_int_equal(c.canvas.width, 2000);
    assert_int_equal(c.canvas.height, 500);
    assert_ends_with(c.instance, ":4000");

    /* the file sets a value, the environment still wins */
    const char *const env2[] = {"PLACE_COOLDOWN_SECONDS=9", NULL};
    const char *text = "[cooldown]\nseconds = 60\n[canvas]\nheight = 100\n";
    assert_int_equal(load_text(&c, text, E(env2), err, sizeof err), 0);
    assert_int_equal(c.cooldown.seconds, 9);
    assert_int_equal(c.canvas.height, 100);
    /* without env the file wins over the defaults */
    assert_int_equal(load_text(&c, "[cooldown]\nseconds = 60\n", NO_ENV, err, sizeof err), 0);
    assert_int_equal(c.cooldown.seconds, 60);
}

static void test_env_every_kind(void **state)
{
    (void)state;
    const char *const env[] = {
        "PLACE_INSTANCE_NAME=node-7",
        "PLACE_AUTH_COOKIE_SECURE=true",
        "PLACE_CANVAS_PALETTE=#000000,#ffffff,#FF0000",
        "PLACE_WS_MAX_MESSAGE_BYTES=65536",
        "PLACE_REDIS_URL=redis://:pw@cache.local:7000/4",
        "PLACE_LOG_LEVEL=debug",
        "PLACE_HTTP_TRUSTED_PROXIES=",
        NULL,
    };
    cfg_t c;
    char err[256];
    int rc = cfg_load(&c, SHIPPED, E(env), err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(c.instance, "node-7");
    assert_true(c.auth.cookie_secure);
    assert_int_equal(c.canvas.palette_len, 3);
    assert_int_equal(c.canvas.palette[0], 0x000000);
    assert_int_equal(c.canvas.palette[1], 0xFFFFFF);
    assert_int_equal(c.canvas.palette[2], 0xFF0000);
    assert_int_equal(c.ws.max_message_bytes, 65536);
    assert_string_equal(c.redis.host, "cache.local");
    assert_int_equal(c.redis.port, 7000);
    assert_int_equal(c.redis.db, 4);
    assert_string_equal(c.redis.password, "pw");
    assert_string_equal(c.log.level, "debug");
    assert_string_equal(c.http.trusted_proxies, "");
}

static void test_env_names_case_insensitive(void **state)
{
    (void)state;
    const char *const env[] = {"PLACE_Http_Port=4001", "PLACE_canvas_height=321",
                         "PLACE_COOLDOWN_seconds=2", NULL};
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, E(env), err, sizeof err), 0);
    assert_int_equal(c.http.port, 4001);
    assert_int_equal(c.canvas.height, 321);
    assert_int_equal(c.cooldown.seconds, 2);
}

/* Other PLACE_* variables, variables without '=', prefixes of real names
 * and non-PLACE variables are not ours: ignored, no error. */
static void test_env_foreign_variables_ignored(void **state)
{
    (void)state;
    const char *const env[] = {"PLACE_BIN=build/asan/bin", "PLACE_UNIT=build/asan/tests",
                         "PLACE_HTTP_PORT",          "PLACE_HTTP_PORTX=1",
                         "PLACE_HTTP=1",             "PLACE_=1",
                         "HTTP_PORT=1",              "PATH=/usr/bin",
                         "XPLACE_HTTP_PORT=9",       NULL};
    cfg_t c;
    char err[256];
    int rc = cfg_load(&c, NULL, E(env), err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.http.port, 3001);
}

static void test_file_names_case_insensitive(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    int rc = load_text(&c,
                       "[HTTP]\nPORT = 4002\n[Canvas]\nWidth=7\nHEIGHT = 9\n"
                       "[cooldown]\nSeconds = 3\n",
                       NO_ENV, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.http.port, 4002);
    assert_int_equal(c.canvas.width, 7);
    assert_int_equal(c.canvas.height, 9);
    assert_int_equal(c.cooldown.seconds, 3);
}

static void test_file_comments_and_blank_lines(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    int rc = load_text(&c,
                       "; comment\n# another\n\n[canvas]\n  width = 640  \n\n; x\nheight=480\n",
                       NO_ENV, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.canvas.width, 640);
    assert_int_equal(c.canvas.height, 480);
    /* an empty file is all defaults */
    assert_int_equal(load_text(&c, "", NO_ENV, err, sizeof err), 0);
    assert_int_equal(c.canvas.width, 500);
}

/* ------------------------------------------------------------ values */

static void test_int_limits_accepted(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    const char *const lo[] = {"PLACE_CANVAS_WIDTH=1", "PLACE_CANVAS_HEIGHT=1", "PLACE_HTTP_PORT=0",
                        "PLACE_COOLDOWN_SECONDS=0", NULL};
    assert_int_equal(cfg_load(&c, NULL, E(lo), err, sizeof err), 0);
    assert_int_equal(c.canvas.width, 1);
    assert_int_equal(c.canvas.height, 1);
    assert_int_equal(c.http.port, 0);
    assert_int_equal(c.cooldown.seconds, 0);
    const char *const hi[] = {"PLACE_CANVAS_WIDTH=4096", "PLACE_CANVAS_HEIGHT= 4096 ",
                        "PLACE_HTTP_PORT=65535", "PLACE_COOLDOWN_SECONDS=86400", NULL};
    assert_int_equal(cfg_load(&c, NULL, E(hi), err, sizeof err), 0);
    assert_int_equal(c.canvas.width, CFG_MAX_DIM);
    assert_int_equal(c.canvas.height, CFG_MAX_DIM);
    assert_int_equal(c.http.port, 65535);
    assert_int_equal(c.cooldown.seconds, 86400);
}

static void test_bool_spellings(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        bool want;
    } cases[] = {
        {"true", true},   {"TRUE", true},   {"yes", true},    {"Yes", true}, {"1", true},
        {"on", true},     {"ON", true},     {"false", false}, {"False", false},
        {"no", false},    {"NO", false},    {"0", false},     {"off", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char var[64];
        snprintf(var, sizeof var, "PLACE_AUTH_COOKIE_SECURE=%s", cases[i].v);
        const char *const env[] = {var, NULL};
        cfg_t c;
        char err[256];
        int rc = cfg_load(&c, NULL, E(env), err, sizeof err);
        if (rc) fail_msg("'%s': %s", cases[i].v, err);
        if (c.auth.cookie_secure != cases[i].want) fail_msg("'%s' read wrongly", cases[i].v);
    }
}

static void test_palette_syntax(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int n;
        uint32_t first, last;
    } cases[] = {
        {"FFFFFF,000000", 2, 0xFFFFFF, 0x000000},
        {"#FFFFFF,#000000", 2, 0xFFFFFF, 0x000000},
        {"#ffffff, #00ff7f", 2, 0xFFFFFF, 0x00FF7F},
        {"  123456 , abcdef  ", 2, 0x123456, 0xABCDEF},
        {"aBcDeF 012345 #6789AB", 3, 0xABCDEF, 0x6789AB}, /* spaces separate too */
        {"000000,000000", 2, 0, 0},                      /* duplicates allowed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char var[128];
        snprintf(var, sizeof var, "PLACE_CANVAS_PALETTE=%s", cases[i].v);
        const char *const env[] = {var, NULL};
        cfg_t c;
        char err[256];
        int rc = cfg_load(&c, NULL, E(env), err, sizeof err);
        if (rc) fail_msg("'%s': %s", cases[i].v, err);
        assert_int_equal(c.canvas.palette_len, cases[i].n);
        assert_int_equal(c.canvas.palette[0], cases[i].first);
        assert_int_equal(c.canvas.palette[cases[i].n - 1], cases[i].last);
    }
    /* the same syntax through a file */
    cfg_t c;
    char err[256];
    int rc = load_text(&c, "[canvas]\npalette = #ff0000, #00FF00 ,0000ff\n", NO_ENV, err,
                       sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.canvas.palette_len, 3);
    assert_int_equal(c.canvas.palette[0], 0xFF0000);
    assert_int_equal(c.canvas.palette[1], 0x00FF00);
    assert_int_equal(c.canvas.palette[2], 0x0000FF);
}

/* n colours "000000,000001,..." (malloc'd). */
static char *palette_of(int n, const char *prefix)
{
    size_t cap = strlen(prefix) + (size_t)n * 7 + 2;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t off = (size_t)snprintf(s, cap, "%s", prefix);
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off, "%s%06X", i ? "," : "",
                                (unsigned)(i * 0x010101) & 0xFFFFFFu);
    return s;
}

static void test_palette_256_via_env(void **state)
{
    (void)state;
    char *var = palette_of(256, "PLACE_CANVAS_PALETTE=");
    const char *const env[] = {var, NULL};
    cfg_t c;
    char err[256];
    int rc = cfg_load(&c, NULL, E(env), err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(c.canvas.palette_len, 256);
    for (int i = 0; i < 256; i++)
        assert_int_equal(c.canvas.palette[i], (uint32_t)(i * 0x010101) & 0xFFFFFFu);
    free(var);
}

/* Debian's libinih 55 reads at most 199 bytes per line. A longer line is
 * refused with a message saying so (never silently truncated), and long
 * lists continue on indented lines, joined with ','. */
static void test_palette_long_line_in_file(void **state)
{
    (void)state;
    char *pal = palette_of(40, "[canvas]\npalette = ");
    size_t l = strlen(pal);
    pal = realloc(pal, l + 2);
    assert_non_null(pal);
    memcpy(pal + l, "\n", 2);
    cfg_t c;
    char err[256];
    int rc = load_text(&c, pal, NO_ENV, err, sizeof err);
    free(pal);
    assert_int_equal(rc, PX_ECONFIG);
    assert_non_null(strstr(err, "longer than 199"));

    static const int sizes[] = {27, 40, 256};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char text[8192];
        size_t n = (size_t)snprintf(text, sizeof text, "[canvas]\npalette = ");
        for (int k = 0; k < sizes[i]; k++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s%06X",
                                  k == 0 ? "" : (k % 20 == 0 ? "\n    " : ","),
                                  (unsigned)(k * 0x010101) & 0xFFFFFFu);
        snprintf(text + n, sizeof text - n, "\n[cooldown]\nseconds = 7\n");
        rc = load_text(&c, text, NO_ENV, err, sizeof err);
        if (rc) fail_msg("%d-colour palette on continuation lines: %s", sizes[i], err);
        assert_int_equal(c.canvas.palette_len, sizes[i]);
        for (int k = 0; k < sizes[i]; k++)
            assert_int_equal(c.canvas.palette[k], (uint32_t)(k * 0x010101) & 0xFFFFFFu);
        assert_int_equal(c.cooldown.seconds, 7);
    }
}

/* ------------------------------------------------------------ redis url */

static void test_redis_url(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *host;
        int port, db;
        const char *password;
    } cases[] = {
        {"redis://host:1234/3", "host", 1234, 3, ""},
        {"redis://:secret@host:6379/0", "host", 6379, 0, "secret"},
        {"redis://user:pw@10.0.0.1:7000/2", "10.0.0.1", 7000, 2, "pw"},
        {"redis://host", "host", 6379, 0, ""},
        {"redis://host/5", "host", 6379, 5, ""},
        {"redis://host:1", "host", 1, 0, ""},
        {"redis://host:65535/", "host", 65535, 0, ""},
        {"redis://localhost:16379/1000", "localhost", 16379, 1000, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char var[160];
        snprintf(var, sizeof var, "PLACE_REDIS_URL=%s", cases[i].url);
        const char *const env[] = {var, NULL};
        cfg_t c;
        char err[256];
        int rc = cfg_load(&c, NULL, E(env), err, sizeof err);
        if (rc) fail_msg("%s: %s", cases[i].url, err);
        assert_string_equal(c.redis.url, cases[i].url);
        assert_string_equal(c.redis.host, cases[i].host);
        assert_int_equal(c.redis.port, cases[i].port);
        assert_int_equal(c.redis.db, cases[i].db);
        assert_string_equal(c.redis.password, cases[i].password);
    }
}

/* ------------------------------------------------------------ errors */

typedef struct {
    const char *section, *key, *value;
    const char *want; /* substring of the message, besides "[section] key" */
} bad_case_t;

static const bad_case_t BAD[] = {
    /* integers */
    {"canvas", "width", "abc", "not an integer"},
    {"canvas", "width", "", "not an integer"},
    {"canvas", "width", "12abc", "not an integer"},
    {"canvas", "width", "1.5", "not an integer"},
    {"canvas", "width", "0x10", "not an integer"},
    {"canvas", "width", "99999999999999999999", "not an integer"},
    {"canvas", "width", "0", "out of range"},
    {"canvas", "width", "4097", "out of range"},
    {"canvas", "width", "-1", "out of range"},
    {"canvas", "height", "0", "out of range"},
    {"canvas", "height", "4097", "out of range"},
    {"http", "port", "65536", "out of range"},
    {"http", "port", "-1", "out of range"},
    {"http", "port", "http", "not an integer"},
    {"cooldown", "seconds", "86401", "out of range"},
    {"cooldown", "seconds", "5s", "not an integer"},
    /* palette */
    {"canvas", "palette", "FFFFF,000000", "colour 0"},
    {"canvas", "palette", "FFFFFF,GGGGGG", "colour 1"},
    {"canvas", "palette", "FFFFFF,FFFFFFF", "colour 1"},
    {"canvas", "palette", "FFFFFF,#12345", "colour 1"},
    {"canvas", "palette", "FFFFFF;000000", "colour 0"},
    {"canvas", "palette", "FFFFFF", "at least 2"},
    {"canvas", "palette", "#FFFFFF", "at least 2"},
    {"canvas", "palette", "", "at least 2"},
    {"canvas", "palette", " , ,", "at least 2"},
    /* booleans */
    {"auth", "cookie_secure", "maybe", "not a boolean"},
    {"auth", "cookie_secure", "", "not a boolean"},
    {"auth", "cookie_secure", "2", "not a boolean"},
    {"auth", "cookie_secure", "tru", "not a boolean"},
    /* strings */
    {"instance", "name", "0123456789012345678901234567890123456789012345678901234567890123",
     "longer than 63"},
    {"log", "level", "verbose", "not one of"},
    {"log", "level", "", "not one of"},
    {"log", "level", "infoo", "not one of"},
    {"log", "level", "warning", "not one of"},
    /* redis url */
    {"redis", "url", "http://127.0.0.1:6379/0", "redis://"},
    {"redis", "url", "", "redis://"},
    {"redis", "url", "redis://", "host"},
    {"redis", "url", "redis://:6379/0", "host"},
    {"redis", "url", "redis://host:0/0", "bad port"},
    {"redis", "url", "redis://host:65536/0", "bad port"},
    {"redis", "url", "redis://host:/0", "bad port"},
    {"redis", "url", "redis://host:abc/0", "bad port"},
    {"redis", "url", "redis://host:12ab", "bad port"},
    {"redis", "url", "redis://host:6379/x", "database"},
    {"redis", "url", "redis://host:6379/-1", "database"},
    {"redis", "url", "redis://host:6379/1001", "database"},
    {"redis", "url", "redis://host:6379/1/2", "database"},
    /* other URLs */
    {"postgres", "url", "mysql://x/y", "postgresql://"},
    {"rabbitmq", "url", "http://guest@x/", "amqp://"},
    {"postgres", "app_role", "Place-Role", "a-z"},
};

static void check_bad(const bad_case_t *b, int rc, const char *err, const char *how)
{
    char sk[96];
    snprintf(sk, sizeof sk, "[%s] %s", b->section, b->key);
    if (rc != PX_ECONFIG)
        fail_msg("%s %s = '%s': rc %d, want PX_ECONFIG (err '%s')", how, sk, b->value, rc, err);
    if (!strstr(err, sk))
        fail_msg("%s %s = '%s': message '%s' lacks '%s'", how, sk, b->value, err, sk);
    if (!strstr(err, b->want))
        fail_msg("%s %s = '%s': message '%s' lacks '%s'", how, sk, b->value, err, b->want);
}

static void test_bad_values_via_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case_t *b = &BAD[i];
        char var[256];
        snprintf(var, sizeof var, "PLACE_%s_%s=%s", b->section, b->key, b->value);
        for (char *p = var; *p != '='; p++)
            if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
        const char *const env[] = {var, NULL};
        cfg_t c;
        char err[256] = "";
        int rc = cfg_load(&c, SHIPPED, E(env), err, sizeof err);
        check_bad(b, rc, err, "env");
    }
}

static void test_bad_values_via_file(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case_t *b = &BAD[i];
        /* the empty value is written as "key = " (an empty value) */
        if (!strcmp(b->value, " , ,")) continue; /* ini trims; covered via env */
        char text[512];
        snprintf(text, sizeof text, "; test\n[%s]\n%s = %s\n", b->section, b->key, b->value);
        cfg_t c;
        char err[256] = "";
        int rc = load_text(&c, text, NO_ENV, err, sizeof err);
        check_bad(b, rc, err, "file");
    }
}

/* The environment error names the variable too. */
static void test_env_error_names_variable(void **state)
{
    (void)state;
    const char *const env[] = {"PLACE_CANVAS_WIDTH=4097", NULL};
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, E(env), err, sizeof err), PX_ECONFIG);
    assert_contains(err, "[canvas] width");
    assert_contains(err, "4097");
    assert_contains(err, "PLACE_CANVAS_WIDTH");
}

static void test_palette_257_colours(void **state)
{
    (void)state;
    char *var = palette_of(257, "PLACE_CANVAS_PALETTE=");
    const char *const env[] = {var, NULL};
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, E(env), err, sizeof err), PX_ECONFIG);
    assert_contains(err, "[canvas] palette");
    assert_contains(err, "more than 256");
    free(var);
}

static void test_unknown_key_in_file(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    assert_int_equal(load_text(&c, "[http]\nport = 3001\nprot = 3002\n", NO_ENV, err, sizeof err),
                     PX_ECONFIG);
    assert_contains(err, "[http] prot");
    assert_contains(err, "unknown");
    /* unknown section */
    assert_int_equal(load_text(&c, "[htp]\nport = 3001\n", NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_contains(err, "[htp] port");
    /* a key before any section */
    assert_int_equal(load_text(&c, "port = 3001\n", NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_contains(err, "port");
    assert_contains(err, "unknown");
}

static void test_syntax_error_in_file(void **state)
{
    (void)state;
    cfg_t c;
    char err[512];
    char *path = write_temp("[http]\nport = 3001\nthis line has no equals sign\nthreads = 2\n");
    assert_int_equal(cfg_load(&c, path, NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_contains(err, path);
    assert_contains(err, ":3:");
    assert_contains(err, "syntax");
    drop_temp(path);

    /* an unterminated section header */
    path = write_temp("[http\n");
    assert_int_equal(cfg_load(&c, path, NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_contains(err, ":1:");
    assert_contains(err, "syntax");
    drop_temp(path);

    /* inih keeps going after a bad line; whichever problem cfg reports, the
     * load fails (here the following key lands in section "" and is
     * reported as unknown) */
    path = write_temp("[http\nport = 3001\n");
    assert_int_equal(cfg_load(&c, path, NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_true(err[0] != '\0');
    drop_temp(path);
}

static void test_missing_file(void **state)
{
    (void)state;
    cfg_t c;
    char err[512];
    const char *path = "tests/unit/data/no-such-config.ini";
    assert_int_equal(cfg_load(&c, path, NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_contains(err, path);
    assert_contains(err, "cannot open");
    /* a path in a missing directory */
    assert_int_equal(cfg_load(&c, "/nonexistent-dir/x.ini", NO_ENV, err, sizeof err), PX_ECONFIG);
    assert_contains(err, "/nonexistent-dir/x.ini");
}

/* Regression test, fixed bug (common/cfg.c finish(), the postgres URL check): a bad
 * [postgres] migrate_url is reported as "[postgres] url: must be a
 * postgresql:// URL", naming the wrong key (cfg.h promises a message naming
 * section/key). Expected the message to contain "[postgres] migrate_url". */
static void test_bad_migrate_url_names_key(void **state)
{
    (void)state;
    const char *const env[] = {"PLACE_POSTGRES_MIGRATE_URL=mysql://x/y", NULL};
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, E(env), err, sizeof err), PX_ECONFIG);
    assert_contains(err, "[postgres] migrate_url");
}

/* A short err buffer is still NUL-terminated and holds the message start. */
static void test_short_error_buffer(void **state)
{
    (void)state;
    const char *const env[] = {"PLACE_CANVAS_WIDTH=abc", NULL};
    cfg_t c;
    char err[12];
    memset(err, 'Z', sizeof err);
    assert_int_equal(cfg_load(&c, NULL, E(env), err, sizeof err), PX_ECONFIG);
    assert_int_equal(err[11], '\0');
    assert_string_equal(err, "[canvas] wi");
}

/* ------------------------------------------------------------ log level */

static void test_log_level_parse(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool ok;
        log_level_t level;
    } cases[] = {
        {"debug", true, LOG_DEBUG}, {"info", true, LOG_INFO},   {"warn", true, LOG_WARN},
        {"error", true, LOG_ERROR}, {"DEBUG", true, LOG_DEBUG}, {"Info", true, LOG_INFO},
        {"WARN", true, LOG_WARN},   {"eRRoR", true, LOG_ERROR}, {"", false, LOG_INFO},
        {"warning", false, LOG_INFO}, {"err", false, LOG_INFO}, {"fatal", false, LOG_INFO},
        {"info ", false, LOG_INFO}, {" info", false, LOG_INFO}, {"trace", false, LOG_INFO},
        {"inf", false, LOG_INFO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        log_level_t out = (log_level_t)99;
        bool ok = log_level_parse(cases[i].name, &out);
        if (ok != cases[i].ok) fail_msg("log_level_parse(\"%s\") = %d", cases[i].name, ok);
        if (ok) assert_int_equal(out, cases[i].level);
    }
    /* the parsed level reaches cfg through [log] level */
    const char *const env[] = {"PLACE_LOG_LEVEL=WARN", NULL};
    cfg_t c;
    char err[256];
    assert_int_equal(cfg_load(&c, NULL, E(env), err, sizeof err), 0);
    assert_string_equal(c.log.level, "WARN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_null_envp_uses_environ),
        cmocka_unit_test(test_shipped_file_equals_defaults),
        cmocka_unit_test(test_shipped_file_sets_every_key),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_env_every_kind),
        cmocka_unit_test(test_env_names_case_insensitive),
        cmocka_unit_test(test_env_foreign_variables_ignored),
        cmocka_unit_test(test_file_names_case_insensitive),
        cmocka_unit_test(test_file_comments_and_blank_lines),
        cmocka_unit_test(test_int_limits_accepted),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_palette_syntax),
        cmocka_unit_test(test_palette_256_via_env),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_bad_values_via_env),
        cmocka_unit_test(test_bad_values_via_file),
        cmocka_unit_test(test_env_error_names_variable),
        cmocka_unit_test(test_palette_257_colours),
        cmocka_unit_test(test_unknown_key_in_file),
        cmocka_unit_test(test_syntax_error_in_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_short_error_buffer),
        cmocka_unit_test(test_log_level_parse),
        /* known bugs in common/cfg.c, see the comments above each */
        cmocka_unit_test(test_palette_long_line_in_file),
        cmocka_unit_test(test_bad_migrate_url_names_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
