"""The answer-first views, as rows: pure functions from results, shared by every renderer.

* What works: per target and path, each operation a person runs (exec, cp up, cp down, attach,
  port-forward, logs, idle sessions), per protocol family (SPDY, WebSocket): works, broken (with the first
  failure in a few words), partly (some protocols or clients of the family work, some do not).
* Which kubectl: per target, path and operation, the oldest kubectl that works as shipped (the
  `as-shipped` cells of the `kubectl-1.NN` clients), and what the older ones get.
* How fast: per target and path, the native client's exec latency (p50/p90) and port-forward throughput.

"Works" is about what happened, not about expectations: a declared expected failure is still broken.
The views only read cells; every cell stays in the full grid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from conformance.model import CellResult, Outcome, Results
from reports.failure_words import failure_words


@dataclass(frozen=True, slots=True)
class Group:
    """One column of the views: the operations a person thinks of as one thing."""

    name: str
    operations: tuple[str, ...]
    per_family: bool = True  # False: plain HTTP, the same whatever the streaming protocol


GROUPS: tuple[Group, ...] = (
    Group("exec", ("exec", "exec-stdin")),
    Group("cp up", ("cp-upload",)),
    Group("cp down", ("cp-download",)),
    Group("attach", ("attach",)),
    Group("port-forward", ("port-forward", "port-forward-concurrent", "port-forward-ports")),
    Group("logs", ("logs-follow",), per_family=False),
    Group("idle", ("exec-idle", "port-forward-idle")),  # a silent session outlives the path's idle timeout
)
GROUP_OF: dict[str, Group] = {op: g for g in GROUPS for op in g.operations}
FAMILIES = ("SPDY", "WebSocket")
AS_SHIPPED = "as-shipped"  # the protocol of kubectl cells run without any forcing environment
_KUBECTL = re.compile(r"kubectl-1\.(\d+)$")
NO_PATH = "none"  # the config's name for "straight to the target"
NOT_IN_VIEWS = frozenset({"raw"})  # security probes write their own requests: no user's client


class State:
    WORKS = "works"
    BROKEN = "broken"
    PARTLY = "partly"
    ERROR = "error"  # only harness errors: no answer
    NOT_RUN = "not run"  # every cell skipped


def family(protocol: str) -> str | None:
    """SPDY or WebSocket for a streaming protocol name; None for plain HTTP and as-shipped cells."""
    if protocol == "spdy":
        return "SPDY"
    if protocol.startswith("ws") or protocol == "websocket":
        return "WebSocket"
    return None


def worked(cell: CellResult) -> bool:
    return cell.outcome in (Outcome.PASS, Outcome.UNEXPECTED_PASS)


def kubectl_minor(client: str) -> int | None:
    match = _KUBECTL.match(client)
    return int(match.group(1)) if match else None


# --- What works -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    state: str
    words: str = ""  # the first failure in a few words ("" when it works)
    where: str = ""  # partly: the first cell that did not work, as "operation protocol client"
    cells: int = 0

    @property
    def note(self) -> str:
        """The footnote text: the failure, and for `partly` where it happened."""
        if self.state == State.PARTLY:
            return f"{self.where}: {self.words}"
        return self.words


@dataclass(frozen=True, slots=True)
class WorksRow:
    target: str
    path: str
    family: str
    entries: tuple[Entry | None, ...]  # one per GROUPS; None where this row shows nothing


def entry_for(cells: list[CellResult]) -> Entry | None:
    """The state of one view entry from its cells (None when there are none)."""
    if not cells:
        return None
    ran = [c for c in cells if c.outcome is not Outcome.SKIP]
    if not ran:
        return Entry(State.NOT_RUN, cells=len(cells))
    broken = [c for c in ran if not worked(c) and c.outcome is not Outcome.ERROR]
    good = [c for c in ran if worked(c)]
    if not broken:
        if good:
            return Entry(State.WORKS, cells=len(cells))
        return Entry(State.ERROR, failure_words(ran[0]), cells=len(cells))
    first = broken[0]
    words = failure_words(first)
    if not good:
        return Entry(State.BROKEN, words, cells=len(cells))
    where = f"{first.key.operation} {first.key.protocol} {first.key.client}"
    return Entry(State.PARTLY, words, where, cells=len(cells))


def what_works(results: Results) -> list[WorksRow]:
    """Rows target x path x family, in the results' order; a target/path without view cells has no rows."""
    buckets: dict[tuple[str, str, str, str], list[CellResult]] = {}
    order: dict[tuple[str, str], None] = {}
    for cell in results.cells:
        k = cell.key
        group = GROUP_OF.get(k.operation)
        if group is None or k.client in NOT_IN_VIEWS or k.protocol == AS_SHIPPED:
            continue
        fam = family(k.protocol) if group.per_family else ""
        if fam is None:
            continue
        order.setdefault((k.target, k.path))
        buckets.setdefault((k.target, k.path, group.name, fam), []).append(cell)
    rows = []
    for target, path in _grouped(order):
        families = [f for f in FAMILIES if any((target, path, g.name, f) in buckets for g in GROUPS)] or [FAMILIES[0]]
        for i, fam in enumerate(families):
            entries = tuple(
                entry_for(buckets.get((target, path, g.name, fam if g.per_family else ""), []))
                if g.per_family or i == 0
                else None
                for g in GROUPS
            )
            rows.append(WorksRow(target, path, fam, entries))
    return rows


