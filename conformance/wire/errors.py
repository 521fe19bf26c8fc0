"""Errors raised by the sans-IO wire codecs, typed by who is at fault.

    ConformanceError                      (conformance.errors)
    ├── ProtocolError                     something on the wire is wrong
    │   ├── LocalProtocolError            *we* asked for something the protocol forbids;
    │   │   │                             nothing was encoded and the codec is unchanged
    │   │   └── ReceiveBufferFull         receive_data() was fed faster than events were drained
    │   └── RemoteProtocolError           the *peer* (or a proxy in between) sent bad bytes;
    │       │                             the codec that raised it is now in ERROR
    │       ├── FrameTooLarge             a frame header announces more than our limit
    │       ├── HeaderBlockTooLarge       a header block decompresses past our cap (zlib bomb)
    │       └── MissingExitStatus         the error channel ended without the Status it must carry
    └── RemoteCommandError                the peer *reported* a failure (a metav1.Status Failure);
                                          the wire was fine, the command was not

Each protocol error may say what to send back: a SPDY ``rst_status`` for ``stream_id`` or a
``goaway_status`` for the whole session, or a WebSocket ``close_code``. Only
``RemoteProtocolError`` (and ``RemoteCommandError`` from the Status decoder) may escape a receive
path; the fuzz tests in tests/wire prove it.
"""

from __future__ import annotations

from conformance.errors import ConformanceError

# Numeric codes are plain ints here so this module imports nothing from the codecs.
# SPDY/3 section 2.6.6: GOAWAY status 1 = PROTOCOL_ERROR.
_GOAWAY_PROTOCOL_ERROR = 1
# RFC 6455 section 7.4.1: 1002 = "terminating the connection due to a protocol error".
_WS_CLOSE_PROTOCOL_ERROR = 1002


class ProtocolError(ConformanceError):
    """A wire-level failure. Carries the codes a transport should send back, when any apply."""

    def __init__(
        self,
        message: str,
        *,
        stream_id: int | None = None,
        rst_status: int | None = None,
        goaway_status: int | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stream_id = stream_id
        self.rst_status = rst_status
        self.goaway_status = goaway_status
        self.close_code = close_code


class LocalProtocolError(ProtocolError):
    """Our own code tried to encode something invalid. Nothing was emitted; fix the caller."""


class ReceiveBufferFull(LocalProtocolError):
    """More bytes were buffered than the limit allows: drain events before feeding more."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid. The default reply is GOAWAY(PROTOCOL_ERROR) / close 1002."""

    def __init__(
        self,
        message: str,
        *,
        stream_id: int | None = None,
        rst_status: int | None = None,
        goaway_status: int | None = _GOAWAY_PROTOCOL_ERROR,
        close_code: int | None = _WS_CLOSE_PROTOCOL_ERROR,
    ) -> None:
        super().__init__(
            message,
            stream_id=stream_id,
            rst_status=rst_status,
            goaway_status=goaway_status,
            close_code=close_code,
        )


class FrameTooLarge(RemoteProtocolError):
    """A frame header announced a payload longer than our configured limit."""


class HeaderBlockTooLarge(RemoteProtocolError):
    """A compressed header block inflates past the cap: refused before the memory is spent."""


class MissingExitStatus(RemoteProtocolError):
    """The error channel/stream closed without the Status JSON that v4/v5 servers always send.

    Through proxies this happens (a dropped last frame); it is its own class so a report never
    mistakes it for exit code 0.
    """


class RemoteCommandError(ConformanceError):
    """The server reported a failed command with a ``metav1.Status`` (not a protocol fault)."""

    def __init__(self, message: str, *, reason: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code
