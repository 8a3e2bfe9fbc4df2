#!/usr/bin/python3
"""WebSocket slice against real Redis and PostgreSQL: the welcome, placing
over the socket, fan-out to every client on every instance (directly and
through nginx), the handshake's refusals, protocol errors down to raw frames
(wsraw.py), control messages, a slow reader, kill -9 of one instance behind
nginx, 400 connections, SIGTERM, server pings and dead peers.

Clients: Debian's python3-websockets (asyncio API) and wsraw.py for frames it
cannot produce. Every test starts its own api instances after reset_state."""

import asyncio
import concurrent.futures as cf
import contextlib
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

sys.path.insert(0, os.path.dirname(__file__))
import wsraw  # noqa: E402
from harness import (SERVICES, Api, Cluster, RedisConn, Runner, redis, redis_get_bytes,  # noqa: E402
                     redis_int, reset_state, sql, vm_rss_kb, wait_for, ws_connect)
from wsraw import BINARY, CLOSE, CONT, PING, PONG, TEXT  # noqa: E402

W = H = 500
COOLDOWN = 5
ORIGINS = "https://app.example,http://localhost:3001"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
PING_MSG = b'{"type":"ping"}'


def new_api(name="ws-api", **kw):
    kw.setdefault("ws_allowed_origins", ORIGINS)
    return Api(name, **kw)


@contextlib.contextmanager
def running(*servers):
    """Starts the servers, stops them afterwards; an api that died on its own
    (not exit 0, not kill -9 by the test) fails the test."""
    started = []

    def stop_all():
        dead = []
        for s in reversed(started):
            procs = [a.proc for a in getattr(s, "apis", [])] or [getattr(s, "proc", None)]
            for p in procs:
                if p is not None and p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                    dead.append((getattr(s, "name", "?"), p.returncode))
            with contextlib.suppress(Exception):
                s.stop()
        return dead

    try:
        for s in servers:
            s.start()
            started.append(s)
        yield servers[0] if len(servers) == 1 else servers
    except BaseException:
        stop_all()
        raise
    dead = stop_all()
    assert not dead, f"server process died during the test: {dead}"


def run(coro):
    return asyncio.run(coro)


async def place(c, x, y, color, timeout=10):
    """Places over the socket; returns the ack or the error."""
    await c.send({"type": "place", "x": x, "y": y, "color": color})
    return await c.expect(("ack", "error"), timeout)


def raw_connect(target, token, **kw):
    """A wsraw connection authenticated by bearer token, welcome read."""
    resp, ws = wsraw.handshake(target.port, headers={"Authorization": "Bearer " + token}, **kw)
    assert resp.status == 101, resp
    ws.welcome = ws.expect("welcome")
    return ws


def refused(resp, status, code=None):
    """A handshake refused with a plain HTTP response and a JSON error."""
    assert resp.status == status, resp
    assert "sec-websocket-accept" not in resp.headers, resp
    body = resp.json()
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], resp
    if code:
        assert body["error"]["code"] == code, resp
    return body


# ---------------------------------------------------------------- 1. basics

def test_welcome_ack_and_updates():
    with running(new_api()) as api:
        run(_welcome_ack_and_updates(api))


async def _welcome_ack_and_updates(api):
    ta, ua = api.guest()
    tb, ub = api.guest()
    tc, uc = api.guest()
    st, _, info = api.json("GET", "/api/v1/canvas/info")
    assert st == 200
    _, seq0 = api.canvas()
    a = await ws_connect(api, ta)
    b = await ws_connect(api, tb)
    w = a.welcome
    assert w["userId"] == ua and b.welcome["userId"] == ub, (w, b.welcome)
    assert w["cooldown"] == COOLDOWN and w["cooldownRemaining"] == 0, w
    assert type(w["seq"]) is int and w["seq"] == seq0, (w, seq0)
    ci = w["canvasInfo"]
    assert ci["width"] == W and ci["height"] == H, ci
    assert ci["palette"] == info["palette"] and len(ci["palette"]) == 16, ci
    assert all(re.fullmatch(r"#[0-9A-F]{6}", p) for p in ci["palette"]), ci

    t0 = time.time() * 1000
    ack = await place(a, 10, 20, 3)
    assert ack["type"] == "ack", ack
    assert (ack["x"], ack["y"], ack["color"]) == (10, 20, 3), ack
    assert type(ack["seq"]) is int and ack["seq"] > seq0, ack
    assert ack["cooldown"] == COOLDOWN and HEX32.match(ack["id"]), ack
    upd = await b.seen("update", where=lambda m: m.get("seq") == ack["seq"])
    assert {k: upd[k] for k in ("x", "y", "color", "userId")} == {"x": 10, "y": 20, "color": 3, "userId": ua}, upd
    assert type(upd["time"]) is int and abs(upd["time"] - t0) < 60000, upd
    # the placer gets the update too, and nobody got an update before it
    await a.seen("update", where=lambda m: m.get("seq") == ack["seq"])
    assert [m["seq"] for m in b.received if m["type"] == "update"] == [ack["seq"]], b.received

    # a REST placement reaches the socket clients as well
    st, _, body = api.json("POST", "/api/v1/pixel", {"x": 11, "y": 21, "color": 4}, token=tc)
    assert st == 201, body
    upd2 = await b.seen("update", where=lambda m: m.get("seq") == body["seq"])
    assert (upd2["x"], upd2["y"], upd2["color"], upd2["userId"]) == (11, 21, 4, uc), upd2
    assert [m["seq"] for m in b.received if m["type"] == "update"] == [ack["seq"], body["seq"]]

    # seq agrees with X-Canvas-Seq and the bytes of the canvas
    wait_for(lambda: api.canvas()[1] == body["seq"], timeout=5, what="X-Canvas-Seq")
    data, _ = api.canvas()
    assert data[20 * W + 10] == 3 and data[21 * W + 11] == 4

    # A is now in its cooldown: refused over the socket, and told so on reconnect
    err = await place(a, 12, 20, 5)
    assert err["type"] == "error" and err["code"] == "RATE_LIMITED", err
    assert 0 < err["cooldownRemaining"] <= COOLDOWN and err["message"], err
    a2 = await ws_connect(api, ta)
    assert 0 < a2.welcome["cooldownRemaining"] <= COOLDOWN, a2.welcome
    assert a2.welcome["seq"] >= body["seq"], a2.welcome
    # ping -> pong
    assert (await a.request({"type": "ping"}, "pong"))["type"] == "pong"

    rows = wait_for(lambda: sql("SELECT seq, x, y, color, user_id FROM pixel_events "
                                f"WHERE replace(id::text,'-','') = '{ack['id']}'"), what="pixel_events row")
    assert rows == [[str(ack["seq"]), "10", "20", "3", ua]], rows
    for c in (a, b, a2):
        await c.close()


