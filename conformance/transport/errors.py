"""Typed errors of the transports and clients, and the one place lower-layer exceptions become them.

    ConformanceError                          (conformance.errors)
    ├── ConfigError
    │   └── UnsupportedByProtocol             asked for what the protocol cannot do (stdin EOF on ws-v4)
    └── StreamingError                        every failure of a streaming operation; carries
        │                                     .error_class (model.ErrorClass), .phase, .evidence
        │                                     (model.Evidence so far) and .bytes_so_far
        ├── TransportError                    no usable byte stream
        │   ├── ConnectRefused                connect-refused: refused, unreachable, DNS
        │   ├── TransportTimeout              timeout: a phase's budget ran out (names the phase)
        │   ├── TlsError                      tls: handshake or verification failed
        │   ├── ConnectionReset               reset: RST, EOF mid-stream, abnormal WebSocket close
        │   └── ProxyRefused                  proxy-error: the HTTPS proxy answered CONNECT with non-2xx
        ├── UpgradeFailed                     the server answered the upgrade with something else than
        │   │                                 101; keeps the status line, headers and a bounded body
        │   ├── UpgradeRequired               upgrade-required: 400 "Upgrade request required"
        │   ├── Unauthorized                  unauthorized: 401
        │   ├── Forbidden                     forbidden: 403 carrying a metav1.Status (the authorizer)
        │   ├── NotFound                      not-found: 404 carrying a metav1.Status
        │   ├── ServerError                   server-error: 5xx carrying a metav1.Status
        │   ├── HopError                      proxy-error: 502/503/504 (a hop could not reach upstream)
        │   └── UpgradeRefused                upgrade-refused: any other non-101 (Envoy's 403, 500 HTML)
        ├── ProtocolMismatch                  protocol-mismatch: the 101 named a protocol we did not ask
        │                                     for, or the server listed the protocols it accepts
        ├── PeerProtocolError                 protocol-error: the peer's bytes broke the protocol
        │   └── MissingExitStatusError        missing-exit-status: error channel ended without a Status
        ├── DataMismatch                      data-mismatch: completed, but the bytes differ
        └── RemoteCommandFailed               the server *reported* a failure Status (error class from
                                              its code: forbidden, not-found, server-error)

``classify_refusal`` derives the class of a non-101 from its evidence; ``map_exception`` is the only
place OSError, ssl errors, timeouts, websockets exceptions and wire ``ProtocolError`` turn into these,
always chained with ``from``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import ssl
from collections.abc import Sequence

import websockets.exceptions as ws_exc

from conformance.errors import ConfigError, ConformanceError
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact
from conformance.transport.timeouts import Phase, PhaseTimeout
from conformance.wire import errors as wire_errors

# Evidence excerpts are bounded: enough to read an HTML error page's title or a Status message.
MAX_BODY_EXCERPT = 4096
MAX_BYTES_SO_FAR = 4096


class UnsupportedByProtocol(ConfigError):
    """The operation needs a capability the pinned protocol lacks; raised before any I/O."""


class StreamingError(ConformanceError):
    error_class: ErrorClass = ErrorClass.HARNESS

    def __init__(
        self,
        message: str,
        *,
        phase: Phase | None = None,
        evidence: Evidence | None = None,
        bytes_so_far: bytes = b"",
    ) -> None:
        super().__init__(redact(message))
        self.message = redact(message)
        self.phase = phase
        self.evidence = evidence if evidence is not None else Evidence()
        self.bytes_so_far = bytes(bytes_so_far[:MAX_BYTES_SO_FAR])
        if self.evidence.error is None:
            self.evidence.error = f"{self.error_class.value}: {self.message}"

    def __str__(self) -> str:
        where = f" during {self.phase}" if self.phase else ""
        return f"{self.error_class.value}{where}: {self.message}"


class TransportError(StreamingError):
    pass


class ConnectRefused(TransportError):
    error_class = ErrorClass.CONNECT_REFUSED


class TransportTimeout(TransportError):
    error_class = ErrorClass.TIMEOUT


class TlsError(TransportError):
    error_class = ErrorClass.TLS


class ConnectionReset(TransportError):
    error_class = ErrorClass.RESET


class ProxyRefused(TransportError):
    error_class = ErrorClass.PROXY_ERROR

    def __init__(self, message: str, *, status_line: str, phase: Phase | None = None,
                 evidence: Evidence | None = None, bytes_so_far: bytes = b"") -> None:
        super().__init__(message, phase=phase, evidence=evidence, bytes_so_far=bytes_so_far)
        self.status_line = status_line


class UpgradeFailed(StreamingError):
    """A non-101 answer to the upgrade. ``status``/``status_line``/``headers``/``body`` are the evidence."""

    error_class = ErrorClass.UPGRADE_REFUSED

    def __init__(
        self,
        message: str,
        *,
        status: int,
        status_line: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        phase: Phase | None = None,
        evidence: Evidence | None = None,
        bytes_so_far: bytes = b"",
    ) -> None:
        super().__init__(message, phase=phase, evidence=evidence, bytes_so_far=bytes_so_far)
        self.status = status
        self.status_line = status_line
        self.headers = list(headers)
        self.body = body


class UpgradeRequired(UpgradeFailed):
    error_class = ErrorClass.UPGRADE_REQUIRED


class Unauthorized(UpgradeFailed):
    error_class = ErrorClass.UNAUTHORIZED


class Forbidden(UpgradeFailed):
    error_class = ErrorClass.FORBIDDEN


class NotFound(UpgradeFailed):
    error_class = ErrorClass.NOT_FOUND


class ServerError(UpgradeFailed):
    error_class = ErrorClass.SERVER_ERROR


class HopError(UpgradeFailed):
    error_class = ErrorClass.PROXY_ERROR


class UpgradeRefused(UpgradeFailed):
    error_class = ErrorClass.UPGRADE_REFUSED


class ProtocolMismatch(StreamingError):
    error_class = ErrorClass.PROTOCOL_MISMATCH


class PeerProtocolError(StreamingError):
    error_class = ErrorClass.PROTOCOL_ERROR


class MissingExitStatusError(PeerProtocolError):
    error_class = ErrorClass.MISSING_EXIT_STATUS


class DataMismatch(StreamingError):
    """The operation completed but the bytes that came back differ from those sent."""

    error_class = ErrorClass.DATA_MISMATCH


class Truncated(StreamingError):
    """A stream ended cleanly (a close, not a reset) before every byte arrived: "N of M bytes"."""

    error_class = ErrorClass.TRUNCATED


class RemoteCommandFailed(StreamingError):
    """The server reported a failure Status (not a non-zero exit: that is a normal result)."""

    def __init__(self, message: str, *, reason: str = "", code: int | None = None, phase: Phase | None = None,
                 evidence: Evidence | None = None, bytes_so_far: bytes = b"") -> None:
        self.reason = reason
        self.code = code
        self.error_class = {401: ErrorClass.UNAUTHORIZED, 403: ErrorClass.FORBIDDEN, 404: ErrorClass.NOT_FOUND}.get(
            code or 0, ErrorClass.SERVER_ERROR
        )
        super().__init__(message, phase=phase, evidence=evidence, bytes_so_far=bytes_so_far)


# --- classification --------------------------------------------------------------------------------


def status_document(body: bytes) -> dict[str, object] | None:
    """The body as a metav1.Status (what the API server writes), else None."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None


