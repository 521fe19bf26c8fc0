"""Self-tests of the pytest plugin with pytester: options, env fallbacks, ids, exit codes, xdist merge.

The plugin is loaded through its `pytest11` entry point (the package is installed), exactly as a user's
`pytest suites/` loads it; runs happen in subprocesses so each has a fresh plugin state.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conformance.lab.paths import cache_dir, lab_dir

pytest_plugins = ["pytester"]
SUITES = Path(__file__).resolve().parents[2] / "suites"
# Read before pytester points HOME at a temporary directory, which would hide the running lab and the cache.
LAB_DIR, CACHE_DIR = str(lab_dir()), str(cache_dir())


@pytest.fixture(autouse=True)
def _this_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subprocess imports the plugin from this checkout, not from wherever the package is installed
    (an editable install may point at another worktree)."""
    root = str(SUITES.parent)
    monkeypatch.setenv("PYTHONPATH", root + (":" + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("CONFORMANCE_LAB_DIR", LAB_DIR)
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", CACHE_DIR)
    pytester.makepyfile(test_matrix=(SUITES / "test_streaming.py").read_text())
    pytester.makepyfile(test_sec=(SUITES / "test_security.py").read_text())
    return pytester


def test_help_lists_every_option_with_its_env_var(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    out = result.stdout.str()
    for option, env in (
        ("--target", "CONFORMANCE_TARGET"),
        ("--expectations", "CONFORMANCE_EXPECTATIONS"),
        ("--probe-timeout", "CONFORMANCE_PROBE_TIMEOUT"),
        ("--results", "CONFORMANCE_RESULTS"),
        ("--concurrency", "CONFORMANCE_CONCURRENCY"),
        ("--payload-mib", "CONFORMANCE_PAYLOAD_MIB"),
        ("--idle-s", "CONFORMANCE_IDLE_S"),
        ("--no-idle", "CONFORMANCE_NO_IDLE"),
        ("--kubeconfig", "CONFORMANCE_KUBECONFIG"),
    ):
        assert option in out and env in out


def test_bad_probe_timeout_names_its_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_PROBE_TIMEOUT", "soon")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*probe-timeout from CONFORMANCE_PROBE_TIMEOUT must be a positive float*soon*"])


@pytest.mark.parametrize(("env", "value"), [("CONFORMANCE_PAYLOAD_MIB", "lots"), ("CONFORMANCE_IDLE_S", "-5"),
                                            ("CONFORMANCE_NO_IDLE", "maybe")])
def test_bad_payload_idle_settings_name_their_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*from {env} must be*"])


def test_config_error_names_file_and_key(suite: pytest.Pytester) -> None:
    bad = suite.path / "harness.yaml"
    bad.write_text("version: 1\ntargets: {direct: {description: x}}\nusers: {}\nworkload: {namespace: n, pods: [p]}\n")
    result = suite.runpytest_subprocess(f"--config={bad}", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{bad}: targets.direct.server is missing" in result.stdout.str() + result.stderr.str()


def test_no_config_and_no_lab_says_how_to_start(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_LAB_DIR", str(suite.path / "no-lab-here"))
    result = suite.runpytest_subprocess("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no local lab is running: start one with `conformance lab up`" in result.stdout.str() + result.stderr.str()


@pytest.mark.lab
def test_cell_ids_and_env_fallback_with_cli_precedence(
    suite: pytest.Pytester, running_lab: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFORMANCE_TARGET", "direct")
    monkeypatch.setenv("CONFORMANCE_OP", "whoami,exec")
    monkeypatch.setenv("CONFORMANCE_CLIENT", "native")
    result = suite.runpytest_subprocess("test_matrix.py", "--collect-only", "-q", "--path=none")
    ids = [line for line in result.stdout.lines if "::test_cell[" in line]
    assert "test_matrix.py::test_cell[direct-none-http-whoami-native]" in ids
    assert "test_matrix.py::test_cell[direct-none-spdy-exec-native]" in ids
    assert all("[direct-none-" in i for i in ids)
    # The CLI wins over the environment.
    result = suite.runpytest_subprocess("test_matrix.py", "--collect-only", "-q", "--path=none", "--target=jetstack")
    ids = [line for line in result.stdout.lines if "::test_cell[" in line]
    assert ids and all("[jetstack-none-" in i for i in ids)


@pytest.mark.lab
def test_unknown_selection_is_a_usage_error(suite: pytest.Pytester, running_lab: object) -> None:
    result = suite.runpytest_subprocess("test_matrix.py", "--collect-only", "--target=nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "target from --target: unknown nosuch; known: direct, jetstack, jetstack-0.3, jetstack-passthrough, "
        "jetstack-passthrough-sa, openunison"
        in result.stdout.str() + result.stderr.str()
    )


@pytest.mark.lab
def test_expected_run_passes_and_writes_results(suite: pytest.Pytester, running_lab: object) -> None:
    results = suite.path / "results.json"
    result = suite.runpytest_subprocess(
        "test_matrix.py",
        "--target=direct",
        "--path=alb,none",
        "--op=exec",
        "--client=native",
        "--protocol=spdy,ws-v5",
        f"--results={results}",
        "-v",
    )
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3, xfailed=1)  # alb x spdy fails as the lab profile declares
    doc = json.loads(results.read_text())
    assert sorted(c["outcome"] for c in doc["cells"]) == ["expected-fail", "pass", "pass", "pass"]
    assert all(c["evidence"]["identity"]["user"] == "alice" for c in doc["cells"])
    assert "eyJ" not in result.stdout.str() + results.read_text()
    result.stdout.fnmatch_lines(["*OK  all 4 cells as expected*"])


@pytest.mark.lab
def test_turning_an_expectation_around_fails_the_run_naming_cell_and_evidence(
    suite: pytest.Pytester, running_lab: object
) -> None:
    flipped = suite.path / "flipped.yaml"
    flipped.write_text(
        "version: 1\ninclude: [lab]\nrules:\n  - match: {path: alb, protocol: spdy}\n    outcome: pass\n"
    )
    result = suite.runpytest_subprocess(
        "test_matrix.py",
        "--target=jetstack",
        "--path=alb",
        "--op=exec",
        "--client=native",
        "--protocol=spdy,ws-v5",
        f"--expectations={flipped}",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "jetstack-alb-spdy-exec-native" in out
    assert "HTTP/1.1 400 Bad Request" in out
    assert "Upgrade request required" in out


@pytest.mark.lab
def test_declared_failure_that_works_is_an_unexpected_pass(suite: pytest.Pytester, running_lab: object) -> None:
    wrong = suite.path / "wrong.yaml"
    wrong.write_text("version: 1\nrules:\n  - match: '*-whoami-*'\n    outcome: fail\n    error_class: forbidden\n")
    result = suite.runpytest_subprocess(
        "test_matrix.py", "--target=direct", "--path=none", "--op=whoami", "--client=native", f"--expectations={wrong}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unexpected-pass*direct-none-http-whoami-native*"])


@pytest.mark.lab
def test_xdist_workers_results_merge_into_one_file(suite: pytest.Pytester, running_lab: object) -> None:
    results = suite.path / "results.json"
    selection = (
        "--target=direct,jetstack",
        "--path=none",
        "--op=exec,whoami",
        "--client=native",
        "--protocol=spdy,ws-v5,http",
    )
    result = suite.runpytest_subprocess("test_matrix.py", "-n", "2", *selection, f"--results={results}", "-v")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    # Each worker got one whole group, dealt round-robin in collection order (so it could prefetch it).
    ran_on: dict[str, set[str]] = {}
    for m in re.finditer(r"\[(gw\d+)\][^\n]*PASSED \S*test_cell\[([^\]]+)\]", result.stdout.str()):
        ran_on.setdefault(m.group(1), set()).add(m.group(2))
    order = [c.id for c in _collected_cells(suite, *selection)]
    assert sorted(ran_on.values(), key=sorted) == sorted([set(order[0::2]), set(order[1::2])], key=sorted)
    doc = json.loads(results.read_text())
    ids = sorted(f"{c['key']['target']}-{c['key']['operation']}-{c['key']['protocol']}" for c in doc["cells"])
    assert ids == sorted(
        f"{t}-{o}-{p}"
        for t in ("direct", "jetstack")
        for o, p in (("exec", "spdy"), ("exec", "ws-v5"), ("whoami", "http"))
    )


@pytest.mark.lab
def test_a_target_that_is_down_gives_connect_refused_within_the_probe_timeout(
    suite: pytest.Pytester, running_lab: object
) -> None:
    import yaml

    from conformance.lab import lab

    config = yaml.safe_load(lab.harness_config_path().read_text())
    config["targets"]["direct"]["server"] = "https://127.0.0.1:9"  # discard port: nothing listens
    config["targets"]["direct"].pop("via", None)
    path = suite.path / "down.yaml"
    path.write_text(yaml.safe_dump(config))
    results = suite.path / "results.json"
    result = suite.runpytest_subprocess(
        "test_matrix.py",
        f"--config={path}",
        "--target=direct",
        "--path=none",
        "--op=exec,whoami",
        "--client=native",
        "--protocol=spdy,http",
        "--probe-timeout=5",
        f"--results={results}",
        "--no-preflight",  # the cells themselves must say it: the preflight would stop the run first (below)
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = json.loads(results.read_text())
    assert {c["error_class"] for c in doc["cells"]} == {"connect-refused"}
    assert all(c["duration_s"] < 10 for c in doc["cells"])
    # With the preflight: one line says so and the run stops before the matrix, with the usage-error code.
    stopped = suite.runpytest_subprocess(
        "test_matrix.py", f"--config={path}", "--target=direct", "--path=none", "--op=exec,whoami",
        "--client=native", "--protocol=spdy,http",
    )
    assert stopped.ret == pytest.ExitCode.USAGE_ERROR
    assert "no tests ran" in stopped.stdout.str()
    stopped.stderr.fnmatch_lines(["*preflight: nothing could work*", "*no endpoint answers*direct*connect-refused*"])


@pytest.mark.lab
def test_allure_results_carry_transcript_and_identity(suite: pytest.Pytester, running_lab: object) -> None:
    alluredir = suite.path / "allure"
    result = suite.runpytest_subprocess("test_matrix.py", "--target=direct", "--path=none", "--op=exec",
                                        "--client=native", "--protocol=ws-v5", f"--alluredir={alluredir}")
    assert result.ret == pytest.ExitCode.OK
    (test_result,) = [json.loads(p.read_text()) for p in alluredir.glob("*-result.json")]
    names = {a["name"] for a in test_result["attachments"]}
    assert {"handshake transcript", "identity seen by the API server"} <= names
    identity = next(a for a in test_result["attachments"] if a["name"] == "identity seen by the API server")
    assert json.loads((alluredir / identity["source"]).read_text())["user"] == "alice"
    assert "eyJ" not in "".join(p.read_text() for p in alluredir.iterdir())


def _lab_config_variant(suite: pytest.Pytester, name: str, change: object) -> Path:
    import yaml

    from conformance.lab import lab

    config = yaml.safe_load(lab.harness_config_path().read_text())
    change(config)  # type: ignore[operator]
    path = suite.path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


EXEC_CELLS = ("test_matrix.py", "--target=direct", "--path=none", "--op=exec", "--client=native",
              "--protocol=spdy,ws-v5", "--expectations=lab")


@pytest.mark.lab
def test_an_unavailable_target_fails_the_gate_unless_allowed_and_strict_fails_skips(
    suite: pytest.Pytester, running_lab: object
) -> None:
    def down(config: dict) -> None:  # type: ignore[type-arg]
        config["targets"]["direct"]["available"] = False

    path = _lab_config_variant(suite, "unavailable", down)
    results = suite.path / "results.json"
    failed = suite.runpytest_subprocess(*EXEC_CELLS, f"--config={path}", f"--results={results}")
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    assert {c["error_class"] for c in json.loads(results.read_text())["cells"]} == {"path-unavailable"}
    allowed = suite.runpytest_subprocess(*EXEC_CELLS, f"--config={path}", "--allow-unavailable")
    assert allowed.ret == pytest.ExitCode.OK
    allowed.stdout.fnmatch_lines(["*2 cell(s) skipped (--strict fails them):*", "*2 x path none to direct*"])
    strict = suite.runpytest_subprocess(*EXEC_CELLS, f"--config={path}", "--allow-unavailable", "--strict")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.lab
def test_an_identity_that_differs_in_one_group_fails_every_worked_cell(
    suite: pytest.Pytester, running_lab: object
) -> None:
    def one_group_less(config: dict) -> None:  # type: ignore[type-arg]
        config["users"]["alice"]["expect"]["groups"] = ["system:authenticated"]  # the API server adds devs

    path = _lab_config_variant(suite, "strict-identity", one_group_less)
    results = suite.path / "results.json"
    result = suite.runpytest_subprocess(*EXEC_CELLS, f"--config={path}", f"--results={results}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cells = json.loads(results.read_text())["cells"]
    assert {c["error_class"] for c in cells} == {"wrong-identity"}
    assert all("undeclared groups ['devs']" in c["message"] for c in cells)
    assert all(c["evidence"]["identity_source"] == "audit" for c in cells)


@pytest.mark.lab
def test_without_a_declared_identity_the_run_learns_it_once_and_records_it(
    suite: pytest.Pytester, running_lab: object
) -> None:
    def no_expect_no_audit(config: dict) -> None:  # type: ignore[type-arg]
        for user in config["users"].values():
            user.pop("expect", None)
        config.pop("identity")

    path = _lab_config_variant(suite, "no-expect", no_expect_no_audit)
    results = suite.path / "results.json"
    result = suite.runpytest_subprocess(*EXEC_CELLS, f"--config={path}", f"--results={results}")
    assert result.ret == pytest.ExitCode.OK
    doc = json.loads(results.read_text())
    assert doc["meta"]["expected_identity"]["user"] == "alice"
    assert doc["meta"]["expected_identity"]["groups"] == ["devs", "system:authenticated"]
    assert {c["evidence"]["identity_source"] for c in doc["cells"]} == {"selfsubjectreview"}


class _Id:
    def __init__(self, id: str) -> None:
        self.id = id


def _collected_cells(suite: pytest.Pytester, *selection: str) -> list[_Id]:
    """The cells of a selection in collection order, as `pytest --collect-only -q` lists them."""
    listing = suite.runpytest_subprocess("test_matrix.py", "--collect-only", "-q", *selection).stdout.lines
    return [_Id(line[line.index("[") + 1 : -1]) for line in listing if "::test_cell[" in line]
