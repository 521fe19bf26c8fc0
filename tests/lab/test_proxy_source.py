"""Where `lab build` gets each kube-oidc-proxy's source (no Go, no network: the module proxy is a fake)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from conformance.errors import ComponentError
from conformance.lab import build, proxy_source
from conformance.lab.proxy_source import RELEASES, Source, select_source

FORK = RELEASES["kube-oidc-proxy"]
OLD = RELEASES["kube-oidc-proxy-0.3"]


def _refused(module: str, version: str) -> tuple[Path, str]:
    raise ComponentError("kube-oidc-proxy", f"the Go module proxy refused {module}@{version}: 403 Forbidden")


def _tarball(directory: Path, name: str, files: dict[str, bytes] | None = None) -> Path:
    files = files or {"go.mod": b"module github.com/jetstack/kube-oidc-proxy\n", "cmd/main.go": b"package main\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"kube-oidc-proxy-1.0.11/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = directory / name
    path.write_bytes(buf.getvalue())
    return path


def _sums(directory: Path, *tarballs: Path, wrong: bool = False) -> None:
    lines = []
    for t in tarballs:
        digest = hashlib.sha256(t.read_bytes() + (b"x" if wrong else b"")).hexdigest()
        lines.append(f"{digest}  {t.name}")
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def test_module_proxy_first_when_it_serves_the_module(tmp_path: Path) -> None:
    calls = []

    def served(module: str, version: str) -> tuple[Path, str]:
        calls.append((module, version))
        return tmp_path, "h1:abc="

    source = select_source(FORK, served, {FORK.env_var: str(tmp_path / "ignored.tar.gz")})
    assert source == Source("module", tmp_path, "h1:abc=")
    assert calls == [("github.com/TremoloSecurity/kube-oidc-proxy", "v1.0.11")]


def test_refused_module_falls_back_to_the_env_tarball_checked_against_sha256sums(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "tremolo-kube-oidc-proxy-v1.0.11.tar.gz")
    _sums(tmp_path, tarball)
    source = select_source(FORK, _refused, {FORK.env_var: str(tarball)})
    assert source.kind == "tarball" and source.path == tarball
    assert source.digest == "sha256:" + hashlib.sha256(tarball.read_bytes()).hexdigest()


def test_env_naming_the_vendor_directory_picks_each_release_by_name(tmp_path: Path) -> None:
    fork = _tarball(tmp_path, "tremolo-kube-oidc-proxy-v1.0.11.tar.gz")
    old = _tarball(tmp_path, "jetstack-kube-oidc-proxy-v0.3.0.tar.gz", {"go.mod": b"module x\n"})
    _sums(tmp_path, fork, old)
    assert select_source(FORK, _refused, {FORK.env_var: str(tmp_path)}).path == fork
    assert select_source(OLD, _refused, {OLD.env_var: str(tmp_path)}).path == old


def test_digest_mismatch_is_an_error_naming_the_file(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "tremolo-kube-oidc-proxy-v1.0.11.tar.gz")
    _sums(tmp_path, tarball, wrong=True)
    with pytest.raises(ComponentError, match=r"does not match .*SHA256SUMS"):
        select_source(FORK, _refused, {FORK.env_var: str(tarball)})


def test_tarball_missing_from_sha256sums_is_refused(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "tremolo-kube-oidc-proxy-v1.0.11.tar.gz")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  other.tar.gz\n")
    with pytest.raises(ComponentError, match=r"no line for tremolo-kube-oidc-proxy-v1\.0\.11\.tar\.gz"):
        select_source(FORK, _refused, {FORK.env_var: str(tarball)})


def test_without_sha256sums_the_tarball_digest_is_still_recorded(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "tremolo-kube-oidc-proxy-v1.0.11.tar.gz")
    source = select_source(FORK, _refused, {FORK.env_var: str(tarball)})
    assert source.digest == "sha256:" + hashlib.sha256(tarball.read_bytes()).hexdigest()


def test_source_directory_digest_follows_its_content(tmp_path: Path) -> None:
    (tmp_path / "cmd").mkdir()
    (tmp_path / "go.mod").write_text("module github.com/jetstack/kube-oidc-proxy\n")
    (tmp_path / "cmd" / "main.go").write_text("package main\n")
    first = select_source(FORK, _refused, {FORK.env_var: str(tmp_path)})
    (tmp_path / "cmd" / "main.go").write_text("package main // changed\n")
    second = select_source(FORK, _refused, {FORK.env_var: str(tmp_path)})
    assert first.kind == second.kind == "directory" and first.digest != second.digest


def test_no_source_at_all_names_both_ways() -> None:
    with pytest.raises(ComponentError) as info:
        select_source(FORK, _refused, {})
    text = str(info.value)
    assert "Go module proxy" in text and "GOPROXY" in text
    assert "CONFORMANCE_KUBE_OIDC_PROXY_SRC" in text and "403 Forbidden" in text


def test_a_missing_env_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"CONFORMANCE_KUBE_OIDC_PROXY_03_SRC=.*no such file"):
        select_source(OLD, _refused, {OLD.env_var: str(tmp_path / "nope")})


def test_a_module_error_that_is_no_refusal_is_not_hidden(tmp_path: Path) -> None:
    def broken(module: str, version: str) -> tuple[Path, str]:
        raise ComponentError("kube-oidc-proxy", "downloading timed out")

    with pytest.raises(ComponentError, match="timed out"):
        select_source(FORK, broken, {FORK.env_var: str(tmp_path)})


def test_tarball_extracts_into_the_cache_and_rejects_a_non_release(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path, "tremolo-kube-oidc-proxy-v1.0.11.tar.gz")
    root = build._extract("kube-oidc-proxy", Source("tarball", tarball, "sha256:x"), tmp_path / "out")
    assert root == tmp_path / "out" / "kube-oidc-proxy-1.0.11" and (root / "cmd" / "main.go").is_file()
    bad = _tarball(tmp_path, "bad.tar.gz", {"README": b"hi"})
    with pytest.raises(ComponentError, match="not a kube-oidc-proxy release"):
        build._extract("kube-oidc-proxy", Source("tarball", bad, "sha256:x"), tmp_path / "out2")


def test_version_ldflags_target_the_package_that_prints_version() -> None:
    flags = proxy_source.version_ldflags(FORK)
    assert "-X github.com/jetstack/kube-oidc-proxy/cmd/app/options.gitVersion=v1.0.11" in flags
    assert f"options.gitCommit={FORK.commit}" in flags and "options.gitMinor=0" in flags


def test_the_readiness_listener_patch_edits_one_literal_or_stops(tmp_path: Path) -> None:
    probe = tmp_path / "pkg" / "probe" / "probe.go"
    probe.parent.mkdir(parents=True)
    probe.write_text('err := http.ListenAndServe(net.JoinHostPort("0.0.0.0", port), h.handler)\n')
    proxy_source.patch_readiness_listener(tmp_path, FORK)
    assert probe.read_text() == 'err := http.ListenAndServe(net.JoinHostPort("127.0.0.1", port), h.handler)\n'
    with pytest.raises(ComponentError, match="patch anchor not found"):
        proxy_source.patch_readiness_listener(tmp_path, FORK)  # already patched: the anchor is gone
