"""Shared harness for the integration tests: real services from
compose/services.sh (test profile), our binaries started and stopped by pid,
plain HTTP with http.client, Redis through redis-cli, PostgreSQL through psql.
Stdlib only; run with /usr/bin/python3."""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, os.environ.get("PLACE_BIN", "bin"))
OUT = os.path.join(ROOT, "tests", "out")
SERVICES = os.path.join(ROOT, "compose", "services.sh")


def service_env():
    """PLACE_* variables of the test profile's services."""
    out = subprocess.run([SERVICES, "env", "--profile", "test"], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    env = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = v.strip("'\"")
    return env


ENV = service_env()
REDIS_PORT = ENV["PLACE_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
PG_URL_OWNER = ENV["PLACE_POSTGRES_MIGRATE_URL"]


def redis(*args):
    """redis-cli --raw: one line per reply element."""
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", REDIS_PORT, "--raw", *map(str, args)],
                         check=True, capture_output=True)
    return out.stdout.decode(errors="replace")


def redis_int(*args):
    return int(redis(*args).split("\n")[0])


def metric(api, name):
    """The value of an unlabelled sample in api's /metrics."""
    st, _, body = api.request("GET", "/metrics")
    assert st == 200, f"/metrics: {st}"
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def redis_get_bytes(key):
    """Exact bytes of a string key (redis-cli --raw adds a newline)."""
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", REDIS_PORT, "--raw", "GET", key],
                         check=True, capture_output=True).stdout
    return out[:-1] if out.endswith(b"\n") else out


def sql(query, *params):
    """Runs a query as the owner; returns rows as lists of strings."""
    args = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", PG_URL_OWNER]
    for i, p in enumerate(params):
        args += ["-v", f"p{i}={p}"]
    out = subprocess.run(args, input=query, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def free_port():
    # stay below the ephemeral range as the project rules ask
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = 20000 + s.getsockname()[1] % 10000
        s.close()
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            probe.close()
    raise AssertionError("no free port below 30000")


class HttpTarget:
    """Plain HTTP to 127.0.0.1:self.port (an api instance or nginx)."""

    def request(self, method, path, body=None, headers=None, token=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if token:
                h["Authorization"] = "Bearer " + token
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, body=None, token=None, headers=None):
        st, h, data = self.request(method, path, body=body, token=token, headers=headers)
        try:
            return st, h, json.loads(data) if data else None
        except ValueError:
            raise AssertionError(f"{method} {path}: not JSON: {data[:200]!r}")

    def guest(self):
        st, h, body = self.json("POST", "/api/v1/auth/guest")
        assert st == 201, (st, body)
        return body["token"], body["userId"]

    def canvas(self):
        st, h, data = self.request("GET", "/api/v1/canvas")
        assert st == 200, st
        return data, int(h["x-canvas-seq"])

    def health_ws(self):
        """ws.connections of GET /health (through nginx: of whichever instance answered)."""
        st, _, b = self.json("GET", "/health")
        assert st == 200, (st, b)
        return b["ws"]["connections"]


class Api(HttpTarget):
    """One place-api process."""

    def __init__(self, name="api", **overrides):
        self.name = name
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(ENV)
        self.env.update({"PLACE_HTTP_PORT": str(self.port), "PLACE_INSTANCE_NAME": name,
                         "PLACE_LOG_LEVEL": "info", "PLACE_SINK_BLOCK_MS": "50",
                         # tests make many requests from 127.0.0.1: rate limits are
                         # tested where a test passes low values explicitly
                         "PLACE_LIMITS_AUTH_PER_MIN": "1000000",
                         "PLACE_LIMITS_GUEST_PER_MIN": "1000000",
                         "PLACE_LIMITS_CANVAS_PER_MIN": "1000000",
                         "PLACE_LIMITS_API_PER_MIN": "1000000"})
        for k, v in overrides.items():
            self.env["PLACE_" + k.upper()] = str(v)
        self.proc = None
        self.log_path = os.path.join(OUT, f"{name}.log")

    def start(self, wait=True):
        os.makedirs(OUT, exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, "place-api")], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                st, _, _ = self.request("GET", "/health")
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not up after {timeout}s")

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """kill -9 and reap."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.proc or self.proc.poll() is not None:
            if self.proc:
                self.log.close()
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s")
        finally:
            self.log.close()
        return rc


class Nginx(HttpTarget):
    """Debian's nginx as a private instance in front of api ports, from
    compose/nginx-cluster.conf.in, prefix tests/out/<name>/ (logs/, tmp/).
    Runs in the foreground (daemon off) as our child; stopped by pid."""

    TEMPLATE = os.path.join(ROOT, "compose", "nginx-cluster.conf.in")

    def __init__(self, api_ports, name="nginx"):
        self.name = name
        self.port = free_port()
        self.api_ports = list(api_ports)
        self.prefix = os.path.join(OUT, name)
        self.conf_path = os.path.join(self.prefix, "nginx.conf")
        self.proc = None

    def render(self):
        with open(self.TEMPLATE) as f:
            conf = f.read()
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;"
                            for p in self.api_ports)
        # as root, nginx's workers would run as nobody, who may not reach tests/out
        conf = conf.replace("@USER@", "user root;" if os.geteuid() == 0 else "")
        conf = conf.replace("@LISTEN@", f"127.0.0.1:{self.port}")
        return conf.replace("@SERVERS@", servers)

    def start(self, timeout=20):
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d), exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(self.render())
        cmd = ["/usr/sbin/nginx", "-p", self.prefix + "/", "-c", self.conf_path, "-e", "logs/error.log"]
        t = subprocess.run(cmd + ["-t", "-q"], capture_output=True, text=True)
        assert t.returncode == 0, f"bad nginx config {self.conf_path}: {t.stderr}"
        self.log = open(os.path.join(self.prefix, "logs", "stderr.log"), "ab")
        self.proc = subprocess.Popen(cmd + ["-g", "daemon off;"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}; see {self.prefix}/logs/")
            try:
                if self.request("GET", "/health", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"nginx on {self.port} not answering after {timeout}s")

    def stop(self, timeout=20):
        """Fast shutdown (SIGTERM): does not wait for open WebSockets."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"nginx did not stop within {timeout}s")
        finally:
            self.log.close()


