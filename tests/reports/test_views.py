"""The answer-first views as rows (reports/views.py): pure functions from results, each checked on cells made
to give a known answer, and the terminal text of the views within 120 columns."""

from __future__ import annotations

from conformance.model import CellResult, ErrorClass, Outcome, Timings
from reports.sample import make_results, with_as_shipped
from reports.terminal import render_terminal
from reports.views import (
    GROUPS,
    Entry,
    KubectlEntry,
    State,
    VersionRun,
    entry_for,
    entry_label,
    footnotes,
    how_fast,
    in_short,
    percentile,
    what_works,
    which_kubectl,
)
from reports.views_text import WIDTH, views_lines
from tests.reports.builders import CellFactory, build_results

UPGRADE = {"status_line": "HTTP/1.1 400 Bad Request", "refused_by": "api-server",
           "error": "Error from server (BadRequest): Upgrade request required"}
IDLE = {"status_line": "HTTP/1.1 101 Switching Protocols",
        "error": "the connection was closed after 60.3 s of silence, at the path's declared idle timeout of 60 s"}


def _broken(cell: CellFactory, **key: str) -> CellResult:
    return cell(outcome=Outcome.EXPECTED_FAIL, error_class=ErrorClass.UPGRADE_REQUIRED, **key, **UPGRADE)


def _index(name: str) -> int:
    return [g.name for g in GROUPS].index(name)


def test_an_entry_works_breaks_or_partly_works(cell: CellFactory) -> None:
    ok = cell(protocol="ws-v5", client="native")
    bad = _broken(cell, protocol="ws-v1", client="native")
    assert entry_for([]) is None
    assert entry_for([ok, ok]) == Entry(State.WORKS, cells=2)
    assert entry_for([bad]) == Entry(State.BROKEN, "400 Upgrade request required", cells=1)
    partly = entry_for([ok, bad])
    assert partly is not None and partly.state == State.PARTLY
    assert partly.note == "exec ws-v1 native: 400 Upgrade request required"
    skipped = cell(outcome=Outcome.SKIP)
    assert entry_for([skipped]) == Entry(State.NOT_RUN, cells=1)
    assert entry_for([ok, skipped]) == Entry(State.WORKS, cells=2)  # a skip is no answer
    harness = cell(outcome=Outcome.ERROR, error_class=ErrorClass.HARNESS, error="KeyError")
    assert entry_for([harness]) == Entry(State.ERROR, "harness error", cells=1)


def test_what_works_per_path_and_family_and_an_expected_failure_is_broken(cell: CellFactory) -> None:
    results = build_results([
        cell(target="t", path="alb", protocol="ws-v5", client="native"),
        _broken(cell, target="t", path="alb", protocol="spdy", client="native"),
        _broken(cell, target="t", path="alb", protocol="spdy", client="kubectl-1.35"),
        cell(target="t", path="alb", protocol="http", operation="logs-follow", client="native"),
        cell(target="t", path="alb", protocol="ws-tunnel", operation="port-forward-idle", client="native",
             outcome=Outcome.EXPECTED_FAIL, error_class=ErrorClass.IDLE_CUT, **IDLE),
        cell(target="t", path="none", protocol="spdy", client="native"),
        cell(target="t", path="none", protocol="ws-v5", client="native"),
        # Not in the views: a security probe's own request, an as-shipped kubectl, an operation without a column.
        _broken(cell, target="t", path="none", protocol="spdy", client="raw"),
        _broken(cell, target="t", path="none", protocol="as-shipped", client="kubectl-1.29"),
        _broken(cell, target="t", path="none", protocol="spdy", operation="whoami", client="native"),
    ])
    rows = what_works(results)
    assert [(r.target, r.path, r.family) for r in rows] == [
        ("t", "none", "SPDY"), ("t", "none", "WebSocket"), ("t", "alb", "SPDY"), ("t", "alb", "WebSocket"),
    ]  # the path `none` first: every other path adds a hop to it
    exec_, logs, idle = _index("exec"), _index("logs"), _index("idle")
    assert rows[0].entries[exec_] == Entry(State.WORKS, cells=1)
    assert rows[2].entries[exec_] == Entry(State.BROKEN, "400 Upgrade request required", cells=2)
    assert rows[3].entries[exec_] == Entry(State.WORKS, cells=1)
    assert rows[2].entries[logs] == Entry(State.WORKS, cells=1)  # plain HTTP: shown once per path
    assert rows[3].entries[logs] is None
    assert rows[3].entries[idle] == Entry(State.BROKEN, "cut at its 60 s idle timeout", cells=1)
    assert rows[0].entries[_index("attach")] is None  # no such cell

    notes = footnotes(e for r in rows for e in r.entries)
    assert notes == {"400 Upgrade request required": 1, "cut at its 60 s idle timeout": 2}
    assert entry_label(rows[2].entries[exec_], notes) == "broken 1"
    assert entry_label(rows[3].entries[idle], notes) == "broken 2"
    assert entry_label(rows[3].entries[exec_], notes) == "works"

    assert in_short(rows) == [
        ("none", "SPDY works; WebSocket works"),
        ("alb", "SPDY broken (400 Upgrade request required); WebSocket works; "
                "silent sessions: cut at its 60 s idle timeout"),
    ]


