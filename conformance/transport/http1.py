"""HTTP/1.1 request/response over a ``ByteStream`` with h11: upgrades, CONNECT, and streamed bodies.

What a refused upgrade looked like is the evidence for why a path fails, so a response keeps its
exact status line, its headers in original casing and order (h11 ``raw_items()``), and a bounded
body. After a 101 (or a 2xx to CONNECT), the bytes h11 read past the head belong to the next protocol
and go back into the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import h11

from conformance.transport.errors import ConnectionReset, PeerProtocolError
from conformance.transport.stream import ByteStream
from conformance.transport.timeouts import Deadline, Phase

# A refusal's body is evidence, not payload: keep this much and drop the rest.
MAX_REFUSAL_BODY = 64 * 1024
# Status line plus headers: h11's guard against an endless head (its default is 16 KiB).
MAX_RESPONSE_HEAD = 64 * 1024


@dataclass(slots=True, kw_only=True)
class HttpResponse:
    status: int
    http_version: str
    reason: str
    headers: list[tuple[str, str]]  # original casing and order
    body: bytes = b""
    body_truncated: bool = False
    switched: bool = False  # 101 to an upgrade or 2xx to CONNECT: the stream now speaks another protocol
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def status_line(self) -> str:
        return f"HTTP/{self.http_version} {self.status} {self.reason}".rstrip()

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


class Http1Exchange:
    """One request and its response on a stream (sans-IO h11 driven by our reads and writes)."""

    def __init__(self, stream: ByteStream, deadline: Deadline, *, phase: Phase) -> None:
        self.stream = stream
        self.deadline = deadline
        self.phase = phase
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)

    async def send_request(self, method: str, target: str, headers: Sequence[tuple[str, str]]) -> None:
        data = self._send(h11.Request(method=method, target=target, headers=list(headers)))
        data += self._send(h11.EndOfMessage())
        await self.stream.write(data, phase=self.phase)

    def _send(self, event: h11.Request | h11.EndOfMessage) -> bytes:
        try:
            out = self._h11.send(event)
        except h11.LocalProtocolError as exc:
            raise PeerProtocolError(f"cannot encode the request: {exc}", phase=self.phase) from exc
        return out or b""

    async def _next_event(self) -> object:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise PeerProtocolError(f"invalid HTTP response: {exc}", phase=self.phase,
                                        bytes_so_far=bytes(self.stream.head)) from exc
            if event is not h11.NEED_DATA:
                return event
            if self._h11.their_state is h11.SWITCHED_PROTOCOL:
                return h11.PAUSED
            data = await self.stream.read(phase=self.phase)
            self._h11.receive_data(data)

    async def read_head(self) -> HttpResponse:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionReset("connection closed before a response", phase=self.phase,
                                      bytes_so_far=bytes(self.stream.head))
            if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                continue  # 100 Continue and friends carry nothing for us
            if isinstance(event, h11.InformationalResponse | h11.Response):
                response = HttpResponse(
                    status=event.status_code,
                    http_version=event.http_version.decode("ascii", "replace"),
                    reason=event.reason.decode("latin-1"),
                    headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()],
                )
                if self._h11.our_state is h11.SWITCHED_PROTOCOL:
                    response.switched = True
                    trailing, _closed = self._h11.trailing_data
                    self.stream.unread(bytes(trailing))
                return response

    async def read_body_chunk(self) -> bytes | None:
        """The next piece of the body; None at its end (or when the server closed the connection)."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def read_bounded_body(self, response: HttpResponse, limit: int = MAX_REFUSAL_BODY) -> None:
        body = bytearray()
        while (chunk := await self.read_body_chunk()) is not None:
            body += chunk
            if len(body) > limit:
                response.body_truncated = True
                break
        response.body = bytes(body[:limit])


async def exchange(stream: ByteStream, method: str, target: str, headers: Sequence[tuple[str, str]],
                   deadline: Deadline, *, phase: Phase) -> HttpResponse:
    """Send a bodiless request; return the head, plus the bounded body unless the protocol switched."""
    ex = Http1Exchange(stream, deadline, phase=phase)
    await ex.send_request(method, target, headers)
    response = await ex.read_head()
    if not response.switched:
        await ex.read_bounded_body(response)
    return response
