"""Security probes: client-supplied identity must never elevate, bad credentials must never pass.

Each probe returns error class NONE when the guard held, ELEVATED when a client-supplied identity header
changed who the API server saw, ACCEPTED_BAD_CREDENTIAL when a bad or missing token was served, and the
transport's class when the request could not be made at all. The requests are written by hand (raw
HTTP/1.1 over TLS, through CONNECT when the path is an HTTPS proxy) so that odd header casing reaches the
wire as written and a refused upgrade's exact answer is kept as evidence.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from conformance.cells import Cell
from conformance.classify import API_SERVER, attribute, classify_status, classify_text, guard_held
from conformance.config import HarnessConfig
from conformance.kubeconfig_credentials import certificate_files
from conformance.model import CellKey, ErrorClass, Evidence, Observation
from conformance.redact import redact, redact_headers
from probes.common import ProbeContext

ADMIN = "system:admin"
MASTERS = "system:masters"
MAX_HEAD = 64 * 1024
MAX_BODY = 4096
SSR_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSR_BODY = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()


@dataclass
class RawResponse:
    status: int
    status_line: str
    headers: dict[str, str]
    body: bytes


def _raw_request(
    ctx: ProbeContext, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"",
    certificate: bool = True,
) -> RawResponse:
    ep = ctx.session.endpoint
    url = urlsplit(ep.server)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    tls = ssl.create_default_context(cafile=ep.ca_file) if ep.ca_file else ssl.create_default_context()
    if ep.insecure_skip_tls_verify:
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    cred = ctx.session.credential
    if certificate and cred is not None and cred.has_certificate:  # a client-certificate user's own requests
        with certificate_files(cred) as files:
            assert files is not None
            tls.load_cert_chain(*files)
    tls.set_alpn_protocols(["http/1.1"])
    timeout = ctx.session.timeout_s
    if ep.proxy_url:
        proxy = urlsplit(ep.proxy_url)
        raw = socket.create_connection((proxy.hostname or "127.0.0.1", proxy.port or 3128), timeout=timeout)
        raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        answer = raw.recv(4096).split(b"\r\n", 1)[0]
        if answer.split(b" ")[1:2] != [b"200"]:
            raw.close()
            raise ConnectionError(f"proxy refused CONNECT: {answer.decode(errors='replace')}")
    else:
        raw = socket.create_connection((host, port), timeout=timeout)
    with tls.wrap_socket(raw, server_hostname=host) as sock:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"User-Agent: {ctx.session.user_agent}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        head_lines = head.decode("latin-1").split("\r\n")
        parsed = {k.strip(): v.strip() for k, _, v in (h.partition(":") for h in head_lines[1:]) if k}
        status = int(head_lines[0].split(" ")[1]) if len(head_lines[0].split(" ")) > 1 else 0
        length = int(parsed.get("Content-Length", parsed.get("content-length", "0")) or 0)
        if status != 101:
            while len(rest) < min(length, MAX_BODY) and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        return RawResponse(status, head_lines[0], parsed, rest[:MAX_BODY] if status != 101 else b"")


async def _request(
    ctx: ProbeContext, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"",
    certificate: bool = True,
) -> tuple[RawResponse | None, Evidence, Observation | None]:
    """One raw request; `certificate`: present the user's client certificate, if it has one (not with a bad or
    missing token, whose refusal must not be masked by the certificate)."""
    evidence = Evidence(protocol_requested=ctx.protocol)
    start = time.monotonic()
    try:
        resp = await asyncio.to_thread(_raw_request, ctx, method, path, headers, body, certificate)
    except (OSError, ssl.SSLError) as exc:
        evidence.error = redact(f"{type(exc).__name__}: {exc}")
        cls = ErrorClass.TLS if isinstance(exc, ssl.SSLError) else classify_text(str(exc))
        return None, evidence, Observation(error_class=cls, evidence=evidence, message=evidence.error)
    evidence.timings.total_s = time.monotonic() - start
    evidence.status_line = resp.status_line
    evidence.response_headers = redact_headers(resp.headers)
    evidence.body_excerpt = redact(resp.body.decode("utf-8", "replace"))[:500] or None
    sent = [f"{method} {path}"] + [f"{k}: {v}" for k, v in redact_headers(dict(headers)).items()]
    evidence.transcript = [*sent, resp.status_line]
    return resp, evidence, None


def _upgrade_headers(protocol: str) -> tuple[str, list[tuple[str, str]]]:
    if protocol == "spdy":
        return "POST", [
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
        ]
    return "GET", [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
    ]


def _exec_path(ctx: ProbeContext, marker: str) -> str:
    pod = ctx.workload.pods[0]
    return (
        f"/api/v1/namespaces/{quote(ctx.session.namespace)}/pods/{quote(pod)}/exec?"
        f"command=echo&command={marker}&stdout=true"
    )


def _target(ctx: ProbeContext, marker: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """Where a check's request goes: a SelfSubjectReview (plain) or an exec upgrade."""
    if ctx.protocol == "http":
        return "POST", SSR_PATH, [("Content-Type", "application/json")], SSR_BODY
    verb, headers = _upgrade_headers(ctx.protocol)
    return verb, _exec_path(ctx, marker), headers, b""


