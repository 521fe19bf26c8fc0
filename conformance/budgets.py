"""Timing budgets from the harness config's optional `budgets:` section, judged per cell.

    budgets:
      exec: {total_ms: 2000}
      port-forward: {first_byte_ms: 1000, connect_ms: 200}

Keys are operations (`*` for every operation); limits are `connect_ms`, `tls_ms`, `upgrade_ms`,
`first_byte_ms`, `total_ms`. A worked cell whose measured timing exceeds a limit becomes `too-slow`, with the
measured value and the budget; a timing the client cannot see (kubectl and python see only the total) is
not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.errors import ConfigError
from conformance.model import Timings

LIMITS = {"connect_ms": "connect_s", "tls_ms": "tls_s", "upgrade_ms": "upgrade_s", "first_byte_ms": "first_byte_s",
          "total_ms": "total_s"}


@dataclass(frozen=True)
class Budgets:
    per_operation: Mapping[str, Mapping[str, float]]

    @classmethod
    def parse(cls, raw: Any, where: str = "budgets") -> Budgets:
        if raw is None:
            return cls({})
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a mapping of operation -> limits, got {type(raw).__name__}")
        parsed: dict[str, dict[str, float]] = {}
        for op, limits in raw.items():
            if not isinstance(limits, Mapping):
                raise ConfigError(f"{where}.{op}: expected a mapping like {{total_ms: 2000}}")
            parsed[str(op)] = {}
            for key, value in limits.items():
                if key not in LIMITS:
                    raise ConfigError(f"{where}.{op}.{key}: unknown limit; known: {', '.join(LIMITS)}")
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"{where}.{op}.{key}: expected a positive number of milliseconds, got {value!r}")
                parsed[str(op)][key] = float(value)
        return cls(parsed)

    def exceeded(self, operation: str, timings: Timings) -> str | None:
        """The first limit `timings` exceed, as "measured vs budget" text, or None."""
        for op in (operation, "*"):
            for key, limit_ms in (self.per_operation.get(op) or {}).items():
                measured = getattr(timings, LIMITS[key])
                if measured is not None and measured * 1000 > limit_ms:
                    return f"{key.removesuffix('_ms')} took {measured * 1000:.0f} ms, budget {limit_ms:.0f} ms ({op})"
        return None
