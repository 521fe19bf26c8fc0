"""Port-forward framing: SPDY stream pairs, legacy WebSocket channels, and SPDY tunnelled in WebSocket.

* SPDY (``portforward.k8s.io``, PROTOCOLS.md 4): per forwarded connection the client opens an error
  stream and a data stream with headers ``streamtype``, ``port`` and ``requestid``.
  ``port_forward_headers`` builds them; ``parse_port_forward_stream`` applies the kubelet's checks;
  ``PortForwardPairer`` pairs streams by request id as the kubelet does.
* Legacy WebSocket (PROTOCOLS.md 5.4): ``WebSocketPortForwardCodec``, channel 2i data and 2i+1
  error for the i-th port, the server's first message on each carrying the port, 2 bytes little-endian.
* KEP-4006 tunnel (PROTOCOLS.md 5.5): the SPDY byte stream in binary WebSocket messages whose
  boundaries mean nothing: ``unwrap_tunnel_message`` / ``wrap_tunnel_bytes`` adapt between a
  ``SpdyConnection`` and the WebSocket. A close frame with code 1000 is EOF: feed ``b""``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from conformance.wire import limits
from conformance.wire.channels import ChannelCodec, ChannelData, Message
from conformance.wire.errors import LocalProtocolError, RemoteProtocolError
from conformance.wire.go_parse import parse_uint
from conformance.wire.role import Role
from conformance.wire.spdy_frames import RstStatus
from conformance.wire.spdy_headers import HeaderList, header_value

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
STREAM_TYPE_HEADER = "streamtype"
PORT_HEADER = "port"
REQUEST_ID_HEADER = "requestid"


class PortForwardStreamType(StrEnum):
    DATA = "data"
    ERROR = "error"


# --- SPDY ------------------------------------------------------------------------------------------


def port_forward_headers(stream_type: PortForwardStreamType, port: int, request_id: int | str) -> HeaderList:
    """Headers of one port-forward stream, lowercase as Go writes them."""
    _check_port(port, LocalProtocolError)
    return (
        (STREAM_TYPE_HEADER, PortForwardStreamType(stream_type).value),
        (PORT_HEADER, str(port)),
        (REQUEST_ID_HEADER, str(request_id)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PortForwardStream:
    stream_id: int
    stream_type: PortForwardStreamType
    port: int
    request_id: str | None  # None: an old client that sends no requestid


def parse_port_forward_stream(stream_id: int, headers: HeaderList) -> PortForwardStream:
    """Server-side checks of a new stream's headers (kubelet httpstream.go).

    Raises a stream-scoped ``RemoteProtocolError`` (``rst_status`` CANCEL, no GOAWAY): "If either
    check fails, the stream is refused with RST(CANCEL)."
    """

    def refuse(reason: str) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"stream {stream_id}: {reason}",
            stream_id=stream_id,
            rst_status=RstStatus.CANCEL,
            goaway_status=None,
        )

    port_text = header_value(headers, PORT_HEADER)
    if port_text is None:
        raise refuse("missing port header")
    # Go: strconv.ParseUint(port, 10, 16), then "must be >= 1".
    port = parse_uint(port_text, 0xFFFF)
    if port is None or port < 1:
        raise refuse(f"invalid port {port_text[:20]!r}")
    stream_type = header_value(headers, STREAM_TYPE_HEADER)
    if stream_type not in (PortForwardStreamType.DATA.value, PortForwardStreamType.ERROR.value):
        raise refuse(f"invalid streamtype {stream_type!r}")
    request_id = header_value(headers, REQUEST_ID_HEADER)
    return PortForwardStream(
        stream_id=stream_id,
        stream_type=PortForwardStreamType(stream_type),
        port=port,
        request_id=request_id or None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PortForwardPair:
    request_id: str
    data: PortForwardStream
    error: PortForwardStream


@dataclass(slots=True, kw_only=True)
class _PendingPair:
    created_at: float
    streams: dict[PortForwardStreamType, PortForwardStream] = field(default_factory=dict)


class PortForwardPairer:
    """Pairs data and error streams by request id, with the kubelet's fallback for old clients.

    Time is passed in (``now``) so the pairer stays sans-IO; ``expire()`` returns the streams of
    pairs older than the timeout (the kubelet writes an error and drops them after 30 s).
    """

    def __init__(self, *, max_pending: int = limits.MAX_PENDING_PORT_FORWARD_PAIRS) -> None:
        self._max_pending = max_pending
        self._pending: dict[str, _PendingPair] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    @staticmethod
    def request_id_of(stream: PortForwardStream) -> str:
        if stream.request_id is not None:
            return stream.request_id
        # PROTOCOLS.md 4: "the error stream's id becomes its own SPDY stream id, and the data
        # stream's id becomes its SPDY stream id - 2 (this assumes error was created immediately
        # before data)."
        offset = 0 if stream.stream_type is PortForwardStreamType.ERROR else 2
        return str(stream.stream_id - offset)

    def add(self, stream: PortForwardStream, *, now: float) -> PortForwardPair | None:
        """Register a stream; returns the pair once both halves are in.

        Raises a stream-scoped ``RemoteProtocolError`` for a second stream of the same type in a pair
        (the kubelet writes that error to the pair's error stream) or when too many pairs wait.
        """
        key = self.request_id_of(stream)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self._max_pending:
                raise RemoteProtocolError(
                    f"{len(self._pending)} port-forward pairs incomplete; refusing stream {stream.stream_id}",
                    stream_id=stream.stream_id,
                    rst_status=RstStatus.REFUSED_STREAM,
                    goaway_status=None,
                )
            pending = self._pending[key] = _PendingPair(created_at=now)
        if stream.stream_type in pending.streams:
            raise RemoteProtocolError(
                f"request {key}: duplicate {stream.stream_type.value} stream {stream.stream_id}",
                stream_id=stream.stream_id,
                rst_status=RstStatus.CANCEL,
                goaway_status=None,
            )
        pending.streams[stream.stream_type] = stream
        if len(pending.streams) < 2:
            return None
        del self._pending[key]
        return PortForwardPair(
            request_id=key,
            data=pending.streams[PortForwardStreamType.DATA],
            error=pending.streams[PortForwardStreamType.ERROR],
        )

    def expire(self, now: float, *, timeout: float = 30.0) -> list[PortForwardStream]:
        """Drop pairs incomplete for longer than ``timeout`` seconds; returns their streams."""
        expired = [key for key, pending in self._pending.items() if now - pending.created_at > timeout]
        return [stream for key in expired for stream in self._pending.pop(key).streams.values()]


# --- legacy WebSocket ------------------------------------------------------------------------------

# Kubelet-side subprotocols for WebSocket port-forward. "portforward.k8s.io is not a WebSocket
# subprotocol."
WEBSOCKET_PORT_FORWARD_SUBPROTOCOLS = frozenset({"", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"})
_PORT_PREFIX = struct.Struct("<H")


@dataclass(frozen=True, slots=True, kw_only=True)
class PortForwardData:
    port_index: int
    port: int
    data: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortForwardError:
    """Text the server wrote on a port's error channel."""

    port_index: int
    port: int
    data: bytes = field(default=b"", repr=False)


class WebSocketPortForwardCodec:
    """Channels of one legacy port-forward WebSocket: one TCP connection per requested port."""

    def __init__(self, ports: Sequence[int], *, subprotocol: str, role: Role) -> None:
        if subprotocol not in WEBSOCKET_PORT_FORWARD_SUBPROTOCOLS:
            raise LocalProtocolError(f"{subprotocol!r} is not a WebSocket port-forward subprotocol")
        if not 1 <= len(ports) <= limits.MAX_WEBSOCKET_FORWARDED_PORTS:
            raise LocalProtocolError(f"{len(ports)} ports; 1-{limits.MAX_WEBSOCKET_FORWARDED_PORTS} allowed")
        for port in ports:
            _check_port(port, LocalProtocolError)
        self.ports = tuple(ports)
        self.role = role
        self._channels = ChannelCodec(subprotocol, role=role, channel_count=2 * len(ports))
        self._prefix_pending = set(range(2 * len(ports)))  # channels whose port prefix is due

    def initial_messages(self) -> list[Message]:
        """Server: the port prefix on every data and error channel, sent right after the upgrade."""
        if self.role is not Role.SERVER:
            raise LocalProtocolError("only the server sends port prefixes")
        if len(self._prefix_pending) != 2 * len(self.ports):
            raise LocalProtocolError("port prefixes were already sent")
        self._prefix_pending.clear()
        return [
            self._channels.encode(channel, _PORT_PREFIX.pack(self.ports[channel // 2]))
            for channel in range(2 * len(self.ports))
        ]

    def encode_data(self, port_index: int, data: bytes) -> Message:
        self._check_sendable(port_index)
        return self._channels.encode(2 * port_index, data)

    def encode_error(self, port_index: int, text: bytes) -> Message:
        if self.role is not Role.SERVER:
            raise LocalProtocolError("error channels are server to client")
        self._check_sendable(port_index)
        return self._channels.encode(2 * port_index + 1, text)

    def decode(self, message: Message) -> PortForwardData | PortForwardError | None:
        """One received message; None when it carries nothing for the application."""
        event = self._channels.decode(message)
        if not isinstance(event, ChannelData):
            return None  # server role: an empty message the Go server would skip
        index, is_error = divmod(event.channel, 2)
        if index >= len(self.ports):
            if self.role is Role.SERVER:
                return None  # "The server silently drops data for channels it does not know."
            raise RemoteProtocolError(f"message on channel {event.channel}; only {len(self.ports)} ports")
        if self.role is Role.CLIENT:
            stripped = self._strip_prefix(event.channel, event.data)
            if stripped is None:
                return None
            data = stripped
        elif is_error:
            return None  # the client has nothing to say on an error channel; Go ignores it
        else:
            data = event.data
        cls = PortForwardError if is_error else PortForwardData
        return cls(port_index=index, port=self.ports[index], data=data)

    def _strip_prefix(self, channel: int, data: bytes) -> bytes | None:
        if channel not in self._prefix_pending:
            return data
        # PROTOCOLS.md 5.4: "The server's first message on each data and error channel is the port
        # number as 2 bytes, little-endian ... The client must strip these 2 bytes."
        if len(data) < _PORT_PREFIX.size:
            raise RemoteProtocolError(f"channel {channel}: first message lacks the 2-byte port prefix")
        (port,) = _PORT_PREFIX.unpack_from(data)
        if port != self.ports[channel // 2]:
            raise RemoteProtocolError(f"channel {channel}: port prefix {port}, expected {self.ports[channel // 2]}")
        self._prefix_pending.discard(channel)
        return data[_PORT_PREFIX.size :] or None

    def _check_sendable(self, port_index: int) -> None:
        if not 0 <= port_index < len(self.ports):
            raise LocalProtocolError(f"port index {port_index} out of range")
        if self.role is Role.SERVER and self._prefix_pending:
            raise LocalProtocolError("send initial_messages() before any data")


def _check_port(port: int, error: type[LocalProtocolError] | type[RemoteProtocolError]) -> None:
    if type(port) is not int or not 1 <= port <= 0xFFFF:
        raise error(f"port {port!r} is not 1-65535")


# --- KEP-4006: SPDY tunnelled in WebSocket ---------------------------------------------------------

TUNNEL_SUBPROTOCOL_PREFIX = "SPDY/3.1+"


def tunnel_subprotocol(protocol: str = PORT_FORWARD_PROTOCOL) -> str:
    """``SPDY/3.1+portforward.k8s.io``: the WebSocket subprotocol naming a tunnelled SPDY protocol."""
    return TUNNEL_SUBPROTOCOL_PREFIX + protocol


def tunnelled_protocol(subprotocol: str) -> str:
    """The SPDY protocol inside a tunnel subprotocol, checked as the apiserver does."""
    # PROTOCOLS.md 5.5: the apiserver "keeps the WebSocket protocols that start with "SPDY/3.1+"
    # and end with ".k8s.io"".
    if not (subprotocol.startswith(TUNNEL_SUBPROTOCOL_PREFIX) and subprotocol.endswith(".k8s.io")):
        raise RemoteProtocolError(f"{subprotocol!r} is not a SPDY/3.1+*.k8s.io tunnel subprotocol")
    return subprotocol[len(TUNNEL_SUBPROTOCOL_PREFIX) :]


def unwrap_tunnel_message(message: Message) -> bytes:
    """SPDY bytes carried by one WebSocket message, for ``SpdyConnection.receive_data``.

    Message boundaries mean nothing (Go sends one message per write, often 2-4 bytes), so the
    connection reassembles frames. An empty message carries no bytes; pass EOF separately.
    """
    if isinstance(message, str):
        # "a non-binary message is an error"
        raise RemoteProtocolError("text message in a SPDY tunnel", close_code=1003)
    return message


def wrap_tunnel_bytes(data: bytes, *, max_message: int = limits.MAX_TUNNEL_MESSAGE) -> list[bytes]:
    """Binary WebSocket messages carrying ``data`` (bytes a ``SpdyConnection.send*`` returned)."""
    return [data[i : i + max_message] for i in range(0, len(data), max_message)]
