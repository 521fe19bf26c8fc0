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
from collections.abc import Mapping
from dataclasses import dataclass, field
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
            extra=_extras(imp.get("extra")),
            uid=imp.get("uid"),
            authenticated_as=user.get("username"),
            authenticated_groups=list(user.get("groups") or []),
            credential_id=_credential_kind(credential),
            source="audit",
        )
    return Identity(
        user=user.get("username", ""),
        groups=list(user.get("groups") or []),
        extra={k: v for k, v in _extras(user.get("extra")).items() if k != CREDENTIAL_ID},
        uid=user.get("uid"),
        credential_id=_credential_kind(credential),
        source="audit",
    )


def _extras(raw: dict[str, Any] | None) -> dict[str, list[str]]:
    """Extras as lists; a forwarded credential id keeps its kind only (its value identifies a credential)."""
    out = {k: list(v or []) for k, v in (raw or {}).items()}
    if CREDENTIAL_ID in out:
        out[CREDENTIAL_ID] = [v.split("=", 1)[0] for v in out[CREDENTIAL_ID]]
    return out


def _credential_kind(values: list[str] | None) -> str | None:
    """`X509SHA256=...` (a client cert), `JTI=...` (a bound token or an OIDC token with jti): keep the kind only,
    never the value, which identifies a credential."""
    if not values:
        return None
    return values[0].split("=", 1)[0]


