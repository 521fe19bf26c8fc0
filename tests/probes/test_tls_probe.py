"""The tls cell against a loopback TLS server: a good chain passes, an expired certificate fails (verified
or not), an unknown CA fails, and with insecure_skip_tls_verify the cell never claims it verified."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.adapters.base import Session
from conformance.config import Endpoint, Workload
from conformance.lab.pki import CertKeyPair, Pki, ensure_pki, make_expired_serving_cert, make_serving_cert
from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext
from probes.plain import probe_tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("tls-pki"))


def _serve(pair: CertKeyPair) -> Iterator[int]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pair.cert, pair.key)
    ctx.set_alpn_protocols(["http/1.1"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            try:
                with ctx.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass  # the client refused our certificate: that is the test
            finally:
                raw.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _probe(port: int, ca: Path, *, insecure: bool = False) -> Observation:
    endpoint = Endpoint(server=f"https://127.0.0.1:{port}", ca_file=str(ca), insecure_skip_tls_verify=insecure)
    session = Session(endpoint=endpoint, token="t", namespace="ns", user_agent="test", timeout_s=5)
    workload = Workload(namespace="ns", pods=("p",), container="c", port=8080)
    ctx = ProbeContext(client=None, session=session, workload=workload, protocol="http", marker="m")  # type: ignore[arg-type]
    return asyncio.run(probe_tls(ctx))


@pytest.fixture(scope="module")
def good_port(pki: Pki) -> Iterator[int]:
    yield from _serve(make_serving_cert(pki.ca.cert.parent, "tls-good", hosts=["127.0.0.1", "localhost"]))


@pytest.fixture(scope="module")
def expired_port(pki: Pki) -> Iterator[int]:
    yield from _serve(make_expired_serving_cert(pki.ca.cert.parent, "tls-old", hosts=["127.0.0.1", "localhost"]))


def test_a_good_chain_verifies(good_port: int, pki: Pki) -> None:
    obs = _probe(good_port, pki.ca.cert)
    assert obs.error_class is ErrorClass.NONE and obs.message.startswith("chain verifies")
    assert any(n.startswith("chain verified against") for n in obs.evidence.notes)


def test_an_expired_certificate_fails(expired_port: int, pki: Pki) -> None:
    obs = _probe(expired_port, pki.ca.cert)
    assert obs.error_class is ErrorClass.TLS and "expired" in obs.message


def test_an_expired_certificate_fails_even_without_verification(expired_port: int, pki: Pki) -> None:
    obs = _probe(expired_port, pki.ca.cert, insecure=True)
    assert obs.error_class is ErrorClass.TLS and "outside its validity" in obs.message


def test_another_ca_fails(good_port: int, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other")
    obs = _probe(good_port, other.ca.cert)
    assert obs.error_class is ErrorClass.TLS and "certificate verify failed" in obs.message


def test_insecure_never_claims_a_verified_chain(good_port: int, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other")
    obs = _probe(good_port, other.ca.cert, insecure=True)  # the wrong CA, but verification is off
    assert obs.error_class is ErrorClass.NONE
    assert "NOT verified" in obs.message and "chain verifies" not in obs.message
