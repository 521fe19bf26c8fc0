"""The pytest plugin: `pytest suites/ --target=jetstack` runs the probe matrix and gates on expectations.

Registered through the `pytest11` entry point. Each setting is a CLI option, an environment variable and an
ini value with one help string; precedence is CLI > environment > ini > default, resolved once in
`pytest_configure` into a `Settings` object under a StashKey; the report header shows the effective values.

Per-cell results ride on each test report's `user_properties` (JSON), so with pytest-xdist they reach the
controller, which alone writes the results file and prints the summary (Cilium-style: counts by outcome,
then one line per unexpected cell with its evidence).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conformance import __version__
from conformance.errors import ConformanceError
from conformance.model import CellResult, Outcome, Results, RunMetadata

if TYPE_CHECKING:
    from conformance.cells import Cell

RESULT_PROPERTY = "conformance_cell"
# The test arguments the plugin parametrizes with cells (suites/test_streaming.py, suites/test_security.py).
MATRIX_ARG = "conformance_cell"
SECURITY_ARG = "conformance_security_cell"


@dataclass(frozen=True)
class Option:
    name: str
    env: str
    help: str
    default: str | None = None
    flag: bool = False  # takes no value on the command line; the environment and ini say true/false


OPTIONS = (
    Option("target", "CONFORMANCE_TARGET", "targets to probe: names from the config, comma-separated, or 'all'", "all"),
    Option("path", "CONFORMANCE_PATH", "network paths: names from the config, comma-separated, or 'all'", "all"),
    Option(
        "protocol",
        "CONFORMANCE_PROTOCOL",
        "protocols (spdy, ws-v5, ws-tunnel, as-shipped, ...), comma-separated, or 'all'",
        "all",
    ),
    Option("op", "CONFORMANCE_OP", "operations (exec, cp-upload, port-forward, ...), comma-separated, or 'all'", "all"),
    Option(
        "client",
        "CONFORMANCE_CLIENT",
        "clients: native, python, kubectl-1.NN, kubectl-1.AA..1.BB, kubectl (every version, 1.24 to 1.37; "
        "fetched on demand), comma-separated, or 'all'",
        "native,kubectl,python",
    ),
    Option(
        "kubectl-modes",
        "CONFORMANCE_KUBECTL_MODES",
        "kubectl modes: as-shipped (the version's own defaults, protocol 'as-shipped'; exec, cp, attach, "
        "port-forward) and forced (spdy/ws/ws-tunnel through the KUBECTL_* gates), each [=1.NN[..1.MM]]",
        "as-shipped,forced=1.35",
    ),
    Option("user", "CONFORMANCE_USER", "the config user whose identity the matrix runs as", "alice"),
    Option("config", "CONFORMANCE_CONFIG", "harness config file (default: the running local lab's)"),
    Option("kubeconfig", "CONFORMANCE_KUBECONFIG",
           "probe the cluster of this kubeconfig instead of a config file, as its user (any kubeconfig credential)"),
    Option("context", "CONFORMANCE_CONTEXT",
           "kubeconfig context(s) with --kubeconfig: NAME, a,b (each a target) or all (default: the current one)"),
    Option(
        "pod",
        "CONFORMANCE_POD",
        "run the cells in this existing pod (the workload's namespace) instead of creating one: it needs sh, cat "
        "and tar, and an echo listener on the workload port for port-forward cells (else they are skipped)",
    ),
    Option(
        "no-preflight",
        "CONFORMANCE_NO_PREFLIGHT",
        "do not check endpoints, identity, rights and the workload before the matrix (docs/preflight.md)",
        flag=True,
    ),
    Option(
        "list-expected",
        "CONFORMANCE_LIST_EXPECTED",
        "list every expected failure and skip on the terminal (by default they are only counted)",
        flag=True,
    ),
    Option(
        "expectations",
        "CONFORMANCE_EXPECTATIONS",
        "expectations file or built-in profile (default: 'lab' for the local lab, 'cluster' with --kubeconfig)",
    ),
    Option("probe-timeout", "CONFORMANCE_PROBE_TIMEOUT", "seconds each probe may take", "30"),
    Option(
        "concurrency",
        "CONFORMANCE_CONCURRENCY",
        "cells run at once (cells mostly wait on the network; under pytest-xdist -n N, in each worker)",
        "12",
    ),
    Option(
        "strict", "CONFORMANCE_STRICT", "every skipped cell is a failure (a gate that must run everything)", flag=True
    ),
    Option(
        "allow-unavailable",
        "CONFORMANCE_ALLOW_UNAVAILABLE",
        "skip cells of targets or paths the config marks unavailable instead of failing them (path-unavailable)",
        flag=True,
    ),
    Option(
        "payload-mib",
        "CONFORMANCE_PAYLOAD_MIB",
        "MiB moved by cp (each way) and port-forward (one connection; the concurrent case moves as much again)",
        "16",
    ),
    Option(
        "idle-s",
        "CONFORMANCE_IDLE_S",
        "seconds an idle cell stays silent where the path declares no idle timeout (declared: timeout + 5 s)",
        "65",
    ),
    Option(
        "client-race-retries",
        "CONFORMANCE_CLIENT_RACE_RETRIES",
        "times a cell is asked again when it failed while its client logged a known race of its own (kubectl "
        "1.30-1.33: kubernetes/kubernetes#131189); earlier attempts stay in the evidence; 0: never",
        "2",
    ),
    Option("no-idle", "CONFORMANCE_NO_IDLE", "leave out the idle cells (port-forward-idle, exec-idle)", flag=True),
    Option("results", "CONFORMANCE_RESULTS", "write the results JSON here"),
    Option("baseline", "CONFORMANCE_BASELINE", "compare against this earlier results file and print the diff"),
)


@dataclass
class Settings:
    values: dict[str, str | None]
    sources: dict[str, str]
    results: list[CellResult] = field(default_factory=list)
    started: str = ""

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def flag(self, name: str) -> bool:
        return self.values.get(name) == "true"

    def selection(self, name: str) -> list[str] | None:
        """A comma-separated option as a list; None means 'all'."""
        raw = self.values.get(name) or "all"
        items = [x.strip() for x in raw.split(",") if x.strip()]
        return None if not items or "all" in items else items


SETTINGS = pytest.StashKey[Settings]()
# pytest already has `--strict` ("be strict"); a strict run of ours also fails every skipped cell.
PYTEST_OWNED = {"strict": "strict"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "streaming conformance (exec, cp, attach, port-forward)")
    for opt in OPTIONS:
        dest = "conformance_" + opt.name.replace("-", "_")
        if opt.name in PYTEST_OWNED:
            pass  # pytest's own option of that name also turns this on (pytest_configure reads it)
        elif opt.flag:
            group.addoption(
                f"--{opt.name}", dest=dest, action="store_const", const="true", default=None,
                help=f"{opt.help} [env {opt.env}=true; ini {dest}]",
            )
        else:
            group.addoption(
                f"--{opt.name}",
                dest=dest,
                default=None,
                help=f"{opt.help} [env {opt.env}; ini {dest}; default {opt.default!r}]",
            )
        parser.addini(dest, help=opt.help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance_cell: a cell of the streaming matrix")
    config.addinivalue_line("markers", "security: a security probe (impersonation and authentication)")
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        dest = "conformance_" + opt.name.replace("-", "_")
        if opt.name in PYTEST_OWNED:
            cli = "true" if config.getoption(PYTEST_OWNED[opt.name], False) else None
        else:
            cli = config.getoption(dest)
        env, ini = os.environ.get(opt.env), config.getini(dest)
        for value, source in ((cli, f"--{opt.name}"), (env, opt.env), (ini, f"ini {dest}"), (opt.default, "default")):
            if value:
                values[opt.name], sources[opt.name] = str(value), source
                break
        else:
            values[opt.name], sources[opt.name] = None, "unset"
    for opt in OPTIONS:
        if opt.flag and values.get(opt.name) is not None:
            raw_flag = str(values[opt.name]).strip().lower()
            if raw_flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise pytest.UsageError(f"{opt.name} from {sources[opt.name]} must be 1/true/yes/on or 0/false/no/off")
            values[opt.name] = "true" if raw_flag in ("1", "true", "yes", "on") else None
    for name, kind in (("probe-timeout", float), ("concurrency", int), ("payload-mib", float), ("idle-s", float)):
        raw = values.get(name) or "1"
        try:
            if kind(raw) <= 0:
                raise ValueError
        except ValueError:
            raise pytest.UsageError(
                f"{name} from {sources[name]} must be a positive {kind.__name__}, got {raw!r}"
            ) from None
    settings = Settings(values, sources, started=datetime.now(UTC).isoformat(timespec="seconds"))
    config.stash[SETTINGS] = settings
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(_ResultCollector(settings), "conformance-results")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    from conformance.xdist_groups import tell_worker

    tell_worker(node.config, node.workerinput)  # -n N: each worker prefetches its own share of cells


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from conformance.suite_session import is_cell_nodeid
    from conformance.xdist_groups import groups_wanted, make_scheduler

    if not groups_wanted(config):
        return None
    return make_scheduler(config, log, lambda nodeid: is_cell_nodeid(config, nodeid))


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS, None)
    if settings is None or not _uses_cells(config):
        return None
    shown = ", ".join(f"{k}={v} ({settings.sources[k]})" for k, v in settings.values.items() if v)
    return [f"conformance {__version__}: {shown}"]


def _uses_cells(config: pytest.Config) -> bool:
    return bool(getattr(config, "_conformance_used", False))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from conformance.suite_session import session_for

    # Distinctive argument names: a test elsewhere that happens to take a `cell` must not become a matrix.
    if MATRIX_ARG not in metafunc.fixturenames and SECURITY_ARG not in metafunc.fixturenames:
        return
    metafunc.config._conformance_used = True  # type: ignore[attr-defined]
    wanted: dict[str, list[Cell]] = {n: [] for n in (MATRIX_ARG, SECURITY_ARG) if n in metafunc.fixturenames}
    try:
        session = session_for(metafunc.config)
        if MATRIX_ARG in wanted:
            wanted[MATRIX_ARG] = session.cells()
        if SECURITY_ARG in wanted:
            wanted[SECURITY_ARG] = session.security_cells()
    except ConformanceError as exc:
        # Raised from inside a collector this would be a collection error; it is a usage error, raised once
        # collection is over (pytest_collection_modifyitems) so the run ends with pytest's usage exit code.
        metafunc.config._conformance_error = str(exc)  # type: ignore[attr-defined]
        wanted = {name: [] for name in wanted}
    for name, cells in wanted.items():
        metafunc.parametrize(name, cells, ids=[c.id for c in cells])


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    error = getattr(config, "_conformance_error", None)
    if error:
        raise pytest.UsageError(f"conformance: {error}")


def _cell_of(item: pytest.Item) -> Cell | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    cell: Cell | None = params.get(MATRIX_ARG) or params.get(SECURITY_ARG)
    return cell


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start running the collected cells ahead of their tests (conformance.prefetch); an xdist worker
    prepares its share instead (conformance.xdist_groups), run from its first cell on."""
    config = session.config
    if not _uses_cells(config) or config.option.collectonly:
        return
    from conformance.suite_session import ensure_workload, session_for
    from conformance.xdist_groups import deal, worker_count

    cells = [cell for item in session.items if (cell := _cell_of(item)) is not None]
    total = int(config.stash[SETTINGS].get("concurrency") or 1)
    if hasattr(config, "workerinput"):
        workers = worker_count(config)
        if workers is not None:  # the same deal as the controller's scheduler, over the same collection
            session_for(config).plan_worker_groups(cells, deal([c.id for c in cells], workers), total, workers)
        return
    _usage_errors(ensure_workload, config)  # before any cell runs, prefetched ones included
    session_for(config).start_prefetch(cells, total)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """The xdist controller never collects: it sets up the workload here, before it schedules any test."""
    from conformance.suite_session import ensure_workload

    config: pytest.Config = node.config
    if not config.option.collectonly:
        _usage_errors(ensure_workload, config, ids)