# ---------------------------------------------------------------- 2. handshake

def test_handshake_auth_and_refusals():
    with running(new_api()) as api:
        run(_handshake_auth(api))
        _handshake_refusals(api)


async def _handshake_auth(api):
    tok, uid = api.guest()
    for how in ("cookie", "bearer", "query"):
        c = await ws_connect(api, tok, how=how)  # offers permessage-deflate, as browsers do
        assert c.welcome["userId"] == uid, (how, c.welcome)
        assert c.ws.extensions == [], c.ws.extensions
        assert (await c.request({"type": "ping"}, "pong"))["type"] == "pong"
        await c.close()
    # an allowed Origin with the cookie: what a browser on the site sends
    c = await ws_connect(api, tok, how="cookie", origin="https://app.example")
    assert c.welcome["userId"] == uid
    await c.close()
    for kw in ({}, {"token": "ab" * 32, "how": "bearer"}, {"token": "ab" * 32, "how": "cookie"},
               {"token": "ab" * 32, "how": "query"}, {"token": "not-a-session", "how": "bearer"}):
        try:
            await ws_connect(api, **kw)
            raise AssertionError(f"connected without a valid session: {kw}")
        except InvalidStatusCode as e:
            assert e.status_code == 401, (kw, e.status_code)
    try:
        await ws_connect(api, tok, how="cookie", origin="http://evil.example")
        raise AssertionError("connected from a foreign origin")
    except InvalidStatusCode as e:
        assert e.status_code == 403, e.status_code


def _handshake_refusals(api):
    tok, uid = api.guest()
    cookie = {"Cookie": "place_session=" + tok}
    bearer = {"Authorization": "Bearer " + tok}

    # a good handshake, checked byte by byte
    resp, ws = wsraw.handshake(api.port, headers=dict(bearer))
    assert resp.status == 101, resp
    assert resp.headers["upgrade"].lower() == "websocket", resp
    assert "upgrade" in resp.headers["connection"].lower(), resp
    assert resp.headers["sec-websocket-accept"] == wsraw.accept_for(ws.key), resp
    assert "sec-websocket-extensions" not in resp.headers and "sec-websocket-protocol" not in resp.headers
    assert ws.expect("welcome")["userId"] == uid
    ws.close()

    # no session / unknown session
    refused(wsraw.handshake(api.port)[0], 401, "UNAUTHORIZED")
    refused(wsraw.handshake(api.port, headers={"Cookie": "place_session=" + "cd" * 32})[0], 401, "UNAUTHORIZED")
    refused(wsraw.handshake(api.port, path="/api/v1/ws?token=" + "cd" * 32)[0], 401, "UNAUTHORIZED")

    # Origin not on the list, with a valid cookie
    for origin in ("http://evil.example", "null", "https://app.example.evil", "http://app.example",
                   "https://app.example:8443", "https://evil.app.example", "https://app.exampl",
                   "http://localhost:3001.evil", "http://localhost:30011"):
        refused(wsraw.handshake(api.port, headers=dict(cookie, Origin=origin))[0], 403, "FORBIDDEN_ORIGIN")
    for origin in ("https://app.example", "http://localhost:3001"):
        resp, ws = wsraw.handshake(api.port, headers=dict(cookie, Origin=origin))
        assert resp.status == 101, (origin, resp)
        ws.close()

    # protocol version
    for v in ("8", "14", "13, 8"):
        resp, _ = wsraw.handshake(api.port, headers=dict(bearer, **{"Sec-WebSocket-Version": v}))
        refused(resp, 426)
        assert resp.headers.get("sec-websocket-version") == "13", (v, resp)

    # key: missing, not base64, not 16 bytes
    import base64
    for key in (None, "abc", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 17).decode(),
                "!" * 22 + "==", ""):
        refused(wsraw.handshake(api.port, headers=dict(bearer, **{"Sec-WebSocket-Key": key}))[0],
                400, "BAD_REQUEST")

    # no Upgrade: websocket
    refused(wsraw.handshake(api.port, headers=dict(bearer, Upgrade=None))[0], 426, "UPGRADE_REQUIRED")
    refused(wsraw.handshake(api.port, headers=dict(bearer, Upgrade="h2c"))[0], 426, "UPGRADE_REQUIRED")

    # permessage-deflate is declined: 101 without the extension, frames uncompressed
    resp, ws = wsraw.handshake(api.port, headers=dict(bearer, **{
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}))
    assert resp.status == 101 and "sec-websocket-extensions" not in resp.headers, resp
    f = ws.recv_frame()
    assert f.opcode == TEXT and f.rsv == 0 and b'"welcome"' in f.payload, f
    ws.close()

    # not GET
    for method in ("POST", "PUT", "DELETE"):
        resp, _ = wsraw.handshake(api.port, method=method, headers=dict(bearer, **{"Content-Length": "0"}))
        refused(resp, 405)
        assert "GET" in resp.headers.get("allow", ""), resp

    # a refused handshake left no connection behind
    wait_for(lambda: api.health_ws() == 0, timeout=5, what="ws.connections == 0")


