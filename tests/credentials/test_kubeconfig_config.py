"""A harness config from a kubeconfig's contexts: the simple case (`--kubeconfig K --context a,b|all`) and the
commented starting config `conformance config init` prints, which must load as written."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.config import load_config, parse_config
from conformance.errors import ConfigError
from conformance.kubeconfig_config import config_from_kubeconfig, render_config, select_contexts
from conformance.kubeconfig_credentials import kubeconfig_user

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def two_contexts(tmp_path: Path) -> Path:
    """As kube-oidc-proxy and OpenUnison users have it: the API server straight and through the proxy."""
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "straight",
        "clusters": [
            {"name": "api", "cluster": {"server": "https://10.0.0.1:6443",
                                        "certificate-authority-data": base64.b64encode(CA_PEM).decode()}},
            {"name": "proxy", "cluster": {"server": "https://proxy.example:443", "certificate-authority": "p.crt",
                                          "proxy-url": "http://127.0.0.1:3128"}},
        ],
        "users": [{"name": "me@corp", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                         "command": "kubelogin", "interactiveMode": "IfAvailable"}}},
                  {"name": "admin", "user": {"token": "admin-token-0123456789"}}],
        "contexts": [
            {"name": "straight", "context": {"cluster": "api", "user": "me@corp", "namespace": "team-a"}},
            {"name": "via proxy", "context": {"cluster": "proxy", "user": "me@corp", "namespace": "team-a"}},
            {"name": "admin", "context": {"cluster": "api", "user": "admin"}},
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_current_context_alone_needs_nothing_else(tmp_path: Path) -> None:
    config = config_from_kubeconfig(two_contexts(tmp_path), None)
    assert list(config.targets) == ["straight"] and list(config.users) == ["straight"]
    target = config.targets["straight"]
    assert target.user == "straight" and target.endpoints["none"].server == "https://10.0.0.1:6443"
    ca = Path(target.endpoints["none"].ca_file or "")
    assert ca.read_bytes() == CA_PEM  # certificate-authority-data, as a file the endpoints can name
    assert config.users["straight"].credential == {"type": "kubeconfig", "path": str(tmp_path / "config"),
                                                   "context": "straight"}
    assert config.workload.namespace == "team-a" and config.workload.kubeconfig == str(tmp_path / "config")


def test_several_contexts_become_several_targets_each_with_its_user(tmp_path: Path) -> None:
    config = config_from_kubeconfig(two_contexts(tmp_path), "straight,via proxy")
    assert list(config.targets) == ["straight", "via-proxy"]
    assert [t.user for t in config.targets.values()] == ["straight", "via-proxy"]  # identity learned per target
    assert {u.credential["context"] for u in config.users.values()} == {"straight", "via proxy"}
    # ... and one kubeconfig user behind both: one exec plugin, one cache
    assert kubeconfig_user(tmp_path / "config", "straight") is kubeconfig_user(tmp_path / "config", "via proxy")
    via = config.targets["via-proxy"].endpoints["none"]
    assert via.proxy_url == "http://127.0.0.1:3128" and via.ca_file == str(tmp_path / "p.crt")
    everything = config_from_kubeconfig(two_contexts(tmp_path), "all")
    assert list(everything.targets) == ["straight", "via-proxy", "admin"]
    assert everything.targets["admin"].user == "admin" and len(everything.users) == 3


def test_unknown_contexts_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no context 'nope' \(have: straight, via proxy, admin\)"):
        select_contexts(two_contexts(tmp_path), "straight,nope")


def test_config_init_output_loads_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = two_contexts(tmp_path)
    assert main(["config", "init", "--kubeconfig", str(kc), "--context", "straight,via proxy"]) == 0
    text = capsys.readouterr().out
    assert "FILL IN" in text and "expect:" in text and "identity:" in text  # what to fill in, as comments
    assert "admin-token" not in text and "kubelogin" not in text  # credentials stay in the kubeconfig
    out = tmp_path / "harness.yaml"
    out.write_text(text)
    config = load_config(out)
    assert list(config.targets) == ["straight", "via-proxy"]
    assert config == parse_config(yaml.safe_load(text), out)
    assert render_config(kc, "all").count("FILL IN who the API server must see") == 3


def test_config_init_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "init", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert "cannot read it" in capsys.readouterr().err
