"""The network paths the lab puts in front of its targets: what each stands in for, its config, its argv.

A path is one real proxy process (haproxy, nginx, Envoy, squid) configured like the load balancer or proxy
it stands in for, with one listener per target process (`direct`, `jetstack`, `jetstack-0.3`,
`jetstack-passthrough`, `openunison`; `jetstack-passthrough-sa` shares `jetstack-passthrough`'s), except the HTTPS
forward proxy, which clients reach with CONNECT and which therefore has one port for all targets. The
configs are readable templates under `conformance/lab/assets/paths/<path>/`, each with a comment naming
the field behaviour it reproduces (docs/paths.md lists them all).

Pure functions of the lab's layout: nothing here starts a process or writes a file. `lab.py` writes what
`render` returns into the path's work directory and runs `argv` under the supervisor, after the targets.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from conformance.errors import LabError
from conformance.lab.paths import assets_dir
from conformance.lab.pki import CertKeyPair
from conformance.lab.templates import render_template
from conformance.lab.topology import LOOPBACK, Layout

TARGET_NAMES: tuple[str, ...] = (
    "direct",
    "jetstack",
    "jetstack-0.3",
    "jetstack-passthrough",
    "jetstack-passthrough-sa",
    "openunison",
)
# The port-map name of the process each target is.
TARGET_PORT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "direct": "kube-apiserver",
        "jetstack": "kube-oidc-proxy",
        "jetstack-0.3": "kube-oidc-proxy-0.3",
        "jetstack-passthrough": "kube-oidc-proxy-passthrough",
        # The same proxy as jetstack-passthrough, reached with a service-account token instead.
        "jetstack-passthrough-sa": "kube-oidc-proxy-passthrough",
        "openunison": "openunison",
    }
)
# Each path has one listener per process behind it; targets sharing a process share its listener.
LISTENER_OF: Mapping[str, str] = MappingProxyType(
    {t: ("jetstack-passthrough" if t == "jetstack-passthrough-sa" else t) for t in TARGET_NAMES}
)
LISTENER_NAMES: tuple[str, ...] = tuple(dict.fromkeys(LISTENER_OF.values()))
NO_PATH = "none"
ALB_IDLE_TIMEOUT_ENV = "CONFORMANCE_LAB_ALB_IDLE_TIMEOUT"
# Bounds for the override: a zero timeout would cut every request; an hour is AWS's own maximum.
ALB_IDLE_TIMEOUT_RANGE_S = (1, 4000)
# squid refuses to run as root: as root it drops to this user, which must own its run directory.
SQUID_USER, SQUID_GROUP = "nobody", "nogroup"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathSpec:
    """One kind of network path: what it is, what it reproduces, and how the lab runs it."""

    name: str
    kind: str
    software: str  # the component that runs it: haproxy, nginx, envoy or squid
    stands_in_for: str
    reproduces: str  # the field behaviour, as recorded in shared/reference/FIELD.md and LAB.md
    template: str  # under conformance/lab/assets/paths/
    config_file: str  # the rendered template's name in the path's work directory
    idle_timeout_s: int  # the default, as the real thing has it
    client_ca: str  # which CA a client must trust: "lab" (the cluster CA) or "alb" (alb-ca)
    serving_cert: str | None  # the PKI serving cert it presents when it terminates TLS
    forward_proxy: bool = False  # reached with CONNECT (kubeconfig proxy-url), not as the server URL
    # Refusals the path's software makes itself (harness config `answers:`, docs/config.md), so a cell can
    # say which hop refused.
    answers: tuple[Mapping[str, object], ...] = ()


PATHS: Mapping[str, PathSpec] = MappingProxyType(
    {
        "nlb": PathSpec(
            name="nlb",
            kind="l4-tcp-passthrough",
            software="haproxy",
            stands_in_for="AWS Network Load Balancer, TCP listener",
            reproduces="TLS end to end; SPDY and WebSocket upgrades pass untouched; 350 s TCP idle timeout",
            template="nlb/haproxy.cfg.tmpl",
            config_file="haproxy.cfg",
            idle_timeout_s=350,
            client_ca="lab",
            serving_cert=None,
        ),
        "alb": PathSpec(
            name="alb",
            kind="l7-load-balancer",
            software="haproxy",
            stands_in_for="AWS Application Load Balancer, HTTPS listener",
            reproduces=(
                "terminates TLS with a public (alb-ca) certificate, ALPN h2,http/1.1; passes WebSocket, strips "
                "any other Upgrade so SPDY exec gets 400 `Upgrade request required` from the API server; "
                "60 s idle timeout"
            ),
            template="alb/haproxy.cfg.tmpl",
            config_file="haproxy.cfg",
            idle_timeout_s=60,
            client_ca="alb",
            serving_cert="alb",
        ),
        "ingress": PathSpec(
            name="ingress",
            kind="l7-ingress",
            software="nginx",
            stands_in_for="ingress-nginx with an HTTPS backend",
            reproduces=(
                "passes any Upgrade (proxy_http_version 1.1 + $connection_upgrade); 60 s proxy read/send "
                "timeouts; 1m body limit; re-encrypts to the target"
            ),
            template="ingress/nginx.conf.tmpl",
            config_file="nginx.conf",
            idle_timeout_s=60,
            client_ca="lab",
            serving_cert="ingress",
        ),
        "gateway": PathSpec(
            name="gateway",
            kind="l7-gateway",
            software="envoy",
            stands_in_for="Envoy-based gateway (Istio ingress gateway, Envoy Gateway) with default upgrade_configs",
            reproduces="upgrade_configs websocket only: Envoy itself refuses a SPDY upgrade (403); WebSocket passes",
            template="gateway/envoy.yaml.tmpl",
            config_file="envoy.yaml",
            idle_timeout_s=300,
            client_ca="lab",
            serving_cert="gateway",
            answers=(
                {"status": 403, "means": "upgrade-refused",
                 "why": "Envoy refuses an upgrade type missing from upgrade_configs with an empty 403"},
            ),
        ),
        "https-proxy": PathSpec(
            name="https-proxy",
            kind="forward-proxy",
            software="squid",
            stands_in_for="corporate HTTPS forward proxy reached with CONNECT (kubeconfig proxy-url)",
            reproduces="CONNECT tunnel to the target, TLS end to end; any upgrade passes; 15 min tunnel read timeout",
            template="https-proxy/squid.conf.tmpl",
            config_file="squid.conf",
            idle_timeout_s=900,
            client_ca="lab",
            serving_cert=None,
            forward_proxy=True,
        ),
    }
)
PATH_NAMES: tuple[str, ...] = tuple(PATHS)
# The software each path needs, for `lab build` and the harness config's versions.
PATH_SOFTWARE: tuple[str, ...] = tuple(dict.fromkeys(spec.software for spec in PATHS.values()))


@dataclass(frozen=True, slots=True, kw_only=True)
class PathInstance:
    """Everything needed to render and run one path process."""

    spec: PathSpec
    workdir: Path  # its config (and, unless `rundir` says otherwise, its pid, logs and temp files)
    rundir: Path  # where the process itself writes
    listen: Mapping[str, int]  # target name -> port; a forward proxy has one port, under "proxy"
    upstream: Mapping[str, int]  # target name -> the target's own port
    lab_ca: Path
    serving: CertKeyPair | None
    idle_timeout_s: int
    admin_port: int | None
    as_root: bool

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def config_path(self) -> Path:
        return self.workdir / self.spec.config_file


def spec(name: str) -> PathSpec:
    if name not in PATHS:
        raise LabError(f"unknown network path {name!r}: choose from {', '.join(PATH_NAMES)}")
    return PATHS[name]


def parse_path_list(text: str | None) -> tuple[str, ...]:
    """`"nlb,alb"` -> ("nlb", "alb") in the canonical order; None or "all" -> every path; "none" -> ()."""
    if text is None or text.strip() == "all":
        return PATH_NAMES
    if text.strip() in ("", NO_PATH):
        return ()
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    for name in wanted:
        spec(name)
    return tuple(p for p in PATH_NAMES if p in wanted)


def alb_idle_timeout_s(env: Mapping[str, str]) -> int:
    """The alb's idle timeout: CONFORMANCE_LAB_ALB_IDLE_TIMEOUT (seconds) or the AWS default, 60."""
    raw = env.get(ALB_IDLE_TIMEOUT_ENV, "").strip()
    if not raw:
        return PATHS["alb"].idle_timeout_s
    low, high = ALB_IDLE_TIMEOUT_RANGE_S
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise LabError(f"{ALB_IDLE_TIMEOUT_ENV}={raw!r}: expected whole seconds from {low} to {high}")
    return int(raw)


