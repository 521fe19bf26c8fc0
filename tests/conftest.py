"""Shared fixtures. Tests marked `lab` need the running local lab (`conformance lab up`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class RunningLab:
    layout: object
    kubectl: Path
    admin_kubeconfig: Path
    audit_log: Path

    def kubeconfig(self, target: str, user: str) -> Path:
        from conformance.lab import lab

        return lab.kubeconfig(target, user)

    def token(self, user: str, kind: str = "valid") -> str:
        from conformance.lab import lab
        from conformance.lab.issuer import TokenKind

        return lab.token(user, TokenKind(kind))


@pytest.fixture(scope="session")
def running_lab() -> Iterator[RunningLab]:
    from conformance.lab import lab
    from conformance.lab.build import REFERENCE_KUBECTL_MINOR, installed_components

    if not lab.is_up():
        pytest.fail(
            "this test needs the local lab: start it with `conformance lab up` "
            "(or deselect lab tests with -m 'not lab')",
            pytrace=False,
        )
    layout = lab.current_layout()
    kubectl = Path(installed_components()[f"kubectl-1.{REFERENCE_KUBECTL_MINOR}"].binaries["kubectl"])
    yield RunningLab(layout, kubectl, layout.component_kubeconfig("admin"), layout.audit_log)


@pytest.fixture
def fault_path(running_lab: RunningLab) -> Iterator[Callable[..., str]]:
    """Start fault hops for one test: `fault_path("jetstack", "corrupt:65536")` runs `conformance lab fault`
    and returns the new path's name (`fault-<name>`); every hop started is removed afterwards."""
    from conformance.lab import fault_paths, lab

    started: list[str] = []

    def start(target: str, fault: str, name: str | None = None) -> str:
        from conformance.lab.fault_spec import parse_fault

        name = name or fault_paths.default_name(target, parse_fault(fault))
        started.append(name)
        lab.add_fault(target, fault, name, emit=lambda _line: None)
        return fault_paths.path_name(name)

    yield start
    for name in started:
        lab.remove_fault(name, emit=lambda _line: None)
