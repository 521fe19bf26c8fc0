"""`conformance report`: render, diff (exit 1 on a regression) and merge, through the real entry point."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.model import ErrorClass, Outcome, Results
from reports.json_report import write_results
from reports.sample import make_results


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    return write_results(make_results(60, seed=3, runner="ci-a"), tmp_path / "run.json")


def test_renders_to_stdout_by_default_as_terminal(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert "target/path" in out and "cells unexpected |" in out and "\x1b[" not in out


@pytest.mark.parametrize(("fmt", "check"), [
    ("md", lambda text: text.startswith("# Streaming conformance results")),
    ("html", lambda text: text.startswith("<!DOCTYPE html>")),
    ("junit", lambda text: ET.fromstring(text).tag == "testsuites"),  # noqa: S314 - our own output
    ("json", lambda text: json.loads(text)["schema_version"] == 2),
    ("terminal", lambda text: "legend:" in text),
])
def test_every_format_to_a_file(run_file: Path, tmp_path: Path, fmt: str, check: object) -> None:
    out = tmp_path / "out" / f"report.{fmt}"
    assert main(["report", str(run_file), "--format", fmt, "--output", str(out)]) == 0
    assert check(out.read_text("utf-8"))  # type: ignore[operator]


def test_diff_exits_1_on_a_regression_and_0_otherwise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = make_results(60, seed=3)
    new = make_results(60, seed=3)
    first_pass = next(i for i, c in enumerate(new.cells) if c.outcome is Outcome.PASS)
    new.cells[first_pass] = dataclasses.replace(new.cells[first_pass], outcome=Outcome.FAIL,
                                                error_class=ErrorClass.RESET)
    old_path, new_path = write_results(old, tmp_path / "old.json"), write_results(new, tmp_path / "new.json")
    assert main(["report", "diff", str(old_path), str(new_path)]) == 1
    assert "REGRESSIONS (1)" in capsys.readouterr().out
    assert main(["report", "diff", str(new_path), str(old_path), "--format", "md"]) == 0
    assert "## Fixes (1)" in capsys.readouterr().out
    assert main(["report", "diff", str(old_path), str(new_path), "--format", "html"]) == 2
    assert "--format html is not available" in capsys.readouterr().err


def test_merge_writes_one_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_results(make_results(40, seed=1, runner="ci-a"), tmp_path / "a.json")
    b = write_results(make_results(40, seed=2, runner="ci-b"), tmp_path / "b.json")
    out = tmp_path / "merged.json"
    assert main(["report", "merge", str(a), str(b), "--output", str(out)]) == 0
    assert f"merged 2 files, 80 cells -> {out}" in capsys.readouterr().out
    merged = Results.from_dict(json.loads(out.read_text()))
    assert [m.label for m in merged.meta.merged_from] == ["ci-a", "ci-b"]
    assert main(["report", "merge", str(a), str(b)]) == 2
    assert "--output FILE is required" in capsys.readouterr().err


def test_a_bad_file_exits_2_naming_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = make_results(5, seed=1).to_dict()
    doc["cells"][1]["error_class"] = "mystery"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"conformance: error: {bad}: not a valid results document" in err
    assert '$.cells[1].error_class: got "mystery"' in err


def test_lab_commands_are_still_there(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "lab" in out and "report" in out
    with pytest.raises(SystemExit):
        main(["lab", "token"])  # argparse: --user is required, so the lab parser is wired as before
    assert "--user" in capsys.readouterr().err
