"""The render benchmark runs (small), so it cannot rot between the times someone measures."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from reports.render import FORMATS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report_render.py"


def test_benchmark_runs_and_reports_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main(["--cells", "200", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("200 cells, reference json.dumps of the document:")
    rows = {line.split()[0] for line in out.splitlines()[2:]}
    assert set(FORMATS) | {"load", "total"} <= rows
    assert {p.name for p in tmp_path.iterdir()} >= {"results.json", "report.html", "report.xml", "report.md"}
