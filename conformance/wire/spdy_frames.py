"""SPDY/3 wire constants and frame events (PROTOCOLS.md section 1.2).

Every frame is a frozen, slotted, keyword-only dataclass that validates on construction, so an
invalid frame cannot be built: construction raises ``LocalProtocolError`` (the decoder turns that into
``RemoteProtocolError`` for frames that came off the wire). The same classes are what
``SpdyConnection.next_event()`` returns and what ``SpdyConnection.send()`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from conformance.wire.errors import LocalProtocolError
from conformance.wire.spdy_headers import (
    FORBIDDEN_REQUEST_HEADERS,
    FORBIDDEN_RESPONSE_HEADERS,
    HeaderList,
    HeadersLike,
    check_header_list,
    normalize_headers,
)

SPDY_VERSION = 3
MAX_STREAM_ID = 0x7FFFFFFF  # 31-bit field
MAX_PING_ID = 0xFFFFFFFF  # 32-bit field
MAX_U32 = 0xFFFFFFFF


class FrameType(IntEnum):
    """SPDY/3 section 2.6 control frame types. 5 (NOOP, SPDY/2) and 10 (CREDENTIAL) end a Go session."""

    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class ControlFlag(IntEnum):
    """SPDY/3 sections 2.6.1 and 2.6.4: FIN for stream frames, CLEAR_SETTINGS shares bit 0x01."""

    FIN = 0x01
    UNIDIRECTIONAL = 0x02


SETTINGS_FLAG_CLEAR = 0x01
DATA_FLAG_FIN = 0x01  # SPDY/3 section 2.2.2: the only data frame flag


class RstStatus(IntEnum):
    """SPDY/3 section 2.6.3 RST_STREAM status codes. 0 is invalid."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(IntEnum):
    """SPDY/3 section 2.6.6 GOAWAY status codes."""

    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingsId(IntEnum):
    """SPDY/3 section 2.6.4 SETTINGS ids (parsed and ignored by Go peers)."""

    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


def _check_range(what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise LocalProtocolError(f"{what} {value} outside {low}..{high}")


def _check_stream_id(stream_id: int) -> None:
    # PROTOCOLS.md 1.2: "Id 0 is invalid for SYN_STREAM, SYN_REPLY, HEADERS, RST_STREAM and DATA."
    _check_range("stream id", stream_id, 1, MAX_STREAM_ID)


@dataclass(frozen=True, slots=True, kw_only=True)
class SynStream:
    """Opens a stream. Go sends priority 0, associated id 0, slot 0."""

    stream_id: int
    headers: HeaderList = ()
    associated_stream_id: int = 0
    priority: int = 0
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        _check_range("associated stream id", self.associated_stream_id, 0, MAX_STREAM_ID)
        _check_range("priority", self.priority, 0, 7)  # 3 bits
        _check_range("slot", self.slot, 0, 0xFF)
        object.__setattr__(self, "headers", normalize_headers(self.headers))
        check_header_list(self.headers, FORBIDDEN_REQUEST_HEADERS)

    def response(self, headers: HeadersLike = ()) -> SynReply:
        """The reply Kubernetes servers send right after accepting: empty headers, no FIN."""
        return SynReply(stream_id=self.stream_id, headers=normalize_headers(headers))


@dataclass(frozen=True, slots=True, kw_only=True)
class SynReply:
    """Accepts a stream the peer opened."""

    stream_id: int
    headers: HeaderList = ()
    fin: bool = False

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        object.__setattr__(self, "headers", normalize_headers(self.headers))
        check_header_list(self.headers, FORBIDDEN_RESPONSE_HEADERS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Headers:
    """Extra headers on a stream. Received and reported; never sent (Go peers block on them)."""

    stream_id: int
    headers: HeaderList = ()
    fin: bool = False

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        object.__setattr__(self, "headers", normalize_headers(self.headers))
        # spdystream applies the request list to even ids and the response list to odd ones.
        forbidden = FORBIDDEN_REQUEST_HEADERS if self.stream_id % 2 == 0 else FORBIDDEN_RESPONSE_HEADERS
        check_header_list(self.headers, forbidden)


@dataclass(frozen=True, slots=True, kw_only=True)
class RstStream:
    """Aborts a stream. ``status`` is usually a RstStatus; unknown non-zero codes are kept."""

    stream_id: int
    status: int

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        # PROTOCOLS.md 1.2: "Status 0 is invalid (spdystream rejects it)."
        _check_range("RST_STREAM status", self.status, 1, MAX_U32)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsEntry:
    id: int
    value: int
    flags: int = 0

    def __post_init__(self) -> None:
        _check_range("settings id", self.id, 0, 0xFFFFFF)
        _check_range("settings value", self.value, 0, MAX_U32)
        _check_range("settings flags", self.flags, 0, 0xFF)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    entries: tuple[SettingsEntry, ...] = ()
    clear: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """A PING. From the peer (its parity) it must be echoed: ``send(ping.response())``."""

    ping_id: int

    def __post_init__(self) -> None:
        # PROTOCOLS.md 1.2: "A PING id of 0 is an error."
        _check_range("ping id", self.ping_id, 1, MAX_PING_ID)

    def response(self) -> Ping:
        return Ping(ping_id=self.ping_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class GoAway:
    last_good_stream_id: int = 0
    status: int = GoAwayStatus.OK

    def __post_init__(self) -> None:
        _check_range("last good stream id", self.last_good_stream_id, 0, MAX_STREAM_ID)
        _check_range("GOAWAY status", self.status, 0, MAX_U32)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowUpdate:
    """Parsed and reported, never enforced: Go peers neither send nor honour windows."""

    stream_id: int
    delta: int

    def __post_init__(self) -> None:
        # Stream 0 is SPDY/3.1's session window; the delta is 31 bits and must be positive.
        _check_range("stream id", self.stream_id, 0, MAX_STREAM_ID)
        _check_range("window delta", self.delta, 1, MAX_STREAM_ID)


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    """Stream payload. An empty frame with ``fin`` is a half-close (Go's ``Stream.Close()``)."""

    stream_id: int
    data: bytes = field(default=b"", repr=False)
    fin: bool = False

    def __post_init__(self) -> None:
        _check_stream_id(self.stream_id)
        object.__setattr__(self, "data", bytes(self.data))


Frame = SynStream | SynReply | Headers | RstStream | Settings | Ping | GoAway | WindowUpdate | Data
