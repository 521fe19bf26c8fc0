"""The streaming matrix: one test per cell (target x path x protocol x operation x client).

    pytest suites/ --target=jetstack
"""

from __future__ import annotations

import pytest

from conformance.cells import Cell
from conformance.plugin import record
from conformance.suite_session import session_for


@pytest.mark.conformance_cell
def test_cell(conformance_cell: Cell, request: pytest.FixtureRequest) -> None:
    record(request, session_for(request.config).result(conformance_cell))
