"""Kubeconfig files for lab components and lab users (mode 0600: they may hold a token or a key path)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def kubeconfig_dict(
    *,
    name: str,
    server: str,
    ca_file: Path | str,
    token: str | None = None,
    client_cert: Path | str | None = None,
    client_key: Path | str | None = None,
    namespace: str | None = None,
) -> dict[str, object]:
    user: dict[str, str] = {}
    if token is not None:
        user["token"] = token
    if client_cert is not None and client_key is not None:
        user["client-certificate"] = str(client_cert)
        user["client-key"] = str(client_key)
    context: dict[str, str] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, config: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start, so a token is never readable by others even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(path, 0o600)
    return path