def _usage_errors(func: Any, *args: Any) -> None:
    try:
        func(*args)
    except ConformanceError as exc:
        raise pytest.UsageError(f"conformance: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    from conformance.suite_session import cleanup_workload, current_session

    suite = current_session(config)
    if suite is not None:
        suite.close_prefetchers()
    cleanup_workload(config)  # also after Ctrl-C: pytest unconfigures an interrupted run too


def record(request: pytest.FixtureRequest, result: CellResult) -> None:
    """Attach a cell's result to its test report, then pass, xfail, skip or fail the test by its outcome."""
    request.node.user_properties.append((RESULT_PROPERTY, json.dumps(_cell_dict(result))))
    if request.config.pluginmanager.hasplugin("allure_listener"):  # registered by allure-pytest for --alluredir
        from reports.allure import attach_cell  # labels + transcript + identity, only when --alluredir is on

        attach_cell(result)
    if result.outcome is Outcome.SKIP:
        pytest.skip(result.message)
    if result.outcome is Outcome.EXPECTED_FAIL:
        # Not pytest.xfail(): its report formats a full traceback with ast.parse, which on CPython 3.11.7
        # crashed a run ("AST constructor recursion depth mismatch", INTERNALERROR) while the prefetch thread
        # compiled an import. A marked xfail with a traceback-free failure reports the same, without parsing.
        reason = f"{result.error_class.value}: {result.message}"
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False, run=True))
        pytest.fail(reason, pytrace=False)
    if result.outcome.gates:
        ev = result.evidence
        lines = [f"{result.outcome.value}: {result.message}"]
        if ev.status_line:
            lines.append(f"  status: {ev.status_line}")
        if ev.error:
            lines.append(f"  error: {ev.error}")
        if ev.identity:
            lines.append(f"  identity: {ev.identity.user} {ev.identity.groups} (via {ev.identity.source})")
        pytest.fail("\n".join(lines), pytrace=False)


