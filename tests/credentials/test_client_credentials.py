"""What each cell client is handed for a kubeconfig user: kubectl a 0600 kubeconfig with the user's own stanza,
removed after the cell; the Python client the token or certificate; the native client the certificate."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from conformance.adapters.base import Session
from conformance.adapters.kubectl import KubectlAdapter
from conformance.adapters.native import NativeAdapter
from conformance.adapters.python_client import _api
from conformance.config import Endpoint
from conformance.kubeconfig_credentials import ClientCredential

EXEC = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/usr/local/bin/login",
                 "interactiveMode": "Never"}}


def session(cred: ClientCredential) -> Session:
    return Session(endpoint=Endpoint(server="https://127.0.0.1:6443", ca_file="/ca.crt"), token=cred.token or "",
                   namespace="team", user_agent="ua", timeout_s=5, credential=cred)


def test_kubectl_gets_the_users_own_stanza_in_a_private_file_removed_after_the_cell() -> None:
    adapter = KubectlAdapter(Path("/bin/true"), "v1.35.0", 35)
    cred = ClientCredential(token="exec-token-not-for-kubectl", kubectl_user=EXEC)
    with adapter._kubeconfig(session(cred)) as path:
        assert os.stat(path).st_mode & 0o777 == 0o600
        doc = yaml.safe_load(path.read_text())
        assert doc["users"][0]["user"] == EXEC  # kubectl runs the plugin itself, as for the user
        assert "exec-token-not-for-kubectl" not in path.read_text()
        assert doc["contexts"][0]["context"]["namespace"] == "team"
    assert not path.exists() and not path.parent.exists()
    certificate = {"client-certificate": "/etc/kube/me.crt", "client-key": "/etc/kube/me.key"}
    cert_user = ClientCredential(cert_file="/c", key_file="/k", kubectl_user=certificate)
    with adapter._kubeconfig(session(cert_user)) as path:
        assert yaml.safe_load(path.read_text())["users"][0]["user"] == certificate
    with adapter._kubeconfig(session(ClientCredential(token="a-harness-token-000"))) as path:  # lab-oidc users
        assert yaml.safe_load(path.read_text())["users"][0]["user"] == {"token": "a-harness-token-000"}


def test_python_client_sends_the_token_or_the_certificate() -> None:
    api = _api(session(ClientCredential(token="py-token-0123456789"))).api_client.configuration
    assert api.api_key == {"authorization": "Bearer py-token-0123456789"} and api.cert_file is None
    api = _api(session(ClientCredential(cert_file="/c.crt", key_file="/c.key"))).api_client.configuration
    assert (api.cert_file, api.key_file) == ("/c.crt", "/c.key") and not api.api_key


def test_native_client_endpoint_carries_the_certificate_and_no_empty_token() -> None:
    ep = NativeAdapter._endpoint(session(ClientCredential(cert_pem=b"CERT", key_pem=b"KEY")))
    assert (ep.client_cert_data, ep.client_key_data, ep.token) == (b"CERT", b"KEY", None)
    assert not any(k == "Authorization" for k, _ in ep.request_headers())
