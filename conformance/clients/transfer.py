"""Byte-exact echo transfers over forwarded connections: ``port_forward_echo``.

The payload is generated chunk by chunk from a seeded PRNG and hashed as it leaves; the echo is hashed
as it arrives. Nothing holds the whole payload, so 256 MiB costs a few chunks of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Iterator

from conformance.clients.portforward import ForwardedConnection, open_port_forward
from conformance.clients.results import ConnectionTransfer, PortForwardResult
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import ConnectionReset, DataMismatch, StreamingError, map_exception
from conformance.transport.timeouts import Deadline, Phase, PhaseTimeout, Timeouts

CHUNK = 256 * 1024


def payload_chunks(size: int, seed: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes (not secret: a test pattern that shows reordering)."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


async def echo_transfer(conn: ForwardedConnection, size: int, *, seed: int = 0,
                        on_first_byte: object = None) -> ConnectionTransfer:
    """Send ``size`` bytes and read the echo concurrently; compare counts and sha256."""
    sent_hash, received_hash = hashlib.sha256(), hashlib.sha256()
    sent = received = 0

    async def send() -> None:
        nonlocal sent
        for chunk in payload_chunks(size, seed):
            sent_hash.update(chunk)
            await conn.write(chunk)
            sent += len(chunk)
        await conn.close_write()

    async def receive() -> None:
        nonlocal received
        # Stop at the expected size: whether our FIN reaches the pod's socket as a half-close is the
        # server's business (kwok, for one, never passes it on), so waiting for EOF could hang.
        while received < size:
            chunk = await conn.read()
            if not chunk:
                break
            received_hash.update(chunk)
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
                              received_sha256=received_hash.hexdigest(), error_text=conn.error_text)


async def port_forward_echo(endpoint: Endpoint, namespace: str, pod: str, port: int, *, protocol: str = "spdy",
                            size: int = 1024 * 1024, connections: int = 1,
                            timeouts: Timeouts | None = None) -> PortForwardResult:
    """Forward ``connections`` concurrent connections to an echo ``port``; each must echo ``size`` bytes."""
    deadline = Deadline(timeouts or Timeouts())
    session = await open_port_forward(endpoint, namespace, pod, protocol=protocol, deadline=deadline)
    evidence = session.evidence
    started = time.monotonic()
    try:
        try:
            async with asyncio.timeout(deadline.remaining()):
                async def one(index: int) -> ConnectionTransfer:
                    conn = await session.connect(port)
                    return await echo_transfer(conn, size, seed=index)

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
        t = bad[0]
        cls = ConnectionReset if t.received < t.sent else DataMismatch
        raise cls(f"{len(bad)} of {connections} connections not byte-exact (first: sent {t.sent} B, echoed "
                  f"{t.received} B{', error: ' + t.error_text if t.error_text else ''})",
                  phase=Phase.STREAM, evidence=evidence)
    return result
