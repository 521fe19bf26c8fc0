"""Name/value blocks and their zlib contexts: PROTOCOLS.md 1.3-1.4 vectors, limits, zlib bombs."""

from __future__ import annotations

import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire.errors import HeaderBlockTooLarge, LocalProtocolError, RemoteProtocolError
from conformance.wire.spdy_dictionary import SPDY3_DICTIONARY, SPDY3_DICTIONARY_ADLER32
from conformance.wire.spdy_frames import SynReply, SynStream
from conformance.wire.spdy_headers import (
    HeaderCompressor,
    HeaderDecompressor,
    check_header_list,
    decode_nv_block,
    encode_nv_block,
    header_value,
)

from .helpers import FUZZ, QUICK, u32

# The team's shared reference sits beside the repository (as it does for developers and CI).
REFERENCE_DICTIONARY = Path(__file__).resolve().parents[3] / "shared" / "reference" / "spdy3_dictionary.hex"
# PROTOCOLS.md 1.4: the uncompressed NV block of the first client SYN_STREAM vector.
STREAMTYPE_ERROR_NV = bytes.fromhex("00000001 0000000a 73747265616d74797065 00000005 6572726f72")
STREAMTYPE_ERROR_BLOCK = bytes.fromhex("78f9e3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff")
EMPTY_BLOCK = bytes.fromhex("78f9e3c6a7c202a6230600000000ffff")

names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: not c.isupper()), min_size=1)
values = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))


def test_dictionary_facts() -> None:
    # PROTOCOLS.md 1.4: "It is 1423 bytes long and its Adler-32 ... is 0xe3c6a7c2."
    assert len(SPDY3_DICTIONARY) == 1423
    assert zlib.adler32(SPDY3_DICTIONARY) == SPDY3_DICTIONARY_ADLER32
    assert SPDY3_DICTIONARY.startswith(b"\x00\x00\x00\x07options")
    assert SPDY3_DICTIONARY.endswith(b",enq=0.")


@pytest.mark.skipif(not REFERENCE_DICTIONARY.exists(), reason="shared reference file not present")
def test_dictionary_matches_reference_file() -> None:
    assert bytes.fromhex(REFERENCE_DICTIONARY.read_text()) == SPDY3_DICTIONARY


def test_nv_block_vector() -> None:
    assert encode_nv_block((("streamtype", "error"),)) == STREAMTYPE_ERROR_NV
    assert decode_nv_block(STREAMTYPE_ERROR_NV) == (("streamtype", "error"),)


def test_compressor_vectors_first_block_then_context_continues() -> None:
    assert HeaderCompressor().compress((("streamtype", "error"),)) == STREAMTYPE_ERROR_BLOCK
    assert HeaderCompressor().compress(()) == EMPTY_BLOCK
    compressor, decompressor = HeaderCompressor(), HeaderDecompressor()
    for headers in [(("streamtype", "error"),), (("streamtype", "stdout"),), ()]:
        block = compressor.compress(headers)
        assert block.endswith(b"\x00\x00\xff\xff")  # sync flush
        assert decompressor.decompress(block) == headers


def test_decompressor_reads_vector() -> None:
    assert HeaderDecompressor().decompress(STREAMTYPE_ERROR_BLOCK) == (("streamtype", "error"),)


def test_multiple_values_join_with_nul_and_split_back() -> None:
    headers = (("a", "1"), ("b", "x"), ("a", "2"))
    block = encode_nv_block(headers)
    assert block == u32(2, 1) + b"a" + u32(3) + b"1\x002" + u32(1) + b"b" + u32(1) + b"x"
    assert decode_nv_block(block) == (("a", "1"), ("a", "2"), ("b", "x"))


def test_header_value_is_case_insensitive() -> None:
    assert header_value((("streamtype", "data"),), "streamType") == "data"
    assert header_value((), "port") is None


