"""Fixtures for the report tests; the builders themselves are in builders.py."""

from __future__ import annotations

import pytest

from conformance.model import Results
from reports.sample import make_results
from tests.reports.builders import CellFactory, build_cell, build_small_results


@pytest.fixture
def cell() -> CellFactory:
    return build_cell


@pytest.fixture
def small_results() -> Results:
    return build_small_results()


@pytest.fixture
def sample() -> Results:
    return make_results(150, seed=7)