def port_name(path: str, target: str) -> str:
    """The topology port name of `path`'s listener for `target` (the forward proxy: its one port)."""
    return path if PATHS[path].forward_proxy else f"{path}-{LISTENER_OF.get(target, target)}"


def placeholder(name: str) -> str:
    """A listener's name as a template placeholder suffix: `jetstack-0.3` -> `jetstack_0_3`."""
    return name.replace("-", "_").replace(".", "_")


def target_url(layout: Layout, target: str) -> str:
    if target not in TARGET_PORT_NAMES:
        raise LabError(f"unknown lab target {target!r}: choose one of {', '.join(TARGET_NAMES)}")
    return layout.url(TARGET_PORT_NAMES[target])


def client_ca_file(layout: Layout, path: str) -> Path:
    """The CA a client must trust to reach a target through `path` (what the path presents)."""
    if path != NO_PATH and spec(path).client_ca == "alb":
        return layout.pki.alb_ca.cert
    return layout.pki.ca.cert


def endpoint(layout: Layout, target: str, path: str) -> dict[str, str]:
    """How a client reaches `target` through `path`: server URL, CA file, and the proxy URL if any."""
    server = target_url(layout, target)
    result = {"server": server, "ca_file": str(client_ca_file(layout, path))}
    if path == NO_PATH:
        return result
    if spec(path).forward_proxy:
        result["proxy_url"] = f"http://{LOOPBACK}:{layout.port(port_name(path, target))}"
    else:
        result["server"] = layout.url(port_name(path, target))
    return result