def test_max_connections_503():
    with running(new_api("ws-max", ws_max_connections=2)) as api:
        tok, _ = api.guest()
        a = raw_connect(api, tok)
        b = raw_connect(api, tok)
        assert api.health_ws() == 2
        resp, ws = wsraw.handshake(api.port, headers={"Authorization": "Bearer " + tok})
        refused(resp, 503, "UNAVAILABLE")
        assert re.fullmatch(r"\d+", resp.headers.get("retry-after", "")), resp
        # the refusal did not count; a freed slot can be used again
        a.send_close(1000)
        a.expect_close()
        wait_for(lambda: api.health_ws() == 1, timeout=5, what="one connection left")
        c = raw_connect(api, tok)
        assert c.alive() and b.alive()
        c.close()
        b.close()


# ---------------------------------------------------------------- 3. protocol

def _place(x, y, c, **extra):
    return {"type": "place", "x": x, "y": y, "color": c, **extra}


# (opcode, payload, expected error code): the connection stays open afterwards
KEEP_CASES = [
    (BINARY, PING_MSG, "BAD_REQUEST"),
    (BINARY, b"", "BAD_REQUEST"),
    (TEXT, b"", "BAD_REQUEST"),
    (TEXT, b"{", "BAD_REQUEST"),
    (TEXT, b"not json", "BAD_REQUEST"),
    (TEXT, b'"ping"', "BAD_REQUEST"),
    (TEXT, b"null", "BAD_REQUEST"),
    (TEXT, b"42", "BAD_REQUEST"),
    (TEXT, b'{"type":"ping"} trailing', "BAD_REQUEST"),
    (TEXT, b'{"x":1,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"dance"}', "BAD_REQUEST"),
    (TEXT, b'{"type":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":null}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1,"y":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1,"y":1,"color":1,"extra":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1,"x":2,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1.5,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1e2,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":"1","y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":true,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":null,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1,"y":1,"color":1.0}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":1,"y":1,"color":[1]}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":99999999999999999999999,"y":1,"color":1}', "BAD_REQUEST"),
    (TEXT, b'{"type":"place","x":500,"y":1,"color":1}', "INVALID_COORDS"),
    (TEXT, b'{"type":"place","x":-1,"y":1,"color":1}', "INVALID_COORDS"),
    (TEXT, b'{"type":"place","x":1,"y":500,"color":1}', "INVALID_COORDS"),
    (TEXT, b'{"type":"place","x":1,"y":-5,"color":1}', "INVALID_COORDS"),
    (TEXT, b'{"type":"place","x":1000000000,"y":1,"color":1}', "INVALID_COORDS"),
    (TEXT, b'{"type":"place","x":1,"y":1,"color":16}', "INVALID_COLOR"),
    (TEXT, b'{"type":"place","x":1,"y":1,"color":-1}', "INVALID_COLOR"),
    (TEXT, b'{"type":"place","x":1,"y":1,"color":255}', "INVALID_COLOR"),
]


def _send_fragments(ws, opcode, parts, interleave=None):
    for i, p in enumerate(parts):
        ws.send_frame(opcode if i == 0 else CONT, p, fin=i == len(parts) - 1)
        if interleave and i < len(parts) - 1:
            interleave(ws)


def _hundred_thousand_fragments(ws):
    m = b"\x01\x02\x03\x04"  # mask key; the one payload byte is xored with m[0]
    first = bytes([0x01, 0x81]) + m + bytes([ord("{") ^ 1])  # TEXT, fin=0
    cont = bytes([0x00, 0x81]) + m + bytes([ord(" ") ^ 1])  # CONT, fin=0
    try:
        ws.send_raw(first)
        for _ in range(100):
            ws.send_raw(cont * 1000)
    except OSError:
        pass  # the server closed on us: fine, its close frame is what counts


def _flood(ws):
    """Valid pings as fast as the socket takes them (thousands a second)
    until the server closes; the close code is read by a second thread."""
    result = {}

    def reader():
        try:
            result["code"] = ws.expect_close(15)
        except BaseException as e:
            result["error"] = e
    t = threading.Thread(target=reader)
    t.start()
    frame_mask = b"\x11\x22\x33\x44"
    payload = bytes(b ^ frame_mask[i & 3] for i, b in enumerate(PING_MSG))
    frame = bytes([0x81, 0x80 | len(PING_MSG)]) + frame_mask + payload
    t0 = time.time()
    try:
        while t.is_alive() and time.time() - t0 < 10:
            ws.send_raw(frame * 50)
            time.sleep(0.01)
    except OSError:
        pass
    t.join(20)
    if "error" in result:
        raise result["error"]
    return result.get("code", "no close")