class Cluster(HttpTarget):
    """n api instances behind nginx; HTTP methods go through nginx.
    Overrides are PLACE_<SECTION>_<KEY> settings for every instance."""

    def __init__(self, n=2, name="cluster", **overrides):
        self.apis = [Api(f"{name}-api-{i + 1}", **overrides) for i in range(n)]
        self.nginx = Nginx([a.port for a in self.apis], name=f"{name}-nginx")
        self.port = self.nginx.port

    def start(self):
        try:
            for a in self.apis:
                a.start(wait=False)
            for a in self.apis:
                a.wait_ready()
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        errors = []
        try:
            self.nginx.stop()
        except AssertionError as e:
            errors.append(e)
        for a in self.apis:
            try:
                if a.proc:
                    a.stop()
            except AssertionError as e:
                errors.append(e)
        if errors:
            raise errors[0]


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class RedisConn:
    """A raw RESP connection for pipelining many commands (redis-cli per
    command is too slow for load)."""

    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", int(REDIS_PORT)), timeout=10)
        self.f = self.sock.makefile("rb")

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _reply(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"):
            return int(rest) if t == b":" else rest.decode()
        if t == b"-":
            raise AssertionError("redis error: " + rest.decode())
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise AssertionError(f"bad redis reply {line!r}")

    def pipeline(self, commands):
        """Sends every command, returns the replies."""
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))
        return [self._reply() for _ in commands]

    def close(self):
        self.f.close()
        self.sock.close()


# ---------------------------------------------------------------- WebSocket

WS_PATH = "/api/v1/ws"


