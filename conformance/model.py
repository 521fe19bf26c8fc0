"""The one results model: cells, their evidence and outcomes, and a run's metadata.

Probes return an `Observation` (what happened, with evidence, never a verdict); expectations turn it into
an `Outcome`; suites collect `CellResult`s into `Results`, which every report renders. Everything here is
JSON-serialisable through `to_dict`/`from_dict` and validated by the versioned JSON Schema in
`reports/schema/results-v2.json`. No field ever holds a credential: evidence passes through
`conformance.redact` before it is stored.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 2


class Outcome(enum.StrEnum):
    """How a cell ended, judged against its expectation (Cilium-style: an expected failure passes)."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    EXPECTED_FAIL = "expected-fail"  # failed with the declared error class
    UNEXPECTED_PASS = "unexpected-pass"  # noqa: S105 - declared to fail, but worked
    FAIL = "fail"  # failed unexpectedly, or with another error class than declared
    ERROR = "error"  # the harness itself broke
    SKIP = "skip"  # not run, with a reason

    @property
    def gates(self) -> bool:
        """True for the outcomes that make a gate run exit non-zero."""
        return self in (Outcome.FAIL, Outcome.UNEXPECTED_PASS, Outcome.ERROR)


class ErrorClass(enum.StrEnum):
    """Canonical error classes, derived from evidence (status line, error text, exceptions)."""

    NONE = "none"
    UPGRADE_REQUIRED = "upgrade-required"  # 400 "Upgrade request required": an L7 hop stripped Upgrade
    UPGRADE_REFUSED = "upgrade-refused"  # a proxy refused the upgrade itself (e.g. Envoy 403, 500 HTML)
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403 from the API server's authorizer
    NOT_FOUND = "not-found"
    TLS = "tls"  # handshake or verification failure
    TIMEOUT = "timeout"
    CONNECT_REFUSED = "connect-refused"
    RESET = "reset"  # connection reset or closed mid-stream
    PROTOCOL_ERROR = "protocol-error"  # malformed frames, wrong subprotocol, bad status
    PROTOCOL_MISMATCH = "protocol-mismatch"  # negotiated another protocol than the one asked for
    PROXY_ERROR = "proxy-error"  # an HTTPS proxy refused CONNECT, or a 502/503/504 from a hop
    MISSING_EXIT_STATUS = "missing-exit-status"  # error channel closed without a Status
    WRONG_IDENTITY = "wrong-identity"  # worked, but the API server saw another user than expected
    DATA_MISMATCH = "data-mismatch"  # bytes came back different
    SERVER_ERROR = "server-error"  # other 5xx
    ELEVATED = "elevated"  # security: a client-supplied identity header changed who the API server saw
    ACCEPTED_BAD_CREDENTIAL = "accepted-bad-credential"  # security: a bad or missing token was let through
    IDENTITY_UNVERIFIED = "identity-unverified"  # worked, but no identity evidence of the strength required
    HOP_REFUSED = "hop-refused"  # a hop answered 4xx without an authentication/authorization decision (404, 405...)
    PATH_UNAVAILABLE = "path-unavailable"  # the config marks the target or path as not running
    TRUNCATED = "truncated"  # a stream ended cleanly before all the bytes arrived
    IDLE_CUT = "idle-cut"  # a session was cut while it was silent, before the path's declared idle timeout
    EOF_LOST = "eof-lost"  # the client half-closed stdin, the process never saw end of input
    TOO_SLOW = "too-slow"  # worked, but beyond a timing budget of the config
    # The impersonating proxy's audit record and the API server's disagree, or one of them is missing.
    AUDIT_CHAIN_BROKEN = "audit-chain-broken"
    HARNESS = "harness"  # our own bug


@dataclass(frozen=True, slots=True, kw_only=True)
class CellKey:
    """The coordinates of one question."""

    target: str
    path: str
    protocol: str
    operation: str
    client: str

    @property
    def id(self) -> str:
        return f"{self.target}-{self.path}-{self.protocol}-{self.operation}-{self.client}"


@dataclass(slots=True, kw_only=True)
class Identity:
    """The identity the API server applied to a request (audit event or SelfSubjectReview)."""

    user: str
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)
    uid: str | None = None
    # For a proxied request: who the API server authenticated (the proxy), and how.
    authenticated_as: str | None = None
    authenticated_groups: list[str] = field(default_factory=list)
    credential_id: str | None = None  # audit extra authentication.kubernetes.io/credential-id
    source: str = "unknown"  # "audit", "selfsubjectreview"


@dataclass(slots=True, kw_only=True)
class Timings:
    connect_s: float | None = None
    tls_s: float | None = None
    upgrade_s: float | None = None
    first_byte_s: float | None = None
    total_s: float | None = None