# (name, action on a fresh connection, expected close codes)
CLOSE_CASES = [
    ("unmasked text", lambda ws: ws.send_frame(TEXT, PING_MSG, mask=False), {1002}),
    ("unmasked ping", lambda ws: ws.send_frame(PING, b"x", mask=False), {1002}),
    ("RSV1", lambda ws: ws.send_frame(TEXT, PING_MSG, rsv=4), {1002}),
    ("RSV2", lambda ws: ws.send_frame(TEXT, PING_MSG, rsv=2), {1002}),
    ("RSV3", lambda ws: ws.send_frame(TEXT, PING_MSG, rsv=1), {1002}),
    ("RSV1 on ping", lambda ws: ws.send_frame(PING, b"", rsv=4), {1002}),
] + [
    (f"opcode {op}", (lambda o: lambda ws: ws.send_frame(o, PING_MSG))(op), {1002})
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)
] + [
    ("ping of 126 bytes", lambda ws: ws.send_frame(PING, b"p" * 126), {1002}),
    ("close of 126 bytes", lambda ws: ws.send_frame(CLOSE, struct.pack("!H", 1000) + b"r" * 124), {1002}),
    ("fragmented ping", lambda ws: (ws.send_frame(PING, b"a", fin=False), ws.send_frame(CONT, b"b")), {1002}),
    ("continuation without start", lambda ws: ws.send_frame(CONT, PING_MSG), {1002}),
    ("new text frame inside a fragmented message",
     lambda ws: (ws.send_frame(TEXT, b'{"type":', fin=False), ws.send_frame(TEXT, b'"ping"}')), {1002}),
    ("invalid UTF-8", lambda ws: ws.send_frame(TEXT, b'{"type":"\xff"}'), {1007}),
    ("overlong UTF-8", lambda ws: ws.send_frame(TEXT, b'{"type":"\xc0\xaf"}'), {1007}),
    ("UTF-16 surrogate", lambda ws: ws.send_frame(TEXT, b'{"type":"\xed\xa0\x80"}'), {1007}),
    ("invalid UTF-8 across fragments",
     lambda ws: _send_fragments(ws, TEXT, [b'{"type":"\xe2\x82', b'\x28"}']), {1007}),
    ("oversize text 4097", lambda ws: ws.send_frame(TEXT, PING_MSG + b" " * (4097 - len(PING_MSG))), {1009}),
    ("oversize text 65535", lambda ws: ws.send_frame(TEXT, PING_MSG + b" " * (65535 - len(PING_MSG))), {1009}),
    ("oversize text 65536", lambda ws: ws.send_frame(TEXT, PING_MSG + b" " * (65536 - len(PING_MSG))), {1009}),
    ("oversize binary 70000", lambda ws: ws.send_frame(BINARY, b"b" * 70000), {1009}),
    ("oversize over fragments",
     lambda ws: _send_fragments(ws, TEXT, [PING_MSG + b" " * 3000, b" " * 3000]), {1009}),
    ("declared length 2^63-1", lambda ws: ws.send_frame(TEXT, b"abcd", length=2 ** 63 - 1), {1009, 1002}),
    ("declared length 2^64-1 (MSB set)", lambda ws: ws.send_frame(TEXT, b"abcd", length=2 ** 64 - 1), {1002, 1009}),
    ("100000 one-byte fragments", _hundred_thousand_fragments, {1009}),
]


def test_protocol_errors():
    with running(new_api()) as api:
        tok, uid = api.guest()
        failures = []

        def case(name, fn):
            try:
                fn()
            except Exception as e:  # collect them all: one run reports every broken case
                failures.append(f"{name}: {type(e).__name__}: {e}")

        # -- errors that keep the connection usable
        for op, payload, code in KEEP_CASES:
            def keep(op=op, payload=payload, code=code):
                ws = raw_connect(api, tok)
                try:
                    ws.send_frame(op, payload)
                    err = ws.expect("error", 5)
                    assert err["code"] == code and err.get("message"), err
                    assert ws.alive(5)
                finally:
                    ws.close()
            case(f"keep {op} {payload[:60]!r}", keep)

        def rate_limited():
            t2, _ = api.guest()
            ws = raw_connect(api, t2)
            ws.send_json(_place(1, 2, 3))
            assert ws.expect("ack")["seq"] >= 1
            ws.send_json(_place(1, 3, 3))
            err = ws.expect("error")
            assert err["code"] == "RATE_LIMITED" and 0 < err["cooldownRemaining"] <= COOLDOWN, err
            assert ws.alive()
            ws.close()
        case("RATE_LIMITED", rate_limited)

        def ping_payload():
            ws = raw_connect(api, tok)
            for p in (b"", b"hello", bytes(range(125))):
                ws.send_ping(p)
                op, got = ws.recv_message(5, want_control=True)
                assert (op, got) == (PONG, p), (op, got)
            ws.send_frame(PONG, b"unsolicited")  # ignored
            assert ws.alive()
            ws.close()
        case("ping payload echoed, unsolicited pong ignored", ping_payload)

        def fragmented_with_ping():
            ws = raw_connect(api, tok)
            _send_fragments(ws, TEXT, [b'{"type":', b'"pi', b'ng"}'], interleave=lambda w: w.send_ping(b"mid"))
            got = [ws.recv_message(5, want_control=True) for _ in range(3)]
            pongs = [g for g in got if g[0] == PONG]
            texts = [g for g in got if g[0] == TEXT]
            assert pongs == [(PONG, b"mid"), (PONG, b"mid")] and len(texts) == 1, got
            assert texts[0][1].replace(b" ", b"") in (b'{"type":"pong"}', b'[{"type":"pong"}]'), got
            ws.close()
        case("fragmented text with interleaved pings", fragmented_with_ping)

        def at_the_cap():
            ws = raw_connect(api, tok)
            for size in (125, 126, 127, 4095):  # 7-bit and 16-bit length encodings
                ws.send_frame(TEXT, PING_MSG + b" " * (size - len(PING_MSG)))
                ws.expect("pong", 5)
            ws.send_frame(TEXT, PING_MSG + b" " * (4096 - len(PING_MSG)))
            ws.expect("pong", 5)
            _send_fragments(ws, TEXT, [PING_MSG] + [b" " * 1000] * 4 + [b" " * (96 - len(PING_MSG))])
            ws.expect("pong", 5)
            ws.close()
        case("message of exactly 4096 bytes (whole and in fragments)", at_the_cap)

        # -- errors that close the connection with a given code
        for name, action, codes in CLOSE_CASES:
            def closes(action=action, codes=codes):
                ws = raw_connect(api, tok)
                try:
                    action(ws)
                except OSError:
                    pass
                code = ws.expect_close(10)
                assert code in codes, f"close code {code}, expected {sorted(codes)}"
            case(f"close: {name}", closes)

        def flood():
            ws = raw_connect(api, tok)
            other = raw_connect(api, tok)
            code = _flood(ws)
            assert code == 1008, f"close code {code}, expected 1008"
            assert other.alive(), "a flood on one connection affected another"
            other.close()
        case("close: flood of pings", flood)

        # the server survived all of it
        assert api.proc.poll() is None, "api died"
        assert api.request("GET", "/health")[0] == 200
        case("still serving", lambda: raw_connect(api, tok).alive())
        wait_for(lambda: api.health_ws() == 0, timeout=10, what="all test connections gone")
        assert not failures, f"{len(failures)} failing cases:\n  " + "\n  ".join(failures)


