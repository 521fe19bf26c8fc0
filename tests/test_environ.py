"""The environment copy survives another thread setting and deleting a variable, as pytest does with
PYTEST_CURRENT_TEST while cells run in the prefetch thread."""

from __future__ import annotations

import os
import threading

import pytest

from conformance.environ import environ_snapshot

KEY = "CONFORMANCE_TEST_FLICKER"


def _flicker(stop: threading.Event) -> None:
    while not stop.is_set():
        os.environ[KEY] = "x"
        os.environ.pop(KEY, None)


def test_a_variable_deleted_meanwhile_is_left_out_never_a_key_error() -> None:
    stop = threading.Event()
    flicker = threading.Thread(target=_flicker, args=(stop,), daemon=True)
    flicker.start()
    try:
        for _ in range(3000):
            env = environ_snapshot()
            assert env.get(KEY) in (None, "x") and env["PATH"] == os.environ["PATH"]
    finally:
        stop.set()
        flicker.join()


def test_the_python_clients_configuration_reads_no_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conformance.adapters.base import Session
    from conformance.adapters.python_client import _api
    from conformance.config import Endpoint

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.9:3128")
    api = _api(Session(endpoint=Endpoint(server="https://127.0.0.1:1"), token="t", namespace="ns", user_agent="u",
                       timeout_s=3))
    assert not api.api_client.configuration.proxy
    via = _api(Session(endpoint=Endpoint(server="https://127.0.0.1:1", proxy_url="http://127.0.0.1:3128"), token="t",
                       namespace="ns", user_agent="u", timeout_s=3))
    assert via.api_client.configuration.proxy == "http://127.0.0.1:3128"
