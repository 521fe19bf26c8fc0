"""The SPDY/3.1 HTTP upgrade (PROTOCOLS.md 2): request, 101 checks, negotiated protocol, evidence.

A refused upgrade becomes the typed error ``errors.classify_refusal`` picks, carrying the exact
status line, the headers in original casing and a bounded body.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from conformance.model import Evidence
from conformance.redact import redact
from conformance.transport.connect import open_stream
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import PeerProtocolError, StreamingError, joined_headers, map_exception, refusal_error
from conformance.transport.http1 import HttpResponse, exchange
from conformance.transport.stream import ByteStream
from conformance.transport.timeouts import Deadline, Phase

SPDY_UPGRADE_VALUE = "SPDY/3.1"
STREAM_PROTOCOL_HEADER = "X-Stream-Protocol-Version"
# client-go's fallback when the 101 names no protocol (PROTOCOLS.md 2).
DEFAULT_NEGOTIATED = "channel.k8s.io"


@dataclass(slots=True, kw_only=True)
class SpdyUpgrade:
    stream: ByteStream
    response: HttpResponse
    negotiated: str


def record_request(evidence: Evidence, method: str, target: str, headers: Sequence[tuple[str, str]]) -> None:
    evidence.transcript.append(redact(f"> {method} {target} HTTP/1.1"))
    for name, value in headers:
        shown = "<redacted>" if name.lower() in ("authorization", "proxy-authorization") else value
        evidence.transcript.append(redact(f"> {name}: {shown}"))


def record_response(evidence: Evidence, status_line: str, headers: Sequence[tuple[str, str]]) -> None:
    evidence.status_line = status_line
    evidence.response_headers = joined_headers(headers)
    evidence.transcript.append(f"< {status_line}")
    evidence.transcript.extend(redact(f"< {name}: {value}") for name, value in headers)


async def spdy_upgrade(endpoint: Endpoint, target: str, protocols: Sequence[str], deadline: Deadline,
                       evidence: Evidence, *, method: str = "POST") -> SpdyUpgrade:
    """Connect and upgrade ``target`` (path and query, without the endpoint's prefix) to SPDY/3.1."""
    stream = await open_stream(endpoint, deadline, evidence)
    full_target = endpoint.path_prefix + target
    headers = [("Host", endpoint.authority), *endpoint.request_headers(), ("Connection", "Upgrade"),
               ("Upgrade", SPDY_UPGRADE_VALUE), *[(STREAM_PROTOCOL_HEADER, p) for p in protocols]]
    if method == "POST":
        headers.append(("Content-Length", "0"))
    record_request(evidence, method, full_target, headers)
    started = time.monotonic()
    try:
        response = await exchange(stream, method, full_target, headers, deadline, phase=Phase.UPGRADE)
        evidence.timings.upgrade_s = time.monotonic() - started
        record_response(evidence, response.status_line, response.headers)
        if not response.switched:
            raise refusal_error(response.status, response.status_line, response.headers, response.body,
                                evidence=evidence)
        connection = (response.header("Connection") or "").lower()
        upgrade = (response.header("Upgrade") or "").lower()
        # client-go accepts only 101 with both headers (substring, case-insensitive).
        if "upgrade" not in connection or SPDY_UPGRADE_VALUE.lower() not in upgrade:
            raise PeerProtocolError(f"101 without SPDY upgrade headers (Connection={connection!r}, "
                                    f"Upgrade={upgrade!r})", phase=Phase.UPGRADE, evidence=evidence)
    except BaseException as exc:
        stream.abort()
        if isinstance(exc, StreamingError):
            exc.evidence = evidence
            raise
        if isinstance(exc, Exception):
            raise map_exception(exc, phase=Phase.UPGRADE, evidence=evidence, bytes_so_far=bytes(stream.head)) from exc
        raise
    negotiated = response.header(STREAM_PROTOCOL_HEADER)
    if not negotiated:
        evidence.notes.append(f"101 named no {STREAM_PROTOCOL_HEADER}: client-go assumes {DEFAULT_NEGOTIATED}")
        negotiated = DEFAULT_NEGOTIATED
    evidence.protocol_negotiated = negotiated
    stream.mark_head()
    return SpdyUpgrade(stream=stream, response=response, negotiated=negotiated)
