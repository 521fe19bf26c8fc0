"""Kubeconfig exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`), run for the harness.

The `kubernetes` client's ExecProvider runs a plugin without a time limit, without a cache, ignores
`interactiveMode` and puts the plugin's stderr into its exceptions as is; a harness that runs hundreds of
cells non-interactively needs all four, so this small runner does what kubectl does:
- `KUBERNETES_EXEC_INFO` carries `{apiVersion, kind: ExecCredential, spec: {interactive: false[, cluster]}}`;
- the answer is cached and reused until `expirationTimestamp` (less half its lifetime, at most
  REFRESH_MARGIN_S), then the plugin runs again; an answer without expiry lasts the whole run;
- `interactiveMode: Always` fails at once with a clear error (the harness never has a terminal to lend);
- the plugin runs in its own session with no stdin, killed with its children after `timeout_s`;
- every token or key it prints is registered with `conformance.redact` before anything else happens, its
  stdout never appears in an error, and its stderr appears only redacted and cut to its last lines.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.environ import environ_snapshot
from conformance.errors import ConfigError
from conformance.redact import redact, register_secret

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
DEFAULT_TIMEOUT_S = 30.0
REFRESH_MARGIN_S = 60.0  # refresh at most this long before the expiry (half the lifetime for short tokens)
MAX_OUTPUT = 1 << 20  # an ExecCredential is a few KiB; more is not one
STDERR_TAIL = 600


class ExecPluginError(ConfigError):
    """An exec credential plugin could not give a credential (not found, failed, hung, printed garbage)."""


@dataclass(frozen=True)
class ExecResult:
    """What a plugin answered: a bearer token and/or a client certificate (PEM), and until when."""

    token: str | None = field(default=None, repr=False)
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds; None: valid for the run


@dataclass
class ExecPlugin:
    """One kubeconfig `user.exec` stanza, with its cached answer. Thread-safe: cells run concurrently."""

    spec: Mapping[str, Any]
    base_dir: Path  # the kubeconfig's directory: a relative command with a slash is relative to it
    where: str  # "kubeconfig K, user U", for errors
    cluster: Mapping[str, Any] | None = None  # for provideClusterInfo
    timeout_s: float = DEFAULT_TIMEOUT_S
    clock: Callable[[], float] = time.time
    runs: int = 0  # how many times the plugin ran (tests; `conformance` shows it nowhere)
    _cached: ExecResult | None = None
    _fetched_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        version = self.spec.get("apiVersion")
        if version not in API_VERSIONS:
            raise ExecPluginError(f"{self.where}: exec.apiVersion must be one of {', '.join(API_VERSIONS)}, "
                                  f"got {version!r} (v1alpha1 was removed from Kubernetes in 1.24)")
        if not isinstance(self.spec.get("command"), str) or not self.spec["command"]:
            raise ExecPluginError(f"{self.where}: exec.command is missing")
        if self.interactive_mode not in INTERACTIVE_MODES:
            raise ExecPluginError(f"{self.where}: exec.interactiveMode must be one of "
                                  f"{', '.join(INTERACTIVE_MODES)}, got {self.interactive_mode!r}")

    @property
    def api_version(self) -> str:
        return str(self.spec["apiVersion"])

    @property
    def interactive_mode(self) -> str:
        # v1 requires the field; v1beta1 defaults to IfAvailable (as kubectl does).
        return str(self.spec.get("interactiveMode") or "IfAvailable")

    @property
    def command(self) -> str:
        """The command as kubectl resolves it: a relative path with a slash is relative to the kubeconfig."""
        command = str(self.spec["command"])
        if os.sep in command and not os.path.isabs(command):
            return str(self.base_dir / command)
        return command

    def credential(self) -> ExecResult:
        """The cached answer while it is fresh, else a new one from the plugin."""
        with self._lock:
            cached, now = self._cached, self.clock()
            if cached is not None and (cached.expires_at is None or now < cached.expires_at - self._margin(cached)):
                return cached
            self._cached = self._run()
            self._fetched_at = now
            return self._cached

    def _margin(self, cached: ExecResult) -> float:
        """Refresh once less than half the lifetime is left (at most REFRESH_MARGIN_S before the expiry): a cell
        that opens its last connection seconds after it took the token must not carry a dead one."""
        assert cached.expires_at is not None
        return max(0.0, min(REFRESH_MARGIN_S, (cached.expires_at - self._fetched_at) / 2))

    def _run(self) -> ExecResult:
        if self.interactive_mode == "Always":
            raise ExecPluginError(
                f"{self.where}: the exec plugin {self.spec['command']!r} has interactiveMode: Always (it needs a "
                "terminal), and the harness runs non-interactively: log in once in a terminal so the plugin caches "
                "its credential and set interactiveMode: IfAvailable, or give the harness a token or certificate")
        argv = [self.command, *[str(a) for a in self.spec.get("args") or []]]
        if shutil.which(argv[0]) is None:
            hint = self.spec.get("installHint")
            raise ExecPluginError(f"{self.where}: exec plugin {argv[0]!r} not found or not executable"
                                  + (f"; {hint.strip()}" if isinstance(hint, str) and hint.strip() else ""))
        env = environ_snapshot()  # not dict(os.environ): another thread may change it meanwhile
        for item in self.spec.get("env") or []:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise ExecPluginError(f"{self.where}: exec.env entries must be {{name, value}}")
            env[item["name"]] = str(item.get("value", ""))
        info: dict[str, Any] = {"apiVersion": self.api_version, "kind": "ExecCredential",
                                "spec": {"interactive": False}}
        if self.spec.get("provideClusterInfo") and self.cluster is not None:
            info["spec"]["cluster"] = dict(self.cluster)
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        self.runs += 1
        stdout, stderr, code = self._spawn(argv, env)
        if code != 0:
            raise ExecPluginError(f"{self.where}: exec plugin {self.spec['command']!r} exited with {code}"
                                  + _stderr_tail(stderr))
        return self._parse(stdout, stderr)

    def _spawn(self, argv: list[str], env: dict[str, str]) -> tuple[bytes, bytes, int]:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, start_new_session=True)
        except OSError as exc:
            raise ExecPluginError(f"{self.where}: cannot run exec plugin {argv[0]!r}: {exc.strerror}") from None
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            # Its own session: the plugin and anything it started (a browser helper, a shell) go together.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                _, stderr = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                stderr = b""
            raise ExecPluginError(
                f"{self.where}: exec plugin {self.spec['command']!r} gave no credential within {self.timeout_s:g}s "
                "(does it wait for a login or a terminal?)" + _stderr_tail(stderr)) from None
        return stdout[:MAX_OUTPUT + 1], stderr, proc.returncode

    def _parse(self, stdout: bytes, stderr: bytes) -> ExecResult:
        what = f"{self.where}: exec plugin {self.spec['command']!r}"
        try:
            doc = json.loads(stdout) if len(stdout) <= MAX_OUTPUT else None
        except (ValueError, UnicodeDecodeError) as exc:
            # The output is never shown: a half-printed credential is still a credential.
            raise ExecPluginError(f"{what} printed {len(stdout)} bytes that are not an ExecCredential "
                                  f"(JSON: {type(exc).__name__} at {getattr(exc, 'pos', '?')})"
                                  + _stderr_tail(stderr)) from None
        status = doc.get("status") if isinstance(doc, dict) else None
        if isinstance(status, dict):
            for name in ("token", "clientKeyData"):
                if isinstance(status.get(name), str):
                    register_secret(status[name])
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise ExecPluginError(f"{what} printed JSON that is not an ExecCredential (kind "
                                  f"{doc.get('kind') if isinstance(doc, dict) else type(doc).__name__!r})")
        if doc.get("apiVersion") != self.api_version:
            raise ExecPluginError(f"{what} answered apiVersion {doc.get('apiVersion')!r}; the kubeconfig asks for "
                                  f"{self.api_version!r}")
        if not isinstance(status, dict):
            raise ExecPluginError(f"{what}: the ExecCredential has no status")
        token = status.get("token")
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert) != bool(key):
            raise ExecPluginError(f"{what}: status has one of clientCertificateData and clientKeyData, not both")
        if not token and not cert:
            raise ExecPluginError(f"{what}: status has neither a token nor a client certificate")
        return ExecResult(
            token=str(token) if token else None,
            cert_pem=str(cert).encode() if cert else None,
            key_pem=str(key).encode() if key else None,
            expires_at=_expiry(status.get("expirationTimestamp"), what),
        )


def _expiry(value: object, what: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ExecPluginError(f"{what}: expirationTimestamp {value!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _stderr_tail(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    if not text:
        return ""
    return "; its stderr ends: " + redact(text[-STDERR_TAIL:])
