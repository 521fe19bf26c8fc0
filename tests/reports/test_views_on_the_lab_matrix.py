"""The views on a real run: the lab's full matrix (3,462 cells, six targets, six paths), kept as
tests/reports/data/lab-matrix.json.gz with the evidence the views read (status line, error, the hop that
refused, fallback, idle survival, bytes, total time) and nothing else: no transcripts, headers, identities
or expectation sources. Made from a `pytest suites/ --target=all --results=R` run of the lab."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conformance.model import Results
from reports.render import render
from reports.schema import validate
from reports.views import GROUPS, State, how_fast, in_short, what_works
from reports.views_text import WIDTH

MATRIX = Path(__file__).parent / "data" / "lab-matrix.json.gz"


@pytest.fixture(scope="module")
def lab() -> Results:
    doc = json.loads(gzip.decompress(MATRIX.read_bytes()))
    validate(doc)
    return Results.from_dict(doc)


def test_every_terminal_line_fits_120_columns(lab: Results) -> None:
    text = render(lab, "terminal")
    assert len(lab.cells) == 3462
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "--format grid" in text  # the real grid is far wider: named, not printed
    assert max(len(line) for line in render(lab, "grid").splitlines()) > 5 * WIDTH


def test_what_works_gives_the_labs_known_answers(lab: Results) -> None:
    rows = {(r.target, r.path, r.family): r for r in what_works(lab)}
    exec_ = [g.name for g in GROUPS].index("exec")

    def answer(target: str, path: str, family: str) -> tuple[str, str]:
        entry = rows[(target, path, family)].entries[exec_]
        assert entry is not None
        return entry.state, entry.words

    # alb (haproxy mode http) forwards only WebSocket upgrades; the API server answers SPDY with its 400.
    assert answer("direct", "alb", "SPDY") == (State.BROKEN, "400 Upgrade request required")
    assert answer("direct", "alb", "WebSocket") == (State.WORKS, "")
    # gateway (Envoy with WebSocket-only upgrade_configs) refuses SPDY itself.
    assert answer("jetstack", "gateway", "SPDY") == (State.BROKEN, "403 from gateway")
    # The OpenUnison stand-in refuses SPDY on every path that lets it through.
    assert answer("openunison", "nlb", "SPDY") == (State.BROKEN, "500 from openunison")
    assert answer("direct", "nlb", "SPDY") == (State.WORKS, "")
    short = dict(in_short(what_works(lab)))
    assert short["alb"].startswith("SPDY broken (400 Upgrade request required); WebSocket works")
    assert "silent sessions: cut at its 60 s idle timeout" in short["alb"]


def test_how_fast_has_a_row_per_target_and_path_with_samples(lab: Results) -> None:
    rows = how_fast(lab)
    assert len(rows) == 36
    assert all(r.exec_ms for r in rows)  # every path runs exec over WebSocket at least
    assert all("WebSocket" in r.pf_mib_s for r in rows)
    assert all("SPDY" not in r.pf_mib_s for r in rows if r.path in ("alb", "gateway"))  # SPDY never got through
