"""Merging results files from several CI runners or clusters into one run.

The rule, in order (docs/reports.md says the same):
1. Each input gets a label, its source discriminator: `meta.runner`, else `meta.source`, else its file
   name without the suffix.
2. Inputs with the same label are one source seen twice (a rerun): for a cell id in both, the later file
   wins; the cell keeps its first position.
3. Different labels that share no cell id are shards of one matrix: their cells are simply combined.
4. Different labels that share any cell id ran the same question in different places: every cell of each
   such source (not just the clashing ones, so each source's matrix stays whole) has its target renamed
   "<label>/<target>". Sources that clash with nobody keep their targets.
The merged meta records every input in `merged_from`; started is the earliest, finished the latest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from conformance.errors import ResultsFormatError
from conformance.model import CellResult, MergedInput, Results, RunMetadata
from reports.schema import load_results


def merge_files(paths: Sequence[str | Path]) -> Results:
    return merge_results([(str(p), load_results(p)) for p in paths])


def merge_results(inputs: Sequence[tuple[str, Results]]) -> Results:
    """Merge `(file name, results)` pairs, in order, by the rule in this module's docstring."""
    if not inputs:
        raise ResultsFormatError("nothing to merge: give at least one results file")
    labels = [label_of(results.meta, name) for name, results in inputs]
    by_label: dict[str, dict[str, CellResult]] = {}
    for label, (_, results) in zip(labels, inputs, strict=True):
        cells = by_label.setdefault(label, {})
        for cell in results.cells:
            cells[cell.id] = cell  # a later file of the same source replaces, keeping the first position
    owners: dict[str, set[str]] = {}
    for label, cells in by_label.items():
        for cell_id in cells:
            owners.setdefault(cell_id, set()).add(label)
    clashing = set().union(*(o for o in owners.values() if len(o) > 1))
    merged: list[CellResult] = []
    for label, cells in by_label.items():
        merged += [_prefixed(c, label) if label in clashing else c for c in cells.values()]
    _check_unique(merged)
    meta = _merged_meta(inputs, labels, clashing)
    return Results(meta=meta, cells=merged)


def label_of(meta: RunMetadata, file_name: str) -> str:
    return meta.runner or meta.source or Path(file_name).stem


def _prefixed(cell: CellResult, label: str) -> CellResult:
    key = dataclasses.replace(cell.key, target=f"{label}/{cell.key.target}")
    return dataclasses.replace(cell, key=key)


def _check_unique(cells: list[CellResult]) -> None:
    seen: set[str] = set()
    for cell in cells:
        if cell.id in seen:
            # Only possible when a label-prefixed target equals another source's own target name.
            raise ResultsFormatError(f"merging makes two cells with id {cell.id!r}: rename a runner and merge again")
        seen.add(cell.id)


def _merged_meta(inputs: Sequence[tuple[str, Results]], labels: list[str], clashing: set[str]) -> RunMetadata:
    metas = [r.meta for _, r in inputs]
    finished = [m.finished for m in metas if m.finished]
    return RunMetadata(
        started=min(m.started for m in metas),  # RFC 3339 in UTC sorts as text
        finished=max(finished) if finished else None,
        harness_version=_joined(m.harness_version for m in metas) or "",
        cluster_version=_joined(m.cluster_version for m in metas),
        config_digest=_joined(m.config_digest for m in metas) if len({m.config_digest for m in metas}) == 1 else None,
        source="merge",
        runner="+".join(dict.fromkeys(labels)),
        merged_from=[
            MergedInput(
                label=label,
                file=name,
                started=r.meta.started,
                finished=r.meta.finished,
                runner=r.meta.runner,
                source=r.meta.source,
                cluster_version=r.meta.cluster_version,
                config_digest=r.meta.config_digest,
                cells=len(r.cells),
                prefixed=label in clashing,
            )
            for label, (name, r) in zip(labels, inputs, strict=True)
        ],
    )


def _joined(values: Iterable[str | None]) -> str | None:
    unique = list(dict.fromkeys(v for v in values if v))
    return ", ".join(unique) if unique else None
