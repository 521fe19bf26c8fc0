"""The terminal report: grid, legend, Cilium-style summary, one line per unexpected cell."""

from __future__ import annotations

from conformance.model import ErrorClass, Outcome, Results
from reports.grid import summary_line
from reports.sample import make_results
from reports.terminal import render_grid, render_terminal, unexpected_lines
from tests.reports.builders import CellFactory, build_results


def test_grid_rows_are_target_path_and_columns_protocol_by_operation(small_results: Results) -> None:
    lines = render_grid(small_results).splitlines()
    grid = lines[lines.index("") + 1 : lines.index("", lines.index("") + 1)]
    assert grid == [
        "                 websocket    spdy",
        "target/path      exec attach  exec",
        "jetstack/direct  .F   --      x-",
        "jetstack/l7-lb   E-   --      --",
        "direct/direct    X-   s-      --",
    ]


def test_legend_and_client_order_are_printed(small_results: Results) -> None:
    text = render_terminal(small_results)
    assert "legend: . pass  x expected-fail  X unexpected-pass  F fail  E error  s skip  - not run" in text
    assert "one symbol per client, in order: kubectl-1.36 native" in text


def test_summary_line_counts_every_outcome(small_results: Results) -> None:
    assert summary_line(small_results) == (
        "FAILED  3/6 cells unexpected | 1 pass  1 expected-fail  1 unexpected-pass  1 fail  1 error  1 skip"
    )
    assert summary_line(build_results([])).startswith("OK  all 0 cells as expected")


def test_one_line_per_unexpected_cell_with_its_key_evidence(small_results: Results) -> None:
    lines = unexpected_lines(small_results)
    assert len(lines) == 3  # fail, error, unexpected-pass; never pass, expected-fail or skip
    fail, error, unexpected_pass = lines
    assert fail.split()[:3] == ["F", "fail", "upgrade-required"]
    assert "jetstack-direct-websocket-exec-native" in fail
    assert '"HTTP/1.1 400 Bad Request"' in fail and "error: Upgrade request required" in fail
    assert error.split()[:3] == ["E", "error", "harness"] and "KeyError: 'stdout'" in error
    assert unexpected_pass.split()[:3] == ["X", "unexpected-pass", "none"] and "expected to fail" in unexpected_pass


def test_colour_only_when_asked(small_results: Results) -> None:
    assert "\x1b[" not in render_terminal(small_results)
    coloured = render_terminal(small_results, color=True)
    assert "\x1b[1;31mF\x1b[0m" in coloured and "\x1b[32m.\x1b[0m" in coloured


def test_control_characters_in_evidence_cannot_drive_the_terminal(cell: CellFactory) -> None:
    hostile = cell(outcome=Outcome.FAIL, error_class=ErrorClass.RESET, error="reset\x1b[2J\x1b]0;pwned\x07 here",
                   path="p\x1b[31m")
    text = render_terminal(build_results([hostile]))
    assert "\x1b" not in text and "\x07" not in text
    assert "reset\\x1b[2J\\x1b]0;pwned\\x07 here" in text


def test_long_lists_are_cut_with_a_pointer() -> None:
    results = make_results(600, seed=4)
    bad = sum(1 for c in results.cells if c.outcome.gates)
    text = render_terminal(results, max_unexpected=10)
    assert f"... and {bad - 10} more" in text
    assert sum(1 for line in text.splitlines() if line.startswith("  F ") or line.startswith("  E ")) <= 10
