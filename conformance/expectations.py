"""Expectations: which cells should work, and which should fail with which error class.

A file (or a built-in profile) is a list of rules; each rule matches cells by a glob per coordinate
(target, path, protocol, operation, client) or by a glob over the cell id, and declares `outcome: pass` or
`outcome: fail` with an `error_class`. Rules are read in order and the **last** matching rule wins, so a
user's file can refine a profile by appending. A cell no rule matches is expected to pass.

    version: 1
    include: [lab]                      # optional: built-in profiles first
    rules:
      - match: {path: alb, protocol: spdy}
        outcome: fail
        error_class: upgrade-required
        reason: AWS ALB forwards the request without the SPDY upgrade (FIELD.md)
      - match: "jetstack-nlb-*"         # glob over the cell id
        outcome: pass

An `as-shipped` cell (kubectl with its own defaults) is judged as the cell of the protocol that version tries
first (`for_cell(key, shipped=...)`), so "the ALB strips SPDY" covers kubectl 1.24-1.29 exec as shipped
without naming versions; where that protocol is declared to be refused at the upgrade and the version falls
back, the fallback protocol's expectation applies. Rules that name `protocol: as-shipped` (or a cell-id
glob containing it) apply last, to refine.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from conformance.classify import status_of
from conformance.errors import ConfigError
from conformance.model import CellKey, ErrorClass, Expectation, Observation, Outcome

PROFILE_DIR = Path(__file__).parent / "profiles"
COORDINATES = ("target", "path", "protocol", "operation", "client")
AS_SHIPPED = "as-shipped"
# The failures kubectl falls back to SPDY on: its WebSocket upgrade answered with anything but 101, or a
# protocol mismatch, or an HTTPS proxy error (client-go's fallback: IsUpgradeFailure, IsHTTPSProxyError).
FALLBACK_ON = frozenset(
    {
        ErrorClass.UPGRADE_REQUIRED,
        ErrorClass.UPGRADE_REFUSED,
        ErrorClass.UNAUTHORIZED,
        ErrorClass.FORBIDDEN,
        ErrorClass.NOT_FOUND,
        ErrorClass.HOP_REFUSED,
        ErrorClass.PROXY_ERROR,
        ErrorClass.SERVER_ERROR,
        ErrorClass.PROTOCOL_MISMATCH,
    }
)


@dataclass(frozen=True)
class Rule:
    match: dict[str, str] | str
    expectation: Expectation

    def matches(self, key: CellKey) -> bool:
        if isinstance(self.match, str):
            return fnmatch.fnmatchcase(key.id, self.match)
        return all(fnmatch.fnmatchcase(getattr(key, c), pattern) for c, pattern in self.match.items())


def _parse_rule(data: Any, where: str) -> Rule:
    if not isinstance(data, dict) or "match" not in data:
        raise ConfigError(f"{where}: a rule must be a mapping with `match` and `outcome`")
    match = data["match"]
    if isinstance(match, dict):
        unknown = set(match) - set(COORDINATES)
        if unknown:
            raise ConfigError(f"{where}.match: unknown coordinate(s) {sorted(unknown)}; use {', '.join(COORDINATES)}")
        match = {k: str(v) for k, v in match.items()}
    elif not isinstance(match, str):
        raise ConfigError(f"{where}.match must be a glob string or a mapping of coordinates")
    outcome = data.get("outcome", "pass")
    if outcome not in ("pass", "fail"):
        raise ConfigError(f"{where}.outcome must be `pass` or `fail`, got {outcome!r}")
    unknown_keys = set(data) - {"match", "outcome", "error_class", "status", "refused_by", "reason"}
    if unknown_keys:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown_keys)}")
    error_class = data.get("error_class")
    if outcome == "fail" and error_class is None:
        raise ConfigError(
            f"{where}: a rule with `outcome: fail` must name the `error_class` that must occur (a failure of "
            "another class, wrong-identity included, is then still a failure)"
        )
    if outcome == "pass" and any(data.get(k) is not None for k in ("error_class", "status", "refused_by")):
        raise ConfigError(f"{where}: error_class, status and refused_by belong to `outcome: fail` rules")
    if error_class is not None:
        try:
            cls = ErrorClass(error_class)
        except ValueError:
            known = ", ".join(e.value for e in ErrorClass)
            raise ConfigError(f"{where}.error_class {error_class!r} is not one of: {known}") from None
        if cls in (ErrorClass.NONE, ErrorClass.HARNESS):
            raise ConfigError(f"{where}.error_class {error_class!r} cannot be declared")
    status = data.get("status")
    if status is not None and not (isinstance(status, int) and 100 <= status <= 599):
        raise ConfigError(f"{where}.status must be an HTTP status code, got {status!r}")
    refused_by = data.get("refused_by")
    if refused_by is not None and not isinstance(refused_by, str):
        raise ConfigError(f"{where}.refused_by must be a hop: api-server, proxy:<target>, path:<path> or unknown")
    return Rule(
        match,
        Expectation(
            outcome=outcome,
            error_class=error_class,
            status=status,
            refused_by=refused_by,
            reason=data.get("reason"),
            source=where,
        ),
    )


class Expectations:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, spec: str | None) -> Expectations:
        """`spec` is a file path, a built-in profile name, or None (no rules: everything should pass)."""
        if not spec:
            return cls([])
        rules: list[Rule] = []
        for part in spec.split(","):
            rules += _load_source(part.strip(), set())
        return cls(rules)

    def for_cell(self, key: CellKey, shipped: tuple[str, ...] = ()) -> Expectation:
        """The last matching rule's expectation. For an as-shipped cell, `shipped` is what the client tries,
        in order (e.g. ("ws", "spdy"): WebSocket, then SPDY on an upgrade failure)."""
        if key.protocol == AS_SHIPPED and shipped:
            return self._as_shipped(key, shipped)
        chosen = Expectation(outcome="pass", source="default")
        for rule in self.rules:
            if rule.matches(key):
                chosen = rule.expectation
        return chosen

    def _as_shipped(self, key: CellKey, shipped: tuple[str, ...]) -> Expectation:
        spoken = shipped[0]
        chosen = self.for_cell(replace(key, protocol=spoken))
        for fallback in shipped[1:]:
            if chosen.outcome != "fail" or ErrorClass(chosen.error_class or "none") not in FALLBACK_ON:
                break
            spoken = f"{spoken}, then {fallback}"
            chosen = self.for_cell(replace(key, protocol=fallback))
        chosen = replace(chosen, reason=f"as shipped, {key.client} tries {spoken}: {chosen.reason or 'works'}")
        for rule in self.rules:
            if _names_as_shipped(rule) and rule.matches(key):
                chosen = rule.expectation
        return chosen


def _names_as_shipped(rule: Rule) -> bool:
    if isinstance(rule.match, str):
        return AS_SHIPPED in rule.match
    return rule.match.get("protocol") == AS_SHIPPED


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _load_source(spec: str, seen: set[str]) -> list[Rule]:
    path = Path(spec)
    if not path.is_file():
        path = PROFILE_DIR / f"{spec}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"expectations {spec!r}: neither a file nor a built-in profile ({', '.join(builtin_profiles())})"
            )
    if str(path) in seen:
        raise ConfigError(f"{path}: include cycle")
    seen = seen | {str(path)}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ConfigError(f"{path}: expected a mapping with `version: 1`")
    rules: list[Rule] = []
    for inc in data.get("include") or []:
        rules += _load_source(str(inc), seen)
    for i, raw in enumerate(data.get("rules") or []):
        rules.append(_parse_rule(raw, f"{path}:rules[{i}]"))
    return rules


def judge(expectation: Expectation, observation: Observation) -> tuple[Outcome, str]:
    """Observation + expectation -> outcome and a one-line reason.

    A declared failure matches only its own class (and, where declared, the status answered and the hop
    that refused): "the ALB strips SPDY" never absorbs a 401 or a wrong identity.
    """
    if observation.skipped:
        return Outcome.SKIP, observation.message
    if observation.error_class is ErrorClass.HARNESS:
        return Outcome.ERROR, observation.message
    worked = observation.error_class is ErrorClass.NONE
    if expectation.outcome == "pass":
        if worked:
            return Outcome.PASS, observation.message or "worked"
        return Outcome.FAIL, f"{observation.error_class.value}: {observation.message}"
    if worked:
        return Outcome.UNEXPECTED_PASS, f"declared to fail with {expectation.error_class}, but worked"
    got = observation.error_class.value
    if expectation.error_class != got:
        return Outcome.FAIL, f"expected {expectation.error_class}, got {got}: {observation.message}"
    ev = observation.evidence
    if expectation.status is not None and status_of(ev) != expectation.status:
        return Outcome.FAIL, (
            f"{got} as declared, but answered {ev.status_line or 'no status'} where {expectation.status} is declared: "
            f"{observation.message}"
        )
    if expectation.refused_by is not None and ev.refused_by != expectation.refused_by:
        return Outcome.FAIL, (
            f"{got} as declared, but refused by {ev.refused_by or 'nobody'} where {expectation.refused_by} is "
            f"declared: {observation.message}"
        )
    by = f" by {ev.refused_by}" if ev.refused_by else ""
    return Outcome.EXPECTED_FAIL, f"{got}{by} as declared"
