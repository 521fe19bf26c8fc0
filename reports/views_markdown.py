"""The answer-first views as GitHub-flavoured Markdown (reports/views.py holds the rows).

Names and failure words come from evidence and config, so they only ever appear inside code spans.
"""

from __future__ import annotations

from conformance.model import Results
from reports.markdown_text import code
from reports.views import (
    FAMILIES,
    GROUPS,
    NO_PATH,
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


def views_markdown(results: Results, level: int = 2) -> list[str]:
    h = "#" * level
    works = what_works(results)
    short = [f"- {code(path)}: {code(sentence)}" for path, sentence in in_short(works)]
    return [
        f"{h} In short",
        "",
        "Per path, over every target (SPDY and WebSocket: exec, cp, attach, port-forward):",
        "",
        *(short or ["No exec, cp, attach, port-forward or logs cells in this run."]),
        "",
        f"{h} What works",
        "",
        *works_markdown(works, level + 1),
        f"{h} Which kubectl",
        "",
        *kubectl_markdown(which_kubectl(results), level + 1),
        *([note, ""] if (note := client_race_note(results)) else []),
        f"{h} How fast",
        "",
        *speed_markdown(how_fast(results)),
    ]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def works_markdown(rows: list[WorksRow], level: int = 3) -> list[str]:
    if not rows:
        return ["No exec, cp, attach, port-forward or logs cells in this run.", ""]
    out = [
        f"Each operation per protocol family ({', '.join(FAMILIES)}; logs is plain HTTP). **works**: every "
        "client and protocol of the family worked (native, kubectl forced to a protocol, python); **broken**: "
        "none did; **partly**: some did, the note names the first that did not. A declared expected failure "
        "is still broken: this is what happened, not what was expected. *idle*: a silent session outlives "
        "the path's idle timeout.",
        "",
    ]
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target]
        notes = footnotes(e for r in mine for e in r.entries)
        out += [f"{'#' * level} Target {code(target)}", ""]
        out += [_row(["path", "family", *(g.name for g in GROUPS)]), "|" + "---|" * (len(GROUPS) + 2)]
        for i, r in enumerate(mine):
            first = i == 0 or mine[i - 1].path != r.path
            labels = [_strong(entry_label(e, notes)) for e in r.entries]
            out.append(_row([code(r.path, in_table=True) if first else "", r.family, *labels]))
        out += [""] + [f"{n}. {code(note)}" for note, n in notes.items()] + ([""] if notes else [])
    return out


def _strong(label: str) -> str:
    # Only the words that are not "works" stand out, so the eye finds the problems.
    return label if label in ("", "works") else f"**{label}**"


def kubectl_markdown(entries: list[KubectlEntry], level: int = 3) -> list[str]:
    if not entries:
        return ["No as-shipped kubectl cells in this run (`kubectl-1.NN` clients with protocol `as-shipped`).", ""]
    groups = [g for g in GROUPS if any(e.group == g.name for e in entries)]
    out = [
        f"The oldest kubectl that works as shipped, without any environment forcing a protocol "
        f"({tested_kubectl(entries)}). **all**: every version tested works; **1.31+**: 1.31 and newer work, "
        "and the line below the table says what the older ones get.",
        "",
    ]
    for target in dict.fromkeys(e.target for e in entries):
        mine = [e for e in entries if e.target == target]
        paths = list(dict.fromkeys(e.path for e in mine))
        cell = {(e.path, e.group): e.short for e in mine}
        out += [f"{'#' * level} Target {code(target)}", ""]
        out += [_row(["path", *(g.name for g in groups)]), "|" + "---|" * (len(groups) + 1)]
        out += [_row([code(p, in_table=True), *(_strong_version(cell.get((p, g.name), "-")) for g in groups)])
                for p in paths]
        lines = [f"- {', '.join(names)} via {code(path)}: {code(text)}" for path, names, text in kubectl_notes(mine)]
        out += ["", *lines, ""] if lines else [""]
    return out


def _strong_version(short: str) -> str:
    return short if short in ("all", "-") else f"**{short}**"


def speed_markdown(rows: list[SpeedRow]) -> list[str]:
    if not rows:
        return ["No native exec or port-forward cells in this run.", ""]
    out = [
        "The native client, cells that worked. **exec**: one short command, connect to exit status, over "
        "every protocol the native client speaks (p50/p90 nearest rank over n samples; **+p50**: more than "
        f"path {code(NO_PATH)} of the same target, the cost of the path's hop). **port-forward**: MiB/s echoed "
        "through one connection, median per family. Cells run concurrently in a matrix run, so these numbers "
        "show orders of magnitude, not a benchmark (`benchmarks/streaming.py` measures alone).",
        "",
        _row(["target / path", "exec p50", "exec p90", "n", "+p50", "port-forward SPDY", "port-forward WebSocket"]),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target]
        for r in mine:
            delta = "" if r.hop_ms is None else f"{r.hop_ms:+.0f} ms"
            out.append(_row([
                f"{code(target, in_table=True)} / {code(r.path, in_table=True)}",
                _ms(r.exec_p50), _ms(r.exec_p90), str(len(r.exec_ms)), delta,
                *(_mib(r.pf_mib_s.get(f)) for f in FAMILIES),
            ]))
    return [*out, ""]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB/s"
