"""``ByteStream``: one bidirectional byte stream (TCP, TLS, or TLS through a CONNECT tunnel).

A thin adapter over asyncio's StreamReader/StreamWriter that adds what evidence needs (byte
counters, the first bytes the peer sent) and what the house style needs (a deadline on every read,
drain and close; a push-back buffer for bytes an HTTP parser read past the 101).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from conformance.transport.errors import MAX_BYTES_SO_FAR
from conformance.transport.timeouts import Deadline, Phase

# asyncio's reader pauses the socket above twice this: the stream's receive buffer is bounded.
READ_BUFFER_LIMIT = 256 * 1024
READ_CHUNK = 64 * 1024


class ByteStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: Deadline) -> None:
        self.reader = reader
        self.writer = writer
        self.deadline = deadline
        self.bytes_read = 0
        self.bytes_written = 0
        self.head = bytearray()  # first bytes received since mark_head(): evidence for garbage
        self._pushback = b""
        self._closed = False

    # --- reading ---------------------------------------------------------------------------------

    def unread(self, data: bytes) -> None:
        """Give back bytes a parser read past its message (e.g. SPDY frames after the 101)."""
        self._pushback = data + self._pushback
        self.bytes_read -= len(data)

    def mark_head(self) -> None:
        """Start capturing the head again (after the upgrade, the head is the new protocol's)."""
        self.head = bytearray(self._pushback[:MAX_BYTES_SO_FAR])

    async def read(self, n: int = READ_CHUNK, *, phase: Phase = Phase.STREAM, budget: float | None = None) -> bytes:
        """Up to ``n`` bytes; ``b""`` at EOF. Waits at most the phase budget (idle timeout)."""
        if self._pushback:
            data, self._pushback = self._pushback[:n], self._pushback[n:]
        else:
            async with self.deadline.phase(phase, budget):
                data = await self.reader.read(n)
            if len(self.head) < MAX_BYTES_SO_FAR:
                self.head += data[: MAX_BYTES_SO_FAR - len(self.head)]
        self.bytes_read += len(data)
        return data

    # --- writing ---------------------------------------------------------------------------------

    def write_nowait(self, data: bytes) -> None:
        """Queue bytes without waiting (atomic with respect to other writers); drain() bounds memory."""
        self.writer.write(data)
        self.bytes_written += len(data)

    async def drain(self, *, phase: Phase = Phase.STREAM) -> None:
        async with self.deadline.phase(phase):
            await self.writer.drain()

    async def write(self, data: bytes, *, phase: Phase = Phase.STREAM) -> None:
        self.write_nowait(data)
        await self.drain(phase=phase)

    def write_eof(self) -> None:
        if self.writer.can_write_eof():
            self.writer.write_eof()

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        return self.writer.transport  # type: ignore[return-value]

    @property
    def tls_version(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        return obj.version() if isinstance(obj, ssl.SSLObject) else None

    @property
    def alpn(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        return obj.selected_alpn_protocol() if isinstance(obj, ssl.SSLObject) else None

    def abort(self) -> None:
        self._closed = True
        self.writer.transport.abort()

    async def aclose(self) -> None:
        """Orderly close (TLS close_notify) within the close budget, else abort. Never raises."""
        if self._closed:
            return
        self._closed = True
        self.writer.close()
        try:
            async with asyncio.timeout(self.deadline.timeouts.close):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            self.writer.transport.abort()
        except asyncio.CancelledError:
            self.writer.transport.abort()
            raise
        with contextlib.suppress(Exception):
            # abort() is idempotent and guarantees the socket is released even after a timeout
            self.writer.transport.abort()