def test_close_handshake():
    """RFC 6455 5.5.1 / 7.4: close codes and reasons sent by the client."""
    with running(new_api()) as api:
        tok, _ = api.guest()
        failures = []
        cases = [("close 1000", struct.pack("!H", 1000), {1000}),
                 ("close 1001 with reason", struct.pack("!H", 1001) + b"bye", {1001, 1000}),
                 ("close 3000 (registered range)", struct.pack("!H", 3000), {3000, 1000}),
                 ("close 4999 (private range)", struct.pack("!H", 4999), {4999, 1000}),
                 ("close without a code", b"", {1000, 1005}),
                 ("close with a 1-byte payload", b"\x03", {1002}),
                 ("close reason with invalid UTF-8", struct.pack("!H", 1000) + b"\xff\xfe", {1007, 1002})]
        cases += [(f"close {c}", struct.pack("!H", c), {1002}) for c in (0, 999, 1004, 1005, 1006, 1015, 5000)]
        for name, payload, codes in cases:
            try:
                ws = raw_connect(api, tok)
                ws.send_frame(CLOSE, payload)
                code = ws.expect_close(10)
                assert code in codes, f"close code {code}, expected {sorted(codes)}"
            except Exception as e:
                failures.append(f"{name}: {e}")
        assert api.proc.poll() is None
        wait_for(lambda: api.health_ws() == 0, timeout=10, what="ws.connections == 0")
        assert not failures, f"{len(failures)} failing cases:\n  " + "\n  ".join(failures)



def test_silent_peer_after_server_close_is_dropped():
    """The server closes (wslay itself on a protocol error or an oversized
    message, or the api on invalid UTF-8) and the peer neither answers the
    close nor closes TCP: the server hangs up by the end of its close grace
    (2 s, checked by the once-a-second sweep) instead of keeping it forever.
    A failed connection (RFC 6455 7.1.7) may be dropped at once."""
    with running(new_api()) as api:
        tok, _ = api.guest()
        for name, action, want in (
                ("protocol error found by wslay", lambda ws: ws.send_frame(TEXT, PING_MSG, mask=False), 1002),
                ("message over the cap, found by wslay", lambda ws: ws.send_frame(TEXT, b" " * 5000), 1009),
                ("invalid UTF-8", lambda ws: ws.send_frame(TEXT, b'{"type":"\xff"}'), 1007)):
            ws = raw_connect(api, tok)
            action(ws)
            code = None
            t0 = time.monotonic()
            while True:  # read the close frame but do not answer it
                f = ws.recv_frame(10)
                assert f is not None, f"{name}: stream ended before the close frame"
                if f.opcode == CLOSE:
                    code = struct.unpack("!H", f.payload[:2])[0]
                    break
            assert code == want, f"{name}: close code {code}, expected {want}"
            # then stay silent with the socket open: the server must hang up
            f = ws.recv_frame(8)
            assert f is None, f"{name}: got {f!r} after the close frame"
            waited = time.monotonic() - t0
            assert waited <= 4, f"{name}: the server hung up after {waited:.1f} s"
            ws.sock.close()
        wait_for(lambda: api.health_ws() == 0, timeout=10, what="ws.connections == 0")


# ---------------------------------------------------------------- control messages

def test_control_messages_and_ban():
    with running(new_api()) as api:
        run(_control_and_ban(api))