def test_in_short_names_the_targets_a_path_breaks_through(cell: CellFactory) -> None:
    openunison = {"status_line": "HTTP/1.1 500 Internal Server Error", "refused_by": "proxy:openunison"}
    results = build_results([
        cell(target="direct", path="nlb", protocol="spdy", client="native"),
        cell(target="openunison", path="nlb", protocol="spdy", client="native", outcome=Outcome.EXPECTED_FAIL,
             error_class=ErrorClass.UPGRADE_REFUSED, **openunison),
        cell(target="openunison", path="nlb", protocol="ws-v5", client="native"),
    ])
    assert in_short(what_works(results)) == [
        ("nlb", "SPDY works except through openunison (500 from openunison); WebSocket works"),
    ]


def test_which_kubectl_gives_the_oldest_version_that_works_as_shipped() -> None:
    results = with_as_shipped(make_results(300, seed=1), minors=(24, 29, 30, 31, 36))
    entries = {(e.target, e.path, e.group): e for e in which_kubectl(results)}
    assert entries[("direct", "direct", "exec")].short == "all"
    assert entries[("direct", "direct", "exec")].text == "all"
    alb_exec = entries[("direct", "l7-lb-haproxy", "exec")]
    assert (alb_exec.short, alb_exec.oldest_working) == ("1.30+", 30)
    assert alb_exec.text == "1.30+; 1.29 and older (SPDY): 400 Upgrade request required"
    assert entries[("direct", "l7-lb-haproxy", "port-forward")].text == (
        "1.31+; 1.30 and older (SPDY): 400 Upgrade request required"
    )
    assert entries[("direct", "envoy-ingress", "cp up")].text == "1.30+; 1.29 and older (SPDY): 403 from envoy-ingress"
    assert entries[("openunison", "direct", "attach")].text == "1.30+; 1.29 and older (SPDY): 500 from openunison"
    # kubectl 1.30 fell back to SPDY through the forward proxy: openunison refuses it, 1.31 is the first.
    assert entries[("openunison", "https-proxy-connect", "exec")].short == "1.31+"
    # ...and that range spoke both families (1.30 asked for WebSocket first), so it names none.
    assert entries[("openunison", "https-proxy-connect", "exec")].text == "1.31+; 1.30 and older: 500 from openunison"
    assert entries[("direct", "direct", "logs")].minors == (24, 29, 30, 31, 36)
    # Through the forward proxy kubectl 1.30 fell back to SPDY: it works, and the answer says how.
    assert entries[("direct", "https-proxy-connect", "exec")].text == "all (fell back to SPDY: 1.30)"
    assert entries[("direct", "https-proxy-connect", "port-forward")].fell_back == ()
    # Forced-protocol and native cells never count here.
    assert all(e.group != "idle" for e in entries.values())


def test_a_version_range_that_breaks_in_the_middle_or_at_the_newest_is_spelled_out() -> None:
    middle = KubectlEntry("t", "p", "exec", (VersionRun(24, 28, ""), VersionRun(29, 30, "reset mid-stream"),
                                             VersionRun(31, 37, "")))
    assert (middle.short, middle.oldest_working) == ("1.31+", 31)
    assert middle.text == "1.31+; 1.29-1.30: reset mid-stream; 1.28 and older: works"
    newest = KubectlEntry("t", "p", "exec", (VersionRun(24, 33, ""), VersionRun(34, 37, "403 from gateway")))
    assert (newest.short, newest.oldest_working) == ("mixed", None)
    assert newest.text == "1.34+: 403 from gateway; 1.33 and older: works"
    none = KubectlEntry("t", "p", "exec", (VersionRun(24, 37, "500 from openunison"),))
    assert (none.short, none.text) == ("none", "none: 500 from openunison")


def test_how_fast_reads_native_exec_latency_and_port_forward_throughput(cell: CellFactory) -> None:
    mib16 = 16 * 1024 * 1024
    cells = [cell(target="t", path="none", protocol=p, client="native", timings=Timings(total_s=s))
             for p, s in (("spdy", 0.1), ("ws-v5", 0.2), ("ws-v4", 0.3), ("ws-v1", 0.4))]
    cells += [
        cell(target="t", path="alb", protocol="ws-v5", client="native", timings=Timings(total_s=0.5)),
        _broken(cell, target="t", path="alb", protocol="spdy", client="native"),  # failed: no timing
        cell(target="t", path="alb", protocol="ws-v5", client="kubectl-1.35", timings=Timings(total_s=9.0)),
        cell(target="t", path="none", protocol="spdy", operation="port-forward", client="native",
             timings=Timings(total_s=2.0), bytes_verified=mib16),
        cell(target="t", path="none", protocol="ws-tunnel", operation="port-forward", client="native",
             timings=Timings(total_s=4.0), bytes_verified=mib16),
    ]
    none, alb = how_fast(build_results(cells))
    assert (none.path, none.exec_ms) == ("none", [100.0, 200.0, 300.0, 400.0])
    assert (none.exec_p50, none.exec_p90, none.hop_ms) == (200.0, 400.0, None)
    assert none.pf_mib_s == {"SPDY": 8.0, "WebSocket": 4.0}
    assert (alb.exec_ms, alb.hop_ms, alb.pf_mib_s) == ([500.0], 300.0, {})


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(10, 0, -1)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 100)) == (5.0, 9.0, 10.0)
    assert percentile([], 50) is None and percentile([7.0], 90) == 7.0


