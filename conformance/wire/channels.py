"""WebSocket channel framing of the ``channel.k8s.io`` family (PROTOCOLS.md 5.2 and 5.3).

A WebSocket message is represented as ``bytes`` (a binary frame) or ``str`` (a text frame), the
convention of the ``websockets`` library. ``ChannelCodec`` turns ``(channel, payload)`` into a
message and back:

* binary protocols (``""``, ``channel.k8s.io``, ``v4.channel.k8s.io``, ``v5.channel.k8s.io``):
  ``[channel byte][payload]`` in a binary message;
* base64 protocols (``base64.channel.k8s.io``, ``v4.base64.channel.k8s.io``): the ASCII digit
  ``'0' + channel`` then standard padded base64 of the payload, sent as text;
* v5 only: the CLOSE signal ``[0xFF, channel]`` from the client ("stdin is finished").

Server role follows the Go server: text messages are accepted on binary protocols, and empty
messages are skipped (``decode`` returns None). Client role follows client-go: a text message on a
binary protocol is an error.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import IntEnum

from conformance.wire import limits
from conformance.wire.errors import LocalProtocolError, RemoteProtocolError
from conformance.wire.role import Role

Message = bytes | str  # bytes: binary frame; str: text frame

# RFC 6455 7.4.1: 1003 = received a type of data it cannot accept; 1007 = inconsistent payload data.
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007

CLOSE_SIGNAL = 0xFF  # v5: PROTOCOLS.md 5.3 "the client sends the binary message [0xFF, <channel>]"
_BASE64_CHANNEL_ZERO = ord("0")
_MAX_BASE64_CHANNEL = 0x7F - _BASE64_CHANNEL_ZERO  # the digit must stay ASCII in a text frame

BINARY_SUBPROTOCOLS = frozenset({"", "channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"})
BASE64_SUBPROTOCOLS = frozenset({"base64.channel.k8s.io", "v4.base64.channel.k8s.io"})
# "There is no base64 form of v5."
CLOSE_SIGNAL_SUBPROTOCOLS = frozenset({"v5.channel.k8s.io"})


class Channel(IntEnum):
    """Exec/attach channel numbers (PROTOCOLS.md 5.2)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelData:
    channel: int
    data: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.channel <= 0xFF:
            raise LocalProtocolError(f"channel {self.channel} does not fit one byte")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelClosed:
    """v5 CLOSE signal: the client will write nothing more on ``channel``."""

    channel: int


ChannelEvent = ChannelData | ChannelClosed


class ChannelCodec:
    """Encoder and decoder for one negotiated subprotocol, in one role."""

    def __init__(self, subprotocol: str, *, role: Role, channel_count: int = limits.EXEC_CHANNEL_COUNT) -> None:
        if subprotocol not in BINARY_SUBPROTOCOLS | BASE64_SUBPROTOCOLS:
            raise LocalProtocolError(f"{subprotocol!r} is not a channel.k8s.io subprotocol")
        self.subprotocol = subprotocol
        self.role = role
        self.channel_count = channel_count
        self.is_base64 = subprotocol in BASE64_SUBPROTOCOLS
        self.has_close_signal = subprotocol in CLOSE_SIGNAL_SUBPROTOCOLS

    # --- encoding --------------------------------------------------------------------------------

    def encode(self, channel: int, data: bytes = b"") -> Message:
        """One write on one channel as one message (an empty payload is legal: readiness)."""
        if self.is_base64:
            if not 0 <= channel <= _MAX_BASE64_CHANNEL:
                raise LocalProtocolError(f"channel {channel} has no ASCII digit in base64 protocols")
            return chr(_BASE64_CHANNEL_ZERO + channel) + base64.b64encode(data).decode("ascii")
        if self.has_close_signal and channel == CLOSE_SIGNAL:
            raise LocalProtocolError("channel 255 is the v5 CLOSE signal; use encode_close()")
        return bytes([ChannelData(channel=channel).channel]) + data

    def encode_close(self, channel: int) -> bytes:
        """v5 CLOSE for ``channel`` (e.g. ``Channel.STDIN`` for stdin EOF). Client only."""
        if not self.has_close_signal:
            raise LocalProtocolError(f"{self.subprotocol!r} has no CLOSE signal; only v5 does")
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("the server never sends CLOSE; it closes the WebSocket")
        if not 0 <= channel < self.channel_count:
            raise LocalProtocolError(f"channel {channel} is not below the channel count {self.channel_count}")
        return bytes([CLOSE_SIGNAL, channel])

    # --- decoding --------------------------------------------------------------------------------

    def decode(self, message: Message) -> ChannelEvent | None:
        """Decode one received message. None means "skip it", as the Go server does."""
        if isinstance(message, str):
            message = self._text_payload(message)
        if not message:
            if self.role is Role.SERVER:
                return None  # the Go server skips empty messages
            raise RemoteProtocolError("empty message has no channel byte")
        if self.is_base64:
            return self._decode_base64(message)
        channel, payload = message[0], message[1:]
        if self.has_close_signal and channel == CLOSE_SIGNAL:
            return self._decode_close(payload)
        return ChannelData(channel=channel, data=payload)

    def _text_payload(self, text: str) -> bytes:
        if not self.is_base64 and self.role is Role.CLIENT:
            # PROTOCOLS.md 5.2: client-go "requires binary messages from the server (a text message
            # kills the session)".
            raise RemoteProtocolError(
                f"text message on binary subprotocol {self.subprotocol!r}", close_code=CLOSE_UNSUPPORTED_DATA
            )
        return text.encode("utf-8", "surrogatepass")

    def _decode_base64(self, message: bytes) -> ChannelData:
        channel = message[0] - _BASE64_CHANNEL_ZERO
        if not 0 <= channel <= _MAX_BASE64_CHANNEL:
            raise RemoteProtocolError(f"byte {message[0]:#04x} is not a base64 channel digit")
        try:
            payload = base64.b64decode(message[1:], validate=True)
        except (binascii.Error, ValueError):
            raise RemoteProtocolError(
                f"channel {channel}: payload is not padded standard base64", close_code=CLOSE_INVALID_PAYLOAD
            ) from None
        return ChannelData(channel=channel, data=payload)

    def _decode_close(self, payload: bytes) -> ChannelClosed:
        if self.role is Role.CLIENT:
            raise RemoteProtocolError("the server sent a CLOSE signal; only clients do")
        # PROTOCOLS.md 5.3: "Any other length after 0xFF, or a channel number >= the channel count,
        # is a protocol error and ends the connection."
        if len(payload) != 1:
            raise RemoteProtocolError(f"CLOSE signal of {len(payload) + 1} bytes; it must be 2")
        if payload[0] >= self.channel_count:
            raise RemoteProtocolError(f"CLOSE for channel {payload[0]}, beyond {self.channel_count} channels")
        return ChannelClosed(channel=payload[0])
