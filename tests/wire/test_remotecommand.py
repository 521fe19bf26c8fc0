"""remotecommand payloads (PROTOCOLS.md 3): stream order, the error-stream Status, the resize stream."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire.errors import (
    LocalProtocolError,
    MissingExitStatus,
    RemoteCommandError,
    RemoteProtocolError,
)
from conformance.wire.remotecommand import (
    ErrorStreamDecoder,
    ExitStatus,
    RemoteCommandProtocol,
    ResizeDecoder,
    StreamType,
    TerminalSize,
    decode_status,
    encode_resize,
    encode_status_exit_code,
    encode_status_failure,
    encode_status_success,
    spdy_stream_types,
)

from .helpers import FUZZ, chunkings

SUCCESS = b'{"metadata":{},"status":"Success"}'
NON_ZERO = (
    b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
    b'error executing command [sh -c exit 2], exit code 2","reason":"NonZeroExitCode",'
    b'"details":{"causes":[{"reason":"ExitCode","message":"2"}]}}'
)
INTERNAL = (
    b'{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in '
    b'container: no such container","reason":"InternalError","code":500}'
)


@pytest.mark.parametrize(
    ("flags", "version", "expected"),
    [
        ({"stdin": True, "stdout": True, "stderr": True, "tty": False}, 4, ["error", "stdin", "stdout", "stderr"]),
        ({"stdin": True, "stdout": True, "stderr": True, "tty": True}, 4, ["error", "stdin", "stdout", "resize"]),
        ({"stdin": True, "stdout": True, "stderr": False, "tty": True}, 2, ["error", "stdin", "stdout"]),
        ({"stdin": False, "stdout": True, "stderr": False, "tty": False}, 1, ["error", "stdout"]),
    ],
)
def test_spdy_stream_order(flags: dict[str, bool], version: int, expected: list[str]) -> None:
    assert spdy_stream_types(**flags, version=version) == [StreamType(t) for t in expected]


def test_spdy_stream_order_needs_one_stream() -> None:
    with pytest.raises(LocalProtocolError):
        spdy_stream_types(stdin=False, stdout=False, stderr=False, tty=True, version=4)


def test_protocol_versions() -> None:
    assert [p.version for p in RemoteCommandProtocol] == [1, 2, 3, 4, 5, 1, 4]
    assert RemoteCommandProtocol.V4_BASE64.has_json_status and not RemoteCommandProtocol.V3.has_json_status


def test_status_vectors() -> None:
    assert decode_status(SUCCESS) == ExitStatus(exit_code=0)
    status = decode_status(NON_ZERO)
    assert status.exit_code == 2 and status.message.startswith("command terminated")
    with pytest.raises(RemoteCommandError) as exc:
        decode_status(INTERNAL)
    assert (exc.value.reason, exc.value.code) == ("InternalError", 500)
    assert "no such container" in exc.value.message


def test_encoders_reproduce_go_bytes() -> None:
    assert encode_status_success() == SUCCESS
    assert encode_status_exit_code(2, "error executing command [sh -c exit 2], exit code 2") == NON_ZERO
    assert (
        encode_status_failure("Internal error occurred: error executing command in container: no such container")
        == INTERNAL
    )
    for bad in (0, 256):
        with pytest.raises(LocalProtocolError):
            encode_status_exit_code(bad, "")


@pytest.mark.parametrize(
    "doc",
    [
        {"status": "Failure", "reason": "NonZeroExitCode"},  # no details
        {"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "Other"}]}},
        {
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "256"}]},
        },
        {
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "-1"}]},
        },
        {
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": 2}]},
        },
        {"status": "Maybe"},
        {"status": "Failure", "message": 5},
        [],
    ],
)
def test_malformed_status_is_a_protocol_error(doc: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_status(json.dumps(doc).encode())


def test_exit_code_255_is_the_top() -> None:
    assert decode_status(encode_status_exit_code(255, "x")).exit_code == 255


@pytest.mark.parametrize(("message", "code"), [("000002", 2), ("0", 0), ("9" * 5000, None), ("²", None)])
def test_exit_code_parsing_like_go_parse_uint(message: str, code: int | None) -> None:
    doc = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": message}]},
    }
    if code is None:
        with pytest.raises(RemoteProtocolError):
            decode_status(json.dumps(doc).encode())
    else:
        assert decode_status(json.dumps(doc).encode()).exit_code == code


def test_error_stream_decoder_accumulates_split_status() -> None:
    for label, chunks in chunkings(NON_ZERO[:40] + NON_ZERO[40:]):
        decoder = ErrorStreamDecoder(json_status=True)
        for chunk in chunks:
            decoder.feed(chunk)
        assert decoder.finish().exit_code == 2, label


def test_empty_error_stream() -> None:
    # STYLE.md: an error channel closed without a Status is its own error class, not exit 0.
    with pytest.raises(MissingExitStatus):
        ErrorStreamDecoder(json_status=True).finish()
    assert ErrorStreamDecoder(json_status=True).finish(empty_is_success=True) == ExitStatus(exit_code=0)
    assert ErrorStreamDecoder(json_status=False).finish() == ExitStatus(exit_code=0)


def test_v1_to_v3_text_errors() -> None:
    decoder = ErrorStreamDecoder(json_status=False)
    decoder.feed(b"command terminated with non-zero exit code: exit status 3")
    with pytest.raises(RemoteCommandError, match="exit status 3"):
        decoder.finish()


def test_error_stream_size_limit_n_and_n_plus_one() -> None:
    decoder = ErrorStreamDecoder(json_status=True, max_size=len(SUCCESS))
    decoder.feed(SUCCESS)
    assert decoder.finish().exit_code == 0
    decoder = ErrorStreamDecoder(json_status=True, max_size=len(SUCCESS) - 1)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(SUCCESS)


def test_resize_vector() -> None:
    assert encode_resize(TerminalSize(width=80, height=24)) == b'{"Width":80,"Height":24}\n'
    with pytest.raises(LocalProtocolError):
        TerminalSize(width=65536, height=1)


def test_resize_decoder() -> None:
    stream = b'{"Width":80,"Height":24}\n{"width":100,"HEIGHT":50}\n{"Width":1}'
    for label, chunks in chunkings(stream):
        decoder = ResizeDecoder()
        sizes = [size for chunk in chunks for size in decoder.feed(chunk)]
        assert sizes == [
            TerminalSize(width=80, height=24),
            TerminalSize(width=100, height=50),
            TerminalSize(width=1, height=0),
        ], label


@pytest.mark.parametrize("bad", [b"[1]\n", b'{"Width":-1}', b'{"Width":70000}', b'{"Height":"x"}', b"\xff"])
def test_resize_decoder_refuses(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ResizeDecoder().feed(bad)


def test_resize_buffer_limit_n_and_n_plus_one() -> None:
    decoder = ResizeDecoder(max_buffer=10)
    assert decoder.feed(b'{"Width": ') == []  # 10 characters, incomplete
    with pytest.raises(RemoteProtocolError):
        decoder.feed(b"1")


@FUZZ
@given(st.binary(max_size=256))
def test_arbitrary_status_only_raises_typed_errors(data: bytes) -> None:
    try:
        decode_status(data)
    except (RemoteProtocolError, RemoteCommandError):
        pass


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["status", "reason", "message", "details", "causes", "code", "x"]), inner, max_size=4
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_status_json_only_raises_typed_errors(doc: object) -> None:
    try:
        decode_status(json.dumps(doc).encode())
    except (RemoteProtocolError, RemoteCommandError):
        pass


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_arbitrary_resize_input_only_raises_remote_protocol_error(chunks: list[bytes]) -> None:
    decoder = ResizeDecoder(max_buffer=64)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except RemoteProtocolError:
        pass
