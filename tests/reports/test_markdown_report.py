"""The Markdown report: a matrix per target with a legend, then every non-pass cell with its evidence."""

from __future__ import annotations

import re
from pathlib import Path

from conformance.model import ErrorClass, Outcome, Results
from reports.markdown import code, render_markdown
from reports.sample import make_results
from tests.reports.builders import CellFactory, build_results

_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _table_rows(text: str, heading: str) -> list[list[str]]:
    lines = text.splitlines()
    start = lines.index(heading) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in _CELL_SPLIT.split(line)[1:-1]])
    return rows


def test_a_matrix_per_target_with_paths_down_and_protocol_by_operation_across(small_results: Results) -> None:
    text = render_markdown(small_results)
    jetstack = _table_rows(text, "### Matrix of target `jetstack`")
    assert jetstack[0] == ["path", "`websocket exec`", "`websocket attach`", "`spdy exec`"]
    assert jetstack[1] == ["---"] * 4
    assert jetstack[2:] == [["`direct`", "`.F`", "`--`", "`x-`"], ["`l7-lb`", "`E-`", "`--`", "`--`"]]
    assert _table_rows(text, "### Matrix of target `direct`")[2:] == [["`direct`", "`X-`", "`s-`", "`--`"]]


def test_legend_and_summary(small_results: Results) -> None:
    text = render_markdown(small_results)
    assert "| `x` | expected-fail | failed with the declared error class |" in text
    assert "one symbol per client, in this order: `kubectl-1.36`, `native`" in text
    assert "**Gate:** `FAILED 3/6 cells unexpected" in text


def test_every_non_pass_cell_is_listed_worst_first_with_evidence(small_results: Results) -> None:
    text = render_markdown(small_results)
    section = text.split("### Cells that did not pass", 1)[1]
    items = [line for line in section.splitlines() if line.startswith("- `")]
    assert [i.split("**")[1] for i in items] == ["fail", "error", "unexpected-pass", "expected-fail", "skip"]
    assert ("- `F` **fail** `jetstack-direct-websocket-exec-native` (upgrade-required): "
            "status `HTTP/1.1 400 Bad Request`; error `Upgrade request required`") in items[0]
    assert all("jetstack-direct-websocket-exec-kubectl-1.36`" not in i for i in items)  # the pass cell


def test_every_row_of_a_large_run_has_one_cell_per_column() -> None:
    results = make_results(800, seed=2)
    text = render_markdown(results)
    headings = [line for line in text.splitlines() if line.startswith("### Matrix of target ")]
    assert len(headings) == len({c.key.target for c in results.cells})
    for heading in headings:
        rows = _table_rows(text, heading)
        assert len({len(r) for r in rows}) == 1


def test_untrusted_text_stays_inside_code_spans_and_tables_stay_whole(cell: CellFactory) -> None:
    hostile = cell(path="a|b", outcome=Outcome.FAIL, error_class=ErrorClass.PROXY_ERROR,
                   error="<img src=x onerror=alert(1)> and `ticks` | pipes\nnewline")
    text = render_markdown(build_results([hostile]))
    rows = _table_rows(text, "### Matrix of target `jetstack`")
    assert rows[2] == ["`a\\|b`", "`F`"]
    assert "error ``<img src=x onerror=alert(1)> and `ticks` | pipes newline``" in text


def test_code_span_fences() -> None:
    assert code("plain") == "`plain`"
    assert code("a `b` c") == "``a `b` c``"
    assert code("`edge`") == "`` `edge` ``"
    assert code("x|y", in_table=True) == "`x\\|y`"


def test_answer_first_then_the_detail() -> None:
    from reports.sample import with_as_shipped

    text = render_markdown(with_as_shipped(make_results(400, seed=3)))
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## In short", "## What works", "## Which kubectl", "## How fast", "## Detail"]
    head = text.split("## In short", 1)[0]
    assert "**Tested:** " in head and "**Versions:** Kubernetes API server `v1.36.3`" in head
    assert "`kubectl-1.36 v1.36.0`" in head and "**Gate:** `FAILED" in head
    kubectl = text.split("## Which kubectl", 1)[1].split("## How fast", 1)[0]
    line = ("- exec, cp up, cp down, attach via `l7-lb-haproxy`: "
            "`1.30+; 1.29 and older (SPDY): 400 Upgrade request required`")
    assert line in kubectl
    works = text.split("## What works", 1)[1].split("## Which kubectl", 1)[0]
    assert "| path | family | exec | cp up | cp down | attach | port-forward | logs | idle |" in works


def test_compatibility_script_rewrites_only_the_generated_part(tmp_path: Path) -> None:
    import runpy

    from reports.json_report import write_results
    from reports.sample import with_as_shipped

    results = write_results(with_as_shipped(make_results(200, seed=1)), tmp_path / "results.json")
    doc = tmp_path / "compatibility.md"
    doc.write_text("# Our title\n\nintro\n\n<!-- generated:start -->\nold\n<!-- generated:end -->\n\nfooter\n")
    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "compatibility.py"))
    assert script["main"]([str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Our title\n\nintro\n\n<!-- generated:start -->\n**Tested:** ")
    assert text.endswith("<!-- generated:end -->\n\nfooter\n") and "\nold\n" not in text
    assert [line for line in text.splitlines() if line.startswith("# ")] == ["# Our title"]  # no second title
    assert text.index("## In short") < text.index("## Which kubectl") < text.index("## Detail")
