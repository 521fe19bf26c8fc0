"""What one pytest run works with: the config, the clients, the expectations, the cells and the runner.

Built once per pytest process (each xdist worker builds its own, deterministically, from the same
settings). Every bad setting becomes a ConfigError that says where the value came from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conformance.adapters.base import ClientAdapter
from conformance.cells import OPERATIONS, Cell, CellRunner, enumerate_cells
from conformance.config import HarnessConfig, load_config
from conformance.errors import ConfigError, ConformanceError, PreflightStop
from conformance.expectations import Expectations
from conformance.identity import ExpectedIdentity, self_subject_review
from conformance.kubeconfig_credentials import tls_context
from conformance.model import CellResult
from conformance.preflight import PORT_FORWARD_OPS
from conformance.redact import redact
from probes.common import DEFAULT_PAYLOAD_MIB
from probes.idle import DEFAULT_IDLE_S

if TYPE_CHECKING:
    from conformance.plugin import Settings
    from conformance.prefetch import Prefetcher
    from conformance.preflight import Report
    from conformance.workload import WorkloadManager

SESSION_ATTR = "_conformance_session"


class SuiteSession:
    def __init__(
        self, config: HarnessConfig, clients: dict[str, ClientAdapter], expectations: Expectations, settings: Settings
    ) -> None:
        self.config = config
        self.clients = clients
        self.expectations = expectations
        self.settings = settings
        self.expected_identity_record: dict[str, Any] | None = None
        learned = self._learn_identities()
        self.runner = CellRunner(
            config,
            clients,
            expectations,
            float(settings.get("probe-timeout") or 30),
            strict=settings.flag("strict"),
            allow_unavailable=settings.flag("allow-unavailable"),
            expected_identity=learned.get(self._user_name()),
            learned_identities=learned,
            payload_bytes=int(float(settings.get("payload-mib") or DEFAULT_PAYLOAD_MIB) * 1024 * 1024),
            idle_s=float(settings.get("idle-s") or DEFAULT_IDLE_S),
            client_race_retries=_retries(settings.get("client-race-retries")),
        )
        self.prefetcher: Prefetcher | None = None
        # Under pytest -n N (conformance.xdist_groups): this worker's groups, each prefetched on its first cell.
        self._group_of: dict[str, str] = {}
        self._group_cells: dict[str, list[Cell]] = {}
        self._group_prefetchers: dict[str, Prefetcher] = {}
        self._group_concurrency = 1
        self.workload: WorkloadManager | None = None  # set in the one process that owns the workload
        self.preflight: Report | None = None
        self.is_worker = False  # an xdist worker: the controller owns the workload and its checks
        self._worker_checked = False
        versions = (config.raw.get("lab") or {}).get("versions") or {}
        self.cluster_version: str | None = versions.get("kubernetes")

    def _learn_identities(self) -> dict[str, ExpectedIdentity]:
        """Users that declare no identity (--kubeconfig runs): the matrix user and each target's own user."""
        wanted = [self._user_name()] + [t.user for t in self.config.targets.values() if t.user]
        learned: dict[str, ExpectedIdentity] = {}
        for user in dict.fromkeys(wanted):
            if user in self.config.users and self.config.users[user].expected is None:
                learned[user] = self._learn_identity(user)
        return learned

    def _learn_identity(self, user: str) -> ExpectedIdentity:
        """No identity declared for `user` (--kubeconfig runs): ask the API server once, straight through the
        first available target the user is the user of (else the first available target), and compare every cell
        with that answer (the matrix user's is recorded in the results)."""
        targets = [t for t in self.config.targets.values() if t.endpoints["none"].available]
        own = [t for t in targets if t.user == user]
        if not targets:
            raise ConfigError(f"{self.config.path}: no available target to ask who {user!r} is")
        ep = (own or targets)[0].endpoints["none"]
        try:
            credential = self.config.credential(user)
            seen = asyncio.run(
                self_subject_review(
                    ep.server,
                    credential.token or "",
                    ca_file=ep.ca_file,
                    proxy_url=ep.proxy_url,
                    insecure=ep.insecure_skip_tls_verify,
                    tls=tls_context(ep.ca_file, ep.insecure_skip_tls_verify, credential),
                )
            )
        except ConformanceError:
            raise
        except Exception as exc:
            raise ConfigError(
                redact(
                    f"users.{user} declares no `expect` identity and the SelfSubjectReview that would learn it "
                    f"failed at {ep.server}: {type(exc).__name__}: {exc}"
                )
            ) from None
        expected = ExpectedIdentity.from_identity(seen)
        if self.expected_identity_record is None or user == self._user_name():
            self.expected_identity_record = {"user_key": user, **expected.to_dict()}
        return expected

    def _select(self, name: str, known: list[str]) -> list[str]:
        chosen = self.settings.selection(name)
        if chosen is None:
            return known
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigError(
                f"{name} from {self.settings.sources[name]}: unknown {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return chosen

    def result(self, cell: Cell) -> CellResult:
        """This cell's result: from the prefetcher when one runs ahead, else run now."""
        if self.prefetcher is not None:
            return self.prefetcher.result(cell)
        if self.is_worker and (cell.key.operation in PORT_FORWARD_OPS or cell.id in self._group_of):
            self._worker_pod_check()  # before a group's prefetch runs its port-forward cells
        group = self._group_of.get(cell.id)
        if group is not None:
            return self._group_prefetcher(group).result(cell)
        return self.runner.run(cell)

    def plan_worker_groups(self, cells: list[Cell], groups: dict[str, str], total: int, workers: int) -> None:
        """An xdist worker: remember every group's cells; xdist sends each whole group to one worker."""
        from conformance.xdist_groups import worker_concurrency

        self._group_of = dict(groups)
        self._group_cells = {}
        for cell in cells:
            self._group_cells.setdefault(groups[cell.id], []).append(cell)
        self._group_concurrency = worker_concurrency(total, workers)

    def _group_prefetcher(self, group: str) -> Prefetcher:
        """The first cell of a group this worker was given: run the whole group ahead of its tests."""
        from conformance.prefetch import Prefetcher

        prefetcher = self._group_prefetchers.get(group)
        if prefetcher is None:
            prefetcher = Prefetcher(self.runner, self._group_cells[group], self._group_concurrency)
            self._group_prefetchers[group] = prefetcher
        return prefetcher

    def close_prefetchers(self) -> None:
        for prefetcher in [self.prefetcher, *self._group_prefetchers.values()]:
            if prefetcher is not None:
                prefetcher.close()

    def _worker_pod_check(self) -> None:
        """An xdist worker never saw the controller's pod check: it asks once itself whether an existing pod
        has an echo listener, so its port-forward cells are skipped as the controller's would be."""
        if self._worker_checked or self.config.workload.manage:
            return
        self._worker_checked = True
        from conformance.workload import WorkloadManager

        check = WorkloadManager(self.config, self.user(), log=lambda m: None).inspect_pod()
        if check.echo is False:
            self.skip_port_forward(check.echo_reason)

    def skip_port_forward(self, why: str) -> None:
        pod = self.config.workload.pods[0]
        self.runner.skip_operations.update({op: f"no echo listener in pod {pod!r}: {why}" for op in PORT_FORWARD_OPS})

    def start_prefetch(self, cells: list[Cell], concurrency: int) -> None:
        from conformance.prefetch import Prefetcher

        if concurrency > 1 and cells:
            self.prefetcher = Prefetcher(self.runner, cells, concurrency)

    def _user_name(self) -> str:
        user = self.settings.get("user") or "alice"
        implicit = self.settings.sources.get("user") == "default"
        if user not in self.config.users and implicit:
            if len(self.config.users) == 1:
                return next(iter(self.config.users))  # a config with one user (a kubeconfig's): that one
            own = [t.user for t in self.config.targets.values() if t.user]
            if own and len(own) == len(self.config.targets):
                return own[0]  # every target names its user (a kubeconfig's contexts): the first one's
        return user

    def user(self) -> str:
        user = self._user_name()
        if user not in self.config.users:
            raise ConfigError(
                f"user from {self.settings.sources['user']}: {user!r} is not in {self.config.path} "
                f"(users: {', '.join(self.config.users)})"
            )
        return str(user)

    def cells(self) -> list[Cell]:
        targets = self._select("target", list(self.config.targets))
        paths = self._select("path", list(self.config.paths))
        ops = self._select("op", list(OPERATIONS))
        protocols = self.settings.selection("protocol")
        return enumerate_cells(
            self.config,
            self.clients,
            targets=targets,
            paths=paths,
            protocols=set(protocols) if protocols else None,
            operations=ops,
            user=self.user(),
            idle=not self.settings.flag("no-idle"),
        )

    def security_cells(self) -> list[Any]:
        from probes.security import security_cells

        targets = self._select("target", list(self.config.targets))
        paths = self._select("path", list(self.config.paths))
        cells: list[Any] = security_cells(self.config, targets, paths)
        return cells


def _load_harness_config(settings: Settings) -> HarnessConfig:
    if settings.get("config"):
        return load_config(Path(str(settings.get("config"))))
    if settings.get("kubeconfig"):
        from conformance.kubeconfig_config import config_from_kubeconfig

        return config_from_kubeconfig(Path(str(settings.get("kubeconfig"))), settings.get("context"))
    from conformance.lab import lab

    if not lab.is_up():
        raise ConfigError(
            "no --config (CONFORMANCE_CONFIG) or --kubeconfig given, and no local lab is running: "
            "start one with `conformance lab up`, or point --config at your cluster's harness config"
        )
    return load_config(lab.harness_config_path())


def _clients(settings: Settings) -> dict[str, ClientAdapter]:
    """The run's clients: native, python, and each selected kubectl version in its modes (installed on demand)."""
    from conformance.adapters.native import NativeAdapter
    from conformance.adapters.python_client import PythonClientAdapter
    from conformance.kubectl_versions import DEFAULT_MODES, kubectl_minors, modes_for, parse_modes

    where = f"client from {settings.sources.get('client', 'default')}"
    wanted = settings.selection("client") or ["native", "kubectl", "python"]
    mode_specs = parse_modes(
        settings.get("kubectl-modes") or DEFAULT_MODES,
        f"kubectl-modes from {settings.sources.get('kubectl-modes', 'default')}",
    )
    chosen: dict[str, ClientAdapter] = {}
    for name in wanted:
        minors = kubectl_minors(name, where)
        if minors is not None:
            with_modes = [m for m in minors if modes_for(m, mode_specs)]
            if not with_modes:
                raise ConfigError(
                    f"{where}: {name} is selected, but kubectl-modes "
                    f"({settings.get('kubectl-modes') or DEFAULT_MODES}) gives none of its versions a mode"
                )
            for minor in with_modes:
                chosen[f"kubectl-1.{minor}"] = _kubectl(minor, modes_for(minor, mode_specs))
        elif name == "native":
            chosen[name] = NativeAdapter()
        elif name == "python":
            chosen[name] = PythonClientAdapter()
        else:
            raise ConfigError(
                f"{where}: {name!r} is not a client; clients: native, python, kubectl-1.NN, kubectl-1.AA..1.BB, "
                "kubectl (every supported version)"
            )
    return chosen


def _kubectl(minor: int, modes: frozenset[str]) -> ClientAdapter:
    """kubectl 1.`minor`, from the cache or installed now (bounded; a ComponentError says why it could not)."""
    from conformance.adapters.kubectl import KubectlAdapter
    from conformance.lab.build import Progress, install_kubectl, installed_components

    manifest = installed_components().get(f"kubectl-1.{minor}")
    if manifest is None:
        manifest = install_kubectl(Progress(lambda line: print(f"conformance: {line}", file=sys.stderr)), minor)
    return KubectlAdapter(Path(manifest.binaries["kubectl"]), manifest.version, minor, modes)


def session_for(config: pytest.Config) -> SuiteSession:
    existing = getattr(config, SESSION_ATTR, None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    from conformance.plugin import SETTINGS

    settings = config.stash[SETTINGS]
    harness = _with_pod(_load_harness_config(settings), settings)
    # Built-in defaults: the lab's profile for the lab; for a kubeconfig run, only what every API server does.
    default = "lab" if harness.source == "local-lab" else "cluster" if settings.get("kubeconfig") else None
    spec = settings.get("expectations") or default
    session = SuiteSession(harness, _clients(settings), Expectations.load(spec), settings)
    session.is_worker = hasattr(config, "workerinput")
    setattr(config, SESSION_ATTR, session)
    return session


def _with_pod(harness: HarnessConfig, settings: Settings) -> HarnessConfig:
    """--pod NAME: the cells run in that existing pod (the workload's namespace); the harness creates nothing."""
    pod = settings.get("pod")
    if not pod:
        return harness
    workload = dataclasses.replace(harness.workload, pods=(pod,), manage=False)
    return dataclasses.replace(harness, workload=workload)


def current_session(config: pytest.Config) -> SuiteSession | None:
    return getattr(config, SESSION_ATTR, None)


def ensure_workload(config: pytest.Config, nodeids: Sequence[str] | None = None) -> None:
    """Create or check the workload, once per run, in the process that owns it (never an xdist worker).

    `nodeids` is an xdist controller's only view of the run (it never collects): the workload is set up only
    if one of them is a cell, so `pytest -n 4 tests` with a config in the environment creates nothing.
    """
    if nodeids is not None and not any(is_cell_nodeid(config, n) for n in nodeids):
        return  # (a run this config cannot describe: the workers, which do collect cells, report the error)
    session = session_for(config)
    if session.workload is not None:
        return
    from conformance.workload import WorkloadManager

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    verbose = config.getoption("verbose", 0) > 0
    # What the harness makes and deletes in the cluster is always said (a few lines); the pod check only with -v.
    log = (lambda m: reporter.write_line(f"conformance workload: {m}")) if reporter is not None else None
    session.workload = WorkloadManager(session.config, session.user(), log=log)
    if not session.settings.flag("no-preflight"):
        _preflight(session, reporter, verbose)
    session.workload.ensure()
    check = session.workload.pod_check
    if check is not None and check.echo is False:
        session.skip_port_forward(check.echo_reason)


def _preflight(session: SuiteSession, reporter: Any, verbose: bool) -> None:
    """The preflight table (in full when it is not all green, or with -v), and an early stop when nothing could
    work (PreflightStop: pytest's usage-error exit code)."""
    from conformance import preflight

    assert session.workload is not None
    report = preflight.gather(
        session.config,
        session.user(),
        session.workload,
        targets=session._select("target", list(session.config.targets)),
        paths=session._select("path", list(session.config.paths)),
        operations=session._select("op", list(OPERATIONS)),
    )
    session.preflight = report
    if reporter is not None:
        if report.verdict is preflight.Verdict.READY and not verbose:
            reporter.write_line(f"conformance preflight: ready ({len(report.checks)} checks ok; -v shows them)")
        else:
            reporter.section("conformance preflight", sep="-")
            for line in preflight.render(report, advice=not report.stops):
                reporter.write_line(line)
    if report.stops:
        raise PreflightStop(preflight.stop_message(report))


def is_cell_nodeid(config: pytest.Config, nodeid: str) -> bool:
    """On the xdist controller, which never collects: is this node id one of the run's cells?"""
    ids: set[str] | None = getattr(config, "_conformance_cell_ids", None)
    if ids is None:
        try:
            session = session_for(config)
            ids = {c.id for c in session.cells()} | {c.id for c in session.security_cells()}
        except ConformanceError:
            ids = set()
        config._conformance_cell_ids = ids  # type: ignore[attr-defined]
    return _param_id(nodeid) in ids


def _param_id(nodeid: str) -> str | None:
    """`suites/x.py::test_cell[ID]`, or `...[ID]@group` under xdist's loadgroup -> ID."""
    end = nodeid.rfind("]")
    if end < 0 or (nodeid[end + 1 :] and not nodeid[end + 1 :].startswith("@")):
        return None
    start = nodeid.find("[")
    return nodeid[start + 1 : end] if start >= 0 else None


def cleanup_workload(config: pytest.Config) -> None:
    session = current_session(config)
    if session is not None and session.workload is not None:
        session.workload.cleanup()


def _retries(raw: str | None) -> int:
    """--client-race-retries: a whole number from 0 to 5 (each retry reruns the whole cell)."""
    try:
        value = int(raw or "2")
    except ValueError:
        value = -1
    if not 0 <= value <= 5:
        raise pytest.UsageError(f"--client-race-retries must be a whole number from 0 to 5, not {raw!r}")
    return value
