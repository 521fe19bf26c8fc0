"""Every size and count limit of the wire codecs, named, with the reason for its value.

Codecs take these as defaults and accept overrides (``SpdyLimits`` for the SPDY connection, keyword
arguments elsewhere). Each limit is checked in exactly one place; tests cover N and N+1.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB

# --- SPDY/3 -----------------------------------------------------------------------------------------

# The frame length field is 24 bits wide: nothing longer can be expressed on the wire at all.
SPDY_WIRE_MAX_PAYLOAD = 0xFFFFFF

# SPDY/3 section 2.2.1: "receivers MUST accept control frames of at least 8192 bytes". Kubernetes
# sends a handful of short headers, so 1 MiB is generous while keeping one frame's buffer bounded.
MAX_CONTROL_FRAME_PAYLOAD = 1 * MiB

# Go peers copy through 32 KiB io.Copy buffers, so their data frames are small; 1 MiB leaves room
# for other writers while bounding what one frame can make us buffer.
MAX_DATA_FRAME_PAYLOAD = 1 * MiB

# We split outgoing data into frames of at most this size: what Go's io.Copy produces, and well
# under any receiver's limit.
SEND_DATA_CHUNK = 32 * KiB

# Decompressed size of one name/value block. The zlib-bomb cap: a 1 MiB frame of compressed zeros
# would otherwise inflate to about 1 GiB.
MAX_HEADER_BLOCK_SIZE = 256 * KiB

# Name/value pairs in one block. Kubernetes sends at most three (streamtype, port, requestid).
MAX_HEADER_COUNT = 256

# Streams open at once (either side). Exec uses five and port-forward two per connection.
MAX_CONCURRENT_STREAMS = 1024

# Closed streams we remember, so frames still in flight after a RST are told apart from frames on
# streams that ended cleanly (a peer error). Older ids are forgotten and their frames ignored.
MAX_REMEMBERED_CLOSED_STREAMS = 1024

# Our own PINGs awaiting an echo. Go clients ping every 5-10 s; 64 unanswered means a dead peer.
MAX_OUTSTANDING_PINGS = 64

# Bytes held by receive_data() before events are drained: one maximal frame plus one 64 KiB read.
MAX_RECEIVE_BUFFER = MAX_DATA_FRAME_PAYLOAD + 8 + 64 * KiB

# --- remotecommand / channels ----------------------------------------------------------------------

# One metav1.Status JSON document on the error stream/channel. Real ones are under 1 KiB; the cap
# bounds what a misbehaving server can make us accumulate.
MAX_STATUS_SIZE = 64 * KiB

# Unparsed bytes of the newline-delimited resize stream. One object is about 30 bytes.
MAX_RESIZE_BUFFER = 4 * KiB

# Exec/attach channels: stdin, stdout, stderr, error, resize. v5 CLOSE may only name these.
EXEC_CHANNEL_COUNT = 5

# --- port-forward ----------------------------------------------------------------------------------

# Port-forward streams waiting for their partner (data/error pair by requestid). The Go server drops
# a pair after 30 s; this bounds what a peer opening only halves can make us hold meanwhile.
MAX_PENDING_PORT_FORWARD_PAIRS = 1024

# Ports on one legacy WebSocket port-forward: channel 2i+1 must fit the one-byte channel prefix.
MAX_WEBSOCKET_FORWARDED_PORTS = 127

# Most bytes we put in one WebSocket message when tunnelling SPDY (KEP-4006). Boundaries carry no
# meaning there; this only keeps single messages modest.
MAX_TUNNEL_MESSAGE = 64 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class SpdyLimits:
    """Per-connection overrides of the SPDY limits above."""

    max_control_frame_payload: int = MAX_CONTROL_FRAME_PAYLOAD
    max_data_frame_payload: int = MAX_DATA_FRAME_PAYLOAD
    send_data_chunk: int = SEND_DATA_CHUNK
    max_header_block_size: int = MAX_HEADER_BLOCK_SIZE
    max_header_count: int = MAX_HEADER_COUNT
    max_concurrent_streams: int = MAX_CONCURRENT_STREAMS
    max_remembered_closed_streams: int = MAX_REMEMBERED_CLOSED_STREAMS
    max_outstanding_pings: int = MAX_OUTSTANDING_PINGS
    max_receive_buffer: int = MAX_RECEIVE_BUFFER

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 1:
                raise ValueError(f"SpdyLimits.{name} must be at least 1")
        for name in ("max_control_frame_payload", "max_data_frame_payload", "send_data_chunk"):
            if getattr(self, name) > SPDY_WIRE_MAX_PAYLOAD:
                raise ValueError(f"SpdyLimits.{name} exceeds the 24-bit length field")
