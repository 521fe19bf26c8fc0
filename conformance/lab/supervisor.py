"""Start, watch and stop lab processes, always by pid, never by name.

Each process runs in its own session (so a SIGTERM reaches its children too), writes to its own log file,
and is recorded in the lab's state file the moment it starts, so that `lab down` can stop whatever a
failed `lab up` left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conformance.errors import ComponentError, LabError

STOP_GRACE_S = 3.0
READY_POLL_S = 0.1
LOG_TAIL_LINES = 20


@dataclass
class ProcessRecord:
    name: str
    pid: int
    argv: list[str]
    log: str
    port: int | None = None
    health: str | None = None  # URL or "tcp://host:port"
    # Components that serve health on a self-signed cert they make themselves (controller-manager, scheduler).
    health_insecure: bool = False
    started: float = field(default_factory=time.time)


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_health(
    url: str, ca_file: str | None = None, timeout: float = 2.0, client_cert: tuple[str, str] | None = None
) -> tuple[bool, str]:
    """One health probe: `tcp://host:port` connects, an http(s) URL must answer 2xx."""
    if url.startswith("tcp://"):
        host, port = url[6:].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True, "accepting connections"
        except OSError as exc:
            return False, str(exc)
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    if client_cert:
        ctx.load_cert_chain(*client_cert)
    if not ca_file:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:  # noqa: S310 - lab URL
            return 200 <= resp.status < 300, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (OSError, ssl.SSLError) as exc:
        return False, str(getattr(exc, "reason", exc))


class Supervisor:
    """Owns the lab's state file: which processes run, with which pids and logs."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "processes.json"
        self.log_dir = state_dir / "logs"

    def records(self) -> list[ProcessRecord]:
        if not self.state_file.is_file():
            return []
        return [ProcessRecord(**r) for r in json.loads(self.state_file.read_text())]

    def _save(self, records: Sequence[ProcessRecord]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n")
        tmp.replace(self.state_file)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int | None = None,
        health: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        health_insecure: bool = False,
    ) -> ProcessRecord:
        if port is not None and not port_free(port):
            raise ComponentError(
                name,
                f"port {port} on 127.0.0.1 is already in use; stop whatever holds it "
                f"(`ss -ltnp 'sport = :{port}'`) or set CONFORMANCE_LAB_PORT_BASE",
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ComponentError(name, f"cannot start {argv[0]}: {exc}") from exc
        record = ProcessRecord(name, proc.pid, list(argv), str(log_path), port, health, health_insecure)
        self._save([*[r for r in self.records() if r.name != name], record])
        return record

    def wait_ready(
        self,
        record: ProcessRecord,
        deadline_s: float,
        ca_file: str | None = None,
        probe: Callable[[], tuple[bool, str]] | None = None,
        client_cert: tuple[str, str] | None = None,
    ) -> None:
        """Poll until healthy; a process that exits or stays unhealthy raises with its log tail."""
        end = time.monotonic() + deadline_s
        detail = "not probed"
        while time.monotonic() < end:
            if not pid_alive(record.pid):
                raise ComponentError(record.name, "exited during start-up", log_tail(record.log))
            if probe is not None:
                ok, detail = probe()
            elif record.health:
                ok, detail = check_health(
                    record.health, None if record.health_insecure else ca_file, client_cert=client_cert
                )
            else:
                return
            if ok:
                return
            time.sleep(READY_POLL_S)
        raise ComponentError(record.name, f"not healthy after {deadline_s:.0f}s ({detail})", log_tail(record.log))

    def stop(self, name: str, grace_s: float = STOP_GRACE_S) -> bool:
        """Stop one recorded process (its group: TERM, then KILL after the grace period) and forget it.
        False if no process of that name was recorded."""
        records = self.records()
        record = next((r for r in records if r.name == name), None)
        if record is None:
            return False
        if _is_recorded_process(record):
            _signal_group(record.pid, signal.SIGTERM)
            end = time.monotonic() + grace_s
            while time.monotonic() < end and pid_alive(record.pid):
                time.sleep(0.05)
            if pid_alive(record.pid):
                _signal_group(record.pid, signal.SIGKILL)
            end = time.monotonic() + 2.0
            while time.monotonic() < end and pid_alive(record.pid):
                time.sleep(0.05)
            if pid_alive(record.pid):
                raise LabError(f"{name} (pid {record.pid}) is still alive after SIGKILL")
        self._save([r for r in self.records() if r.name != name])
        return True

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> list[str]:
        """SIGTERM every recorded process group (newest first), SIGKILL what outlives the grace period."""
        records = [r for r in reversed(self.records()) if _is_recorded_process(r)]
        for record in records:
            _signal_group(record.pid, signal.SIGTERM)
        end = time.monotonic() + grace_s
        while time.monotonic() < end and any(pid_alive(r.pid) for r in records):
            time.sleep(0.05)
        killed = []
        for record in records:
            if pid_alive(record.pid):
                _signal_group(record.pid, signal.SIGKILL)
                killed.append(record.name)
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(pid_alive(r.pid) for r in records):
            time.sleep(0.05)
        survivors = [r.name for r in records if pid_alive(r.pid)]
        if survivors:
            raise LabError(f"processes still alive after SIGKILL: {', '.join(survivors)}")
        self._save([])
        return killed


def _is_recorded_process(record: ProcessRecord) -> bool:
    """Guard against pid reuse: only signal a pid whose command line is still the one we started."""
    if not pid_alive(record.pid):
        return False
    try:
        with open(f"/proc/{record.pid}/cmdline", "rb") as f:
            first = f.read().split(b"\0", 1)[0].decode("utf-8", "replace")
    except OSError:
        return False
    if first == record.argv[0]:
        return True
    # nginx rewrites its command line ("nginx: master process ..."): fall back to the executable itself.
    try:
        return os.path.realpath(f"/proc/{record.pid}/exe") == os.path.realpath(record.argv[0])
    except OSError:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each lab process leads its own session, so its pgid is its pid; signal the group to reach children.
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    # Reap it if it is our own child, so it does not linger as a zombie.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