def classify_refusal(status: int, headers: Sequence[tuple[str, str]], body: bytes) -> type[UpgradeFailed] | type[
    ProtocolMismatch
]:
    """Which error a non-101 answer is. The rules, in order (docs/clients.md explains each):

    1. 400 whose body says "Upgrade request required": an L7 hop dropped the Upgrade header.
    2. Any status with ``X-Accepted-Stream-Protocol-Versions``: the server offers other protocols.
    3. 401: authentication failed wherever it happened.
    4. 403 / 404 / 5xx with a metav1.Status body: the API server (authorizer, missing pod, failure).
    5. 502, 503, 504 without a Status: a hop could not reach its upstream.
    6. Everything else (Envoy's 403 "upgrade_failed", an HTML 500): the upgrade itself was refused.
    """
    names = {name.lower() for name, _ in headers}
    doc = status_document(body)
    if status == 400 and b"upgrade request required" in body.lower():
        return UpgradeRequired
    if "x-accepted-stream-protocol-versions" in names:
        return ProtocolMismatch
    if status == 401:
        return Unauthorized
    if doc is not None:
        if status == 403:
            return Forbidden
        if status == 404:
            return NotFound
        if status >= 500:
            return ServerError
    if status in (502, 503, 504):
        return HopError
    return UpgradeRefused


def refusal_error(
    status: int,
    status_line: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    evidence: Evidence,
    phase: Phase = Phase.UPGRADE,
) -> StreamingError:
    """The typed error for a non-101 answer, with the evidence filled in."""
    klass = classify_refusal(status, headers, body)
    doc = status_document(body)
    detail = doc.get("message") if doc else body[:200].decode("utf-8", "replace").strip()
    message = f"{status_line}: {detail}" if detail else status_line
    evidence.status_line = status_line
    evidence.response_headers = joined_headers(headers)
    evidence.body_excerpt = redact(body[:MAX_BODY_EXCERPT].decode("utf-8", "replace"))
    if not issubclass(klass, UpgradeFailed):
        return ProtocolMismatch(message, phase=phase, evidence=evidence, bytes_so_far=body)
    return klass(message, status=status, status_line=status_line, headers=headers, body=body,
                 phase=phase, evidence=evidence, bytes_so_far=body)


