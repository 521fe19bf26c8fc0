"""Pictures for the HTML report, as inline SVG: the heat map of the whole matrix and bar charts of timings.

Pure text out, nothing loaded: colours are presentation attributes (the page's Content-Security-Policy
allows no style attribute), text is escaped, and there is no href, url() or font. A heat-map cell is one
`<rect class="cell">` with a `<title>` (the browser's tooltip): the cell id, outcome and error class.
"""

from __future__ import annotations

import html

from conformance.model import Outcome
from reports.grid import Matrix
from reports.text import one_line, printable
from reports.views import FAMILIES, SpeedRow

COLOURS: dict[Outcome, str] = {  # the same as the report's stylesheet
    Outcome.PASS: "#2e7d32",
    Outcome.EXPECTED_FAIL: "#00838f",
    Outcome.UNEXPECTED_PASS: "#e65100",
    Outcome.FAIL: "#c62828",
    Outcome.ERROR: "#6a1b9a",
    Outcome.SKIP: "#9e9e9e",
}
CELL_W, CELL_H = 10, 12
GROUP_GAP, TARGET_GAP = 5, 6  # between protocol groups, between targets
CHAR_W = 6.6  # an estimate of one character of 11px sans-serif, for laying out labels
HEAD_H = 150  # protocol names (staggered) over rotated operation names
FONT = 'font-family="sans-serif" font-size="11"'
SMALL = 'font-family="sans-serif" font-size="9"'


def esc(value: object) -> str:
    return html.escape(printable(str(value)), quote=True)


def heat_map(matrix: Matrix) -> str:
    """Rows target/path, columns protocol x operation x client (only those present); one rect per cell."""
    columns: list[tuple[str, str, str]] = []
    x_of: list[float] = []
    label_w = max([len(one_line(f"{t}/{p}", 48)) for t in matrix.targets for p in matrix.paths[t]] or [0]) * CHAR_W
    x = label_w + 8
    previous_protocol = None
    for protocol, operation, client in matrix.client_columns():
        if previous_protocol is not None and protocol != previous_protocol:
            x += GROUP_GAP
        previous_protocol = protocol
        columns.append((protocol, operation, client))
        x_of.append(x)
        x += CELL_W
    width = x + 10
    parts: list[str] = []
    # Column heads: the operation, rotated, at its first column; the protocol above each group.
    seen_ops: set[tuple[str, str]] = set()
    seen_protocols: list[str] = []
    for (protocol, operation, _client), cx in zip(columns, x_of, strict=True):
        if protocol not in seen_protocols:
            seen_protocols.append(protocol)
            ty = 11 if len(seen_protocols) % 2 else 23  # staggered: narrow groups' names do not overlap
            parts.append(f'<text x="{cx:.1f}" y="{ty}" {FONT} font-weight="bold">{esc(one_line(protocol, 20))}</text>')
        if (protocol, operation) not in seen_ops:
            seen_ops.add((protocol, operation))
            tx, ty = cx + CELL_W - 2, HEAD_H - 4
            parts.append(
                f'<text x="{tx:.1f}" y="{ty}" {SMALL} transform="rotate(-90 {tx:.1f} {ty})">'
                f"{esc(one_line(operation, 24))}</text>"
            )
    y = HEAD_H
    for t_index, target in enumerate(matrix.targets):
        if t_index:
            y += TARGET_GAP
        for path in matrix.paths[target]:
            label = one_line(f"{target}/{path}", 48)
            parts.append(f'<text x="0" y="{y + CELL_H - 2}" {FONT}>{esc(label)}</text>')
            for (protocol, operation, client), cx in zip(columns, x_of, strict=True):
                cell = matrix.cell(target, path, protocol, operation, client)
                if cell is None:
                    continue
                tip = f"{cell.id}: {cell.outcome.value}" + (
                    f" ({cell.error_class.value})" if cell.error_class.value != "none" else ""
                )
                parts.append(
                    f'<rect class="cell" x="{cx:.1f}" y="{y}" width="{CELL_W - 1}" height="{CELL_H - 1}" '
                    f'fill="{COLOURS[cell.outcome]}"><title>{esc(tip)}</title></rect>'
                )
            y += CELL_H
    y += 14
    x = 0.0
    for outcome, colour in COLOURS.items():  # the legend
        parts.append(f'<rect class="key" x="{x:.1f}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y + 9}" {FONT}>{esc(outcome.value)}</text>')
        x += 14 + len(outcome.value) * CHAR_W + 16
    height = y + 16
    clients = ", ".join(matrix.clients)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heat" width="{max(width, x):.0f}" height="{height}" '
        f'viewBox="0 0 {max(width, x):.0f} {height}" role="img" aria-label="heat map of every cell">'
        f"<title>Every cell: rows target/path, columns protocol, operation and client ({esc(clients)})</title>"
        + "".join(parts)
        + "</svg>"
    )


