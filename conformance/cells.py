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
from conformance.config import HarnessConfig
from conformance.expectations import Expectations, judge
from conformance.identity import AuditTail, identity_from_audit_event, identity_mismatch, self_subject_review
from conformance.model import CellKey, CellResult, ErrorClass, Evidence, Identity, Observation, Outcome
from conformance.proxy_audit import ProxyAuditLogs, build_chain
from conformance.redact import redact
from probes.common import ProbeContext
from probes.cp import probe_cp_download, probe_cp_upload
from probes.exec import probe_exec, probe_exec_stdin
from probes.follow import probe_attach, probe_logs_follow
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
# Idle probes wait out a path's idle timeout; paths with a longer one (NLB 350 s, squid 900 s) are not
# idled in a run (a cell per path would take minutes), and the matrix lists no such cell.
IDLE_CAP_S = 90.0
AUDIT_WAIT_WORKED_S = 5.0
AUDIT_WAIT_FAILED_S = 1.0
# How long a request the API server finished may take to appear in the proxy's audit log (see above).
PROXY_AUDIT_GRACE_S = 20.0


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
) -> list[Cell]:
    """Every cell of the selection, in a stable order (targets, paths, operations, clients, protocols)."""
    cells = []
    for target in targets:
        for path in paths:
            if path not in config.targets[target].endpoints:
                continue
            idle = config.paths[path].idle_timeout_s if path in config.paths else None
            for op in operations:
                if op == "port-forward-idle" and not (idle and idle <= IDLE_CAP_S):
                    continue
                for client_name, client in clients.items():
                    for protocol in client.protocols(op):
                        if protocols and protocol not in protocols:
                            continue
                        key = CellKey(target=target, path=path, protocol=protocol, operation=op, client=client_name)
                        # A target may name its own user (a service account for token passthrough).
                        cells.append(Cell(key, config.targets[target].user or user))
    return cells


class CellRunner:
    def __init__(
        self,
        config: HarnessConfig,
        clients: dict[str, ClientAdapter],
        expectations: Expectations,
        probe_timeout_s: float,
    ) -> None:
        self.config = config
        self.clients = clients
        self.expectations = expectations
        self.probe_timeout_s = probe_timeout_s
        self.audit = AuditTail(config.audit_log) if config.audit_log else None
        self.proxy_audit = ProxyAuditLogs(
            {name: t.proxy_audit for name, t in config.targets.items() if t.proxy_audit is not None}
        )

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
        ctx = ProbeContext(
            client=client,
            session=session,
            workload=self.config.workload,
            protocol=cell.key.protocol,
            marker=marker,
            idle_timeout_s=path.idle_timeout_s if path else None,
        )
        try:
            idle = (ctx.idle_timeout_s or 0) if cell.key.operation == "port-forward-idle" else 0
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
        return observation

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
        if cell.key.target not in self.proxy_audit:
            return
        worked = observation.error_class is ErrorClass.NONE
        wait = AUDIT_WAIT_WORKED_S if worked else AUDIT_WAIT_FAILED_S
        sub = SUBRESOURCE.get(cell.key.operation)
        event = await asyncio.to_thread(self.proxy_audit.find, cell.key.target, markers, wait, sub)
        finished = True
        if event is None and self.audit is not None:
            # The newest API server event for the request says whether it has ended there (cached lines).
            api_event = await asyncio.to_thread(self.audit.find, markers, SUBRESOURCE.get(cell.key.operation), 0.0)
            finished = api_event is None or api_event.get("stage") != "ResponseStarted"
            if api_event is not None and finished:
                # The proxy logs a request when the client's connection ends, which a client may hold open
                # after its session (a client that leaves its socket to the garbage collector): wait before
                # calling it lost.
                event = await asyncio.to_thread(
                    self.proxy_audit.find, cell.key.target, markers, PROXY_AUDIT_GRACE_S, sub
                )
        chain = build_chain(event, observation.evidence.identity, api_finished=finished)
        observation.evidence.proxy_identity = chain.proxy_identity
        observation.evidence.audit_trail = chain.trail
        # Security cells judge the refusal itself; a refused request has no chain to keep.
        if chain.broken and worked and cell.key.operation in OPERATIONS:
            observation.error_class = ErrorClass.AUDIT_CHAIN_BROKEN
            observation.message = f"the audit chain is broken: {chain.broken}"
            observation.evidence.error = observation.message

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
