#!/usr/bin/python3
"""Core slice against real Redis, PostgreSQL and RabbitMQ: guest sessions,
placing pixels, the canvas, history, bad input, the event sink under a
PostgreSQL outage, rebuild after the canvas key is lost, shutdown."""

import concurrent.futures as cf
import gzip
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ROOT, SERVICES, Api, Runner, redis, redis_get_bytes, redis_int,  # noqa: E402
                     metric, reset_state, sql, wait_for)

W = H = 500
api = None


def rows(where="true"):
    return int(sql(f"SELECT count(*) FROM pixel_events WHERE {where}")[0][0])


def place(tok, x, y, c, a=None):
    return (a or api).json("POST", "/api/v1/pixel", {"x": x, "y": y, "color": c}, token=tok)


# ---------------------------------------------------------------- sessions

def test_guest_session_and_me():
    st, h, body = api.json("POST", "/api/v1/auth/guest")
    assert st == 201
    cookie = h["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie, cookie
    assert "Domain" not in cookie
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert sid == body["token"] and len(sid) == 64
    assert body["isGuest"] is True and len(body["userId"]) == 36
    # the cookie and the bearer token are the same session
    st, _, me = api.json("GET", "/api/v1/auth/me", headers={"Cookie": "place_session=" + sid})
    assert st == 200 and me["userId"] == body["userId"], me
    st, _, me2 = api.json("GET", "/api/v1/auth/me", token=sid)
    assert st == 200 and me2["userId"] == body["userId"]
    ttl = redis_int("TTL", "session:" + sid)
    assert 86000 < ttl <= 86400, ttl


def test_unauthenticated_refused():
    st, _, body = api.json("POST", "/api/v1/pixel", {"x": 1, "y": 1, "color": 1})
    assert st == 401 and body["error"]["code"] == "UNAUTHORIZED", body
    st, _, body = api.json("GET", "/api/v1/auth/me", token="ab" * 32)
    assert st == 401, body
    st, _, body = api.json("GET", "/api/v1/auth/me", token="not-a-session")
    assert st == 401, body


def test_canvas_info():
    st, _, info = api.json("GET", "/api/v1/canvas/info")
    assert st == 200
    assert info["width"] == W and info["height"] == H and info["cooldown"] == 5
    assert info["palette"][0] == "#FFFFFF" and info["palette"][15] == "#820080"
    assert len(info["palette"]) == 16


# ---------------------------------------------------------------- placing

def test_place_changes_one_byte_and_one_row():
    tok, uid = api.guest()
    before, seq0 = api.canvas()
    x, y, c = 123, 321, 7
    t0 = int(time.time() * 1000)
    st, h, body = place(tok, x, y, c)
    t1 = int(time.time() * 1000)
    assert st == 201, body
    assert body["seq"] > seq0 and body["cooldown"] == 5
    time.sleep(0.3)  # canvas cache
    after, seq1 = api.canvas()
    assert seq1 >= body["seq"]
    diff = [i for i in range(W * H) if before[i] != after[i]]
    assert diff == [y * W + x], diff
    assert after[y * W + x] == c
    r = wait_for(lambda: sql("SELECT seq, x, y, color, user_id, replace(id::text,'-','') FROM pixel_events "
                             f"WHERE seq = {body['seq']}"), what="pixel_events row")
    assert r == [[str(body["seq"]), str(x), str(y), str(c), uid, body["id"]]], r
    # stored with Redis's time of the placement, to the millisecond
    (at,), = sql(f"SELECT (extract(epoch FROM created_at) * 1000)::bigint FROM pixel_events "
                 f"WHERE seq = {body['seq']}")
    assert t0 - 5 <= int(at) <= t1 + 5, (t0, at, t1)
    # the stream entry the sink stored it from: one field, e = "<id> <seq> <x> <y> <c> <u> <t>"
    lines = redis("XREVRANGE", "canvas:events", "+", "-", "COUNT", "20").split("\n")
    want = f"{body['id']} {body['seq']} {x} {y} {c} {uid} {at}"
    i = lines.index(want)
    assert lines[i - 1] == "e" and re.fullmatch(r"\d+-\d+", lines[i - 2]), lines[i - 2:i + 1]
    # and it is in the history
    st, _, hp = api.json("GET", f"/api/v1/history/pixel?x={x}&y={y}")
    assert st == 200 and hp["events"][0]["seq"] == body["seq"] and hp["events"][0]["userId"] == uid
    st, _, hu = api.json("GET", f"/api/v1/history/user/{uid}")
    assert st == 200 and [e["seq"] for e in hu["events"]] == [body["seq"]]
    st, _, hr = api.json("GET", "/api/v1/history/recent?limit=5")
    assert st == 200 and hr["events"][0]["seq"] == body["seq"]


def test_cooldown_refuses_second_placement():
    tok, _ = api.guest()
    st, _, b1 = place(tok, 1, 1, 2)
    assert st == 201
    st, h, b2 = place(tok, 2, 2, 3)
    assert st == 429, b2
    assert b2["error"]["code"] == "RATE_LIMITED"
    rem = b2["error"]["cooldownRemaining"]
    assert 0 < rem <= 5, rem
    assert h["retry-after"] in ("4", "5"), h.get("retry-after")
    st, _, me = api.json("GET", "/api/v1/auth/me", token=tok)
    assert 0 < me["cooldownRemaining"] <= 5


def test_cooldown_expires():
    redis("HSET", "settings", "cooldown_ms", "300")
    try:
        tok, _ = api.guest()
        assert place(tok, 3, 3, 3)[0] == 201
        assert place(tok, 3, 4, 3)[0] == 429
        time.sleep(0.4)
        assert place(tok, 3, 4, 3)[0] == 201
    finally:
        redis("HDEL", "settings", "cooldown_ms")


def test_50_concurrent_placements_one_user():
    tok, uid = api.guest()
    with cf.ThreadPoolExecutor(50) as ex:
        res = list(ex.map(lambda i: place(tok, i, 40, 4)[0], range(50)))
    assert res.count(201) == 1, res
    assert res.count(429) == 49, res
    wait_for(lambda: rows(f"user_id = '{uid}'") == 1, what="one row")
    time.sleep(0.5)
    assert rows(f"user_id = '{uid}'") == 1


def test_1000_distinct_users():
    with cf.ThreadPoolExecutor(32) as ex:
        toks = list(ex.map(lambda i: api.guest(), range(1000)))
    before, _ = api.canvas()
    rnd = random.Random(7)
    jobs = [(t, rnd.randrange(W), rnd.randrange(50, 100), rnd.randrange(16)) for t, _ in toks]

    def one(j):
        st, _, b = place(j[0], j[1], j[2], j[3])
        return st, b
    with cf.ThreadPoolExecutor(32) as ex:
        res = list(ex.map(one, jobs))
    assert all(st == 201 for st, _ in res), [r for r in res if r[0] != 201][:3]
    seqs = [b["seq"] for _, b in res]
    ids = [b["id"] for _, b in res]
    assert len(set(seqs)) == 1000 and len(set(ids)) == 1000
    expect = bytearray(before)
    for (t, x, y, c), (_, b) in sorted(zip(jobs, res), key=lambda p: p[1][1]["seq"]):
        expect[y * W + x] = c
    time.sleep(0.3)
    got, _ = api.canvas()
    assert got == bytes(expect), "canvas differs from the placements replayed by seq"
    lo, hi = min(seqs), max(seqs)
    wait_for(lambda: rows(f"seq BETWEEN {lo} AND {hi}") == 1000, what="1000 rows")
    r = sql(f"SELECT count(DISTINCT id), count(DISTINCT user_id) FROM pixel_events WHERE seq BETWEEN {lo} AND {hi}")
    assert r == [["1000", "1000"]], r


# ---------------------------------------------------------------- bad input

BAD = [
    (b"{", 400, "BAD_REQUEST"),
    (b"not json", 400, "BAD_REQUEST"),
    (b"", 400, "BAD_REQUEST"),
    (b"[]", 400, "BAD_REQUEST"),
    (b'{"x":1,"y":1}', 400, "BAD_REQUEST"),
    (b'{"x":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":"1","y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":1.5,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":1e2,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":true,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":null,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":1,"y":1,"color":1,"extra":1}', 400, "BAD_REQUEST"),
    (b'{"x":1,"x":2,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":1,"y":1,"color":1} trailing', 400, "BAD_REQUEST"),
    (b'\xef\xbb\xbf{"x":1,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":1,"y":1,"color":1,"\xff":1}', 400, "BAD_REQUEST"),
    (b'{"x":99999999999999999999999,"y":1,"color":1}', 400, "BAD_REQUEST"),
    (b'{"x":-1,"y":1,"color":1}', 400, "INVALID_COORDS"),
    (b'{"x":1,"y":-5,"color":1}', 400, "INVALID_COORDS"),
    (b'{"x":500,"y":1,"color":1}', 400, "INVALID_COORDS"),
    (b'{"x":1,"y":500,"color":1}', 400, "INVALID_COORDS"),
    (b'{"x":1000000000,"y":1,"color":1}', 400, "INVALID_COORDS"),
    (b'{"x":-9223372036854775808,"y":1,"color":1}', 400, "INVALID_COORDS"),
    (b'{"x":1,"y":1,"color":16}', 400, "INVALID_COLOR"),
    (b'{"x":1,"y":1,"color":-1}', 400, "INVALID_COLOR"),
    (b'{"x":1,"y":1,"color":255}', 400, "INVALID_COLOR"),
]


def test_bad_input_changes_nothing():
    tok, uid = api.guest()
    time.sleep(0.3)
    before, seq0 = api.canvas()
    n0 = rows()
    for body, status, code in BAD:
        st, _, b = api.json("POST", "/api/v1/pixel", body, token=tok)
        assert st == status and b["error"]["code"] == code, (body, st, b)
        assert b["error"]["message"], b
    # huge body: 413 before it is read
    st, _, b = api.json("POST", "/api/v1/pixel", b'{"x":1,"y":1,"color":1,"pad":"' + b"a" * 100000 + b'"}', token=tok)
    assert st == 413 and b["error"]["code"] == "PAYLOAD_TOO_LARGE", (st, b)
    # unknown route and method
    st, _, b = api.json("GET", "/api/v1/nope")
    assert st == 404 and b["error"]["code"] == "NOT_FOUND"
    st, h, b = api.json("GET", "/api/v1/pixel", token=tok)
    assert st == 405 and b["error"]["code"] == "METHOD_NOT_ALLOWED" and "POST" in h["allow"]
    st, _, b = api.json("DELETE", "/api/v1/canvas")
    assert st == 405
    st, _, b = api.json("PUT", "/api/v1/pixel", {"x": 1, "y": 1, "color": 1}, token=tok)
    assert st == 405
    time.sleep(0.4)
    after, seq1 = api.canvas()
    assert after == before and seq1 == seq0
    time.sleep(0.3)
    assert rows() == n0
    # the user was never charged a cooldown by the refused requests
    assert place(tok, 5, 5, 5)[0] == 201


def test_banned_user_refused():
    tok, uid = api.guest()
    redis("SADD", "banned:users", uid)
    try:
        before, seq0 = api.canvas()
        st, _, b = place(tok, 11, 11, 11)
        assert st == 403 and b["error"]["code"] == "BANNED", (st, b)
        time.sleep(0.3)
        assert api.canvas() == (before, seq0)
    finally:
        redis("SREM", "banned:users", uid)
    assert place(tok, 11, 11, 11)[0] == 201


def test_bad_config_exits_2():
    env = dict(os.environ)
    for k, v, needle in [("PLACE_CANVAS_WIDTH", "5000", "[canvas] width"),
                         ("PLACE_CANVAS_PALETTE", "FFFFFF,12345", "[canvas] palette"),
                         ("PLACE_HTTP_PORT", "http", "[http] port"),
                         ("PLACE_REDIS_URL", "tcp://x", "[redis] url")]:
        r = subprocess.run([os.path.join(ROOT, os.environ.get("PLACE_BIN", "bin"), "place-api")],
                           cwd=ROOT, env=dict(env, **{k: v}), capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and needle in r.stderr, (k, r.returncode, r.stderr)


def test_history_validation():
    for path in ["/api/v1/history/pixel?x=1", "/api/v1/history/pixel?x=-1&y=1",
                 "/api/v1/history/pixel?x=1&y=500", "/api/v1/history/pixel?x=a&y=1",
                 "/api/v1/history/recent?limit=0", "/api/v1/history/recent?limit=1001",
                 "/api/v1/history/recent?limit=abc", "/api/v1/history/user/not-a-uuid",
                 "/api/v1/history/user/1'%20OR%20'1'='1"]:
        st, _, b = api.json("GET", path)
        assert st == 400 and b["error"]["code"] == "BAD_REQUEST", (path, st, b)
    st, _, b = api.json("GET", "/api/v1/history/recent?limit=1000")
    assert st == 200 and len(b["events"]) <= 1000
    st, _, b = api.json("GET", "/api/v1/history/user/00000000-0000-4000-8000-000000000000")
    assert st == 200 and b["events"] == []


# ---------------------------------------------------------------- canvas reads

def test_gzip_and_etag():
    tok, _ = api.guest()
    assert place(tok, 7, 7, 9)[0] == 201
    time.sleep(0.3)
    st, h, raw = api.request("GET", "/api/v1/canvas")
    assert st == 200 and "content-encoding" not in h and len(raw) == W * H
    st, hz, z = api.request("GET", "/api/v1/canvas", headers={"Accept-Encoding": "gzip"})
    assert st == 200 and hz["content-encoding"] == "gzip" and len(z) < len(raw)
    assert gzip.decompress(z) == raw
    assert hz["etag"] == h["etag"] == '"%s"' % h["x-canvas-seq"]
    st, h304, body = api.request("GET", "/api/v1/canvas", headers={"If-None-Match": h["etag"]})
    assert st == 304 and body == b""
    st, _, _ = api.request("GET", "/api/v1/canvas", headers={"If-None-Match": '"1"'})
    assert st == 200 or h["etag"] == '"1"'
    # a placement moves the ETag on
    tok2, _ = api.guest()
    assert place(tok2, 8, 8, 9)[0] == 201
    time.sleep(0.3)
    st, _, _ = api.request("GET", "/api/v1/canvas", headers={"If-None-Match": h["etag"]})
    assert st == 200
    st, hp, png = api.request("GET", "/api/v1/canvas.png")
    assert st == 200 and hp["content-type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    path = os.path.join(ROOT, "tests", "out", "canvas.png")
    with open(path, "wb") as f:
        f.write(png)
    r = subprocess.run(["pngcheck", path], capture_output=True, text=True)
    assert r.returncode == 0 and "4-bit palette" in r.stdout, r.stdout


def test_health_ready():
    st, _, b = api.json("GET", "/health")
    assert st == 200 and b["status"] == "ok"
    st, _, b = api.json("GET", "/health/ready")
    assert st == 200 and b["down"] == [], b


# ---------------------------------------------------------------- faults

def pg_pid():
    out = subprocess.run([SERVICES, "status", "--profile", "test"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("postgres") and "pid" in line:
            return int(line.rsplit("pid", 1)[1].strip(" )"))
    raise AssertionError("postgres pid not found: " + out)


def test_postgres_outage_loses_nothing():
    toks = [api.guest()[0] for _ in range(300)]
    n0 = rows()
    pid = pg_pid()
    os.kill(pid, signal.SIGINT)  # fast shutdown
    wait_for(lambda: subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0,
             what="postgres to stop")
    st, _, b = api.json("GET", "/health/ready")
    assert st == 503 and b["down"] == ["postgres"], b
    acked = []
    for i, t in enumerate(toks):
        st, _, b = place(t, i % W, 200 + i // W, i % 16)
        assert st == 201, (st, b)  # Redis is the ack point: PostgreSQL down changes nothing
        acked.append(b["seq"])
    time.sleep(1.5)  # the sink retries meanwhile
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    wait_for(lambda: rows() == n0 + 300, timeout=30, what="all 300 rows after PostgreSQL is back")
    seqs = ",".join(map(str, acked))
    r = sql(f"SELECT count(*), count(DISTINCT seq) FROM pixel_events WHERE seq IN ({seqs})")
    assert r == [["300", "300"]], r
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0, what="all acked")


def sink_counts(a):
    """(rows stored, batches stored) by a's sink, from /metrics."""
    return int(metric(a, "place_sink_rows_total")), int(metric(a, "place_sink_batches_total"))


def test_sink_lingers_to_batch():
    # [sink] linger_ms: at a trickle of placements the sink waits after a
    # small batch so the next one gathers more rows; with 0 it stores each
    # placement as it comes. Either way every row is stored, once.
    global api
    batches = {}
    for linger in (400, 0):
        assert api.stop() == 0
        api = Api("api", sink_linger_ms=linger).start()
        toks = [api.guest()[0] for _ in range(12)]
        time.sleep(0.3)  # the sink is waiting for new entries
        r0, b0 = sink_counts(api)
        n0 = rows()
        for i, t in enumerate(toks):
            st, _, b = place(t, 20 + i, 450 + linger // 100, 3)
            assert st == 201, b
            time.sleep(0.05)
        wait_for(lambda: rows() == n0 + 12, timeout=10, what="12 rows stored")
        r1, b1 = sink_counts(api)
        assert r1 - r0 == 12, (r0, r1)
        batches[linger] = b1 - b0
    # 12 placements 50 ms apart: the first alone, then what gathered in each
    # 400 ms; without lingering about one batch each
    assert 2 <= batches[400] <= 5, batches
    assert batches[0] >= 9, batches
    assert api.stop() == 0
    api = Api("api").start()


def test_sink_claims_dead_consumers_pending():
    # Entries delivered to a consumer that died before acking are claimed
    # (XAUTOCLAIM) by a live sink and stored exactly once.
    global api
    assert api.stop() == 0
    n0 = rows()
    seqs = []
    now = int(time.time() * 1000)
    for i in range(20):
        seq = redis_int("INCR", "canvas:seq")
        seqs.append(seq)
        redis("SETRANGE", "canvas:main", 300 * W + i, chr(1))  # as the script would
        redis("XADD", "canvas:events", "*", "id", "%032x" % random.getrandbits(128), "seq", seq,
              "x", i, "y", 300, "c", 1, "u", "00000000-0000-4000-8000-00000000abcd", "t", now)
    out = redis("XREADGROUP", "GROUP", "sink", "ghost", "COUNT", "1000", "STREAMS", "canvas:events", ">")
    assert out.count("seq") == 20, out
    assert redis_int("XPENDING", "canvas:events", "sink") == 20
    api = Api("api", sink_claim_idle_ms=500).start()
    s = ",".join(map(str, seqs))
    wait_for(lambda: rows(f"seq IN ({s})") == 20, timeout=30, what="claimed entries stored")
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0,
             timeout=10, what="no pending entries")
    assert rows() == n0 + 20
    # and a second delivery of the same entries is a no-op (idempotent on id)
    redis("XGROUP", "SETID", "canvas:events", "sink", "0")
    time.sleep(1.0)
    assert rows() == n0 + 20


def test_sink_redelivered_row_in_a_batch():
    # The sink COPYs a batch; a batch holding an entry stored before (a
    # redelivery after a crash between COMMIT and XACK) makes COPY fail as a
    # whole and goes through the idempotent INSERT: the new rows are stored,
    # the old one is not doubled, nothing is dead-lettered.
    global api
    tok, _ = api.guest()
    st, _, b = place(tok, 7, 301, 3)
    assert st == 201
    wait_for(lambda: rows(f"seq = {b['seq']}") == 1, what="first row stored")
    old = sql(f"SELECT replace(id::text, '-', ''), seq, x, y, color, user_id, "
              f"(extract(epoch FROM created_at) * 1000)::bigint FROM pixel_events WHERE seq = {b['seq']}")[0]
    assert api.stop() == 0
    n0, dead0 = rows(), redis_int("XLEN", "canvas:events:dead")
    uid = "00000000-0000-4000-8000-00000000beef"
    now = int(time.time() * 1000)
    seqs = []
    for i in range(6):
        if i == 3:  # the old row again, in the middle of the batch
            redis("XADD", "canvas:events", "*", "id", old[0], "seq", old[1], "x", old[2], "y", old[3],
                  "c", old[4], "u", old[5], "t", old[6])
        seq = redis_int("INCR", "canvas:seq")
        seqs.append(seq)
        redis("SETRANGE", "canvas:main", 302 * W + i, chr(2))
        redis("XADD", "canvas:events", "*", "id", "%032x" % random.getrandbits(128), "seq", seq,
              "x", i, "y", 302, "c", 2, "u", uid, "t", now)
    api = Api("api").start()
    s = ",".join(map(str, seqs))
    wait_for(lambda: rows(f"seq IN ({s})") == 6, timeout=30, what="the new rows stored")
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0, what="all acked")
    assert rows() == n0 + 6
    assert rows(f"seq = {old[1]}") == 1
    assert redis_int("XLEN", "canvas:events:dead") == dead0


def test_poison_entry_dead_lettered():
    n0 = rows()
    redis("XADD", "canvas:events", "*", "id", "zz", "seq", "x")
    tok, _ = api.guest()
    st, _, b = place(tok, 9, 9, 9)
    assert st == 201
    wait_for(lambda: rows(f"seq = {b['seq']}") == 1, what="entry after poison stored")
    assert redis_int("XLEN", "canvas:events:dead") >= 1
    assert rows() == n0 + 1


def test_restart_rebuilds_lost_canvas():
    global api
    toks = [api.guest()[0] for _ in range(30)]
    for i, t in enumerate(toks):
        assert place(t, 400 + i, 450, (i * 3) % 16)[0] == 201
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0, what="drain")
    before = redis_get_bytes("canvas:main")
    seq_before = redis_int("GET", "canvas:seq")
    assert len(before) == W * H
    rc = api.stop()
    assert rc == 0, rc
    redis("DEL", "canvas:main")
    # also lose the counter: it must come back from PostgreSQL, never repeat
    redis("DEL", "canvas:seq")
    api = Api("api").start()
    after = redis_get_bytes("canvas:main")
    assert after == before, f"{sum(1 for a, b in zip(after, before) if a != b)} pixels differ"
    assert redis_int("GET", "canvas:seq") >= seq_before
    st, _, b = place(api.guest()[0], 0, 499, 1)
    assert st == 201 and b["seq"] > seq_before


def test_rebuild_includes_unsunk_stream_entries():
    # events still in the stream (PostgreSQL down) are part of the rebuild
    global api
    pid = pg_pid()
    os.kill(pid, signal.SIGINT)
    wait_for(lambda: subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0,
             what="postgres to stop")
    toks = [api.guest()[0] for _ in range(10)]
    for i, t in enumerate(toks):
        assert place(t, 10 + i, 480, 6)[0] == 201
    before = redis_get_bytes("canvas:main")
    api.stop(signal.SIGKILL)
    redis("DEL", "canvas:main")
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    api = Api("api").start()
    assert redis_get_bytes("canvas:main") == before


def test_sigterm_flushes_and_exits_zero():
    global api
    toks = [api.guest()[0] for _ in range(50)]
    seqs = [place(t, i, 490, 2)[2]["seq"] for i, t in enumerate(toks)]
    rc = api.stop()
    assert rc == 0
    s = ",".join(map(str, seqs))
    assert rows(f"seq IN ({s})") == 50  # flushed before exit, nothing left behind
    api = Api("api").start()


def test_static_index():
    st, h, body = api.request("GET", "/")
    assert st == 200 and h["content-type"].startswith("text/html"), st
    st, _, _ = api.request("GET", "/../config.ini")
    assert st in (400, 404)
    st, _, _ = api.request("GET", "/nope.html")
    assert st == 404


TESTS = [
    test_guest_session_and_me, test_unauthenticated_refused, test_canvas_info,
    test_place_changes_one_byte_and_one_row, test_cooldown_refuses_second_placement,
    test_cooldown_expires, test_50_concurrent_placements_one_user, test_1000_distinct_users,
    test_bad_input_changes_nothing, test_banned_user_refused, test_bad_config_exits_2,
    test_history_validation, test_gzip_and_etag,
    test_health_ready, test_static_index, test_postgres_outage_loses_nothing,
    test_sink_lingers_to_batch, test_sink_claims_dead_consumers_pending,
    test_sink_redelivered_row_in_a_batch,
    test_poison_entry_dead_lettered, test_restart_rebuilds_lost_canvas,
    test_rebuild_includes_unsunk_stream_entries, test_sigterm_flushes_and_exits_zero,
]


def ensure_up():
    """A failed test must not take the rest down with it."""
    global api
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    if api is None or api.proc.poll() is not None:
        api = Api("api").start()


def main():
    global api
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    reset_state()
    api = Api("api").start()
    try:
        return Runner("core").run(TESTS, only=sys.argv[1] if len(sys.argv) > 1 else None,
                                  before_each=ensure_up)
    finally:
        if api:
            api.stop()


if __name__ == "__main__":
    sys.exit(main())