BAR_H, BAR_GAP, CHART_W = 7, 5, 360


def exec_chart(rows: list[SpeedRow]) -> str:
    """Exec latency per target/path: p90 (light) behind p50 (dark), in milliseconds."""
    bars = [(f"{r.target}/{r.path}", [(r.exec_p90, "#90caf9", "p90"), (r.exec_p50, "#1565c0", "p50")]) for r in rows]
    return _bar_chart("native exec latency (ms): p50 dark, p90 light", bars, "ms", overlay=True)


def throughput_chart(rows: list[SpeedRow]) -> str:
    """Port-forward throughput per target/path, one bar per protocol family, in MiB/s."""
    colours = {"SPDY": "#6d4c41", "WebSocket": "#00897b"}
    bars = [(f"{r.target}/{r.path}", [(r.pf_mib_s.get(f), colours[f], f) for f in FAMILIES]) for r in rows]
    return _bar_chart("native port-forward throughput (MiB/s): SPDY brown, WebSocket green", bars, "MiB/s")


def _bar_chart(
    title: str, rows: list[tuple[str, list[tuple[float | None, str, str]]]], unit: str, *, overlay: bool = False
) -> str:
    values = [v for _, bars in rows for v, _, _ in bars if v is not None]
    top = max(values, default=0.0) or 1.0
    label_w = max([len(one_line(label, 48)) for label, _ in rows] or [0]) * CHAR_W + 8
    parts = [f'<text x="0" y="12" {FONT} font-weight="bold">{esc(title)}</text>']
    y = 22
    for label, bars in rows:
        per_row = 1 if overlay else len(bars)
        row_h = per_row * BAR_H + BAR_GAP
        parts.append(f'<text x="0" y="{y + min(row_h, 12) - 2}" {FONT}>{esc(one_line(label, 48))}</text>')
        for i, (value, colour, name) in enumerate(bars):
            by = y + (0 if overlay else i * BAR_H)
            if value is None:
                continue
            w = max(1.0, value / top * CHART_W)
            parts.append(
                f'<rect class="bar" x="{label_w:.1f}" y="{by}" width="{w:.1f}" height="{BAR_H - 1}" fill="{colour}">'
                f"<title>{esc(f'{label} {name}: {value:.1f} {unit}')}</title></rect>"
            )
        shown = [f"{v:.0f}" if unit == "ms" else f"{v:.1f}" for v, _, _ in bars if v is not None]
        if overlay:
            shown.reverse()  # drawn back to front, read front to back (p50 / p90)
        end = max((v for v, _, _ in bars if v is not None), default=0.0) / top * CHART_W
        text = " / ".join(shown) if shown else "no cell worked"
        parts.append(f'<text x="{label_w + end + 4:.1f}" y="{y + 8}" {SMALL}>{esc(text)}</text>')
        y += row_h
    width, height = label_w + CHART_W + 80, y + 4
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )
