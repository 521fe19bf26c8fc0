"""A copy of the process environment that other threads cannot break.

pytest sets and deletes PYTEST_CURRENT_TEST in the main thread while cells run in the prefetch thread;
iterating `os.environ` (`dict(os.environ)`, `.items()`, `urllib.request.getproxies()`) then raises KeyError
for a key deleted between listing and reading (seen: a python-client cell failed `KeyError:
'PYTEST_CURRENT_TEST'` inside the kubernetes client's proxy lookup).
"""

from __future__ import annotations

import os


def environ_snapshot() -> dict[str, str]:
    """os.environ as a dict, read key by key: a key deleted meanwhile is left out, never a KeyError."""
    return {k: v for k in list(os.environ) if (v := os.environ.get(k)) is not None}
