"""The preflight: before the matrix, can anything work? One table, one verdict.

Checks, each bounded in time:
- every selected endpoint (target x path): TCP and TLS with the CA the config gives (a wrong or expired CA is
  a clear line, not hundreds of identical `tls` cells);
- who the API server says the user is (SelfSubjectReview);
- the rights each selected operation needs (SelfSubjectAccessReview, namespaced, verb by verb);
- the workload: may the harness create its probe pod, or does the existing pod run, with sh/cat/tar and an
  echo listener.

The verdict is `stop` when nothing could work (no endpoint answers, the credential is refused, no operation is
allowed, the workload cannot be had); the run then ends early with pytest's usage-error exit code (4) and a
message naming what is missing. `conformance preflight` runs the same checks on their own.

`Check`, `decide` and `render` are pure (tests/test_preflight.py); `gather` does the I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from conformance import rights
from conformance.kubeconfig_credentials import ClientCredential, certificate_files, tls_context
from conformance.redact import redact

if TYPE_CHECKING:
    from conformance.config import Endpoint, HarnessConfig
    from conformance.workload import WorkloadManager

ENDPOINT_TIMEOUT_S = 5.0  # TCP connect and TLS handshake each; an unreachable endpoint costs this, not a hang
REVIEW_TIMEOUT_S = 10.0
ALL = "*"  # a check that blocks every operation
PORT_FORWARD_OPS = ("port-forward", "port-forward-concurrent", "port-forward-ports", "port-forward-idle")
EXEC_OPS = ("exec", "exec-stdin", "exec-idle", "cp-upload", "cp-download")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # some cells will fail or be skipped
    FAIL = "FAIL"  # what it blocks cannot work


class Verdict(StrEnum):
    READY = "ready"
    DEGRADED = "degraded"  # some cells cannot work; the run goes on and shows them
    STOP = "stop"  # nothing could work: the run stops before the matrix


@dataclass(frozen=True)
class Check:
    area: str  # endpoint, identity, rights, workload
    subject: str  # what was checked: "direct via alb", "create pods/exec", "pod probe-0"
    status: Status
    detail: str
    blocks: tuple[str, ...] = ()  # the operations it blocks when not ok; ALL for every one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"status": self.status.value}


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    verdict: Verdict
    reasons: tuple[str, ...]  # why the verdict is what it is, one line each
    advice: tuple[str, ...] = ()  # what to do: the manifest command, the --pod option

    @property
    def stops(self) -> bool:
        return self.verdict is Verdict.STOP

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "checks": [c.to_dict() for c in self.checks],
        }


def decide(checks: Sequence[Check], operations: Sequence[str], advice: Sequence[str] = ()) -> Report:
    """The verdict from the checks: stop when no endpoint answers, the workload cannot be had, the credential is
    refused, or every selected operation is blocked; degraded when anything is not ok; else ready."""
    reasons: list[str] = []
    endpoints = [c for c in checks if c.area == "endpoint"]
    if endpoints and all(c.status is Status.FAIL for c in endpoints):
        reasons.append("no endpoint answers (TCP and TLS): " + "; ".join(f"{c.subject}: {c.detail}" for c in endpoints))
    for c in checks:
        if c.status is Status.FAIL and ALL in c.blocks and c.area != "endpoint":
            reasons.append(f"{c.area} {c.subject}: {c.detail}")
    blocked = {op for c in checks if c.status is Status.FAIL for op in c.blocks}
    needing = [op for op in operations if rights.OPERATION_RIGHTS.get(op)]
    if needing and ALL not in blocked and all(op in blocked for op in needing):
        reasons.append("every selected operation lacks a right it needs: " + ", ".join(needing))
    if reasons:
        return Report(tuple(checks), Verdict.STOP, tuple(reasons), tuple(advice))
    not_ok = [c for c in checks if c.status is not Status.OK]
    if not_ok:
        why = tuple(f"{c.area} {c.subject}: {c.detail}" for c in not_ok)
        return Report(tuple(checks), Verdict.DEGRADED, why, tuple(advice))
    return Report(tuple(checks), Verdict.READY, (), tuple(advice))


def render(report: Report, *, advice: bool = True) -> list[str]:
    """The table and the verdict, for the terminal; `advice=False` leaves what to do to the stop message."""
    rows = [(c.area, c.subject, c.status.value, c.detail) for c in report.checks]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(("AREA", "CHECK", "STATUS"))]
    widths = [min(w, 40) for w in widths]
    header = f"{'AREA':<{widths[0]}}  {'CHECK':<{widths[1]}}  {'STATUS':<{widths[2]}}  DETAIL"
    lines = [header]
    for area, subject, status, detail in rows:
        lines.append(f"{area:<{widths[0]}}  {subject:<{widths[1]}}  {status:<{widths[2]}}  {detail}")
    word = {
        Verdict.READY: "ready: every check passed",
        Verdict.DEGRADED: "degraded: the run goes on; some cells will fail or be skipped",
        Verdict.STOP: "stop: nothing could work",
    }[report.verdict]
    lines.append(f"preflight verdict: {word}")
    if report.verdict is Verdict.STOP:
        lines += [f"  - {r}" for r in report.reasons]
    if advice:
        lines += list(report.advice)
    return lines


def stop_message(report: Report) -> str:
    return "preflight: nothing could work, so the matrix did not run:\n" + "\n".join(
        [*(f"  - {r}" for r in report.reasons), *report.advice]
    )


# -- I/O ------------------------------------------------------------------------------------------------------


def tls_detail(exc: BaseException, ca_file: str | None) -> str:
    """A TLS failure in words: whose certificate, which CA."""
    text = str(exc)
    ca = f"the CA given ({ca_file})" if ca_file else "the system trust store (no ca_file given)"
    if "certificate has expired" in text or "expired" in text.lower():
        return f"the server's certificate has expired (checked against {ca}): {text[:160]}"
    if "unable to get local issuer" in text or "self-signed" in text or "self signed" in text:
        return f"the server's certificate is not signed by {ca}: {text[:160]}"
    if "hostname mismatch" in text or "doesn't match" in text or "IP address mismatch" in text:
        return f"the server's certificate does not name this host: {text[:160]}"
    return text[:200]


async def check_endpoint(subject: str, endpoint: Endpoint) -> Check:
    from conformance.model import Evidence
    from conformance.transport.connect import open_stream
    from conformance.transport.endpoint import Endpoint as TransportEndpoint
    from conformance.transport.errors import StreamingError, TlsError
    from conformance.transport.timeouts import Deadline, Timeouts

    ep = TransportEndpoint(
        server=endpoint.server,
        ca_file=endpoint.ca_file,
        proxy_url=endpoint.proxy_url,
        insecure_skip_tls_verify=endpoint.insecure_skip_tls_verify,
    )
    timeouts = Timeouts(connect=ENDPOINT_TIMEOUT_S, tls=ENDPOINT_TIMEOUT_S, total=2 * ENDPOINT_TIMEOUT_S + 1)
    evidence = Evidence()
    started = time.monotonic()
    try:
        stream = await open_stream(ep, Deadline(timeouts), evidence)
    except TlsError as exc:
        return Check("endpoint", subject, Status.FAIL, tls_detail(exc, endpoint.ca_file), (ALL,))
    except StreamingError as exc:
        return Check("endpoint", subject, Status.FAIL, redact(str(exc))[:200], (ALL,))
    except Exception as exc:  # anything else from the socket layer is still "not reachable"
        return Check("endpoint", subject, Status.FAIL, redact(f"{type(exc).__name__}: {exc}")[:200], (ALL,))
    version = stream.tls_version if ep.secure else "plain http"
    stream.abort()
    ms = (time.monotonic() - started) * 1000
    ca = "insecure-skip-tls-verify" if endpoint.insecure_skip_tls_verify else (
        f"CA {endpoint.ca_file}" if endpoint.ca_file else "system CAs"
    )
    via = f", via proxy {endpoint.proxy_url}" if endpoint.proxy_url else ""
    status = Status.WARN if endpoint.insecure_skip_tls_verify else Status.OK
    return Check("endpoint", subject, status, f"TCP+TLS {ms:.0f} ms, {version}, {ca}{via}")


async def check_identity(endpoint: Endpoint, cred: ClientCredential) -> tuple[Check, str | None]:
    from conformance.identity import self_subject_review

    try:
        seen = await self_subject_review(
            endpoint.server,
            cred.token or "",  # none: a client-certificate user
            ca_file=endpoint.ca_file,
            proxy_url=endpoint.proxy_url,
            insecure=endpoint.insecure_skip_tls_verify,
            timeout_s=REVIEW_TIMEOUT_S,
            tls=tls_context(endpoint.ca_file, endpoint.insecure_skip_tls_verify, cred),
        )
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            return Check("identity", "SelfSubjectReview", Status.FAIL,
                         f"the API server refuses the credential (401) at {endpoint.server}", (ALL,)), None
        detail = redact(f"{type(exc).__name__}: {exc}")[:200]
        return Check("identity", "SelfSubjectReview", Status.WARN, f"could not ask: {detail}"), None
    groups = ", ".join(g for g in seen.groups if g != "system:authenticated") or "-"
    return Check("identity", "SelfSubjectReview", Status.OK, f"user {seen.user!r}, groups {groups}"), seen.user


def rights_checks(decisions: Iterable[rights.Decision], operations: Sequence[str]) -> list[Check]:
    out = []
    for d in decisions:
        ops = rights.operations_needing(d.right, operations)
        if d.allowed:
            out.append(Check("rights", str(d.right), Status.OK, f"for {', '.join(ops)}"))
        elif d.allowed is False:
            out.append(Check("rights", str(d.right), Status.FAIL, f"missing: {', '.join(ops)} cannot work", tuple(ops)))
        else:
            out.append(Check("rights", str(d.right), Status.WARN, d.reason))
    return out


def workload_checks(manager: WorkloadManager) -> tuple[list[Check], list[str]]:
    """May the harness create its probe pod, or is the existing pod fit? Returns checks and advice lines."""
    from conformance.errors import ConformanceError

    w = manager.workload
    pod = w.pods[0]
    advice: list[str] = []
    if w.manage:
        decisions = manager.check_create_rights()
        lacking = rights.missing(decisions)
        if lacking:
            who = manager.kube_user or "<your user>"
            detail = f"may not create it: missing {', '.join(str(r) for r in lacking)} in {w.namespace!r}"
            advice += [
                f"The probe pod: {who} may not create it. Name an existing pod with sh, cat and tar instead: "
                "--pod NAME (CONFORMANCE_POD), or have the rights granted (below).",
            ]
            return [Check("workload", f"probe pod {pod}", Status.FAIL, detail, (ALL,))], advice
        unknown = [d for d in decisions if d.allowed is None]
        if unknown:
            return [Check("workload", f"probe pod {pod}", Status.WARN,
                          f"could not check the rights to create it: {unknown[0].reason}")], advice
        return [Check("workload", f"probe pod {pod}", Status.OK, f"will be created in {w.namespace!r}")], advice
    try:
        manager.ensure()  # manage: false is read-only: the pod is read and inspected, nothing is made
    except ConformanceError as exc:
        return [Check("workload", f"pod {pod}", Status.FAIL, redact(str(exc))[:300], (ALL,))], advice
    seen = manager.pod_status or "not checked"
    out = [Check("workload", f"pod {pod}", Status.OK if seen.startswith("Running") else Status.WARN, seen)]
    check = manager.pod_check
    if check is not None:
        tools = Status.OK if check.tools_missing == () else Status.WARN
        out.append(Check("workload", "sh, cat, tar", tools, check.tools_reason, EXEC_OPS if tools else ()))
        echo = {True: Status.OK, False: Status.WARN, None: Status.WARN}[check.echo]
        detail = check.echo_reason + ("; port-forward cells will be skipped" if check.echo is False else "")
        out.append(Check("workload", f"echo listener :{w.port}", echo, detail))
    return out, advice


async def _endpoints(config: HarnessConfig, targets: Sequence[str], paths: Sequence[str]) -> list[Check]:
    jobs = []
    skipped = []
    for t in targets:
        for p in paths:
            ep = config.targets[t].endpoints.get(p)
            if ep is None:
                continue
            subject = t if p == "none" else f"{t} via {p}"
            if not ep.available:
                skipped.append(Check("endpoint", subject, Status.WARN, "marked unavailable in the config"))
                continue
            jobs.append(check_endpoint(subject, ep))
    return [*(await asyncio.gather(*jobs)), *skipped]


def gather(
    config: HarnessConfig,
    user: str,
    manager: WorkloadManager,
    *,
    targets: Sequence[str],
    paths: Sequence[str],
    operations: Sequence[str],
) -> Report:
    """Run every check (bounded in time) and decide."""
    checks = asyncio.run(_endpoints(config, targets, paths))
    reachable = [
        config.targets[t].endpoints["none"]
        for t in targets
        if config.targets[t].endpoints["none"].available
        and not any(c.subject == t and c.status is Status.FAIL for c in checks)  # straight: not checked if
    ]  # only other paths were selected; then it is tried all the same
    advice: list[str] = []
    if reachable:
        cred = config.credential(user)
        identity, kube_user = asyncio.run(check_identity(reachable[0], cred))
        checks.append(identity)
        manager.kube_user = kube_user
        if config.workload.manage and config.workload.grant:
            # The rights come with the namespace the harness makes (workload.grant): nothing to ask beforehand.
            decisions = []
            checks.append(Check("rights", "workload.grant", Status.OK,
                                "the harness grants the streaming rights in the namespace it creates"))
        else:
            with certificate_files(cred) as cert:
                authz = user_authz(reachable[0], cred.token, cert)
                decisions = rights.check(authz, config.workload.namespace, rights.needed(operations))
            checks += rights_checks(decisions, operations)
        workload, advice = workload_checks(manager)
        checks += workload
        lacking = [d.right for d in decisions if d.allowed is False]
        if manager.workload.manage:
            lacking += rights.missing(manager.check_create_rights())
        if lacking:
            who = kube_user or "<your user>"
            ns = config.workload.namespace
            advice += [
                "Missing rights, verb by verb: " + ", ".join(str(r) for r in sorted(set(lacking))) + f" (in {ns!r}).",
                "An administrator can grant what the run needs (Role + RoleBinding) with:",
                f"  {rights.manifest_command(who, ns, create_pod=True, operations=operations)} | kubectl apply -f -",
                "which prints:",
                *(f"    {line}" for line in rights.manifest(
                    ns, rights.rights_for_run(operations, create_pod=True), users=[who]).splitlines()),
            ]
    return decide(checks, operations, advice)


def user_authz(endpoint: Endpoint, token: str | None, cert: tuple[str, str] | None = None) -> Any:
    """An AuthorizationV1Api as the matrix user, straight to the target (SelfSubjectAccessReviews): a bearer
    token, a client certificate (files, valid while the caller's `certificate_files` block lasts), or both."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = endpoint.server
    cfg.ssl_ca_cert = endpoint.ca_file
    cfg.verify_ssl = not endpoint.insecure_skip_tls_verify
    cfg.proxy = endpoint.proxy_url
    cfg.retries = 1
    if token:
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
    if cert is not None:
        cfg.cert_file, cfg.key_file = cert
    return client.AuthorizationV1Api(client.ApiClient(cfg))