class AuditTail:
    """Follows the audit log from where it was when the run began; each search reads only new bytes.

    Matching is on a marker (in requestURI or userAgent), newest event first. Only the last MAX_EVENTS
    lines are kept: a probe looks for its own event moments after its request, never for old ones. A cell
    marks the tail before its request and searches from there: a search costs the lines written during
    the cell, not the whole tail (thousands of lines, once per cell and poll).
    """

    MAX_EVENTS = 20000

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.is_file() else 0
        self.lines: list[str] = []
        self.dropped = 0  # lines trimmed from the front: lines[i] is line number dropped + i of this tail
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
        excess = len(self.lines) - self.MAX_EVENTS
        if excess > 0:
            del self.lines[:excess]
            self.dropped += excess

    def mark(self) -> int:
        """The number of the next line to come: a request made after this call has its event at or after it."""
        with self._lock:
            self._read_new()
            return self.dropped + len(self.lines)

    def find(
        self, markers: list[str], subresource: str | None, deadline_s: float, since: int = 0
    ) -> dict[str, Any] | None:
        """The newest event at or after line `since` (see `mark`) with a marker, polled until `deadline_s`."""
        end = time.monotonic() + deadline_s
        seen = since  # line number up to which this search has looked: a poll reads only what came since
        while True:
            with self._lock:
                self._read_new()
                start = max(0, seen - self.dropped)
                new, seen = self.lines[start:], self.dropped + len(self.lines)
                for line in reversed(new):
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
    tls: ssl.SSLContext | bool | None = None,
) -> Identity:
    """Who the API server takes `token` for; `tls` (with a client certificate) replaces ca_file/insecure, and an
    empty token sends no Authorization header (a client-certificate user)."""
    ctx: ssl.SSLContext | bool
    if tls is not None:
        ctx = tls
    elif insecure:
        ctx = False
    else:
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(verify=ctx, timeout=timeout_s, proxy=proxy_url, trust_env=False) as client:
        resp = await client.post(
            f"{server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json=body,
            headers=headers,
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


AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class ExpectedIdentity:
    """Who the API server must see (docs/config.md, `users.<name>.expect`).

    user exactly; groups as a set (declared plus system:authenticated; an undeclared group is a mismatch
    unless listed in allow_extra_groups); uid absent unless declared; extra: only declared keys, values
    compared where declared (None: any value).
    """

    user: str
    groups: frozenset[str]
    uid: str | None = None
    extra: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    allow_extra_groups: frozenset[str] = frozenset()
    source: str = "config"  # or "selfsubjectreview at the start of the run"

    @classmethod
    def from_config(cls, data: Mapping[str, Any], where: str, source: str = "config") -> ExpectedIdentity:
        from conformance.errors import ConfigError

        unknown = set(data) - {"user", "groups", "uid", "extra", "allow_extra_groups"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use user, groups, uid, extra, "
                              "allow_extra_groups")
        if not isinstance(data.get("user"), str) or not data["user"]:
            raise ConfigError(f"{where}.user must be the user name the API server should see")
        return cls(
            user=data["user"],
            groups=frozenset(_strings(data.get("groups"), f"{where}.groups")) | {AUTHENTICATED},
            uid=str(data["uid"]) if data.get("uid") is not None else None,
            extra=_extra(data.get("extra"), f"{where}.extra"),
            allow_extra_groups=frozenset(_strings(data.get("allow_extra_groups"), f"{where}.allow_extra_groups")),
            source=source,
        )

    @classmethod
    def from_identity(cls, seen: Identity) -> ExpectedIdentity:
        """What a SelfSubjectReview said at the start of the run (--kubeconfig runs)."""
        return cls(
            user=seen.user,
            groups=frozenset(seen.groups) | {AUTHENTICATED},
            uid=seen.uid or None,
            extra={k: tuple(sorted(v)) for k, v in seen.extra.items()},
            source="selfsubjectreview at the start of the run",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "groups": sorted(self.groups),
            "uid": self.uid,
            "extra": {k: (list(v) if v is not None else None) for k, v in sorted(self.extra.items())},
            "allow_extra_groups": sorted(self.allow_extra_groups),
            "source": self.source,
        }


@dataclass(frozen=True)
class ProxyIdentity:
    """An impersonating proxy in front of the API server (`targets.<t>.impersonating_proxy`): who the API
    server must authenticate for a proxied request, and the extras the proxy legitimately adds to the
    impersonated user (e.g. the credential id of the token it checked)."""

    user: str
    groups: frozenset[str] | None = None  # None: not compared
    credential: str | None = None  # the kind of the proxy's own credential (JTI, X509SHA256); None: not compared
    adds_extra: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)

    @classmethod
    def from_config(cls, data: Any, where: str) -> ProxyIdentity | None:
        from conformance.errors import ConfigError

        if data is None:
            return None
        if not isinstance(data, Mapping) or not isinstance(data.get("user"), str):
            raise ConfigError(f"{where} must be a mapping with the `user` the API server authenticates")
        unknown = set(data) - {"user", "groups", "credential", "adds_extra"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use user, groups, credential, adds_extra")
        groups = data.get("groups")
        return cls(
            user=data["user"],
            groups=frozenset(_strings(groups, f"{where}.groups")) | {AUTHENTICATED} if groups is not None else None,
            credential=str(data["credential"]) if data.get("credential") else None,
            adds_extra=_extra(data.get("adds_extra"), f"{where}.adds_extra"),
        )


def _strings(value: Any, where: str) -> list[str]:
    from conformance.errors import ConfigError

    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    return list(value)


def _extra(value: Any, where: str) -> dict[str, tuple[str, ...] | None]:
    from conformance.errors import ConfigError

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must map each extra key to a list of values, or to null (any value)")
    return {str(k): (tuple(sorted(_strings(v, f"{where}.{k}"))) if v is not None else None) for k, v in value.items()}


def identity_problems(seen: Identity, expect: ExpectedIdentity, proxy: ProxyIdentity | None) -> list[str]:
    """Every way `seen` differs from what the config declares (empty: exactly as declared).

    With a proxy, the API server must have authenticated that proxy and applied an impersonated identity;
    without one, the request must not be impersonated at all. A SelfSubjectReview cannot show the
    authenticated identity, so with that source the proxy part is not checked (the cell records the source).
    """
    problems = []
    if seen.user != expect.user:
        problems.append(f"user {seen.user!r} != expected {expect.user!r}")
    groups = set(seen.groups)
    missing = sorted(expect.groups - groups)
    added = sorted(groups - expect.groups - expect.allow_extra_groups)
    if missing:
        problems.append(f"groups lack {missing}")
    if added:
        problems.append(f"undeclared groups {added}")
    if expect.uid is None and seen.uid:
        problems.append(f"uid {seen.uid!r} where none is declared")
    elif expect.uid is not None and seen.uid != expect.uid:
        problems.append(f"uid {seen.uid!r} != expected {expect.uid!r}")
    allowed: dict[str, tuple[str, ...] | None] = dict(proxy.adds_extra) if proxy else {}
    allowed.update(expect.extra)
    for key, values in sorted(seen.extra.items()):
        if key not in allowed:
            problems.append(f"undeclared extra {key!r}")
        elif allowed[key] is not None and tuple(sorted(values)) != allowed[key]:
            problems.append(f"extra {key!r} = {sorted(values)} != expected {list(allowed[key] or ())}")
    for key, wanted in sorted(expect.extra.items()):
        if wanted is not None and key not in seen.extra:
            problems.append(f"extra {key!r} missing")
    if seen.source == "audit":
        if proxy is not None:
            if seen.authenticated_as is None:
                problems.append(f"not impersonated: the API server authenticated {seen.user!r} itself, "
                                f"not the proxy {proxy.user!r}")
            elif seen.authenticated_as != proxy.user:
                problems.append(f"authenticated as {seen.authenticated_as!r}, expected the proxy {proxy.user!r}")
            elif proxy.groups is not None and set(seen.authenticated_groups) != proxy.groups:
                problems.append(f"the proxy's groups {sorted(seen.authenticated_groups)} != {sorted(proxy.groups)}")
            elif proxy.credential is not None and seen.credential_id != proxy.credential:
                problems.append(f"the proxy authenticated with a {seen.credential_id} credential, "
                                f"expected {proxy.credential}")
        elif seen.authenticated_as is not None:
            problems.append(f"impersonated by {seen.authenticated_as!r}; expected the user's own credential")
    return problems


def identity_mismatch(seen: Identity, expect: ExpectedIdentity, proxy: ProxyIdentity | None) -> str | None:
    return "; ".join(identity_problems(seen, expect, proxy)) or None
