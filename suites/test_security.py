"""Security probes against each target and path: client-supplied impersonation and front-proxy headers
never elevate; missing and bad tokens are refused on plain and upgrade requests; a get-only user cannot
exec over SPDY or a WebSocket GET.

    pytest suites/test_security.py --target=jetstack
"""

from __future__ import annotations

import pytest

from conformance.cells import Cell
from conformance.plugin import record
from conformance.suite_session import session_for


@pytest.mark.security
def test_security(conformance_security_cell: Cell, request: pytest.FixtureRequest) -> None:
    record(request, session_for(request.config).result(conformance_security_cell))
