"""docs/ci: the GitHub Actions workflow passes actionlint (built from the Go module proxy, pinned), a broken copy
does not (the check can fail), and the GitLab job is YAML with the keys that run, keep and publish results."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.plugin import OPTIONS

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
PYTEST_FLAGS = {f"--{o.name}" for o in OPTIONS} | {"--junitxml", "-p"}


@pytest.fixture(scope="module")
def actionlint() -> Path:
    """scripts/build-actionlint.sh: the cached binary, built with `go install ...@v1.7.12` when missing."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "build-actionlint.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_file() and "actionlint-v1.7.12" in str(path)
    return path


def lint(actionlint: Path, workflow: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(actionlint), "-no-color", str(workflow)], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_workflow_passes_actionlint(actionlint: Path) -> None:
    out = lint(actionlint, WORKFLOW)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        (("secrets.CONFORMANCE_KUBECONFIG", "secret.CONFORMANCE_KUBECONFIG"), 'undefined variable "secret"'),
        (("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"), "runs_on"),
        (("uses: actions/upload-artifact@v4", "uses: actions/upload-artifact"), "actions/upload-artifact"),
    ],
)
def test_actionlint_rejects_a_broken_copy(
    actionlint: Path, tmp_path: Path, breakage: tuple[str, str], complaint: str
) -> None:
    text = WORKFLOW.read_text()
    assert breakage[0] in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace(breakage[0], breakage[1], 1))
    out = lint(actionlint, broken)
    assert out.returncode != 0 and complaint in out.stdout


def _flags(command: str) -> set[str]:
    return {token for token in command.split() if token.startswith("-")}


def test_the_workflow_runs_keeps_publishes_and_compares() -> None:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    for name, job in doc["jobs"].items():
        runs = " ".join(step.get("run", "") for step in job["steps"])
        uses = [step.get("uses", "") for step in job["steps"]]
        assert "pytest suites/" in runs and "--results" in runs and "--junitxml" in runs, name
        assert "conformance report diff" in runs, name
        assert any(u.startswith("actions/upload-artifact@") for u in uses), name
        assert any(u.startswith("mikepenz/action-junit-report@") for u in uses), name
    text = WORKFLOW.read_text()
    assert "secrets.CONFORMANCE_KUBECONFIG" in text and "aws eks update-kubeconfig" in text


def test_the_gitlab_job_is_yaml_with_the_expected_keys() -> None:
    doc: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    for name in ("streaming-conformance", "streaming-conformance-eks"):
        job = doc[name]
        assert job["extends"] == ".conformance"
        script = "\n".join(job["script"])
        assert "pytest suites/" in script and "--results" in script and "--junitxml" in script
        assert "conformance report diff" in script
        assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"].endswith(".xml")
    assert "pip install" in " ".join(doc[".conformance"]["before_script"])
    assert "aws eks update-kubeconfig" in "\n".join(doc["streaming-conformance-eks"]["script"])


@pytest.mark.parametrize("path", [WORKFLOW, GITLAB])
def test_the_ci_files_use_only_options_that_exist(path: Path) -> None:
    text = re.sub(r"\s*\n\s*", " ", path.read_text())
    commands = re.findall(r"pytest suites/ (.*?)(?: \|\| | - name:| - if | - exit|$)", text)
    assert commands
    for command in commands:
        assert _flags(command) <= PYTEST_FLAGS, _flags(command) - PYTEST_FLAGS


def test_docs_ci_points_at_both_files() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    assert "ci/github-actions.yml" in doc and "ci/gitlab-ci.yml" in doc and "actionlint" in doc


def test_setup_builds_actionlint() -> None:
    assert "scripts/build-actionlint.sh" in (ROOT / "scripts" / "setup.sh").read_text()
