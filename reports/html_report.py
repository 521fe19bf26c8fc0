"""The HTML report: one self-contained file. Answer first (In short, What works, Which kubectl, How fast
with charts, a heat map of every cell: reports/views_html.py, reports/svg.py), then the colour-coded
grid per target with filters and evidence on click.

No network: CSS and JS are inlined and a Content-Security-Policy allows nothing else (`default-src
'none'`, the inline style and script pinned by their sha256), so even a mistake in escaping could not run
a script. Every interpolated string passes through `_text` (redact, make printable, html.escape); cell data
for the evidence panel travels as JSON inside a non-executed <script type="application/json">, with `<`,
`>` and `&` escaped so it cannot close the element, and the page sets it only with textContent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.resources
import json
from typing import Any

from conformance.model import CellResult, Outcome, Results
from conformance.redact import REDACTED, redact
from reports.evidence import key_evidence
from reports.grid import MEANINGS, SYMBOLS, Matrix, build_matrix, summary_line, unexpected
from reports.scrub import redact_tree, redacted_document, scrub_text
from reports.text import one_line, printable
from reports.views_html import views_html

LOOK_OPEN_UP_TO = 20  # a longer "needs a look" list starts folded, so the grid stays in view


def render_html(results: Results, *, title: str = "Streaming conformance") -> str:
    doc = redacted_document(results)
    page = _page(doc, title)
    # The forms the redaction marker takes here: escaped in HTML text, escaped in the embedded JSON.
    markers = (html.escape(REDACTED), _script_safe(REDACTED))
    scrubbed = scrub_text(page, markers=markers, escape=html.escape)
    if scrubbed != page:
        # Something escaped the redaction going in; redacting the page's text could break the embedded JSON
        # (an eaten escape), so redact the document string by string and build the page again.
        scrubbed = scrub_text(_page(redact_tree(doc), title), markers=markers, escape=html.escape)
    return scrubbed


def _page(doc: dict[str, Any], title: str) -> str:
    safe = Results.from_dict(doc)
    matrix = build_matrix(safe)
    css = _template("report.css") + _client_columns(len(matrix.clients))
    js = _template("report.js")
    cells_json = _script_safe(json.dumps(doc["cells"], ensure_ascii=False, separators=(",", ":")))
    verdict = summary_line(safe)
    position = {id(c): i for i, c in enumerate(safe.cells)}  # a cell's index in the embedded JSON
    path_index = {p: i for i, p in enumerate(_all_paths(matrix))}
    csp = f"default-src 'none'; style-src '{_sha256(css)}'; script-src '{_sha256(js)}'; img-src data:"
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}: {_text(verdict.split('|')[0])}</title>",
        f"<style>{css}</style></head><body>",
        _header(safe, title, verdict),
        views_html(safe),
        '<h2 class="grid-title">The full grid, with evidence</h2>',
        _filters(matrix, safe),
        _legend(matrix),
        _look(safe, position),
        '<main id="grid">',
        *(_target_section(matrix, t, i, path_index, position) for i, t in enumerate(matrix.targets)),
        "</main>",
        '<aside id="panel" hidden aria-label="evidence"><button type="button" id="panel-close" '
        'aria-label="close" title="close (Esc)">&#x2715;</button><div id="panel-body"></div></aside>',
        f'<script id="cells-data" type="application/json">{cells_json}</script>',
        f"<script>{js}</script>",
        "</body></html>",
    ]
    return "\n".join(page) + "\n"


def _script_safe(data: str) -> str:
    # JSON escapes for the three characters that could end the <script> element or start markup in it.
    return data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _text(value: object) -> str:
    return html.escape(printable(redact(str(value))), quote=True)


def _template(name: str) -> str:
    return importlib.resources.files("reports").joinpath("templates", name).read_text("utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _client_columns(n_clients: int) -> str:
    # Each client keeps its own column in every slot, so a hidden (filtered) box leaves a gap, not a shift.
    rules = [f".slot {{ grid-template-columns: repeat({max(n_clients, 1)}, 1.6em); }}"]
    rules += [f".k{i} {{ grid-column: {i + 1}; }}" for i in range(n_clients)]
    return "\n" + "\n".join(rules) + "\n"


def _header(results: Results, title: str, verdict: str) -> str:
    m = results.meta
    facts = [
        ("started", m.started),
        ("finished", m.finished),
        ("runner", m.runner),
        ("source", m.source),
        ("harness", m.harness_version),
        ("cluster", m.cluster_version),
    ]
    meta = " &middot; ".join(f"{name} <code>{_text(v)}</code>" for name, v in facts if v)
    merged = "".join(
        f"<li>merged <code>{_text(i.file)}</code> as <code>{_text(i.label)}</code>: {i.cells} cells"
        + (", targets prefixed" if i.prefixed else "")
        + "</li>"
        for i in m.merged_from
    )
    counts = results.counts()
    chips = "".join(
        f'<li><span class="sym o-{o.value}">{_text(SYMBOLS[o])}</span> {counts[o.value]} {o.value}</li>'
        for o in Outcome
    )
    state = "failed" if verdict.startswith("FAILED") else "ok"
    return (
        f'<header><h1>{_text(title)}</h1><p class="meta">{meta}</p>'
        + (f'<ul class="meta">{merged}</ul>' if merged else "")
        + f'<p class="verdict {state}">{_text(verdict.split("|")[0].strip())}</p><ul class="counts">{chips}</ul>'
        + "</header>"
    )


def _filters(matrix: Matrix, results: Results) -> str:
    paths = _all_paths(matrix)
    present = {c.outcome for c in results.cells}
    groups: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("Target", "t", [(str(i), t) for i, t in enumerate(matrix.targets)]),
        ("Path", "p", [(str(i), p) for i, p in enumerate(paths)]),
        ("Client", "c", [(str(i), c) for i, c in enumerate(matrix.clients)]),
        ("Outcome", "o", [(o.value, f"{SYMBOLS[o]} {o.value}") for o in Outcome if o in present]),
    ]
    sets = []
    for legend, dim, options in groups:
        boxes = "".join(
            f'<label><input type="checkbox" data-dim="{dim}" value="{_text(value)}" checked> {_text(label)}</label>'
            for value, label in options
        )
        bulk = (
            '<span class="bulk"><button type="button" data-bulk="all">all</button>'
            '<button type="button" data-bulk="none">none</button></span>'
        )
        sets.append(f"<fieldset><legend>{legend}{bulk}</legend>{boxes}</fieldset>")
    total = len(results.cells)
    shown = f'<p id="shown">showing <b id="shown-count">{total}</b> of {total} cells</p>'
    return f'<section id="filters" aria-label="filters">{"".join(sets)}{shown}</section>'


def _legend(matrix: Matrix) -> str:
    items = " ".join(
        f'<span class="sym o-{o.value}">{_text(s)}</span>{o.value} ({_text(MEANINGS[o])})' for o, s in SYMBOLS.items()
    )
    clients = ", ".join(f"<code>{_text(c)}</code>" for c in matrix.clients)
    return (
        f'<section id="legend"><p>{items}</p><p>Each grid cell holds one box per client, in this order: '
        f"{clients}. Click a box for its evidence.</p></section>"
    )


def _look(results: Results, index: dict[int, int]) -> str:
    cells = unexpected(results)
    if not cells:
        return (
            '<section id="look"><h2>Needs a look</h2><p class="none">nothing: every cell is as expected</p></section>'
        )
    is_open = " open" if len(cells) <= LOOK_OPEN_UP_TO else ""
    rows = "".join(
        f'<tr><td><span class="sym o-{c.outcome.value}">{_text(SYMBOLS[c.outcome])}</span> {c.outcome.value}</td>'
        f"<td>{_text(c.error_class.value)}</td>"
        f'<td><button type="button" class="open" data-i="{index[id(c)]}">{_text(c.id)}</button></td>'
        f"<td>{_text(one_line(key_evidence(c), 200))}</td></tr>"
        for c in cells
    )
    return (
        f'<section id="look"><details{is_open}><summary>Needs a look: {len(cells)} cells</summary><table><thead>'
        f"<tr><th>outcome</th><th>error class</th><th>cell</th><th>evidence</th></tr></thead><tbody>{rows}</tbody>"
        "</table></details></section>"
    )


def _target_section(
    matrix: Matrix, target: str, t_index: int, path_index: dict[str, int], position: dict[int, int]
) -> str:
    client_index = {c: i for i, c in enumerate(matrix.clients)}
    head1 = "".join(f'<th colspan="{len(ops)}" class="proto">{_text(p)}</th>' for p, ops in matrix.protocols())
    head2 = "".join(f"<th>{_text(op)}</th>" for _, ops in matrix.protocols() for op in ops)
    body = []
    for path in matrix.paths[target]:
        tds = []
        for column in matrix.columns:
            boxes = "".join(
                _box(c, position[id(c)], t_index, path_index[path], client_index[c.key.client])
                for c in matrix.slot(target, path, column)
                if c is not None
            )
            tds.append(f'<td><div class="slot">{boxes}</div></td>')
        body.append(f'<tr><th scope="row">{_text(path)}</th>{"".join(tds)}</tr>')
    return (
        f'<section class="target"><h2>{_text(target)}</h2><table class="matrix"><thead><tr>'
        f'<th rowspan="2">path</th>{head1}</tr><tr>{head2}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        "</section>"
    )


def _box(cell: CellResult, index: int, t_index: int, p_index: int, k: int) -> str:
    tip = f"{cell.id}: {cell.outcome.value}" + (
        f" ({cell.error_class.value})" if cell.error_class.value != "none" else ""
    )
    return (
        f'<button type="button" class="c o-{cell.outcome.value} k{k}" data-i="{index}" data-t="{t_index}" '
        f'data-p="{p_index}" data-c="{k}" data-o="{cell.outcome.value}" data-id="{_text(cell.id)}" '
        f'title="{_text(tip)}">{_text(SYMBOLS[cell.outcome])}</button>'
    )


def _all_paths(matrix: Matrix) -> list[str]:
    return list(dict.fromkeys(p for t in matrix.targets for p in matrix.paths[t]))
