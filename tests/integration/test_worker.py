#!/usr/bin/python3
"""Worker and jobs against real RabbitMQ, Redis and PostgreSQL (issue 5):
snapshots (pngcheck, libpng decode through Debian's apngdis == the canvas),
the snapshot endpoints, admin snapshots, timelapses (frame count, first frame
== canvas at `from`, last == canvas at `to`), bad timelapse requests, RabbitMQ
restarted with jobs queued and requested (outbox), a poison job dead-lettered
after the retry limit, a worker killed mid-job, two workers sharing the queue,
periodic snapshots from two api instances, `place-worker check`, retention,
and the api's rebuild from a snapshot plus events."""

import glob
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BIN, ENV, OUT, ROOT, SERVICES, Api, RedisConn, Runner, redis,  # noqa: E402
                     redis_get_bytes, redis_int, reset_state, sql, wait_for)

W = H = 500
DELIVERY_LIMIT = 5
API_OVERRIDES = {"limits_api_per_min": 100000, "limits_guest_per_min": 100000}
api = None
worker = None
PALETTE = None  # palette index of each (r, g, b)


def env():
    e = dict(os.environ)
    e.update(ENV)
    e["PLACE_WORKER_RETRY_BASE_MS"] = "100"
    return e


def start_worker(name="worker"):
    log = open(os.path.join(OUT, f"{name}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "place-worker")], cwd=ROOT, env=env(), stdout=log,
                         stderr=subprocess.STDOUT)
    p.log_path = os.path.join(OUT, f"{name}.log")
    return p


def stop_worker(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            assert p.wait(30) == 0
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("worker did not stop on SIGTERM")


def worker_cmd(*args):
    return subprocess.run([os.path.join(BIN, "place-worker"), *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=60)


def enqueue(kind="snapshot"):
    r = worker_cmd("enqueue", kind)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    assert len(job) == 36, r.stdout
    return job


def rabbitmqctl(*args):
    return subprocess.run([SERVICES, "rabbitmqctl", "--profile", "test", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def queue_depths():
    r = rabbitmqctl("list_queues", "-q", "name", "messages")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def job_row(job):
    rows = sql("SELECT status, attempts, coalesce(error, ''), progress FROM jobs WHERE id = :'p0'", job)
    assert rows, f"no jobs row {job}"
    return rows[0]


def wait_job(job, status=("done",), timeout=60):
    def check():
        st = job_row(job)[0]
        assert st not in ("done", "failed") or st in status, f"job {job}: {job_row(job)}"
        return st in status
    wait_for(check, timeout=timeout, what=f"job {job} {status}")


def redis_time_ms():
    s, us = redis("TIME").split()[:2]
    return int(s) * 1000 + int(us) // 1000


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def place_many(n, x0, y0, color_of, tokens=None):
    toks = tokens or [api.guest()[0] for _ in range(n)]
    for i in range(n):
        st, _, b = api.json("POST", "/api/v1/pixel", {"x": (x0 + i) % W, "y": (y0 + i // W) % H,
                                                       "color": color_of(i)}, token=toks[i])
        assert st == 201, b
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0 and
             redis_int("XLEN", "canvas:events") >= 0, what="sink drained")
    return toks


def admin_token():
    """An admin session made directly in Redis (sessions come from issue 4)."""
    sid = os.urandom(32).hex()
    uid = "00000000-0000-4000-8000-0000000000ad"
    redis("HSET", f"session:{sid}", "uid", uid, "name", "admin", "guest", "0", "admin", "1")
    redis("EXPIRE", f"session:{sid}", "3600")
    return sid, uid


# ---------------------------------------------------------------- PNG decoding

def chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos = 8
    while pos < len(data):
        n, = struct.unpack(">I", data[pos:pos + 4])
        typ = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(typ + body) == crc, f"bad CRC in {typ}"
        yield typ, body
        pos += 12 + n


def unfilter(raw, h, stride, bpp):
    out = bytearray()
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        else:
            assert f == 0, f"filter {f}"
        out += line
        prev = line
    return bytes(out)


def decode_png(data):
    """(w, h, kind, pixels): kind 'indexed' (one index per pixel) for colour
    type 3, 'rgba' (4 bytes per pixel) for colour type 6."""
    idat, ihdr = b"", None
    for typ, body in chunks(data):
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = ihdr
    assert interlace == 0
    raw = zlib.decompress(idat)
    if ctype == 6:
        assert depth == 8
        return w, h, "rgba", unfilter(raw, h, w * 4, 4)
    assert ctype == 3 and depth in (4, 8), ihdr
    stride = (w * depth + 7) // 8
    px = unfilter(raw, h, stride, 1)
    if depth == 8:
        return w, h, "indexed", px
    out = bytearray()
    for y in range(h):
        row = px[y * stride:(y + 1) * stride]
        for x in range(w):
            b = row[x // 2]
            out.append(b >> 4 if x % 2 == 0 else b & 15)
    return w, h, "indexed", bytes(out)


def rgba_to_indices(rgba):
    out = bytearray(len(rgba) // 4)
    for i in range(len(out)):
        j = i * 4
        assert rgba[j + 3] == 255, "transparent pixel"
        out[i] = PALETTE[(rgba[j], rgba[j + 1], rgba[j + 2])]
    return bytes(out)


def apngdis(data, name):
    """Splits an (A)PNG into frames with Debian's apngdis (libpng); returns
    each frame as palette indices."""
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "in.png")
    with open(path, "wb") as f:
        f.write(data)
    r = subprocess.run(["apngdis", "in.png", "frame"], cwd=d, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "all done" in r.stdout, r.stdout + r.stderr
    frames = []
    for p in sorted(glob.glob(os.path.join(d, "frame*.png"))):
        with open(p, "rb") as f:
            w, h, kind, px = decode_png(f.read())
        frames.append((w, h, rgba_to_indices(px) if kind == "rgba" else px))
    return frames


def region_of(canvas, x, y, w, h, scale=1):
    out = bytearray()
    for yy in range(y, y + h):
        row = canvas[yy * W + x:yy * W + x + w]
        line = bytes(b for b in row for _ in range(scale))
        out += line * scale
    return bytes(out)


def pngcheck(data, name):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    return subprocess.run(["pngcheck", path], capture_output=True, text=True)


# ---------------------------------------------------------------- snapshots

def test_snapshot_job_matches_canvas():
    place_many(40, 3, 7, lambda i: i % 16)
    n0 = int(sql("SELECT count(*) FROM canvas_snapshots")[0][0])
    canvas = redis_get_bytes("canvas:main")
    seq = redis_int("GET", "canvas:seq")
    job = enqueue()
    wait_job(job, timeout=30)
    assert int(sql("SELECT count(*) FROM canvas_snapshots")[0][0]) == n0 + 1
    r = sql("SELECT id, seq, width, height, size_bytes, encode(png, 'hex'), encode(canvas_z, 'hex') "
            "FROM canvas_snapshots WHERE job_id = :'p0'", job)[0]
    assert int(r[1]) == seq and int(r[2]) == W and int(r[3]) == H, r[:5]
    png = bytes.fromhex(r[5])
    assert len(png) == int(r[4])
    pc = pngcheck(png, "snapshot.png")
    assert pc.returncode == 0 and "4-bit palette" in pc.stdout, pc.stdout
    w, h, kind, pixels = decode_png(png)
    assert (w, h, kind) == (W, H, "indexed")
    assert pixels == canvas, "snapshot PNG differs from the Redis canvas"
    frames = apngdis(png, "snapshot-frames")  # libpng's decoding
    assert len(frames) == 1 and frames[0][:2] == (W, H)
    assert frames[0][2] == canvas, "libpng decodes the snapshot to other pixels"
    assert zlib.decompress(bytes.fromhex(r[6])) == canvas
    assert job_row(job)[:2] == ["done", "1"]
    assert sql("SELECT result->>'snapshotId' FROM jobs WHERE id = :'p0'", job)[0][0] == r[0]


def test_snapshot_endpoints():
    for _ in range(3):
        wait_job(enqueue(), timeout=30)
    ids = [int(r[0]) for r in sql("SELECT id FROM canvas_snapshots ORDER BY id DESC")]
    st, _, b = api.json("GET", "/api/v1/timelapse/snapshots?limit=2")
    assert st == 200, b
    assert [s["id"] for s in b["snapshots"]] == ids[:2] and b["next"] == ids[1], (b, ids)
    s0 = b["snapshots"][0]
    assert set(s0) == {"id", "seq", "width", "height", "sizeBytes", "createdAt", "url"}, s0
    assert s0["url"] == f"/api/v1/timelapse/snapshot/{ids[0]}" and s0["width"] == W
    assert s0["createdAt"].endswith("Z") and "T" in s0["createdAt"]
    st, _, b2 = api.json("GET", f"/api/v1/timelapse/snapshots?limit=100&before={b['next']}")
    assert [s["id"] for s in b2["snapshots"]] == ids[2:] and b2["next"] is None, b2
    for bad in ("limit=0", "limit=101", "limit=x", "before=0", "before=-3"):
        assert api.json("GET", "/api/v1/timelapse/snapshots?" + bad)[0] == 400, bad

    st, h, png = api.request("GET", s0["url"])
    assert st == 200 and h["content-type"] == "image/png" and len(png) == s0["sizeBytes"]
    assert h["cache-control"] == "public, max-age=31536000, immutable" and h["etag"], h
    want = sql("SELECT encode(png, 'hex') FROM canvas_snapshots WHERE id = :'p0'", ids[0])[0][0]
    assert png.hex() == want
    st, h2, body = api.request("GET", s0["url"], headers={"If-None-Match": h["etag"]})
    assert st == 304 and body == b"" and h2["etag"] == h["etag"], st
    assert api.request("GET", "/api/v1/timelapse/snapshot/999999")[0] == 404
    assert api.request("GET", "/api/v1/timelapse/snapshot/abc")[0] == 400
    assert api.request("GET", "/api/v1/timelapse/snapshot/1x")[0] == 400
    assert api.request("POST", "/api/v1/timelapse/snapshots")[0] == 405


def test_admin_snapshot():
    url = "/api/v1/admin/snapshot"
    n_jobs = int(sql("SELECT count(*) FROM jobs")[0][0])
    assert api.json("POST", url, headers={"X-Place-CSRF": "1"})[0] == 401
    guest, _ = api.guest()
    st, _, b = api.json("POST", url, token=guest, headers={"X-Place-CSRF": "1"})
    assert st == 403, b
    sid, uid = admin_token()
    st, _, b = api.json("POST", url, token=sid)
    assert st == 403 and "X-Place-CSRF" in b["error"]["message"], b
    assert int(sql("SELECT count(*) FROM jobs")[0][0]) == n_jobs, "refused requests made jobs"
    st, _, b = api.json("POST", url, token=sid, headers={"X-Place-CSRF": "1"})
    assert st == 202 and set(b) == {"jobId"}, b
    wait_job(b["jobId"], timeout=30)
    assert sql("SELECT count(*) FROM canvas_snapshots WHERE job_id = :'p0'", b["jobId"])[0][0] == "1"
    rows = sql("SELECT admin_user_id, action_type, details->>'jobId' FROM admin_actions "
               "WHERE details->>'jobId' = :'p0'", b["jobId"])
    assert rows == [[uid, "snapshot", b["jobId"]]], rows


def test_rebuild_from_snapshot_plus_events():
    global api
    wait_job(enqueue(), timeout=30)
    snap_seq = int(sql("SELECT max(seq) FROM canvas_snapshots")[0][0])
    place_many(25, 250, 250, lambda i: 3)
    before = redis_get_bytes("canvas:main")
    assert api.stop() == 0
    redis("DEL", "canvas:main")
    api = Api("api", **API_OVERRIDES).start()
    assert redis_get_bytes("canvas:main") == before
    log = open(api.log_path).read()
    assert f"snapshot seq {snap_seq}" in log, "rebuild did not start from the newest snapshot"



def test_rebuild_after_a_reset_without_its_blank_snapshot():
    """A reset stores a blank snapshot at its seq, so rebuilds start after it.
    When that store failed (PostgreSQL was down for it), the rebuild and
    `check` still blank the canvas at the reset, from its admin_actions row,
    instead of bringing back the pixels placed before it."""
    global api
    sid, _ = admin_token()
    place_many(15, 0, 60, lambda i: 6)
    st, _, b = api.json("POST", "/api/v1/admin/reset-canvas", {}, token=sid,
                        headers={"X-Place-CSRF": "1"})
    assert st == 200 and b["ok"], (st, b)
    # the blank snapshot did not make it; the one of the canvas before does
    sql("DELETE FROM canvas_snapshots WHERE seq >= :'p0'", b["seq"])
    place_many(5, 0, 61, lambda i: 8)
    after = redis_get_bytes("canvas:main")
    assert after.count(0) == W * H - 5
    r = worker_cmd("check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert api.stop() == 0
    redis("DEL", "canvas:main")
    api = Api("api", **API_OVERRIDES).start()
    assert redis_get_bytes("canvas:main") == after, "the rebuild brought back pixels from before the reset"


# ---------------------------------------------------------------- timelapses

def request_timelapse(body, token):
    st, _, b = api.json("POST", "/api/v1/timelapse", body, token=token)
    assert st == 202, (st, b)
    assert b["status"] == "queued" and b["url"] == f"/api/v1/timelapse/{b['id']}", b
    return b["id"]


def wait_timelapse(tid, timeout=60):
    def done():
        st, _, s = api.json("GET", f"/api/v1/timelapse/{tid}")
        assert st == 200 and s["status"] != "failed", s
        assert 0 <= s["progress"] <= 1, s
        return s if s["status"] == "done" else None
    s = wait_for(done, timeout=timeout, what=f"timelapse {tid}")
    st, h, data = api.request("GET", s["url"])
    assert st == 200 and h["content-type"] in ("image/apng", "image/png"), (st, h)
    return s, data


def test_timelapse_frames():
    tok, _ = api.guest()
    place_many(30, 0, 10, lambda i: (i % 15) + 1)
    wait_job(enqueue(), timeout=30)
    snap_seq = redis_int("GET", "canvas:seq")
    place_many(20, 0, 20, lambda i: 5)
    time.sleep(0.05)
    t_from = redis_time_ms()
    canvas_from = redis_get_bytes("canvas:main")
    time.sleep(0.05)
    place_many(30, 100, 30, lambda i: 13)
    place_many(30, 0, 10, lambda i: 2)  # overwrites pixels placed before `from`
    time.sleep(0.05)
    t_to = redis_time_ms()
    canvas_to = redis_get_bytes("canvas:main")
    time.sleep(0.05)
    place_many(10, 0, 40, lambda i: 9)  # after `to`: in no frame
    wait_job(enqueue(), timeout=30)  # a snapshot after `to` must not be the start
    assert canvas_from != canvas_to

    frames_n = 6
    tid = request_timelapse({"from": rfc3339(t_from), "to": rfc3339(t_to), "frames": frames_n,
                             "fps": 12}, tok)
    s, apng = wait_timelapse(tid)
    assert s == {"id": tid, "status": "done", "progress": 1.0, "frames": frames_n, "fps": 12,
                 "url": f"/api/v1/timelapse/{tid}.png"}, s
    types = [t for t, _ in chunks(apng)]
    actl = next(b for t, b in chunks(apng) if t == b"acTL")
    assert struct.unpack(">II", actl) == (frames_n, 0)
    assert types.count(b"fcTL") == frames_n and types[-1] == b"IEND"
    fctl = next(b for t, b in chunks(apng) if t == b"fcTL")
    assert struct.unpack(">IIIIIHHBB", fctl)[5:7] == (1, 12), "frame delay is not 1/fps"
    pc = pngcheck(apng, "timelapse.png")
    assert pc.returncode == 0, pc.stdout
    frames = apngdis(apng, "timelapse-frames")
    assert len(frames) == frames_n, len(frames)
    assert all(f[:2] == (W, H) for f in frames)
    assert frames[0][2] == canvas_from, "first frame is not the canvas at `from`"
    assert frames[-1][2] == canvas_to, "last frame is not the canvas at `to`"
    log = open(worker.log_path).read()
    assert f"from snapshot seq {snap_seq} " in log, "did not start from the snapshot before `from`"

    # a region, scaled
    rx, ry, rw, rh, sc = 90, 25, 40, 12, 3
    tid = request_timelapse({"from": rfc3339(t_from), "to": rfc3339(t_to), "frames": 3, "fps": 1,
                             "region": {"x": rx, "y": ry, "width": rw, "height": rh},
                             "scale": sc}, tok)
    s, apng = wait_timelapse(tid)
    frames = apngdis(apng, "timelapse-region")
    assert [f[:2] for f in frames] == [(rw * sc, rh * sc)] * 3
    assert frames[0][2] == region_of(canvas_from, rx, ry, rw, rh, sc)
    assert frames[-1][2] == region_of(canvas_to, rx, ry, rw, rh, sc)
    assert frames[0][2] != frames[-1][2]
    st, h, _ = api.request("GET", s["url"], headers={"If-None-Match": f'"timelapse-{tid}"'})
    assert st == 304


def test_timelapse_across_a_reset():
    """A canvas reset inside the range blanks the frames from then on, and a
    range that starts after a reset starts blank, even when the start
    snapshot and the events replayed are from before it."""
    tok, _ = api.guest()
    sid, _ = admin_token()
    place_many(20, 0, 50, lambda i: 4)
    wait_job(enqueue(), timeout=30)  # the start snapshot, from before the reset
    time.sleep(0.05)
    t_from = redis_time_ms()
    canvas_from = redis_get_bytes("canvas:main")
    time.sleep(0.05)
    place_many(10, 0, 51, lambda i: 7)
    time.sleep(0.05)
    st, _, b = api.json("POST", "/api/v1/admin/reset-canvas", {}, token=sid,
                        headers={"X-Place-CSRF": "1"})
    assert st == 200 and b["ok"], (st, b)
    time.sleep(0.1)
    t_after_reset = redis_time_ms()
    time.sleep(0.05)
    place_many(10, 0, 52, lambda i: 9)
    time.sleep(0.05)
    t_to = redis_time_ms()
    canvas_to = redis_get_bytes("canvas:main")
    assert canvas_to.count(0) == W * H - 10, "the canvas after the reset holds more than B"

    tid = request_timelapse({"from": rfc3339(t_from), "to": rfc3339(t_to), "frames": 8,
                             "fps": 8}, tok)
    _, apng = wait_timelapse(tid)
    frames = apngdis(apng, "timelapse-reset")
    assert frames[0][2] == canvas_from, "first frame is not the canvas at `from`"
    assert frames[-1][2] == canvas_to, "last frame still shows pixels from before the reset"

    # from just after the reset, before anything new was placed: blank first
    tid = request_timelapse({"from": rfc3339(t_after_reset), "to": rfc3339(t_to), "frames": 2,
                             "fps": 2}, tok)
    _, apng = wait_timelapse(tid)
    frames = apngdis(apng, "timelapse-after-reset")
    assert frames[0][2] == bytes(W * H), "a range starting after a reset does not start blank"
    assert frames[-1][2] == canvas_to


def test_timelapse_bad_requests():
    tok, _ = api.guest()
    now = redis_time_ms()
    ok = {"from": rfc3339(now - 60000), "to": rfc3339(now), "frames": 10, "fps": 10}
    n_jobs = int(sql("SELECT count(*) FROM jobs")[0][0])
    bad = [
        ({**ok, "from": rfc3339(now), "to": rfc3339(now - 1000)}, "before"),
        ({**ok, "from": rfc3339(now), "to": rfc3339(now)}, "before"),
        ({**ok, "frames": 601}, "frames"),
        ({**ok, "frames": 1}, "frames"),
        ({**ok, "frames": 2.0}, "frames"),
        ({**ok, "fps": 0}, "fps"),
        ({**ok, "fps": 61}, "fps"),
        ({**ok, "scale": 9}, "scale"),
        ({**ok, "region": {"x": 400, "y": 0, "width": 101, "height": 10}}, "region"),
        ({**ok, "region": {"x": -1, "y": 0, "width": 10, "height": 10}}, "region"),
        ({**ok, "region": {"x": 0, "y": 0, "width": 0, "height": 10}}, "region"),
        ({**ok, "region": {"x": 0, "y": 0, "width": 10}}, "region"),
        ({**ok, "frames": 600, "scale": 2}, "too large"),
        ({**ok, "from": "yesterday"}, "RFC 3339"),
        ({**ok, "to": "2024-02-30T00:00:00Z"}, "RFC 3339"),
        ({**ok, "to": rfc3339(now + 3600 * 1000)}, "future"),
        ({k: v for k, v in ok.items() if k != "from"}, "required"),
        ({**ok, "color": 1}, "unknown member"),
        ("{not json", "invalid JSON"),
        ("[]", "object"),
    ]
    for body, word in bad:
        st, _, b = api.json("POST", "/api/v1/timelapse", body, token=tok)
        assert st == 400 and b["error"]["code"] == "BAD_REQUEST", (body, st, b)
        assert word in b["error"]["message"], (body, b)
    assert api.json("POST", "/api/v1/timelapse", ok)[0] == 401
    assert int(sql("SELECT count(*) FROM jobs")[0][0]) == n_jobs, "a refused request queued a job"
    # status / output of unknown, malformed and unfinished ones
    assert api.json("GET", "/api/v1/timelapse/4f0c1f5e-2d7b-4c3e-9a51-1b2f3c4d5e6f")[0] == 404
    assert api.json("GET", "/api/v1/timelapse/4f0c1f5e-2d7b-4c3e-9a51-1b2f3c4d5e6f.png")[0] == 404
    assert api.json("GET", "/api/v1/timelapse/nope")[0] == 404
    snap_job = sql("SELECT id FROM jobs WHERE kind = 'snapshot' LIMIT 1")[0][0]
    assert api.json("GET", f"/api/v1/timelapse/{snap_job}")[0] == 404, "a snapshot job is no timelapse"
    queued = "4f0c1f5e-2d7b-4c3e-9a51-00000000beef"
    sql("INSERT INTO jobs (id, kind, params, published_at) VALUES (:'p0', 'timelapse', "
        "'{\"frames\":4,\"fps\":2}', now())", queued)
    st, _, b = api.json("GET", f"/api/v1/timelapse/{queued}.png")
    assert st == 409 and b["error"]["code"] == "NOT_READY", b
    st, _, b = api.json("GET", f"/api/v1/timelapse/{queued}")
    assert st == 200 and b == {"id": queued, "status": "queued", "progress": 0.0, "frames": 4,
                               "fps": 2}, b
    sql("DELETE FROM jobs WHERE id = :'p0'", queued)
    # [worker] timelapses_per_hour per user, on an api of its own with a quota of 2
    quota = Api("api-quota", **{**API_OVERRIDES, "worker_timelapses_per_hour": 2}).start()
    try:
        tok2, _ = quota.guest()
        for _ in range(2):
            assert quota.json("POST", "/api/v1/timelapse", ok, token=tok2)[0] == 202
        n_jobs = int(sql("SELECT count(*) FROM jobs")[0][0])
        st, h, b = quota.json("POST", "/api/v1/timelapse", ok, token=tok2)
        assert st == 429 and b["error"]["code"] == "RATE_LIMITED", (st, b)
        ra = int(h["retry-after"])
        assert 1 <= ra <= 3600 + 1800 and b["error"]["retryAfter"] == ra, (h, b)
        assert int(sql("SELECT count(*) FROM jobs")[0][0]) == n_jobs, "a refused request queued a job"
        assert quota.json("POST", "/api/v1/timelapse", ok, token=quota.guest()[0])[0] == 202, \
            "the quota is per user"
    finally:
        quota.stop()


# ---------------------------------------------------------------- RabbitMQ faults

def test_rabbitmq_restart_jobs_done_once():
    """Q1: jobs queued in RabbitMQ survive a restart; jobs requested while it
    is down wait in the outbox; placements go on; every job is done once."""
    global worker
    stop_worker(worker)
    tok, _ = api.guest()
    try:
        queued = [enqueue() for _ in range(3)]
        # queue statistics lag a few seconds behind
        wait_for(lambda: queue_depths().get("place.jobs") == 3, timeout=15, what="3 queued")
    except BaseException:
        worker = start_worker()
        raise
    r = rabbitmqctl("stop_app")
    try:
        worker = start_worker()  # cannot connect yet: must retry by itself
        assert r.returncode == 0, r.stderr
        sid, _ = admin_token()
        t0 = time.time()
        st, _, b = api.json("POST", "/api/v1/admin/snapshot", token=sid, headers={"X-Place-CSRF": "1"})
        assert st == 202, b
        during = [b["jobId"]]
        now = redis_time_ms()
        during.append(request_timelapse({"from": rfc3339(now - 5000), "to": rfc3339(now),
                                         "frames": 3, "fps": 3}, tok))
        assert time.time() - t0 < 2, "a job request waited for RabbitMQ"
        toks = place_many(20, 0, 60, lambda i: 7)  # placements unaffected
        r = worker_cmd("enqueue", "snapshot")
        assert r.returncode == 1 and "relay publishes it" in r.stderr, r.stderr
        during.append(next(w for w in r.stderr.split() if len(w) == 36))
        for j in during:
            assert job_row(j)[0] == "queued"
        assert sql("SELECT count(*) FROM jobs WHERE published_at IS NULL AND id IN "
                   f"({','.join(repr(j) for j in during)})")[0][0] == "3"
        time.sleep(2)
    finally:
        r = rabbitmqctl("start_app")
        assert r.returncode == 0, r.stderr
    every = queued + during
    for j in every:
        wait_job(j, timeout=60)
    rows = sql("SELECT job_id, count(*) FROM canvas_snapshots WHERE job_id IN "
               f"({','.join(repr(j) for j in every)}) GROUP BY job_id")
    assert len(rows) == 5 and all(c == "1" for _, c in rows), rows
    assert sql("SELECT count(*) FROM timelapses WHERE job_id = :'p0'", during[1])[0][0] == "1"
    assert all(job_row(j)[1] == "1" for j in every), [job_row(j) for j in every]
    log = open(worker.log_path).read()
    assert "mq_unavailable" in log and "mq_consuming" in log
    assert "jobs_mq_down" in open(api.log_path).read()

    # restarted under a connected, idle worker: it reconnects by itself
    assert rabbitmqctl("stop_app").returncode == 0
    time.sleep(1)
    assert rabbitmqctl("start_app").returncode == 0
    wait_job(enqueue(), timeout=60)


def test_poison_job_dead_lettered():
    """Q3: a job that fails every time is tried DELIVERY_LIMIT times, then
    marked failed and dead-lettered; the jobs behind it go on."""
    dlq0 = queue_depths().get("place.jobs.dlq", 0)
    sql("CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'poisoned by the test'; END $$; "
        "CREATE TRIGGER test_poison BEFORE INSERT ON canvas_snapshots FOR EACH ROW "
        "EXECUTE FUNCTION test_poison();")
    try:
        t0 = time.time()
        poison = enqueue("snapshot")
        wait_job(poison, status=("failed",), timeout=60)
        blocked = time.time() - t0
    finally:
        sql("DROP TRIGGER test_poison ON canvas_snapshots; DROP FUNCTION test_poison();")
    st, attempts, err, _ = job_row(poison)
    assert attempts == str(DELIVERY_LIMIT), job_row(poison)
    assert "poisoned by the test" in err and "gave up" in err, err
    wait_for(lambda: queue_depths().get("place.jobs.dlq", 0) == dlq0 + 1, timeout=20, what="DLQ")
    assert sql("SELECT count(*) FROM canvas_snapshots WHERE job_id = :'p0'", poison)[0][0] == "0"
    after = enqueue("snapshot")
    wait_job(after, timeout=30)
    wait_for(lambda: queue_depths().get("place.jobs") == 0, timeout=15, what="place.jobs empty")
    print(f"     poison job: {DELIVERY_LIMIT} attempts, dead-lettered after {blocked:.1f} s")


def test_worker_killed_mid_job():
    """Q2: kill -9 during a long timelapse: redelivered, done once."""
    global worker
    tok, _ = api.guest()
    place_many(50, 0, 100, lambda i: i % 16)
    now = redis_time_ms()
    frames = 60
    tid = request_timelapse({"from": rfc3339(now - 60000), "to": rfc3339(now), "frames": frames,
                             "fps": 30, "scale": 4}, tok)
    wait_for(lambda: job_row(tid)[0] == "running" and float(job_row(tid)[3]) > 0.05, timeout=30,
             what="timelapse half-way")
    worker.kill()
    worker.wait()
    assert job_row(tid)[0] == "running"
    assert sql("SELECT count(*) FROM timelapses WHERE job_id = :'p0'", tid)[0][0] == "0"
    worker = start_worker()
    s, apng = wait_timelapse(tid, timeout=90)
    assert job_row(tid)[1] == "2", job_row(tid)
    assert sql("SELECT count(*) FROM timelapses WHERE job_id = :'p0'", tid)[0][0] == "1"
    actl = next(b for t, b in chunks(apng) if t == b"acTL")
    assert struct.unpack(">II", actl)[0] == frames
    assert [t for t, _ in chunks(apng)].count(b"fcTL") == frames
    assert "job_resumed" in open(worker.log_path).read()


def test_worker_sigterm_mid_job():
    """SIGTERM during a long job: the worker hands the job back and exits 0
    at once; the next worker does it."""
    global worker
    tok, _ = api.guest()
    now = redis_time_ms()
    tid = request_timelapse({"from": rfc3339(now - 60000), "to": rfc3339(now), "frames": 60,
                             "fps": 30, "scale": 4}, tok)
    wait_for(lambda: job_row(tid)[0] == "running" and float(job_row(tid)[3]) > 0.05, timeout=30,
             what="timelapse half-way")
    t0 = time.time()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    stopped_in = time.time() - t0
    st, attempts, err, _ = job_row(tid)
    assert st == "queued" and "interrupted" in err, job_row(tid)
    assert sql("SELECT count(*) FROM timelapses WHERE job_id = :'p0'", tid)[0][0] == "0"
    worker = start_worker()
    wait_timelapse(tid, timeout=90)
    assert job_row(tid)[:2] == ["done", "2"], job_row(tid)
    assert stopped_in < 2, f"stopping took {stopped_in:.1f} s"


def test_two_workers_share_the_queue():
    second = start_worker("worker-2")
    try:
        time.sleep(1)
        jobs = [enqueue() for _ in range(12)]
        for j in jobs:
            wait_job(j, timeout=60)
    finally:
        stop_worker(second)
    done_by = {}
    for p in (worker, second):
        text = open(p.log_path).read()
        done_by[p.pid] = sum(1 for j in jobs if f'/worker-{p.pid}","thread":"main","event":'
                             f'"job_done","job":"{j}"' in text)
    assert sum(done_by.values()) == len(jobs) and all(n >= 1 for n in done_by.values()), done_by
    assert sql("SELECT count(*) FROM canvas_snapshots WHERE job_id IN "
               f"({','.join(repr(j) for j in jobs)})")[0][0] == "12"


def test_periodic_snapshots_once_per_interval():
    n0 = int(sql("SELECT count(*) FROM jobs WHERE slot IS NOT NULL")[0][0])
    a = Api("api-periodic-1", worker_snapshot_interval_s=1, **API_OVERRIDES).start()
    b = Api("api-periodic-2", worker_snapshot_interval_s=1, **API_OVERRIDES).start()
    try:
        time.sleep(3.5)
    finally:
        a.stop()
        b.stop()
    rows = sql("SELECT slot, count(*) FROM jobs WHERE slot IS NOT NULL GROUP BY slot")
    assert all(c == "1" for _, c in rows), rows
    slots = sorted(int(s) for s, _ in rows)
    assert len(rows) - n0 >= 3 and slots[-1] - slots[0] == len(slots) - 1, slots
    for (j,) in sql("SELECT id FROM jobs WHERE slot IS NOT NULL"):
        wait_job(j, timeout=30)


# ---------------------------------------------------------------- check and retention

def test_check_finds_pixel_changed_behind_the_api():
    place_many(10, 300, 300, lambda i: 4)
    r = worker_cmd("check")
    assert r.returncode == 0 and r.stdout.startswith("ok:"), (r.returncode, r.stdout, r.stderr)
    x, y = 123, 321
    old = redis_get_bytes("canvas:main")[y * W + x]
    new = (old + 7) % 16
    rc = RedisConn()
    rc.pipeline([("SETRANGE", "canvas:main", y * W + x, bytes([new]))])
    r = worker_cmd("check")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "MISMATCH: 1 pixel" in r.stdout and f"x={x} y={y} redis={new} rebuilt={old}" in r.stdout, r.stdout
    rc.pipeline([("SETRANGE", "canvas:main", y * W + x, bytes([old]))])
    rc.close()
    assert worker_cmd("check").returncode == 0


def partitions():
    return sorted(r[0] for r in sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'pixel_events'::regclass"))


def test_retention_keeps_what_it_must():
    global api
    api.stop()
    reset_state()
    day = 86400 * 1000
    now = redis_time_ms()
    # 100 old events: seq 1-50 forty days ago, 51-100 thirty-five days ago
    sql("SELECT place_ensure_partition(now() - interval '40 days'), "
        "place_ensure_partition(now() - interval '35 days'); "
        "INSERT INTO pixel_events (id, seq, x, y, color, user_id, created_at) "
        "SELECT gen_random_uuid(), s, s, 1, 1 + s % 15, gen_random_uuid(), "
        "  now() - CASE WHEN s <= 50 THEN interval '40 days' ELSE interval '35 days' END "
        "FROM generate_series(1, 100) s; "
        "INSERT INTO canvas_snapshots (seq, width, height, png, canvas_z, size_bytes, created_at) "
        f"VALUES (0, {W}, {H}, '\\x00', decode('{zlib.compress(bytes(W * H)).hex()}', 'hex'), 1, "
        "now() - interval '100 days'); "
        "INSERT INTO jobs (id, kind, status, finished_at, published_at) VALUES "
        "(gen_random_uuid(), 'snapshot', 'done', now() - interval '40 days', now()), "
        "(gen_random_uuid(), 'snapshot', 'done', now() - interval '2 days', now());")
    api = Api("api", **API_OVERRIDES).start()  # rebuilds the canvas from the old events
    old_parts = partitions()
    assert len(old_parts) == 2 and redis_int("GET", "canvas:seq") == 100

    # the only snapshot is older than every event: nothing may go
    job = enqueue("retention")
    wait_job(job, timeout=30)
    assert partitions() == old_parts
    assert sql("SELECT count(*) FROM pixel_events")[0][0] == "100"
    assert sql("SELECT count(*) FROM canvas_snapshots")[0][0] == "1", "the newest snapshot went"
    assert sql("SELECT count(*) FROM jobs WHERE finished_at < now() - interval '30 days'")[0][0] == "0"

    # a snapshot newer than the old events: their partitions can go
    place_many(5, 0, 5, lambda i: 6)
    snap = enqueue("snapshot")
    wait_job(snap, timeout=30)
    job = enqueue("retention")
    wait_job(job, timeout=30)
    result = sql("SELECT result::text FROM jobs WHERE id = :'p0'", job)[0][0]
    assert all(p in result for p in old_parts), result
    assert not set(old_parts) & set(partitions()), partitions()
    assert sql("SELECT count(*) FROM pixel_events")[0][0] == "5"
    assert sql("SELECT count(*) FROM canvas_snapshots")[0][0] == "1"
    assert sql("SELECT job_id FROM canvas_snapshots")[0][0] == snap
    r = worker_cmd("check")
    assert r.returncode == 0, r.stdout + r.stderr

    # events newer than the newest snapshot stay even when old
    sql("SELECT place_ensure_partition(now() - interval '45 days'); "
        "INSERT INTO pixel_events (id, seq, x, y, color, user_id, created_at) "
        "VALUES (gen_random_uuid(), 1000000, 9, 9, 2, gen_random_uuid(), now() - interval '45 days')")
    wait_job(enqueue("retention"), timeout=30)
    assert sql("SELECT count(*) FROM pixel_events WHERE seq = 1000000")[0][0] == "1"
    # the app role cannot drop partitions by itself, only through the function
    app_url = ENV["PLACE_POSTGRES_URL"]
    r = subprocess.run(["psql", "-X", "-q", app_url, "-c",
                        f"DROP TABLE {partitions()[0]}"], capture_output=True, text=True)
    assert r.returncode != 0 and "must be owner" in r.stderr, r.stderr
    del now, day


def test_worker_stops_cleanly():
    global worker
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    worker = start_worker()


TESTS = [test_snapshot_job_matches_canvas, test_snapshot_endpoints, test_admin_snapshot,
         test_rebuild_from_snapshot_plus_events,
         test_rebuild_after_a_reset_without_its_blank_snapshot, test_timelapse_frames,
         test_timelapse_across_a_reset,
         test_timelapse_bad_requests, test_rabbitmq_restart_jobs_done_once,
         test_poison_job_dead_lettered, test_worker_killed_mid_job, test_worker_sigterm_mid_job,
         test_two_workers_share_the_queue, test_periodic_snapshots_once_per_interval,
         test_check_finds_pixel_changed_behind_the_api, test_retention_keeps_what_it_must,
         test_worker_stops_cleanly]


def main():
    global api, worker, PALETTE
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    reset_state()
    for q in ("place.jobs", "place.jobs.dlq"):
        rabbitmqctl("purge_queue", q)
    api = Api("api", **API_OVERRIDES).start()
    worker = start_worker()
    st, _, info = api.json("GET", "/api/v1/canvas/info")
    PALETTE = {tuple(bytes.fromhex(c[1:])): i for i, c in enumerate(info["palette"])}
    try:
        return Runner("worker").run(TESTS, only=sys.argv[1] if len(sys.argv) > 1 else None)
    finally:
        api.stop()
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()


if __name__ == "__main__":
    sys.exit(main())
