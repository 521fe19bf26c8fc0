"""Quiet success: the terminal lists unexpected cells; expected failures and skips are counted, and listed
only on request (--list-expected)."""

from __future__ import annotations

from conformance.model import Outcome
from conformance.summary import summary_lines
from reports.sample import make_results


def _cells() -> list:  # type: ignore[type-arg]
    cells = make_results(150, 1).cells
    assert {Outcome.EXPECTED_FAIL, Outcome.SKIP, Outcome.PASS} <= {c.outcome for c in cells}
    return cells


def test_expected_failures_are_counted_not_listed_by_default() -> None:
    cells = _cells()
    expected = [c for c in cells if c.outcome is Outcome.EXPECTED_FAIL]
    text = "\n".join(summary_lines(cells, results_path=None, baseline=None))
    assert f"{len(expected)} expected failure(s), not listed (--list-expected lists them)" in text
    assert not [c for c in expected if f"{c.id}:" in text]
    assert not [c for c in cells if c.outcome is Outcome.PASS and c.id in text]


def test_unexpected_cells_are_always_listed() -> None:
    cells = _cells()
    text = "\n".join(summary_lines(cells, results_path=None, baseline=None))
    for cell in cells:
        if cell.outcome.gates:
            assert cell.id in text


def test_list_expected_lists_each_expected_failure_and_skip() -> None:
    cells = _cells()
    text = "\n".join(summary_lines(cells, results_path=None, baseline=None, list_expected=True))
    for cell in cells:
        if cell.outcome in (Outcome.EXPECTED_FAIL, Outcome.SKIP):
            assert f"    {cell.id}: " in text


def test_the_suites_no_longer_ask_pytest_for_every_xfail_line() -> None:
    import tomllib
    from pathlib import Path

    ini = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-r" not in ini.get("addopts", "")
