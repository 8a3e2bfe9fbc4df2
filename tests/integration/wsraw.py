"""A tiny raw WebSocket client (RFC 6455) over a plain socket, stdlib only,
for what python3-websockets will not send: unmasked frames, RSV bits,
reserved opcodes, oversized or fragmented control frames, lying length
fields, invalid UTF-8, hand-made handshakes. It never answers pings unless
asked to (auto_pong) and never validates what the server sends beyond
parsing frames, so tests see exactly what came back."""

import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Response:
    """An HTTP response to a handshake: status, reason, headers (lower-case
    names; repeated ones joined with ", "), body (bytes)."""

    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


class Closed(Exception):
    """The server closed: code is the close frame's code (1005 for an empty
    close payload), or None when the TCP connection ended without one."""

    def __init__(self, code, reason=b""):
        super().__init__(f"closed by server: code {code} {reason!r}")
        self.code, self.reason = code, reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        return f"<frame fin={self.fin} rsv={self.rsv} op={self.opcode} {self.payload[:80]!r}>"


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def _read_head(sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed during the handshake response: {buf!r}")
        buf += chunk
        if len(buf) > 65536:
            raise ConnectionError("handshake response head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status, reason = int(parts[1]), (parts[2] if len(parts) > 2 else "")
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        k, v = k.strip().lower(), v.strip()
        headers[k] = headers[k] + ", " + v if k in headers else v
    return status, reason, headers, rest


def handshake(port, path="/api/v1/ws", headers=None, method="GET", host="127.0.0.1",
              rcvbuf=None, timeout=10):
    """Sends an opening handshake. headers override the defaults (Host,
    Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version); a value of
    None leaves that header out. Returns (Response, WS) with WS None unless the
    status is 101. rcvbuf sets SO_RCVBUF before connecting."""
    key = new_key()
    h = {"Host": f"{host}:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    for k, v in (headers or {}).items():
        for old in [o for o in h if o.lower() == k.lower()]:
            del h[old]
        h[k] = v
    h = {k: v for k, v in h.items() if v is not None}
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((host, port))
    deadline = time.time() + timeout
    try:
        sock.sendall(req.encode("latin-1"))
        status, reason, rh, rest = _read_head(sock, deadline)
        if status == 101:
            return Response(status, reason, rh, b""), WS(sock, rest, key=h.get("Sec-WebSocket-Key"))
        body = rest
        if "content-length" in rh:
            n = int(rh["content-length"])
            while len(body) < n:
                sock.settimeout(max(0.01, deadline - time.time()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        sock.close()
        return Response(status, reason, rh, body), None
    except BaseException:
        sock.close()
        raise


class WS:
    """An open connection. Frames go out masked unless told otherwise."""

    def __init__(self, sock, buf=b"", key=None):
        self.sock, self.buf, self.key = sock, buf, key
        self.auto_pong = False
        self.eof = False
        self.reset = False
        self.pings = []  # payloads of server pings seen

    # ------------------------------------------------------------ sending

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
        """length lies about the payload length when given (the payload is
        still sent as is)."""
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            mk = os.urandom(4)
            head += mk
            payload = bytes(b ^ mk[i & 3] for i, b in enumerate(payload)) if len(payload) < 4096 \
                else _xor_long(payload, mk)
        self.sock.sendall(head + payload)

    def send_text(self, data, **kw):
        self.send_frame(TEXT, data, **kw)

    def send_json(self, obj):
        self.send_frame(TEXT, json.dumps(obj))

    def send_ping(self, payload=b""):
        self.send_frame(PING, payload)

    def send_close(self, code=None, reason=b""):
        payload = b"" if code is None else struct.pack("!H", code) + reason
        self.send_frame(CLOSE, payload)

    def send_raw(self, data):
        self.sock.sendall(data)

    # ------------------------------------------------------------ receiving

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("timed out reading a frame")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except ConnectionResetError:
                self.reset = True
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def recv_frame(self, timeout=10):
        """The next frame, or None at end of stream (EOF or reset)."""
        deadline = time.time() + timeout
        if not self._fill(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            if not self._fill(4, deadline):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            if not self._fill(10, deadline):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        masked = b1 & 0x80
        mk = None
        if masked:  # servers must not mask; parse it anyway
            if not self._fill(off + 4, deadline):
                return None
            mk = self.buf[off:off + 4]
            off += 4
        if not self._fill(off + n, deadline):
            return None
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        if mk:
            payload = _xor_long(payload, mk)
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)
        if f.opcode == PING:
            self.pings.append(payload)
            if self.auto_pong:
                self.send_frame(PONG, payload)
        return f

    def recv_message(self, timeout=10, want_control=False):
        """The next data message as (opcode, payload), reassembling fragments;
        pings and pongs are skipped (or returned as (opcode, payload) when
        want_control). Raises Closed on a close frame or end of stream."""
        deadline = time.time() + timeout
        parts, op = [], None
        while True:
            f = self.recv_frame(max(0.01, deadline - time.time()))
            if f is None:
                raise Closed(None)
            if f.opcode == CLOSE:
                code = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else 1005
                raise Closed(code, f.payload[2:])
            if f.opcode in (PING, PONG):
                if want_control:
                    return f.opcode, f.payload
                continue
            if op is None:
                op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def recv_msgs(self, timeout=10):
        """The JSON messages of the next text message (a frame holds one
        object or an array of them)."""
        op, data = self.recv_message(timeout)
        assert op == TEXT, f"server sent opcode {op}: {data[:100]!r}"
        obj = json.loads(data.decode("utf-8"))
        return obj if isinstance(obj, list) else [obj]

    def expect(self, mtype, timeout=10):
        """Reads messages until one of type mtype; returns it."""
        deadline = time.time() + timeout
        seen = []
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"no {mtype!r} message within {timeout}s; saw {seen[:10]}")
            try:
                msgs = self.recv_msgs(left)
            except socket.timeout:
                raise AssertionError(f"no {mtype!r} message within {timeout}s; saw {seen[:10]}")
            for m in msgs:
                if m.get("type") == mtype:
                    return m
                seen.append(m)

    def expect_close(self, timeout=10):
        """Reads until the server's close frame and returns its code (1005 for
        an empty payload); None if the stream ended without a close frame.
        Answers the close. Raises AssertionError on a timeout."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"server did not close within {timeout}s")
            try:
                f = self.recv_frame(left)
            except socket.timeout:
                raise AssertionError(f"server did not close within {timeout}s")
            if f is None:
                self.close()
                return None
            if f.opcode == CLOSE:
                code = struct.unpack("!H", f.payload[:2])[0] if len(f.payload) >= 2 else 1005
                self.close_reason = f.payload[2:]
                try:
                    self.send_frame(CLOSE, f.payload[:2])
                except OSError:
                    pass
                self.close()
                return code

    def alive(self, timeout=10):
        """An application ping gets its pong: the connection is usable."""
        self.send_json({"type": "ping"})
        self.expect("pong", timeout)
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _xor_long(data, mk):
    n = len(data)
    k = (mk * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big") if n else b""
