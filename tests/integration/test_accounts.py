#!/usr/bin/python3
"""Accounts and administration against real Redis and PostgreSQL: register
(with and without a guest session), login, logout on every instance, /me,
sessions in Redis across a restart, scrypt password hashes, hostile
usernames, the `place-api admin create` command, the admin endpoints
(reset-canvas, ban-user with rollback, unban-user, settings, stats) with
their authorisation matrix, CSRF header and Origin check, the rate limits
(auth, guest, canvas, api) and trusted proxies, /metrics (parsed strictly)
and JSON log lines.

Two api instances (acc-a, acc-b) serve most tests; tests that need their
own settings start their own instance. State is reset once at the start;
every test uses its own user names. scrypt costs ~0.4 s per register/login,
so those are counted: about 45 in the whole file."""

import asyncio
import base64
import contextlib
import glob
import json
import math
import os
import re
import subprocess
import sys
import time
import zlib

from websockets.exceptions import InvalidStatusCode

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BIN, ENV, ROOT, SERVICES, Api, RedisConn, Runner, redis,  # noqa: E402
                     redis_get_bytes, redis_int, reset_state, sql, wait_for, ws_connect)

W = H = 500
NCOLORS = 16
COOLDOWN = 5
ORIGINS = "https://app.example,http://localhost:3001"
GOOD_ORIGIN = "https://app.example"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PW = "password123"
HIGH = 1000000
CSRF = {"X-Place-CSRF": "1"}

A = B = None          # the shared instances
_admin = None         # (token, userId) of the shared admin account


def new_api(name, **kw):
    """An Api with the test origins and every rate limit out of the way
    unless the test names one."""
    kw.setdefault("ws_allowed_origins", ORIGINS)
    for k in ("auth", "guest", "canvas", "api"):
        kw.setdefault(f"limits_{k}_per_min", HIGH)
    return Api(name, **kw)


@contextlib.contextmanager
def running(api):
    api.start()
    try:
        yield api
    finally:
        with contextlib.suppress(Exception):
            api.stop()


def run(coro):
    return asyncio.run(coro)


def err(body, code):
    """body is the JSON error {"error":{"code","message"}} with that code."""
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert body["error"].get("code") == code, f"expected error {code}, got {body}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    return body


def cookie_token(h):
    c = h.get("set-cookie", "")
    assert c.startswith("place_session="), f"no place_session cookie: {c!r}"
    return c.split(";")[0].split("=", 1)[1]


def check_session_cookie(h, token):
    c = h.get("set-cookie", "")
    assert cookie_token(h) == token, (c, token)
    parts = [p.strip() for p in c.split(";")]
    assert "HttpOnly" in parts and "SameSite=Lax" in parts and "Path=/" in parts, c
    assert not any(p.lower().startswith("domain") for p in parts), c


def register(api, name, pw=PW, token=None, headers=None):
    return api.json("POST", "/api/v1/auth/register", {"username": name, "password": pw},
                    token=token, headers=headers)


def login(api, name, pw=PW, headers=None):
    return api.json("POST", "/api/v1/auth/login", {"username": name, "password": pw}, headers=headers)


def new_user(api, name, pw=PW):
    """Registers name; returns (token, userId)."""
    st, h, b = register(api, name, pw)
    assert st == 201, (name, st, b)
    return b["token"], b["userId"]


def me(api, token):
    return api.json("GET", "/api/v1/auth/me", token=token)


def place(api, token, x, y, c):
    return api.json("POST", "/api/v1/pixel", {"x": x, "y": y, "color": c}, token=token)


def users_table():
    return sql("SELECT id, coalesce(username,''), coalesce(password_hash,''), role, is_guest, is_banned "
               "FROM users ORDER BY id")


def admin_rows(where="true"):
    return sql(f"SELECT action_type, admin_user_id, coalesce(target_user_id::text,'') FROM admin_actions "
               f"WHERE {where} ORDER BY id")


def admin_count():
    return int(sql("SELECT count(*) FROM admin_actions")[0][0])


def hgetall_raw(key):
    r = RedisConn()
    try:
        return r.pipeline([["HGETALL", key]])[0]
    finally:
        r.close()


def hset_raw(key, kv):
    r = RedisConn()
    try:
        r.pipeline([["HSET", key, *kv]])
    finally:
        r.close()


def admin():
    """The shared admin (token, userId): registered through the API and made
    admin in SQL, so the admin endpoint tests do not depend on the admin
    command (tested on its own)."""
    global _admin
    if _admin is None or me(A, _admin[0])[0] != 200:
        name = "acc_admin"
        if not sql("SELECT 1 FROM users WHERE lower(username) = lower(:'p0')", name):
            new_user(A, name)
        sql("UPDATE users SET role = 'admin' WHERE lower(username) = lower(:'p0')", name)
        st, h, b = login(A, name)
        assert st == 200 and b["isAdmin"] is True, (st, b)
        _admin = (b["token"], b["userId"])
    return _admin


def adm(method, path, body=None, token=None, api=None, csrf=True, headers=None):
    h = dict(CSRF if csrf else {})
    h.update(headers or {})
    if method != "GET" and body is None:
        body = {}
    return (api or A).json(method, "/api/v1/admin/" + path, body, token=token, headers=h)


def set_cooldown(secs, api=None):
    st, _, b = adm("PUT", "settings", {"cooldownSeconds": secs}, token=admin()[0], api=api)
    assert st == 200, (st, b)
    return b


