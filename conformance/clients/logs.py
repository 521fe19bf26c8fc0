"""``logs -f`` natively: a plain GET with ``follow=true``, read until a byte or time bound."""

from __future__ import annotations

import asyncio
import time

from conformance.clients.command_target import logs_target
from conformance.clients.results import DEFAULT_CAPTURE_LIMIT, Capture, LogsResult
from conformance.model import Evidence
from conformance.transport.connect import open_stream
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError, map_exception, refusal_error
from conformance.transport.http1 import Http1Exchange
from conformance.transport.timeouts import Deadline, Phase, Timeouts
from conformance.transport.upgrade import record_request, record_response


async def logs_follow(endpoint: Endpoint, namespace: str, pod: str, container: str | None = None, *,
                      max_bytes: int = 64 * 1024, max_duration: float = 5.0, since_seconds: int | None = None,
                      tail_lines: int | None = None, capture_limit: int = DEFAULT_CAPTURE_LIMIT,
                      timestamps: bool = False, timeouts: Timeouts | None = None) -> LogsResult:
    """Follow the container's log until ``max_bytes`` arrived, ``max_duration`` passed, or the server ends it."""
    deadline = Deadline(timeouts or Timeouts())
    evidence = Evidence(protocol_requested="http/1.1", protocol_negotiated="http/1.1")
    target = endpoint.path_prefix + logs_target(namespace, pod, container, since_seconds=since_seconds,
                                                tail_lines=tail_lines, timestamps=timestamps)
    headers = [("Host", endpoint.authority), *endpoint.request_headers(), ("Accept", "*/*")]
    capture = Capture(capture_limit)
    ended_by = "eof"
    stream = await open_stream(endpoint, deadline, evidence)
    try:
        record_request(evidence, "GET", target, headers)
        exchange = Http1Exchange(stream, deadline, phase=Phase.UPGRADE)
        started = time.monotonic()
        await exchange.send_request("GET", target, headers)
        response = await exchange.read_head()
        evidence.timings.upgrade_s = time.monotonic() - started
        record_response(evidence, response.status_line, response.headers)
        if response.status != 200:
            await exchange.read_bounded_body(response)
            raise refusal_error(response.status, response.status_line, response.headers, response.body,
                                evidence=evidence)
        exchange.phase = Phase.STREAM
        stop_at = time.monotonic() + max_duration
        while capture.count < max_bytes:
            left = stop_at - time.monotonic()
            if left <= 0:
                ended_by = "duration"
                break
            try:
                async with asyncio.timeout(left):
                    chunk = await exchange.read_body_chunk()
            except TimeoutError:
                ended_by = "duration"
                break
            if chunk is None:
                break
            if evidence.timings.first_byte_s is None:
                evidence.timings.first_byte_s = deadline.elapsed()
            capture.add(chunk)
        else:
            ended_by = "bytes"
    except StreamingError as exc:
        exc.evidence = evidence
        raise
    except Exception as exc:
        raise map_exception(exc, phase=Phase.STREAM, evidence=evidence, bytes_so_far=bytes(stream.head)) from exc
    finally:
        await stream.aclose()
        evidence.timings.total_s = deadline.elapsed()
    evidence.notes.append(f"{capture.count} B of log, ended by {ended_by}")
    data = bytes(capture.data)
    return LogsResult(data=data, bytes=capture.count, lines=data.count(b"\n"), ended_by=ended_by, evidence=evidence)
