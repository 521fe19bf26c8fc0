"""Diffing two runs: regressions first, then fixes, other changes, added and removed cells."""

from __future__ import annotations

from conformance.model import ErrorClass, Outcome, Results
from reports.diff import ChangeKind, diff_results, render_diff_markdown, render_diff_terminal
from tests.reports.builders import build_cell, build_results

P, XF, XP, F, E, S = (Outcome.PASS, Outcome.EXPECTED_FAIL, Outcome.UNEXPECTED_PASS, Outcome.FAIL, Outcome.ERROR,
                      Outcome.SKIP)


def _runs() -> tuple[Results, Results]:
    def c(op: str, outcome: Outcome, error_class: ErrorClass = ErrorClass.NONE, **ev: object) -> object:
        return build_cell(operation=op, outcome=outcome, error_class=error_class, **ev)

    old = build_results([
        c("same", P),
        c("regress-pass", P),
        c("regress-xfail", XF, ErrorClass.UPGRADE_REQUIRED),
        c("regress-xpass", P),
        c("fix", F, ErrorClass.TIMEOUT),
        c("skipped-now", P),
        c("cause-changed", F, ErrorClass.TIMEOUT),
        c("removed", P),
    ], runner="old-runner")  # type: ignore[arg-type]
    new = build_results([
        c("same", P),
        c("regress-pass", F, ErrorClass.UPGRADE_REQUIRED, status_line="HTTP/1.1 400 Bad Request",
          error="Upgrade request required"),
        c("regress-xfail", E, ErrorClass.HARNESS),
        c("regress-xpass", XP),
        c("fix", P),
        c("skipped-now", S),
        c("cause-changed", F, ErrorClass.RESET),
        c("added", F, ErrorClass.TLS),
    ], runner="new-runner")  # type: ignore[arg-type]
    return old, new


def _ops(changes: list) -> list[str]:  # type: ignore[type-arg]
    return [ch.cell_id.split("-websocket-")[1].rsplit("-kubectl", 1)[0] for ch in changes]


def test_changes_are_classified_and_ordered_worst_first() -> None:
    diff = diff_results(*_runs())
    assert [c.kind for c in diff.changes] == [
        ChangeKind.REGRESSION, ChangeKind.REGRESSION, ChangeKind.REGRESSION, ChangeKind.FIX,
        ChangeKind.CHANGED, ChangeKind.CHANGED, ChangeKind.ADDED, ChangeKind.REMOVED,
    ]
    assert _ops(diff.of(ChangeKind.REGRESSION)) == ["regress-pass", "regress-xfail", "regress-xpass"]
    assert _ops(diff.of(ChangeKind.FIX)) == ["fix"]
    assert _ops(diff.of(ChangeKind.CHANGED)) == ["skipped-now", "cause-changed"]
    assert _ops(diff.of(ChangeKind.ADDED)) == ["added"] and _ops(diff.of(ChangeKind.REMOVED)) == ["removed"]
    assert diff.unchanged == 1 and diff.has_regressions
    assert diff.of(ChangeKind.CHANGED)[1].transition == "fail (timeout -> reset)"


def test_no_regressions_the_other_way_round_only_fixes() -> None:
    old, new = _runs()
    diff = diff_results(new, old)
    assert _ops(diff.of(ChangeKind.FIX)) == ["regress-pass", "regress-xfail", "regress-xpass"]
    assert _ops(diff.of(ChangeKind.REGRESSION)) == ["fix"]


def test_identical_runs_have_no_changes() -> None:
    old, _ = _runs()
    diff = diff_results(old, old)
    assert diff.changes == [] and not diff.has_regressions and diff.unchanged == 8


def test_terminal_rendering() -> None:
    text = render_diff_terminal(diff_results(*_runs()))
    lines = text.splitlines()
    assert lines[0].startswith("diff: old-runner") and "->  new-runner" in lines[0]
    headings = [line for line in lines if line and line[0].isupper() and "(" in line and not line.startswith("diff")]
    assert headings == ["REGRESSIONS (3)", "FIXES (1)", "OTHER CHANGES (2)", "ADDED CELLS (1)", "REMOVED CELLS (1)"]
    regression = lines[lines.index("REGRESSIONS (3)") + 1]
    assert "pass -> fail" in regression and '"HTTP/1.1 400 Bad Request"' in regression
    assert lines[-1] == ("REGRESSED  regressions 3, fixes 1, other changes 2, added cells 1, removed cells 1, "
                         "unchanged 1")


def test_markdown_rendering() -> None:
    text = render_diff_markdown(diff_results(*_runs()))
    assert "## Regressions (3)" in text and text.index("## Regressions") < text.index("## Fixes")
    assert ("| `jetstack-direct-websocket-regress-pass-kubectl-1.36` | pass -> fail | "
            '`"HTTP/1.1 400 Bad Request" error: Upgrade request required` |') in text
    assert "| `jetstack-direct-websocket-removed-kubectl-1.36` | pass -> absent |" in text


def test_timing_regressions_come_after_outcome_regressions() -> None:
    from conformance.model import Timings

    def c(op: str, total: float, outcome: Outcome = P) -> object:
        return build_cell(operation=op, outcome=outcome, timings=Timings(total_s=total))

    old = build_results([c("a-regress", 1.0), c("slower", 1.0), c("noise", 1.0), c("tiny", 0.1)])  # type: ignore[list-item]
    new = build_results([c("a-regress", 1.0, F), c("slower", 1.6), c("noise", 1.4), c("tiny", 0.25)])  # type: ignore[list-item]
    diff = diff_results(old, new)
    assert [ch.kind for ch in diff.changes] == [ChangeKind.REGRESSION, ChangeKind.SLOWER]
    assert _ops(diff.of(ChangeKind.SLOWER)) == ["slower"]  # +40 % and +150 ms (tiny) stay below the thresholds
    assert diff.of(ChangeKind.SLOWER)[0].transition == "total 1.00 s -> 1.60 s (+60%)"
    assert "TIMING REGRESSIONS (1)" in render_diff_terminal(diff)
    looser = diff_results(old, new, slower_pct=10, slower_ms=100)
    assert _ops(looser.of(ChangeKind.SLOWER)) == ["slower", "noise", "tiny"]
    only_slower = diff_results(build_results([c("slower", 1.0)]), build_results([c("slower", 5.0)]))  # type: ignore[list-item]
    assert not only_slower.has_regressions  # timings flag, they do not gate
