"""Every kubeconfig credential kind, resolved for the clients; the `{type: kubeconfig}` harness credential; the
native client with a client certificate against an in-process TLS server that requires one."""

from __future__ import annotations

import base64
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.clients import exec_
from conformance.config import parse_config
from conformance.errors import ConfigError
from conformance.kubeconfig_credentials import certificate_files, kubeconfig_user, tls_context
from conformance.lab.pki import Pki
from conformance.redact import redact
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError
from conformance.transport.timeouts import Timeouts
from tests.transport.fake_server import FakeServer

V1 = "client.authentication.k8s.io/v1"


def kubeconfig(tmp_path: Path, user: dict[str, Any], name: str = "kubeconfig") -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team"}}],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_token_and_token_file(tmp_path: Path) -> None:
    cred = kubeconfig_user(kubeconfig(tmp_path, {"token": "inline-token-abcdef123"})).resolve()
    assert cred.token == "inline-token-abcdef123" and cred.kind == "token"
    assert cred.kubectl_user == {"token": "inline-token-abcdef123"}
    (tmp_path / "tok").write_text("token-from-a-file-0001\n")
    user = kubeconfig_user(kubeconfig(tmp_path, {"tokenFile": "tok"}, "k2"))
    assert user.resolve().token == "token-from-a-file-0001"
    assert user.resolve().kubectl_user == {"tokenFile": str(tmp_path / "tok")}  # kubectl reads the file itself
    (tmp_path / "tok").write_text("token-from-a-file-0002\n")  # rotated: read again at each resolve
    assert user.resolve().token == "token-from-a-file-0002"
    assert "token-from-a-file-0002" not in redact("x token-from-a-file-0002")


def test_client_certificate_files_and_data(tmp_path: Path, pki: Pki) -> None:
    admin = pki.clients.admin
    files = kubeconfig_user(kubeconfig(tmp_path, {"client-certificate": str(admin.cert),
                                                  "client-key": str(admin.key)})).resolve()
    assert (files.token, files.cert_file, files.key_file) == (None, str(admin.cert), str(admin.key))
    assert files.kind == "client-certificate"
    data_user = {"client-certificate-data": base64.b64encode(admin.cert.read_bytes()).decode(),
                 "client-key-data": base64.b64encode(admin.key.read_bytes()).decode()}
    data = kubeconfig_user(kubeconfig(tmp_path, data_user, "k2")).resolve()
    assert data.cert_pem == admin.cert.read_bytes() and data.key_pem == admin.key.read_bytes()
    assert data.kubectl_user == data_user
    with certificate_files(data) as paths:
        assert paths is not None
        written = [Path(p) for p in paths]
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in written)
        assert written[1].read_bytes() == admin.key.read_bytes()
    assert not any(p.exists() for p in written), "PEM data written for a cell must be removed after it"
    assert "PRIVATE KEY" not in redact(admin.key.read_text())


def test_half_a_certificate_or_nothing_is_refused(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="needs both"):
        kubeconfig_user(kubeconfig(tmp_path, {"client-certificate": str(pki.clients.admin.cert)})).resolve()
    with pytest.raises(ConfigError, match="no credential the harness can use"):
        kubeconfig_user(kubeconfig(tmp_path, {"username": "u", "password": "p"}, "k2")).resolve()


