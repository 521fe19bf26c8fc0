"""Plain requests through a target and path: whoami (SelfSubjectReview), a long-lived watch, and TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from conformance.classify import classify_status, classify_text
from conformance.kubeconfig_credentials import tls_context
from conformance.model import ErrorClass, Evidence, Observation
from probes.common import ProbeContext

WATCH_HOLD_S = 1.0
QUIET_MARGIN_S = 5.0  # held this much longer than the declared cut (measured: the 10 s cut ends a stream at 11-12 s)


def _client(ctx: ProbeContext, timeout_s: float) -> httpx.AsyncClient:
    ep = ctx.session.endpoint
    verify = tls_context(ep.ca_file, ep.insecure_skip_tls_verify, ctx.session.credential)
    headers = {"User-Agent": ctx.session.user_agent}
    if ctx.session.token:  # a client-certificate user sends none
        headers["Authorization"] = f"Bearer {ctx.session.token}"
    return httpx.AsyncClient(verify=verify, timeout=timeout_s, proxy=ep.proxy_url, headers=headers, trust_env=False)


def _failed(evidence: Evidence, exc: Exception) -> Observation:
    text = f"{type(exc).__name__}: {exc}"
    evidence.error = text
    return Observation(error_class=_http_error_class(exc, text), evidence=evidence, message=text)


def _http_error_class(exc: Exception, text: str) -> ErrorClass:
    """httpx wraps the cause ("All connection attempts failed"): the cause says what really happened."""
    if isinstance(exc, httpx.TimeoutException):
        return ErrorClass.TIMEOUT
    if isinstance(exc, httpx.ProxyError):
        return ErrorClass.PROXY_ERROR
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return ErrorClass.CONNECT_REFUSED
        if isinstance(cause, ssl.SSLError):
            return ErrorClass.TLS
        if isinstance(cause, ConnectionResetError):
            return ErrorClass.RESET
        cause = cause.__cause__ or cause.__context__
    return classify_text(text)


async def probe_watch_quiet(ctx: ProbeContext) -> Observation:
    """A watch that receives nothing (its selector matches no pod) must stay open a little longer than the
    target's declared quiet-stream cut: a proxy whose upstream socket times out ends it (OpenUnison: 10 s)."""
    hold = (ctx.quiet_cut_s or 0) + QUIET_MARGIN_S
    evidence = Evidence(protocol_requested="http")
    url = f"{ctx.session.endpoint.server}/api/v1/namespaces/{ctx.session.namespace}/pods"
    # A selector no pod matches: the API server sends nothing at all after the response head.
    selector = f"conformance-quiet={ctx.marker}"
    params = {"watch": "true", "labelSelector": selector, "timeoutSeconds": str(int(hold) + 30)}
    start = time.monotonic()
    try:
        async with _client(ctx, hold + 10) as client, client.stream("GET", url, params=params) as resp:
            evidence.status_line = f"HTTP/{resp.http_version.split('/')[-1]} {resp.status_code} {resp.reason_phrase}"
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                evidence.body_excerpt = text[:500]
                return Observation(
                    error_class=classify_status(resp.status_code, text),
                    evidence=evidence,
                    message=f"watch answered {resp.status_code}",
                )
            try:
                async with asyncio.timeout(hold):
                    async for line in resp.aiter_lines():
                        if line.strip():
                            evidence.error = f"a watch on a selector matching nothing delivered {line[:100]!r}"
                            return Observation(
                                error_class=ErrorClass.DATA_MISMATCH, evidence=evidence, message=evidence.error
                            )
            except TimeoutError:
                pass  # silent and open for the whole period: what we wanted
            else:
                return _quiet_cut(evidence, start, "the quiet watch was closed")
    except httpx.HTTPError as exc:
        if time.monotonic() - start < hold and not isinstance(exc, httpx.TimeoutException):
            return _quiet_cut(evidence, start, f"the quiet watch failed: {type(exc).__name__}: {exc}")
        return _failed(evidence, exc)
    evidence.survived_s = time.monotonic() - start
    evidence.timings.total_s = evidence.survived_s
    return Observation(error_class=ErrorClass.NONE, evidence=evidence, message=f"quiet watch held {hold:.0f}s")


def _quiet_cut(evidence: Evidence, start: float, what: str) -> Observation:
    survived = time.monotonic() - start
    evidence.survived_s = survived
    evidence.error = f"{what} after {survived:.1f}s of silence"
    return Observation(error_class=ErrorClass.IDLE_CUT, evidence=evidence, message=evidence.error)


async def probe_whoami(ctx: ProbeContext) -> Observation:
    evidence = Evidence(protocol_requested="http")
    start = time.monotonic()
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        async with _client(ctx, ctx.session.timeout_s) as client:
            resp = await client.post(
                f"{ctx.session.endpoint.server}/apis/authentication.k8s.io/v1/selfsubjectreviews", json=body
            )
    except httpx.HTTPError as exc:
        return _failed(evidence, exc)
    evidence.timings.total_s = time.monotonic() - start
    evidence.status_line = f"HTTP/{resp.http_version.split('/')[-1]} {resp.status_code} {resp.reason_phrase}"
    if resp.status_code != 201:
        evidence.body_excerpt = resp.text[:500]
        return Observation(
            error_class=classify_status(resp.status_code, resp.text),
            evidence=evidence,
            message=f"SelfSubjectReview answered {resp.status_code}",
        )
    user = resp.json().get("status", {}).get("userInfo", {})
    evidence.notes.append(f"SelfSubjectReview: {user.get('username')} {user.get('groups')}")
    return Observation(error_class=ErrorClass.NONE, evidence=evidence, message="SelfSubjectReview answered")


