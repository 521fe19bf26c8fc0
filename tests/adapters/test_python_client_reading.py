"""The Python client adapter's reading of a v4/v5 exec session, against the kubernetes client's WSClient
contract: any `update()` may deliver frames, and the close, including the one inside `peek_*`.

This reproduces the cp-download flake (a tar stream cut at a frame boundary with exit status Success):
under load, the frames that remained and the close arrived during `peek_stderr()`'s update, and a loop that
stopped as soon as the session was closed never read the stdout they carried.
"""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.adapters.python_client import read_until_closed, untar_one
from conformance.model import ErrorClass


class FakeWSClient:
    """A scripted WSClient: the n-th `update()` delivers batch n (a list of (channel, bytes) or 'close')."""

    def __init__(self, batches: list[list[tuple[int, bytes] | str]]) -> None:
        self.batches = list(batches)
        self.channels: dict[int, bytes] = {}
        self.open = True

    def is_open(self) -> bool:
        return self.open

    def update(self, timeout: float = 0) -> None:
        if not self.open or not self.batches:
            return
        for item in self.batches.pop(0):
            if item == "close":
                self.open = False
                return
            assert isinstance(item, tuple)
            channel, data = item
            self.channels[channel] = self.channels.get(channel, b"") + data

    def _peek(self, channel: int) -> bytes:
        self.update()
        return self.channels.get(channel, b"")

    def _read(self, channel: int) -> bytes:
        if channel not in self.channels:
            self._peek(channel)
        return self.channels.pop(channel, b"")

    def peek_stdout(self, timeout: float = 0) -> bytes:
        return self._peek(1)

    def read_stdout(self, timeout: float | None = None) -> bytes:
        return self._read(1)

    def peek_stderr(self, timeout: float = 0) -> bytes:
        return self._peek(2)

    def read_stderr(self, timeout: float | None = None) -> bytes:
        return self._read(2)


def test_output_that_arrives_with_the_close_inside_peek_stderr_is_kept() -> None:
    # update #1 (loop top): A; #2 (peek_stdout): nothing; #3 (peek_stderr): B, the status and the close.
    resp = FakeWSClient([[(1, b"A" * 10240)], [], [(1, b"B" * 10240), (3, b"{}"), "close"]])
    out, err, closed = read_until_closed(resp, 5)
    assert closed and out == b"A" * 10240 + b"B" * 10240 and err == b""


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([1, 2]), max_size=4), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=40),
)
def test_every_byte_on_every_channel_is_read_whatever_update_delivers_it(
    layout: list[list[int]], close_at: int
) -> None:
    batches: list[list[tuple[int, bytes] | str]] = []
    want = {1: b"", 2: b""}
    for i, channels in enumerate(layout):
        batch: list[tuple[int, bytes] | str] = []
        for j, channel in enumerate(channels):
            data = bytes([i, j, channel]) * 100
            want[channel] += data
            batch.append((channel, data))
        batches.append(batch)
    batches.insert(min(close_at, len(batches)), [])
    batches[-1] = [*batches[-1], "close"]
    out, err, closed = read_until_closed(FakeWSClient(batches), 60)
    assert closed and out == want[1] and err == want[2]


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


FILE = bytes(range(256)) * 64
ARCHIVE = _tar("down.bin", FILE)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=0, max_value=512 + len(FILE) - 1))
def test_a_tar_stream_cut_after_n_bytes_is_truncated(n: int) -> None:
    problem, data = untar_one(ARCHIVE[:n], "down.bin")
    assert problem is not None and data == b""
    cls, message = problem
    assert cls is ErrorClass.TRUNCATED, message
    if n >= 512:
        assert f"{n - 512} of {len(FILE)} bytes" in message


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=512, max_value=512 + len(FILE) - 1))
def test_a_tar_stream_corrupted_in_the_content_differs(n: int) -> None:
    """tar carries no checksum over the content: the bytes arrive, and the digest check sees them differ."""
    from probes.common import verify_bytes

    bad = bytearray(ARCHIVE)
    bad[n] ^= 0xFF
    problem, data = untar_one(bytes(bad), "down.bin")
    assert problem is None
    verdict = verify_bytes(FILE, data)
    assert verdict is not None and verdict[0] is ErrorClass.DATA_MISMATCH and f"offset {n - 512} " in verdict[1]


def test_the_whole_stream_untars() -> None:
    assert untar_one(ARCHIVE, "down.bin") == (None, FILE)


