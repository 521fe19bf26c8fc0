"""Kubernetes remotecommand (exec/attach) payloads shared by SPDY and WebSocket (PROTOCOLS.md 3).

* which streams a client opens over SPDY, in which order (``spdy_stream_types``);
* the error stream/channel: v1-v3 plain text, v4/v5 one ``metav1.Status`` JSON document, decoded by
  ``ErrorStreamDecoder`` into an exit code or a ``RemoteCommandError``, and encoded the way the Go
  server writes it (``encode_status_*``);
* the resize stream/channel: newline-delimited ``{"Width":..,"Height":..}``.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from enum import Enum, StrEnum

from conformance.wire import limits
from conformance.wire.errors import (
    LocalProtocolError,
    MissingExitStatus,
    RemoteCommandError,
    RemoteProtocolError,
)
from conformance.wire.go_parse import parse_uint

# The SPDY header carrying the stream type (Go's constant "streamType", lowercased on the wire).
STREAM_TYPE_HEADER = "streamtype"


class StreamType(StrEnum):
    ERROR = "error"
    STDIN = "stdin"
    STDOUT = "stdout"
    STDERR = "stderr"
    RESIZE = "resize"


class RemoteCommandProtocol(StrEnum):
    """X-Stream-Protocol-Version values (SPDY) and the WebSocket subprotocols of exec/attach."""

    V1 = "channel.k8s.io"
    V2 = "v2.channel.k8s.io"
    V3 = "v3.channel.k8s.io"
    V4 = "v4.channel.k8s.io"
    V5 = "v5.channel.k8s.io"
    BASE64 = "base64.channel.k8s.io"
    V4_BASE64 = "v4.base64.channel.k8s.io"

    @property
    def version(self) -> int:
        """1 for the unversioned names, else the number after the leading "v"."""
        return int(self.value[1]) if self.value.startswith("v") else 1

    @property
    def has_json_status(self) -> bool:
        """v4 and v5 write a metav1.Status on the error stream; older versions write text."""
        return self.version >= 4


def spdy_stream_types(*, stdin: bool, stdout: bool, stderr: bool, tty: bool, version: int) -> list[StreamType]:
    """Streams a client creates over SPDY, in creation order (PROTOCOLS.md 3.2)."""
    if not (stdin or stdout or stderr):
        raise LocalProtocolError("at least one of stdin, stdout or stderr must be requested")
    order = [StreamType.ERROR]
    if stdin:
        order.append(StreamType.STDIN)
    if stdout:
        order.append(StreamType.STDOUT)
    # "stderr if stderr requested and not tty": with a tty, stdout and stderr share the terminal.
    if stderr and not tty:
        order.append(StreamType.STDERR)
    if tty and version >= 3:
        order.append(StreamType.RESIZE)
    return order


# --- error stream: metav1.Status -------------------------------------------------------------------


class StatusOutcome(Enum):
    SUCCESS = "Success"
    FAILURE = "Failure"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitStatus:
    """What the error stream said: the command ran and exited with ``exit_code``."""

    exit_code: int
    message: str = ""  # the Status message, kept as evidence for non-zero exits


class ErrorStreamDecoder:
    """Accumulates the error stream (bounded) and turns it into an ExitStatus when it ends.

    ``finish()`` raises ``RemoteCommandError`` when the server reported a failure other than a
    non-zero exit, ``MissingExitStatus`` when a v4/v5 stream ended empty (client-go calls that
    success; pass ``empty_is_success=True`` to agree), and ``RemoteProtocolError`` for garbage.
    """

    def __init__(self, *, json_status: bool, max_size: int = limits.MAX_STATUS_SIZE) -> None:
        self._json_status = json_status
        self._max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        if len(self._buffer) + len(data) > self._max_size:
            raise RemoteProtocolError(f"error stream longer than {self._max_size} bytes")
        self._buffer += data

    def finish(self, *, empty_is_success: bool = False) -> ExitStatus:
        data = bytes(self._buffer)
        if not data:
            if self._json_status and not empty_is_success:
                raise MissingExitStatus("error stream ended without a Status (v4/v5 servers always send one)")
            return ExitStatus(exit_code=0)
        if not self._json_status:
            # PROTOCOLS.md 3.3, v1-v3: "The client treats any non-empty content as an error."
            raise RemoteCommandError(data.decode("utf-8", "replace"))
        return decode_status(data)


def decode_status(data: bytes) -> ExitStatus:
    """Decode one v4/v5 Status document (PROTOCOLS.md 3.3, "How the client decodes it")."""
    try:
        status = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"error stream is not JSON: {exc}") from None
    if not isinstance(status, dict):
        raise RemoteProtocolError("error stream JSON is not an object")
    outcome = status.get("status")
    message = _str_field(status, "message")
    if outcome == StatusOutcome.SUCCESS.value:
        return ExitStatus(exit_code=0)
    if outcome != StatusOutcome.FAILURE.value:
        raise RemoteProtocolError(f"Status.status is {outcome!r}, not Success or Failure")
    reason = _str_field(status, "reason")
    code = status.get("code")
    if reason == "NonZeroExitCode":
        return ExitStatus(exit_code=_exit_code_cause(status), message=message)
    raise RemoteCommandError(
        message or "remote command failed", reason=reason, code=code if type(code) is int else None
    )


def _str_field(obj: dict[str, object], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise RemoteProtocolError(f"Status.{key} is not a string")
    return value


def _exit_code_cause(status: dict[str, object]) -> int:
    # "find the cause whose reason is "ExitCode" and parse its message as an unsigned integer 0-255
    # ... (if details is missing, or has no such cause, it is a protocol error)."
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    for cause in causes if isinstance(causes, list) else []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            text = cause.get("message")
            code = parse_uint(text, 255) if isinstance(text, str) else None
            if code is not None:
                return code
            raise RemoteProtocolError(f"ExitCode cause has invalid message {str(text)[:40]!r}")
    raise RemoteProtocolError("NonZeroExitCode Status without an ExitCode cause")


def encode_status_success() -> bytes:
    """What the Go server writes after a successful command."""
    return b'{"metadata":{},"status":"Success"}'


def encode_status_exit_code(exit_code: int, error_text: str) -> bytes:
    """What the Go server writes for a non-zero exit (``error_text`` is Go's error string)."""
    if not 1 <= exit_code <= 255:
        raise LocalProtocolError(f"exit code {exit_code} is not 1-255")
    return _dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {error_text}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
        }
    )


