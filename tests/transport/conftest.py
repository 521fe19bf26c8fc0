"""Fixtures: one in-process fake server (TLS, own thread) per session, and leak checks per test."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conformance.lab.pki import Pki, ensure_pki
from conformance.transport.endpoint import Endpoint
from tests.transport.fake_server import FakeServer, Fault

T = TypeVar("T")
TEST_TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def server_process(pki: Pki) -> Iterator[FakeServer]:
    server = FakeServer(pki.serving.kube_apiserver.cert, pki.serving.kube_apiserver.key).start()
    yield server
    server.stop()


def _fds() -> set[str]:
    return {fd for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def server(server_process: FakeServer) -> Iterator[FakeServer]:
    """The fake server with its fault reset; after the test: it is idle and we hold no new fds."""
    server_process.fault = Fault()
    assert server_process.wait_idle(), "a previous test left a connection open"
    before = _fds()
    yield server_process
    assert server_process.wait_idle(), "the server still holds a connection: the client did not close it"
    # An fd number can be reused by an unrelated open; only sockets count as leaks here. A socket whose
    # transport is closing is released a moment later (a callback, or the collector under load): a leak is
    # one still open after a second.
    deadline = time.monotonic() + 1.0
    while (sockets := {fd for fd in _fds() - before if _is_socket(fd)}) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert not sockets, f"file descriptors left open: {sockets}"


def _is_socket(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:
        return False


@pytest.fixture
def endpoint(server_process: FakeServer, pki: Pki) -> Endpoint:
    return Endpoint(server=f"https://127.0.0.1:{server_process.port}", ca_file=str(pki.ca.cert), token=TEST_TOKEN)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a client coroutine; afterwards no task of ours may be left on the loop."""

    async def checked() -> T:
        result = await coro
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not left, f"tasks left behind: {left}"
        return result

    return asyncio.run(checked())


def run_expecting(coro: Coroutine[Any, Any, Any], error: type[BaseException]) -> BaseException:
    """Run a coroutine that must raise ``error``; check no task is left either way."""

    async def checked() -> BaseException:
        try:
            await coro
        except error as exc:
            caught: BaseException = exc
        else:
            raise AssertionError(f"expected {error.__name__}")
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not left, f"tasks left behind: {left}"
        return caught

    return asyncio.run(checked())


__all__ = ["TEST_TOKEN", "Path", "run", "run_expecting"]
