"""The answer-first views as HTML, for the top of the HTML report (reports/views.py holds the rows).

Every string passes through `esc` (printable, HTML-escaped); the page redacts its whole text afterwards.
"""

from __future__ import annotations

from conformance.model import Results
from reports.grid import build_matrix
from reports.svg import esc, exec_chart, heat_map, throughput_chart
from reports.views import (
    FAMILIES,
    GROUPS,
    NO_PATH,
    Entry,
    KubectlEntry,
    SpeedRow,
    WorksRow,
    client_race_note,
    entry_label,
    footnotes,
    how_fast,
    in_short,
    kubectl_notes,
    what_works,
    which_kubectl,
)
from reports.views_text import tested_kubectl


def views_html(results: Results) -> str:
    """In short, What works, Which kubectl, How fast (table and charts), then the heat map of every cell."""
    works = what_works(results)
    speed = how_fast(results)
    return "".join([
        '<section id="views">',
        _short(works),
        _works(works),
        _kubectl(which_kubectl(results), client_race_note(results)),
        _speed(speed),
        '<section id="heat"><h2>Every cell</h2><p class="note">One square per cell; hover for its id and '
        'outcome. The grid below has the evidence.</p>',
        f'<div class="scroll">{heat_map(build_matrix(results))}</div></section>',
        "</section>",
    ])


def _short(works: list[WorksRow]) -> str:
    items = "".join(f"<li><code>{esc(p)}</code>: {esc(s)}</li>" for p, s in in_short(works))
    body = f"<ul>{items}</ul>" if items else '<p class="none">no exec, cp, attach, port-forward or logs cells</p>'
    return (
        '<section id="in-short"><h2>In short</h2><p class="note">Per path, over every target (SPDY and '
        f"WebSocket: exec, cp, attach, port-forward).</p>{body}</section>"
    )


def _state_class(entry: Entry | None) -> str:
    return "" if entry is None else f' class="w-{entry.state.replace(" ", "-")}"'


def _works(rows: list[WorksRow]) -> str:
    out = [
        '<section id="what-works"><h2>What works</h2><p class="note">Each operation per protocol family. '
        "<b>works</b>: every client and protocol of the family worked (native, kubectl forced to a protocol, "
        "python); <b>broken</b>: none did; <b>partly</b>: some did. A declared expected failure is still broken."
        "</p>"
    ]
    if not rows:
        out.append('<p class="none">no exec, cp, attach, port-forward or logs cells in this run</p>')
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target]
        notes = footnotes(e for r in mine for e in r.entries)
        head = "".join(f"<th>{esc(g.name)}</th>" for g in GROUPS)
        body = []
        for i, r in enumerate(mine):
            first = i == 0 or mine[i - 1].path != r.path
            path = f'<th scope="row">{esc(r.path)}</th>' if first else "<td></td>"
            tds = "".join(f"<td{_state_class(e)}>{esc(entry_label(e, notes))}</td>" for e in r.entries)
            body.append(f"<tr>{path}<td>{esc(r.family)}</td>{tds}</tr>")
        note_items = "".join(f"<li>{esc(note)}</li>" for note in notes)
        out.append(
            f'<h3>{esc(target)}</h3><table class="view"><thead><tr><th>path</th><th>family</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>" + (f'<ol class="notes">{note_items}</ol>' if notes else "")
        )
    out.append("</section>")
    return "".join(out)


def _kubectl(entries: list[KubectlEntry], race_note: str | None = None) -> str:
    out = ['<section id="which-kubectl"><h2>Which kubectl</h2>']
    if not entries:
        out.append('<p class="none">no as-shipped kubectl cells in this run</p></section>')
        return "".join(out)
    groups = [g for g in GROUPS if any(e.group == g.name for e in entries)]
    out.append(
        f'<p class="note">The oldest kubectl that works as shipped ({esc(tested_kubectl(entries))}). '
        "<b>all</b>: every version tested works; <b>1.31+</b>: 1.31 and newer work.</p>"
    )
    for target in dict.fromkeys(e.target for e in entries):
        mine = [e for e in entries if e.target == target]
        paths = list(dict.fromkeys(e.path for e in mine))
        by = {(e.path, e.group): e for e in mine}
        head = "".join(f"<th>{esc(g.name)}</th>" for g in groups)
        rows = []
        for p in paths:
            tds = []
            for g in groups:
                e = by.get((p, g.name))
                css = "" if e is None else f' class="{_VERSION_CLASS.get(e.short, "w-partly")}"'
                tip = "" if e is None else f' title="{esc(e.text)}"'
                tds.append(f"<td{css}{tip}>{esc(e.short if e else '-')}</td>")
            rows.append(f'<tr><th scope="row">{esc(p)}</th>{"".join(tds)}</tr>')
        lines = "".join(
            f"<li>{esc(', '.join(names))} via <code>{esc(path)}</code>: {esc(text)}</li>"
            for path, names, text in kubectl_notes(mine)
        )
        out.append(
            f'<h3>{esc(target)}</h3><table class="view"><thead><tr><th>path</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>" + (f'<ul class="notes">{lines}</ul>' if lines else "")
        )
    if race_note:
        out.append(f'<p class="note">{esc(race_note)}</p>')
    out.append("</section>")
    return "".join(out)


# "all" works for everyone, "none"/"mixed" for no range up to the newest; "1.31+" works from a version on.
_VERSION_CLASS = {"all": "w-works", "none": "w-broken", "mixed": "w-broken"}


def _speed(rows: list[SpeedRow]) -> str:
    out = [
        '<section id="how-fast"><h2>How fast</h2><p class="note">The native client, cells that worked. exec: one '
        "short command, connect to exit status, over every protocol it speaks (p50/p90 nearest rank; +p50: more "
        f"than path <code>{esc(NO_PATH)}</code> of the same target). port-forward: MiB/s echoed through one "
        "connection, median per family. Cells run concurrently in a matrix run: orders of magnitude, not a "
        "benchmark.</p>"
    ]
    if not rows:
        out.append('<p class="none">no native exec or port-forward cells in this run</p></section>')
        return "".join(out)
    body = []
    for r in rows:
        hop = "" if r.hop_ms is None else f"{r.hop_ms:+.0f} ms"
        pf = "".join(f"<td>{_fmt(r.pf_mib_s.get(f), 'MiB/s', 1)}</td>" for f in FAMILIES)
        body.append(
            f'<tr><th scope="row">{esc(r.target)}/{esc(r.path)}</th><td>{_fmt(r.exec_p50, "ms", 0)}</td>'
            f"<td>{_fmt(r.exec_p90, 'ms', 0)}</td><td>{len(r.exec_ms)}</td><td>{hop}</td>{pf}</tr>"
        )
    out.append(
        '<table class="view num"><thead><tr><th>target/path</th><th>exec p50</th><th>exec p90</th><th>n</th>'
        "<th>+p50</th>" + "".join(f"<th>port-forward {esc(f)}</th>" for f in FAMILIES)
        + f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<div class="charts">{exec_chart(rows)}{throughput_chart(rows)}</div></section>'
    )
    return "".join(out)


def _fmt(value: float | None, unit: str, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"