@dataclass(slots=True, kw_only=True)
class Evidence:
    """What a person needs to believe a cell's answer."""

    protocol_requested: str | None = None
    protocol_negotiated: str | None = None
    fallback: str | None = None  # e.g. "websocket->spdy" when a client fell back
    status_line: str | None = None  # of the upgrade response, e.g. "HTTP/1.1 400 Bad Request"
    response_headers: dict[str, str] = field(default_factory=dict)
    body_excerpt: str | None = None
    error: str | None = None
    exit_code: int | None = None
    identity: Identity | None = None
    timings: Timings = field(default_factory=Timings)
    bytes_sent: int = 0
    bytes_verified: int = 0
    notes: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)  # redacted handshake lines
    # Which hop refused (a status the harness could attribute): "api-server", "proxy:<target>", "path:<path>",
    # or "unknown"; None when nothing was refused.
    refused_by: str | None = None
    # Where the identity came from: "audit" (the API server's event of this very request),
    # "selfsubjectreview" (a separate request with the same credential) or "none".
    identity_source: str = "none"
    # The impersonating proxy's own record of this request (its audit log), and whether the chain
    # credential -> proxy's user -> API server's user is complete ("complete", "broken: ...", None: n/a).
    proxy_identity: Identity | None = None
    audit_trail: str | None = None
    survived_s: float | None = None  # idle cells: how long the silent session lasted
    # Known client races (conformance.client_races) seen in the attempt this evidence is of, and the attempts
    # before it that failed with one ("attempt 1: <class>: <message> [<race>]"); the cell was asked again.
    client_races: list[str] = field(default_factory=list)
    earlier_attempts: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Observation:
    """What a probe saw: an error class (NONE when the operation worked) and the evidence. Never a verdict."""

    error_class: ErrorClass
    evidence: Evidence
    message: str = ""
    skipped: bool = False  # the probe could not apply here (message says why)
    # Security probes whose request was accepted: the identity the API server applied decides the verdict.
    identity_decides: bool = False


@dataclass(slots=True, kw_only=True)
class Expectation:
    outcome: str = "pass"  # "pass" or "fail"
    error_class: str | None = None  # for "fail": the class that must occur
    status: int | None = None  # for "fail", optional: the HTTP status that must have been answered
    refused_by: str | None = None  # for "fail", optional: the hop that must have refused (Evidence.refused_by)
    reason: str | None = None  # why (e.g. the FIELD.md row)
    source: str | None = None  # where it was declared (profile name or file:line)


@dataclass(slots=True, kw_only=True)
class CellResult:
    key: CellKey
    client_version: str | None
    outcome: Outcome
    error_class: ErrorClass
    expectation: Expectation
    evidence: Evidence
    message: str = ""  # one line: why this outcome
    duration_s: float = 0.0

    @property
    def id(self) -> str:
        return self.key.id


@dataclass(slots=True, kw_only=True)
class MergedInput:
    """One results file that `conformance report merge` combined (kept in the merged run's meta)."""

    label: str  # the source discriminator: runner, else source, else file name
    file: str
    started: str
    finished: str | None = None
    runner: str | None = None
    source: str | None = None
    cluster_version: str | None = None
    config_digest: str | None = None
    cells: int = 0  # how many cells this input brought, before later inputs replaced any
    prefixed: bool = False  # its targets were renamed "<label>/<target>" because its cell ids clashed


@dataclass(slots=True, kw_only=True)
class RunMetadata:
    started: str  # RFC 3339
    finished: str | None = None
    harness_version: str = ""
    cluster_version: str | None = None
    config_digest: str | None = None  # sha256 of the config, not the config
    source: str | None = None  # "local-lab" or a user's config path
    runner: str | None = None  # hostname or CI job, to tell merged files apart
    merged_from: list[MergedInput] = field(default_factory=list)  # empty unless this run is a merge
    # The identity every cell was compared with when the run took it from a SelfSubjectReview at the start
    # (--kubeconfig runs); None when the config declared it.
    expected_identity: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class Results:
    meta: RunMetadata
    cells: list[CellResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def counts(self) -> dict[str, int]:
        counts = {o.value: 0 for o in Outcome}
        for cell in self.cells:
            counts[cell.outcome.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        return cls(meta=_meta_from_dict(data["meta"]), cells=[_cell_from_dict(c) for c in data.get("cells", [])],
                   schema_version=data.get("schema_version", SCHEMA_VERSION))


def _only_known(klass: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(klass)}
    return {k: v for k, v in data.items() if k in names}


def _meta_from_dict(data: dict[str, Any]) -> RunMetadata:
    merged = [MergedInput(**_only_known(MergedInput, m)) for m in data.get("merged_from") or []]
    return RunMetadata(**{**data, "merged_from": merged})


def _cell_from_dict(data: dict[str, Any]) -> CellResult:
    ev = dict(data["evidence"])
    identity = Identity(**_only_known(Identity, ev["identity"])) if ev.get("identity") else None
    timings = Timings(**_only_known(Timings, ev.get("timings") or {}))
    proxy_identity = Identity(**_only_known(Identity, ev["proxy_identity"])) if ev.get("proxy_identity") else None
    ev.update(identity=identity, timings=timings, proxy_identity=proxy_identity)
    return CellResult(
        key=CellKey(**data["key"]),
        client_version=data.get("client_version"),
        outcome=Outcome(data["outcome"]),
        error_class=ErrorClass(data["error_class"]),
        expectation=Expectation(**_only_known(Expectation, data["expectation"])),
        evidence=Evidence(**_only_known(Evidence, ev)),
        message=data.get("message", ""),
        duration_s=data.get("duration_s", 0.0),
    )