def _cell_dict(result: CellResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(result)


class _ResultCollector:
    """Collects per-cell results from test reports; registered on the controller (or a run without xdist)
    only, since workers send their reports to the controller."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and report.skipped):
            return
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                from conformance.model import _cell_from_dict

                self.settings.results.append(_cell_from_dict(json.loads(str(value))))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput") or SETTINGS not in config.stash:
        return
    settings = config.stash[SETTINGS]
    if not settings.results:
        return
    from conformance.suite_session import session_for

    try:
        suite = session_for(config)  # the xdist controller never collected, so it builds one here
    except ConformanceError:
        suite = None
    meta = RunMetadata(
        started=settings.started,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        harness_version=__version__,
        cluster_version=suite.cluster_version if suite else None,
        config_digest=suite.config.digest if suite else None,
        source=suite.config.source if suite else None,
        runner=platform.node(),
        expected_identity=suite.expected_identity_record if suite else None,
    )
    results = Results(meta=meta, cells=sorted(settings.results, key=lambda c: c.id))
    path = settings.get("results")
    if path:
        from reports.json_report import write_results

        write_results(results, Path(path))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if SETTINGS not in config.stash or hasattr(config, "workerinput"):
        return
    settings = config.stash[SETTINGS]
    if not settings.results:
        return
    from conformance.summary import summary_lines

    terminalreporter.section("conformance summary")
    for line in summary_lines(
        settings.results,
        results_path=settings.get("results"),
        baseline=settings.get("baseline"),
        list_expected=settings.flag("list-expected"),
    ):
        terminalreporter.write_line(line)