def joined_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Headers in original casing, repeated names joined with ", " (Evidence keeps a mapping)."""
    out: dict[str, str] = {}
    for name, value in headers:
        out[name] = f"{out[name]}, {value}" if name in out else value
    from conformance.redact import redact_headers

    return redact_headers(out)


# --- the one mapping from lower layers --------------------------------------------------------------

_REFUSED_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN}


def map_exception(
    exc: BaseException, *, phase: Phase, evidence: Evidence, bytes_so_far: bytes = b""
) -> StreamingError:
    """Turn a lower-layer exception into our typed error. Callers ``raise mapped from exc``."""

    def make(klass: type[StreamingError], message: str) -> StreamingError:
        return klass(message, phase=phase, evidence=evidence, bytes_so_far=bytes_so_far)

    if isinstance(exc, StreamingError):
        return exc
    if isinstance(exc, PhaseTimeout):
        return TransportTimeout(str(exc), phase=exc.phase, evidence=evidence, bytes_so_far=bytes_so_far)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return make(TransportTimeout, f"timed out: {exc}")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        if phase not in (Phase.TLS, Phase.CONNECT, Phase.PROXY):
            return make(ConnectionReset, f"TLS record error mid-stream: {exc}")
        return make(TlsError, f"TLS failed: {exc}")
    if isinstance(exc, wire_errors.MissingExitStatus):
        return make(MissingExitStatusError, exc.message)
    if isinstance(exc, wire_errors.RemoteCommandError):
        return RemoteCommandFailed(exc.message, reason=exc.reason, code=exc.code, phase=phase, evidence=evidence,
                                   bytes_so_far=bytes_so_far)
    if isinstance(exc, wire_errors.ProtocolError):
        return make(PeerProtocolError, f"{type(exc).__name__}: {exc.message}")
    if isinstance(exc, ws_exc.InvalidStatus):
        response = exc.response
        line = f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
        body = bytes(response.body or b"")
        return refusal_error(response.status_code, line, list(response.headers.raw_items()), body,
                             evidence=evidence, phase=phase)
    if isinstance(exc, ws_exc.ConnectionClosed):
        rcvd = exc.rcvd
        code = f"close code {rcvd.code} {rcvd.reason!r}" if rcvd else "no close frame"
        if rcvd is not None and rcvd.code == 1009:
            return make(PeerProtocolError, f"message too big ({code})")
        if rcvd is not None and rcvd.code in (1002, 1003, 1007):
            return make(PeerProtocolError, f"peer closed the WebSocket: {code}")
        if exc.sent is not None and exc.sent.code in (1002, 1003, 1007, 1009):
            return make(PeerProtocolError, f"we closed the WebSocket: {exc.sent.code} {exc.sent.reason}")
        return make(ConnectionReset, f"WebSocket closed abnormally: {code}")
    if isinstance(exc, ws_exc.InvalidHandshake):
        text = str(exc)
        if "subprotocol" in text:
            return make(ProtocolMismatch, f"WebSocket handshake: {text}")
        if isinstance(exc, ws_exc.InvalidMessage) and isinstance(exc.__cause__, EOFError):
            return make(ConnectionReset, f"connection closed before the handshake response: {text}")
        return make(PeerProtocolError, f"WebSocket handshake: {text}")
    if isinstance(exc, ws_exc.ProtocolError | ws_exc.PayloadTooBig):
        return make(PeerProtocolError, f"WebSocket protocol: {exc}")
    if isinstance(exc, asyncio.IncompleteReadError | EOFError | BrokenPipeError | ConnectionResetError
                  | ConnectionAbortedError):
        return make(ConnectionReset, f"connection closed: {type(exc).__name__}: {exc}")
    if isinstance(exc, ConnectionRefusedError):
        return make(ConnectRefused, f"connection refused: {exc}")
    if isinstance(exc, OSError):
        if exc.errno in _REFUSED_ERRNOS or phase is Phase.CONNECT:
            return make(ConnectRefused, f"cannot connect: {exc}")
        if exc.errno in _RESET_ERRNOS:
            return make(ConnectionReset, f"connection reset: {exc}")
        return make(ConnectionReset, f"socket error: {exc}")
    return make(StreamingError, f"unexpected {type(exc).__name__}: {exc}")