def _who(resp: RawResponse) -> str | None:
    try:
        return str(json.loads(resp.body)["status"]["userInfo"]["username"])
    except (ValueError, KeyError, TypeError):
        return None


def _refusal(ctx: ProbeContext, resp: RawResponse, evidence: Evidence) -> tuple[ErrorClass, str | None]:
    """Who refused and how: the declared answers of this cell's hops, the API server's Status, else unknown."""
    first_guess = classify_status(resp.status, resp.body.decode("utf-8", "replace"))
    cls, by = attribute(first_guess, evidence, ctx.answers)
    evidence.refused_by = by
    return cls, by


def _untested(cls: ErrorClass, by: str | None, evidence: Evidence, what: str, resp: RawResponse) -> Observation:
    """The request was stopped by something that is not an authentication or authorization decision (an LB's
    400, a 404, a 5xx, a hop refusing the upgrade): the guard under test was never reached."""
    evidence.error = f"{what}: guard untested: {resp.status_line} ({cls.value}, refused by {by or 'unknown'})"
    return Observation(error_class=cls, evidence=evidence, message=evidence.error)


def _judge_identity_attempt(
    ctx: ProbeContext, resp: RawResponse, evidence: Evidence, expect_user: str, what: str
) -> Observation:
    if resp.status in (101, 200, 201):
        # Accepted: whether it elevated anyone is for the audit event of this very request to say (the
        # runner compares every field of it with the declared identity).
        who = _who(resp)
        if resp.status == 201 and who is not None and who != expect_user:
            evidence.error = f"{what}: the API server saw {who!r} instead of {expect_user!r}"
            return Observation(error_class=ErrorClass.ELEVATED, evidence=evidence, message=evidence.error)
        return Observation(
            error_class=ErrorClass.NONE,
            evidence=evidence,
            identity_decides=True,
            message=f"{what}: accepted ({resp.status})",
        )
    cls, by = _refusal(ctx, resp, evidence)
    if guard_held(cls, by):
        return Observation(
            error_class=ErrorClass.NONE, evidence=evidence, message=f"{what}: refused with {resp.status} by {by}"
        )
    return _untested(cls, by, evidence, what, resp)


def _auth(ctx: ProbeContext) -> list[tuple[str, str]]:
    """The session's bearer token; none for a client-certificate user (its certificate goes in the TLS handshake)."""
    return [("Authorization", f"Bearer {ctx.session.token}")] if ctx.session.token else []


def impersonation_check(headers: list[tuple[str, str]], what: str) -> Callable[[ProbeContext], Awaitable[Observation]]:
    async def probe(ctx: ProbeContext) -> Observation:
        method, path, extra, body = _target(ctx, ctx.marker)
        resp, evidence, failed = await _request(ctx, method, path, [*_auth(ctx), *extra, *headers], body)
        if failed or resp is None:
            return failed or Observation(error_class=ErrorClass.HARNESS, evidence=evidence)
        expect = ctx.session.expect_user or ""
        return _judge_identity_attempt(ctx, resp, evidence, expect, what)

    return probe


