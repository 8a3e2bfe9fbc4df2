"""Shared harness for the integration tests: real services from
compose/services.sh (test profile), our binaries started and stopped by pid,
plain HTTP with http.client, Redis through redis-cli, PostgreSQL through psql.
Stdlib only; run with /usr/bin/python3."""

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
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
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    # stay below the ephemeral range as the project rules ask
    return 20000 + port % 10000


class Api:
    """One place-api process."""

    def __init__(self, name="api", **overrides):
        self.name = name
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(ENV)
        self.env.update({"PLACE_HTTP_PORT": str(self.port), "PLACE_INSTANCE_NAME": name,
                         "PLACE_LOG_LEVEL": "info", "PLACE_SINK_BLOCK_MS": "50"})
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

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.proc or self.proc.poll() is not None:
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
