"""Merging results files: shards combine, reruns replace, clashing sources are namespaced whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import ResultsFormatError
from conformance.model import Outcome, Results
from reports.json_report import write_results
from reports.merge import merge_files, merge_results
from reports.schema import load_results
from tests.reports.builders import build_cell, build_results


def _run(runner: str | None, ops: list[str], outcome: Outcome = Outcome.PASS, **meta: str) -> Results:
    return build_results([build_cell(operation=op, outcome=outcome) for op in ops], runner=runner, **meta)


def test_disjoint_shards_combine_unchanged() -> None:
    merged = merge_results([("a.json", _run("ci-1", ["exec", "attach"])), ("b.json", _run("ci-2", ["cp"]))])
    assert [c.id for c in merged.cells] == [
        "jetstack-direct-websocket-exec-kubectl-1.36",
        "jetstack-direct-websocket-attach-kubectl-1.36",
        "jetstack-direct-websocket-cp-kubectl-1.36",
    ]
    assert [(m.label, m.file, m.cells, m.prefixed) for m in merged.meta.merged_from] == [
        ("ci-1", "a.json", 2, False), ("ci-2", "b.json", 1, False)]


def test_same_source_later_file_wins_and_keeps_position() -> None:
    first = _run("ci-1", ["exec", "attach"])
    rerun = _run("ci-1", ["exec"], outcome=Outcome.FAIL)
    merged = merge_results([("a.json", first), ("a-rerun.json", rerun)])
    assert [(c.key.operation, c.outcome) for c in merged.cells] == [("exec", Outcome.FAIL), ("attach", Outcome.PASS)]
    assert merged.meta.runner == "ci-1"


def test_clashing_sources_are_prefixed_whole_and_bystanders_are_not() -> None:
    eks = _run("eks", ["exec", "attach"])
    gke = _run("gke", ["exec"])
    shard = _run("aks", ["logs"])
    merged = merge_results([("eks.json", eks), ("gke.json", gke), ("aks.json", shard)])
    assert [c.key.target for c in merged.cells] == ["eks/jetstack", "eks/jetstack", "gke/jetstack", "jetstack"]
    assert [m.prefixed for m in merged.meta.merged_from] == [True, True, False]
    assert merged.meta.runner == "eks+gke+aks" and merged.meta.source == "merge"


def test_label_falls_back_to_source_then_file_name() -> None:
    a = _run(None, ["exec"], source="/etc/conformance/prod.yaml")
    b = _run(None, ["exec"])
    merged = merge_results([("x/a.json", a), ("x/nightly.json", b)])
    assert {c.key.target for c in merged.cells} == {"/etc/conformance/prod.yaml/jetstack", "nightly/jetstack"}


def test_meta_spans_the_inputs() -> None:
    a = _run("ci-1", ["exec"], started="2025-06-01T12:00:00Z", finished="2025-06-01T12:05:00Z", cluster_version="v1.35")
    b = _run("ci-2", ["cp"], started="2025-06-01T11:00:00Z", finished="2025-06-01T13:00:00Z", cluster_version="v1.36")
    meta = merge_results([("a.json", a), ("b.json", b)]).meta
    assert (meta.started, meta.finished, meta.cluster_version) == (
        "2025-06-01T11:00:00Z", "2025-06-01T13:00:00Z", "v1.35, v1.36")


def test_a_prefix_that_collides_is_refused() -> None:
    a = _run("x", ["exec"])
    b = _run("y", ["exec"])
    c = build_results([build_cell(target="x/jetstack")], runner="z")
    with pytest.raises(ResultsFormatError, match="two cells with id 'x/jetstack-direct"):
        merge_results([("a.json", a), ("b.json", b), ("c.json", c)])


def test_merged_files_validate_and_load(tmp_path: Path) -> None:
    paths = [write_results(_run(r, ["exec", "cp"]), tmp_path / f"{r}.json") for r in ("ci-1", "ci-2")]
    merged = merge_files(paths)
    out = write_results(merged, tmp_path / "merged.json")
    assert load_results(out) == merged
    assert len(merged.cells) == 4
    with pytest.raises(ResultsFormatError, match="nothing to merge"):
        merge_results([])
