"""Byte-exact echo transfers over forwarded connections: ``port_forward_echo``.

The payload is generated chunk by chunk from a seeded PRNG and hashed as it leaves; the echo is hashed
as it arrives. Nothing holds the whole payload, so 256 MiB costs a few chunks of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import struct
import time
from collections.abc import Iterator

from conformance.clients.portforward import ForwardedConnection, open_port_forward
from conformance.clients.results import ConnectionTransfer, PortForwardResult
from conformance.model import Evidence
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import DataMismatch, StreamingError, Truncated, map_exception
from conformance.transport.timeouts import Deadline, Phase, PhaseTimeout, Timeouts

CHUNK = 256 * 1024


# The pattern's source: random bytes made once per process. A chunk is its stream's seed and the chunk's
# index, then a slice of the block at an offset both choose, so no two chunks of a run are alike (a reordered,
# repeated or swapped chunk shows) at the cost of a slice, not of a PRNG (Random.randbytes: ~55 ms per 16 MiB,
# twice per stream, on the loop that runs every cell).
_BLOCK_BYTES = 4 * 1024 * 1024
_HEADER = struct.Struct(">QQ")
_block: bytes | None = None


def _pattern_block() -> bytes:
    global _block
    if _block is None:
        _block = random.Random(0x5EED).randbytes(_BLOCK_BYTES + CHUNK)
    return _block


def payload_chunks(size: int, seed: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes (not secret: a test pattern that shows reordering)."""
    block = _pattern_block()
    chunk = min(chunk, CHUNK)
    left, index = size, 0
    while left > 0:
        n = min(chunk, left)
        at = (seed * 1_000_003 + index * 7_919 * 64) % _BLOCK_BYTES
        body = _HEADER.pack(seed, index) + block[at : at + max(0, n - _HEADER.size)]
        yield body[:n]
        left -= n
        index += 1


async def echo_transfer(conn: ForwardedConnection, size: int, *, seed: int = 0,
                        on_first_byte: object = None) -> ConnectionTransfer:
    """Send ``size`` bytes and read the echo concurrently; compare counts and sha256."""
    sent_hash, received_hash = hashlib.sha256(), hashlib.sha256()
    sent = received = 0
    # The echo is compared as it arrives against the same seeded stream: the first differing offset
    # costs one memcmp per chunk (the sha256 pair stays the verdict).
    expected = _Expected(size, seed)
    first_difference: int | None = None

    async def send() -> None:
        nonlocal sent
        for chunk in payload_chunks(size, seed):
            sent_hash.update(chunk)
            await conn.write(chunk)
            sent += len(chunk)
        await conn.close_write()

    async def receive() -> None:
        nonlocal received, first_difference
        # Stop at the expected size: whether our FIN reaches the pod's socket as a half-close is the
        # server's business (kwok, for one, never passes it on), so waiting for EOF could hang.
        while received < size:
            chunk = await conn.read()
            if not chunk:
                break
            if received == 0 and callable(on_first_byte):
                on_first_byte()
            received_hash.update(chunk)
            if first_difference is None:
                at = expected.first_difference(chunk)
                first_difference = None if at is None else received + at
            received += len(chunk)

    sender = asyncio.create_task(send())
    try:
        await receive()
        if received < size and sender.done() and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]
        await sender
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, StreamingError):
            await sender
        await conn.aclose()
    return ConnectionTransfer(port=conn.port, sent=sent, received=received, sent_sha256=sent_hash.hexdigest(),
                              received_sha256=received_hash.hexdigest(), error_text=conn.error_text,
                              first_difference=first_difference)


class _Expected:
    """The seeded payload again, consumed in step with the echo."""

    def __init__(self, size: int, seed: int) -> None:
        self._chunks = payload_chunks(size, seed)
        self._buffer = b""

    def first_difference(self, chunk: bytes) -> int | None:
        while len(self._buffer) < len(chunk):
            more = next(self._chunks, None)
            if more is None:
                break
            self._buffer += more
        want, self._buffer = self._buffer[: len(chunk)], self._buffer[len(chunk) :]
        if chunk == want:
            return None
        return next((i for i, (a, b) in enumerate(zip(chunk, want, strict=False)) if a != b), len(want))


async def port_forward_echo(endpoint: Endpoint, namespace: str, pod: str, port: int, *, protocol: str = "spdy",
                            size: int = 1024 * 1024, connections: int = 1,
                            timeouts: Timeouts | None = None) -> PortForwardResult:
    """Forward ``connections`` concurrent connections to an echo ``port``; each must echo ``size`` bytes."""
    deadline = Deadline(timeouts or Timeouts())
    session = await open_port_forward(endpoint, namespace, pod, protocol=protocol, deadline=deadline)
    evidence = session.evidence
    started = time.monotonic()

    def first_byte() -> None:
        if evidence.timings.first_byte_s is None:
            evidence.timings.first_byte_s = deadline.elapsed()

    try:
        try:
            async with asyncio.timeout(deadline.remaining()):
                async def one(index: int) -> ConnectionTransfer:
                    conn = await session.connect(port)
                    return await echo_transfer(conn, size, seed=index, on_first_byte=first_byte)

                transfers = await asyncio.gather(*(one(i) for i in range(connections)))
        except TimeoutError as exc:
            raise PhaseTimeout(Phase.STREAM, deadline.timeouts.total, total=True) from exc
    except StreamingError as exc:
        exc.evidence = evidence
        raise
    except Exception as exc:
        raise map_exception(exc, phase=Phase.STREAM, evidence=evidence) from exc
    finally:
        await session.aclose()
        evidence.timings.total_s = deadline.elapsed()
    seconds = time.monotonic() - started
    result = PortForwardResult(protocol=session.protocol.value, negotiated=session.negotiated,
                               connections=list(transfers), seconds=seconds, evidence=evidence)
    evidence.bytes_sent = sum(t.sent for t in transfers)
    evidence.bytes_verified = sum(t.received for t in transfers if t.byte_exact)
    evidence.notes.append(f"{connections} connection(s) x {size} B echoed in {seconds:.3f}s")
    bad = [t for t in transfers if not t.byte_exact]
    if bad:
        raise transfer_failure(bad, connections, evidence)
    return result


def transfer_failure(bad: list[ConnectionTransfer], connections: int, evidence: Evidence) -> StreamingError:
    """Different bytes (with the first differing offset) outrank a short echo; a clean short echo is Truncated
    ("N of M bytes"): a reset would have raised while reading."""
    error = f", error: {bad[0].error_text}" if bad[0].error_text else ""
    wrong = [t for t in bad if t.first_difference is not None and t.first_difference < t.received]
    if wrong:
        t = wrong[0]
        return DataMismatch(f"{len(bad)} of {connections} connections not byte-exact: port {t.port} echoed a "
                            f"different byte at offset {t.first_difference} ({t.received} of {t.sent} bytes "
                            f"arrived){error}", phase=Phase.STREAM, evidence=evidence)
    t = bad[0]
    if t.received < t.sent:
        return Truncated(f"{len(bad)} of {connections} connections ended early: {t.received} of {t.sent} bytes "
                         f"echoed{error}", phase=Phase.STREAM, evidence=evidence)
    return DataMismatch(f"{len(bad)} of {connections} connections not byte-exact: {t.received} bytes echoed for "
                        f"{t.sent} sent{error}", phase=Phase.STREAM, evidence=evidence)
