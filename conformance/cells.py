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
from pathlib import Path

from conformance.adapters.base import ClientAdapter, Session
from conformance.adapters.kubectl import audit_note
from conformance.adapters.raw import RAW
from conformance.budgets import Budgets
from conformance.classify import answers_for, attribute
from conformance.client_races import RACE_CLASSES
from conformance.config import HarnessConfig
from conformance.expectations import Expectations, judge
from conformance.identity import (
    AuditTail,
    ExpectedIdentity,
    ProxyIdentity,
    identity_from_audit_event,
    identity_mismatch,
    self_subject_review,
)
from conformance.kubeconfig_credentials import tls_context
from conformance.model import CellKey, CellResult, ErrorClass, Evidence, Identity, Observation, Outcome
from conformance.openunison_access_log import AccessLogLine, find_request, read_log
from conformance.proxy_audit import ProxyAuditLogs, access_log_chain, build_chain
from conformance.redact import redact
from probes.common import DEFAULT_PAYLOAD_MIB, ProbeContext
from probes.cp import probe_cp_download, probe_cp_upload
from probes.exec import probe_exec, probe_exec_idle, probe_exec_stdin
from probes.follow import probe_attach, probe_logs_follow
from probes.idle import DEFAULT_IDLE_S, idle_silence
from probes.plain import probe_tls, probe_watch, probe_watch_quiet, probe_whoami
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
    "watch-quiet": probe_watch_quiet,
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
    "watch-quiet": None,
    "whoami": None,
}
# Every path gets idle cells (probes.idle: the declared timeout + a margin, or the default silence).
IDLE_OPERATIONS = ("port-forward-idle", "exec-idle")
# A quiet watch waits out the target's declared cut of silent plain responses; none longer than this.
QUIET_CAP_S = 90.0
AUDIT_WAIT_WORKED_S = 5.0
AUDIT_WAIT_FAILED_S = 1.0
ACCESS_LOG_TAIL_BYTES = 4 * 1024 * 1024
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
                # Only targets that declare a quiet-stream cut get a quiet watch (it takes cut + 5 s).
                quiet = config.targets[target].quiet_stream_cut_s
                if op == "watch-quiet" and not (quiet and quiet <= QUIET_CAP_S):
                    continue
                for client_name, client in clients.items():
                    for protocol in client.protocols(op):
                        if protocols and protocol not in protocols:
                            continue
                        key = CellKey(target=target, path=path, protocol=protocol, operation=op, client=client_name)
                        # A target may name its own user (a service account for token passthrough).
                        cells.append(Cell(key, config.targets[target].user or user))
    return cells


@dataclass(frozen=True)
class AuditMarks:
    """Where the audit logs stood when a cell began (AuditTail.mark): its events come after."""

    api: int = 0
    proxy: int = 0


