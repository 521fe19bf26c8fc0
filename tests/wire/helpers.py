"""Shared test helpers for the wire codecs: a raw frame factory, chunking patterns, a linked pair."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings

from conformance.wire.role import Role
from conformance.wire.spdy_connection import Event, SpdyConnection
from conformance.wire.spdy_frames import SynReply, SynStream
from conformance.wire.spdy_headers import HeaderCompressor, HeaderList

# Fuzz budgets sized for CI: the whole wire suite stays well under 20 s. For a deep run locally:
# WIRE_FUZZ_EXAMPLES=20000 python -m pytest tests/wire
FUZZ = settings(
    max_examples=int(os.environ.get("WIRE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- raw frame factory (for invalid wire data the codec itself refuses to build) ------------------


def control_frame(frame_type: int, payload: bytes = b"", *, flags: int = 0, version: int = 3) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, frame_type, flags << 24 | len(payload)) + payload


def data_frame(stream_id: int, payload: bytes = b"", *, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id, flags << 24 | len(payload)) + payload


def u32(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v) for v in values)


def syn_stream_raw(
    stream_id: int, headers: HeaderList = (), *, compressor: HeaderCompressor | None = None, flags: int = 0
) -> bytes:
    block = (compressor or HeaderCompressor()).compress(headers)
    return control_frame(1, u32(stream_id, 0) + b"\x00\x00" + block, flags=flags)


def headers_raw(
    frame_type: int, stream_id: int, headers: HeaderList = (), *, compressor: HeaderCompressor, flags: int = 0
) -> bytes:
    return control_frame(frame_type, u32(stream_id) + compressor.compress(headers), flags=flags)


# --- chunking patterns -------------------------------------------------------------------------------


def chunkings(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Whole, byte by byte, and split in two at every offset."""
    yield "whole", [data]
    yield "byte-by-byte", [data[i : i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield f"split@{cut}", [data[:cut], data[cut:]]


def drain(feed: Callable[[bytes], None], pull: Callable[[], object | None], chunks: list[bytes]) -> list[object]:
    """Feed chunks one at a time, pulling every available item after each."""
    out: list[object] = []
    for chunk in chunks:
        feed(chunk)
        while (item := pull()) is not None:
            out.append(item)
    return out


# --- a client and a server SPDY connection joined by an in-memory link --------------------------------


@dataclass
class LinkedPair:
    client: SpdyConnection = field(default_factory=lambda: SpdyConnection(Role.CLIENT))
    server: SpdyConnection = field(default_factory=lambda: SpdyConnection(Role.SERVER))

    def to_server(self, data: bytes) -> list[Event]:
        self.server.receive_data(data)
        return list(self.server.events())

    def to_client(self, data: bytes) -> list[Event]:
        self.client.receive_data(data)
        return list(self.client.events())

    def open_stream(self, headers: HeaderList = ()) -> int:
        """Client opens a stream and the server replies, as Kubernetes does."""
        sid = self.client.next_stream_id
        assert [type(e) for e in self.to_server(self.client.send_syn_stream(sid, headers))] == [SynStream]
        assert self.to_client(self.server.send_reply(sid)) == [SynReply(stream_id=sid)]
        return sid
