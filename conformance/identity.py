"""The identity the API server applied to a probe's own request.

Two sources, best first:
- the API server's audit log (a file the config names), matched to the probe's request by a marker the
  probe put in the request URI (an exec argument) or its User-Agent;
- a SelfSubjectReview sent through the same target and path, which says who *a* request with the same
  credential is, but not that request.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from conformance.model import Identity

CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
# The audit log can be large: each search reads at most this much new data, so a probe never reads gigabytes.
AUDIT_TAIL_BYTES = 8 * 1024 * 1024
AUDIT_WAIT_S = 5.0
AUDIT_POLL_S = 0.1


def identity_from_audit_event(event: dict[str, Any]) -> Identity:
    user = event.get("user") or {}
    imp = event.get("impersonatedUser")
    credential = (user.get("extra") or {}).get(CREDENTIAL_ID)
    if imp:
        return Identity(
            user=imp.get("username", ""),
            groups=list(imp.get("groups") or []),
            extra={k: list(v) for k, v in (imp.get("extra") or {}).items()},
            uid=imp.get("uid"),
            authenticated_as=user.get("username"),
            authenticated_groups=list(user.get("groups") or []),
            credential_id=_credential_kind(credential),
            source="audit",
        )
    return Identity(
        user=user.get("username", ""),
        groups=list(user.get("groups") or []),
        extra={k: list(v) for k, v in (user.get("extra") or {}).items() if k != CREDENTIAL_ID},
        uid=user.get("uid"),
        credential_id=_credential_kind(credential),
        source="audit",
    )


def _credential_kind(values: list[str] | None) -> str | None:
    """`X509SHA256=...` (a client cert), `JTI=...` (a bound token or an OIDC token with jti): keep the kind only,
    never the value, which identifies a credential."""
    if not values:
        return None
    return values[0].split("=", 1)[0]


class AuditTail:
    """Follows the audit log from where it was when the run began; each search reads only new bytes.

    Matching is on a marker (in requestURI or userAgent), newest event first. Only the last MAX_EVENTS
    lines are kept: a probe looks for its own event moments after its request, never for old ones.
    """

    MAX_EVENTS = 20000

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.is_file() else 0
        self.lines: list[str] = []
        self._partial = b""
        self._lock = threading.Lock()

    def _read_new(self) -> None:
        if not self.path.is_file():
            return
        size = self.path.stat().st_size
        if size < self.offset:  # rotated
            self.offset = 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(AUDIT_TAIL_BYTES)
            self.offset = f.tell()
        chunks = (self._partial + data).split(b"\n")
        self._partial = chunks.pop()
        self.lines.extend(c.decode("utf-8", "replace") for c in chunks if c)
        del self.lines[: -self.MAX_EVENTS]

    def find(self, markers: list[str], subresource: str | None, deadline_s: float) -> dict[str, Any] | None:
        end = time.monotonic() + deadline_s
        while True:
            with self._lock:
                self._read_new()
                for line in reversed(self.lines):
                    if not any(m in line for m in markers):
                        continue
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    where = event.get("requestURI", "") + " " + event.get("userAgent", "")
                    if not any(m in where for m in markers):
                        continue
                    if subresource and (event.get("objectRef") or {}).get("subresource") != subresource:
                        continue
                    return dict(event)
            if time.monotonic() >= end:
                return None
            time.sleep(AUDIT_POLL_S)


async def self_subject_review(
    server: str,
    token: str,
    *,
    ca_file: str | None,
    proxy_url: str | None = None,
    timeout_s: float = 10.0,
    insecure: bool = False,
) -> Identity:
    ctx: ssl.SSLContext | bool
    if insecure:
        ctx = False
    else:
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    async with httpx.AsyncClient(verify=ctx, timeout=timeout_s, proxy=proxy_url) as client:
        resp = await client.post(
            f"{server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
    resp.raise_for_status()
    info = resp.json()["status"]["userInfo"]
    extra = {k: list(v) for k, v in (info.get("extra") or {}).items()}
    credential = extra.pop(CREDENTIAL_ID, None)
    return Identity(
        user=info.get("username", ""),
        groups=list(info.get("groups") or []),
        extra=extra,
        uid=info.get("uid"),
        credential_id=_credential_kind(credential),
        source="selfsubjectreview",
    )


def identity_mismatch(seen: Identity, expect: dict[str, Any], proxy: dict[str, Any] | None) -> str | None:
    """Why `seen` is not what the config expects, or None. Groups expected must all be present."""
    problems = []
    if expect.get("user") and seen.user != expect["user"]:
        problems.append(f"user {seen.user!r} != expected {expect['user']!r}")
    missing = sorted(set(expect.get("groups") or []) - set(seen.groups))
    if missing:
        problems.append(f"groups {seen.groups} lack {missing}")
    if proxy and seen.source == "audit":
        if seen.authenticated_as != proxy.get("user"):
            problems.append(f"authenticated as {seen.authenticated_as!r}, expected the proxy {proxy.get('user')!r}")
    return "; ".join(problems) or None
