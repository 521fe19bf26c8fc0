"""Issue 9, item 10: with strict expectations (every cell must pass), each fault a hop injects turns the
default suites red with the error class that names it, and the same hop without a fault stays green.

Each test puts a fault hop in front of a lab target (`conformance lab fault`, through the `fault_path`
fixture), runs `pytest suites/...` on that path in a subprocess, as a user would, and reads the results
file. Selections are small (a few operations and protocols) to keep the run short; N for the byte faults is
64 KiB, far below what the probes move (cp 1 MiB, port-forward 256 KiB; 16 MiB after issue 9 item 6).

Some classes come from work merged separately (issue 9): `truncated`, `idle-cut`, `eof-lost`, `too-slow`,
exact identity (extra groups, uid), the idle cells and `budgets:`. Until then those tests fail here: they
state what the harness must do, not what it does today.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cells import OPERATIONS
from conformance.lab import lab
from tests.conftest import RunningLab

pytestmark = [pytest.mark.lab, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT_S = 600
BYTES = 65536
IDLE_CUT_S = 3
IDLE_SILENCE_S = 8  # the idle cells' silence: past the hop's cut, far below every other limit
LATENCY_MS = 1500
# A budget the clean hop meets by far and the slow hop cannot (its 101 alone comes 1.5 s late). The format
# is conformance.budgets: per operation, per cell.
BUDGETS = {"exec": {"total_ms": 1200}}
IDLE_OPS = [op for op in ("port-forward-idle", "exec-idle") if op in OPERATIONS]


@dataclass(frozen=True)
class Case:
    fault: str
    target: str
    suite: str
    ops: str
    protocols: str
    expected: frozenset[str]
    env: dict[str, str] = field(default_factory=dict)
    budgets: bool = False


STREAMING = "suites/test_streaming.py"
SECURITY = "suites/test_security.py"
CASES = {
    "corrupt": Case(
        f"corrupt:{BYTES}",
        "jetstack",
        STREAMING,
        "cp-download,port-forward",
        "spdy,ws-v5,ws-tunnel",
        frozenset({"data-mismatch"}),
    ),
    "corrupt-c2s": Case(
        f"corrupt-c2s:{BYTES}",
        "jetstack",
        STREAMING,
        "cp-upload,port-forward",
        "spdy,ws-v5,ws-tunnel",
        frozenset({"data-mismatch"}),
    ),
    "truncate": Case(
        f"truncate:{BYTES}",
        "jetstack",
        STREAMING,
        "cp-download,port-forward",
        "spdy,ws-v5,ws-tunnel",
        # A stream that ends with fewer bytes is `truncated` ("N of M bytes"); where the hop's clean TCP close
        # also skips the WebSocket close frame, the client rightly sees an abnormal closure: `reset`.
        frozenset({"truncated", "reset"}),
    ),
    "idle-cut": Case(
        f"idle-cut:{IDLE_CUT_S}",
        "jetstack",
        STREAMING,
        ",".join(IDLE_OPS),
        "spdy,ws-v5,ws-tunnel",
        frozenset({"idle-cut"}),
        env={"CONFORMANCE_IDLE_S": str(IDLE_SILENCE_S)},
    ),
    "swap-credential": Case(
        "swap-credential:bob", "jetstack", STREAMING, "whoami", "http", frozenset({"wrong-identity"})
    ),
    "extra-group": Case(
        "extra-group:system:masters",
        "jetstack",
        STREAMING,
        "exec,whoami",
        "spdy,ws-v5,http",
        frozenset({"wrong-identity"}),
    ),
    "swallow-eof": Case("swallow-eof", "jetstack", STREAMING, "exec-stdin", "spdy,ws-v5", frozenset({"eof-lost"})),
    "latency": Case(
        f"latency:{LATENCY_MS}", "jetstack", STREAMING, "exec", "spdy,ws-v5", frozenset({"too-slow"}), budgets=True
    ),
}


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Expectations with no rules: every cell must pass (no lab profile, so a fault path inherits nothing)."""
    path = tmp_path_factory.mktemp("expectations") / "strict.yaml"
    path.write_text("version: 1\nrules: []\n")
    return path


def _config_with_budgets(tmp: Path) -> Path:
    config = yaml.safe_load(lab.harness_config_path().read_text())
    config["budgets"] = BUDGETS
    path = tmp / "harness-budgets.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_suite(
    case: Case, path: str, strict: Path, tmp: Path, *, user: str | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    results = tmp / f"results-{path}.json"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        case.suite,
        f"--target={case.target}",
        f"--path={path}",
        f"--op={case.ops}",
        f"--protocol={case.protocols}",
        "--client=native",
        f"--expectations={strict}",
        f"--results={results}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    if user:
        argv.append(f"--user={user}")
    if case.budgets:
        argv.append(f"--config={_config_with_budgets(tmp)}")
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, **case.env},
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        check=False,
    )
    cells = json.loads(results.read_text())["cells"] if results.is_file() else []
    return proc.returncode, cells, proc.stdout[-3000:] + proc.stderr[-2000:]


def _summary(cells: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(c["key"]["operation"] + "/" + c["key"]["protocol"], c["outcome"], c["error_class"]) for c in cells]