class CellRunner:
    def __init__(
        self,
        config: HarnessConfig,
        clients: dict[str, ClientAdapter],
        expectations: Expectations,
        probe_timeout_s: float,
        *,
        strict: bool = False,
        allow_unavailable: bool = False,
        expected_identity: ExpectedIdentity | None = None,
        learned_identities: dict[str, ExpectedIdentity] | None = None,
        payload_bytes: int = DEFAULT_PAYLOAD_MIB * 1024 * 1024,
        idle_s: float = DEFAULT_IDLE_S,
        budgets: Budgets | None = None,
        client_race_retries: int = 2,
    ) -> None:
        self.config = config
        self.clients = clients
        self.expectations = expectations
        self.probe_timeout_s = probe_timeout_s
        self.strict = strict  # every skip is a failure
        self.allow_unavailable = allow_unavailable  # an unavailable target or path skips instead of failing
        # Users without `expect` are compared with this (a SelfSubjectReview made once at the start).
        self.expected_identity = expected_identity
        self.learned_identities = learned_identities or {}  # per user, from a SelfSubjectReview at the start
        self.payload_bytes = payload_bytes
        self.idle_s = idle_s  # the default silence (--idle-s); a path's declared timeout decides first
        self.budgets = budgets if budgets is not None else Budgets.parse(config.raw.get("budgets"))
        self.client_race_retries = client_race_retries  # asks again after a known client race (client_races)
        # Operations the workload cannot serve (an existing pod without an echo listener): skipped, with why.
        self.skip_operations: dict[str, str] = {}
        self.audit = AuditTail(config.audit_log) if config.audit_log else None
        self.access_logs = {
            name: t.proxy_audit
            for name, t in config.targets.items()
            if t.proxy_audit is not None and t.proxy_audit_format == "openunison-access-log"
        }
        self.proxy_audit = ProxyAuditLogs(
            {
                name: t.proxy_audit
                for name, t in config.targets.items()
                if t.proxy_audit is not None and t.proxy_audit_format == "k8s-audit"
            }
        )

    def run(self, cell: Cell) -> CellResult:
        return asyncio.run(self.run_async(cell))

    async def run_async(self, cell: Cell) -> CellResult:
        started = time.monotonic()
        client = RAW if cell.key.client == RAW.name else self.clients[cell.key.client]
        # An as-shipped cell is expected to behave like the protocol its client tries by default.
        shipped = getattr(client, "shipped_protocols", None)
        expectation = self.expectations.for_cell(cell.key, shipped(cell.key.operation) if shipped else ())
        observation = await self._observe_with_retries(cell, client)
        outcome, message = judge(expectation, observation)
        if outcome is Outcome.SKIP and self.strict:
            outcome, message = Outcome.FAIL, f"skipped, and --strict makes every skip a failure: {message}"
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

    async def _observe_with_retries(self, cell: Cell, client: ClientAdapter) -> Observation:
        """Observe the cell; ask again (up to `client_race_retries` times) while it fails and its client logged
        a known race of its own (conformance.client_races). Earlier attempts stay in the evidence, so a pass
        after a retry is told apart, and a cell that hits the race every time fails."""
        earlier: list[str] = []
        while True:
            try:
                observation = await self._observe(cell, client)
            except Exception as exc:
                tb = redact("".join(traceback.format_exception_only(exc)).strip())
                observation = Observation(error_class=ErrorClass.HARNESS, evidence=Evidence(error=tb), message=tb)
            races = observation.evidence.client_races
            if not races or observation.skipped or observation.error_class not in RACE_CLASSES:
                break
            attempt = f"attempt {len(earlier) + 1}: {observation.error_class.value}: {observation.message[:200]}"
            if len(earlier) >= self.client_race_retries:
                observation.message += f" (a known client race on each of {len(earlier) + 1} attempt(s): {races[0]})"
                break
            earlier.append(redact(f"{attempt} [{'; '.join(races)}]"))
        observation.evidence.earlier_attempts = earlier
        return observation

    async def _observe(self, cell: Cell, client: ClientAdapter) -> Observation:
        target = self.config.targets[cell.key.target]
        endpoint = target.endpoints[cell.key.path]
        if not endpoint.available:
            # A gate never turns green because a proxy crashed: unavailable is a failure of its own class,
            # unless the run allows it (--allow-unavailable) or an expectation declares it.
            message = f"path {cell.key.path} to {cell.key.target} is marked unavailable in {self.config.path}"
            return Observation(
                error_class=ErrorClass.NONE if self.allow_unavailable else ErrorClass.PATH_UNAVAILABLE,
                evidence=Evidence(error=None if self.allow_unavailable else message),
                skipped=self.allow_unavailable,
                message=message + (" (--allow-unavailable)" if self.allow_unavailable else ""),
            )
        if cell.key.operation in self.skip_operations:
            return Observation(
                error_class=ErrorClass.NONE,
                evidence=Evidence(),
                skipped=True,
                message=self.skip_operations[cell.key.operation],
            )
        marker = f"c{secrets.token_hex(6)}"
        marks = AuditMarks(
            api=self.audit.mark() if self.audit is not None else 0,
            proxy=self.proxy_audit.mark(cell.key.target) if cell.key.target in self.proxy_audit else 0,
        )
        credential = self.config.credential(cell.user)
        session = Session(
            endpoint=endpoint,
            token=credential.token or "",
            credential=credential,
            namespace=self.config.workload.namespace,
            user_agent=f"k8s-streaming-conformance/{cell.id}/{marker}",
            timeout_s=self.probe_timeout_s,
            expect_user=expected.user if (expected := self.expected_for(cell.user)) else None,
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
            answers=answers_for(path.answers if path else (), target.answers),
            quiet_cut_s=target.quiet_stream_cut_s,
        )
        try:
            idle = ctx.idle_s if cell.key.operation in IDLE_OPERATIONS else 0
            idle += (ctx.quiet_cut_s or 0) if cell.key.operation == "watch-quiet" else 0
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
        if observation.evidence.refused_by is None and not observation.skipped:
            observation.error_class, observation.evidence.refused_by = attribute(
                observation.error_class, observation.evidence, ctx.answers
            )
        observation.evidence.client_races = list(session.client_races)
        if cell.key.operation != "tls":
            await self._identity(cell, observation, marker, session, marks)
        self._judge_budget(cell, observation)
        return observation

    def expected_for(self, user: str) -> ExpectedIdentity | None:
        return self.config.users[user].expected or self.learned_identities.get(user) or self.expected_identity

    def _judge_budget(self, cell: Cell, observation: Observation) -> None:
        """A worked cell beyond a `budgets:` limit of the config is too-slow (measured value and budget)."""
        if observation.error_class is not ErrorClass.NONE or observation.skipped:
            return
        over = self.budgets.exceeded(cell.key.operation, observation.evidence.timings)
        if over:
            observation.error_class = ErrorClass.TOO_SLOW
            observation.message = f"worked, but too slow: {over}"
            observation.evidence.error = observation.message

    async def _identity(
        self, cell: Cell, observation: Observation, marker: str, session: Session, marks: AuditMarks
    ) -> None:
        """Attach the identity the API server applied, and judge it on every cell that worked.

        Evidence, strongest first: the audit event of this very request; with `identity.require: any`, a
        SelfSubjectReview through the same target and path. A worked cell without the evidence required is
        `identity-unverified`; one whose identity differs in any field from the declaration is
        `wrong-identity`.
        """
        if cell.key.operation not in OPERATIONS and not observation.identity_decides:
            return  # a refused security request: its status line is the evidence
        target = self.config.targets[cell.key.target]
        worked = observation.error_class is ErrorClass.NONE
        identity = None
        markers = [marker] + [
            n.removeprefix("marker: ?") for n in observation.evidence.notes if n.startswith("marker: ")
        ]
        if self.audit is not None:
            wait = AUDIT_WAIT_WORKED_S if worked else AUDIT_WAIT_FAILED_S
            event = await asyncio.to_thread(
                self.audit.find, markers, SUBRESOURCE.get(cell.key.operation), wait, marks.api
            )
            if event is not None:
                identity = identity_from_audit_event(event)
                if cell.key.client.startswith("kubectl-"):
                    observation.evidence.notes.append(audit_note(event))
        ssr_problem = None
        if identity is None and worked and self.config.identity_require == "any" and not observation.identity_decides:
            try:
                ep = session.endpoint
                credential = session.credential
                if self.config.users[cell.user].credential.get("type") == "kubeconfig":
                    # The cell may have outlived a short-lived exec token: ask with the current one.
                    credential = self.config.credential(cell.user)
                identity = await self_subject_review(
                    ep.server,
                    (credential.token if credential else session.token) or "",
                    ca_file=ep.ca_file,
                    proxy_url=ep.proxy_url,
                    insecure=ep.insecure_skip_tls_verify,
                    tls=tls_context(ep.ca_file, ep.insecure_skip_tls_verify, credential),
                )
            except Exception as exc:
                ssr_problem = redact(f"the SelfSubjectReview failed: {type(exc).__name__}: {exc}")
                observation.evidence.notes.append(ssr_problem)
        observation.evidence.identity = identity
        observation.evidence.identity_source = identity.source if identity else "none"
        await self._proxy_audit_trail(cell, observation, markers, marks)
        expected = self.expected_for(cell.user)
        if observation.identity_decides:
            self._identity_verdict(observation, identity, expected, target.proxy)
            return
        if not worked:
            return
        if identity is None:
            why = (
                "no audit event of this request was found (identity.require: audit)"
                if self.config.identity_require == "audit"
                else ssr_problem or "no identity evidence"
            )
            self._fail(observation, ErrorClass.IDENTITY_UNVERIFIED, f"worked, but the identity is unverified: {why}")
            return
        if expected is None:
            self._fail(observation, ErrorClass.IDENTITY_UNVERIFIED,
                       f"worked, but no identity is declared for user {cell.user!r} to compare with")
            return
        problem = identity_mismatch(identity, expected, target.proxy)
        if problem:
            self._fail(observation, ErrorClass.WRONG_IDENTITY, f"the API server saw the wrong identity: {problem}")
        elif identity.source != "audit":
            unchecked = "; the proxy's part of the identity was not checked" if target.proxy else ""
            observation.evidence.notes.append(
                f"identity from a {identity.source} (another request with the same credential), not this request's "
                f"audit event{unchecked}"
            )

    @staticmethod
    def _fail(observation: Observation, cls: ErrorClass, message: str) -> None:
        observation.error_class = cls
        observation.message = message
        observation.evidence.error = message

    async def _proxy_audit_trail(
        self, cell: Cell, observation: Observation, markers: list[str], marks: AuditMarks
    ) -> None:
        """The impersonating proxy's own audit record of this request, where the target has one: fills
        `evidence.proxy_identity` and `evidence.audit_trail`; a broken chain is AUDIT_CHAIN_BROKEN."""
        if cell.key.target in self.access_logs:
            await self._access_log_trail(cell, observation)
            return
        if cell.key.target not in self.proxy_audit:
            return
        worked = observation.error_class is ErrorClass.NONE
        wait = AUDIT_WAIT_WORKED_S if worked else AUDIT_WAIT_FAILED_S
        sub = SUBRESOURCE.get(cell.key.operation)
        event = await asyncio.to_thread(self.proxy_audit.find, cell.key.target, markers, wait, sub, marks.proxy)
        finished = True
        if event is None and self.audit is not None:
            # The newest API server event for the request says whether it has ended there (cached lines).
            api_event = await asyncio.to_thread(
                self.audit.find, markers, SUBRESOURCE.get(cell.key.operation), 0.0, marks.api
            )
            finished = api_event is None or api_event.get("stage") != "ResponseStarted"
            if api_event is not None and finished:
                # The proxy logs a request when the client's connection ends, which a client may hold open
                # after its session (a client that leaves its socket to the garbage collector): wait before
                # calling it lost.
                event = await asyncio.to_thread(
                    self.proxy_audit.find, cell.key.target, markers, PROXY_AUDIT_GRACE_S, sub, marks.proxy
                )
        chain = build_chain(
            event, observation.evidence.identity, api_finished=finished, late_log_possible=cell.key.client == "python"
        )
        observation.evidence.proxy_identity = chain.proxy_identity
        observation.evidence.audit_trail = chain.trail
        # Security cells judge the refusal itself; a refused request has no chain to keep.
        if chain.broken and worked and cell.key.operation in OPERATIONS:
            observation.error_class = ErrorClass.AUDIT_CHAIN_BROKEN
            observation.message = f"the audit chain is broken: {chain.broken}"
            observation.evidence.error = observation.message

    async def _access_log_trail(self, cell: Cell, observation: Observation) -> None:
        """OpenUnison's access log as the proxy side of the chain: matched by path, user and the cell's time
        window (the log has no query, so no marker); see proxy_audit.access_log_chain."""
        sub = SUBRESOURCE.get(cell.key.operation)
        expected = self.expected_for(cell.user)
        if cell.key.operation == "whoami":
            path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        elif sub is not None:
            path = f"/api/v1/namespaces/{self.config.workload.namespace}/pods/{self.config.workload.pods[0]}/{sub}"
        else:
            observation.evidence.audit_trail = "unverified: the access log cannot match this request (no path)"
            return
        end = time.time()
        start = end - (observation.evidence.timings.total_s or self.probe_timeout_s) - 1.0
        log = self.access_logs[cell.key.target]
        await asyncio.sleep(0.5)  # the stand-in writes a request's line when it ends
        lines = await asyncio.to_thread(_read_access_log, log)
        user = expected.user if expected else None
        candidates = find_request(lines, path=path, start=start, end=time.time(), sub=user)
        chain = access_log_chain(candidates, observation.evidence.identity)
        observation.evidence.proxy_identity = chain.proxy_identity
        observation.evidence.audit_trail = chain.trail
        if chain.broken and observation.error_class is ErrorClass.NONE and cell.key.operation in OPERATIONS:
            self._fail(observation, ErrorClass.AUDIT_CHAIN_BROKEN, f"the audit chain is broken: {chain.broken}")

    @classmethod
    def _identity_verdict(
        cls,
        observation: Observation,
        identity: Identity | None,
        expected: ExpectedIdentity | None,
        proxy: ProxyIdentity | None,
    ) -> None:
        """A security request was accepted: it is fine only if the audit event of that very request shows the
        plain user with nothing smuggled (user, groups, uid, extra), through the declared proxy if any."""
        if identity is None or identity.source != "audit":
            cls._fail(observation, ErrorClass.IDENTITY_UNVERIFIED,
                      f"{observation.message}; no audit event of this request shows who ran it: not elevated is "
                      "unverified")
            return
        if expected is None:
            cls._fail(observation, ErrorClass.IDENTITY_UNVERIFIED,
                      f"{observation.message}; no identity is declared to compare the audit event with")
            return
        problem = identity_mismatch(identity, expected, proxy)
        if problem:
            cls._fail(observation, ErrorClass.ELEVATED,
                      f"{observation.message}; the API server ran it as {identity.user} {identity.groups}: {problem}")
        else:
            observation.message = f"{observation.message}; the audit event shows the plain user {identity.user}"
            observation.evidence.error = None


def _read_access_log(path: Path) -> list[AccessLogLine]:
    """The access log's last lines (a cell looks for its own request moments after it ended)."""
    try:
        size = path.stat().st_size
    except OSError:
        return []
    return read_log(path, max(0, size - ACCESS_LOG_TAIL_BYTES))[0]


__all__ = ["OPERATIONS", "Cell", "CellRunner", "Outcome", "enumerate_cells"]
