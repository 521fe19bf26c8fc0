"""The answer-first views as plain text for a 120-column terminal (reports/views.py holds the rows).

Every line is at most WIDTH characters: names from the config are cut, long notes wrap.
"""

from __future__ import annotations

import textwrap

from conformance.model import Results
from reports.text import one_line
from reports.views import (
    GROUPS,
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

WIDTH = 120
NAME_MAX = 20  # a target or path name longer than this is cut in the tables
INDENT = "  "


def views_lines(results: Results) -> list[str]:
    """The three views, each under its heading; views without cells say so in one line."""
    return [
        *works_lines(what_works(results)),
        "",
        *kubectl_lines(which_kubectl(results)),
        *(["", *wrapped(note)] if (note := client_race_note(results)) else []),
        "",
        *speed_lines(how_fast(results)),
    ]


def table(header: list[str], rows: list[list[str]], indent: str = INDENT) -> list[str]:
    """Left-aligned columns, two spaces apart, trailing blanks dropped."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip() for r in [header, *rows]]


def wrapped(text: str, indent: str = INDENT) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "    ", break_on_hyphens=False)


def works_lines(rows: list[WorksRow]) -> list[str]:
    out = ["WHAT WORKS: each operation per protocol family (a declared expected failure is still broken)"]
    if not rows:
        return [*out, "  no exec, cp, attach, port-forward or logs cells in this run"]
    out += [f"{INDENT}In short, per path, over every target:"]
    width = max(len(one_line(p, NAME_MAX)) for p, _ in in_short(rows))
    for path, sentence in in_short(rows):
        out += textwrap.wrap(f"{one_line(path, NAME_MAX).ljust(width)}  {one_line(sentence, 400)}", WIDTH,
                             initial_indent=INDENT, subsequent_indent=INDENT + " " * (width + 2))
    out += ["", *wrapped(
        "works: every client and protocol of the family worked; broken: none did; partly: some did (the note "
        "names the first that did not). Clients: native, kubectl forced to a protocol, python."
    )]
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target]
        notes = footnotes(e for r in mine for e in r.entries)
        body = []
        for i, row in enumerate(mine):
            first = i == 0 or mine[i - 1].path != row.path
            body.append([
                one_line(row.path, NAME_MAX) if first else "",
                row.family,
                *(entry_label(e, notes) for e in row.entries),
            ])
        out += ["", f"target {one_line(target, 80)}"]
        out += table(["path", "family", *(g.name for g in GROUPS)], body)
        out += [line for note, n in notes.items() for line in wrapped(f"[{n}] {note}", INDENT * 2)]
    return out


def kubectl_lines(entries: list[KubectlEntry]) -> list[str]:
    out = ["WHICH KUBECTL: the oldest kubectl that works as shipped (no environment forcing a protocol)"]
    if not entries:
        return [*out, "  no as-shipped kubectl cells in this run"]
    out += wrapped(f"{tested_kubectl(entries)}. all: every version tested works; 1.31+: 1.31 and newer work.")
    groups = [g for g in GROUPS if any(e.group == g.name for e in entries)]
    for target in dict.fromkeys(e.target for e in entries):
        mine = [e for e in entries if e.target == target]
        paths = list(dict.fromkeys(e.path for e in mine))
        cell = {(e.path, e.group): e.short for e in mine}
        body = [[one_line(p, NAME_MAX), *(cell.get((p, g.name), "-") for g in groups)] for p in paths]
        out += ["", f"target {one_line(target, 80)}", *table(["path", *(g.name for g in groups)], body)]
        for path, names, text in kubectl_notes(mine):
            out += wrapped(f"{', '.join(names)} via {one_line(path, NAME_MAX)}: {one_line(text, 200)}", INDENT * 2)
    return out


def tested_kubectl(entries: list[KubectlEntry]) -> str:
    """"kubectl 1.24 to 1.37" when every minor between ran, else the minors listed."""
    minors = sorted({m for e in entries for m in e.minors})
    if minors == list(range(minors[0], minors[-1] + 1)):
        return f"kubectl 1.{minors[0]} to 1.{minors[-1]}"
    return "kubectl " + ", ".join(f"1.{m}" for m in minors)


def speed_lines(rows: list[SpeedRow]) -> list[str]:
    out = ["HOW FAST: the native client, cells that worked"]
    if not rows:
        return [*out, "  no native exec or port-forward cells in this run"]
    out += wrapped(
        "exec: one short command, connect to exit status, over every protocol of the native client (p50/p90 "
        "nearest rank, n samples; +p50: more than path none of the same target). port-forward: MiB/s echoed "
        "through one connection, median per family."
    )
    body = []
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target]
        for r in mine:
            delta = "" if r.hop_ms is None else f"{r.hop_ms:+.0f} ms"
            body.append([
                one_line(f"{target}/{r.path}", 2 * NAME_MAX),
                _ms(r.exec_p50),
                _ms(r.exec_p90),
                str(len(r.exec_ms)),
                delta,
                *(_mib(r.pf_mib_s.get(f)) for f in ("SPDY", "WebSocket")),
            ])
    header = ["target/path", "exec p50", "exec p90", "n", "+p50", "pf SPDY", "pf WebSocket"]
    return [*out, "", *table(header, body)]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB/s"
