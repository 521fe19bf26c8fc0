"""The JSON report is the validated, redacted results document; write_results writes it atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.errors import ConfigError, ResultsFormatError
from conformance.model import Results
from reports.json_report import render_json, write_results
from reports.render import FORMATS, SUFFIXES, render, write_report
from reports.sample import make_results
from reports.schema import load_results, validate


def test_render_json_is_the_document(sample: Results) -> None:
    doc = json.loads(render_json(sample))
    validate(doc)
    assert Results.from_dict(doc) == sample


def test_write_results_round_trips(tmp_path: Path, sample: Results) -> None:
    path = write_results(sample, tmp_path / "deep" / "results.json")
    assert load_results(path) == sample
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left behind


def test_a_model_the_schema_rejects_is_not_written(tmp_path: Path, sample: Results) -> None:
    sample.cells[3].evidence.bytes_sent = -5
    with pytest.raises(ResultsFormatError, match=r"\$\.cells\[3\]\.evidence\.bytes_sent"):
        write_results(sample, tmp_path / "results.json")
    assert not (tmp_path / "results.json").exists()


def test_every_format_renders_and_writes(tmp_path: Path, sample: Results) -> None:
    for fmt in FORMATS:
        path = write_report(sample, fmt, tmp_path / f"report{SUFFIXES[fmt]}")
        assert path.read_text("utf-8") == render(sample, fmt)
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        render(sample, "pdf")


def test_empty_run() -> None:
    empty = make_results(1, seed=0)
    empty.cells.clear()
    for fmt in FORMATS:
        assert render(empty, fmt)