def test_exec_plugin_and_the_stanza_kubectl_gets(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    plugin = tmp_path / "bin" / "login.py"
    plugin.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump({{'apiVersion': {V1!r}, 'kind': "
                      "'ExecCredential', 'status': {'token': 'exec-token-0123456789'}}, sys.stdout)\n")
    plugin.chmod(0o755)
    stanza = {"exec": {"apiVersion": V1, "command": "bin/login.py", "args": ["--x"], "interactiveMode": "Never"}}
    cred = kubeconfig_user(kubeconfig(tmp_path, stanza)).resolve()
    assert cred.token == "exec-token-0123456789"
    assert cred.kubectl_user == {"exec": {**stanza["exec"], "command": str(plugin)}}  # no token: kubectl runs it


def test_legacy_oidc_auth_provider_and_others(tmp_path: Path) -> None:
    oidc = {"auth-provider": {"name": "oidc", "config": {"id-token": "id-token-0123456789", "idp-issuer-url": "x"}}}
    cred = kubeconfig_user(kubeconfig(tmp_path, oidc)).resolve()
    assert cred.token == "id-token-0123456789"
    assert cred.kubectl_user == {"token": "id-token-0123456789"}  # kubectl >= 1.26 no longer runs the provider
    with pytest.raises(ConfigError, match=r"'gcp' is not supported.*exec plugins"):
        kubeconfig_user(kubeconfig(tmp_path, {"auth-provider": {"name": "gcp"}}, "k2")).resolve()


def config_with(credential: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "targets": {"t": {"server": "https://127.0.0.1:1"}},
            "users": {"me": {"credential": credential}},
            "workload": {"namespace": "n", "pods": ["p"]}}


def test_harness_config_kubeconfig_credential(tmp_path: Path, pki: Pki) -> None:
    path = kubeconfig(tmp_path, {"client-certificate": str(pki.clients.admin.cert),
                                 "client-key": str(pki.clients.admin.key)})
    config = parse_config(config_with({"type": "kubeconfig", "path": str(path), "context": "c"}), tmp_path / "h.yaml")
    assert config.credential("me").cert_file == str(pki.clients.admin.cert)
    with pytest.raises(ConfigError, match="holds a client certificate, not a token"):
        config.token("me")
    with pytest.raises(ConfigError, match=r"users.me.credential.path is missing"):
        parse_config(config_with({"type": "kubeconfig"}), tmp_path / "h.yaml")
    with pytest.raises(ConfigError, match="unknown keys user"):
        parse_config(config_with({"type": "kubeconfig", "path": str(path), "user": "u"}), tmp_path / "h.yaml")
    token_path = kubeconfig(tmp_path, {"token": "a-token-for-the-config"}, "k2")
    config = parse_config(config_with({"type": "kubeconfig", "path": str(token_path)}), tmp_path / "h.yaml")
    assert config.token("me") == "a-token-for-the-config"


# --- the native client with a client certificate ------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_server(pki: Pki) -> Any:
    server = FakeServer(pki.serving.kube_apiserver.cert, pki.serving.kube_apiserver.key)
    server.ctx.verify_mode = ssl.CERT_REQUIRED  # like kube-apiserver with --client-ca-file, but mandatory
    server.ctx.load_verify_locations(str(pki.ca.cert))
    server.start()
    yield server
    server.stop()


FAST = Timeouts(connect=5, tls=5, upgrade=5, read=5, total=10)


def test_native_client_authenticates_with_a_kubeconfig_client_certificate(tmp_path: Path, pki: Pki,
                                                                          mtls_server: FakeServer) -> None:
    import asyncio

    admin = pki.clients.admin
    path = kubeconfig(tmp_path, {"client-certificate-data": base64.b64encode(admin.cert.read_bytes()).decode(),
                                 "client-key-data": base64.b64encode(admin.key.read_bytes()).decode()})
    doc = yaml.safe_load(path.read_text())
    doc["clusters"][0]["cluster"] = {"server": f"https://127.0.0.1:{mtls_server.port}",
                                     "certificate-authority": str(pki.ca.cert)}
    path.write_text(yaml.safe_dump(doc))
    endpoint = Endpoint.from_kubeconfig(path)
    assert endpoint.token is None and endpoint.client_cert_data == admin.cert.read_bytes()
    result = asyncio.run(exec_(endpoint, "ns", "pod", "c", ["echo", "mtls"], protocol="ws-v5", timeouts=FAST))
    assert result.stdout == b"mtls\n" and result.exit_code == 0
    # The same server refuses a client without one: the certificate is what let the first one in.
    bare = Endpoint(server=endpoint.server, ca_file=str(pki.ca.cert))
    with pytest.raises(StreamingError):
        asyncio.run(exec_(bare, "ns", "pod", "c", ["echo", "mtls"], protocol="ws-v5", timeouts=FAST))


def test_tls_context_for_plain_requests_carries_the_certificate(pki: Pki, tmp_path: Path) -> None:
    from conformance.kubeconfig_credentials import ClientCredential

    assert tls_context(None, True, None) is False
    ctx = tls_context(str(pki.ca.cert), False, ClientCredential(cert_pem=pki.clients.admin.cert.read_bytes(),
                                                                key_pem=pki.clients.admin.key.read_bytes()))
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ConfigError, match="client certificate"):
        tls_context(None, False, ClientCredential(cert_pem=b"not a cert", key_pem=b"not a key"))