@pytest.mark.parametrize("name", list(CASES))
def test_a_fault_turns_the_suite_red_with_its_class(
    running_lab: RunningLab, fault_path: Any, strict: Path, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    path = fault_path(case.target, case.fault, f"t-{name}")
    rc, cells, output = run_suite(case, path, strict, tmp_path)
    assert cells, f"no cells ran for {case.ops} on {path}:\n{output}"
    assert rc == 1, f"the run stayed green through {case.fault}: {_summary(cells)}"
    wrong = [s for s in _summary(cells) if s[1] != "fail" or s[2] not in case.expected]
    assert not wrong, f"{case.fault}: every cell must fail as {sorted(case.expected)}; these did not: {wrong}"


@pytest.mark.parametrize("name", list(CASES))
def test_the_same_hop_without_a_fault_stays_green(
    running_lab: RunningLab, fault_path: Any, strict: Path, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    path = fault_path(case.target, "none", f"c-{name}")
    rc, cells, output = run_suite(case, path, strict, tmp_path)
    assert cells, f"no cells ran for {case.ops} on {path}:\n{output}"
    assert rc == 0 and all(c["outcome"] == "pass" for c in cells), (_summary(cells), output)


def test_anonymous_as_a_user_breaks_the_missing_token_guard(
    running_lab: RunningLab, fault_path: Any, strict: Path, tmp_path: Path
) -> None:
    case = Case("anonymous-as:alice", "jetstack", SECURITY, "all", "all", frozenset())
    rc, cells, output = run_suite(case, fault_path("jetstack", case.fault, "t-anon"), strict, tmp_path)
    missing = [c for c in cells if c["key"]["operation"] == "token-missing"]
    assert len(missing) == 3, output  # http, spdy, ws
    assert rc == 1
    for cell in missing:
        assert cell["outcome"] == "fail", cell["message"]
        assert cell["error_class"] in ("accepted-bad-credential", "wrong-identity"), cell["message"]
        assert "refused" not in cell["message"]


@pytest.fixture(scope="module")
def impersonation_run(
    running_lab: RunningLab, strict: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, list[dict[str, Any]], str]:
    """The security suite through one pass-impersonation hop in front of the API server, run once."""
    from conformance.lab import fault_paths

    case = Case("pass-impersonation", "direct", SECURITY, "all", "all", frozenset())
    lab.add_fault("direct", case.fault, "t-imp", emit=lambda _line: None)
    try:
        return run_suite(case, fault_paths.path_name("t-imp"), strict, tmp_path_factory.mktemp("imp"))
    finally:
        lab.remove_fault("t-imp", emit=lambda _line: None)


@pytest.mark.parametrize("operations", [("impersonate-user", "impersonate-user-odd-case"), ("impersonate-group",)])
def test_passed_through_impersonation_headers_elevate(
    impersonation_run: tuple[int, list[dict[str, Any]], str], operations: tuple[str, ...]
) -> None:
    rc, cells, output = impersonation_run
    assert rc == 1, output
    chosen = [c for c in cells if c["key"]["operation"] in operations]
    assert len(chosen) == 3 * len(operations), output
    assert {(c["outcome"], c["error_class"]) for c in chosen} == {("fail", "elevated")}, _summary(chosen)


def test_a_passed_through_uid_never_passes(impersonation_run: tuple[int, list[dict[str, Any]], str]) -> None:
    """The proxy identity may impersonate uids, so the API server ran the request with uid 0: a cell that
    reports "not elevated" asserted it about the user name alone."""
    rc, cells, output = impersonation_run
    uid = [c for c in cells if c["key"]["operation"] == "impersonate-uid"]
    assert rc == 1 and len(uid) == 3, output
    assert all(c["outcome"] == "fail" for c in uid), _summary(uid)


@pytest.mark.parametrize("target", ["direct", "jetstack"])
def test_the_security_suite_through_a_clean_hop_stays_green(
    running_lab: RunningLab, fault_path: Any, strict: Path, tmp_path: Path, target: str
) -> None:
    case = Case("none", target, SECURITY, "all", "all", frozenset())
    # The lab profile: some guards are never reached on these targets whatever the path (the API server's 400
    # for impersonation without a user), and the profile declares them by target, fault paths included.
    rc, cells, output = run_suite(case, fault_path(target, "none", f"c-sec-{target}"), Path("lab"), tmp_path)
    assert cells and rc == 0, (_summary([c for c in cells if c["outcome"] != "pass"]), output)


def test_lab_status_shows_the_hop_and_remove_stops_it(running_lab: RunningLab, fault_path: Any) -> None:
    path = fault_path("openunison", "latency:5", "t-status")
    rows = {r.name: r for r in lab.status()}
    assert rows[path].alive and rows[path].healthy, rows[path]
    config = yaml.safe_load(lab.harness_config_path().read_text())
    assert config["targets"]["openunison"]["via"][path]["available"] is True
    assert config["paths"][path]["fault"] == "latency:5"
    pid = rows[path].pid
    assert lab.remove_fault("t-status", emit=lambda _line: None)
    assert path not in {r.name for r in lab.status()}
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    config = yaml.safe_load(lab.harness_config_path().read_text())
    assert path not in config["paths"] and path not in config["targets"]["openunison"]["via"]