def workdir(layout: Layout, name: str) -> Path:
    return layout.state / "paths" / name


def rundir(layout: Layout, name: str) -> Path:
    # squid run as root drops to `nobody`, which cannot reach a state directory under a 0700 home: its
    # writable files then live in the system temp dir, named by the lab's (unique) port block.
    if PATHS[name].software == "squid" and layout.run_as_sandbox_user:
        return Path(tempfile.gettempdir()) / f"conformance-lab-{name}-{layout.port_base}"
    return workdir(layout, name)


def instance(
    layout: Layout,
    name: str,
    *,
    serving: CertKeyPair | None,
    idle_timeout_s: int | None = None,
    listen: Mapping[str, int] | None = None,
    work: Path | None = None,
) -> PathInstance:
    """The path `name` of this lab; `listen`, `work` and `idle_timeout_s` override the lab's own, so that
    a test can run a second instance (e.g. an alb with a short idle timeout) beside the lab's."""
    path = spec(name)
    own_ports = listen is None
    if path.serving_cert is not None and serving is None:
        raise LabError(f"path {name} terminates TLS and needs its serving certificate ({path.serving_cert})")
    if listen is None:
        keys = ("proxy",) if path.forward_proxy else LISTENER_NAMES
        listen = {key: layout.port(port_name(name, key)) for key in keys}
    wd = work or workdir(layout, name)
    return PathInstance(
        spec=path,
        workdir=wd,
        rundir=rundir(layout, name) if work is None else wd,
        listen=MappingProxyType(dict(listen)),
        upstream=MappingProxyType({t: layout.port(TARGET_PORT_NAMES[t]) for t in LISTENER_NAMES}),
        lab_ca=layout.pki.ca.cert,
        serving=serving,
        idle_timeout_s=path.idle_timeout_s if idle_timeout_s is None else idle_timeout_s,
        # A second instance (a test's) lets Envoy pick a free admin port.
        admin_port=(layout.port(f"{name}-admin") if own_ports else 0) if path.software == "envoy" else None,
        as_root=layout.run_as_sandbox_user,
    )


