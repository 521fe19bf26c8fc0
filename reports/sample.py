"""Synthetic results for tests and benchmarks: every outcome and error class, several of every axis.

`make_results(n, seed)` is deterministic for a given (n, seed). The first cells (after a seeded shuffle
of the grid) take one scenario each from `COVERAGE`, so any n >= len(COVERAGE) covers every outcome and
every error class; the rest are mostly passes, as in a healthy run. `with_as_shipped(results)` adds
kubectl-1.NN cells of protocol `as-shipped` (the Which-kubectl view's input), modelled on upstream's
defaults and on what the lab's paths refuse.
"""

from __future__ import annotations

import itertools
import random

from conformance.model import (
    CellKey,
    CellResult,
    ErrorClass,
    Evidence,
    Expectation,
    Identity,
    Outcome,
    Results,
    RunMetadata,
    Timings,
)

TARGETS = ("direct", "jetstack", "openunison", "pinniped")
PATHS = ("direct", "l4-lb", "l7-lb-haproxy", "https-proxy-connect", "envoy-ingress")
PROTOCOLS = ("websocket", "spdy")
OPERATIONS = ("exec", "attach", "cp", "port-forward", "logs", "whoami")
CLIENTS = ("kubectl-1.33", "kubectl-1.36", "native")

# (status line, error text, body excerpt) per error class: what the wire shows for each.
_FAILURE_EVIDENCE: dict[ErrorClass, tuple[str | None, str, str | None]] = {
    ErrorClass.UPGRADE_REQUIRED: ("HTTP/1.1 400 Bad Request", "Upgrade request required", "Upgrade request required"),
    ErrorClass.UPGRADE_REFUSED: (
        "HTTP/1.1 403 Forbidden",
        "upgrade refused by proxy",
        "<html><body><h1>403 Forbidden</h1>Request forbidden by administrative rules.</body></html>",
    ),
    ErrorClass.UNAUTHORIZED: (
        "HTTP/1.1 401 Unauthorized",
        "the server has asked for the client to provide credentials",
        '{"kind":"Status","reason":"Unauthorized","code":401}',
    ),
    ErrorClass.FORBIDDEN: (
        "HTTP/1.1 403 Forbidden",
        'pods "echo" is forbidden: User "bob" cannot create resource '
        '"pods/exec" in API group "" in the namespace "conformance"',
        None,
    ),
    ErrorClass.NOT_FOUND: ("HTTP/1.1 404 Not Found", 'pods "echo" not found', None),
    ErrorClass.TLS: (None, "tls: failed to verify certificate: x509: certificate signed by unknown authority", None),
    ErrorClass.TIMEOUT: (None, "no upgrade response within 10.0 s (deadline: upgrade)", None),
    ErrorClass.CONNECT_REFUSED: (None, "dial tcp 127.0.0.1:17431: connect: connection refused", None),
    ErrorClass.RESET: ("HTTP/1.1 101 Switching Protocols", "connection reset by peer after 4096 bytes", None),
    ErrorClass.PROTOCOL_ERROR: (
        "HTTP/1.1 101 Switching Protocols",
        "SPDY frame with unknown type 0x7f on stream 3",
        None,
    ),
    ErrorClass.PROTOCOL_MISMATCH: (
        "HTTP/1.1 101 Switching Protocols",
        "asked for v5.channel.k8s.io, negotiated v4.channel.k8s.io",
        None,
    ),
    ErrorClass.PROXY_ERROR: (
        "HTTP/1.1 502 Bad Gateway",
        "proxy CONNECT failed: 502 Bad Gateway",
        "<html><body>502 Bad Gateway | upstream `reset`</body></html>",
    ),
    ErrorClass.MISSING_EXIT_STATUS: (
        "HTTP/1.1 101 Switching Protocols",
        "error channel closed without a Status (exit code unknown)",
        None,
    ),
    ErrorClass.WRONG_IDENTITY: ("HTTP/1.1 101 Switching Protocols", "identity check failed: expected user alice", None),
    ErrorClass.DATA_MISMATCH: ("HTTP/1.1 101 Switching Protocols", "byte 65536 differs: sent 0x41, got 0x00", None),
    ErrorClass.SERVER_ERROR: (
        "HTTP/1.1 500 Internal Server Error",
        "Internal error occurred: error dialing backend",
        None,
    ),
    ErrorClass.ELEVATED: ("HTTP/1.1 101 Switching Protocols",
                          "client-sent Impersonate-User: system:admin reached the API server", None),
    ErrorClass.ACCEPTED_BAD_CREDENTIAL: ("HTTP/1.1 101 Switching Protocols",
                                         "an expired token was accepted and the exec ran", None),
    ErrorClass.HARNESS: (None, "Traceback (most recent call last): KeyError: 'stdout' in probes/exec.py", None),
}

