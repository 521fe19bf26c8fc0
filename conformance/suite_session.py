"""What one pytest run works with: the config, the clients, the expectations, the cells and the runner.

Built once per pytest process (each xdist worker builds its own, deterministically, from the same
settings). Every bad setting becomes a ConfigError that says where the value came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conformance.adapters.base import ClientAdapter
from conformance.cells import OPERATIONS, Cell, CellRunner, enumerate_cells
from conformance.config import HarnessConfig, load_config
from conformance.errors import ConfigError, ConformanceError
from conformance.expectations import Expectations
from conformance.identity import ExpectedIdentity, self_subject_review
from conformance.kubeconfig_credentials import tls_context
from conformance.model import CellResult
from conformance.redact import redact
from probes.common import DEFAULT_PAYLOAD_MIB
from probes.idle import DEFAULT_IDLE_S

if TYPE_CHECKING:
    from conformance.plugin import Settings
    from conformance.prefetch import Prefetcher
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
        )
        self.prefetcher: Prefetcher | None = None
        self.workload: WorkloadManager | None = None  # set in the one process that owns the workload
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
        return self.runner.run(cell)

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
    from conformance.adapters.kubectl import KubectlAdapter
    from conformance.lab.build import installed_components

    installed = {n: m for n, m in installed_components().items() if n.startswith("kubectl-")}
    wanted = settings.selection("client")
    available: dict[str, ClientAdapter] = {}
    from conformance.adapters.native import NativeAdapter
    from conformance.adapters.python_client import PythonClientAdapter

    available["native"] = NativeAdapter()
    for name, manifest in sorted(installed.items()):
        minor = int(name.split(".")[1])
        available[name] = KubectlAdapter(Path(manifest.binaries["kubectl"]), manifest.version, minor)
    available["python"] = PythonClientAdapter()
    if wanted is None:
        return available
    chosen: dict[str, ClientAdapter] = {}
    for name in wanted:
        if name == "kubectl":
            chosen.update({k: v for k, v in available.items() if k.startswith("kubectl-")})
        elif name in available:
            chosen[name] = available[name]
        else:
            raise ConfigError(
                f"client from {settings.sources['client']}: {name!r} is not available; available: "
                f"{', '.join(available) or 'none'} (kubectl versions come from `conformance lab build`)"
            )
    return chosen


def session_for(config: pytest.Config) -> SuiteSession:
    existing = getattr(config, SESSION_ATTR, None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    from conformance.plugin import SETTINGS

    settings = config.stash[SETTINGS]
    harness = _load_harness_config(settings)
    spec = settings.get("expectations") or ("lab" if harness.source == "local-lab" else None)
    session = SuiteSession(harness, _clients(settings), Expectations.load(spec), settings)
    setattr(config, SESSION_ATTR, session)
    return session


def current_session(config: pytest.Config) -> SuiteSession | None:
    return getattr(config, SESSION_ATTR, None)


def ensure_workload(config: pytest.Config, nodeids: Sequence[str] | None = None) -> None:
    """Create or check the workload, once per run, in the process that owns it (never an xdist worker).

    `nodeids` is an xdist controller's only view of the run (it never collects): the workload is set up only
    if one of them is a cell, so `pytest -n 4 tests` with a config in the environment creates nothing.
    """
    if nodeids is not None:
        try:
            session = session_for(config)
            cells = {c.id for c in session.cells()} | {c.id for c in session.security_cells()}
        except ConformanceError:
            return  # not a run this config can describe: workers that do collect cells report the error
        if not any(n.endswith("]") and n[n.rfind("[") + 1 : -1] in cells for n in nodeids):
            return
    session = session_for(config)
    if session.workload is not None:
        return
    from conformance.workload import WorkloadManager

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    log = (lambda m: reporter.write_line(f"conformance workload: {m}")) if reporter is not None else None
    session.workload = WorkloadManager(session.config, session.user(), log=log)
    session.workload.ensure()


def cleanup_workload(config: pytest.Config) -> None:
    session = current_session(config)
    if session is not None and session.workload is not None:
        session.workload.cleanup()