async def closed_with(c, code, timeout=5):
    """The next error message has this code and the socket is then closed
    1008 (timeout is generous; the contract says ~1 s)."""
    m = await c.expect("error", timeout)
    assert m["code"] == code, m
    try:
        await asyncio.wait_for(c.ws.wait_closed(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"socket still open {timeout}s after the {code} error") from None
    assert c.close_code == 1008, c.close_code


def avoid_minute_edge(need=20):
    """Rate windows slide, but their buckets are wall-clock minutes: start a
    sequence that must be counted whole away from a bucket's edge, so the
    counts below are exact rather than weighed."""
    left = 60 - time.time() % 60
    if left < need:
        time.sleep(left + 0.2)


# ---------------------------------------------------------------- register, login, logout, me

def test_register_login_me():
    st, h, b = register(A, "Alice_1")
    assert st == 201, (st, b)
    assert set(b) >= {"userId", "username", "isGuest", "isAdmin", "token"}, b
    assert b["username"] == "Alice_1" and b["isGuest"] is False and b["isAdmin"] is False, b
    assert UUID.match(b["userId"]) and HEX64.match(b["token"]), b
    assert "password" not in json.dumps(b).lower(), b
    check_session_cookie(h, b["token"])
    uid, t1 = b["userId"], b["token"]
    # the cookie works on the other instance too
    st, _, m = B.json("GET", "/api/v1/auth/me", headers={"Cookie": "place_session=" + t1})
    assert st == 200, (st, m)
    assert (m["userId"], m["username"], m["isGuest"], m["isAdmin"]) == (uid, "Alice_1", False, False), m
    assert m["cooldownRemaining"] == 0, m
    assert redis("HGET", f"session:{t1}", "uid").strip() == uid
    assert 86000 < redis_int("TTL", f"session:{t1}") <= 86400
    row = sql("SELECT username, role, is_guest, is_banned FROM users WHERE id = :'p0'", uid)
    assert row == [["Alice_1", "user", "f", "f"]], row

    # taken, in any case; nothing added
    n0 = users_table()
    for name in ("Alice_1", "ALICE_1"):
        st, _, b = register(A, name, "otherpass1")
        assert st == 409, (name, st, b)
        err(b, "USERNAME_TAKEN")
    assert users_table() == n0

    # login: a new token each time, cookie, same shape
    st, h, l1 = login(B, "Alice_1")
    assert st == 200, (st, l1)
    assert (l1["userId"], l1["username"], l1["isGuest"], l1["isAdmin"]) == (uid, "Alice_1", False, False), l1
    assert HEX64.match(l1["token"]) and l1["token"] != t1, l1
    check_session_cookie(h, l1["token"])
    st, _, m = me(A, l1["token"])
    assert st == 200 and m["userId"] == uid, m

    # wrong password and unknown user: same 401, same message
    st, _, bad1 = login(A, "Alice_1", "wrongpass1")
    assert st == 401, (st, bad1)
    err(bad1, "INVALID_CREDENTIALS")
    st, _, bad2 = login(A, "nobody_here", PW)
    assert st == 401, (st, bad2)
    err(bad2, "INVALID_CREDENTIALS")
    assert bad1["error"]["message"] == bad2["error"]["message"], (bad1, bad2)
    assert "set-cookie" not in login(A, "nobody_here", "x" * 8)[1]

    # no session
    st, _, b = A.json("GET", "/api/v1/auth/me")
    assert st == 401, (st, b)


def test_register_bad_requests_change_nothing():
    before = users_table()
    bodies = [b"", b"{", b"not json", b"[]", b"null", b'"x"', b"{}",
              b'{"username":"bob_valid"}', b'{"password":"password123"}',
              b'{"username":"bob_valid","password":"password123"} trailing',
              b'{"username":123,"password":"password123"}',
              b'{"username":null,"password":"password123"}',
              b'{"username":["bob_valid"],"password":"password123"}',
              b'{"username":"bob_valid","password":12345678}',
              b'{"username":"bob_valid","password":null}',
              b'{"username":"bob_\xff","password":"password123"}']
    for body in bodies:
        for path in ("/api/v1/auth/register", "/api/v1/auth/login"):
            st, h, b = A.json("POST", path, body)
            assert st == 400, (path, body, st, b)
            err(b, "BAD_REQUEST")
            assert "set-cookie" not in h, (path, body, h)
    names = ["x'; DROP TABLE users;--", "admin' OR '1'='1", "ålice", "用户", "a\u0000b",
             "smile\U0001F600", "\U0001F600\U0001F600\U0001F600", "a" * 33, "ab", "", "   ",
             "has space", "dot.name", "tab\tname", "new\nline", "slash/name", "ａｂｃ",
             "\u212Aelvin", "\u0131dris", "e\u0301te", "name%00", "bob@host", "<script>"]
    for name in names:
        st, h, b = register(A, name, PW)
        assert st == 400, (name, st, b)
        err(b, "BAD_REQUEST")
        assert "set-cookie" not in h
    for pw in ("short7c", "", "x" * 1025, "é" * 513):  # 7 chars; 1025 bytes; 1026 bytes
        st, _, b = register(A, "bob_valid", pw)
        assert st == 400, (len(pw), st, b)
        err(b, "BAD_REQUEST")
    assert users_table() == before, "a refused registration changed the users table"
    # SQL-looking logins are refused too (400 or 401, never a session)
    for name in ("x'; DROP TABLE users;--", "admin' OR '1'='1", "' OR 1=1 --"):
        st, h, b = login(A, name, "' OR '1'='1")
        assert st in (400, 401) and "set-cookie" not in h, (name, st, b)
        err(b, "BAD_REQUEST" if st == 400 else "INVALID_CREDENTIALS")
    assert users_table() == before
    assert sql("SELECT to_regclass('public.users') IS NOT NULL") == [["t"]]
    # the edges of the rules are accepted: 3 and 32 characters, '_' and '-'
    for name in ("x-1", "Z" * 30 + "_-"):
        st, _, b = register(A, name, "8charsok")
        assert st == 201 and b["username"] == name, (name, st, b)
    st, _, b = register(A, "pw_max_len", "p" * 1024)
    assert st == 201, (st, b)


def test_password_hashes():
    _, u1 = new_user(A, "same_pw_1", "correct horse")
    _, u2 = new_user(B, "same_pw_2", "correct horse")
    h1 = sql("SELECT password_hash FROM users WHERE id = :'p0'", u1)[0][0]
    h2 = sql("SELECT password_hash FROM users WHERE id = :'p0'", u2)[0][0]
    assert h1 != h2, "same password, same hash: no salt?"
    prefix = "$scrypt$ln=17,r=8,p=1$"
    for hv in (h1, h2):
        assert hv.startswith(prefix), hv
        assert "correct" not in hv
        parts = hv[len(prefix):].split("$")
        assert len(parts) == 2, hv
        raw = []
        for p in parts:
            assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", p), (p, hv)
            raw.append(base64.b64decode(p + "=" * (-len(p) % 4)))
        assert len(raw[0]) >= 16 and len(raw[1]) >= 32, (len(raw[0]), len(raw[1]), hv)
    assert h1.split("$")[-2] != h2.split("$")[-2], "same salt for two users"


def test_guest_upgrade_keeps_history():
    async def go():
        for how in ("bearer", "cookie"):
            gtok, gid = A.guest()
            st, _, p = place(A, gtok, 30 if how == "bearer" else 31, 30, 4)
            assert st == 201, p
            ws = await ws_connect(B, gtok)
            wait_for(lambda: sql("SELECT 1 FROM pixel_events WHERE seq = :'p0'", p["seq"]), what="event row")
            name = f"upgraded_{how}"
            if how == "bearer":
                st, h, b = register(A, name, token=gtok)
            else:
                st, h, b = register(A, name, headers={"Cookie": "place_session=" + gtok})
            assert st == 201, (how, st, b)
            assert b["userId"] == gid and b["isGuest"] is False and b["username"] == name, (gid, b)
            assert b["token"] != gtok
            check_session_cookie(h, b["token"])
            # the guest session is gone (every instance), the account's works
            for api in (A, B):
                st, _, m = me(api, gtok)
                assert st == 401, (how, st, m)
            st, _, m = me(B, b["token"])
            assert st == 200 and m["userId"] == gid and m["isGuest"] is False and m["username"] == name, m
            row = sql("SELECT username, is_guest FROM users WHERE id = :'p0'", gid)
            assert row == [[name, "f"]], row
            assert int(sql("SELECT count(*) FROM users WHERE lower(username) = :'p0'", name)[0][0]) == 1
            st, _, hu = A.json("GET", f"/api/v1/history/user/{gid}")
            assert st == 200 and [e["seq"] for e in hu["events"]] == [p["seq"]], hu
            with contextlib.suppress(Exception):
                await ws.close()
        # a taken name with a guest session: 409, and the guest keeps its session
        gtok, gid = A.guest()
        st, _, b = register(A, "UPGRADED_bearer", token=gtok)
        assert st == 409, (st, b)
        err(b, "USERNAME_TAKEN")
        st, _, m = me(A, gtok)
        assert st == 200 and m["userId"] == gid and m["isGuest"] is True, m
    run(go())


def test_logout_everywhere():
    async def go():
        tok, uid = new_user(A, "leaver_1")
        st, _, l2 = login(B, "leaver_1")
        assert st == 200, l2
        other = l2["token"]
        wa = await ws_connect(A, tok)
        wb = await ws_connect(B, tok, how="cookie")
        wo = await ws_connect(B, other)
        st, h, b = B.json("POST", "/api/v1/auth/logout", headers={"Cookie": "place_session=" + tok})
        assert st == 200 and b == {"ok": True}, (st, b)
        c = h.get("set-cookie", "")
        assert c.startswith("place_session=") and re.search(r"(?i)max-age=0\b", c), c
        for api in (A, B):
            st, _, m = me(api, tok)
            assert st == 401, (api.name, st, m)
            err(m, "UNAUTHORIZED")
        assert redis_int("EXISTS", f"session:{tok}") == 0
        await closed_with(wa, "UNAUTHORIZED")
        await closed_with(wb, "UNAUTHORIZED")
        # the user's other session is not this session
        st, _, m = me(A, other)
        assert st == 200 and m["userId"] == uid, (st, m)
        assert (await wo.request({"type": "ping"}, "pong"))["type"] == "pong"
        assert not wo.ws.closed
        # a new socket with the old token is refused
        try:
            await ws_connect(A, tok)
            raise AssertionError("WebSocket opened with a logged-out session")
        except InvalidStatusCode as e:
            assert e.status_code == 401, e.status_code
        # logout by bearer token as well
        st, _, b = A.json("POST", "/api/v1/auth/logout", token=other)
        assert st == 200 and b == {"ok": True}, (st, b)
        await closed_with(wo, "UNAUTHORIZED")
        assert me(B, other)[0] == 401
    run(go())


def test_session_in_redis_survives_restart():
    api = new_api("acc-restart")
    with running(api):
        tok, uid = new_user(api, "restart_1")
        fields = redis("HGETALL", f"session:{tok}").split("\n")
        kv = dict(zip(fields[0::2], fields[1::2]))
        assert kv.get("uid") == uid, kv
        # sliding TTL
        redis("EXPIRE", f"session:{tok}", 100)
        assert me(api, tok)[0] == 200
        assert redis_int("TTL", f"session:{tok}") > 86000
        assert api.stop() == 0
        api.start()
        st, _, m = me(api, tok)
        assert st == 200 and m["userId"] == uid and m["username"] == "restart_1", (st, m)


# ---------------------------------------------------------------- admin command

def admin_cmd(name, password):
    env = dict(os.environ)
    env.update(ENV)
    return subprocess.run([os.path.join(BIN, "place-api"), "admin", "create", name], cwd=ROOT, env=env,
                          input=password + "\n", capture_output=True, text=True, timeout=30)


def test_admin_create_command():
    r = admin_cmd("boss_1", "password123")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    row = sql("SELECT role, is_guest, password_hash LIKE '$scrypt$%' FROM users WHERE username = 'boss_1'")
    assert row == [["admin", "f", "t"]], row
    st, _, b = login(A, "boss_1", "password123")
    assert st == 200 and b["isAdmin"] is True and b["username"] == "boss_1", (st, b)
    st, _, m = me(B, b["token"])
    assert st == 200 and m["isAdmin"] is True, m
    st, _, s = adm("GET", "stats", token=b["token"])
    assert st == 200, (st, s)

    # too short: exit 2, nothing created
    before = users_table()
    r = admin_cmd("boss_2", "short7c")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert users_table() == before

    # an existing user is promoted and gets the new password
    tok, uid = new_user(A, "promote_me", "userpass1")
    r = admin_cmd("promote_me", "newpass123")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    row = sql("SELECT id, role FROM users WHERE lower(username) = 'promote_me'")
    assert row == [[uid, "admin"]], row
    st, _, b = login(A, "promote_me", "userpass1")
    assert st == 401, (st, b)
    st, _, b = login(A, "promote_me", "newpass123")
    assert st == 200 and b["isAdmin"] is True and b["userId"] == uid, (st, b)


# ---------------------------------------------------------------- admin: who may

def test_admin_auth_matrix():
    atok, aid = admin()
    gtok, gid = A.guest()
    utok, uid = new_user(A, "plain_user_1")
    btok, bid = A.guest()
    victim_tok, victim = A.guest()
    # a banned guest: its sessions are revoked, so the session is gone (401)
    saved = hgetall_raw(f"session:{btok}")
    assert saved, "no session hash in Redis"
    st, _, b = adm("POST", "ban-user", {"userId": bid}, token=atok)
    assert st == 200, (st, b)
    n0 = admin_count()
    seq0 = redis("GET", "canvas:seq").strip()
    canvas0 = redis_get_bytes("canvas:main")
    cd0 = redis("HGET", "settings", "cooldown_ms").strip()
    calls = [("POST", "reset-canvas", {}), ("POST", "ban-user", {"userId": victim}),
             ("POST", "unban-user", {"userId": bid}), ("PUT", "settings", {"cooldownSeconds": 42}),
             ("GET", "stats", None)]
    for method, path, body in calls:
        for who, tok, status, code in [("anonymous", None, 401, "UNAUTHORIZED"),
                                       ("bad token", "ab" * 32, 401, "UNAUTHORIZED"),
                                       ("guest", gtok, 403, "FORBIDDEN"),
                                       ("user", utok, 403, "FORBIDDEN"),
                                       ("banned", btok, 401, "UNAUTHORIZED")]:
            for api in (A, B):
                st, _, r = adm(method, path, body, token=tok, api=api)
                assert st == status, (who, method, path, st, r)
                err(r, code)
    # a session of a banned user that is still there (say, restored) is no admin either
    hset_raw(f"session:{btok}", saved)
    try:
        for method, path, body in calls:
            st, _, r = adm(method, path, body, token=btok)
            assert st == 403, ("banned session", path, st, r)
            assert r["error"]["code"] in ("FORBIDDEN", "BANNED"), r
        # and the refused unban-user calls left it banned
        st, _, r = place(A, btok, 3, 3, 3)
        assert st == 403, ("banned guest places", st, r)
        err(r, "BANNED")
    finally:
        redis("DEL", f"session:{btok}")
    # nothing happened
    assert admin_count() == n0, admin_rows()
    assert redis("GET", "canvas:seq").strip() == seq0
    assert redis_get_bytes("canvas:main") == canvas0
    assert redis("HGET", "settings", "cooldown_ms").strip() == cd0
    assert sql("SELECT is_banned FROM users WHERE id = :'p0'", victim) in ([], [["f"]])
    assert me(A, victim_tok)[0] == 200
    st, _, r = place(B, victim_tok, 4, 4, 4)  # the refused ban-user calls did not ban it
    assert st == 201, (st, r)
    # and the admin may do all of it
    for method, path, body in calls:
        if path == "settings":
            body = {"cooldownSeconds": COOLDOWN}
        st, _, r = adm(method, path, body, token=atok, api=B)
        assert st == 200, (path, st, r)
    rows = admin_rows("id > (SELECT max(id) FROM admin_actions) - 4")
    assert [r[0] for r in rows] == ["reset_canvas", "ban_user", "unban_user", "settings"], rows
    assert all(r[1] == aid for r in rows), rows
    assert rows[1][2] == victim and rows[2][2] == bid, rows
    assert admin_count() == n0 + 4, "GET stats or a refused call wrote an admin_actions row"
    st, _, r = adm("POST", "unban-user", {"userId": victim}, token=atok)
    assert st == 200, r


def test_admin_csrf_and_origin():
    atok, aid = admin()
    gtok, gid = A.guest()
    n0 = admin_count()
    seq0 = redis("GET", "canvas:seq")
    cd0 = redis("HGET", "settings", "cooldown_ms")
    for method, path, body in [("POST", "reset-canvas", {}), ("POST", "ban-user", {"userId": gid}),
                               ("POST", "unban-user", {"userId": gid}),
                               ("PUT", "settings", {"cooldownSeconds": 9})]:
        for hdrs in ({}, {"X-Place-CSRF": "0"}):
            st, _, r = adm(method, path, body, token=atok, csrf=False, headers=hdrs)
            assert st == 403, (path, hdrs, st, r)
            err(r, "FORBIDDEN")
        # the admin's cookie, as a browser would send it for a foreign site's form
        st, _, r = adm(method, path, body, csrf=False, headers={"Cookie": "place_session=" + atok})
        assert st == 403, (path, "cookie without the CSRF header", st, r)
        err(r, "FORBIDDEN")
        for origin in ("http://evil.example", "null", "https://app.example.evil", "http://app.example"):
            st, _, r = adm(method, path, body, token=atok, headers={"Origin": origin})
            assert st == 403, (path, origin, st, r)
            err(r, "FORBIDDEN")
    assert admin_count() == n0, admin_rows()
    assert redis("GET", "canvas:seq") == seq0
    assert me(A, gtok)[0] == 200
    assert redis("HGET", "settings", "cooldown_ms") == cd0
    # with the header, an allowed Origin and the cookie: done
    st, _, r = adm("PUT", "settings", {"cooldownSeconds": COOLDOWN}, csrf=True,
                   headers={"Origin": GOOD_ORIGIN, "Cookie": "place_session=" + atok})
    assert st == 200, (st, r)
    st, _, r = adm("GET", "stats", headers={"Origin": GOOD_ORIGIN, "Cookie": "place_session=" + atok})
    assert st == 200, (st, r)
    assert admin_count() == n0 + 1


# ---------------------------------------------------------------- admin: reset

def test_reset_canvas():
    async def go():
        atok, aid = admin()
        toks = [A.guest()[0] for _ in range(3)]
        for i, t in enumerate(toks):
            assert place(A, t, 50 + i, 60, 9 + i)[0] == 201
        ca = await ws_connect(A, toks[0])
        cb = await ws_connect(B, toks[1])
        before = redis_get_bytes("canvas:main")
        seq0 = redis_int("GET", "canvas:seq")
        assert len(before) == W * H and any(before)
        n0 = admin_count()
        st, _, r = adm("POST", "reset-canvas", {}, token=atok, api=B)
        assert st == 200, (st, r)
        assert r["ok"] is True and type(r["seq"]) is int and type(r["snapshotId"]) is int, r
        assert r["seq"] > seq0, (r, seq0)
        after = redis_get_bytes("canvas:main")
        assert after == bytes(W * H), f"{sum(1 for x in after if x)} non-zero bytes after the reset"
        assert redis_int("GET", "canvas:seq") >= r["seq"]
        for c in (ca, cb):
            m = await c.expect("reset")
            assert m["seq"] == r["seq"], (m, r)
        snap = sql("SELECT seq, width, height, encode(canvas_z, 'hex'), encode(substr(png, 1, 8), 'hex') "
                   "FROM canvas_snapshots WHERE id = :'p0'", r["snapshotId"])
        assert len(snap) == 1, snap
        sseq, sw, sh, z, pngsig = snap[0]
        assert (int(sw), int(sh)) == (W, H) and seq0 <= int(sseq) < r["seq"], snap[0][:3]
        assert zlib.decompress(bytes.fromhex(z)) == before, "snapshot is not the pre-reset canvas"
        assert pngsig == "89504e470d0a1a0a", pngsig
        assert admin_count() == n0 + 1
        assert admin_rows("id = (SELECT max(id) FROM admin_actions)") == [["reset_canvas", aid, ""]]
        # readers see the empty canvas; placing goes on from there
        def empty():
            data, seq = A.canvas()
            return data == bytes(W * H) and seq >= r["seq"]
        wait_for(empty, timeout=5, what="GET /api/v1/canvas empty, X-Canvas-Seq >= the reset's")
        t4, _ = A.guest()
        c2 = await ws_connect(B, t4)
        assert c2.welcome["seq"] >= r["seq"], c2.welcome
        st, _, p = place(A, t4, 1, 2, 3)
        assert st == 201 and p["seq"] > r["seq"], p
        assert redis_get_bytes("canvas:main")[2 * W + 1] == 3
        for c in (ca, cb, c2):
            await c.close()
    run(go())


def test_reset_survives_rebuild():
    """Beyond the letter of the contract: a reset must hold when Redis loses
    the canvas and an instance rebuilds it from the record (snapshot +
    events), or the old pixels come back."""
    atok, _ = admin()
    t1, t2 = A.guest()[0], A.guest()[0]
    assert place(A, t1, 200, 201, 7)[0] == 201
    st, _, r = adm("POST", "reset-canvas", {}, token=atok)
    assert st == 200, (st, r)
    st, _, p = place(B, t2, 202, 203, 9)
    assert st == 201, p
    wait_for(lambda: sql("SELECT 1 FROM pixel_events WHERE seq = :'p0'", p["seq"]), what="event row")
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0, what="sink drained")
    expect = redis_get_bytes("canvas:main")
    assert [i for i, v in enumerate(expect) if v] == [203 * W + 202], "canvas after reset + 1 placement"
    redis("DEL", "canvas:main")
    api = new_api("acc-rebuild")
    with running(api):
        got = redis_get_bytes("canvas:main")
        assert len(got) == W * H, len(got)
        back = {(i % W, i // W): v for i, v in enumerate(got) if v != expect[i]}
        assert not back, f"rebuilt canvas differs from the reset one at {len(back)} pixels, e.g. {list(back.items())[:5]}"


# ---------------------------------------------------------------- admin: ban, rollback, unban

def test_ban_rollback_unban():
    try:
        run(_ban_rollback_unban())
    finally:
        set_cooldown(COOLDOWN)


async def _ban_rollback_unban():
    atok, aid = admin()
    set_cooldown(0)
    utok, uid = new_user(A, "vandal_1")
    otok, oid = A.guest()
    o2tok, o2id = B.guest()
    P1, P2, P3, P5 = (10, 10), (11, 10), (12, 10), (14, 10)
    ix = lambda p: p[1] * W + p[0]  # noqa: E731

    # bad bodies first
    for body in ({}, {"userId": "not-a-uuid"}, {"userId": uid, "rollbackSeconds": -1},
                 {"userId": uid, "rollbackSeconds": 86401}, {"userId": uid, "rollbackSeconds": "5"},
                 {"userId": uid, "rollbackSeconds": 1.5}, {"userId": 5}, {"userId": uid + "'--"}, []):
        st, _, r = adm("POST", "ban-user", body, token=atok)
        assert st == 400, (body, st, r)
        err(r, "BAD_REQUEST")
    assert me(A, utok)[0] == 200

    # U's pixel outside the window, and O's colour under P1
    seqs = []
    for tok, p, c in [(utok, P5, 11), (otok, P1, 3)]:
        st, _, b = place(A, tok, p[0], p[1], c)
        assert st == 201, b
        seqs.append(b["seq"])
    time.sleep(4.0)  # outside a 2 s window
    observer = await ws_connect(A, otok)
    uws = await ws_connect(B, utok)
    for tok, p, c in [(utok, P1, 5), (utok, P1, 6), (utok, P2, 7), (utok, P3, 8), (o2tok, P3, 9)]:
        st, _, b = place(A if tok == utok else B, tok, p[0], p[1], c)
        assert st == 201, b
        seqs.append(b["seq"])
    s = ",".join(map(str, seqs))
    wait_for(lambda: sql(f"SELECT count(*) FROM pixel_events WHERE seq IN ({s})") == [[str(len(seqs))]],
             timeout=10, what="events in PostgreSQL")
    saved = hgetall_raw(f"session:{utok}")
    assert saved, "no session hash in Redis"
    before = redis_get_bytes("canvas:main")
    assert [before[ix(p)] for p in (P1, P2, P3, P5)] == [6, 7, 9, 11]
    seq0 = redis_int("GET", "canvas:seq")
    n0 = admin_count()

    st, _, r = adm("POST", "ban-user", {"userId": uid, "rollbackSeconds": 2}, token=atok, api=B)
    assert st == 200, (st, r)
    assert r["ok"] is True and r["userId"] == uid and r["restored"] == 2, r

    # exact restore, nothing else touched
    after = redis_get_bytes("canvas:main")
    diff = {i: after[i] for i in range(W * H) if after[i] != before[i]}
    assert diff == {ix(P1): 3, ix(P2): 0}, diff
    assert after[ix(P3)] == 9 and after[ix(P5)] == 11
    assert redis_int("GET", "canvas:seq") == seq0 + 2
    # broadcast and logged as placements
    for p, c in ((P1, 3), (P2, 0)):
        await observer.seen("update", where=lambda m, p=p, c=c: (m["x"], m["y"], m["color"]) == (p[0], p[1], c)
                            and m["seq"] > seq0)
        wait_for(lambda p=p, c=c: sql(f"SELECT 1 FROM pixel_events WHERE x = {p[0]} AND y = {p[1]} "
                                      f"AND color = {c} AND seq > {seq0}"), timeout=10,
                 what=f"restoring event for {p} in pixel_events")
    # the user is out everywhere
    await closed_with(uws, "BANNED")
    assert not observer.ws.closed
    for api in (A, B):
        assert me(api, utok)[0] == 401
        st, _, b = place(api, utok, 100, 100, 1)
        assert st == 401, (st, b)
    hset_raw(f"session:{utok}", saved)
    try:
        st, _, b = place(B, utok, 100, 100, 1)
        assert st == 403, ("placement with a surviving session of a banned user", st, b)
        err(b, "BANNED")
    finally:
        redis("DEL", f"session:{utok}")
    st, _, b = login(A, "vandal_1")
    assert st == 403, (st, b)
    err(b, "BANNED")
    assert "set-cookie" not in login(B, "vandal_1", "wrongpass9")[1]
    assert redis_get_bytes("canvas:main")[ix((100, 100))] == 0
    assert sql("SELECT is_banned FROM users WHERE id = :'p0'", uid) == [["t"]]
    assert admin_count() == n0 + 1
    assert admin_rows("id = (SELECT max(id) FROM admin_actions)") == [["ban_user", aid, uid]]
    # unban
    for body in ({}, {"userId": "nope"}):
        st, _, r = adm("POST", "unban-user", body, token=atok)
        assert st == 400, (body, st, r)
    st, _, r = adm("POST", "unban-user", {"userId": uid}, token=atok)
    assert st == 200 and r["ok"] is True and r["userId"] == uid, (st, r)
    assert admin_rows("id = (SELECT max(id) FROM admin_actions)") == [["unban_user", aid, uid]]
    st, _, b = login(B, "vandal_1")
    assert st == 200, (st, b)
    st, _, p = place(A, b["token"], 100, 100, 1)
    assert st == 201, (st, p)
    await observer.close()


# ---------------------------------------------------------------- admin: settings

def test_settings_cooldown_everywhere():
    try:
        run(_settings())
    finally:
        set_cooldown(COOLDOWN)


async def _settings():
    atok, aid = admin()
    gtok, gid = B.guest()
    wb = await ws_connect(B, gtok)
    wa = await ws_connect(A, A.guest()[0])
    n0 = admin_count()
    for body in ({}, {"cooldownSeconds": -1}, {"cooldownSeconds": 3601}, {"cooldownSeconds": "5"},
                 {"cooldownSeconds": None}, {"cooldownSeconds": True}, [], {"cooldown": 5}):
        st, _, r = adm("PUT", "settings", body, token=atok)
        assert st == 400, (body, st, r)
        err(r, "BAD_REQUEST")
    st, _, r = A.json("PUT", "/api/v1/admin/settings", b"{", token=atok, headers=CSRF)
    assert st == 400, (st, r)
    assert admin_count() == n0
    assert B.json("GET", "/api/v1/canvas/info")[2]["cooldown"] == COOLDOWN

    st, _, r = adm("PUT", "settings", {"cooldownSeconds": 2}, token=atok, api=A)
    assert st == 200 and r["cooldownSeconds"] == 2 and r["cooldownMs"] == 2000, (st, r)
    for c in (wb, wa):
        m = await c.expect("settings")
        assert m["cooldown"] == 2 and m["cooldownMs"] == 2000, m
    st, _, info = B.json("GET", "/api/v1/canvas/info")
    assert st == 200 and info["cooldown"] == 2, info
    st, _, p = place(B, gtok, 70, 70, 2)
    assert st == 201 and p["cooldown"] == 2, p
    st, h, p2 = place(A, gtok, 71, 70, 2)
    assert st == 429, p2
    assert 0 < p2["error"]["cooldownRemaining"] <= 2, p2
    assert redis("HGET", "settings", "cooldown_ms").strip() == "2000"
    rows = sql("SELECT key, value::text FROM settings")
    assert any(re.search(r"\b2000\b", v) or re.fullmatch(r"\s*2(\.0+)?\s*", v)
               or re.search(r":\s*2(\.0+)?\s*[,}]", v) for _, v in rows), rows
    assert admin_count() == n0 + 1
    assert admin_rows("id = (SELECT max(id) FROM admin_actions)") == [["settings", aid, ""]]
    # fractions and zero
    st, _, r = adm("PUT", "settings", {"cooldownSeconds": 0.5}, token=atok, api=B)
    assert st == 200 and r["cooldownMs"] == 500, (st, r)
    assert (await wa.expect("settings"))["cooldownMs"] == 500
    st, _, r = adm("PUT", "settings", {"cooldownSeconds": 0}, token=atok)
    assert st == 200 and r["cooldownMs"] == 0, (st, r)
    t2, _ = A.guest()
    assert place(A, t2, 72, 70, 3)[0] == 201 and place(B, t2, 73, 70, 3)[0] == 201
    st, _, r = adm("PUT", "settings", {"cooldownSeconds": 3600}, token=atok)
    assert st == 200 and r["cooldownMs"] == 3600000, (st, r)
    st, _, m = me(A, t2)
    assert st == 200, m
    for c in (wa, wb):
        await c.close()


# ---------------------------------------------------------------- admin: stats

def stats():
    st, _, s = adm("GET", "stats", token=admin()[0])
    assert st == 200, (st, s)
    return s


def test_admin_stats():
    async def go():
        wait_for(lambda: stats()["connections"] == A.health_ws() + B.health_ws() == 0, timeout=10,
                 what="no WebSockets left from earlier tests")
        s0 = stats()
        for k, t in [("instance", str), ("pixelsTotal", int), ("pixelsByColor", list), ("activeUsers5m", int),
                     ("connections", int), ("connectionsByInstance", dict), ("sinkLagMs", int),
                     ("sinkPending", int)]:
            assert type(s0.get(k)) is t, (k, s0)
        assert type(s0["placementsPerSec"]) in (int, float) and s0["placementsPerSec"] >= 0, s0
        assert s0["instance"] == "acc-a", s0
        assert len(s0["pixelsByColor"]) == NCOLORS and all(type(v) is int and v >= 0 for v in s0["pixelsByColor"])
        assert s0["sinkLagMs"] >= 0 and s0["sinkPending"] >= 0
        toks = [A.guest()[0] for _ in range(3)]
        socks = [await ws_connect(A, toks[0]), await ws_connect(A, toks[1]), await ws_connect(B, toks[2])]
        for i, t in enumerate(toks):
            st, _, b = place(B if i == 2 else A, t, 80 + i, 80, 5)
            assert st == 201, b
        s1 = wait_for(lambda: (lambda s: s if s["placementsPerSec"] > 0 else None)(stats()), timeout=5,
                      what="placementsPerSec > 0")

        def moved():
            s = stats()
            ok = (s["pixelsByColor"][5] == s0["pixelsByColor"][5] + 3
                  and s["pixelsTotal"] == s0["pixelsTotal"] + 3
                  # a HyperLogLog estimate: a new user whose hash lands in a
                  # register that already holds an equal or higher rank is not
                  # counted (a few in a thousand with ~17 users; one clean-clone
                  # run saw +2 for 3 users), so at least two of the three
                  and s["activeUsers5m"] >= s0["activeUsers5m"] + 2
                  and s["connectionsByInstance"].get("acc-a", 0) == s0["connectionsByInstance"].get("acc-a", 0) + 2
                  and s["connectionsByInstance"].get("acc-b", 0) == s0["connectionsByInstance"].get("acc-b", 0) + 1
                  and s["connections"] == s0["connections"] + 3)
            moved.last = s
            return ok
        try:
            wait_for(moved, timeout=10, what="stats to move")
        except AssertionError:
            raise AssertionError(f"stats did not move as expected: before {s0}, after {moved.last}") from None
        s = moved.last
        assert sum(s["connectionsByInstance"].values()) == s["connections"], s
        assert [a - b for a, b in zip(s["pixelsByColor"], s0["pixelsByColor"])] == [0] * 5 + [3] + [0] * 10, s
        assert s1["placementsPerSec"] > 0
        st, _, sb = adm("GET", "stats", token=admin()[0], api=B)
        assert st == 200 and sb["instance"] == "acc-b" and sb["connections"] == s["connections"], sb
        for c in socks:
            await c.close()
        wait_for(lambda: stats()["connections"] == s0["connections"], timeout=10, what="connections back down")
    run(go())


# ---------------------------------------------------------------- rate limits

def xff(ip):
    return {"X-Forwarded-For": ip}


def is_429(st, h, b, what):
    assert st == 429, (what, st, b)
    err(b, "RATE_LIMITED")
    ra = h.get("retry-after")
    # sliding one-minute windows: at most two minutes (when far more than the
    # limit was counted in the last minute, e.g. by earlier tests' higher limits)
    assert ra and ra.isdigit() and 1 <= int(ra) <= 120, (what, ra)
    assert b["error"].get("retryAfter") == int(ra), (what, b)


def test_auth_rate_limit():
    api = new_api("acc-limits", limits_auth_per_min=5)
    with running(api):
        avoid_minute_edge(10)
        ip = xff("10.1.1.1")
        st, _, b = register(api, "limited_1", headers=ip)  # 1
        assert st == 201, b
        for i in range(3):  # 2..4
            st, _, b = login(api, "limited_1", "wrongpass1", headers=ip)
            assert st == 401, (i, st, b)
        st, _, b = login(api, "limited_1", PW, headers=ip)  # 5
        assert st == 200, b
        for what, call in [("6th login", lambda: login(api, "limited_1", PW, headers=ip)),
                           ("7th: register", lambda: register(api, "limited_2", headers=ip))]:
            st, h, b = call()
            is_429(st, h, b, what)
            assert "set-cookie" not in h
        assert not sql("SELECT 1 FROM users WHERE username = 'limited_2'")
        # another client address is not limited
        st, _, b = login(api, "limited_1", PW, headers=xff("10.1.1.2"))
        assert st == 200, b
        # an unrelated limit is untouched
        assert api.json("GET", "/api/v1/auth/me", token=b["token"], headers=ip)[0] == 200

    # X-Forwarded-For from an untrusted peer is ignored: all of it is 127.0.0.1,
    # whose counter (shared in Redis) earlier tests may have raised already:
    # three addresses never seen before cannot all pass a limit of 2
    api = new_api("acc-untrusted", limits_auth_per_min=2, http_trusted_proxies="10.9.9.9")
    with running(api):
        avoid_minute_edge(6)
        got = []
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            st, h, b = login(api, "nobody_1", PW, headers=xff(ip))
            got.append(st)
            if st == 429:
                is_429(st, h, b, f"login with a spoofed X-Forwarded-For {ip}")
                break
            assert st == 401, (ip, st, b)
        assert got[-1] == 429, f"X-Forwarded-For of an untrusted peer was believed: {got}"


def metric_value(fams, name, **labels):
    total = None
    for fam in fams.values():
        for s in fam["samples"]:
            if s[0] == name and all(s[1].get(k) == v for k, v in labels.items()):
                total = (total or 0) + s[2]
    return total


def test_guest_canvas_api_rate_limits():
    async def go(api):
        avoid_minute_edge(8)
        # guest_per_min per IP
        for i in range(3):
            assert api.json("POST", "/api/v1/auth/guest", headers=xff("10.2.0.1"))[0] == 201
        st, h, b = api.json("POST", "/api/v1/auth/guest", headers=xff("10.2.0.1"))
        is_429(st, h, b, "4th guest")
        assert "set-cookie" not in h
        toks = []
        for i in range(2):
            st, _, g = api.json("POST", "/api/v1/auth/guest", headers=xff(f"10.2.0.{10 + i}"))
            assert st == 201, g
            toks.append(g["token"])
        # canvas_per_min per IP, GET canvas and canvas.png together
        ip = xff("10.2.1.1")
        assert api.request("GET", "/api/v1/canvas", headers=ip)[0] == 200
        assert api.request("GET", "/api/v1/canvas.png", headers=ip)[0] == 200
        for path in ("/api/v1/canvas", "/api/v1/canvas.png"):
            st, h, raw = api.request("GET", path, headers=ip)
            is_429(st, h, json.loads(raw), path)
        assert api.request("GET", "/api/v1/canvas", headers=xff("10.2.1.2"))[0] == 200
        assert api.json("GET", "/api/v1/canvas/info", headers=ip)[0] == 200  # another limit
        # api_per_min per user, whatever the address
        for i in range(5):
            st, _, b = api.json("GET", "/api/v1/auth/me", token=toks[0], headers=xff(f"10.2.2.{i}"))
            assert st == 200, (i, st, b)
        st, h, b = api.json("GET", "/api/v1/history/recent", token=toks[0], headers=xff("10.2.2.9"))
        is_429(st, h, b, "6th api request of one user")
        st, h, b = place(api, toks[0], 1, 1, 1)
        is_429(st, h, b, "placement over the api limit")
        assert api.json("GET", "/api/v1/auth/me", token=toks[1], headers=xff("10.2.2.0"))[0] == 200
        # the WebSocket is not limited
        c = await ws_connect(api, toks[0])
        assert (await c.request({"type": "ping"}, "pong"))["type"] == "pong"
        await c.close()
        # api_per_min per IP when anonymous
        ip = xff("10.2.3.1")
        for i in range(5):
            assert api.json("GET", "/api/v1/canvas/info", headers=ip)[0] == 200
        st, h, b = api.json("GET", "/api/v1/history/recent", headers=ip)
        is_429(st, h, b, "6th anonymous api request")
        assert api.json("GET", "/api/v1/canvas/info", headers=xff("10.2.3.2"))[0] == 200
        # health and metrics are not /api/v1
        for _ in range(8):
            assert api.request("GET", "/health", headers=ip)[0] == 200
        st, _, text = api.request("GET", "/metrics")
        assert st == 200
        fams = parse_metrics(text.decode())
        for lim in ("guest", "canvas", "api"):
            v = metric_value(fams, "place_rate_limited_total", limit=lim)
            assert v is not None and v >= 1, (lim, v)
        assert metric_value(fams, "place_rate_limited_total", limit="api") >= 3

    api = new_api("acc-limits2", limits_guest_per_min=3, limits_canvas_per_min=2, limits_api_per_min=5)
    with running(api):
        run(go(api))


def test_placements_per_address():
    # [cooldown] per_ip = 3: three placements per cooldown window from one
    # client address, however many guest sessions it holds; an IPv6 address
    # counts as its /64. A refusal changes nothing and takes no cooldown.
    async def go(api):
        redis("HDEL", "settings", "cooldown_ms")  # the configured 60 s applies

        def put(tok, ip, x):
            return api.json("POST", "/api/v1/pixel", {"x": x, "y": 7, "color": 3}, token=tok,
                            headers=xff(ip))

        def refused(st, h, b, what):
            assert st == 429, (what, st, b)
            err(b, "RATE_LIMITED")
            assert "network address" in b["error"]["message"], (what, b)
            ra = h.get("retry-after")
            assert ra and ra.isdigit() and 1 <= int(ra) <= 60, (what, ra)

        toks = [api.guest()[0] for _ in range(8)]
        for i in range(3):
            st, _, b = put(toks[i], "10.3.0.1", 10 + i)
            assert st == 201, (i, b)
        seq = redis_int("GET", "canvas:seq")
        st, h, b = put(toks[3], "10.3.0.1", 13)
        refused(st, h, b, "4th placement from 10.3.0.1")
        st, h, b = put(toks[3], "::ffff:10.3.0.1", 13)  # the same address, written as IPv6
        refused(st, h, b, "::ffff:10.3.0.1")
        assert redis_int("GET", "canvas:seq") == seq, "a refused placement was applied"
        # the refused user's own cooldown was not taken: it places from elsewhere
        st, _, b = put(toks[3], "10.3.0.2", 13)
        assert st == 201, b
        # one IPv6 /64 is one address group; the next /64 is another
        for i, ip in enumerate(["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::9"]):
            st, _, b = put(toks[4 + i], ip, 20 + i)
            assert st == 201, (ip, b)
        st, h, b = put(toks[7], "2001:DB8:0:1:abcd::1", 23)
        refused(st, h, b, "4th placement from 2001:db8:0:1::/64")
        st, _, b = put(toks[7], "2001:db8:0:2::1", 23)
        assert st == 201, b
        # a WebSocket opened from the address is held to the same allowance
        seq = redis_int("GET", "canvas:seq")
        c = await ws_connect(api, api.guest()[0], headers=[("X-Forwarded-For", "10.3.0.1")])
        await c.send({"type": "place", "x": 30, "y": 7, "color": 3})
        e = await c.expect("error")
        assert e["code"] == "RATE_LIMITED" and "network address" in e["message"], e
        await c.close()
        assert redis_int("GET", "canvas:seq") == seq
        st, _, text = api.request("GET", "/metrics")
        fams = parse_metrics(text.decode())
        assert metric_value(fams, "place_rate_limited_total", limit="ip") == 4
        assert metric_value(fams, "place_rate_limited_total", limit="cooldown") == 0

    api = new_api("acc-per-ip", cooldown_seconds=60, cooldown_per_ip=3)
    with running(api):
        run(go(api))


# ---------------------------------------------------------------- metrics

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(rf"^({NAME})(\{{(.*)\}})?[ ]+(\S+)([ ]+-?[0-9]+)?$")


def parse_float(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    assert re.fullmatch(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?", s), f"bad value {s!r}"
    return float(s)


def parse_labels(s, line):
    labels, i = {}, 0
    while i < len(s):
        m = re.compile(rf"({LABEL})=\"").match(s, i)
        assert m, f"bad label at {s[i:]!r} in {line!r}"
        name, i, val = m.group(1), m.end(), []
        while True:
            assert i < len(s), f"unterminated label value in {line!r}"
            ch = s[i]
            if ch == "\\":
                nxt = s[i + 1:i + 2]
                assert nxt in ("\\", '"', "n"), f"bad escape in {line!r}"
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                assert ch != "\n"
                val.append(ch)
                i += 1
        assert name not in labels, f"label {name} twice in {line!r}"
        labels[name] = "".join(val)
        if i < len(s):
            assert s[i] == ",", f"expected ',' in {line!r}"
            i += 1
    return labels


def parse_metrics(text):
    """Strict Prometheus text format 0.0.4: returns {family: {type, help,
    samples: [(name, labels, value)]}}; asserts on anything off."""
    assert text.endswith("\n"), "exposition must end with a newline"
    fams, order, seen = {}, [], set()
    current = None
    for line in text.split("\n")[:-1]:
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({NAME}) ?(.*)$", line)
            if not m:
                continue  # a plain comment
            kind, name, rest = m.groups()
            fam = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert fam["type"] is None, f"second TYPE for {name}"
                assert not fam["samples"], f"TYPE after samples of {name}"
                fam["type"] = rest
            else:
                assert fam["help"] is None, f"second HELP for {name}"
                fam["help"] = rest
            if name not in order:
                order.append(name)
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        sname, _, lab, val, _ = m.groups()
        labels = parse_labels(lab or "", line)
        v = parse_float(val)
        fam_name = sname
        for suf in ("_bucket", "_sum", "_count"):
            if sname.endswith(suf) and fams.get(sname[:-len(suf)], {}).get("type") in ("histogram", "summary"):
                fam_name = sname[:-len(suf)]
        assert fam_name in fams and fams[fam_name]["type"], f"sample {sname} without a TYPE line"
        assert fam_name == current, f"samples of {fam_name} not grouped together (at {line!r})"
        key = (sname, tuple(sorted(labels.items())))
        assert key not in seen, f"duplicate series {line!r}"
        seen.add(key)
        if fams[fam_name]["type"] == "counter":
            assert v >= 0 and not math.isnan(v), line
        fams[fam_name]["samples"].append((sname, labels, v))
    for name, fam in fams.items():
        if fam["type"] != "histogram":
            continue
        groups = {}
        for sname, labels, v in fam["samples"]:
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
            if sname == name + "_bucket":
                assert "le" in labels, f"bucket without le in {name}"
                g["buckets"].append((parse_float(labels["le"]), v))
            elif sname == name + "_sum":
                g["sum"] = v
            elif sname == name + "_count":
                g["count"] = v
            else:
                raise AssertionError(f"unexpected sample {sname} in histogram {name}")
        for rest, g in groups.items():
            bs = g["buckets"]
            assert bs and g["sum"] is not None and g["count"] is not None, (name, rest, g)
            les = [le for le, _ in bs]
            assert les == sorted(les) and len(set(les)) == len(les), (name, rest, les)
            assert les[-1] == math.inf, f"{name}{dict(rest)}: last bucket is not le=\"+Inf\""
            counts = [c for _, c in bs]
            assert all(a <= b for a, b in zip(counts, counts[1:])), f"{name}{dict(rest)}: buckets not cumulative"
            assert counts[-1] == g["count"], f"{name}{dict(rest)}: +Inf bucket != _count"
    return fams


def scrape(api):
    st, h, text = api.request("GET", "/metrics")
    assert st == 200, st
    assert h.get("content-type", "").replace(" ", "").startswith("text/plain;version=0.0.4"), h.get("content-type")
    return parse_metrics(text.decode())


def test_metrics():
    async def go(api):
        m0 = scrape(api)
        want = {"place_pixels_placed_total": "counter", "place_ws_connections": "gauge",
                "place_http_requests_total": "counter", "place_http_request_duration_seconds": "histogram",
                "place_rate_limited_total": "counter", "place_sink_lag_seconds": "gauge",
                "place_ws_placement_duration_seconds": "histogram",
                "place_sink_pending": "gauge", "place_backend_errors_total": "counter",
                "place_sink_rows_total": "counter", "place_sink_batches_total": "counter"}
        for name, typ in want.items():
            assert name in m0 and m0[name]["type"] == typ, (name, m0.get(name))
        for name, fam in m0.items():
            assert fam["type"] and fam["help"], f"{name}: HELP and TYPE lines expected, got {fam}"
        for be in ("redis", "postgres"):
            assert metric_value(m0, "place_backend_errors_total", backend=be) is not None, be
        toks = [api.guest()[0] for _ in range(4)]
        for i, t in enumerate(toks[:3]):
            st, _, b = place(api, t, 90 + i, 90, 5)
            assert st == 201, b
        st, _, b = place(api, toks[0], 95, 90, 5)
        assert st == 429, b  # cooldown
        for _ in range(4):
            assert api.request("GET", "/api/v1/canvas/info")[0] == 200
        for _ in range(3):
            assert api.request("GET", "/api/v1/nope")[0] == 404
        socks = [await ws_connect(api, toks[3]), await ws_connect(api, toks[2])]
        # over the WebSocket: an ack and a cooldown refusal both went to Redis
        # and are timed; a bad colour is refused before and is not
        await socks[0].send({"type": "place", "x": 96, "y": 90, "color": 5})
        await socks[0].expect("ack")
        await socks[0].send({"type": "place", "x": 97, "y": 90, "color": 5})
        e = await socks[0].expect("error")
        assert e["code"] == "RATE_LIMITED", e
        await socks[0].send({"type": "place", "x": 97, "y": 90, "color": 99})
        e = await socks[0].expect("error")
        assert e["code"] == "INVALID_COLOR", e
        m1 = scrape(api)
        assert metric_value(m1, "place_ws_connections") == 2, metric_value(m1, "place_ws_connections")

        def d(name, **labels):
            return (metric_value(m1, name, **labels) or 0) - (metric_value(m0, name, **labels) or 0)
        assert d("place_pixels_placed_total", color="5") == 4, d("place_pixels_placed_total", color="5")
        assert d("place_pixels_placed_total") == 4
        assert d("place_rate_limited_total", limit="cooldown") == 2
        assert d("place_ws_placement_duration_seconds_count") == 2
        assert 0 < d("place_ws_placement_duration_seconds_sum") < 10
        les = [s[1]["le"] for s in m1["place_ws_placement_duration_seconds"]["samples"] if "le" in s[1]]
        assert les[0] == "0.0001" and les[-1] == "+Inf", les
        # requests by route and status
        routes = {s[1]["route"] for s in m1["place_http_requests_total"]["samples"]}
        info = [r for r in routes if "info" in r]
        assert len(info) == 1, routes
        assert d("place_http_requests_total", route=info[0], status="200") == 4, routes
        assert d("place_http_request_duration_seconds_count", route=info[0]) == 4
        assert d("place_http_request_duration_seconds_sum", route=info[0]) > 0
        pixel = [r for r in routes if "pixel" in r and "history" not in r]
        assert len(pixel) == 1, routes
        assert d("place_http_requests_total", route=pixel[0], status="201") == 3
        assert d("place_http_requests_total", route=pixel[0], status="429") == 1
        assert d("place_http_requests_total", status="404") == 3
        for s in m1["place_http_requests_total"]["samples"]:
            assert re.fullmatch(r"[1-5][0-9][0-9]", s[1]["status"]), s
        for name in ("place_sink_lag_seconds", "place_sink_pending"):
            v = metric_value(m1, name)
            assert v is not None and v >= 0, (name, v)
        for c in socks:
            await c.close()
        wait_for(lambda: metric_value(scrape(api), "place_ws_connections") == 0, timeout=5,
                 what="place_ws_connections back to 0")
    api = new_api("acc-metrics")
    with running(api):
        run(go(api))


# ---------------------------------------------------------------- logs

def log_lines(api, offset):
    with open(api.log_path, "rb") as f:
        f.seek(offset)
        data = f.read().decode()
    out = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"{api.log_path}: not a JSON line: {line[:200]!r}") from None
        assert isinstance(obj, dict), line
        for k in ("time", "level", "instance", "event"):
            assert k in obj, (k, line)
        assert obj["instance"] == api.name, line
        assert obj["level"] in ("debug", "info", "warn", "error"), line
        out.append(obj)
    return out


def test_json_logs():
    api = new_api("acc-logs")
    off = os.path.getsize(api.log_path) if os.path.exists(api.log_path) else 0
    with running(api):
        st, h, _ = api.request("GET", "/api/v1/canvas/info")
        assert st == 200
        rid0 = h.get("x-request-id")
        assert rid0, h
        # 2xx requests are logged at debug level; a 404 at info
        st, h2, _ = api.request("GET", "/api/v1/nope")
        rid = h2.get("x-request-id")
        assert st == 404 and rid and rid != rid0, h2

        def find():
            lines = log_lines(api, off)
            return [l for l in lines if l.get("rid") == rid] or None
        mine = wait_for(find, timeout=5, what=f"a log line with rid {rid}")
        assert any("ms" in l and isinstance(l["ms"], (int, float)) and l["ms"] >= 0 for l in mine), mine
        assert any(l["level"] == "info" for l in log_lines(api, off))
    api = new_api("acc-logs-warn", log_level="warn")
    off = os.path.getsize(api.log_path) if os.path.exists(api.log_path) else 0
    with running(api):
        for _ in range(3):
            assert api.request("GET", "/api/v1/canvas/info")[0] == 200
        api.guest()
        time.sleep(0.3)
    lines = log_lines(api, off)
    assert not [l for l in lines if l["level"] in ("info", "debug")], lines[:5]


def test_thread_names():
    """The api's own threads carry their log names for top -H and perf; the
    main thread keeps the process's name (ps -C place-api, pgrep -x)."""
    def names():
        return [open(os.path.join(d, "comm")).read().strip()
                for d in glob.glob(f"/proc/{A.pid}/task/*")]
    wait_for(lambda: "jobs" in names(), timeout=5, what="the api's threads started")
    got = names()
    with open(f"/proc/{A.pid}/comm") as f:
        assert f.read().strip() == "place-api"
    for want in ("sink", "jobs"):
        assert got.count(want) == 1, got
    # [ws] threads = 0: one hub per core
    hubs = sorted(n for n in got if n.startswith("hub-"))
    assert hubs == sorted(f"hub-{i}" for i in range(os.cpu_count())), got
    # the log lines name the same threads
    assert any(l.get("thread") == "hub-0" for l in log_lines(A, 0)), "no log line from hub-0"


TESTS = [
    test_register_login_me,
    test_register_bad_requests_change_nothing,
    test_password_hashes,
    test_guest_upgrade_keeps_history,
    test_logout_everywhere,
    test_session_in_redis_survives_restart,
    test_admin_create_command,
    test_admin_auth_matrix,
    test_admin_csrf_and_origin,
    test_reset_canvas,
    test_reset_survives_rebuild,
    test_ban_rollback_unban,
    test_settings_cooldown_everywhere,
    test_admin_stats,
    test_auth_rate_limit,
    test_guest_canvas_api_rate_limits,
    test_placements_per_address,
    test_metrics,
    test_json_logs,
    test_thread_names,
]


def ensure_up():
    """A failed test must not take the rest down with it."""
    global A, B
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    for attr, name in (("A", "acc-a"), ("B", "acc-b")):
        a = globals()[attr]
        if a is None or a.proc.poll() is not None:
            globals()[attr] = new_api(name).start()


def main():
    global A, B
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    reset_state()
    try:
        return Runner("accounts").run(TESTS, only=sys.argv[1] if len(sys.argv) > 1 else None,
                                      before_each=ensure_up)
    finally:
        for a in (A, B):
            if a:
                with contextlib.suppress(Exception):
                    a.stop()


if __name__ == "__main__":
    sys.exit(main())