# Failures that still reached the API server, so it recorded an identity.
_SEEN_BY_API_SERVER = frozenset({ErrorClass.WRONG_IDENTITY, ErrorClass.ELEVATED, ErrorClass.ACCEPTED_BAD_CREDENTIAL})

# Every outcome and every error class, once each (expected-fail and fail alternate over the classes).
_FAILING = [c for c in ErrorClass if c not in (ErrorClass.NONE, ErrorClass.HARNESS)]
COVERAGE: list[tuple[Outcome, ErrorClass]] = [
    (Outcome.PASS, ErrorClass.NONE),
    (Outcome.SKIP, ErrorClass.NONE),
    (Outcome.UNEXPECTED_PASS, ErrorClass.NONE),
    (Outcome.ERROR, ErrorClass.HARNESS),
    *[(Outcome.EXPECTED_FAIL if i % 2 == 0 else Outcome.FAIL, cls) for i, cls in enumerate(_FAILING)],
]
_RANDOM_OUTCOMES = (
    [Outcome.PASS] * 14
    + [Outcome.EXPECTED_FAIL] * 2
    + [Outcome.SKIP, Outcome.FAIL, Outcome.ERROR, Outcome.UNEXPECTED_PASS]
)


def make_results(n_cells: int, seed: int = 0, *, runner: str = "sample-runner") -> Results:
    """A deterministic synthetic run of `n_cells` cells, in collection order."""
    rng = random.Random(seed)
    keys = _keys(n_cells, rng)
    # Coverage scenarios land on a seeded spread of cells rather than on the first target's.
    scenario_at = dict(zip(rng.sample(range(n_cells), min(n_cells, len(COVERAGE))), COVERAGE, strict=False))
    cells = []
    for index, key in enumerate(keys):
        outcome, error_class = scenario_at.get(index) or _random_scenario(rng)
        cells.append(_cell(key, outcome, error_class, rng))
    meta = RunMetadata(
        started="2025-06-01T12:00:00Z",
        finished="2025-06-01T12:07:31Z",
        harness_version="0.1.0",
        cluster_version="v1.36.3",
        config_digest=f"sha256:{rng.getrandbits(256):064x}",
        source="local-lab",
        runner=runner,
    )
    return Results(meta=meta, cells=cells)


