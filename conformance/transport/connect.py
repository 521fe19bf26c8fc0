"""Open a byte stream to an endpoint: TCP, optionally through an HTTPS proxy's CONNECT, then TLS.

Each phase runs under its own budget (``Timeouts.connect``, ``.tls``) and is timed into the
operation's ``model.Timings``. TLS always offers ALPN ``http/1.1`` (no upgrade exists over HTTP/2).
Every lower-layer exception leaves through ``errors.map_exception``.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse

from conformance.model import Evidence, Timings
from conformance.redact import register_secret
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import ProxyRefused, StreamingError, map_exception
from conformance.transport.http1 import exchange
from conformance.transport.stream import READ_BUFFER_LIMIT, ByteStream
from conformance.transport.timeouts import Deadline, Phase


async def open_stream(endpoint: Endpoint, deadline: Deadline, evidence: Evidence) -> ByteStream:
    """A connected (and, for https, TLS-wrapped) stream to the endpoint's server."""
    proxy = urllib.parse.urlsplit(endpoint.proxy_url) if endpoint.proxy_url else None
    host, port = (proxy.hostname or "", proxy.port or (443 if proxy.scheme == "https" else 80)) if proxy else (
        endpoint.host, endpoint.port)
    stream = await _tcp(host, port, deadline, evidence)
    try:
        if proxy is not None:
            if proxy.scheme == "https":
                await _tls(stream, endpoint, proxy.hostname or "", deadline, evidence, to_proxy=True)
            await _connect_tunnel(stream, endpoint, proxy, deadline, evidence)
        if endpoint.secure:
            await _tls(stream, endpoint, endpoint.tls_server_name or endpoint.host, deadline, evidence)
    except BaseException:
        stream.abort()
        raise
    return stream


async def _tcp(host: str, port: int, deadline: Deadline, evidence: Evidence) -> ByteStream:
    started = time.monotonic()
    try:
        async with deadline.phase(Phase.CONNECT):
            reader, writer = await asyncio.open_connection(host, port, limit=READ_BUFFER_LIMIT)
    except Exception as exc:
        raise map_exception(exc, phase=Phase.CONNECT, evidence=evidence) from exc
    evidence.timings.connect_s = time.monotonic() - started
    evidence.notes.append(f"tcp connected to {host}:{port}")
    return ByteStream(reader, writer, deadline)


async def _tls(stream: ByteStream, endpoint: Endpoint, server_name: str, deadline: Deadline, evidence: Evidence,
               *, to_proxy: bool = False) -> None:
    ctx = endpoint.ssl_context()
    started = time.monotonic()
    try:
        async with deadline.phase(Phase.TLS):
            await stream.writer.start_tls(ctx, server_hostname=server_name,
                                          ssl_handshake_timeout=deadline.wait_for(Phase.TLS)[0])
    except Exception as exc:
        raise map_exception(exc, phase=Phase.TLS, evidence=evidence) from exc
    elapsed = time.monotonic() - started
    timings: Timings = evidence.timings
    timings.tls_s = (timings.tls_s or 0.0) + elapsed
    what = "proxy" if to_proxy else "server"
    evidence.notes.append(f"TLS with {what}: {stream.tls_version}, ALPN {stream.alpn or 'none'}")


async def _connect_tunnel(stream: ByteStream, endpoint: Endpoint, proxy: urllib.parse.SplitResult,
                          deadline: Deadline, evidence: Evidence) -> None:
    """CONNECT host:port through the proxy; a non-2xx becomes ProxyRefused with its status line."""
    target = f"{endpoint.host}:{endpoint.port}" if ":" not in endpoint.host else f"[{endpoint.host}]:{endpoint.port}"
    headers = [("Host", target), ("User-Agent", endpoint.user_agent)]
    if proxy.username:
        creds = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        headers.append(("Proxy-Authorization", "Basic " + register_secret(base64.b64encode(creds.encode()).decode())))
    started = time.monotonic()
    try:
        response = await exchange(stream, "CONNECT", target, headers, deadline, phase=Phase.PROXY)
    except StreamingError:
        raise
    except Exception as exc:
        raise map_exception(exc, phase=Phase.PROXY, evidence=evidence, bytes_so_far=bytes(stream.head)) from exc
    evidence.timings.connect_s = (evidence.timings.connect_s or 0.0) + time.monotonic() - started
    evidence.transcript.append(f"proxy: CONNECT {target} -> {response.status_line}")
    if not 200 <= response.status < 300:
        evidence.body_excerpt = response.body[:4096].decode("utf-8", "replace")
        raise ProxyRefused(f"proxy refused CONNECT {target}: {response.status_line}", status_line=response.status_line,
                           phase=Phase.PROXY, evidence=evidence, bytes_so_far=bytes(stream.head))
    stream.mark_head()