@pytest.mark.parametrize(
    ("headers", "forbidden", "match"),
    [
        ((("streamType", "error"),), frozenset(), "lowercase"),
        ((("", "x"),), frozenset(), "invalid header name"),
        ((("a", "x\x00y"),), frozenset(), "NUL"),
        ((("host", "h"),), frozenset({"host"}), "refused"),
    ],
)
def test_check_header_list_refuses(headers: tuple[tuple[str, str], ...], forbidden: frozenset[str], match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        check_header_list(headers, forbidden)


def test_frames_refuse_headers_go_rejects() -> None:
    # spdystream: invalidReqHeaders for SYN_STREAM, invalidRespHeaders (no "host") for SYN_REPLY.
    with pytest.raises(LocalProtocolError):
        SynStream(stream_id=1, headers=(("host", "x"),))
    with pytest.raises(LocalProtocolError):
        SynReply(stream_id=1, headers=(("transfer-encoding", "x"),))
    assert SynReply(stream_id=1, headers=(("host", "x"),)).headers == (("host", "x"),)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (u32(1, 1) + b"A" + u32(0), "not lowercase"),
        (u32(2, 1) + b"a" + u32(0) + u32(1) + b"a" + u32(0), "repeated"),
        (u32(1, 0) + u32(0), "empty header name"),
        (u32(0) + b"x", "left over"),
        (u32(1, 5) + b"ab", "truncated"),
    ],
)
def test_decode_refuses(block: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        decode_nv_block(block)


def test_every_truncation_is_refused() -> None:
    for cut in range(len(STREAMTYPE_ERROR_NV)):
        with pytest.raises(RemoteProtocolError):
            decode_nv_block(STREAMTYPE_ERROR_NV[:cut])


def test_header_count_limit_n_and_n_plus_one() -> None:
    block = encode_nv_block(tuple((f"h{i}", "") for i in range(8)))
    assert len(decode_nv_block(block, max_header_count=8)) == 8
    with pytest.raises(RemoteProtocolError, match="limit is 7"):
        decode_nv_block(block, max_header_count=7)


def test_block_size_limit_n_and_n_plus_one() -> None:
    headers = (("x", "y" * 100),)
    size = len(encode_nv_block(headers))
    assert HeaderDecompressor(max_block_size=size).decompress(HeaderCompressor().compress(headers)) == headers
    with pytest.raises(HeaderBlockTooLarge):
        HeaderDecompressor(max_block_size=size - 1).decompress(HeaderCompressor().compress(headers))


def test_compressor_refuses_oversized_block_before_touching_zlib() -> None:
    compressor = HeaderCompressor(max_block_size=32)
    with pytest.raises(LocalProtocolError):
        compressor.compress((("x", "y" * 100),))
    # The context is still in step with a fresh decompressor.
    assert HeaderDecompressor().decompress(compressor.compress((("a", "b"),))) == (("a", "b"),)


def test_zlib_bomb_is_refused_with_bounded_memory() -> None:
    # 64 MiB of zeros compresses to about 64 KiB; the cap stops inflation at 256 KiB + 1.
    bomb_nv = u32(1, 1) + b"x" + u32(64 * 1024 * 1024)
    comp = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY)
    parts = [comp.compress(bomb_nv)]
    zeros = bytes(1024 * 1024)
    parts += [comp.compress(zeros) for _ in range(64)]
    payload = b"".join(parts) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert len(payload) < 128 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(HeaderBlockTooLarge):
            HeaderDecompressor().decompress(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024


def test_finished_zlib_stream_is_refused() -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY)
    finished = comp.compress(STREAMTYPE_ERROR_NV) + comp.flush(zlib.Z_FINISH)
    with pytest.raises(RemoteProtocolError, match="finished"):
        HeaderDecompressor().decompress(finished)


def test_block_without_dictionary_or_garbage_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="inflate"):
        HeaderDecompressor().decompress(b"\x00garbage\xff" * 3)
    with pytest.raises(RemoteProtocolError):
        HeaderDecompressor().decompress(zlib.compress(STREAMTYPE_ERROR_NV))  # no FDICT: different stream


def test_unflushed_block_is_refused() -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY)
    stranded = comp.compress(STREAMTYPE_ERROR_NV)  # no sync flush: bytes stay in the compressor
    with pytest.raises(RemoteProtocolError):
        HeaderDecompressor().decompress(stranded)


@QUICK
@given(st.lists(st.tuples(names, values), max_size=12))
def test_round_trip_through_shared_contexts(pairs: list[tuple[str, str]]) -> None:
    headers = tuple(pairs)
    compressor, decompressor = HeaderCompressor(), HeaderDecompressor()
    for _ in range(2):  # the second block exercises the continued context
        decoded = decompressor.decompress(compressor.compress(headers))
        expected: dict[str, list[str]] = {}
        for name, value in headers:
            expected.setdefault(name, []).append(value)
        assert decoded == tuple((n, v) for n, vs in expected.items() for v in vs)


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_nv_blocks_only_raise_remote_protocol_error(data: bytes) -> None:
    try:
        decode_nv_block(data)
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=512), st.booleans())
def test_arbitrary_compressed_blocks_only_raise_remote_protocol_error(data: bytes, prefix: bool) -> None:
    decompressor = HeaderDecompressor(max_block_size=4096)
    try:
        if prefix:  # get past the zlib header so the fuzz reaches inflate and the NV parser
            decompressor.decompress(STREAMTYPE_ERROR_BLOCK)
        decompressor.decompress(data)
    except RemoteProtocolError:
        pass
