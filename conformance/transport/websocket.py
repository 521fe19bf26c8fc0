"""WebSocket sessions on the ``websockets`` library's asyncio API, over our own connected stream.

We connect (TCP, CONNECT through an HTTPS proxy, TLS) ourselves, as for SPDY, so both protocols get
the same per-phase timings and the same typed proxy errors, then hand the transport to a
``websockets`` ``ClientConnection`` the way ``websockets.asyncio.client.connect`` does internally
(``set_protocol`` + ``connection_made`` + ``handshake``). A refused handshake keeps the status,
headers and body of ``InvalidStatus.response``.

Settings follow client-go: no compression (the Go servers do not negotiate it), a ping after 5 s without
traffic from the peer (``QuietPingConnection``), messages capped (``MAX_MESSAGE``) so a peer cannot make us
buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Sequence

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader, NegotiationError
from websockets.frames import CloseCode
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from conformance.model import Evidence
from conformance.transport.connect import open_stream
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError, map_exception
from conformance.transport.stream import ByteStream
from conformance.transport.timeouts import Deadline, Phase, PhaseTimeout
from conformance.transport.upgrade import record_request, record_response

MAX_MESSAGE = 4 * 1024 * 1024  # Go servers write 32 KiB chunks; 4 MiB bounds a hostile one
MAX_QUEUE = 16  # received frames buffered before websockets stops reading (its flow control)
# The KEP-4006 tunnel: Go relays one message per write(), so a 32 KiB SPDY frame often arrives as a
# tiny header message plus a payload message. 16 frames in flight then starve TCP; 256 frames of at
# most 256 KiB keep the pipe full while still bounding what we hold (64 MiB in the worst case).
TUNNEL_MAX_MESSAGE = 256 * 1024
TUNNEL_MAX_QUEUE = (256, 64)
PING_INTERVAL = 5.0  # client-go's WebSocket ping period

# asyncio's StreamWriter closes its transport when it is garbage collected (3.11+), and the stream we
# connected with owns the transport we hand to websockets: keep it alive as long as the WebSocket.
_STREAMS: weakref.WeakKeyDictionary[ClientConnection, ByteStream] = weakref.WeakKeyDictionary()


class QuietPingConnection(ClientConnection):
    """Keepalive pings only after ``ping_interval`` without a byte from the peer.

    A ping during a busy download keeps nothing alive, and it is harmful on the legacy protocols the API
    server proxies to the kubelet byte for byte (v4, base64, v1): its upgrade-aware proxy ends the session as
    soon as the client-to-kubelet copy fails, so a ping written after the kubelet closed discards the output
    still in flight (docs/findings.md). Idle sessions still get a ping every ``ping_interval``.
    """

    _last_received = 0.0

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        super().data_received(data)

    async def keepalive(self) -> None:
        assert self.ping_interval is not None
        interval = self.ping_interval
        self._last_received = self._last_received or time.monotonic()
        try:
            while True:
                quiet = time.monotonic() - self._last_received
                if quiet < interval:
                    await asyncio.sleep(interval - quiet)
                    continue
                pong = await self.ping()
                self._last_received = time.monotonic()  # the next ping comes one interval later at the earliest
                if self.ping_timeout is not None:
                    try:
                        async with asyncio.timeout(self.ping_timeout):
                            await pong
                    except TimeoutError:
                        async with self.send_context():
                            self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                        return
        except ConnectionClosed:
            pass


class KubernetesClientProtocol(ClientProtocol):
    """websockets' client protocol, parsing Sec-WebSocket-Protocol as Go does.

    websockets insists subprotocols are HTTP tokens, so it rejects ``SPDY/3.1+portforward.k8s.io``
    (``/`` is not a token character); Go splits on commas and compares strings. We do the same.
    """

    def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        values = [v.strip() for header in headers.get_all("Sec-WebSocket-Protocol") for v in header.split(",")]
        values = [v for v in values if v]
        if not values:
            return None
        if len(values) > 1:
            raise InvalidHeader("Sec-WebSocket-Protocol", f"multiple values: {', '.join(values)}")
        if values[0] not in (self.available_subprotocols or ()):
            raise NegotiationError(f"unsupported subprotocol: {values[0]}")
        return Subprotocol(values[0])


async def websocket_connect(endpoint: Endpoint, target: str, subprotocols: Sequence[str], deadline: Deadline,
                            evidence: Evidence, *, max_message: int = MAX_MESSAGE,
                            max_queue: int | tuple[int, int] = MAX_QUEUE) -> ClientConnection:
    """An open WebSocket on ``target`` (path and query) offering ``subprotocols`` in order."""
    stream = await open_stream(endpoint, deadline, evidence)
    scheme = "wss" if endpoint.secure else "ws"
    full_target = endpoint.path_prefix + target
    uri = parse_uri(f"{scheme}://{endpoint.authority}{full_target}")
    protocol = KubernetesClientProtocol(uri, subprotocols=[Subprotocol(p) for p in subprotocols], max_size=max_message)
    ws = QuietPingConnection(protocol, ping_interval=PING_INTERVAL, ping_timeout=deadline.timeouts.read,
                          close_timeout=deadline.timeouts.close, max_queue=max_queue)
    transport = stream.transport
    _STREAMS[ws] = stream
    transport.set_protocol(ws)
    ws.connection_made(transport)
    headers = endpoint.request_headers()
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    extra = [(k, v) for k, v in headers if k.lower() != "user-agent"]
    shown = [("Host", endpoint.authority), *extra, ("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Protocol", ", ".join(subprotocols))]
    record_request(evidence, "GET", full_target, shown)
    started = time.monotonic()
    try:
        async with deadline.phase(Phase.UPGRADE):
            await ws.handshake(extra, user_agent_header=user_agent)
    except BaseException as exc:
        response = ws.response
        transport.abort()
        await _reap(ws)
        if response is not None and not evidence.status_line:
            record_response(evidence, f"HTTP/1.1 {response.status_code} {response.reason_phrase}",
                            list(response.headers.raw_items()))
        if isinstance(exc, StreamingError):
            raise
        if isinstance(exc, Exception):
            raise map_exception(exc, phase=Phase.UPGRADE, evidence=evidence, bytes_so_far=bytes(stream.head)) from exc
        raise
    evidence.timings.upgrade_s = time.monotonic() - started
    assert ws.response is not None
    record_response(evidence, f"HTTP/1.1 {ws.response.status_code} {ws.response.reason_phrase}",
                    list(ws.response.headers.raw_items()))
    evidence.protocol_negotiated = ws.subprotocol or ""
    return ws


@contextlib.asynccontextmanager
async def receiving(ws: ClientConnection, deadline: Deadline, evidence: Evidence) -> AsyncIterator[None]:
    """Wait for the peer within the read budget. When websockets already failed the connection for a
    protocol violation it waits for the peer to close (close_timeout); report the violation, not a timeout.
    """
    try:
        async with deadline.phase(Phase.STREAM):
            yield
    except PhaseTimeout as exc:
        if ws.protocol.parser_exc is not None:
            raise map_exception(ws.protocol.parser_exc, phase=Phase.STREAM, evidence=evidence) from exc
        raise


async def close_websocket(ws: ClientConnection, deadline: Deadline) -> None:
    """Close with 1000 within the close budget, then make sure the socket and tasks are gone."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(deadline.timeouts.close):
            await ws.close()
    await _reap(ws)


async def _reap(ws: ClientConnection) -> None:
    ws.transport.abort()
    # websockets runs a keepalive task; wait for connection_lost so it is cancelled and collected.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await asyncio.shield(ws.connection_lost_waiter)
    keepalive = getattr(ws, "keepalive_task", None)
    if keepalive is not None:
        keepalive.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await keepalive