def ws_url(target, token=None, path=WS_PATH):
    """ws:// URL of an Api, Nginx or Cluster; token goes into ?token=."""
    return f"ws://127.0.0.1:{target.port}{path}" + (f"?token={token}" if token else "")


class WsClient:
    """A python3-websockets connection that splits frames into messages (a
    frame holds one JSON object or an array of them) and remembers them."""

    def __init__(self, ws):
        self.ws = ws
        self.pending = []
        self.received = []

    async def recv(self, timeout=10):
        import asyncio
        while not self.pending:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(data, str), f"binary frame from the server: {data[:100]!r}"
            obj = json.loads(data)
            items = obj if isinstance(obj, list) else [obj]
            for m in items:
                assert isinstance(m, dict) and isinstance(m.get("type"), str), f"bad message {data[:200]}"
            self.pending.extend(items)
            self.received.extend(items)
        return self.pending.pop(0)

    async def expect(self, mtype, timeout=10, where=None):
        """The next message of type mtype (a string, or a tuple of them) that
        matches where(m); the others on the way are only kept in self.received."""
        import asyncio
        types = (mtype,) if isinstance(mtype, str) else tuple(mtype)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                m = await self.recv(left)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {mtype!r} message within {timeout}s; last received "
                                     f"{self.received[-5:]}") from None
            if m["type"] in types and (where is None or where(m)):
                return m

    async def seen(self, mtype, timeout=10, where=None):
        """Like expect, but a matching message received earlier (even one
        that expect skipped) counts too: for updates that may come before or
        after the ack."""
        types = (mtype,) if isinstance(mtype, str) else tuple(mtype)
        for m in self.received:
            if m["type"] in types and (where is None or where(m)):
                return m
        return await self.expect(mtype, timeout, where)

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def request(self, obj, mtype, timeout=10):
        await self.send(obj)
        return await self.expect(mtype, timeout)

    @property
    def close_code(self):
        return self.ws.close_code

    async def close(self):
        await self.ws.close()


async def ws_connect(target, token=None, how="bearer", origin=None, headers=(), welcome=True,
                     **kw):
    """Opens a WebSocket to target (Api, Nginx or Cluster) with python3-websockets.
    how: "bearer" (Authorization header), "cookie" (place_session) or "query"
    (?token=). Reads the welcome message into .welcome unless welcome=False.
    Handshake refusals raise websockets.exceptions.InvalidStatusCode."""
    import websockets
    h = list(headers)
    url = ws_url(target)
    if token:
        if how == "cookie":
            h.append(("Cookie", "place_session=" + token))
        elif how == "bearer":
            h.append(("Authorization", "Bearer " + token))
        elif how == "query":
            url = ws_url(target, token)
        else:
            raise ValueError(how)
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    c = WsClient(await websockets.connect(url, extra_headers=h, origin=origin, **kw))
    if welcome:
        c.welcome = await c.expect("welcome")
    return c



def wait_for(cond, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def reset_state():
    """Empty Redis and PostgreSQL of the test profile and migrate afresh."""
    redis("FLUSHALL")
    sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO public;")
    env = dict(os.environ)
    env.update(ENV)
    subprocess.run([os.path.join(BIN, "place-api"), "migrate"], cwd=ROOT, env=env, check=True,
                   capture_output=True)


class Runner:
    def __init__(self, suite):
        self.suite = suite
        self.passed = 0
        self.failed = 0

    def run(self, tests, only=None, before_each=None):
        for fn in tests:
            if only and only not in fn.__name__:
                continue
            t0 = time.time()
            signal.alarm(240)
            try:
                if before_each:
                    before_each()
                fn()
                self.passed += 1
                print(f"ok   {self.suite}.{fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
            except Exception:
                self.failed += 1
                print(f"FAIL {self.suite}.{fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
                traceback.print_exc()
            finally:
                signal.alarm(0)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def _on_alarm(signum, frame):
    raise TimeoutError("test timed out")


signal.signal(signal.SIGALRM, _on_alarm)
