"""What each operation returns. Every result holds a ``model.Evidence`` that probes store as is.

Failures are raised as ``conformance.transport.errors.StreamingError`` subclasses, which carry the
same ``Evidence`` (filled as far as the operation got) plus ``error_class``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from conformance.model import ErrorClass, Evidence

# Output kept in a result (the rest is counted and hashed, never held).
DEFAULT_CAPTURE_LIMIT = 1024 * 1024


class Capture:
    """Counts and hashes every byte of one output, keeps the first ``limit`` of them."""

    def __init__(self, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        self.limit = limit
        self.data = bytearray()
        self.count = 0
        self.sha256 = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.count += len(chunk)
        self.sha256.update(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.count > len(self.data)


@dataclass(slots=True, kw_only=True)
class ExecResult:
    """A remote command that ran to its end (any exit code) or that we detached from (attach)."""

    protocol: str  # the cell's protocol name, e.g. "spdy", "ws-v5"
    negotiated: str  # what the server's 101 said
    exit_code: int | None  # None: detached (attach), or a v1-v3 error text without a code
    stdout: bytes = b""  # first DEFAULT_CAPTURE_LIMIT bytes
    stderr: bytes = b""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_sha256: str = ""
    stdin_bytes: int = 0
    status_message: str = ""  # the Status message of a non-zero exit, or v1-v3 error text
    detached: bool = False
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(slots=True, kw_only=True)
class ConnectionTransfer:
    """One forwarded connection's echo check."""

    port: int
    sent: int
    received: int
    sent_sha256: str
    received_sha256: str
    error_text: str = ""  # what the server wrote on the port's error stream/channel
    first_difference: int | None = None  # offset of the first echoed byte that differs from the one sent

    @property
    def byte_exact(self) -> bool:
        return self.sent == self.received and self.sent_sha256 == self.received_sha256


@dataclass(slots=True, kw_only=True)
class PortForwardResult:
    protocol: str
    negotiated: str
    connections: list[ConnectionTransfer] = field(default_factory=list)
    seconds: float = 0.0  # transfer time (after the session was up)
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def ok(self) -> bool:
        return bool(self.connections) and all(c.byte_exact for c in self.connections)

    @property
    def bytes_echoed(self) -> int:
        return sum(c.received for c in self.connections)


@dataclass(slots=True, kw_only=True)
class CpResult:
    protocol: str
    negotiated: str
    direction: str  # "upload" or "download"
    local_path: str
    remote_path: str
    bytes: int  # file content bytes streamed
    sha256: str  # of the content as it streamed past us
    remote_sha256: str | None = None  # sha256sum in the pod (verify=True)
    files: int = 1
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def ok(self) -> bool:
        return self.remote_sha256 is None or self.remote_sha256 == self.sha256


@dataclass(slots=True, kw_only=True)
class LogsResult:
    data: bytes  # first DEFAULT_CAPTURE_LIMIT bytes
    bytes: int
    lines: int
    ended_by: str  # "bytes", "duration" or "eof"
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def ok(self) -> bool:
        return self.bytes > 0


def error_class_of(exc: BaseException) -> ErrorClass:
    from conformance.transport.errors import StreamingError

    return exc.error_class if isinstance(exc, StreamingError) else ErrorClass.HARNESS