async def _control_and_ban(api):
    ta, ua = api.guest()
    tb, ub = api.guest()
    tc, uc = api.guest()
    a1 = await ws_connect(api, ta)
    a2 = await ws_connect(api, ta, how="cookie")
    b = await ws_connect(api, tb)
    c = await ws_connect(api, tc)
    assert redis_int("PUBLISH", "canvas:updates", 'c {"type":"settings","cooldownMs":3000}') >= 1
    for cl in (a1, a2, b, c):
        m = await cl.expect("settings")
        assert m["cooldown"] == 3 and m["cooldownMs"] == 3000, m
    redis("PUBLISH", "canvas:updates", 'c {"type":"reset","seq":77}')
    for cl in (a1, a2, b, c):
        assert (await cl.expect("reset"))["seq"] == 77

    # updates come from the placement script's "u <seq> <x> <y> <color>
    # <userId> <ms>" lines: malformed ones are dropped, a good one arrives
    # exactly (the hub parses and prints these without stdio)
    for bad in ["u 1 2 3", f"u -1 2 3 4 {ua} 5", "u 9 1 2 3 not-a-uuid-at-all-not-a-uuid-at-all 5",
                f"u 9 1 2 3 {ua} 5 extra", f"u 9 1 2 3 {ua}", f"u 9  1 2 3 {ua} 5",
                f"u 9 1 2 x {ua} 5", f"u 99999999999999999999 1 2 3 {ua} 5", f"u 9 1 2 3 {ua} 5 ",
                f"u 9 1 2 3 {ua[:-1]}g 5", "u "]:
        redis("PUBLISH", "canvas:updates", bad)
    redis("PUBLISH", "canvas:updates", f"u 123456 7 8 9 {ua} 1700000000000")
    m = await b.expect("update")
    assert m == {"type": "update", "x": 7, "y": 8, "color": 9, "seq": 123456, "userId": ua,
                 "time": 1700000000000}, m

    # a banned user (banned:users, as for REST) is refused over the socket
    redis("SADD", "banned:users", uc)
    seq0 = redis("GET", "canvas:seq").strip()
    err = await place(c, 5, 5, 5)
    assert err["type"] == "error" and err["code"] == "BANNED", err
    assert redis("GET", "canvas:seq").strip() == seq0
    assert redis_get_bytes("canvas:main")[5 * W + 5] == 0

    # ban control message: every socket of that user gets BANNED then 1008
    redis("SADD", "banned:users", ua)
    redis("PUBLISH", "canvas:updates", 'c {"type":"ban","userId":"%s"}' % ua)
    for cl in (a1, a2):
        m = await cl.expect("error")
        assert m["code"] == "BANNED", m
        try:
            await asyncio.wait_for(cl.ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            raise AssertionError("banned user's socket still open")
        assert cl.close_code == 1008, cl.close_code
    # others are untouched
    assert (await b.request({"type": "ping"}, "pong"))["type"] == "pong"
    assert not b.ws.closed
    await b.close()
    with contextlib.suppress(Exception):
        await c.close()


# ---------------------------------------------------------------- 4. instances

def test_fanout_across_instances_and_nginx():
    with running(Cluster(2, name="ws-fan", ws_allowed_origins=ORIGINS)) as cl:
        run(_fanout(cl))


async def _fanout(cl):
    i1, i2 = cl.apis
    ta, ua = i1.guest()
    tb, ub = i2.guest()
    a = await ws_connect(i1, ta)
    b = await ws_connect(i2, tb)
    ack = await place(a, 100, 100, 5)
    assert ack["type"] == "ack", ack
    u = await b.seen("update", where=lambda m: m["seq"] == ack["seq"])
    assert (u["x"], u["y"], u["color"], u["userId"]) == (100, 100, 5, ua), u
    ack2 = await place(b, 101, 100, 6)
    assert ack2["type"] == "ack" and ack2["seq"] > ack["seq"], ack2
    u = await a.seen("update", where=lambda m: m["seq"] == ack2["seq"])
    assert (u["x"], u["y"], u["color"], u["userId"]) == (101, 100, 6, ub), u
    # one control message reaches both instances
    assert redis_int("PUBLISH", "canvas:updates", 'c {"type":"settings","cooldownMs":3000}') >= 2
    for c in (a, b):
        m = await c.expect("settings")
        assert (m["cooldown"], m["cooldownMs"]) == (3, 3000), m
    await a.close()
    await b.close()
    wait_for(lambda: i1.health_ws() == 0 and i2.health_ws() == 0, timeout=5, what="no connections")

    # through nginx: spread over both instances, everybody sees everybody
    toks = [cl.guest() for _ in range(6)]
    clients = [await ws_connect(cl, t, how=how, origin="https://app.example")
               for (t, _), how in zip(toks, ["cookie", "bearer", "query"] * 2)]
    n1, n2 = i1.health_ws(), i2.health_ws()
    assert n1 + n2 == 6 and n1 >= 1 and n2 >= 1, (n1, n2)
    acks = []
    for k, c in enumerate(clients):
        ack = await place(c, 200 + k, 200, k + 1)
        assert ack["type"] == "ack", ack
        acks.append(ack)
    want = sorted(x["seq"] for x in acks)
    for c in clients:
        for s in want:
            await c.seen("update", where=lambda m, s=s: m["seq"] == s)
        got = [m["seq"] for m in c.received if m["type"] == "update"]
        assert got == want, (got, want)
    redis("PUBLISH", "canvas:updates", 'c {"type":"reset","seq":5}')
    for c in clients:
        assert (await c.expect("reset"))["seq"] == 5
        await c.close()


# ---------------------------------------------------------------- 5. slow reader

def test_slow_reader_dropped_memory_bounded():
    a = new_api("ws-slow", ws_max_buffered_bytes=65536)
    # under ASan (make test-asan) freed memory sits in a quarantine that would
    # count as growth: keep it small so VmRSS still shows what the server holds
    a.env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""),
                                                   "quarantine_size_mb=1"]))
    with running(a) as api:
        run(_slow_reader(api))


async def _slow_reader(api):
    tok, uid = api.guest()
    fast = await ws_connect(api, tok)
    slow = raw_connect(api, tok, rcvbuf=4096)  # reads the welcome, then nothing ever again
    assert api.health_ws() == 2
    time.sleep(0.3)
    rss0 = vm_rss_kb(api.pid)
    seq0 = redis_int("GET", "canvas:seq") if redis("GET", "canvas:seq").strip() else 0
    # ~17 MB of updates: without the 64 KiB cap most of it would pile up in
    # the server (the kernel holds at most a few MB of a stuck socket)
    n, batch = 150000, 1000
    state = {"peak": rss0, "done": False, "dropped_at": None}

    def publish():
        r = RedisConn()
        try:
            now = int(time.time() * 1000)
            for i in range(0, n, batch):
                cmds = [("PUBLISH", "canvas:updates",
                         f"u {seq0 + k + 1} {k % W} {(k // W) % H} {k % 16} {uid} {now}")
                        for k in range(i, i + batch)]
                r.pipeline(cmds)
                state["peak"] = max(state["peak"], vm_rss_kb(api.pid))
                time.sleep(0.03)  # ~30k updates/s: the fast client keeps up
        finally:
            r.close()
            state["done"] = True
    t = threading.Thread(target=publish)
    t.start()
    seqs = []
    try:
        while len(seqs) < n:
            m = await fast.expect("update", timeout=20)
            seqs.append(m["seq"])
    finally:
        t.join()
    assert seqs == list(range(seq0 + 1, seq0 + n + 1)), \
        f"fast client got {len(seqs)} updates, first gap near {next((i for i, s in enumerate(seqs) if s != seq0 + 1 + i), None)}"
    assert (await fast.request({"type": "ping"}, "pong"))["type"] == "pong"
    assert not fast.ws.closed
    # memory stayed bounded while the slow one was stuck, and it was dropped
    grown = (state["peak"] - rss0) / 1024
    volume = n * len('{"type":"update","x":0,"y":0,"color":0,"seq":0,"userId":"%s","time":0}' % uid) / 2 ** 20
    assert grown < min(20, volume / 2), \
        f"VmRSS grew by {grown:.1f} MB while {volume:.0f} MB went to a stuck reader (cap 64 KiB)"
    wait_for(lambda: api.health_ws() == 1, timeout=15, what="slow client dropped (ws.connections == 1)")
    # its TCP connection is really closed: reading drains to EOF (maybe after a close frame)
    t0 = time.time()
    end = None
    while time.time() - t0 < 15:
        f = slow.recv_frame(15)
        if f is None:
            end = "eof"
            break
        if f.opcode == CLOSE:
            end = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else 1005
            assert end == 1008, f"slow client closed with {end}"
    assert end is not None, "slow client's connection still open"
    slow.close()
    print(f"    slow reader: {n} updates ({volume:.0f} MB), peak VmRSS +{grown:.1f} MB, "
          f"slow client ended with {end}")
    await fast.close()


