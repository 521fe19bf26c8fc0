"""The plain-text end of a run, Cilium-style: one line of counts, then one line per unexpected cell.

Quiet on success: expected failures and skips are counted (skips grouped by reason), not listed, unless
`--list-expected` asks for them. An answer-first view of the results (what works, per target: the reports'
views) belongs right after the counts line, when one exists.
"""

from __future__ import annotations

from pathlib import Path

from conformance.model import CellResult, Results, RunMetadata


def summary_lines(
    cells: list[CellResult], *, results_path: str | None, baseline: str | None, list_expected: bool = False
) -> list[str]:
    from reports.evidence import key_evidence
    from reports.grid import summary_line, unexpected

    results = Results(meta=RunMetadata(started=""), cells=cells)
    lines = [summary_line(results)]
    for cell in unexpected(results):
        lines.append(f"  {cell.outcome.value:<15} {cell.id}: {key_evidence(cell) or cell.message}")
    expected = [c for c in cells if c.outcome.value == "expected-fail"]
    if expected and list_expected:
        lines.append(f"  {len(expected)} expected failure(s):")
        lines += [f"    {c.id}: {c.error_class.value}: {c.message}" for c in sorted(expected, key=lambda c: c.id)]
    elif expected:
        lines.append(f"  {len(expected)} expected failure(s), not listed (--list-expected lists them)")
    skipped = [c for c in cells if c.outcome.value == "skip"]
    if skipped and list_expected:
        lines.append(f"  {len(skipped)} cell(s) skipped (--strict fails them):")
        lines += [f"    {c.id}: {c.message}" for c in sorted(skipped, key=lambda c: c.id)]
    elif skipped:
        reasons: dict[str, int] = {}
        for c in skipped:
            reasons[c.message] = reasons.get(c.message, 0) + 1
        lines.append(f"  {len(skipped)} cell(s) skipped (--strict fails them):")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
            lines.append(f"    {n:>5} x {reason}")
    fallbacks = [c for c in cells if c.evidence.fallback]
    if fallbacks:
        lines.append(f"  {len(fallbacks)} cell(s) worked only after a client fallback, e.g. {fallbacks[0].id}")
    retried = [c for c in cells if c.evidence.earlier_attempts and c.outcome.value in ("pass", "expected-fail")]
    if retried:
        first = retried[0]
        lines.append(
            f"  {len(retried)} cell(s) asked again after a known race of their client (--client-race-retries=0 "
            f"fails them), e.g. {first.id}: {first.evidence.earlier_attempts[0][:160]}"
        )
    if baseline:
        from reports.diff import diff_results, render_diff_terminal
        from reports.schema import load_results

        lines.append(f"compared with {baseline}:")
        diff = diff_results(load_results(Path(baseline)), results)
        lines += ["  " + x for x in render_diff_terminal(diff).splitlines()]
    if results_path:
        lines.append(f"results: {results_path} (`conformance report {results_path} --format html` renders them)")
    return lines
