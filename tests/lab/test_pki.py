"""The lab PKI: chains, subjects, SANs, file modes, idempotence and repair. No lab needed."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conformance.errors import LabError
from conformance.lab.pki import (
    CLIENT_IDENTITIES,
    CertKeyPair,
    ClientIdentity,
    Pki,
    ensure_pki,
    make_serving_cert,
)

LOOPBACK_SANS = {
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
    x509.DNSName("localhost"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki") / "pki")


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def private_key(path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return key


def serving_pairs(pki: Pki) -> dict[str, CertKeyPair]:
    s = pki.serving
    return {
        "kube-apiserver": s.kube_apiserver,
        "kube-oidc-proxy": s.kube_oidc_proxy,
        "issuer": s.issuer,
        "kwok": s.kwok,
        "alb": s.alb,
    }


def client_pairs(pki: Pki) -> dict[str, CertKeyPair]:
    c = pki.clients
    return {
        "admin": c.admin,
        "kube-oidc-proxy": c.kube_oidc_proxy,
        "openunison": c.openunison,
        "kwok": c.kwok,
        "kube-controller-manager": c.kube_controller_manager,
        "kube-scheduler": c.kube_scheduler,
        "apiserver-kubelet-client": c.apiserver_kubelet_client,
    }


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.name: (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.iterdir())
        if p.suffix in {".crt", ".key", ".pub"}
    }


def spki(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_file_names_are_the_documented_ones(pki: Pki) -> None:
    names = {p.name for p in pki.directory.iterdir() if not p.name.startswith(".")}
    expected = {"ca.crt", "ca.key", "alb-ca.crt", "alb-ca.key", "sa.key", "sa.pub"}
    expected |= {"oidc-signing.key", "oidc-rogue.key"}
    for name in ("kube-apiserver", "kube-oidc-proxy", "issuer", "kwok", "alb"):
        expected |= {f"serving-{name}.crt", f"serving-{name}.key"}
    for name in CLIENT_IDENTITIES:
        expected |= {f"client-{name}.crt", f"client-{name}.key"}
    assert names == expected
    assert pki.serving.kube_apiserver.cert == pki.directory / "serving-kube-apiserver.crt"
    assert pki.clients.admin.key == pki.directory / "client-admin.key"


def test_cas_are_self_signed_leaf_only_cas(pki: Pki) -> None:
    for pair in (pki.ca, pki.alb_ca):
        ca = cert(pair.cert)
        ca.verify_directly_issued_by(ca)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca and constraints.path_length == 0
        assert spki(ca.public_key()) == spki(private_key(pair.key).public_key())
    assert cert(pki.ca.cert).subject != cert(pki.alb_ca.cert).subject


def test_validity_periods(pki: Pki) -> None:
    def days(c: x509.Certificate) -> float:
        return (c.not_valid_after_utc - c.not_valid_before_utc) / dt.timedelta(days=1)

    # notBefore is back-dated a few minutes for clock skew.
    assert 365 <= days(cert(pki.ca.cert)) < 365.1
    assert 90 <= days(cert(pki.serving.kube_apiserver.cert)) < 90.1
    assert 90 <= days(cert(pki.clients.admin.cert)) < 90.1


def test_serving_certs_chain_to_their_ca_and_cover_loopback(pki: Pki) -> None:
    cluster_ca, alb_ca = cert(pki.ca.cert), cert(pki.alb_ca.cert)
    for name, pair in serving_pairs(pki).items():
        leaf = cert(pair.cert)
        right, wrong = (alb_ca, cluster_ca) if name == "alb" else (cluster_ca, alb_ca)
        leaf.verify_directly_issued_by(right)
        with pytest.raises((ValueError, InvalidSignature)):
            leaf.verify_directly_issued_by(wrong)
        sans = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        assert sans >= LOOPBACK_SANS, name
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in eku
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert spki(leaf.public_key()) == spki(private_key(pair.key).public_key())


@pytest.mark.parametrize(
    ("name", "common_name", "organizations"),
    [
        ("admin", "lab-admin", ["system:masters"]),
        ("kube-oidc-proxy", "kube-oidc-proxy", ["lab:proxies"]),
        ("openunison", "openunison-proxy", ["lab:proxies"]),
        ("kwok", "system:node:kwok-node-0", ["system:nodes"]),
        ("kube-controller-manager", "system:kube-controller-manager", []),
        ("kube-scheduler", "system:kube-scheduler", []),
        ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"]),
    ],
)
def test_client_certs_carry_the_kubernetes_identity(
    pki: Pki, name: str, common_name: str, organizations: list[str]
) -> None:
    leaf = cert(client_pairs(pki)[name].cert)
    leaf.verify_directly_issued_by(cert(pki.ca.cert))
    cns = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert cns == [common_name]
    assert orgs == organizations
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_signing_keys_are_distinct_rsa_2048(pki: Pki) -> None:
    keys = [private_key(p) for p in (pki.sa_key, pki.oidc_signing_key, pki.oidc_rogue_key)]
    assert all(isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048 for k in keys)
    assert len({spki(k.public_key()) for k in keys}) == 3
    sa_pub = serialization.load_pem_public_key(pki.sa_pub.read_bytes())
    assert spki(sa_pub) == spki(keys[0].public_key())


def test_private_keys_are_owner_only_and_certs_readable(pki: Pki) -> None:
    for path in pki.directory.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.suffix == ".key":
            assert mode == 0o600, path.name
        elif path.suffix in {".crt", ".pub"}:
            assert mode == 0o644, path.name


def test_serving_cert_works_for_a_real_tls_handshake(pki: Pki) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.serving.kube_apiserver.cert, pki.serving.kube_apiserver.key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_two() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                try:
                    with server_ctx.wrap_socket(conn, server_side=True):
                        pass
                except (ssl.SSLError, OSError):
                    pass

        thread = threading.Thread(target=serve_two, daemon=True)
        thread.start()
        for server_name in ("localhost", "127.0.0.1"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                    assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        thread.join(timeout=5)


def test_alb_cert_is_not_trusted_by_cluster_ca_clients(pki: Pki) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.serving.alb.cert, pki.serving.alb.key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_one() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                client_ctx.wrap_socket(raw, server_hostname="localhost")
        thread.join(timeout=5)


def test_whole_pki_is_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    ensure_pki(tmp_path / "pki")
    assert time.perf_counter() - started < 2.0


def test_second_call_changes_nothing(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path / "pki")
    before = snapshot(first.directory)
    time.sleep(0.01)  # make any rewrite visible in mtime_ns even on coarse clocks
    second = ensure_pki(tmp_path / "pki")
    assert second == first
    assert snapshot(second.directory) == before


def test_only_the_missing_leaf_is_recreated(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    before = snapshot(pki.directory)
    pki.serving.kwok.cert.unlink()
    ensure_pki(tmp_path / "pki")
    after = snapshot(pki.directory)
    changed = {name for name in before if before[name] != after[name]}
    # The key is replaced too: a fresh pair never reuses a key whose cert went missing.
    assert changed == {"serving-kwok.crt", "serving-kwok.key"}
    cert(pki.serving.kwok.cert).verify_directly_issued_by(cert(pki.ca.cert))


def test_a_remade_ca_reissues_its_leaves_only(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    before = snapshot(pki.directory)
    pki.ca.key.unlink()
    ensure_pki(tmp_path / "pki")
    after = snapshot(pki.directory)
    new_ca = cert(pki.ca.cert)
    for pair in [*client_pairs(pki).values(), *(p for n, p in serving_pairs(pki).items() if n != "alb")]:
        cert(pair.cert).verify_directly_issued_by(new_ca)
    # alb-ca and what it signed, and the signing keys, are untouched.
    for name in ("alb-ca.crt", "alb-ca.key", "serving-alb.crt", "sa.key", "sa.pub", "oidc-signing.key"):
        assert after[name] == before[name], name


def test_concurrent_callers_agree(tmp_path: Path) -> None:
    # pytest-xdist workers may all call ensure_pki on one directory at once.
    results: list[Pki] = []

    def call() -> None:
        results.append(ensure_pki(tmp_path / "pki"))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4 and all(r == results[0] for r in results)
    ca = cert(results[0].ca.cert)
    for pair in client_pairs(results[0]).values():
        cert(pair.cert).verify_directly_issued_by(ca)


def test_corrupt_file_is_replaced(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    pki.clients.admin.cert.write_text("not a certificate")
    ensure_pki(tmp_path / "pki")
    cert(pki.clients.admin.cert).verify_directly_issued_by(cert(pki.ca.cert))


def test_loosened_key_mode_is_tightened(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    pki.oidc_signing_key.chmod(0o644)
    content = pki.oidc_signing_key.read_bytes()
    ensure_pki(tmp_path / "pki")
    assert stat.S_IMODE(pki.oidc_signing_key.stat().st_mode) == 0o600
    assert pki.oidc_signing_key.read_bytes() == content


def test_extra_hosts_are_added_and_fewer_hosts_keep_the_cert(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", hosts=("127.0.0.1", "localhost", "10.9.8.7", "lab.internal"))
    sans = set(cert(pki.serving.issuer.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    assert sans == LOOPBACK_SANS | {
        x509.IPAddress(ipaddress.ip_address("10.9.8.7")),
        x509.DNSName("lab.internal"),
    }
    before = snapshot(pki.directory)
    ensure_pki(tmp_path / "pki")  # default hosts are a subset: nothing to reissue
    assert snapshot(pki.directory) == before


def test_make_serving_cert_for_later_components(pki: Pki) -> None:
    lb = pki.make_serving_cert("lb-haproxy", hosts=("127.0.0.2",))
    assert lb == CertKeyPair(
        cert=pki.directory / "serving-lb-haproxy.crt", key=pki.directory / "serving-lb-haproxy.key"
    )
    leaf = cert(lb.cert)
    leaf.verify_directly_issued_by(cert(pki.ca.cert))
    sans = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    assert sans >= LOOPBACK_SANS | {x509.IPAddress(ipaddress.ip_address("127.0.0.2"))}
    assert stat.S_IMODE(lb.key.stat().st_mode) == 0o600

    public = pki.make_serving_cert("alb-envoy", ca=pki.alb_ca)
    cert(public.cert).verify_directly_issued_by(cert(pki.alb_ca.cert))


def test_make_client_cert_for_later_identities(pki: Pki) -> None:
    pair = pki.make_client_cert("carol", ClientIdentity(common_name="carol", organizations=("devs",)))
    leaf = cert(pair.cert)
    leaf.verify_directly_issued_by(cert(pki.ca.cert))
    assert leaf.subject.rfc4514_string() == "CN=carol,O=devs"


@pytest.mark.parametrize("name", ["", "../evil", "Upper", "a/b", "-lead", "trail-"])
def test_names_that_are_not_one_safe_path_component_are_refused(pki: Pki, name: str) -> None:
    with pytest.raises(ValueError):
        pki.make_serving_cert(name)


def test_make_serving_cert_without_a_ca_says_so(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="ensure_pki"):
        make_serving_cert(tmp_path / "empty", "lb")
