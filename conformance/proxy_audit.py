"""The audit chain through an impersonating proxy: credential -> the user the proxy authenticated (its own
audit log) -> the identity the API server applied (the API server's audit log).

The proxy's event for a request is found the same way as the API server's (`identity.AuditTail`: a marker
in requestURI or userAgent). `build_chain` is pure: given both ends, it says whether the chain is
complete, and if not, why. A worked cell with a broken chain is a failure (cells.py): the proxy
authenticated one user and the API server ran another, or the API server saw a request the proxy never
logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.identity import CREDENTIAL_ID, AuditTail
from conformance.model import Identity
from conformance.openunison_access_log import AccessLogLine, outcome

COMPLETE = "complete"
POLL_S = 0.1
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True, slots=True)
class Chain:
    proxy_identity: Identity | None
    broken: str | None  # why the chain is broken (a proven break); None when complete or unverified
    unverified: str | None = None  # why neither complete nor broken can be shown (an end was not found)

    @property
    def trail(self) -> str:
        if self.broken is not None:
            return f"broken: {self.broken}"
        return COMPLETE if self.unverified is None else f"unverified: {self.unverified}"


def proxy_identity_from_event(event: dict[str, Any]) -> Identity:
    """The user a proxy's audit event says it authenticated (its `user`; a proxy impersonates no one itself)."""
    user = event.get("user") or {}
    extra = {k: list(v) for k, v in (user.get("extra") or {}).items()}
    credential = extra.pop(CREDENTIAL_ID, None)
    return Identity(
        user=user.get("username", ""),
        groups=list(user.get("groups") or []),
        extra=extra,
        uid=user.get("uid") or None,
        credential_id=credential[0].split("=", 1)[0] if credential else None,
        source="proxy-audit",
    )


def build_chain(
    proxy_event: dict[str, Any] | None,
    applied: Identity | None,
    *,
    api_finished: bool = True,
    late_log_possible: bool = False,
) -> Chain:
    """Join the proxy's event for a request with the identity the API server applied to it.

    `api_finished`: the API server has logged the end of the request (ResponseComplete or Panic). A proxy
    logs a request when it ends, so a request still open at the API server may not be in its log yet."""
    proxy = proxy_identity_from_event(proxy_event) if proxy_event is not None else None
    api_logged = applied is not None and applied.source == "audit"
    if proxy is None:
        if not api_logged:
            return Chain(None, None, "neither audit log has an event with the request's marker")
        assert applied is not None
        if not api_finished:
            return Chain(None, None, "the request is still open at the API server; the proxy logs it when it ends")
        if late_log_possible:
            # The proxy logs a request when the client's connection ends; a client that lets its socket linger
            # (the python client, measured up to 89 s) makes a late event look like a missing one.
            return Chain(None, None, "not in the proxy's log within the grace period, and this client's socket "
                         "may outlive the request (a late event cannot be told from a missing one)")
        return Chain(None, f"the API server ran the request as {applied.user!r} but the proxy never logged it")
    if not proxy.user:
        # kube-oidc-proxy v1.0.11 logs a request whose token it passed through (--token-passthrough) with an
        # empty user: it authenticated no one itself, and its log cannot say whose request it was
        # (docs/findings.md). Nothing contradicts the API server, nothing confirms it.
        return Chain(proxy, None, "the proxy logged the request with no user (a passed-through token is not recorded)")
    if applied is None:
        return Chain(proxy, f"the proxy authenticated {proxy.user!r} but the API server logged no such request")
    if not api_logged:
        return Chain(
            proxy, f"the API server's identity comes from a {applied.source}, not from its audit log of this request"
        )
    if applied.user != proxy.user:
        return Chain(proxy, f"the proxy authenticated {proxy.user!r} but the API server ran {applied.user!r}")
    # The API server adds system:authenticated to every identity it applies; the proxy may not list it.
    lost = sorted(set(proxy.groups) - set(applied.groups) - {AUTHENTICATED})
    added = sorted(set(applied.groups) - set(proxy.groups) - {AUTHENTICATED})
    if lost or added:
        return Chain(
            proxy, f"groups changed between the proxy and the API server: lost {lost or '[]'}, added {added or '[]'}"
        )
    return Chain(proxy, None)


class ProxyAuditLogs:
    """One `AuditTail` per proxy audit file (targets sharing a proxy share its file and its tail)."""

    def __init__(self, files: dict[str, Path]) -> None:
        tails: dict[Path, AuditTail] = {}
        self._by_target = {target: tails.setdefault(path, AuditTail(path)) for target, path in files.items()}

    def __contains__(self, target: object) -> bool:
        return target in self._by_target

    def mark(self, target: str) -> int:
        return self._by_target[target].mark()

    def find(
        self, target: str, markers: list[str], deadline_s: float, subresource: str | None = None, since: int = 0
    ) -> dict[str, Any] | None:
        """The newest event with a marker, and for a `subresource` one whose path ends with it. A proxy's
        events carry no objectRef for pods (kube-oidc-proxy resolves none), so the path decides; the
        marker alone is not enough: kubectl puts it in every URL, its `GET pod` before the exec too."""
        tail = self._by_target[target]
        end = time.monotonic() + deadline_s
        while True:
            event = tail.find(markers, None, 0.0, since)
            if event is not None and (
                subresource is None or str(event.get("requestURI", "")).split("?")[0].endswith(f"/{subresource}")
            ):
                return event
            if time.monotonic() >= end:
                return None
            time.sleep(POLL_S)


def access_log_chain(candidates: list[AccessLogLine], applied: Identity | None) -> Chain:
    """The chain from OpenUnison's access log (conformance.openunison_access_log): its line for the request
    names the user (`sub`) it let through and one group (the one its rule matched), so only the user can be
    compared. The log has no query and no marker: several requests of one user to one path in the cell's
    window cannot be told apart, and the chain then stays unverified rather than guessed."""
    line = outcome(candidates)
    if line is None:
        count = sum(1 for c in candidates if c.result != "AuSuccess")
        why = (
            f"{count} access-log lines for this user and path in the cell's window: the log (no query, no "
            "marker) cannot tell them apart"
            if count
            else "no access-log line for this user and path in the cell's window"
        )
        return Chain(None, None, why)
    proxy = Identity(user=line.sub or "", groups=list(line.groups), source="proxy-access-log")
    if line.result != "AzSuccess":
        return Chain(proxy, None, f"the proxy logged {line.result}, not a request it passed on")
    if applied is None or applied.source != "audit":
        return Chain(proxy, None, "the API server's audit event of this request was not found")
    if applied.user != proxy.user:
        return Chain(proxy, f"the proxy let {proxy.user!r} through but the API server ran {applied.user!r}")
    return Chain(proxy, None)