# ---------------------------------------------------------------- 6. failover

class Replica:
    """A client keeping a copy of the canvas: subscribe (welcome), fetch the
    canvas, apply the updates after its X-Canvas-Seq in seq order; refetch on
    a gap or a resync; reconnect through nginx when the socket dies."""

    def __init__(self, target, token, rnd):
        self.target, self.token, self.rnd = target, token, rnd
        self.acks = []
        self.reconnects = 0
        self.gaps = 0
        self.c = None

    async def connect(self):
        deadline = time.time() + 30
        while True:
            try:
                self.c = await ws_connect(self.target, self.token)
                break
            except (OSError, websockets.exceptions.InvalidHandshake, ConnectionClosed, asyncio.TimeoutError,
                    AssertionError):
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.2 + self.rnd.random() * 0.3)
        self.pending = {}
        self.resync = False
        await self.refetch(force=True)

    async def refetch(self, force=False):
        """A snapshot older than what we have (the canvas is cached) is only
        taken right after connecting."""
        data, seq = await asyncio.to_thread(self.target.canvas)
        if force or seq > self.seq:
            self.canvas, self.seq = bytearray(data), seq
        self.apply()

    def apply(self):
        for s in [s for s in self.pending if s <= self.seq]:
            del self.pending[s]
        while self.seq + 1 in self.pending:
            u = self.pending.pop(self.seq + 1)
            self.canvas[u["y"] * W + u["x"]] = u["color"]
            self.seq += 1

    def on(self, m):
        if m["type"] == "update":
            self.pending[m["seq"]] = m
            self.apply()
        elif m["type"] in ("resync", "reset"):
            self.resync = True

    async def pump(self, timeout):
        """Handles messages until none comes within timeout."""
        while True:
            try:
                m = await self.c.recv(timeout)
            except asyncio.TimeoutError:
                return
            self.on(m)

    async def settle(self):
        if self.resync or self.pending:
            if self.pending:
                self.gaps += 1
            await self.refetch(force=self.resync)
            self.resync = False

    async def run(self, stop_at):
        await self.connect()
        while time.time() < stop_at:
            x, y, col = self.rnd.randrange(W), self.rnd.randrange(H), self.rnd.randrange(16)
            try:
                await self.c.send({"type": "place", "x": x, "y": y, "color": col})
                while True:
                    m = await self.c.recv(10)
                    if m["type"] == "ack":
                        assert (m["x"], m["y"], m["color"]) == (x, y, col), m
                        self.acks.append(m)
                        break
                    if m["type"] == "error":
                        raise AssertionError(f"placement refused: {m}")
                    self.on(m)
                await self.pump(0.1)  # ~8 placements/s: far below the flood limit
            except (ConnectionClosed, asyncio.TimeoutError):
                self.reconnects += 1
                await self.connect()

    async def converge(self, target_seq, timeout=20):
        deadline = time.time() + timeout
        while self.seq < target_seq:
            if time.time() > deadline:
                raise AssertionError(f"replica stuck at seq {self.seq} < {target_seq}")
            try:
                await self.pump(0.3)
                if self.seq < target_seq:
                    await self.settle()
            except ConnectionClosed:
                self.reconnects += 1
                await self.connect()


def test_kill9_one_instance_behind_nginx():
    with running(Cluster(2, name="ws-kill", cooldown_seconds=0, sink_claim_idle_ms=500)) as cl:
        run(_kill9(cl))


async def _kill9(cl):
    rnd = random.Random(42)
    reps = [Replica(cl, cl.guest()[0], random.Random(rnd.random())) for _ in range(6)]
    t0 = time.time()
    stop_at = t0 + 6
    tasks = [asyncio.create_task(r.run(stop_at)) for r in reps]
    await asyncio.sleep(2)
    counts = [a.health_ws() for a in cl.apis]
    assert sum(counts) == 6, counts
    victim = cl.apis[0] if counts[0] >= counts[1] else cl.apis[1]
    survivor = cl.apis[1] if victim is cl.apis[0] else cl.apis[0]
    n_before = sum(len(r.acks) for r in reps)
    victim.kill()
    await asyncio.gather(*tasks)
    assert survivor.proc.poll() is None
    assert survivor.health_ws() == 6, "every client is back, on the survivor"
    reconnects = sum(r.reconnects for r in reps)
    assert reconnects >= max(counts), (reconnects, counts)
    acks = [a for r in reps for a in r.acks]
    assert len(acks) > n_before + 20, (n_before, len(acks))
    target = redis_int("GET", "canvas:seq")
    for r in reps:
        await r.converge(target)
    truth = redis_get_bytes("canvas:main")
    assert len(truth) == W * H
    for k, r in enumerate(reps):
        if bytes(r.canvas) != truth:
            diff = sum(1 for p, q in zip(r.canvas, truth) if p != q)
            raise AssertionError(f"replica {k} differs from canvas:main in {diff} pixels (seq {r.seq}/{target})")
    # every acked placement is in pixel_events exactly once, as acked
    want = {a["id"]: (a["seq"], a["x"], a["y"], a["color"]) for a in acks}
    assert len(want) == len(acks), "duplicate ids in acks"
    assert len({a["seq"] for a in acks}) == len(acks), "duplicate seqs in acks"
    ids = ",".join(f"'{i}'" for i in want)

    def stored():
        return sql("SELECT replace(id::text,'-',''), seq, x, y, color FROM pixel_events "
                   f"WHERE replace(id::text,'-','') IN ({ids})")
    rows = wait_for(lambda: (lambda r: r if len(r) >= len(want) else None)(stored()), timeout=30,
                    what=f"{len(want)} acked rows in pixel_events")
    got = {}
    for i, s, x, y, col in rows:
        assert i not in got, f"id {i} stored twice"
        got[i] = (int(s), int(x), int(y), int(col))
    assert got == want
    print(f"    kill -9: {len(acks)} acked placements ({n_before} before the kill), "
          f"{reconnects} reconnects, {sum(r.gaps for r in reps)} gap refetches, victim had {max(counts)} clients")
    for r in reps:
        await r.c.close()