def render(inst: PathInstance) -> dict[str, str]:
    """The files to write into the path's work directory: {file name: text}."""
    values: dict[str, object] = {
        "workdir": inst.workdir,
        "rundir": inst.rundir,
        "lab_ca": inst.lab_ca,
        "idle_timeout_s": inst.idle_timeout_s,
        **{f"listen_{placeholder(key)}": port for key, port in inst.listen.items()},
        **{f"upstream_{placeholder(target)}": port for target, port in inst.upstream.items()},
    }
    if inst.serving is not None:
        values.update(cert=inst.serving.cert, key=inst.serving.key)
    software = inst.spec.software
    if software == "envoy":
        values["admin_port"] = inst.admin_port or 0
    if software == "nginx":
        # As root nginx would run its workers as nobody, who cannot reach a state dir under a 0700 home.
        values["user_directive"] = "user root root;" if inst.as_root else "# workers run as the lab's own user"
    if software == "squid":
        values["effective_user_directive"] = (
            f"cache_effective_user {SQUID_USER}\ncache_effective_group {SQUID_GROUP}"
            if inst.as_root
            else "# squid runs as the lab's own user"
        )
    return {inst.spec.config_file: render_template(assets_dir() / "paths" / inst.spec.template, values)}


def argv(inst: PathInstance, binary: str) -> list[str]:
    """The path process's command line; each runs in the foreground with its own config, pid and logs."""
    config = str(inst.config_path)
    software = inst.spec.software
    if software == "haproxy":
        return [binary, "-db", "-f", config]
    if software == "nginx":
        return [binary, "-p", f"{inst.workdir}/", "-c", config, "-e", "stderr"]
    if software == "envoy":
        return envoy_argv(binary, inst.config_path)
    if software == "squid":
        return [binary, "-N", "-n", squid_service_name(inst), "-f", config]
    raise LabError(f"no command line for {software}")


def squid_service_name(inst: PathInstance) -> str:
    """squid names its shared-memory segments after this (`/dev/shm/<name>-cf__*.shm`), so two labs' squids
    must not share it; it is also the prefix of the stale segments a killed squid leaves behind."""
    return f"conformancelab{inst.listen['proxy']}"


def envoy_argv(binary: str, config: Path) -> list[str]:
    # One worker thread is plenty on loopback and keeps memory low; no hot restart, so no shared memory
    # and no base-id to keep apart between two Envoys (gateway and the openunison stand-in).
    return [
        binary,
        "-c",
        str(config),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        # Access logs reach the file within half a second (default 10 s), so a test can read the evidence.
        "--file-flush-interval-msec",
        "500",
        "--log-level",
        "warning",
    ]


def health_url(inst: PathInstance) -> str:
    """End to end through the path to the API server's /livez (public); the forward proxy: its port."""
    if inst.spec.forward_proxy:
        return f"tcp://{LOOPBACK}:{inst.listen['proxy']}"
    return f"https://{LOOPBACK}:{inst.listen['direct']}/livez"


def writable_dirs(inst: PathInstance) -> list[Path]:
    """Directories to create (and, for squid as root, to hand to its user) before the process starts."""
    dirs = [inst.workdir, inst.rundir]
    if inst.spec.software == "nginx":
        dirs.append(inst.workdir / "tmp")
    return list(dict.fromkeys(dirs))
