"""The matrix every grid-shaped report draws: rows target/path, columns protocol x operation, clients inside.

Axes keep the order in which values first appear in the results (the order the suite collected them,
which follows the user's config), so a report reads like the config that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.model import CellResult, Outcome, Results

# pytest's letters, so the grid reads at a glance for anyone who has run pytest.
SYMBOLS: dict[Outcome, str] = {
    Outcome.PASS: ".",
    Outcome.EXPECTED_FAIL: "x",
    Outcome.UNEXPECTED_PASS: "X",
    Outcome.FAIL: "F",
    Outcome.ERROR: "E",
    Outcome.SKIP: "s",
}
ABSENT = "-"  # no such cell in this run
MEANINGS: dict[Outcome, str] = {
    Outcome.PASS: "worked, as expected",
    Outcome.EXPECTED_FAIL: "failed with the declared error class",
    Outcome.UNEXPECTED_PASS: "declared to fail, but worked",
    Outcome.FAIL: "failed unexpectedly",
    Outcome.ERROR: "the harness broke",
    Outcome.SKIP: "not run",
}
# Worst first: the order in which reports list cells that need a look.
SEVERITY: tuple[Outcome, ...] = (
    Outcome.FAIL,
    Outcome.ERROR,
    Outcome.UNEXPECTED_PASS,
    Outcome.EXPECTED_FAIL,
    Outcome.SKIP,
    Outcome.PASS,
)

Column = tuple[str, str]  # (protocol, operation)


@dataclass(slots=True)
class Matrix:
    targets: list[str] = field(default_factory=list)
    paths: dict[str, list[str]] = field(default_factory=dict)  # per target
    columns: list[Column] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    _cells: dict[tuple[str, str, str, str, str], CellResult] = field(default_factory=dict)

    def slot(self, target: str, path: str, column: Column) -> list[CellResult | None]:
        """The cells at one grid position, one per client in `clients` order (None where absent)."""
        protocol, operation = column
        return [self._cells.get((target, path, protocol, operation, c)) for c in self.clients]

    def cell(self, target: str, path: str, protocol: str, operation: str, client: str) -> CellResult | None:
        return self._cells.get((target, path, protocol, operation, client))

    def client_columns(self) -> list[tuple[str, str, str]]:
        """(protocol, operation, client) in grid order, only the combinations some cell has."""
        present = {(k[2], k[3], k[4]) for k in self._cells}
        return [(p, o, c) for p, o in self.columns for c in self.clients if (p, o, c) in present]

    def protocols(self) -> list[tuple[str, list[str]]]:
        """Columns grouped by protocol: [(protocol, [operation, ...]), ...]."""
        groups: dict[str, list[str]] = {}
        for protocol, operation in self.columns:
            groups.setdefault(protocol, []).append(operation)
        return list(groups.items())


def build_matrix(results: Results) -> Matrix:
    m = Matrix()
    protocols: dict[str, None] = {}  # dicts as ordered sets
    operations: dict[str, None] = {}
    present: set[Column] = set()
    clients: dict[str, None] = {}
    for cell in results.cells:
        k = cell.key
        if k.target not in m.paths:
            m.targets.append(k.target)
            m.paths[k.target] = []
        if k.path not in m.paths[k.target]:
            m.paths[k.target].append(k.path)
        protocols.setdefault(k.protocol)
        operations.setdefault(k.operation)
        clients.setdefault(k.client)
        present.add((k.protocol, k.operation))
        m._cells[(k.target, k.path, k.protocol, k.operation, k.client)] = cell
    # One operation order for every protocol, so that the same operation sits at the same place in each group.
    m.columns = [(p, o) for p in protocols for o in operations if (p, o) in present]
    m.clients = list(clients)
    return m


def symbol(cell: CellResult | None) -> str:
    return ABSENT if cell is None else SYMBOLS[cell.outcome]


def by_severity(cells: list[CellResult], outcomes: tuple[Outcome, ...] = SEVERITY) -> list[CellResult]:
    """The cells whose outcome is in `outcomes`, worst first, document order within an outcome."""
    rank = {o: i for i, o in enumerate(outcomes)}
    return sorted((c for c in cells if c.outcome in rank), key=lambda c: rank[c.outcome])


def unexpected(results: Results) -> list[CellResult]:
    """Cells that gate a run (fail, error, unexpected-pass), worst first."""
    return by_severity(results.cells, tuple(o for o in SEVERITY if o.gates))


def summary_counts(results: Results) -> str:
    counts = results.counts()
    return "  ".join(f"{counts[o.value]} {o.value}" for o in Outcome)


def summary_line(results: Results) -> str:
    """Cilium-style: one line that says everything."""
    total = len(results.cells)
    bad = sum(1 for c in results.cells if c.outcome.gates)
    if bad:
        return f"FAILED  {bad}/{total} cells unexpected | {summary_counts(results)}"
    return f"OK  all {total} cells as expected | {summary_counts(results)}"
