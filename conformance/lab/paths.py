"""Where the lab keeps things: a build cache and a state directory, both outside the repository.

The cache is keyed by component and version so that a rebuild of the same version is a no-op and two
versions can live side by side. Override with CONFORMANCE_CACHE_DIR / CONFORMANCE_LAB_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("CONFORMANCE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "k8s-streaming-conformance"


def lab_dir() -> Path:
    env = os.environ.get("CONFORMANCE_LAB_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "k8s-streaming-conformance" / "lab"


def assets_dir() -> Path:
    return Path(__file__).parent / "assets"