def _grouped(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(target, path) pairs with each target's paths together, targets in order of first appearance, and
    the path `none` (straight to the target: the baseline every other path adds a hop to) first."""
    by_target: dict[str, list[str]] = {}
    for target, path in pairs:
        by_target.setdefault(target, []).append(path)
    return [(t, p) for t, paths in by_target.items() for p in sorted(paths, key=lambda p: p != NO_PATH)]


# The groups "In short" sums up per family; logs and idle are said apart (they rarely differ by protocol).
_STREAMING = tuple(g.name for g in GROUPS if g.per_family and g.name != "idle")


def in_short(rows: list[WorksRow]) -> list[tuple[str, str]]:
    """One sentence per path over every target: `SPDY broken (400 Upgrade request required); WebSocket works`.

    Per family, over the streaming operations (exec, cp, attach, port-forward) of every target: "works",
    "broken (why)", "works except through <targets> (why)" or "partly (why)"; then silent sessions and
    logs, only for failures not already said.
    """
    names = [g.name for g in GROUPS]
    streaming = [i for i, g in enumerate(GROUPS) if g.name in _STREAMING]
    out = []
    for path in dict.fromkeys(r.path for r in _ordered_paths(rows)):
        mine = [r for r in rows if r.path == path]
        parts, said = [], set()
        for fam in FAMILIES:
            found = [(r.target, r.entries[i]) for r in mine if r.family == fam for i in streaming]
            sentence, words = _sentence(fam, found)
            parts.append(sentence)
            said |= words
        for name, label in (("idle", "silent sessions"), ("logs", "logs -f")):
            found = [(r.target, r.entries[names.index(name)]) for r in mine]
            sentence, words = _sentence(label, found, skip=said)
            if words:
                parts.append(sentence)
        out.append((path, "; ".join(p for p in parts if p)))
    return out


def _ordered_paths(rows: list[WorksRow]) -> list[WorksRow]:
    return sorted(rows, key=lambda r: r.path != NO_PATH)  # stable: `none` first, then the results' order


def _sentence(
    label: str, found: list[tuple[str, Entry | None]], skip: frozenset[str] | set[str] = frozenset()
) -> tuple[str, set[str]]:
    """`label works`, `label broken (why)`, `label works except through T (why)`, and `, but some cells failed
    through U (why)` for targets where only some cells did; with the words said (`skip`: already said)."""
    by_target: dict[str, list[Entry]] = {}
    for target, e in found:
        if e is not None and e.state != State.NOT_RUN and not (e.state != State.WORKS and e.words in skip):
            by_target.setdefault(target, []).append(e)
    if not by_target:
        return "", set()
    out = [t for t, es in by_target.items() if all(e.state in (State.BROKEN, State.ERROR) for e in es)]
    some = [t for t, es in by_target.items() if t not in out and any(e.state != State.WORKS for e in es)]
    if not out and not some:
        return f"{label} works", set()

    def why(targets: list[str]) -> list[str]:
        return list(dict.fromkeys(e.words for t in targets for e in by_target[t] if e.state != State.WORKS and e.words))

    said = set(why(out + some))
    if len(out) == len(by_target):
        words = ", ".join(why(out))
        return (f"{label} broken ({words})" if label in FAMILIES else f"{label}: {words}"), said
    sentence = f"{label} works"
    if out:
        sentence += f" except through {', '.join(out)} ({', '.join(why(out))})"
    if some:
        sentence += f", but some cells failed through {', '.join(some)} ({', '.join(why(some))})"
    return sentence, said


def footnotes(entries: Iterable[Entry | None]) -> dict[str, int]:
    """Footnote numbers (from 1) for the notes of entries that did not work, in order of first appearance."""
    numbers: dict[str, int] = {}
    for entry in entries:
        if entry is not None and entry.state in (State.BROKEN, State.PARTLY, State.ERROR) and entry.note:
            numbers.setdefault(entry.note, len(numbers) + 1)
    return numbers


def entry_label(entry: Entry | None, notes: dict[str, int]) -> str:
    """The short text of a table cell: "works", "broken 1", "partly 2", "-"."""
    if entry is None:
        return ""
    if entry.state in (State.BROKEN, State.PARTLY, State.ERROR) and entry.note:
        return f"{entry.state} {notes[entry.note]}"
    return entry.state


# --- Which kubectl ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionRun:
    """Consecutive kubectl minors with the same answer: "" works, else the failure in a few words."""

    low: int
    high: int
    failure: str
    spoke: str = ""  # the family every version of the run spoke (or asked for, when refused); "" if unknown or mixed

    def label(self, oldest: int, newest: int) -> str:
        if self.low == self.high:
            return f"1.{self.low}"
        if self.high == newest:
            return f"1.{self.low}+"
        if self.low == oldest:
            return f"1.{self.high} and older"
        return f"1.{self.low}-1.{self.high}"


@dataclass(frozen=True, slots=True)
class KubectlEntry:
    target: str
    path: str
    group: str
    runs: tuple[VersionRun, ...]  # oldest first, covering every minor that ran
    minors: tuple[int, ...] = ()  # the minors that ran (a run covers the untested ones between its ends)
    fell_back: tuple[int, ...] = ()  # minors that worked only after falling back (Evidence.fallback)

    @property
    def oldest(self) -> int:
        return self.runs[0].low

    @property
    def newest(self) -> int:
        return self.runs[-1].high

    @property
    def oldest_working(self) -> int | None:
        """The oldest minor from which every newer one works as shipped; None if the newest does not."""
        last = self.runs[-1]
        return last.low if not last.failure else None

    @property
    def short(self) -> str:
        """The table cell: "all", "1.31+", "none", or "mixed" (the newest does not work, an older one does)."""
        start = self.oldest_working
        if start == self.oldest:
            return "all"
        if start is not None:
            return f"1.{start}+"
        return "none" if all(r.failure for r in self.runs) else "mixed"

    @property
    def text(self) -> str:
        """`1.31+; 1.30 and older: 400 Upgrade request required`, the working range first, newest first."""
        fallback = f" (fell back to SPDY: {', '.join(f'1.{m}' for m in self.fell_back)})" if self.fell_back else ""
        if len(self.runs) == 1:
            run = self.runs[0]
            return (f"none: {run.failure}" if run.failure else "all") + fallback
        parts = []
        for run in reversed(self.runs):
            label = run.label(self.oldest, self.newest)
            if run.failure:
                parts.append(f"{label}{f' ({run.spoke})' if run.spoke else ''}: {run.failure}")
            else:  # the newest range needs no "works"; an older range that works again does
                parts.append(label if run.high == self.newest else f"{label}: works")
        return "; ".join(parts) + fallback


def which_kubectl(results: Results) -> list[KubectlEntry]:
    """One entry per target, path and view group that has as-shipped kubectl cells, in the results' order."""
    versions: dict[tuple[str, str, str], dict[int, list[CellResult]]] = {}
    for cell in results.cells:
        k = cell.key
        minor = kubectl_minor(k.client)
        group = GROUP_OF.get(k.operation)
        if k.protocol != AS_SHIPPED or minor is None or group is None:
            continue
        versions.setdefault((k.target, k.path, group.name), {}).setdefault(minor, []).append(cell)
    by_place: dict[tuple[str, str], dict[str, KubectlEntry]] = {}
    for (target, path, name), per_minor in versions.items():
        runs = _runs(per_minor)
        if runs:
            ran = tuple(m for m in sorted(per_minor) if any(c.outcome not in _NO_ANSWER for c in per_minor[m]))
            fell_back = tuple(
                m for m in ran
                if all(worked(c) for c in per_minor[m] if c.outcome not in _NO_ANSWER)
                and any(c.evidence.fallback for c in per_minor[m])
            )
            by_place.setdefault((target, path), {})[name] = KubectlEntry(
                target, path, name, tuple(runs), ran, fell_back
            )
    return [
        by_place[place][g.name] for place in _grouped(by_place) for g in GROUPS if g.name in by_place[place]
    ]


_NO_ANSWER = (Outcome.SKIP, Outcome.ERROR)


def kubectl_notes(entries: list[KubectlEntry]) -> list[tuple[str, list[str], str]]:
    """The lines under a Which-kubectl table: per path, the operations that share an answer that is not a
    plain "all", as (path, [operation group, ...], text), in the entries' order."""
    notes: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        if e.short != "all" or e.fell_back:
            notes.setdefault((e.path, e.text), []).append(e.group)
    return [(path, groups, text) for (path, text), groups in notes.items()]


def client_race_note(results: Results) -> str | None:
    """One sentence under Which kubectl when kubectl's own WebSocket race (conformance.client_races) showed in
    this run: the minors and their cell counts, and how many cells failed with it and were asked again."""
    seen: dict[int, int] = {}
    retried = 0
    for c in results.cells:
        minor = kubectl_minor(c.key.client)
        if minor is None or not (c.evidence.client_races or c.evidence.earlier_attempts):
            continue
        seen[minor] = seen.get(minor, 0) + 1
        retried += bool(c.evidence.earlier_attempts)
    if not seen:
        return None
    versions = ", ".join(f"1.{m} ({n})" for m, n in sorted(seen.items()))
    return (
        f"kubectl's own WebSocket race (kubernetes/kubernetes#131189, fixed in 1.34) showed in {sum(seen.values())} "
        f"cell(s) of this run: {versions}; {retried} of them failed with it and were asked again. These versions "
        "drop a session's first frame now and then, on any path (docs/kubectl.md)."
    )


def _spoke(cells: list[CellResult]) -> str:
    """The one protocol family these kubectl cells spoke (negotiated, else requested), or ""."""
    spoken = set()
    for c in cells:
        name = (c.evidence.protocol_negotiated or c.evidence.protocol_requested or "").lower()
        spoken.add("SPDY" if name.startswith("spdy") else "WebSocket" if "websocket" in name else "")
    return spoken.pop() if len(spoken) == 1 else ""


def _runs(per_minor: dict[int, list[CellResult]]) -> list[VersionRun]:
    runs: list[VersionRun] = []
    for minor in sorted(per_minor):
        ran = [c for c in per_minor[minor] if c.outcome not in _NO_ANSWER]
        if not ran:
            continue  # no answer for this version: it neither breaks nor extends a run
        failing = next((c for c in ran if not worked(c)), None)
        answer = "" if failing is None else failure_words(failing)
        spoke = _spoke(ran)
        if runs and runs[-1].failure == answer:
            last = runs[-1]
            runs[-1] = VersionRun(last.low, minor, answer, last.spoke if last.spoke == spoke else "")
        else:
            runs.append(VersionRun(minor, minor, answer, spoke))
    return runs


# --- How fast -----------------------------------------------------------------------------------------

NATIVE = "native"
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpeedRow:
    target: str
    path: str
    exec_ms: list[float] = field(default_factory=list)  # one native exec, connect to exit status, per protocol
    pf_mib_s: dict[str, float] = field(default_factory=dict)  # family -> median MiB/s echoed, one connection
    base_p50: float | None = None  # exec p50 of the same target's path `none`: what this path's hop adds to

    @property
    def exec_p50(self) -> float | None:
        return percentile(self.exec_ms, 50)

    @property
    def exec_p90(self) -> float | None:
        return percentile(self.exec_ms, 90)

    @property
    def hop_ms(self) -> float | None:
        """How much more this path's exec p50 is than the target's path `none` (None on `none` itself)."""
        p50 = self.exec_p50
        if self.path == NO_PATH or p50 is None or self.base_p50 is None:
            return None
        return p50 - self.base_p50


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every number shown was measured); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def how_fast(results: Results) -> list[SpeedRow]:
    """Per target and path: the native client's exec latencies and port-forward throughput, cells that worked."""
    execs: dict[tuple[str, str], list[float]] = {}
    forwards: dict[tuple[str, str], dict[str, list[float]]] = {}
    order: dict[tuple[str, str], None] = {}
    for cell in results.cells:
        k = cell.key
        if k.client != NATIVE or k.operation not in ("exec", "port-forward"):
            continue
        place = (k.target, k.path)
        order.setdefault(place)
        total = cell.evidence.timings.total_s
        if not worked(cell) or not total or total <= 0:
            continue
        if k.operation == "exec":
            execs.setdefault(place, []).append(total * 1000)
        elif cell.evidence.bytes_verified and (fam := family(k.protocol)):
            forwards.setdefault(place, {}).setdefault(fam, []).append(cell.evidence.bytes_verified / MiB / total)
    rows = []
    for place in _grouped(order):
        pf = {fam: v for fam in FAMILIES if (v := percentile(forwards.get(place, {}).get(fam, []), 50)) is not None}
        base = percentile(execs.get((place[0], NO_PATH), []), 50)
        rows.append(SpeedRow(place[0], place[1], execs.get(place, []), pf, base))
    return rows
