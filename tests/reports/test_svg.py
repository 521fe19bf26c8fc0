"""The HTML report's pictures (reports/svg.py): well-formed SVG, one rect per cell with its tooltip, colours
by outcome, and nothing that could load anything."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from conformance.model import Outcome
from reports.grid import build_matrix
from reports.sample import make_results, with_as_shipped
from reports.svg import COLOURS, exec_chart, heat_map, throughput_chart
from reports.views import how_fast
from tests.reports.builders import CellFactory, build_results

SVG = "{http://www.w3.org/2000/svg}"
# Anything an SVG could fetch with: a link, a CSS url(), an import, a font, a foreign object, a script.
EXTERNAL = re.compile(r"href|url\(|@import|<image|<use|<script|<foreignObject|font-face|https?://(?!www\.w3\.org/2000/svg\")",
                      re.IGNORECASE)


def test_the_heat_map_has_one_rect_per_cell_with_its_id_outcome_and_colour() -> None:
    results = with_as_shipped(make_results(600, seed=9))
    svg = heat_map(build_matrix(results))
    root = ET.fromstring(svg)  # noqa: S314 - our own output (well-formed XML, or this raises)
    cells = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "cell"]
    assert len(cells) == len(results.cells)
    by_id = {c.id: c for c in results.cells}
    seen = set()
    for rect in cells:
        title = rect.find(f"{SVG}title")
        assert title is not None and title.text
        cell_id, _, rest = title.text.partition(": ")
        cell = by_id[cell_id]
        assert rest.startswith(cell.outcome.value)
        assert rect.get("fill") == COLOURS[cell.outcome]
        seen.add(cell_id)
    assert seen == set(by_id)  # every cell once
    keys = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "key"]
    assert [k.get("fill") for k in keys] == [COLOURS[o] for o in Outcome]  # the legend
    assert not EXTERNAL.search(svg)
    assert "style=" not in svg  # the page's CSP allows no style attribute


def test_hostile_names_stay_text_in_the_svg(cell: CellFactory) -> None:
    hostile = '<script>alert(1)</script>"&'
    svg = heat_map(build_matrix(build_results([cell(path=hostile, outcome=Outcome.FAIL)])))
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert hostile in "".join(root.itertext())
    assert "<script>" not in svg


def test_the_charts_draw_a_bar_per_measured_value() -> None:
    rows = how_fast(make_results(800, seed=2))
    execs = ET.fromstring(exec_chart(rows))  # noqa: S314 - our own output
    exec_bars = [r for r in execs.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(exec_bars) == sum(2 for r in rows if r.exec_ms)  # p50 and p90
    forwards = ET.fromstring(throughput_chart(rows))  # noqa: S314 - our own output
    pf_bars = [r for r in forwards.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(pf_bars) == sum(len(r.pf_mib_s) for r in rows) > 0
    widths = [float(b.get("width") or 0) for b in exec_bars]
    assert max(widths) == 360.0  # the longest bar is the slowest p90, at full scale
    for svg in (exec_chart(rows), throughput_chart(rows)):
        assert not EXTERNAL.search(svg) and "style=" not in svg
