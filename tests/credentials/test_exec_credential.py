"""Exec credential plugins: both API versions, token and certificate answers, the cache and its refresh (a fake
clock), interactiveMode, a hanging plugin, garbage output, and redaction of what a plugin prints."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from conformance.errors import ConfigError
from conformance.exec_credential import ExecPlugin, ExecPluginError
from conformance.redact import redact

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
TOKEN = "plugin-token-5f4dcc3b5aa765d61d8327deb882cf99"


def script(tmp_path: Path, body: str, name: str = "plugin.py") -> Path:
    """A plugin: a Python script that counts its runs in runs.txt, then runs `body`."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n"
                    f"open({str(tmp_path / 'runs.txt')!r}, 'a').write('run\\n')\n{body}\n")
    path.chmod(0o755)
    return path


def answer(status: dict[str, object], version: str | None = None) -> str:
    """A body printing an ExecCredential in the apiVersion asked for (or `version`)."""
    ask = "json.loads(os.environ['KUBERNETES_EXEC_INFO'])['apiVersion']"
    return (f"json.dump({{'apiVersion': {version!r} or {ask}, 'kind': 'ExecCredential', "
            f"'status': {status!r}}}, sys.stdout)")


def plugin(tmp_path: Path, body: str, **spec: object) -> ExecPlugin:
    path = script(tmp_path, body)
    return ExecPlugin(spec={"apiVersion": V1, "command": str(path), "interactiveMode": "Never", **spec},
                      base_dir=tmp_path, where="kubeconfig K, user u")


def runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs.txt").read_text().splitlines())


@pytest.mark.parametrize("version", [V1, V1BETA1])
def test_token_in_either_api_version_and_the_exec_info_it_was_given(tmp_path: Path, version: str) -> None:
    body = ("info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
            "assert info['spec']['interactive'] is False and info['kind'] == 'ExecCredential', info\n"
            "assert os.environ['FROM_STANZA'] == 'yes'\n" + answer({"token": TOKEN}))
    p = plugin(tmp_path, body, apiVersion=version, env=[{"name": "FROM_STANZA", "value": "yes"}])
    got = p.credential()
    assert got.token == TOKEN and got.expires_at is None and got.cert_pem is None
    assert TOKEN not in redact(f"Authorization: {TOKEN}")  # registered the moment it was read


def test_a_client_certificate_answer(tmp_path: Path) -> None:
    p = plugin(tmp_path, answer({"clientCertificateData": "CERT PEM", "clientKeyData": "KEY PEM sekret-key-data"}))
    got = p.credential()
    assert (got.token, got.cert_pem, got.key_pem) == (None, b"CERT PEM", b"KEY PEM sekret-key-data")
    assert "sekret-key-data" not in redact("KEY PEM sekret-key-data")


def test_cached_until_near_its_expiry_then_refreshed(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    expiry = "time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(1_800_000_020))"  # 20 s after the fake now
    body = answer({"token": TOKEN}).replace(f"{{'token': {TOKEN!r}}}",
                                            f"{{'token': {TOKEN!r}, 'expirationTimestamp': {expiry}}}")
    p = plugin(tmp_path, body)
    p.clock = lambda: now[0]
    first = p.credential()
    assert first.expires_at == 1_800_000_020
    now[0] += 9  # 11 s left of 20: more than half, still fresh
    assert p.credential() is first and runs(tmp_path) == 1
    now[0] += 2  # 9 s left: less than half the lifetime, refreshed before it dies
    p.credential()
    assert runs(tmp_path) == 2 and p.runs == 2


def test_without_expiry_it_runs_once(tmp_path: Path) -> None:
    p = plugin(tmp_path, answer({"token": TOKEN}))
    for _ in range(3):
        p.credential()
    assert runs(tmp_path) == 1


def test_interactive_always_is_refused_without_running_it(tmp_path: Path) -> None:
    p = plugin(tmp_path, answer({"token": TOKEN}), interactiveMode="Always")
    with pytest.raises(ExecPluginError, match=r"needs a terminal.*non-interactively"):
        p.credential()
    assert not (tmp_path / "runs.txt").exists()


def test_a_hanging_plugin_is_killed_with_its_children(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    body = ("import subprocess\n"
            f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(child_pid)!r}, 'w').write(str(c.pid))\n"
            "sys.stderr.write('waiting for the browser login\\n'); sys.stderr.flush(); time.sleep(60)")
    p = plugin(tmp_path, body)
    p.timeout_s = 5.0  # room for the plugin to start its child and speak on a loaded machine
    with pytest.raises(ExecPluginError, match=r"no credential within 5s.*waiting for the browser login"):
        p.credential()
    pid = int(child_pid.read_text())
    # SIGKILL went to the plugin's process group; on a loaded machine the child's exit shows a moment later.
    for _ in range(50):
        try:
            alive = "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            alive = False
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, "the plugin's child outlived the timeout"


