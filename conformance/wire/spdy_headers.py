"""SPDY/3 name/value header blocks and their zlib compression (PROTOCOLS.md sections 1.3 and 1.4).

A decoded header list is a tuple of ``(name, value)`` pairs in wire order; a name sent with several
NUL-joined values appears once per value, as Go's ``http.Header.Add`` would store it. Names and
values are ``str`` decoded as UTF-8 with ``surrogateescape``, so any byte string round-trips.

One ``HeaderCompressor`` and one ``HeaderDecompressor`` exist per connection and direction: the
zlib stream is shared by every SYN_STREAM, SYN_REPLY and HEADERS frame and is never reset.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

from conformance.wire import limits
from conformance.wire.errors import HeaderBlockTooLarge, LocalProtocolError, RemoteProtocolError
from conformance.wire.spdy_dictionary import SPDY3_DICTIONARY

HeaderList = tuple[tuple[str, str], ...]
HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]

# spdystream rejects these names (its invalidReqHeaders / invalidRespHeaders) and drops the session.
FORBIDDEN_REQUEST_HEADERS = frozenset({"connection", "host", "keep-alive", "proxy-connection", "transfer-encoding"})
FORBIDDEN_RESPONSE_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding"})

_U32 = struct.Struct(">I")
_VALUE_SEPARATOR = "\x00"
# Go's BestCompression, memLevel 9: reproduces the PROTOCOLS.md vectors byte for byte.
_COMPRESSION_LEVEL = 9
_MEM_LEVEL = 9


def _to_wire(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _from_wire(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def normalize_headers(headers: HeadersLike) -> HeaderList:
    """Turn a mapping or pair iterable into the canonical tuple form (no validation)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name), str(value)) for name, value in items)


def header_value(headers: HeaderList, name: str) -> str | None:
    """First value of ``name``, matched case-insensitively as Go does (PROTOCOLS.md section 1.3)."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def check_header_list(headers: HeaderList, forbidden: frozenset[str]) -> None:
    """Validate headers we are about to send; raises LocalProtocolError. The Go rules come first."""
    for name, value in headers:
        # PROTOCOLS.md 1.3, hard rule with Go peers: "if a received name is not all lowercase,
        # spdystream's parser returns an error for the whole frame ... the connection dies."
        if name != name.lower():
            raise LocalProtocolError(f"header name {name!r} is not lowercase; Go peers drop the session")
        if not name or _VALUE_SEPARATOR in name:
            raise LocalProtocolError(f"invalid header name {name!r}")
        if _VALUE_SEPARATOR in value:
            raise LocalProtocolError(f"header {name!r}: NUL separates values; pass each value as a pair")
        if name in forbidden:
            raise LocalProtocolError(f"header {name!r} is refused by spdystream in this frame type")


def encode_nv_block(headers: HeaderList) -> bytes:
    """Serialise an (unvalidated) header list: repeated names are joined with NUL, first-seen order."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    out = [_U32.pack(len(grouped))]
    for name, values in grouped.items():
        raw_name = _to_wire(name)
        raw_value = _to_wire(_VALUE_SEPARATOR.join(values))
        out += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value]
    return b"".join(out)


def decode_nv_block(block: bytes, *, max_header_count: int = limits.MAX_HEADER_COUNT) -> HeaderList:
    """Parse one uncompressed name/value block that must use up ``block`` exactly."""
    view = memoryview(block)
    pos = 0

    def take_u32() -> int:
        nonlocal pos
        if pos + 4 > len(view):
            raise RemoteProtocolError("header block truncated")
        (value,) = _U32.unpack_from(view, pos)
        pos += 4
        return int(value)

    def take_bytes(length: int) -> bytes:
        nonlocal pos
        if length > len(view) - pos:
            raise RemoteProtocolError("header block truncated")
        pos += length
        return bytes(view[pos - length : pos])

    count = take_u32()
    if count > max_header_count:
        raise RemoteProtocolError(f"header block has {count} pairs, limit is {max_header_count}")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(count):
        name = _from_wire(take_bytes(take_u32()))
        value = _from_wire(take_bytes(take_u32()))
        # SPDY/3 2.6.10: "Header names ... MUST be lowercase"; spdystream fails the session.
        if name != name.lower():
            raise RemoteProtocolError(f"header name {name!r} is not lowercase")
        if not name:
            raise RemoteProtocolError("empty header name")
        # SPDY/3 2.6.10: "Duplicate header names are not allowed"; spdystream fails the session.
        if name in seen:
            raise RemoteProtocolError(f"header name {name!r} repeated")
        seen.add(name)
        pairs.extend((name, part) for part in value.split(_VALUE_SEPARATOR))
    if pos != len(view):
        raise RemoteProtocolError("bytes left over after the header block")
    return tuple(pairs)


class HeaderCompressor:
    """Compresses the header blocks of one direction of one connection."""

    def __init__(self, *, max_block_size: int = limits.MAX_HEADER_BLOCK_SIZE) -> None:
        self._zlib = zlib.compressobj(
            _COMPRESSION_LEVEL, zlib.DEFLATED, 15, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY
        )
        self._max_block_size = max_block_size

    def compress(self, headers: HeaderList) -> bytes:
        nv = encode_nv_block(headers)
        # Checked before touching the zlib stream, which must stay in step with the peer's.
        # We never send a block we would refuse ourselves.
        if len(nv) > self._max_block_size:
            raise LocalProtocolError(f"header block of {len(nv)} bytes exceeds {self._max_block_size}")
        # PROTOCOLS.md 1.4: each block is compressed then sync-flushed, so it ends in 00 00 ff ff
        # and the receiver can decode it without the next one.
        return self._zlib.compress(nv) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """Inflates the header blocks of one direction of one connection, with a hard output cap."""

    def __init__(
        self,
        *,
        max_block_size: int = limits.MAX_HEADER_BLOCK_SIZE,
        max_header_count: int = limits.MAX_HEADER_COUNT,
    ) -> None:
        self._zlib = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
        self._max_block_size = max_block_size
        self._max_header_count = max_header_count

    def decompress(self, payload: bytes) -> HeaderList:
        try:
            # Ask for one byte more than allowed: getting it proves the block is too big, and zlib
            # never allocates more than that however the input was crafted.
            nv = self._zlib.decompress(payload, self._max_block_size + 1)
        except zlib.error as exc:
            raise RemoteProtocolError(f"header block does not inflate: {exc}") from exc
        if len(nv) > self._max_block_size:
            raise HeaderBlockTooLarge(f"header block inflates past {self._max_block_size} bytes (zlib bomb?)")
        # PROTOCOLS.md 1.4: "Go's reader checks that the compressed block uses up exactly the
        # frame's payload". A finished zlib stream would also break every later block.
        if self._zlib.eof or self._zlib.unused_data:
            raise RemoteProtocolError("header compression stream was finished; SPDY needs sync flushes")
        return decode_nv_block(nv, max_header_count=self._max_header_count)
