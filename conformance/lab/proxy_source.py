"""Where `lab build` gets each kube-oidc-proxy's source: the Go module proxy, else a local release.

Order: the Go module proxy (a user with full network access needs nothing more), else the tarball or
directory named by the proxy's environment variable (`CONFORMANCE_KUBE_OIDC_PROXY_SRC`,
`CONFORMANCE_KUBE_OIDC_PROXY_03_SRC`). A tarball with a `SHA256SUMS` file beside it must match its line
there. The variable may also name a directory holding the release tarballs (the vendored sources), in
which case the tarball is picked by its release name.

Pure logic over a fetch function and the file system: `build.py` runs the Go build on what this returns.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import ComponentError

GO_MODULE = "github.com/jetstack/kube-oidc-proxy"
# Where `--version` lives in both generations (cmd/app/options/misc.go): component-base's version
# package is not what they print.
VERSION_PACKAGE = f"{GO_MODULE}/cmd/app/options"


@dataclass(frozen=True, slots=True)
class ProxyRelease:
    """One kube-oidc-proxy generation the lab runs."""

    component: str  # the `lab build` component and cache name
    version: str
    module: str  # the module path to ask the module proxy for
    commit: str  # the release tag's commit (recorded, and stamped into --version)
    env_var: str
    tarball_suffix: str  # the release tarball's name ends with this


RELEASES: Mapping[str, ProxyRelease] = {
    "kube-oidc-proxy": ProxyRelease(
        component="kube-oidc-proxy",
        version="v1.0.11",
        module="github.com/TremoloSecurity/kube-oidc-proxy",
        commit="8bb33203889311bdf4cebeceb60c2b4b61461ac3",
        env_var="CONFORMANCE_KUBE_OIDC_PROXY_SRC",
        tarball_suffix="kube-oidc-proxy-v1.0.11.tar.gz",
    ),
    "kube-oidc-proxy-0.3": ProxyRelease(
        component="kube-oidc-proxy-0.3",
        version="v0.3.0",
        module=GO_MODULE,
        commit="46d2f7965421d253318c2425ba33953ffb2b6c8b",
        env_var="CONFORMANCE_KUBE_OIDC_PROXY_03_SRC",
        tarball_suffix="kube-oidc-proxy-v0.3.0.tar.gz",
    ),
}


# The one edit the lab makes to a release before building it: both generations' readiness probe listens on
# 0.0.0.0 whatever --bind-address says (pkg/probe/probe.go), and the lab listens on loopback only. Nothing
# a client or the API server sees changes. (file, exact original, replacement); the anchor must appear
# exactly once or the build stops. Part of the cache key: bump the revision when the edit changes.
LOOPBACK_PATCH = ("pkg/probe/probe.go", 'net.JoinHostPort("0.0.0.0", port)', 'net.JoinHostPort("127.0.0.1", port)')
PATCH_REV = "lo1"


def patch_readiness_listener(root: Path, release: ProxyRelease) -> None:
    rel, old, new = LOOPBACK_PATCH
    path = root / rel
    text = path.read_text() if path.is_file() else ""
    if text.count(old) != 1:
        raise ComponentError(
            release.component,
            f"patch anchor not found exactly once in {rel}: {old!r}; this release needs its loopback patch reviewed",
        )
    path.write_text(text.replace(old, new))


@dataclass(frozen=True, slots=True)
class Source:
    """What to build from: `kind` is module, tarball or directory; `digest` names its content."""

    kind: str
    path: Path  # the module's directory, the tarball, or the source directory
    digest: str  # "sha256:<hex>" of a tarball or directory, or the module proxy's "h1:..." sum

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


# fetch(module, version) -> (directory, go.sum hash); raises ComponentError with "refused" if not served.
ModuleFetch = Callable[[str, str], tuple[Path, str]]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """A digest of a source directory: every regular file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def check_sums(tarball: Path, release: ProxyRelease) -> str:
    """The tarball's sha256; checked against `SHA256SUMS` beside it when there is one."""
    actual = sha256_file(tarball)
    sums = tarball.parent / "SHA256SUMS"
    if not sums.is_file():
        return actual
    listed = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            listed[parts[1].lstrip("*")] = parts[0].lower()
    if tarball.name not in listed:
        raise ComponentError(release.component, f"{sums} has no line for {tarball.name}: cannot check it")
    if listed[tarball.name] != actual:
        raise ComponentError(
            release.component,
            f"{tarball} does not match {sums}: sha256 {actual[:16]}..., expected {listed[tarball.name][:16]}...; "
            "the file is damaged or not the release it claims to be",
        )
    return actual


def local_source(release: ProxyRelease, value: str) -> Source:
    """The source that `release.env_var`'s value names: a tarball, a source directory, or a directory
    holding the release tarball."""
    path = Path(value).expanduser()
    where = f"{release.env_var}={value}"
    if path.is_file():
        return Source("tarball", path, "sha256:" + check_sums(path, release))
    if path.is_dir() and (path / "go.mod").is_file():
        return Source("directory", path, "sha256:" + sha256_tree(path))
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith(release.tarball_suffix) and p.is_file())
        if not found:
            raise ComponentError(
                release.component, f"{where}: the directory holds no go.mod and no *{release.tarball_suffix}"
            )
        return Source("tarball", found[0], "sha256:" + check_sums(found[0], release))
    raise ComponentError(release.component, f"{where}: no such file or directory")


def no_source_message(release: ProxyRelease, refusal: str) -> str:
    return (
        f"no source for kube-oidc-proxy {release.version}: {refusal}. Provide one of: (1) access to a Go module "
        f"proxy that serves {release.module}@{release.version} (GOPROXY), or (2) {release.env_var} set to its "
        f"release tarball (a SHA256SUMS file beside it is checked), a directory holding that tarball, or its "
        f"extracted source directory"
    )


def select_source(release: ProxyRelease, fetch: ModuleFetch, env: Mapping[str, str] | None = None) -> Source:
    """The module proxy first, then the environment variable; a ComponentError naming both when neither."""
    env = os.environ if env is None else env
    try:
        directory, go_sum = fetch(release.module, release.version)
    except ComponentError as exc:
        if "refused" not in str(exc):
            raise
        refusal = str(exc).splitlines()[0].removeprefix(f"{release.component}: ")
    else:
        return Source("module", directory, go_sum)
    value = env.get(release.env_var, "").strip()
    if not value:
        raise ComponentError(release.component, no_source_message(release, refusal))
    return local_source(release, value)


def version_ldflags(release: ProxyRelease) -> str:
    """-X flags for the variables that `kube-oidc-proxy --version` prints (cmd/app/options/misc.go)."""
    major, minor = release.version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": release.version,
        "gitCommit": release.commit,
        "gitTreeState": "clean",
        "gitMajor": major,
        "gitMinor": minor,
    }
    return " ".join(f"-X {VERSION_PACKAGE}.{name}={value}" for name, value in values.items())
