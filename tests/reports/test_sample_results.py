"""The synthetic generator covers what tests and benchmarks need, deterministically."""

from __future__ import annotations

from conformance.model import ErrorClass, Outcome
from reports.sample import COVERAGE, make_results


def test_covers_every_outcome_and_error_class() -> None:
    results = make_results(len(COVERAGE), seed=5)
    assert {c.outcome for c in results.cells} == set(Outcome)
    assert {c.error_class for c in results.cells} == set(ErrorClass)


def test_several_of_every_axis() -> None:
    cells = make_results(300, seed=5).cells
    for axis in ("target", "path", "protocol", "operation", "client"):
        assert len({getattr(c.key, axis) for c in cells}) >= 2, axis
    assert len({c.id for c in cells}) == 300


def test_deterministic_for_a_seed() -> None:
    assert make_results(120, seed=9) == make_results(120, seed=9)
    assert make_results(120, seed=9) != make_results(120, seed=10)


def test_large_runs_grow_more_targets() -> None:
    results = make_results(5000, seed=1)
    assert len(results.cells) == 5000
    assert len({c.key.target for c in results.cells}) > 4
