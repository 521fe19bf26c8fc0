"""Test helper: raw HTTP/1.1 upgrade requests (SPDY/3.1, WebSocket) and a minimal WebSocket session, with
ssl + socket only, so a test sees exactly what a path answered (status line, headers, body) without any
client library's fallbacks or retries in between. Reaches a target directly, through a path's listener,
or through the HTTPS forward proxy with CONNECT.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

EXEC_PATH = "/api/v1/namespaces/conformance/pods/probe-0/exec"
IO_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


@dataclass(frozen=True)
class Endpoint:
    server: str
    ca_file: str
    proxy_url: str | None = None


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""


def connect(ep: Endpoint, timeout: float = IO_TIMEOUT_S, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLSocket:
    """A TLS connection to the endpoint's server, through a CONNECT tunnel when it has a proxy_url."""
    url = urlsplit(ep.server)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    if ep.proxy_url:
        proxy = urlsplit(ep.proxy_url)
        raw = socket.create_connection((proxy.hostname, proxy.port or 3128), timeout=timeout)
        raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head, rest = _read_head(raw)
        if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
            raw.close()
            raise ConnectionError(f"CONNECT refused: {head.splitlines()[0]!r}")
        assert not rest, "proxy sent bytes after its CONNECT reply"
    else:
        raw = socket.create_connection((host, port), timeout=timeout)
    ctx = ssl.create_default_context(cafile=ep.ca_file)
    ctx.set_alpn_protocols(list(alpn))
    return ctx.wrap_socket(raw, server_hostname=host)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head ({len(data)} bytes)")
        data += chunk
        if len(data) > MAX_HEAD_BYTES:
            raise ConnectionError("response head too large")
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _parse(head: bytes) -> Response:
    lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(status), reason[0] if reason else "", headers)


def _read_body(sock: socket.socket, resp: Response, rest: bytes) -> bytes:
    body = rest
    length = resp.headers.get("content-length")
    deadline = time.monotonic() + IO_TIMEOUT_S
    while (length is None or len(body) < int(length)) and len(body) < MAX_BODY_BYTES:
        if time.monotonic() > deadline:
            break
        try:
            chunk = sock.recv(4096)
        except (TimeoutError, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        body += chunk
    return body if length is None else body[: int(length)]


def request_upgrade(
    ep: Endpoint,
    *,
    protocol: str,
    token: str,
    query: str = "command=true&stdout=true",
    extra: dict[str, str] | None = None,
    user_agent: str = "conformance-tests/raw-upgrade",
) -> tuple[Response, ssl.SSLSocket, bytes]:
    """Send one upgrade request; return the response head, the still-open socket and any bytes past the head.

    protocol "spdy": POST with `Upgrade: SPDY/3.1` and X-Stream-Protocol-Version v4.channel.k8s.io (what
    kubectl's SPDY executor sends). protocol "websocket": GET with Sec-WebSocket-Protocol v5.channel.k8s.io.
    """
    sock = connect(ep)
    host = urlsplit(ep.server).netloc
    lines = [f"Host: {host}", f"Authorization: Bearer {token}", f"User-Agent: {user_agent}"]
    if protocol == "spdy":
        start = f"POST {EXEC_PATH}?{query} HTTP/1.1"
        lines += ["Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v4.channel.k8s.io"]
        lines += ["Content-Length: 0"]
    elif protocol == "websocket":
        key = base64.b64encode(os.urandom(16)).decode()
        start = f"GET {EXEC_PATH}?{query} HTTP/1.1"
        lines += ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13"]
        lines += [f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Protocol: v5.channel.k8s.io"]
    else:
        raise ValueError(protocol)
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    sock.sendall(("\r\n".join([start, *lines]) + "\r\n\r\n").encode())
    head, rest = _read_head(sock)
    resp = _parse(head)
    if resp.status != 101:
        resp.body = _read_body(sock, resp, rest)
        rest = b""
    elif protocol == "websocket":
        expected = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()  # noqa: S324 - RFC 6455
        assert resp.headers.get("sec-websocket-accept") == expected, resp.headers
    return resp, sock, rest


def upgrade(ep: Endpoint, *, protocol: str, token: str, user_agent: str = "conformance-tests/raw-upgrade") -> Response:
    resp, sock, _ = request_upgrade(ep, protocol=protocol, token=token, user_agent=user_agent)
    sock.close()
    return resp


class WebSocket:
    """A client WebSocket over an upgraded socket: masked binary frames out, frames in (RFC 6455 5.2)."""

    def __init__(self, sock: ssl.SSLSocket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buffer = buffered

    def send_binary(self, payload: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x82])  # FIN + binary
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _fill(self, n: int) -> None:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk

    def recv_frame(self, timeout: float) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; EOFError when the connection is closed under us."""
        self.sock.settimeout(timeout)
        self._fill(2)
        opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        offset = 2
        if length == 126:
            self._fill(4)
            length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            self._fill(10)
            length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
        self._fill(offset + length)
        payload = self.buffer[offset : offset + length]
        self.buffer = self.buffer[offset + length :]
        return opcode, payload

    def read_channel(self, channel: int, want: bytes, timeout: float) -> bytes:
        """Collect `channel`'s data (v5.channel.k8s.io: first payload byte is the channel) until `want`."""
        got = b""
        deadline = time.monotonic() + timeout
        while want not in got:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {want!r} on channel {channel} (got {got!r})")
            opcode, payload = self.recv_frame(remaining)
            if opcode == 0x8:
                raise EOFError(f"close frame {payload[:2].hex()} {payload[2:]!r}")
            if opcode == 0x2 and payload[:1] == bytes([channel]):
                got += payload[1:]
        return got

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
