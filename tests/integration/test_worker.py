#!/usr/bin/python3
"""Worker against real RabbitMQ, Redis and PostgreSQL: `place-worker enqueue
snapshot` -> a canvas_snapshots row whose PNG is valid and equals the canvas;
the api rebuilds a lost canvas from that snapshot plus the later events."""

import os
import signal
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BIN, ENV, OUT, ROOT, SERVICES, Api, Runner, redis, redis_get_bytes,  # noqa: E402
                     redis_int, reset_state, sql, wait_for)

W = H = 500
api = None
worker = None


def start_worker():
    env = dict(os.environ)
    env.update(ENV)
    log = open(os.path.join(OUT, "worker.log"), "ab")
    return subprocess.Popen([os.path.join(BIN, "place-worker")], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def enqueue():
    env = dict(os.environ)
    env.update(ENV)
    r = subprocess.run([os.path.join(BIN, "place-worker"), "enqueue", "snapshot"], cwd=ROOT,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def decode_indexed_png(data):
    """Minimal decoder for our indexed PNGs (filter 0 rows), independent of libpng."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, = struct.unpack(">I", data[pos:pos + 4])
        typ = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(typ + body) == crc, typ
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = ihdr[0], ihdr[1], ihdr[2], ihdr[3]
    assert ctype == 3, ctype
    raw = zlib.decompress(idat)
    stride = (w * depth + 7) // 8
    out = bytearray()
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 2:
            line = bytearray((line[i] + prev[i]) & 255 for i in range(stride))
        else:
            assert f == 0, f"filter {f}"
        prev = line
        if depth == 8:
            out += line
        else:
            for x in range(w):
                b = line[x // 2]
                out.append(b >> 4 if x % 2 == 0 else b & 15)
    return w, h, depth, bytes(out)


def test_snapshot_job_matches_canvas():
    toks = [api.guest()[0] for _ in range(40)]
    for i, t in enumerate(toks):
        st, _, b = api.json("POST", "/api/v1/pixel", {"x": i * 7 % W, "y": i * 13 % H, "color": i % 16}, token=t)
        assert st == 201, b
    n0 = int(sql("SELECT count(*) FROM canvas_snapshots")[0][0])
    canvas = redis_get_bytes("canvas:main")
    seq = redis_int("GET", "canvas:seq")
    enqueue()
    wait_for(lambda: int(sql("SELECT count(*) FROM canvas_snapshots")[0][0]) == n0 + 1,
             timeout=30, what="snapshot row")
    r = sql("SELECT id, seq, width, height, size_bytes, encode(png, 'hex'), encode(canvas_z, 'hex') "
            "FROM canvas_snapshots ORDER BY id DESC LIMIT 1")[0]
    assert int(r[1]) == seq and int(r[2]) == W and int(r[3]) == H, r[:5]
    png = bytes.fromhex(r[5])
    assert len(png) == int(r[4])
    path = os.path.join(OUT, "snapshot.png")
    with open(path, "wb") as f:
        f.write(png)
    pc = subprocess.run(["pngcheck", path], capture_output=True, text=True)
    assert pc.returncode == 0 and "4-bit palette" in pc.stdout, pc.stdout
    w, h, depth, pixels = decode_indexed_png(png)
    assert (w, h, depth) == (W, H, 4)
    assert pixels == canvas, "snapshot PNG differs from the Redis canvas"
    assert zlib.decompress(bytes.fromhex(r[6])) == canvas


def test_rebuild_from_snapshot_plus_events():
    global api
    enqueue()
    n = int(sql("SELECT count(*) FROM canvas_snapshots")[0][0])
    wait_for(lambda: int(sql("SELECT count(*) FROM canvas_snapshots")[0][0]) >= n, timeout=30,
             what="snapshot")
    snap_seq = int(sql("SELECT max(seq) FROM canvas_snapshots")[0][0])
    toks = [api.guest()[0] for _ in range(25)]
    for i, t in enumerate(toks):
        assert api.json("POST", "/api/v1/pixel", {"x": 250 + i, "y": 250, "color": 3}, token=t)[0] == 201
    wait_for(lambda: redis_int("XPENDING", "canvas:events", "sink") == 0, what="drain")
    before = redis_get_bytes("canvas:main")
    assert api.stop() == 0
    redis("DEL", "canvas:main")
    api = Api("api").start()
    assert redis_get_bytes("canvas:main") == before
    log = open(api.log_path).read()
    assert f"snapshot seq {snap_seq}" in log, "rebuild did not start from the newest snapshot"


def test_worker_stops_cleanly():
    global worker
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    worker = start_worker()


TESTS = [test_snapshot_job_matches_canvas, test_rebuild_from_snapshot_plus_events,
         test_worker_stops_cleanly]


def main():
    global api, worker
    subprocess.run([SERVICES, "start", "--profile", "test"], check=True, capture_output=True)
    reset_state()
    api = Api("api").start()
    worker = start_worker()
    try:
        return Runner("worker").run(TESTS, only=sys.argv[1] if len(sys.argv) > 1 else None)
    finally:
        api.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    sys.exit(main())
