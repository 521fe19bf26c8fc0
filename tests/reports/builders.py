"""Builders for hand-made results, so each report test can state exactly what it feeds in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

CellFactory = Callable[..., CellResult]


def build_cell(
    target: str = "jetstack",
    path: str = "direct",
    protocol: str = "websocket",
    operation: str = "exec",
    client: str = "kubectl-1.36",
    outcome: Outcome = Outcome.PASS,
    error_class: ErrorClass = ErrorClass.NONE,
    message: str = "",
    **evidence: Any,
) -> CellResult:
    evidence.setdefault("timings", Timings(connect_s=0.001, total_s=0.2))
    return CellResult(
        key=CellKey(target=target, path=path, protocol=protocol, operation=operation, client=client),
        client_version="v1.36.0",
        outcome=outcome,
        error_class=error_class,
        expectation=Expectation(outcome="fail" if outcome is Outcome.EXPECTED_FAIL else "pass"),
        evidence=Evidence(**evidence),
        message=message or outcome.value,
        duration_s=0.2,
    )


def build_results(cells: list[CellResult], runner: str | None = "ci-1", **meta: Any) -> Results:
    meta.setdefault("started", "2025-06-01T12:00:00Z")
    return Results(meta=RunMetadata(runner=runner, **meta), cells=cells)


def build_small_results() -> Results:
    """Two targets, two paths, two protocols, one of every outcome, with evidence worth showing."""
    alice = Identity(user="alice", groups=["devs"], authenticated_as="system:serviceaccount:jetstack:proxy")
    return build_results([
        build_cell(status_line="HTTP/1.1 101 Switching Protocols", identity=alice, transcript=["> GET /exec", "< 101"]),
        build_cell(client="native", outcome=Outcome.FAIL, error_class=ErrorClass.UPGRADE_REQUIRED,
                   status_line="HTTP/1.1 400 Bad Request", error="Upgrade request required"),
        build_cell(protocol="spdy", outcome=Outcome.EXPECTED_FAIL, error_class=ErrorClass.UPGRADE_REFUSED,
                   status_line="HTTP/1.1 403 Forbidden"),
        build_cell(path="l7-lb", outcome=Outcome.ERROR, error_class=ErrorClass.HARNESS, error="KeyError: 'stdout'"),
        build_cell(target="direct", outcome=Outcome.UNEXPECTED_PASS, status_line="HTTP/1.1 101 Switching Protocols"),
        build_cell(target="direct", operation="attach", outcome=Outcome.SKIP, message="client lacks websocket"),
    ])
