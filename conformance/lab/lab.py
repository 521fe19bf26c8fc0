"""`conformance lab up|down|status|env|kubeconfig|token`: run the local lab on loopback.

Start order: OIDC issuer -> etcd -> kube-apiserver -> lab objects -> controller-manager, scheduler ->
workload (echo + pod log) -> kwok -> the kube-oidc-proxies (fork v1.0.11, JetStack v0.3.0, the fork with
--token-passthrough; docs/kube-oidc-proxy.md) -> openunison stand-in -> network paths (all, or
those asked for). Any failure stops everything started so far and raises a ComponentError naming the
component with its log tail.

The openunison target and the paths are "edge" processes: `up` on a running lab starts any asked-for
edge process that is missing or dead without touching the rest, and `status` marks a dead one
unavailable in the harness config.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.errors import ComponentError, LabError
from conformance.lab import bootstrap, edges, fault_paths, network_paths, openunison, topology
from conformance.lab.build import Progress, build_all, installed_components
from conformance.lab.harness_config import harness_config
from conformance.lab.issuer import LAB_USERS, TokenKind, mint_token
from conformance.lab.kubeconfigs import kubeconfig_dict, write_kubeconfig
from conformance.lab.network_paths import NO_PATH, PATH_NAMES, PATHS
from conformance.lab.paths import lab_dir
from conformance.lab.pki import ensure_pki
from conformance.lab.process_memory import session_rss_kib
from conformance.lab.supervisor import ProcessRecord, Supervisor, check_health, log_tail, pid_alive
from conformance.lab.topology import NAMESPACE, Layout

START_DEADLINE_S = {
    "issuer": 15,
    "etcd": 30,
    "kube-apiserver": 90,
    "kube-controller-manager": 30,
    "kube-scheduler": 30,
    "workload": 10,
    "kwok": 30,
    # Each reads the issuer's discovery document before it reports ready.
    **{proxy.name: 30 for proxy in topology.OIDC_PROXIES},
    "openunison-token": 20,
}
KUBECONFIG_TOKEN_LIFETIME_S = 12 * 3600
TARGETS = network_paths.TARGET_NAMES
REQUIRED = ("kubernetes", "etcd", "kwok", *dict.fromkeys(proxy.binary for proxy in topology.OIDC_PROXIES))
KWOK_GOMEMLIMIT = "128MiB"
HEALTH_TIMEOUT_S = 1.0


@dataclass
class ComponentStatus:
    name: str
    pid: int
    port: int | None
    alive: bool
    healthy: bool
    detail: str
    rss_kib: int = 0  # resident memory of the process and its session's children


def state_file() -> Path:
    return lab_dir() / "lab.json"


def harness_config_path() -> Path:
    return lab_dir() / "harness.yaml"


def load_state() -> dict[str, Any] | None:
    path = state_file()
    return json.loads(path.read_text()) if path.is_file() else None


def _save_state(state: dict[str, Any]) -> None:
    _write_atomic(state_file(), json.dumps(state, indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    # Readers (pytest workers, `lab status` run beside them) never see half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _binaries(progress: Progress, paths: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    components = installed_components()
    if not all(name in components for name in REQUIRED):
        progress("lab", "some components are not built yet: running `conformance lab build`")
        build_all(progress)
        components = installed_components()
    software = edges.software_for(paths)
    if not all(name in components for name in software):
        progress("lab", f"checking the network paths' software: {', '.join(software)}")
        build_all(progress, only=software)
        components = installed_components()
    binaries: dict[str, str] = {}
    versions: dict[str, str] = {}
    for name in (*REQUIRED, *software):
        binaries.update(components[name].binaries)
        versions[name] = components[name].version
    for name, manifest in components.items():
        if name.startswith("kubectl-"):
            versions[name] = manifest.version
    return binaries, versions


def _layout(state: Path, port_base: int, binaries: dict[str, str]) -> Layout:
    pki = ensure_pki(state / "pki")
    return Layout(state=state, port_base=port_base, pki=pki, binaries=binaries, run_as_sandbox_user=os.geteuid() == 0)


def current_layout() -> Layout:
    state = load_state()
    if state is None:
        raise LabError("the lab is not running: start it with `conformance lab up`")
    return _layout(lab_dir(), state["port_base"], state["binaries"])


def _alive() -> dict[str, bool]:
    return {rec.name: pid_alive(rec.pid) for rec in Supervisor(lab_dir()).records()}


def status(refresh_config: bool = True) -> list[ComponentStatus]:
    """Each process: alive, healthy, resident memory. Also marks dead edges unavailable in the harness config."""
    sup = Supervisor(lab_dir())
    state = load_state()
    layout = current_layout() if state else None
    records = sup.records()
    rss = session_rss_kib(r.pid for r in records)
    result = []
    for rec in records:
        alive = pid_alive(rec.pid)
        healthy, detail = (False, "process not running")
        if alive:
            if rec.health:
                ca = None if rec.health_insecure or layout is None else edges.health_ca(layout, rec.name)
                healthy, detail = check_health(rec.health, ca, timeout=HEALTH_TIMEOUT_S)
            else:
                healthy, detail = True, "running"
        result.append(
            ComponentStatus(rec.name, rec.pid, rec.port, alive, healthy, detail, rss.get(rec.pid, 0) if alive else 0)
        )
    if refresh_config and state is not None and layout is not None:
        _write_harness_config(layout, state, {c.name: c.alive for c in result})
    return result


def _core_up(alive: dict[str, bool]) -> bool:
    core = [name for name in alive if name not in edges.EDGE_NAMES and not fault_paths.is_fault_process(name)]
    return bool(core) and all(alive[name] for name in core)


def is_up() -> bool:
    """The core lab (API server, targets' dependencies) runs; an edge process may have died (see status)."""
    return load_state() is not None and _core_up(_alive())


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One `up` or `down` at a time per lab directory: several engineers (or test sessions) share one lab,
    and two interleaved start-ups would each stop what the other started."""
    directory = lab_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(
    emit: Callable[[str], None] = print, port_base: int | None = None, paths: Sequence[str] | None = None
) -> dict[str, Any]:
    """Start the lab with `paths` (default: every path). On a running lab, start only the edge processes
    (openunison, asked-for paths) that are missing or dead."""
    with _exclusive():
        return _up(emit, port_base, paths)


def _up(emit: Callable[[str], None], port_base: int | None, paths: Sequence[str] | None) -> dict[str, Any]:
    progress = Progress(emit)
    wanted = network_paths.parse_path_list(None) if paths is None else tuple(p for p in PATH_NAMES if p in paths)
    for name in paths or ():
        network_paths.spec(name)
    state = load_state()
    if state is not None and _core_up(_alive()):
        # A lab started before paths existed has no "paths" entry: give it every path.
        return _repair_edges(state, wanted if paths is not None else tuple(state.get("paths", PATH_NAMES)), progress)
    state_dir = lab_dir()
    sup = Supervisor(state_dir)
    if sup.records():
        progress("lab", "stopping the remains of an earlier lab")
        sup.stop_all()
    binaries, versions = _binaries(progress, wanted)
    for stale in ("etcd", "sandbox", "workload", "config", "paths", "targets"):
        shutil.rmtree(state_dir / stale, ignore_errors=True)
    started_at = time.monotonic()
    layout = _layout(state_dir, topology.choose_port_base(port_base), binaries)
    shutil.rmtree(layout.sandbox, ignore_errors=True)
    edges.remove_rundirs(layout)
    alb_idle = network_paths.alb_idle_timeout_s(os.environ)
    progress("lab", f"state {state_dir}, ports {layout.port_base}..{layout.port_base + topology.PORT_BLOCK - 1}")
    try:
        _start_all(layout, sup, progress)
        _start_edges(layout, sup, progress, (openunison.NAME, *wanted), alb_idle, openunison.release_in())
    except BaseException:
        progress("lab", "start-up failed: stopping everything started so far")
        sup.stop_all()
        edges.remove_rundirs(layout)
        state_file().unlink(missing_ok=True)
        raise
    state = {
        "port_base": layout.port_base,
        "binaries": binaries,
        "versions": versions,
        "service_account_uid": bootstrap.service_account_uid(layout.component_kubeconfig("admin")),
        "paths": list(wanted),
        "alb_idle_timeout_s": alb_idle,
        "openunison_release": openunison.release_in(),
        "started": time.time(),
    }
    _save_state(state)
    _write_harness_config(layout, state, _alive())
    progress("lab", f"up in {time.monotonic() - started_at:.1f}s; harness config {harness_config_path()}")
    return state


def _repair_edges(state: dict[str, Any], wanted: tuple[str, ...], progress: Progress) -> dict[str, Any]:
    alive = _alive()
    missing = tuple(name for name in (openunison.NAME, *wanted) if not alive.get(name, False))
    dead_faults = [n for n in state.get("faults", {}) if not alive.get(fault_paths.path_name(n), False)]
    if dead_faults:
        layout = _layout(lab_dir(), state["port_base"], state["binaries"])
        for name in dead_faults:
            _start_fault(layout, Supervisor(lab_dir()), progress, name, state["faults"][name])
        _write_harness_config(layout, state, _alive())
    if not missing:
        progress("lab", f"already up (state in {lab_dir()}); `conformance lab status` shows it")
        return state
    paths = tuple(p for p in PATH_NAMES if p in (*state.get("paths", ()), *wanted))
    binaries, versions = _binaries(progress, paths)
    state["binaries"].update(binaries)
    state["versions"].update(versions)
    layout = _layout(lab_dir(), state["port_base"], state["binaries"])
    progress("lab", f"core already up; starting {', '.join(missing)}")
    alb_idle = state.setdefault("alb_idle_timeout_s", network_paths.alb_idle_timeout_s(os.environ))
    release = state.setdefault("openunison_release", openunison.MIRRORS_RELEASE)
    _start_edges(layout, Supervisor(lab_dir()), progress, missing, alb_idle, release)
    state["paths"] = list(paths)
    _save_state(state)
    _write_harness_config(layout, state, _alive())
    return state


def _write_harness_config(layout: Layout, state: dict[str, Any], alive: dict[str, bool]) -> None:
    config = harness_config(
        layout,
        service_account_uid=state.get("service_account_uid"),
        versions=state["versions"],
        paths=tuple(state.get("paths", ())),
        alive=alive,
        alb_idle_timeout_s=state.get("alb_idle_timeout_s"),
        faults=state.get("faults"),
        openunison_release=state.get("openunison_release", openunison.MIRRORS_RELEASE),
    )
    text = yaml.safe_dump(config, sort_keys=False)
    path = harness_config_path()
    if not path.is_file() or path.read_text() != text:
        _write_atomic(path, text)


def _start(
    sup: Supervisor,
    progress: Progress,
    name: str,
    argv: list[str],
    health: str | None,
    port: int | None,
    *,
    deadline_s: float,
    env: dict[str, str] | None = None,
    ca: str | None = None,
    client_cert: tuple[str, str] | None = None,
    verify: bool = True,
) -> ProcessRecord:
    t0 = time.monotonic()
    progress(name, f"starting on port {port}" if port else "starting")
    rec = sup.start(name, argv, port=port, health=health, env=env, health_insecure=not verify)
    sup.wait_ready(rec, deadline_s, ca_file=ca, client_cert=client_cert)
    progress(name, f"healthy (pid {rec.pid}, {time.monotonic() - t0:.1f}s)")
    return rec


def _start_edges(
    layout: Layout,
    sup: Supervisor,
    progress: Progress,
    names: Sequence[str],
    alb_idle_timeout_s: int | None,
    openunison_release: str,
) -> None:
    env = _minimal_env(layout)
    for name in names:
        if name == openunison.NAME:
            edge = edges.prepare_openunison(layout, layout.binaries["envoy"], openunison_release)
        else:
            binary = layout.binaries[PATHS[name].software]
            idle = alb_idle_timeout_s if name == "alb" else None
            edge = edges.prepare_path(layout, name, binary, idle_timeout_s=idle)
        _reap_dead(sup, name)
        _start(
            sup,
            progress,
            name,
            edge.argv,
            edge.health,
            edge.port,
            deadline_s=edges.START_DEADLINE_S,
            env=env,
            ca=edge.health_ca,
        )


def _start_fault(layout: Layout, sup: Supervisor, progress: Progress, name: str, hop: dict[str, Any]) -> None:
    from conformance.lab.fault_spec import parse_fault

    process = fault_paths.path_name(name)
    argv = fault_paths.argv(layout, hop["target"], parse_fault(hop["fault"]), hop["port"])
    _reap_dead(sup, process)
    _start(
        sup,
        progress,
        process,
        argv,
        fault_paths.health_url(hop["port"]),
        hop["port"],
        deadline_s=edges.START_DEADLINE_S,
        env=fault_paths.env(),
        ca=str(layout.pki.ca.cert),
    )


def add_fault(
    target: str, fault_text: str, name: str | None = None, emit: Callable[[str], None] = print
) -> dict[str, Any]:
    """Start a fault hop in front of `target` as the path `fault-<name>` of the running lab; returns its
    state entry ({target, fault, port}). A hop of the same name is replaced."""
    from conformance.lab.fault_spec import parse_fault

    fault = parse_fault(fault_text)
    fault_paths.check_target(target, fault)
    name = fault_paths.check_name(name or fault_paths.default_name(target, fault))
    with _exclusive():
        state = load_state()
        if state is None or not _core_up(_alive()):
            raise LabError("the lab is not running: start it with `conformance lab up`")
        sup = Supervisor(lab_dir())
        faults: dict[str, Any] = state.setdefault("faults", {})
        if name in faults:
            sup.stop(fault_paths.path_name(name))
            del faults[name]
        used = {hop["port"] for hop in faults.values()}
        hop = {"target": target, "fault": str(fault), "port": fault_paths.free_port(current_layout(), used)}
        layout = current_layout()
        _start_fault(layout, sup, Progress(emit), name, hop)
        faults[name] = hop
        _save_state(state)
        _write_harness_config(layout, state, _alive())
        emit(f"path {fault_paths.path_name(name)}: {fault} in front of {target} at https://127.0.0.1:{hop['port']}")
        return hop


def remove_fault(name: str, emit: Callable[[str], None] = print) -> bool:
    """Stop fault hop `name` and drop its path from the harness config; False if there was none."""
    with _exclusive():
        state = load_state()
        if state is None:
            raise LabError("the lab is not running: start it with `conformance lab up`")
        stopped = Supervisor(lab_dir()).stop(fault_paths.path_name(name))
        known = state.get("faults", {}).pop(name, None) is not None
        _save_state(state)
        _write_harness_config(current_layout(), state, _alive())
        emit(f"removed path {fault_paths.path_name(name)}" if known or stopped else f"no fault hop named {name!r}")
        return known or stopped


def _reap_dead(sup: Supervisor, name: str) -> None:
    """A dead edge process that was our own child lingers as a zombie until reaped."""
    for rec in sup.records():
        if rec.name == name and not pid_alive(rec.pid):
            try:
                os.waitpid(rec.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _minimal_env(layout: Layout) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(layout.sandbox), "LANG": "C.UTF-8"}


def _prepare_sandbox(layout: Layout) -> None:
    layout.sandbox.mkdir(parents=True, exist_ok=True)
    layout.pod_log.parent.mkdir(parents=True, exist_ok=True)
    layout.pod_log.touch()
    if layout.run_as_sandbox_user:
        os.chown(layout.sandbox, topology.SANDBOX_UID, topology.SANDBOX_UID)
        os.chmod(layout.sandbox, 0o700)
        # kwok's attach/logs read this file as root; keep it readable and the directory traversable.
        os.chmod(layout.pod_log.parent, 0o755)  # noqa: S103 - holds only the fake pod log


def _start_all(layout: Layout, sup: Supervisor, progress: Progress) -> None:
    # kwok v0.8 has no built-in stages; `lab build` copied the ones we use next to its binary.
    stages = sorted((Path(layout.binaries["kwok"]).parent / "stages").glob("*.yaml"))
    topology.write_config_files(layout, stages)
    _prepare_sandbox(layout)
    ca = str(layout.pki.ca.cert)
    admin = (str(layout.pki.clients.admin.cert), str(layout.pki.clients.admin.key))
    minimal_env = _minimal_env(layout)
    python_env = dict(os.environ)

    def start(
        name: str,
        argv: list[str],
        health: str | None,
        port: int | None,
        env: dict[str, str] | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: bool = True,
    ) -> None:
        _start(
            sup,
            progress,
            name,
            argv,
            health,
            port,
            deadline_s=START_DEADLINE_S[name],
            env=env,
            ca=ca,
            client_cert=client_cert,
            verify=verify,
        )

    start("issuer", topology.issuer_argv(layout), f"{layout.issuer_url}/healthz", layout.port("issuer"), env=python_env)
    start(
        "etcd",
        topology.etcd_argv(layout),
        f"http://127.0.0.1:{layout.port('etcd')}/health",
        layout.port("etcd"),
        env=minimal_env,
    )
    start(
        "kube-apiserver",
        topology.apiserver_argv(layout),
        f"{layout.url('kube-apiserver')}/readyz",
        layout.port("kube-apiserver"),
        env=minimal_env,
        client_cert=admin,
    )
    progress("kube-apiserver", "applying lab namespace, RBAC, node and pods")
    bootstrap.apply_lab_objects(layout.component_kubeconfig("admin"))
    start(
        "kube-controller-manager",
        topology.controller_manager_argv(layout),
        f"https://127.0.0.1:{layout.port('kube-controller-manager')}/healthz",
        layout.port("kube-controller-manager"),
        env=minimal_env,
        verify=False,
    )
    start(
        "kube-scheduler",
        topology.scheduler_argv(layout),
        f"https://127.0.0.1:{layout.port('kube-scheduler')}/healthz",
        layout.port("kube-scheduler"),
        env=minimal_env,
        verify=False,
    )
    start(
        "workload",
        topology.workload_argv(layout),
        f"tcp://127.0.0.1:{layout.port('echo')}",
        layout.port("echo"),
        env=python_env,
    )
    start(
        "kwok",
        topology.kwok_argv(layout),
        f"https://127.0.0.1:{layout.port('kwok')}/healthz",
        layout.port("kwok"),
        # A soft heap target for Go's GC: kwok's heap grew to 300 MiB over a long test run, which took the
        # lab past 1 GiB; the limit only makes the collector work earlier, it changes no behaviour.
        env={**minimal_env, "GOMEMLIMIT": KWOK_GOMEMLIMIT},
    )
    for proxy in topology.OIDC_PROXIES:
        start(
            proxy.name,
            topology.kube_oidc_proxy_argv(layout, proxy),
            f"http://127.0.0.1:{layout.port(proxy.name + '-ready')}/ready",
            layout.port(proxy.name),
            env=minimal_env,
        )
    start(
        openunison.TOKEN_PROCESS,
        openunison.token_argv(layout, sys.executable),
        None,
        None,
        env=python_env,
    )
    _wait_token_file(layout, sup, progress)
    progress("kwok", "waiting for lab pods to run")
    try:
        bootstrap.wait_pods_running(layout.component_kubeconfig("admin"))
    except LabError as exc:
        rec = next(r for r in sup.records() if r.name == "kwok")
        raise ComponentError("kwok", str(exc), log_tail(rec.log)) from exc


def _wait_token_file(layout: Layout, sup: Supervisor, progress: Progress) -> None:
    """The openunison stand-in starts only once its ServiceAccount token is there."""
    token = openunison.workdir(layout) / openunison.TOKEN_FILE
    end = time.monotonic() + START_DEADLINE_S[openunison.TOKEN_PROCESS]
    while time.monotonic() < end:
        if token.is_file():
            progress(openunison.TOKEN_PROCESS, "ServiceAccount token written")
            return
        time.sleep(0.2)
    rec = next(r for r in sup.records() if r.name == openunison.TOKEN_PROCESS)
    raise ComponentError(openunison.TOKEN_PROCESS, f"no token in {token}", log_tail(rec.log))


def down(emit: Callable[[str], None] = print) -> list[str]:
    with _exclusive():
        return _down(emit)


def _down(emit: Callable[[str], None]) -> list[str]:
    t0 = time.monotonic()
    sup = Supervisor(lab_dir())
    names = [r.name for r in sup.records()]
    layout = current_layout() if load_state() else None
    killed = sup.stop_all()
    if layout is not None:
        shutil.rmtree(layout.sandbox, ignore_errors=True)
        edges.remove_rundirs(layout)
    state_file().unlink(missing_ok=True)
    harness_config_path().unlink(missing_ok=True)
    if killed:
        emit(f"needed SIGKILL: {', '.join(killed)}")
    emit(f"stopped {len(names)} processes in {time.monotonic() - t0:.1f}s" if names else "the lab was not running")
    return names


def env_lines() -> list[str]:
    layout = current_layout()
    state = load_state() or {}
    started = tuple(state.get("paths", ()))
    lines = [
        f"export CONFORMANCE_LAB_DIR={layout.state}",
        f"export CONFORMANCE_CONFIG={harness_config_path()}",
        f"export CONFORMANCE_LAB_CA={layout.pki.ca.cert}",
        f"export CONFORMANCE_LAB_ALB_CA={layout.pki.alb_ca.cert}",
        f"export CONFORMANCE_LAB_APISERVER={layout.url('kube-apiserver')}",
        *(
            f"export CONFORMANCE_LAB_{_env_name(t)}={target_url(layout, t)}"
            for t in TARGETS
            if t not in ("direct", "openunison", "jetstack-passthrough-sa")
        ),
        f"export CONFORMANCE_LAB_OPENUNISON={layout.url(openunison.NAME)}",
        f"export CONFORMANCE_LAB_ISSUER={layout.issuer_url}",
        f"export CONFORMANCE_LAB_AUDIT_LOG={layout.audit_log}",
        *(
            f"export CONFORMANCE_LAB_{_env_name(p.name)}_AUDIT_LOG={layout.proxy_audit_log(p.name)}"
            for p in topology.OIDC_PROXIES
        ),
        f"export CONFORMANCE_LAB_ECHO=127.0.0.1:{layout.port('echo')}",
        f"export CONFORMANCE_LAB_ADMIN_KUBECONFIG={layout.component_kubeconfig('admin')}",
        f"export CONFORMANCE_LAB_NAMESPACE={NAMESPACE}",
        f"export CONFORMANCE_LAB_PATHS='{' '.join(started)}'",
    ]
    # One line per path and target: CONFORMANCE_LAB_<PATH>_<TARGET> is the URL a client uses; the forward
    # proxy has one CONFORMANCE_LAB_HTTPS_PROXY_URL instead (clients keep the target's own URL).
    for path in started:
        if PATHS[path].forward_proxy:
            proxy_url = network_paths.endpoint(layout, TARGETS[0], path)["proxy_url"]
            lines.append(f"export CONFORMANCE_LAB_{_env_name(path)}_URL={proxy_url}")
            continue
        for target in TARGETS:
            server = network_paths.endpoint(layout, target, path)["server"]
            lines.append(f"export CONFORMANCE_LAB_{_env_name(path)}_{_env_name(target)}={server}")
    return lines


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "")


def target_url(layout: Layout, target: str) -> str:
    return network_paths.target_url(layout, target)


def token(user: str, kind: TokenKind = TokenKind.VALID, lifetime_s: int = 3600) -> str:
    """An OIDC token for a lab user; for the lab service account, a bound token from the TokenRequest API."""
    layout = current_layout()
    if user == topology.LAB_SERVICE_ACCOUNT and kind is TokenKind.VALID:
        return bootstrap.service_account_token(
            layout.component_kubeconfig("admin"), NAMESPACE, user, max(600, min(lifetime_s, 3600))
        )
    if user not in LAB_USERS:
        raise LabError(
            f"unknown lab user {user!r}: choose one of {', '.join(LAB_USERS)} or {topology.LAB_SERVICE_ACCOUNT}"
        )
    return mint_token(
        layout.pki.oidc_signing_key,
        layout.issuer_url,
        user=user,
        groups=list(LAB_USERS[user]),
        audience=topology.OIDC_AUDIENCE,
        lifetime_s=lifetime_s,
        kind=kind,
    )


def kubeconfig(target: str, user: str, output: Path | None = None, path: str = NO_PATH) -> Path:
    """A 0600 kubeconfig for `user` reaching `target` through `path`: the server URL of that path, the CA it
    presents (alb-ca for alb) and, for the HTTPS forward proxy, `proxy-url`."""
    layout = current_layout()
    ep = _path_endpoint(layout, target, path)
    via = "" if path == NO_PATH else f"-via-{path}"
    name = f"lab-{target}{via}-{user}"
    config = kubeconfig_dict(
        name=name,
        server=ep["server"],
        ca_file=ep["ca_file"],
        token=token(user, lifetime_s=KUBECONFIG_TOKEN_LIFETIME_S),
        namespace=NAMESPACE,
    )
    if "proxy_url" in ep:
        clusters: Any = config["clusters"]
        clusters[0]["cluster"]["proxy-url"] = ep["proxy_url"]
    out = output or layout.state / "kubeconfigs" / f"{target}{via}-{user}.kubeconfig"
    return write_kubeconfig(out, config)


def _path_endpoint(layout: Layout, target: str, path: str) -> dict[str, str]:
    if path != NO_PATH:
        network_paths.spec(path)
        if path not in (load_state() or {}).get("paths", ()):
            raise LabError(f"path {path!r} is not running in this lab: `conformance lab up --paths {path}` starts it")
    return network_paths.endpoint(layout, target, path)


CREDENTIALS = ("token", "exec", "client-cert")
EXEC_PLUGIN = Path(__file__).with_name("exec_plugin.py")
EXEC_LIFETIME_S = 20  # short, so a run must refresh it


def own_cluster_kubeconfig(
    routes: Sequence[tuple[str, str]],
    user: str,
    credential: str = "token",
    output: Path | None = None,
    *,
    exec_lifetime_s: int = EXEC_LIFETIME_S,
    exec_log: Path | None = None,
) -> Path:
    """The lab as somebody's own cluster: one 0600 kubeconfig with a context per (target, path) route, all as
    `user` with one credential of the kind a platform team hands out (docs/lab.md):
    - token: an OIDC token from the lab issuer, embedded (12 h);
    - exec: an exec plugin stanza (conformance/lab/exec_plugin.py) that mints a token of `exec_lifetime_s`
      seconds each time it runs, so a run must refresh it; `exec_log` counts its runs;
    - client-cert: a client certificate (CN=user, O=the user's groups) signed by the lab CA, by file path;
      straight to the API server only (a certificate proves nothing to kube-oidc-proxy or OpenUnison).
    The current context is the first route's."""
    if credential not in CREDENTIALS:
        raise LabError(f"credential {credential!r}: choose one of {', '.join(CREDENTIALS)}")
    if user not in LAB_USERS:
        raise LabError(f"unknown lab user {user!r}: choose one of {', '.join(LAB_USERS)}")
    if not routes:
        raise LabError("no target given")
    layout = current_layout()
    user_name = f"lab-{user}-{credential}"
    clusters: list[dict[str, Any]] = []
    contexts: list[dict[str, Any]] = []
    for target, path in routes:
        if credential == "client-cert" and target != "direct":
            raise LabError(f"a client certificate only reaches the API server straight (target direct), not {target}")
        ep = _path_endpoint(layout, target, path)
        name = target if path == NO_PATH else f"{target}-via-{path}"
        cluster: dict[str, Any] = {"server": ep["server"], "certificate-authority": ep["ca_file"]}
        if "proxy_url" in ep:
            cluster["proxy-url"] = ep["proxy_url"]
        clusters.append({"name": f"lab-{name}", "cluster": cluster})
        contexts.append({"name": name, "context": {"cluster": f"lab-{name}", "user": user_name,
                                                   "namespace": NAMESPACE}})
    stanza: dict[str, Any]
    if credential == "token":
        stanza = {"token": token(user, lifetime_s=KUBECONFIG_TOKEN_LIFETIME_S)}
    elif credential == "client-cert":
        from conformance.lab.pki import ClientIdentity

        identity = ClientIdentity(common_name=user, organizations=tuple(LAB_USERS[user]))
        pair = layout.pki.make_client_cert(f"user-{user}", identity)
        stanza = {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
    else:
        args = [str(EXEC_PLUGIN), "--signing-key", str(layout.pki.oidc_signing_key), "--issuer", layout.issuer_url,
                "--user", user, "--groups", ",".join(LAB_USERS[user]), "--audience", topology.OIDC_AUDIENCE,
                "--lifetime", str(exec_lifetime_s)]
        if exec_log is not None:
            args += ["--log", str(exec_log)]
        stanza = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable, "args": args,
                           "interactiveMode": "Never", "provideClusterInfo": False}}
    config: dict[str, object] = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "contexts": contexts,
              "users": [{"name": user_name, "user": stanza}], "current-context": contexts[0]["name"]}
    first = "-".join(c["name"] for c in contexts)
    out = output or layout.state / "kubeconfigs" / f"own-{first}-{user}-{credential}.kubeconfig"
    return write_kubeconfig(out, config)