def test_the_terminal_views_fit_120_columns_for_a_full_matrix() -> None:
    # As big as the lab's full matrix (3,462 cells) with every kubectl 1.24..1.37 as shipped, and long names.
    results = with_as_shipped(make_results(3500, seed=5), minors=tuple(range(24, 38)))
    for c in results.cells[:40]:
        c.key = type(c.key)(target="a-very-long-target-name-" + c.key.target, path="a-long-path-name-" + c.key.path,
                            protocol=c.key.protocol, operation=c.key.operation, client=c.key.client)
    lines = views_lines(results)
    assert any(line.startswith("WHICH KUBECTL") for line in lines) and any("1.24 to 1.37" in x for x in lines)
    text = render_terminal(results)
    too_wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert too_wide == []
    assert "--format grid" in text  # the full grid is too wide: named, not printed
    assert "FAILED" in text  # the gate summary is still there


def test_a_small_run_still_gets_its_grid(small_results: object) -> None:
    from conformance.model import Results

    assert isinstance(small_results, Results)
    text = render_terminal(small_results)
    assert "FULL GRID" in text and "--format grid" not in text


def test_kubectl_notes_name_the_operations_that_share_an_answer() -> None:
    from reports.views import kubectl_notes

    results = with_as_shipped(make_results(300, seed=1), minors=(24, 29, 30, 31, 36))
    direct = [e for e in which_kubectl(results) if e.target == "direct"]
    streams = ["exec", "cp up", "cp down", "attach"]
    assert kubectl_notes(direct) == [
        ("l7-lb-haproxy", streams, "1.30+; 1.29 and older (SPDY): 400 Upgrade request required"),
        ("l7-lb-haproxy", ["port-forward"], "1.31+; 1.30 and older (SPDY): 400 Upgrade request required"),
        ("https-proxy-connect", streams, "all (fell back to SPDY: 1.30)"),
        ("envoy-ingress", streams, "1.30+; 1.29 and older (SPDY): 403 from envoy-ingress"),
        ("envoy-ingress", ["port-forward"], "1.31+; 1.30 and older (SPDY): 403 from envoy-ingress"),
    ]


def test_in_short_tells_a_target_that_failed_only_sometimes_from_one_that_never_works(cell: CellFactory) -> None:
    truncated = {"status_line": "HTTP/1.1 101 Switching Protocols",
                 "error": "the download ended early: 15924736 of 16777216 bytes"}
    results = build_results([
        cell(target="a", path="gw", protocol="ws-v5", operation="cp-download", client="native"),
        cell(target="b", path="gw", protocol="ws-v5", operation="cp-download", client="native"),
        cell(target="b", path="gw", protocol="ws-v4", operation="cp-download", client="native",
             outcome=Outcome.FAIL, error_class=ErrorClass.TRUNCATED, **truncated),
        _broken(cell, target="c", path="gw", protocol="ws-v5", operation="cp-download", client="native"),
    ])
    assert in_short(what_works(results)) == [
        ("gw", "WebSocket works except through c (400 Upgrade request required), but some cells failed through b "
               "(download ended early)"),
    ]


def test_kubectl_race_is_named_under_which_kubectl_with_its_versions(cell: CellFactory) -> None:
    from reports.views import client_race_note
    from reports.views_markdown import views_markdown

    race = "kubectl 1.32: kubectl read the WebSocket before creating its streams (kubernetes/kubernetes#131189): x"
    clean = build_results([cell(protocol="as-shipped", client="kubectl-1.32")])
    assert client_race_note(clean) is None
    results = build_results([
        cell(protocol="as-shipped", client="kubectl-1.32", operation="exec", client_races=[race]),
        cell(protocol="as-shipped", client="kubectl-1.30", operation="cp-upload",
             earlier_attempts=[f"attempt 1: [{race}]"]),
        cell(protocol="as-shipped", client="native", operation="cp-download", client_races=[race]),  # not kubectl
    ])
    note = client_race_note(results)
    assert note is not None
    assert "in 2 cell(s)" in note and "1.30 (1), 1.32 (1)" in note and "1 of them failed with it" in note
    assert note in " ".join(line.strip() for line in views_lines(results))
    assert note in views_markdown(results)
