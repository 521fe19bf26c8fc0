"""The Markdown report, answer first: what was tested and with which versions, the verdict, the views
(What works, Which kubectl, How fast: reports/views_markdown.py), then the detail: a matrix per target,
a legend, and every cell that did not pass with its evidence.

Fit to commit as documentation (GitHub-flavoured Markdown). Untrusted text only ever appears inside code
spans, so nothing in evidence can become a link, an image or HTML; table cells also escape `|`.
"""

from __future__ import annotations

from conformance.model import CellResult, Outcome, Results
from reports.evidence import key_evidence
from reports.grid import ABSENT, MEANINGS, SEVERITY, SYMBOLS, Matrix, build_matrix, by_severity, summary_line
from reports.markdown_text import code
from reports.scrub import redacted_results, scrub_text
from reports.text import one_line
from reports.views_markdown import views_markdown

NON_PASS = tuple(o for o in SEVERITY if o is not Outcome.PASS)


def render_markdown(results: Results, *, title: str | None = "Streaming conformance results") -> str:
    """The report; `title=None` leaves out the H1, for a document that has its own (scripts/compatibility.py)."""
    safe = redacted_results(results)
    matrix = build_matrix(safe)
    out = [f"# {one_line(title)}", ""] if title else []
    out += [*tested(safe), "", f"**Gate:** {code(summary_line(safe))}", ""]
    out += views_markdown(safe, level=2)
    out += ["## Detail", "", *_meta(safe), ""]
    out += ["### Legend", "", "| symbol | outcome | meaning |", "|---|---|---|"]
    out += [f"| {code(s)} | {o.value} | {MEANINGS[o]} |" for o, s in SYMBOLS.items()]
    out += [f"| {code(ABSENT)} | | no such cell in this run |", ""]
    clients = ", ".join(code(c) for c in matrix.clients)
    out += [f"Each matrix cell holds one symbol per client, in this order: {clients}.", ""]
    for target in matrix.targets:
        out += [f"### Matrix of target {code(target)}", "", *_matrix_table(matrix, target), ""]
    out += _non_pass(safe)
    return scrub_text("\n".join(out).rstrip("\n") + "\n")


def tested(results: Results) -> list[str]:
    """What was tested, in two lines: the axes, and the versions (cluster, harness, every client's)."""
    cells = results.cells
    axes = [
        ("targets", list(dict.fromkeys(c.key.target for c in cells))),
        ("paths", list(dict.fromkeys(c.key.path for c in cells))),
        ("clients", list(dict.fromkeys(c.key.client for c in cells))),
    ]
    what = f"**Tested:** {len(cells)} cells; " + "; ".join(
        f"{len(values)} {name}: " + ", ".join(code(v) for v in values[:12]) + (" ..." if len(values) > 12 else "")
        for name, values in axes
    ) + "."
    m = results.meta
    versions = [("Kubernetes API server", m.cluster_version), ("harness", m.harness_version or None)]
    clients = dict.fromkeys(f"{c.key.client} {c.client_version}" for c in cells if c.client_version)
    parts = [f"{name} {code(v)}" for name, v in versions if v] + [code(c) for c in clients]
    when = f" Run {code(m.started)}" + (f" on {code(m.runner)}" if m.runner else "") + "."
    return [what, "", ("**Versions:** " + ", ".join(parts) + "." if parts else "**Versions:** not recorded.") + when]


def _meta(results: Results) -> list[str]:
    m = results.meta
    rows = [
        ("started", m.started),
        ("finished", m.finished),
        ("runner", m.runner),
        ("source", m.source),
        ("harness", m.harness_version),
        ("cluster", m.cluster_version),
        ("config", m.config_digest),
    ]
    lines = [f"- {name}: {code(value)}" for name, value in rows if value]
    for merged in m.merged_from:
        lines.append(
            f"- merged from {code(merged.file)} (label {code(merged.label)}, {merged.cells} cells"
            + (", targets prefixed" if merged.prefixed else "")
            + ")"
        )
    return lines


def _matrix_table(matrix: Matrix, target: str) -> list[str]:
    header = ["path", *(f"{proto} {op}" for proto, op in matrix.columns)]
    rows = [
        "| " + " | ".join(code(h, in_table=True) if i else h for i, h in enumerate(header)) + " |",
        "|" + "---|" * len(header),
    ]
    for path in matrix.paths[target]:
        slots = [
            "".join(ABSENT if c is None else SYMBOLS[c.outcome] for c in matrix.slot(target, path, col))
            for col in matrix.columns
        ]
        rows.append("| " + " | ".join([code(path, in_table=True), *(code(s, in_table=True) for s in slots)]) + " |")
    return rows


def _non_pass(results: Results) -> list[str]:
    cells = by_severity(results.cells, NON_PASS)
    if not cells:
        return ["### Cells that did not pass", "", "None: every cell passed.", ""]
    out = ["### Cells that did not pass", "", "Worst first: fail, error, unexpected-pass, expected-fail, skip.", ""]
    out += [_non_pass_item(c) for c in cells]
    return [*out, ""]


def _non_pass_item(cell: CellResult) -> str:
    head = f"- {code(SYMBOLS[cell.outcome])} **{cell.outcome.value}** {code(cell.id)}"
    if cell.error_class.value != "none":
        head += f" ({cell.error_class.value})"
    details = [f"{label} {code(value)}" for label, value in _details(cell) if value]
    return head + (": " + "; ".join(details) if details else "")


def _details(cell: CellResult) -> list[tuple[str, str | None]]:
    ev = cell.evidence
    identity = ev.identity.user if ev.identity else None
    return [
        ("status", ev.status_line),
        ("error", one_line(ev.error, 200) if ev.error else None),
        ("identity seen", identity),
        ("proxy authenticated", ev.proxy_identity.user if ev.proxy_identity else None),
        ("audit trail", ev.audit_trail),
        (
            "expected",
            f"{cell.expectation.outcome} {cell.expectation.error_class or ''}".strip()
            if cell.outcome in (Outcome.UNEXPECTED_PASS, Outcome.FAIL)
            else None,
        ),
        ("why", cell.message or None),
        ("summary", None if ev.status_line or ev.error else key_evidence(cell) or None),
    ]
