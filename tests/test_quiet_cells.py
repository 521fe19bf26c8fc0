"""watch-quiet cells: only for targets that declare a quiet-stream cut (no lab needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.adapters.native import NativeAdapter
from conformance.cells import enumerate_cells
from conformance.config import parse_config
from conformance.errors import ConfigError

CONFIG = Path("/etc/harness.yaml")


def _data(**openunison: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "targets": {
            "direct": {"server": "https://127.0.0.1:1"},
            "openunison": {"server": "https://127.0.0.1:2", **openunison},
        },
        "users": {"alice": {"credential": {"type": "env", "name": "NOPE"}}},
        "workload": {"namespace": "probes", "pods": ["probe-0"]},
    }


def test_only_a_target_declaring_a_cut_gets_quiet_watch_cells() -> None:
    config = parse_config(_data(quiet_stream_cut_s=10), CONFIG)
    assert config.targets["openunison"].quiet_stream_cut_s == 10.0
    cells = enumerate_cells(
        config,
        {"native": NativeAdapter()},
        targets=["direct", "openunison"],
        paths=["none"],
        protocols=None,
        operations=["watch", "watch-quiet"],
        user="alice",
    )
    keys = {(c.key.target, c.key.operation) for c in cells}
    assert keys == {("direct", "watch"), ("openunison", "watch"), ("openunison", "watch-quiet")}


@pytest.mark.parametrize("bad", [0, -1, "ten", True])
def test_a_bad_quiet_cut_names_the_key(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"targets\.openunison\.quiet_stream_cut_s"):
        parse_config(_data(quiet_stream_cut_s=bad), CONFIG)