# ---------------------------------------------------------------- 7. many

def test_400_connections():
    with running(new_api("ws-many")) as api:
        run(_many(api))


async def _many(api, n=400):
    with cf.ThreadPoolExecutor(16) as ex:
        toks = list(ex.map(lambda i: api.guest()[0], range(n)))
    sem = asyncio.Semaphore(50)

    async def one(t):
        async with sem:
            return await ws_connect(api, t, open_timeout=30)
    clients = await asyncio.gather(*(one(t) for t in toks))
    assert all(c.welcome["type"] == "welcome" for c in clients)
    assert api.health_ws() == n
    tok, uid = api.guest()
    st, _, body = api.json("POST", "/api/v1/pixel", {"x": 7, "y": 8, "color": 9}, token=tok)
    assert st == 201, body
    ups = await asyncio.gather(*(c.expect("update", 30, where=lambda m: m["seq"] == body["seq"])
                                 for c in clients))
    assert all((u["x"], u["y"], u["color"], u["userId"]) == (7, 8, 9, uid) for u in ups)
    await asyncio.gather(*(c.close() for c in clients))
    wait_for(lambda: api.health_ws() == 0, timeout=15, what="ws.connections back to 0")


# ---------------------------------------------------------------- 8. SIGTERM

def test_sigterm_closes_1001_and_exits_zero():
    api = new_api("ws-term")
    with running(api):
        run(_sigterm(api))


async def _sigterm(api):
    clients = [await ws_connect(api, api.guest()[0]) for _ in range(3)]
    raw = raw_connect(api, api.guest()[0])
    api.proc.send_signal(signal.SIGTERM)
    for c in clients:
        try:
            await asyncio.wait_for(c.ws.wait_closed(), 15)
        except asyncio.TimeoutError:
            raise AssertionError("client not closed after SIGTERM")
        assert c.close_code == 1001, c.close_code
    assert raw.expect_close(5) == 1001
    rc = await asyncio.to_thread(api.proc.wait, 20)
    assert rc == 0, rc


# ---------------------------------------------------------------- 9. server ping

def test_server_ping_closes_dead_peer():
    with running(new_api("ws-ping", ws_ping_interval_s=1, ws_dead_timeout_s=1)) as api:
        run(_server_ping(api))


async def _server_ping(api):
    lively = await ws_connect(api, api.guest()[0])  # python3-websockets answers pings itself
    dead = raw_connect(api, api.guest()[0])  # never answers
    ponger = raw_connect(api, api.guest()[0])
    ponger.auto_pong = True
    assert api.health_ws() == 3
    out = {}

    def watch_dead():
        t0 = time.time()
        while time.time() - t0 < 10:
            f = dead.recv_frame(10)
            if f is None or f.opcode == CLOSE:
                out["dead"] = (time.time() - t0, None if f is None else f.payload[:2])
                return

    def watch_ponger():
        t0 = time.time()
        try:
            while time.time() - t0 < 5:
                f = ponger.recv_frame(5.5 - (time.time() - t0))
                if f is None or f.opcode == CLOSE:
                    out["ponger_closed"] = True
                    return
        except OSError:
            pass
    ths = [threading.Thread(target=watch_dead), threading.Thread(target=watch_ponger)]
    for th in ths:
        th.start()
    await asyncio.sleep(5)
    for th in ths:
        await asyncio.to_thread(th.join, 15)
    assert dead.pings, "no server ping within 5 s with ping_interval_s=1"
    assert "dead" in out and out["dead"][0] < 6, f"dead peer not closed: {out}"
    assert ponger.pings and "ponger_closed" not in out, "a raw client that answers pings was closed"
    assert not lively.ws.closed, f"python3-websockets client closed: {lively.close_code}"
    assert (await lively.request({"type": "ping"}, "pong"))["type"] == "pong"
    assert ponger.alive()
    wait_for(lambda: api.health_ws() == 2, timeout=5, what="dead peer gone from ws.connections")
    print(f"    dead peer closed after {out['dead'][0]:.1f}s (close payload {out['dead'][1]!r})")
    ponger.close()
    await lively.close()


TESTS = [
    test_welcome_ack_and_updates,
    test_handshake_auth_and_refusals,
    test_max_connections_503,
    test_protocol_errors,
    test_close_handshake,
    test_silent_peer_after_server_close_is_dropped,
    test_control_messages_and_ban,
    test_fanout_across_instances_and_nginx,
    test_slow_reader_dropped_memory_bounded,
    test_kill9_one_instance_behind_nginx,
    test_400_connections,
    test_sigterm_closes_1001_and_exits_zero,
    test_server_ping_closes_dead_peer,
]


def before_each():
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    reset_state()


def main():
    return Runner("ws").run(TESTS, only=sys.argv[1] if len(sys.argv) > 1 else None, before_each=before_each)


if __name__ == "__main__":
    sys.exit(main())