def credential_check(kind: str) -> Callable[[ProbeContext], Awaitable[Observation]]:
    async def probe(ctx: ProbeContext) -> Observation:
        method, path, extra, body = _target(ctx, ctx.marker)
        headers = list(extra)
        if kind != "missing":
            token = ctx.session.bad_token(kind)
            if token is None:
                return Observation(
                    error_class=ErrorClass.NONE,
                    evidence=Evidence(),
                    skipped=True,
                    message=f"a {kind} token can only be minted for lab-oidc credentials",
                )
            headers.insert(0, ("Authorization", f"Bearer {token}"))
        resp, evidence, failed = await _request(ctx, method, path, headers, body, certificate=False)
        if failed or resp is None:
            return failed or Observation(error_class=ErrorClass.HARNESS, evidence=evidence)
        if resp.status in (101, 200, 201):
            evidence.error = f"a {kind} token was served: {resp.status_line}"
            return Observation(
                error_class=ErrorClass.ACCEPTED_BAD_CREDENTIAL, evidence=evidence, message=evidence.error
            )
        cls, by = _refusal(ctx, resp, evidence)
        # Without any token the API server may treat a request as system:anonymous and forbid it.
        anonymous_forbidden = kind == "missing" and cls is ErrorClass.FORBIDDEN and by == API_SERVER
        if (cls is ErrorClass.UNAUTHORIZED and guard_held(cls, by)) or anonymous_forbidden:
            message = f"{kind} token refused with {resp.status} by {by}"
            return Observation(error_class=ErrorClass.NONE, evidence=evidence, message=message)
        return _untested(cls, by, evidence, f"{kind} token", resp)

    return probe


async def get_only_user_cannot_stream(ctx: ProbeContext) -> Observation:
    """The session's user here is the get-only user: an exec upgrade must be forbidden (403) by the API
    server's authorizer or by the proxy's own documented rule."""
    method, path, extra, _ = _target(ctx, ctx.marker)
    resp, evidence, failed = await _request(ctx, method, path, [*_auth(ctx), *extra])
    if failed or resp is None:
        return failed or Observation(error_class=ErrorClass.HARNESS, evidence=evidence)
    if resp.status == 101:
        evidence.error = "a get-only user's exec upgrade was accepted"
        return Observation(error_class=ErrorClass.ELEVATED, evidence=evidence, message=evidence.error)
    cls, by = _refusal(ctx, resp, evidence)
    if cls is ErrorClass.FORBIDDEN and guard_held(cls, by):
        return Observation(error_class=ErrorClass.NONE, evidence=evidence, message=f"exec upgrade forbidden by {by}")
    return _untested(cls, by, evidence, "get-only user's exec", resp)


IMPERSONATION = {
    "impersonate-user": [("Impersonate-User", ADMIN), ("Impersonate-Group", MASTERS)],
    "impersonate-user-odd-case": [("iMperSONATE-uSer", ADMIN), ("IMPERSONATE-GROUP", MASTERS)],
    "impersonate-group": [("Impersonate-Group", MASTERS)],
    "impersonate-uid": [("Impersonate-Uid", "0")],
    "impersonate-extra": [("Impersonate-Extra-Scopes", "cluster-admin"), ("impersonate-extra-REASON", "x")],
    "front-proxy-headers": [("X-Remote-User", ADMIN), ("X-Remote-Group", MASTERS)],
}
BAD_CREDENTIALS = ("missing", "expired", "wrong_audience", "wrong_issuer", "bad_signature")
SECURITY_CHECKS: dict[str, Callable[[ProbeContext], Awaitable[Observation]]] = {
    **{name: impersonation_check(h, name) for name, h in IMPERSONATION.items()},
    **{f"token-{k.replace('_', '-')}": credential_check(k) for k in BAD_CREDENTIALS},
    "get-only-user-exec": get_only_user_cannot_stream,
}
SECURITY_PROTOCOLS = ("http", "spdy", "ws")
GET_ONLY_USER = "bob"


def security_cells(config: HarnessConfig, targets: list[str], paths: list[str]) -> list[Cell]:
    cells = []
    for target in targets:
        for path in paths:
            if path not in config.targets[target].endpoints:
                continue
            for check in SECURITY_CHECKS:
                protocols = ("spdy", "ws") if check == "get-only-user-exec" else SECURITY_PROTOCOLS
                own = config.targets[target].user  # a target that runs as its own user (a service account)
                user = GET_ONLY_USER if check == "get-only-user-exec" else (own or _default_user(config))
                if check == "get-only-user-exec" and GET_ONLY_USER not in config.users:
                    continue
                for protocol in protocols:
                    key = CellKey(target=target, path=path, protocol=protocol, operation=check, client="raw")
                    cells.append(Cell(key, user))
    return cells


def _default_user(config: HarnessConfig) -> str:
    return "alice" if "alice" in config.users else next(iter(config.users))
