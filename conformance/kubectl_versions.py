"""Which kubectl versions a run uses, and in which modes: names, ranges and `--kubectl-modes`, parsed (pure).

Client names: `kubectl-1.NN` (one minor), `kubectl-1.AA..1.BB` (a range, both ends included), `kubectl` or
`kubectl-all` (every supported minor, 1.24 to 1.37). Modes: `as-shipped` (the version's own defaults: the
cell protocol `as-shipped`) and `forced` (the protocol forced through the KUBECTL_* gates: `spdy`, `ws`,
`ws-tunnel`), each for every selected version or, with `=VERSIONS`, for some: `as-shipped,forced=1.35` (the
default) gives every version as shipped and the reference 1.35 forced as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conformance.errors import ConfigError
from conformance.lab.build import KUBECTL_MINORS, REFERENCE_KUBECTL_MINOR

MODES = ("as-shipped", "forced")
DEFAULT_MODES = f"as-shipped,forced=1.{REFERENCE_KUBECTL_MINOR}"
ALL_NAMES = ("kubectl", "kubectl-all")
VERSION = re.compile(r"^1\.(\d+)$")


def supported() -> str:
    return f"1.{KUBECTL_MINORS[0]} to 1.{KUBECTL_MINORS[-1]}"


def parse_versions(text: str, where: str) -> list[int]:
    """`1.NN` or `1.AA..1.BB` -> the minors, each supported, in order."""
    ends = text.split("..")
    if len(ends) > 2:
        raise ConfigError(f"{where}: {text!r} is not a version (1.NN) or a range (1.AA..1.BB)")
    minors = []
    for end in ends:
        m = VERSION.match(end.strip())
        if not m:
            raise ConfigError(f"{where}: {end!r} is not a kubectl version like 1.30 (in {text!r})")
        minor = int(m.group(1))
        if minor not in KUBECTL_MINORS:
            raise ConfigError(f"{where}: kubectl 1.{minor} is not supported; supported: {supported()}")
        minors.append(minor)
    low, high = minors[0], minors[-1]
    if low > high:
        raise ConfigError(f"{where}: the range {text!r} runs backwards; write 1.{high}..1.{low}")
    return list(range(low, high + 1))


def kubectl_minors(name: str, where: str) -> list[int] | None:
    """The minors a client name stands for, or None when it names no kubectl (native, python...)."""
    if name in ALL_NAMES:
        return list(KUBECTL_MINORS)
    if not name.startswith("kubectl-"):
        return None
    return parse_versions(name.removeprefix("kubectl-"), where)


@dataclass(frozen=True)
class ModeSpec:
    mode: str
    minors: frozenset[int] | None  # None: every selected version


def parse_modes(text: str, where: str) -> list[ModeSpec]:
    """`as-shipped,forced=1.35` -> specs; bad names and versions are ConfigErrors naming `where`."""
    specs = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        mode, _, versions = item.partition("=")
        mode = mode.strip()
        if mode not in MODES:
            known = ", ".join(MODES)
            raise ConfigError(f"{where}: unknown kubectl mode {mode!r}; modes: {known} (each [=1.NN[..1.MM]])")
        minors = frozenset(parse_versions(versions, where)) if versions else None
        specs.append(ModeSpec(mode, minors))
    if not specs:
        raise ConfigError(f"{where}: no kubectl mode given; modes: {', '.join(MODES)}")
    return specs


def modes_for(minor: int, specs: list[ModeSpec]) -> frozenset[str]:
    return frozenset(s.mode for s in specs if s.minors is None or minor in s.minors)
