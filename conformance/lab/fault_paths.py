"""Fault hops as lab paths: names, ports, command lines and harness-config entries (pure functions).

`conformance lab fault --target T --fault F [--name N]` runs one `conformance.lab.fault_hop` process in
front of target T as the extra path `fault-<N>` (default N: `<T>-<fault kind>`); `lab.py` starts and stops
it under the supervisor like any edge process. Its port is one of the lab block's free offsets
(FAULT_PORT_OFFSETS), so a lab holds at most that many fault hops at once.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import conformance
from conformance.errors import LabError
from conformance.lab import network_paths
from conformance.lab.fault_hop import HEALTH_PATH
from conformance.lab.fault_spec import CREDENTIAL_KINDS, REQUIRED_TARGET, Fault, FaultKind
from conformance.lab.topology import LOOPBACK, PORT_BLOCK, Layout

PREFIX = "fault-"
# topology.PORT_OFFSETS leaves 26..49 of each lab's block free.
FAULT_PORT_OFFSETS = range(38, PORT_BLOCK)
SERVING_CERT = "fault-hop"
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def path_name(name: str) -> str:
    """The path (and process) name of fault hop `name`."""
    return f"{PREFIX}{name}"


def is_fault_process(process: str) -> bool:
    return process.startswith(PREFIX)


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise LabError(f"fault hop name {name!r}: use 1 to 40 lowercase letters, digits and inner dashes")
    return name


def default_name(target: str, fault: Fault) -> str:
    return f"{target}-{fault.kind}"


def check_target(target: str, fault: Fault) -> None:
    if target not in network_paths.TARGET_NAMES:
        raise LabError(f"unknown lab target {target!r}: choose one of {', '.join(network_paths.TARGET_NAMES)}")
    required = REQUIRED_TARGET.get(fault.kind)
    if required is not None and target != required:
        raise LabError(f"fault {fault} stands in front of the API server itself: use --target {required}")


def free_port(layout: Layout, used: set[int]) -> int:
    for offset in FAULT_PORT_OFFSETS:
        port = layout.port_base + offset
        if port not in used:
            return port
    raise LabError(
        f"every fault hop port of this lab is taken ({len(FAULT_PORT_OFFSETS)}): "
        "remove one with `conformance lab fault --remove NAME`"
    )


def argv(layout: Layout, target: str, fault: Fault, port: int) -> list[str]:
    serving = layout.pki.make_serving_cert(SERVING_CERT)
    args = [
        sys.executable,
        "-m",
        "conformance.lab.fault_hop",
        f"--port={port}",
        f"--cert={serving.cert}",
        f"--key={serving.key}",
        f"--upstream-port={layout.port(network_paths.TARGET_PORT_NAMES[target])}",
        f"--upstream-ca={layout.pki.ca.cert}",
        f"--fault={fault}",
    ]
    if fault.kind in CREDENTIAL_KINDS:
        args += [f"--signing-key={layout.pki.oidc_signing_key}", f"--issuer-url={layout.issuer_url}"]
    if fault.kind is FaultKind.PASS_IMPERSONATION:
        # The lab's kube-oidc-proxy identity may impersonate (bootstrap.py's lab:impersonating-proxy).
        pair = layout.pki.clients.kube_oidc_proxy
        args += [f"--client-cert={pair.cert}", f"--client-key={pair.key}"]
    return args


def env() -> dict[str, str]:
    """The hop runs the same `conformance` package as the command that starts it."""
    root = str(Path(conformance.__file__).resolve().parents[1])
    current = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{current}" if current else root}


def health_url(port: int) -> str:
    return f"https://{LOOPBACK}:{port}{HEALTH_PATH.decode()}"


def path_entry(name: str, hop: dict[str, Any], available: bool) -> dict[str, Any]:
    """The harness config's `paths.fault-<name>`: no idle timeout is declared (the hop does not say what it
    does, as a misbehaving hop in the field would not)."""
    return {
        "description": f"fault hop: {hop['fault']} in front of {hop['target']}",
        "kind": "fault-hop",
        "fault": hop["fault"],
        "target": hop["target"],
        "process": path_name(name),
        "available": available,
    }


def via_entry(layout: Layout, hop: dict[str, Any], available: bool) -> dict[str, Any]:
    return {"server": f"https://{LOOPBACK}:{hop['port']}", "ca_file": str(layout.pki.ca.cert), "available": available}
