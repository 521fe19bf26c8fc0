"""Cells: which ones exist for a config and a selection, and how one is run, checked and judged.

A cell runs its probe under a deadline, then finds the identity the API server applied to *that* request
(audit event by marker, else SelfSubjectReview through the same target and path), checks it against the
config, and judges the observation against its expectation. A harness bug becomes an `error` cell; it
never stops the run.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from conformance.adapters.base import ClientAdapter, Session
from conformance.adapters.raw import RAW
from conformance.budgets import Budgets
from conformance.config import HarnessConfig
from conformance.expectations import Expectations, judge
from conformance.identity import AuditTail, identity_from_audit_event, identity_mismatch, self_subject_review
from conformance.model import CellKey, CellResult, ErrorClass, Evidence, Identity, Observation, Outcome
from conformance.redact import redact
from probes.common import DEFAULT_PAYLOAD_MIB, ProbeContext
from probes.cp import probe_cp_download, probe_cp_upload
from probes.exec import probe_exec, probe_exec_idle, probe_exec_stdin
from probes.follow import probe_attach, probe_logs_follow
from probes.idle import DEFAULT_IDLE_S, idle_silence
from probes.plain import probe_tls, probe_watch, probe_whoami
from probes.port_forward import (
    probe_port_forward,
    probe_port_forward_concurrent,
    probe_port_forward_idle,
    probe_port_forward_ports,
)

Probe = Callable[[ProbeContext], Awaitable[Observation]]
OPERATIONS: dict[str, Probe] = {
    "exec": probe_exec,
    "exec-stdin": probe_exec_stdin,
    "exec-idle": probe_exec_idle,
    "attach": probe_attach,
    "cp-upload": probe_cp_upload,
    "cp-download": probe_cp_download,
    "port-forward": probe_port_forward,
    "port-forward-concurrent": probe_port_forward_concurrent,
    "port-forward-ports": probe_port_forward_ports,
    "port-forward-idle": probe_port_forward_idle,
    "logs-follow": probe_logs_follow,
    "watch": probe_watch,
    "whoami": probe_whoami,
    "tls": probe_tls,
}
# The audit subresource of each operation's request (None: matched by user agent alone, or no request).
SUBRESOURCE: dict[str, str | None] = {
    "exec": "exec",
    "exec-stdin": "exec",
    "exec-idle": "exec",
    "cp-upload": "exec",
    "cp-download": "exec",
    "attach": "attach",
    "port-forward": "portforward",
    "port-forward-concurrent": "portforward",
    "port-forward-ports": "portforward",
    "port-forward-idle": "portforward",
    "logs-follow": "log",
    "watch": None,
    "whoami": None,
}
ELEVATED_GROUP = "system:masters"
# Every path gets idle cells (probes.idle: the declared timeout + a margin, or the default silence).
IDLE_OPERATIONS = ("port-forward-idle", "exec-idle")
AUDIT_WAIT_WORKED_S = 5.0
AUDIT_WAIT_FAILED_S = 1.0


@dataclass(frozen=True)
class Cell:
    key: CellKey
    user: str

    @property
    def id(self) -> str:
        return self.key.id


def probe_for(operation: str) -> Probe:
    if operation in OPERATIONS:
        return OPERATIONS[operation]
    from probes.security import SECURITY_CHECKS  # imports this module: loaded on first use

    return SECURITY_CHECKS[operation]


def enumerate_cells(
    config: HarnessConfig,
    clients: dict[str, ClientAdapter],
    *,
    targets: Iterable[str],
    paths: Iterable[str],
    protocols: set[str] | None,
    operations: Iterable[str],
    user: str,
    idle: bool = True,
) -> list[Cell]:
    """Every cell of the selection, in a stable order (targets, paths, operations, clients, protocols).
    `idle=False` (--no-idle) leaves out the idle cells."""
    cells = []
    for target in targets:
        for path in paths:
            if path not in config.targets[target].endpoints:
                continue
            for op in operations:
                if op in IDLE_OPERATIONS and not idle:
                    continue
                for client_name, client in clients.items():
                    for protocol in client.protocols(op):
                        if protocols and protocol not in protocols:
                            continue
                        key = CellKey(target=target, path=path, protocol=protocol, operation=op, client=client_name)
                        cells.append(Cell(key, user))
    return cells


class CellRunner:
    def __init__(
        self,
        config: HarnessConfig,
        clients: dict[str, ClientAdapter],
        expectations: Expectations,
        probe_timeout_s: float,
        *,
        payload_bytes: int = DEFAULT_PAYLOAD_MIB * 1024 * 1024,
        idle_s: float = DEFAULT_IDLE_S,
        budgets: Budgets | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.expectations = expectations
        self.probe_timeout_s = probe_timeout_s
        self.payload_bytes = payload_bytes
        self.idle_s = idle_s  # the default silence (--idle-s); a path's declared timeout decides first
        self.budgets = budgets if budgets is not None else Budgets.parse(config.raw.get("budgets"))
        self.audit = AuditTail(config.audit_log) if config.audit_log else None

    def run(self, cell: Cell) -> CellResult:
        return asyncio.run(self.run_async(cell))

    async def run_async(self, cell: Cell) -> CellResult:
        started = time.monotonic()
        expectation = self.expectations.for_cell(cell.key)
        client = RAW if cell.key.client == RAW.name else self.clients[cell.key.client]
        try:
            observation = await self._observe(cell, client)
        except Exception as exc:
            tb = redact("".join(traceback.format_exception_only(exc)).strip())
            observation = Observation(error_class=ErrorClass.HARNESS, evidence=Evidence(error=tb), message=tb)
        outcome, message = judge(expectation, observation)
        observation.evidence.error = redact(observation.evidence.error) if observation.evidence.error else None
        return CellResult(
            key=cell.key,
            client_version=client.version,
            outcome=outcome,
            error_class=observation.error_class,
            expectation=expectation,
            evidence=observation.evidence,
            message=redact(message),
            duration_s=round(time.monotonic() - started, 3),
        )

    async def _observe(self, cell: Cell, client: ClientAdapter) -> Observation:
        target = self.config.targets[cell.key.target]
        endpoint = target.endpoints[cell.key.path]
        if not endpoint.available:
            return Observation(
                error_class=ErrorClass.NONE,
                evidence=Evidence(),
                skipped=True,
                message=f"path {cell.key.path} to {cell.key.target} is marked unavailable",
            )
        marker = f"c{secrets.token_hex(6)}"
        session = Session(
            endpoint=endpoint,
            token=self.config.token(cell.user),
            namespace=self.config.workload.namespace,
            user_agent=f"k8s-streaming-conformance/{cell.id}/{marker}",
            timeout_s=self.probe_timeout_s,
            expect_user=self.config.users[cell.user].expect.get("user"),
            bad_token=lambda kind: self.config.bad_token(cell.user, kind),
        )
        path = self.config.paths.get(cell.key.path)
        # The shorter of what the path and the target itself declare for a silent session.
        declared = [t for t in (path.idle_timeout_s if path else None, target.idle_timeout_s) if t]
        ctx = ProbeContext(
            client=client,
            session=session,
            workload=self.config.workload,
            protocol=cell.key.protocol,
            marker=marker,
            payload_bytes=self.payload_bytes,
            idle_timeout_s=min(declared) if declared else None,
            idle_s=idle_silence(min(declared) if declared else None, self.idle_s),
            workload_ticks=self.config.source == "local-lab",
        )
        try:
            idle = ctx.idle_s if cell.key.operation in IDLE_OPERATIONS else 0
            budget = self.probe_timeout_s + 5 + idle
            async with asyncio.timeout(budget):
                observation = await probe_for(cell.key.operation)(ctx)
        except TimeoutError:
            observation = Observation(
                error_class=ErrorClass.TIMEOUT,
                evidence=Evidence(),
                message=f"no result within {self.probe_timeout_s:.0f}s",
            )
        observation.evidence.protocol_requested = cell.key.protocol
        if cell.key.operation != "tls":
            await self._identity(cell, observation, marker, session)
        self._judge_budget(cell, observation)
        return observation

    def _judge_budget(self, cell: Cell, observation: Observation) -> None:
        """A worked cell beyond a `budgets:` limit of the config is too-slow (measured value and budget)."""
        if observation.error_class is not ErrorClass.NONE or observation.skipped:
            return
        over = self.budgets.exceeded(cell.key.operation, observation.evidence.timings)
        if over:
            observation.error_class = ErrorClass.TOO_SLOW
            observation.message = f"worked, but too slow: {over}"
            observation.evidence.error = observation.message

    async def _identity(self, cell: Cell, observation: Observation, marker: str, session: Session) -> None:
        """Attach the identity the API server applied; a wrong one turns a worked cell into wrong-identity."""
        if cell.key.operation not in OPERATIONS and not observation.identity_decides:
            return  # a refused security request: its status line is the evidence
        target = self.config.targets[cell.key.target]
        expect = self.config.users[cell.user].expect
        worked = observation.error_class is ErrorClass.NONE
        identity = None
        markers = [marker] + [
            n.removeprefix("marker: ?") for n in observation.evidence.notes if n.startswith("marker: ")
        ]
        if self.audit is not None:
            wait = AUDIT_WAIT_WORKED_S if worked else AUDIT_WAIT_FAILED_S
            event = await asyncio.to_thread(self.audit.find, markers, SUBRESOURCE.get(cell.key.operation), wait)
            if event is not None:
                identity = identity_from_audit_event(event)
        if identity is None and worked:
            try:
                identity = await self_subject_review(
                    session.endpoint.server,
                    session.token,
                    ca_file=session.endpoint.ca_file,
                    proxy_url=session.endpoint.proxy_url,
                    insecure=session.endpoint.insecure_skip_tls_verify,
                )
            except Exception as exc:
                observation.evidence.notes.append(redact(f"no identity evidence: {exc}"))
        observation.evidence.identity = identity
        await self._proxy_audit_trail(cell, observation, markers)
        if observation.identity_decides:
            self._identity_verdict(observation, identity, expect)
            return
        if identity is None or not worked or cell.key.operation not in OPERATIONS:
            return  # security cells judge identity in their probe (or through identity_decides)
        problem = identity_mismatch(identity, expect, target.impersonating_proxy)
        if problem:
            observation.error_class = ErrorClass.WRONG_IDENTITY
            observation.message = f"the API server saw the wrong identity: {problem}"
            observation.evidence.error = observation.message

    async def _proxy_audit_trail(self, cell: Cell, observation: Observation, markers: list[str]) -> None:
        """The impersonating proxy's own audit record of this request, where the target has one: fills
        `evidence.proxy_identity` and `evidence.audit_trail`; a broken chain is AUDIT_CHAIN_BROKEN."""
        return None

    @staticmethod
    def _identity_verdict(observation: Observation, identity: Identity | None, expect: dict[str, Any]) -> None:
        """A security request was accepted: it is fine only if the API server still saw the plain user."""
        if identity is None:
            observation.error_class = ErrorClass.PROTOCOL_ERROR
            observation.message = "the request was accepted and no audit event shows who ran it"
        elif identity.user != expect.get("user") or ELEVATED_GROUP in identity.groups:
            observation.error_class = ErrorClass.ELEVATED
            observation.message = f"the API server ran it as {identity.user} {identity.groups}"
        else:
            observation.message = f"accepted, but the API server still saw {identity.user}: not elevated"
        observation.evidence.error = observation.message if observation.error_class is not ErrorClass.NONE else None


__all__ = ["OPERATIONS", "Cell", "CellRunner", "Outcome", "enumerate_cells"]