async def probe_watch(ctx: ProbeContext) -> Observation:
    """A watch on the workload's pods must stay open (and deliver the initial events) for WATCH_HOLD_S."""
    evidence = Evidence(protocol_requested="http")
    url = f"{ctx.session.endpoint.server}/api/v1/namespaces/{ctx.session.namespace}/pods"
    start = time.monotonic()
    events = 0
    try:
        async with (
            _client(ctx, WATCH_HOLD_S + 10) as client,
            client.stream("GET", url, params={"watch": "true", "timeoutSeconds": str(int(WATCH_HOLD_S) + 30)}) as resp,
        ):
            evidence.status_line = f"HTTP/{resp.http_version.split('/')[-1]} {resp.status_code} {resp.reason_phrase}"
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                evidence.body_excerpt = text[:500]
                return Observation(
                    error_class=classify_status(resp.status_code, text),
                    evidence=evidence,
                    message=f"watch answered {resp.status_code}",
                )
            try:
                async with asyncio.timeout(WATCH_HOLD_S):
                    async for line in resp.aiter_lines():
                        events += 1 if line.strip() else 0
                    ended = time.monotonic() - start
                    evidence.error = f"the watch was closed after {ended:.1f}s"
                    return Observation(error_class=ErrorClass.RESET, evidence=evidence, message=evidence.error)
            except TimeoutError:
                pass  # held open for the whole period: what we wanted
    except httpx.HTTPError as exc:
        return _failed(evidence, exc)
    evidence.timings.total_s = time.monotonic() - start
    evidence.notes.append(f"{events} watch event(s) in {WATCH_HOLD_S:.0f}s")
    if events == 0:
        return Observation(
            error_class=ErrorClass.DATA_MISMATCH,
            evidence=evidence,
            message="the watch stayed open but delivered no initial events",
        )
    return Observation(
        error_class=ErrorClass.NONE, evidence=evidence, message=f"watch held {WATCH_HOLD_S:.0f}s with {events} event(s)"
    )


def _tls_handshake(ctx: ProbeContext, alpn: list[str]) -> tuple[ssl.SSLSocket, float]:
    ep = ctx.session.endpoint
    url = urlsplit(ep.server)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    tls = ssl.create_default_context(cafile=ep.ca_file) if ep.ca_file else ssl.create_default_context()
    if ep.insecure_skip_tls_verify:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    tls.set_alpn_protocols(alpn)
    start = time.monotonic()
    if ep.proxy_url:
        proxy = urlsplit(ep.proxy_url)
        raw = socket.create_connection(
            (proxy.hostname or "127.0.0.1", proxy.port or 3128), timeout=ctx.session.timeout_s
        )
        raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        status_line = raw.recv(4096).split(b"\r\n", 1)[0]
        if status_line.split(b" ")[1:2] != [b"200"]:
            raw.close()
            raise ConnectionError(f"proxy refused CONNECT: {status_line.decode(errors='replace')}")
    else:
        raw = socket.create_connection((host, port), timeout=ctx.session.timeout_s)
    return tls.wrap_socket(raw, server_hostname=host), time.monotonic() - start


async def probe_tls(ctx: ProbeContext) -> Observation:
    """The chain verifies against the configured CA (unless the endpoint says insecure_skip_tls_verify, and
    then the cell says it did not verify); the certificate is in its validity period; which ALPN protocols
    are offered."""
    evidence = Evidence(protocol_requested="http")
    insecure = ctx.session.endpoint.insecure_skip_tls_verify
    offered = []
    try:
        for alpn in (["h2", "http/1.1"], ["http/1.1"]):
            sock, took = await asyncio.to_thread(_tls_handshake, ctx, alpn)
            with sock:
                chosen = sock.selected_alpn_protocol()
                offered.append(chosen or "none")
                der = sock.getpeercert(binary_form=True)
            evidence.timings.tls_s = took
    except (OSError, ssl.SSLError) as exc:
        evidence.error = f"{type(exc).__name__}: {exc}"
        cls = ErrorClass.TLS if isinstance(exc, ssl.SSLError) else classify_text(str(exc))
        return Observation(error_class=cls, evidence=evidence, message=evidence.error)
    cert = x509.load_der_x509_certificate(der or b"")
    now = dt.datetime.now(dt.UTC)
    days = (cert.not_valid_after_utc - now).days
    evidence.notes += [
        f"ALPN chosen when offering h2,http/1.1: {offered[0]}",
        f"certificate expires in {days} days",
        f"issuer: {cert.issuer.rfc4514_string()}",
        "chain NOT verified: the endpoint sets insecure_skip_tls_verify" if insecure
        else f"chain verified against {ctx.session.endpoint.ca_file or 'the system trust store'}",
    ]
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        evidence.error = (
            f"the certificate is outside its validity ({cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d}); accepted only because verification is off"
        )
        return Observation(error_class=ErrorClass.TLS, evidence=evidence, message=evidence.error)
    verdict = "chain NOT verified (insecure_skip_tls_verify)" if insecure else "chain verifies"
    return Observation(
        error_class=ErrorClass.NONE,
        evidence=evidence,
        message=f"{verdict}; {days} days to expiry; ALPN {offered[0]}",
    )