def test_garbage_output_is_a_typed_error_that_never_shows_the_output(tmp_path: Path) -> None:
    p = plugin(tmp_path, f"print('token: {TOKEN} and then not json')")
    with pytest.raises(ExecPluginError, match="not an ExecCredential") as err:
        p.credential()
    assert TOKEN not in str(err.value)
    assert isinstance(err.value, ConfigError)


@pytest.mark.parametrize(("status", "version", "message"), [
    ({"token": TOKEN}, V1BETA1, "answered apiVersion"),
    ({}, None, "neither a token nor a client certificate"),
    ({"clientCertificateData": "C"}, None, "not both"),
    ({"token": TOKEN, "expirationTimestamp": "tomorrow"}, None, "not an RFC 3339 time"),
])
def test_malformed_answers(tmp_path: Path, status: dict[str, object], version: str | None, message: str) -> None:
    with pytest.raises(ExecPluginError, match=message) as err:
        plugin(tmp_path, answer(status, version)).credential()
    assert TOKEN not in str(err.value)


def test_a_failing_plugin_shows_its_stderr_redacted(tmp_path: Path) -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
    p = plugin(tmp_path, f"sys.stderr.write('refresh failed for {jwt}: token expired\\n'); sys.exit(3)")
    with pytest.raises(ExecPluginError, match=r"exited with 3.*refresh failed for <redacted>: token expired") as err:
        p.credential()
    assert jwt not in str(err.value)


def test_missing_command_names_the_install_hint_and_bad_stanzas_are_refused(tmp_path: Path) -> None:
    p = ExecPlugin(spec={"apiVersion": V1, "command": "no-such-plugin-here", "interactiveMode": "Never",
                         "installHint": "install it with your package manager"}, base_dir=tmp_path, where="K")
    with pytest.raises(ExecPluginError, match=r"not found.*install it with your package manager"):
        p.credential()
    with pytest.raises(ExecPluginError, match="v1alpha1 was removed"):
        ExecPlugin(spec={"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}, base_dir=tmp_path,
                   where="K")
    with pytest.raises(ExecPluginError, match="interactiveMode must be one of"):
        ExecPlugin(spec={"apiVersion": V1, "command": "x", "interactiveMode": "Sometimes"}, base_dir=tmp_path,
                   where="K")


def test_a_relative_command_with_a_slash_is_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    path = script(tmp_path / "bin", answer({"token": TOKEN}))
    (tmp_path / "bin" / "runs.txt").touch()
    p = ExecPlugin(spec={"apiVersion": V1, "command": "bin/plugin.py", "interactiveMode": "IfAvailable"},
                   base_dir=tmp_path, where="K")
    assert p.command == str(path)
    assert p.credential().token == TOKEN
    assert json.dumps(p.spec)  # the stanza itself is untouched (kubectl gets it as written, path made absolute)