def encode_status_failure(message: str, *, reason: str = "InternalError", code: int = 500) -> bytes:
    """Any other failure, shaped like apierrors.NewInternalError by default."""
    return _dumps({"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})


def _dumps(obj: object) -> bytes:
    # Go's encoding/json: no spaces, non-ASCII kept as UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- resize stream ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalSize:
    width: int
    height: int

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if type(value) is not int or not 0 <= value <= 0xFFFF:
                raise LocalProtocolError(f"terminal {name} {value!r} is not a uint16")


def encode_resize(size: TerminalSize) -> bytes:
    """``{"Width":80,"Height":24}\\n``: Go's exported field names and its encoder's newline."""
    return _dumps({"Width": size.width, "Height": size.height}) + b"\n"


class ResizeDecoder:
    """Server side of the resize stream: a bounded streaming JSON decoder, keys case-insensitive."""

    def __init__(self, *, max_buffer: int = limits.MAX_RESIZE_BUFFER) -> None:
        self._max_buffer = max_buffer
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")()  # a character may span two frames
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[TerminalSize]:
        """Sizes completed by ``data``. An incomplete (or garbled) object waits, up to the cap."""
        try:
            self._text += self._utf8.decode(data)
        except UnicodeDecodeError:
            raise RemoteProtocolError("resize stream is not UTF-8") from None
        sizes = []
        while True:
            self._text = self._text.lstrip()
            if not self._text:
                break
            try:
                obj, end = self._decoder.raw_decode(self._text)
            except ValueError:
                break  # incomplete object: wait for more, within the cap below
            except RecursionError:
                raise RemoteProtocolError("resize JSON nested too deeply") from None
            self._text = self._text[end:]
            sizes.append(_terminal_size(obj))
        if len(self._text) > self._max_buffer:
            raise RemoteProtocolError(f"resize stream holds {len(self._text)} unparsed characters")
        return sizes


def _terminal_size(obj: object) -> TerminalSize:
    if not isinstance(obj, dict):
        raise RemoteProtocolError("resize message is not a JSON object")
    # Go's decoder matches keys case-insensitively; missing fields stay 0.
    fields = {str(key).lower(): value for key, value in obj.items()}
    try:
        return TerminalSize(width=fields.get("width", 0), height=fields.get("height", 0))
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message) from None