def _keys(n_cells: int, rng: random.Random) -> list[CellKey]:
    per_path = len(PROTOCOLS) * len(OPERATIONS) * len(CLIENTS)
    per_target = len(PATHS) * per_path
    # About three quarters of each target's grid filled: a realistic mix of run and not-run cells.
    n_targets = max(2, -(-n_cells * 4 // (per_target * 3)))
    targets = [TARGETS[i] if i < len(TARGETS) else f"cluster-{i}" for i in range(n_targets)]
    grid = list(itertools.product(targets, PATHS, PROTOCOLS, OPERATIONS, CLIENTS))
    # The first target/path is complete, as in a real run, so every axis first appears in its natural order.
    head = list(range(min(n_cells, per_path)))
    picked = head + sorted(rng.sample(range(len(head), len(grid)), n_cells - len(head)))
    return [
        CellKey(target=t, path=p, protocol=pr, operation=o, client=c) for t, p, pr, o, c in (grid[i] for i in picked)
    ]


def _random_scenario(rng: random.Random) -> tuple[Outcome, ErrorClass]:
    outcome = rng.choice(_RANDOM_OUTCOMES)
    if outcome in (Outcome.PASS, Outcome.SKIP, Outcome.UNEXPECTED_PASS):
        return outcome, ErrorClass.NONE
    if outcome is Outcome.ERROR:
        return outcome, ErrorClass.HARNESS
    return outcome, rng.choice(_FAILING)


def _negotiated(key: CellKey) -> str:
    if key.protocol == "websocket":
        return "portforward.k8s.io" if key.operation == "port-forward" else "v5.channel.k8s.io"
    return "portforward.k8s.io" if key.operation == "port-forward" else "v4.channel.k8s.io"


def _identity(key: CellKey, error_class: ErrorClass, rng: random.Random) -> Identity:
    proxied = key.target != "direct"
    user = {ErrorClass.WRONG_IDENTITY: "mallory", ErrorClass.ELEVATED: "system:admin"}.get(error_class, "alice")
    return Identity(
        user=user,
        groups=["devs", "system:authenticated"],
        extra={"authentication.kubernetes.io/credential-id": [f"JTI={rng.getrandbits(64):016x}"]} if proxied else {},
        uid=None,
        authenticated_as=f"system:serviceaccount:{key.target}:proxy" if proxied else None,
        authenticated_groups=["system:serviceaccounts"] if proxied else [],
        credential_id=f"X509SHA256={rng.getrandbits(64):016x}" if proxied else None,
        source=rng.choice(["audit", "selfsubjectreview"]),
    )


def _cell(key: CellKey, outcome: Outcome, error_class: ErrorClass, rng: random.Random) -> CellResult:
    ran = outcome is not Outcome.SKIP
    worked = outcome in (Outcome.PASS, Outcome.UNEXPECTED_PASS)
    status: str | None = "HTTP/1.1 101 Switching Protocols"
    error: str | None = None
    body: str | None = None
    if error_class in _FAILURE_EVIDENCE:
        status, error, body = _FAILURE_EVIDENCE[error_class]
    connect = round(rng.uniform(0.0005, 0.01), 6)
    timings = (
        Timings(
            connect_s=connect,
            tls_s=round(connect * 3, 6),
            upgrade_s=round(connect * 5, 6),
            first_byte_s=round(connect * 6, 6),
            total_s=round(rng.uniform(0.05, 2.0), 4),
        )
        if ran
        else Timings()
    )
    transcript = (
        [
            f"> GET /api/v1/namespaces/conformance/pods/echo/{key.operation} HTTP/1.1",
            "> Connection: Upgrade",
            f"> Upgrade: {'websocket' if key.protocol == 'websocket' else 'SPDY/3.1'}",
            "> Authorization: Bearer <redacted>",
            f"< {status}" if status else "< (no response)",
        ]
        if ran
        else []
    )
    headers = {"Content-Type": "text/plain; charset=utf-8", "Date": "Sun, 01 Jun 2025 12:00:01 GMT"}
    if status and " 101 " in status:
        headers = {
            "Upgrade": key.protocol,
            "Connection": "Upgrade",
            "Sec-Websocket-Protocol" if key.protocol == "websocket" else "X-Stream-Protocol-Version": _negotiated(key),
        }
    sent = rng.choice([0, 1024, 65536, 1 << 20]) if ran else 0
    evidence = Evidence(
        protocol_requested=_negotiated(key) if ran else None,
        protocol_negotiated=_negotiated(key) if worked or (status and " 101 " in status) else None,
        fallback="websocket->spdy" if key.protocol == "websocket" and rng.random() < 0.05 else None,
        status_line=status if ran else None,
        response_headers=headers if ran and status else {},
        body_excerpt=body,
        error=error if ran and not worked else None,
        exit_code=0 if worked and key.operation in ("exec", "cp") else None,
        identity=_identity(key, error_class, rng)
        if ran and (worked or error_class in _SEEN_BY_API_SERVER)
        else None,
        timings=timings,
        bytes_sent=sent,
        bytes_verified=sent if worked else 0,
        notes=["kubectl fell back to SPDY after the WebSocket upgrade failed"] if rng.random() < 0.02 else [],
        transcript=transcript,
    )
    declared_fail = outcome in (Outcome.EXPECTED_FAIL, Outcome.UNEXPECTED_PASS)
    declared_class = error_class if outcome is Outcome.EXPECTED_FAIL else ErrorClass.UPGRADE_REQUIRED
    expectation = Expectation(
        outcome="fail" if declared_fail else "pass",
        error_class=declared_class.value if declared_fail else None,
        reason="L7 load balancers strip Upgrade unless configured (FIELD.md row 12)" if declared_fail else None,
        source="profiles/default.yaml:42" if declared_fail else None,
    )
    messages = {
        Outcome.PASS: "worked",
        Outcome.EXPECTED_FAIL: f"failed with {error_class.value}, as declared",
        Outcome.UNEXPECTED_PASS: f"declared to fail with {declared_class.value}, but worked",
        Outcome.FAIL: f"failed with {error_class.value}",
        Outcome.ERROR: "harness error",
        Outcome.SKIP: "skipped: this client does not support the protocol",
    }
    return CellResult(
        key=key,
        client_version=None if key.client == "native" else f"v1.{key.client.rsplit('.', 1)[-1]}.0",
        outcome=outcome,
        error_class=error_class,
        expectation=expectation,
        evidence=evidence,
        message=messages[outcome],
        duration_s=timings.total_s or 0.0,
    )


# --- kubectl as shipped -------------------------------------------------------------------------------
# kubectl-1.NN run without any environment forcing a protocol (key.protocol "as-shipped"), modelled on the
# upstream defaults: exec, cp and attach speak WebSocket from 1.30, port-forward from 1.31, SPDY before.
AS_SHIPPED_MINORS = (24, 29, 30, 31, 36)
AS_SHIPPED_OPERATIONS = ("exec", "cp-upload", "cp-download", "attach", "port-forward", "logs-follow")
_WEBSOCKET_FROM = {"port-forward": 31, "logs-follow": 99}  # logs -f is plain HTTP in every version
# Where SPDY is refused, and how: (status line, error text, refused by, error class).
_SPDY_REFUSED = {
    "l7-lb-haproxy": ("HTTP/1.1 400 Bad Request", "Error from server (BadRequest): Upgrade request required",
                      "api-server", ErrorClass.UPGRADE_REQUIRED),
    "envoy-ingress": ("HTTP/1.1 403 Forbidden", "error: error upgrading connection: ", "path:envoy-ingress",
                      ErrorClass.UPGRADE_REFUSED),
}
_OPENUNISON_SPDY = ("HTTP/1.1 500 Internal Server Error",
                    "error: unable to upgrade connection: <!DOCTYPE html><html><head><title>OpenUnison - Error",
                    "proxy:openunison", ErrorClass.UPGRADE_REFUSED)
# The forward proxy in this sample drops WebSocket upgrades for 1.30's exec, so kubectl falls back to SPDY.
_FALLBACK_AT = ("https-proxy-connect", 30)


def with_as_shipped(results: Results, *, minors: tuple[int, ...] = AS_SHIPPED_MINORS) -> Results:
    """`results` plus as-shipped kubectl cells for its first target and openunison (else its second target),
    every sample path and operation."""
    present = list(dict.fromkeys(c.key.target for c in results.cells))
    targets = present[:1] + (["openunison"] if "openunison" in present[1:] else present[1:2])
    extra = [
        _as_shipped_cell(CellKey(target=t, path=p, protocol="as-shipped", operation=op, client=f"kubectl-1.{m}"))
        for t in targets
        for p in PATHS
        for op in AS_SHIPPED_OPERATIONS
        for m in minors
    ]
    return Results(meta=results.meta, cells=[*results.cells, *extra], schema_version=results.schema_version)


def _as_shipped_cell(key: CellKey) -> CellResult:
    minor = int(key.client.rsplit(".", 1)[1])
    websocket = minor >= _WEBSOCKET_FROM.get(key.operation, 30)
    fallback = websocket and (key.path, minor) == _FALLBACK_AT and key.operation != "port-forward"
    spdy = not websocket or fallback
    refused = None
    if spdy and key.operation != "logs-follow":
        # The path's hop answers first; behind a path that passes SPDY, OpenUnison refuses it.
        refused = _SPDY_REFUSED.get(key.path) or (_OPENUNISON_SPDY if key.target == "openunison" else None)
    negotiated = "spdy" if spdy else "websocket (v5.channel.k8s.io)"
    if key.operation == "logs-follow":
        negotiated = "http"
    status, error, refused_by, error_class = refused or ("HTTP/1.1 101 Switching Protocols", None, None,
                                                         ErrorClass.NONE)
    outcome = Outcome.EXPECTED_FAIL if refused else Outcome.PASS
    evidence = Evidence(
        protocol_requested="websocket" if websocket else "spdy",
        protocol_negotiated=None if refused else negotiated,
        fallback="websocket->spdy" if fallback else None,
        status_line="HTTP/1.1 200 OK" if key.operation == "logs-follow" else status,
        error=error,
        refused_by=refused_by,
        exit_code=None if refused else 0,
        timings=Timings(connect_s=0.002, upgrade_s=0.01, total_s=0.3),
        identity_source="audit" if not refused else "none",
    )
    expectation = Expectation(outcome="fail", error_class=error_class.value) if refused else Expectation()
    return CellResult(
        key=key,
        client_version=f"v1.{minor}.0",
        outcome=outcome,
        error_class=error_class,
        expectation=expectation,
        evidence=evidence,
        message=f"{error_class.value} as declared" if refused else "worked",
        duration_s=0.3,
    )