class ScriptedExec(FakeWSClient):
    """A WSClient for exec: records stdin and the v5 half-close; `cat` answers only after end of input."""

    def __init__(self, subprotocol: str, exits_on_eof: bool = True) -> None:
        super().__init__([])
        self.subprotocol = subprotocol
        self.sock = type("Sock", (), {"subprotocol": subprotocol, "connected": True})()
        self.stdin = b""
        self.half_closed = False
        self.exits_on_eof = exits_on_eof
        self.returncode = 0

    def write_stdin(self, data: bytes) -> None:
        self.stdin += data

    def close_channel(self, channel: int) -> None:
        assert self.subprotocol == "v5.channel.k8s.io" and channel == 0
        self.half_closed = True
        if self.exits_on_eof:
            self.batches = [[(1, self.stdin), "close"]]

    def close(self) -> None:
        self.open = False


def _run_probe(monkeypatch: object, resp: ScriptedExec) -> object:
    import asyncio

    import conformance.adapters.python_client as pc
    from conformance.adapters.base import Session
    from conformance.config import Endpoint, Workload
    from probes.common import ProbeContext
    from probes.exec import probe_exec_stdin

    monkeypatch.setattr(pc, "_api", lambda s: type("Api", (), {"connect_get_namespaced_pod_exec": None})())  # type: ignore[attr-defined]
    monkeypatch.setattr(pc, "stream", lambda *a, **k: resp)  # type: ignore[attr-defined]
    session = Session(endpoint=Endpoint(server="https://127.0.0.1:1"), token="t", namespace="ns", user_agent="u",
                      timeout_s=3)
    ctx = ProbeContext(client=pc.PythonClientAdapter(), session=session,
                       workload=Workload(namespace="ns", pods=("p",), container="c", port=8080), protocol="ws-v4",
                       marker="m")
    return asyncio.run(probe_exec_stdin(ctx))


def test_python_exec_stdin_on_v5_really_half_closes(monkeypatch: object) -> None:
    resp = ScriptedExec("v5.channel.k8s.io")
    obs = _run_probe(monkeypatch, resp)
    assert resp.half_closed and obs.error_class is ErrorClass.NONE and not obs.skipped  # type: ignore[attr-defined]
    assert "stdin half-closed (v5 CLOSE signal)" in obs.evidence.notes  # type: ignore[attr-defined]


def test_python_exec_stdin_on_v4_is_a_declared_skip_never_a_pass(monkeypatch: object) -> None:
    resp = ScriptedExec("v4.channel.k8s.io")
    obs = _run_probe(monkeypatch, resp)
    assert obs.skipped and "has no half-close" in obs.message  # type: ignore[attr-defined]
    assert not resp.half_closed


def test_python_exec_stdin_half_closed_but_never_exiting_is_eof_lost(monkeypatch: object) -> None:
    resp = ScriptedExec("v5.channel.k8s.io", exits_on_eof=False)
    obs = _run_probe(monkeypatch, resp)
    assert resp.half_closed and obs.error_class is ErrorClass.EOF_LOST  # type: ignore[attr-defined]


class SocketGoneWSClient(FakeWSClient):
    """websocket-client dropped its socket under the WSClient: the next update() raises, as the library does."""

    def update(self, timeout: float = 0) -> None:
        if self.open and not self.batches:
            from websocket import WebSocketConnectionClosedException

            raise WebSocketConnectionClosedException("socket is already closed.")
        super().update(timeout)


def test_a_socket_dropped_under_the_client_ends_the_session_and_keeps_what_arrived() -> None:
    resp = SocketGoneWSClient([[(1, b"out-1 ")], [(1, b"out-2"), (2, b"err")]])
    out, err, closed = read_until_closed(resp, 5)
    assert (out, err, closed) == (b"out-1 out-2", b"err", True)


class NoStatusExec(ScriptedExec):
    """A session that closed without a Status on the error channel: the kubernetes client's `returncode` then
    fails inside its own parsing (it subscripts what it read, which is None)."""

    @property
    def returncode(self) -> int:
        raise TypeError("'NoneType' object is not subscriptable")

    @returncode.setter
    def returncode(self, value: int) -> None:
        pass


def test_a_session_without_an_exit_status_is_missing_exit_status_not_a_crash(monkeypatch: object) -> None:
    import asyncio

    import conformance.adapters.python_client as pc
    from conformance.adapters.base import Session
    from conformance.config import Endpoint

    resp = NoStatusExec("v4.channel.k8s.io")
    resp.batches = [[(1, b"hello\n")], ["close"]]
    monkeypatch.setattr(pc, "_api", lambda s: type("Api", (), {"connect_get_namespaced_pod_exec": None})())  # type: ignore[attr-defined]
    monkeypatch.setattr(pc, "stream", lambda *a, **k: resp)  # type: ignore[attr-defined]
    session = Session(endpoint=Endpoint(server="https://127.0.0.1:1"), token="t", namespace="ns", user_agent="u",
                      timeout_s=3)
    result = asyncio.run(pc.PythonClientAdapter().exec(session, "p", "c", ["echo", "hello"], protocol="ws-v4"))
    assert result.error_class is ErrorClass.MISSING_EXIT_STATUS
    assert result.stdout == b"hello\n" and result.exit_code is None
