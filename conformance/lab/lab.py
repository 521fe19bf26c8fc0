"""`conformance lab up|down|status|env|kubeconfig|token`: run the local lab on loopback.

Start order: OIDC issuer -> etcd -> kube-apiserver -> lab objects -> controller-manager, scheduler ->
workload (echo + pod log) -> kwok -> kube-oidc-proxy. Any failure stops everything started so far and
raises a ComponentError naming the component with its log tail.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.errors import ComponentError, LabError
from conformance.lab import bootstrap, topology
from conformance.lab.build import Progress, build_all, installed_components
from conformance.lab.harness_config import harness_config
from conformance.lab.issuer import LAB_USERS, TokenKind, mint_token
from conformance.lab.kubeconfigs import kubeconfig_dict, write_kubeconfig
from conformance.lab.paths import lab_dir
from conformance.lab.pki import ensure_pki
from conformance.lab.supervisor import Supervisor, check_health, log_tail, pid_alive
from conformance.lab.topology import NAMESPACE, Layout

START_DEADLINE_S = {
    "issuer": 15,
    "etcd": 30,
    "kube-apiserver": 90,
    "kube-controller-manager": 30,
    "kube-scheduler": 30,
    "workload": 10,
    "kwok": 30,
    "kube-oidc-proxy": 30,
}
KUBECONFIG_TOKEN_LIFETIME_S = 12 * 3600
TARGETS = ("direct", "jetstack")
REQUIRED = ("kubernetes", "etcd", "kwok", "kube-oidc-proxy")


@dataclass
class ComponentStatus:
    name: str
    pid: int
    port: int | None
    alive: bool
    healthy: bool
    detail: str


def state_file() -> Path:
    return lab_dir() / "lab.json"


def harness_config_path() -> Path:
    return lab_dir() / "harness.yaml"


def load_state() -> dict[str, Any] | None:
    path = state_file()
    return json.loads(path.read_text()) if path.is_file() else None


def _binaries(progress: Progress) -> tuple[dict[str, str], dict[str, str], bool]:
    components = installed_components()
    if not all(name in components for name in REQUIRED):
        progress("lab", "some components are not built yet: running `conformance lab build`")
        build_all(progress)
        components = installed_components()
    binaries: dict[str, str] = {}
    versions: dict[str, str] = {}
    for name in REQUIRED:
        binaries.update(components[name].binaries)
        versions[name] = components[name].version
    for name, manifest in components.items():
        if name.startswith("kubectl-"):
            versions[name] = manifest.version
    return binaries, versions, components["kube-oidc-proxy"].standin


def _layout(state: Path, port_base: int, binaries: dict[str, str]) -> Layout:
    pki = ensure_pki(state / "pki")
    return Layout(state=state, port_base=port_base, pki=pki, binaries=binaries, run_as_sandbox_user=os.geteuid() == 0)


def current_layout() -> Layout:
    state = load_state()
    if state is None:
        raise LabError("the lab is not running: start it with `conformance lab up`")
    return _layout(lab_dir(), state["port_base"], state["binaries"])


def status() -> list[ComponentStatus]:
    sup = Supervisor(lab_dir())
    state = load_state()
    ca = str(lab_dir() / "pki" / "ca.crt") if state else None
    result = []
    for rec in sup.records():
        alive = pid_alive(rec.pid)
        healthy, detail = (False, "process not running")
        if alive:
            if rec.health:
                healthy, detail = check_health(rec.health, None if rec.health_insecure else ca, timeout=1.0)
            else:
                healthy, detail = True, "running"
        result.append(ComponentStatus(rec.name, rec.pid, rec.port, alive, healthy, detail))
    return result


def is_up() -> bool:
    components = status()
    return bool(components) and all(c.alive for c in components) and load_state() is not None


def up(emit: Callable[[str], None] = print, port_base: int | None = None) -> dict[str, Any]:
    progress = Progress(emit)
    if is_up():
        progress("lab", f"already up (state in {lab_dir()}); `conformance lab status` shows it")
        state = load_state()
        assert state is not None
        return state
    state_dir = lab_dir()
    sup = Supervisor(state_dir)
    if sup.records():
        progress("lab", "stopping the remains of an earlier lab")
        sup.stop_all()
    binaries, versions, standin = _binaries(progress)
    for stale in ("etcd", "sandbox", "workload", "config"):
        shutil.rmtree(state_dir / stale, ignore_errors=True)
    started_at = time.monotonic()
    layout = _layout(state_dir, topology.choose_port_base(port_base), binaries)
    shutil.rmtree(layout.sandbox, ignore_errors=True)
    progress("lab", f"state {state_dir}, ports {layout.port_base}..{layout.port_base + topology.PORT_BLOCK - 1}")
    try:
        _start_all(layout, sup, progress)
    except BaseException:
        progress("lab", "start-up failed: stopping everything started so far")
        sup.stop_all()
        state_file().unlink(missing_ok=True)
        raise
    state = {
        "port_base": layout.port_base,
        "binaries": binaries,
        "versions": versions,
        "standin_proxy": standin,
        "started": time.time(),
    }
    state_file().write_text(json.dumps(state, indent=2) + "\n")
    config = harness_config(layout, standin_proxy=standin, versions=versions)
    harness_config_path().write_text(yaml.safe_dump(config, sort_keys=False))
    progress("lab", f"up in {time.monotonic() - started_at:.1f}s; harness config {harness_config_path()}")
    return state


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
    minimal_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(layout.sandbox), "LANG": "C.UTF-8"}
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
        t0 = time.monotonic()
        progress(name, f"starting on port {port}" if port else "starting")
        rec = sup.start(name, argv, port=port, health=health, env=env, health_insecure=not verify)
        sup.wait_ready(rec, START_DEADLINE_S[name], ca_file=ca, client_cert=client_cert)
        progress(name, f"healthy (pid {rec.pid}, {time.monotonic() - t0:.1f}s)")

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
        env=minimal_env,
    )
    start(
        "kube-oidc-proxy",
        topology.kube_oidc_proxy_argv(layout),
        f"http://127.0.0.1:{layout.port('kube-oidc-proxy-ready')}/ready",
        layout.port("kube-oidc-proxy"),
        env=minimal_env,
    )
    progress("kwok", "waiting for lab pods to run")
    try:
        bootstrap.wait_pods_running(layout.component_kubeconfig("admin"))
    except LabError as exc:
        rec = next(r for r in sup.records() if r.name == "kwok")
        raise ComponentError("kwok", str(exc), log_tail(rec.log)) from exc


def down(emit: Callable[[str], None] = print) -> list[str]:
    t0 = time.monotonic()
    sup = Supervisor(lab_dir())
    names = [r.name for r in sup.records()]
    sandbox = current_layout().sandbox if load_state() else None
    killed = sup.stop_all()
    if sandbox is not None:
        shutil.rmtree(sandbox, ignore_errors=True)
    state_file().unlink(missing_ok=True)
    harness_config_path().unlink(missing_ok=True)
    if killed:
        emit(f"needed SIGKILL: {', '.join(killed)}")
    emit(f"stopped {len(names)} processes in {time.monotonic() - t0:.1f}s" if names else "the lab was not running")
    return names


def env_lines() -> list[str]:
    layout = current_layout()
    lines = [
        f"export CONFORMANCE_LAB_DIR={layout.state}",
        f"export CONFORMANCE_CONFIG={harness_config_path()}",
        f"export CONFORMANCE_LAB_CA={layout.pki.ca.cert}",
        f"export CONFORMANCE_LAB_APISERVER={layout.url('kube-apiserver')}",
        f"export CONFORMANCE_LAB_JETSTACK={layout.url('kube-oidc-proxy')}",
        f"export CONFORMANCE_LAB_ISSUER={layout.issuer_url}",
        f"export CONFORMANCE_LAB_AUDIT_LOG={layout.audit_log}",
        f"export CONFORMANCE_LAB_ECHO=127.0.0.1:{layout.port('echo')}",
        f"export CONFORMANCE_LAB_ADMIN_KUBECONFIG={layout.component_kubeconfig('admin')}",
        f"export CONFORMANCE_LAB_NAMESPACE={NAMESPACE}",
    ]
    return lines


def target_url(layout: Layout, target: str) -> str:
    if target == "direct":
        return layout.url("kube-apiserver")
    if target == "jetstack":
        return layout.url("kube-oidc-proxy")
    raise LabError(f"unknown lab target {target!r}: choose one of {', '.join(TARGETS)}")


def token(user: str, kind: TokenKind = TokenKind.VALID, lifetime_s: int = 3600) -> str:
    if user not in LAB_USERS:
        raise LabError(f"unknown lab user {user!r}: choose one of {', '.join(LAB_USERS)}")
    layout = current_layout()
    return mint_token(
        layout.pki.oidc_signing_key,
        layout.issuer_url,
        user=user,
        groups=list(LAB_USERS[user]),
        audience=topology.OIDC_AUDIENCE,
        lifetime_s=lifetime_s,
        kind=kind,
    )


def kubeconfig(target: str, user: str, output: Path | None = None) -> Path:
    layout = current_layout()
    server = target_url(layout, target)
    path = output or layout.state / "kubeconfigs" / f"{target}-{user}.kubeconfig"
    return write_kubeconfig(
        path,
        kubeconfig_dict(
            name=f"lab-{target}-{user}",
            server=server,
            ca_file=layout.pki.ca.cert,
            token=token(user, lifetime_s=KUBECONFIG_TOKEN_LIFETIME_S),
            namespace=NAMESPACE,
        ),
    )
