"""What changed between two runs, cell by cell, worst news first.

Cells are matched by id. A regression is a cell that was good (pass, expected-fail) and is now bad
(fail, error, unexpected-pass); a fix is the reverse; any other change of outcome, or of error class under
the same outcome (a failure whose cause changed), is an "other change". Cells only in one run are added
or removed. `conformance report diff` exits 1 when there is a regression.

A timing regression ("slower") is a cell whose outcome did not change but whose total time grew beyond
both thresholds (default +50 % and +200 ms, `--slower-pct`, `--slower-ms`); listed right after the
outcome regressions. It does not change the exit code: timings on shared machines are noisy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from conformance.model import CellResult, Outcome, Results, RunMetadata
from reports.evidence import key_evidence
from reports.grid import SYMBOLS
from reports.markdown_text import code
from reports.scrub import redacted_results, scrub_text
from reports.text import one_line

GOOD = frozenset({Outcome.PASS, Outcome.EXPECTED_FAIL})
BAD = frozenset({Outcome.FAIL, Outcome.ERROR, Outcome.UNEXPECTED_PASS})


class ChangeKind(enum.StrEnum):
    REGRESSION = "regression"
    SLOWER = "slower"
    FIX = "fix"
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"


_TITLES = {
    ChangeKind.REGRESSION: "Regressions",
    ChangeKind.SLOWER: "Timing regressions",
    ChangeKind.FIX: "Fixes",
    ChangeKind.CHANGED: "Other changes",
    ChangeKind.ADDED: "Added cells",
    ChangeKind.REMOVED: "Removed cells",
}


@dataclass(frozen=True, slots=True)
class CellChange:
    kind: ChangeKind
    cell_id: str
    old: CellResult | None
    new: CellResult | None

    @property
    def transition(self) -> str:
        if self.kind is ChangeKind.SLOWER and self.old and self.new:
            was, now = _total(self.old), _total(self.new)
            if was is not None and now is not None:
                grew = f" (+{(now - was) / was * 100:.0f}%)" if was > 0 else ""
                return f"total {was:.2f} s -> {now:.2f} s{grew}"
        before = self.old.outcome.value if self.old else "absent"
        after = self.new.outcome.value if self.new else "absent"
        if self.old and self.new and self.old.outcome is self.new.outcome:
            return f"{before} ({self.old.error_class.value} -> {self.new.error_class.value})"
        return f"{before} -> {after}"


@dataclass(frozen=True, slots=True)
class ResultsDiff:
    old_meta: RunMetadata
    new_meta: RunMetadata
    changes: list[CellChange]  # regressions, fixes, other changes, added, removed; document order within each
    unchanged: int

    def of(self, kind: ChangeKind) -> list[CellChange]:
        return [c for c in self.changes if c.kind is kind]

    @property
    def has_regressions(self) -> bool:
        return any(c.kind is ChangeKind.REGRESSION for c in self.changes)


SLOWER_PCT = 50.0
SLOWER_MS = 200.0


def diff_results(
    old: Results, new: Results, *, slower_pct: float = SLOWER_PCT, slower_ms: float = SLOWER_MS
) -> ResultsDiff:
    old_cells = {c.id: c for c in old.cells}
    new_cells = {c.id: c for c in new.cells}
    changes: list[CellChange] = []
    unchanged = 0
    for cell_id, after in new_cells.items():
        before = old_cells.get(cell_id)
        if before is None:
            changes.append(CellChange(ChangeKind.ADDED, cell_id, None, after))
        elif before.outcome is not after.outcome or before.error_class is not after.error_class:
            changes.append(CellChange(_kind(before.outcome, after.outcome), cell_id, before, after))
        elif _slower(before, after, slower_pct, slower_ms):
            changes.append(CellChange(ChangeKind.SLOWER, cell_id, before, after))
        else:
            unchanged += 1
    changes += [CellChange(ChangeKind.REMOVED, i, c, None) for i, c in old_cells.items() if i not in new_cells]
    order = list(ChangeKind)
    changes.sort(key=lambda c: order.index(c.kind))  # stable: document order within a kind
    return ResultsDiff(old.meta, new.meta, changes, unchanged)


def _total(cell: CellResult) -> float | None:
    """The cell's total time as its client measured it, else the harness's own duration."""
    total = cell.evidence.timings.total_s
    return total if total is not None else (cell.duration_s or None)


def _slower(before: CellResult, after: CellResult, pct: float, ms: float) -> bool:
    was, now = _total(before), _total(after)
    if was is None or now is None:
        return False
    return now > was * (1 + pct / 100) and (now - was) * 1000 > ms


def _kind(before: Outcome, after: Outcome) -> ChangeKind:
    if before in GOOD and after in BAD:
        return ChangeKind.REGRESSION
    if before in BAD and after in GOOD:
        return ChangeKind.FIX
    return ChangeKind.CHANGED


def diff_summary(diff: ResultsDiff) -> str:
    # Timing regressions are named only when there are some (the line's usual form stays as it was).
    counts = ", ".join(
        f"{_TITLES[k].lower()} {len(diff.of(k))}" for k in ChangeKind if k is not ChangeKind.SLOWER or diff.of(k)
    )
    verdict = "REGRESSED" if diff.has_regressions else "NO REGRESSIONS"
    return f"{verdict}  {counts}, unchanged {diff.unchanged}"


def render_diff_terminal(diff: ResultsDiff, *, color: bool = False) -> str:
    diff = _redacted(diff)
    lines = [f"diff: {_describe(diff.old_meta)}  ->  {_describe(diff.new_meta)}"]
    for kind in ChangeKind:
        changes = diff.of(kind)
        if not changes:
            continue
        lines += ["", f"{_TITLES[kind].upper()} ({len(changes)})"]
        for ch in changes:
            cell = ch.new or ch.old
            assert cell is not None  # a change has at least one side
            symbol = SYMBOLS[cell.outcome]
            lines.append(f"  {symbol} {ch.transition:<34} {one_line(ch.cell_id, 100)}  {key_evidence(cell)}".rstrip())
    summary = diff_summary(diff)
    if color:
        summary = f"\x1b[{'1;31' if diff.has_regressions else '1;32'}m{summary}\x1b[0m"
    lines += ["", summary]
    return scrub_text("\n".join(lines) + "\n")


def render_diff_markdown(diff: ResultsDiff) -> str:
    diff = _redacted(diff)
    out = [
        "# Streaming conformance: what changed",
        "",
        f"From {code(_describe(diff.old_meta))} to {code(_describe(diff.new_meta))}.",
        "",
        f"**{diff_summary(diff)}**",
        "",
    ]
    for kind in ChangeKind:
        changes = diff.of(kind)
        if not changes:
            continue
        out += [f"## {_TITLES[kind]} ({len(changes)})", "", "| cell | change | evidence now |", "|---|---|---|"]
        for ch in changes:
            cell = ch.new or ch.old
            assert cell is not None
            evidence = key_evidence(cell)
            out.append(
                f"| {code(ch.cell_id, in_table=True)} | {ch.transition} | "
                f"{code(evidence, in_table=True) if evidence else ''} |"
            )
        out.append("")
    return scrub_text("\n".join(out).rstrip("\n") + "\n")


def _describe(meta: RunMetadata) -> str:
    return one_line(" ".join(v for v in (meta.runner, meta.started) if v), 80)


def _redacted(diff: ResultsDiff) -> ResultsDiff:
    # Redact both sides through the same path as every other report.
    olds = redacted_results(Results(meta=diff.old_meta, cells=[c.old for c in diff.changes if c.old]))
    news = redacted_results(Results(meta=diff.new_meta, cells=[c.new for c in diff.changes if c.new]))
    old_iter, new_iter = iter(olds.cells), iter(news.cells)
    changes = [
        CellChange(c.kind, c.cell_id, next(old_iter) if c.old else None, next(new_iter) if c.new else None)
        for c in diff.changes
    ]
    return ResultsDiff(olds.meta, news.meta, changes, diff.unchanged)
