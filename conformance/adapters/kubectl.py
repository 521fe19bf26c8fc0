"""Real kubectl as a cell client, with the protocol forced through its environment gates.

`KUBECTL_REMOTE_COMMAND_WEBSOCKETS` (exec, attach, cp) and `KUBECTL_PORT_FORWARD_WEBSOCKETS` are set to
"true" or "false" (kubectl treats anything but "false" as on). kubectl runs with `-v=6`, whose log lines
say which request was upgraded with which status, the negotiated subprotocol, and any fallback
("RemoteCommand fallback", "fallback to secondary dialer"); they are separated from the command's own
stderr. A unique `--request-timeout` marks every request kubectl sends (`?timeout=...`), so the API
server's audit event for exactly this cell can be found.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from conformance.adapters.base import OpResult, Session
from conformance.classify import classify_status, classify_text
from conformance.lab.kubeconfigs import kubeconfig_dict, write_kubeconfig
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact

KLOG_LINE = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ?(.*)$")
RESPONSE = re.compile(r'"Response" verb="(\w+)" url="([^"]+)" status="([^"]+)"')
NEGOTIATED = re.compile(r"negotiated protocol: (\S+)")
FALLBACK = re.compile(r"RemoteCommand fallback|fallback to secondary dialer")
STREAMING_SUBRESOURCE = re.compile(r"/(exec|attach|portforward)\?")
PORT_FORWARD_READY = re.compile(rb"Forwarding from 127\.0\.0\.1:(\d+) ->")
MAX_OUTPUT = 64 * 1024 * 1024
READ_CHUNK = 65536


def split_klog(stderr: bytes) -> tuple[bytes, list[str]]:
    """kubectl's stderr -> (the command's own stderr, kubectl's log messages)."""
    own, log = [], []
    for line in stderr.splitlines(keepends=True):
        m = KLOG_LINE.match(line.rstrip(b"\n"))
        if m:
            log.append(m.group(1).decode("utf-8", "replace"))
        else:
            own.append(line)
    return b"".join(own), log


def read_protocol_evidence(log: list[str], evidence: Evidence) -> None:
    """Which streaming request was upgraded, how, and whether kubectl fell back."""
    attempts = []
    for message in log:
        m = RESPONSE.search(message)
        if m and STREAMING_SUBRESOURCE.search(m.group(2)):
            verb, status = m.group(1), m.group(3)
            kind = "websocket" if verb == "GET" else "spdy"
            attempts.append(f"{kind}: {status}")
            if status.startswith("101"):
                evidence.protocol_negotiated = kind
            evidence.status_line = f"HTTP/1.1 {status}"
        n = NEGOTIATED.search(message)
        if n:
            evidence.protocol_negotiated = f"{evidence.protocol_negotiated or 'websocket'} ({n.group(1)})"
        if FALLBACK.search(message):
            evidence.fallback = "websocket->spdy"
            evidence.notes.append(redact(message)[:300])
    if attempts:
        evidence.transcript.extend(attempts)


class KubectlAdapter:
    def __init__(self, binary: Path, version: str, minor: int) -> None:
        self.binary = binary
        self.version = version
        self.name = f"kubectl-1.{minor}"

    def protocols(self, operation: str) -> tuple[str, ...]:
        if operation in ("exec", "exec-stdin", "cp-upload", "cp-download", "attach"):
            return ("spdy", "ws")
        if operation in ("port-forward", "port-forward-concurrent"):
            return ("spdy", "ws-tunnel")
        if operation == "logs-follow":
            return ("http",)
        return ()

    @contextlib.contextmanager
    def _kubeconfig(self, s: Session) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="conformance-kubectl-") as tmp:
            config = kubeconfig_dict(
                name="cell",
                server=s.endpoint.server,
                ca_file=s.endpoint.ca_file or "",
                token=s.token or None,
                namespace=s.namespace,
            )
            if s.credential is not None and s.credential.kubectl_user is not None:
                # A kubeconfig user: kubectl gets the user's own stanza (exec plugin, certificate), not our token.
                config["users"][0]["user"] = dict(s.credential.kubectl_user)  # type: ignore[index]
            cluster = config["clusters"][0]["cluster"]  # type: ignore[index]
            if not s.endpoint.ca_file:
                del cluster["certificate-authority"]
            if s.endpoint.proxy_url:
                cluster["proxy-url"] = s.endpoint.proxy_url
            if s.endpoint.insecure_skip_tls_verify:
                cluster["insecure-skip-tls-verify"] = True
            yield write_kubeconfig(Path(tmp) / "config", config)

    def _env(self, protocol: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECTL_", "KUBECONFIG"))}
        ws = "false" if protocol == "spdy" else "true"
        env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = ws
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = ws
        # kubectl honours HTTPS_PROXY too; the path decides, never the environment.
        for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
            env.pop(key, None)
        return env

    def _argv(self, kubeconfig: Path, marker: str, args: list[str]) -> list[str]:
        """kubectl with -v=6 (its log carries the protocol evidence) and the cell's marker as request timeout."""
        return [str(self.binary), f"--kubeconfig={kubeconfig}", "-v=6", f"--request-timeout={marker}", *args]

    def _read_log(self, stderr: bytes, evidence: Evidence, marker: str) -> bytes:
        """Fill the evidence from kubectl's log lines; return the command's own stderr."""
        own_stderr, log = split_klog(stderr)
        read_protocol_evidence(log, evidence)
        evidence.notes.append(f"marker: ?{self.url_marker(marker)}")
        return own_stderr

    @staticmethod
    def marker() -> str:
        """A unique --request-timeout (two to three minutes, random milliseconds) that ends up in every URL."""
        return f"{120 + secrets.randbelow(60000) / 1000:.3f}s"

    @staticmethod
    def url_marker(marker: str) -> str:
        """The same duration as Go prints it in `?timeout=` (e.g. 123.450s -> 2m3.45s)."""
        millis = round(float(marker.rstrip("s")) * 1000)
        minutes, rest = divmod(millis, 60000)
        seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
        return f"timeout={minutes}m{seconds}s" if minutes else f"timeout={seconds}s"

    async def _run(
        self, s: Session, args: list[str], protocol: str, *, stdin: bytes | None = None, marker: str | None = None
    ) -> tuple[OpResult, bytes]:
        evidence = Evidence(protocol_requested=protocol)
        marker = marker or self.marker()
        start = time.monotonic()
        with self._kubeconfig(s) as kubeconfig:
            argv = self._argv(kubeconfig, marker, args)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(protocol),
            )
            try:
                stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), s.timeout_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                evidence.timings.total_s = time.monotonic() - start
                evidence.error = f"kubectl did not finish within {s.timeout_s:.0f}s"
                return OpResult(ErrorClass.TIMEOUT, evidence, evidence.error), b""
        evidence.timings.total_s = time.monotonic() - start
        own_stderr = self._read_log(stderr, evidence, marker)
        result = OpResult(
            ErrorClass.NONE, evidence, stdout=stdout[:MAX_OUTPUT], stderr=own_stderr, exit_code=proc.returncode
        )
        return result, own_stderr

    @staticmethod
    def _judge_exit(result: OpResult, expect_exit: int | None = 0) -> OpResult:
        text = redact(result.stderr.decode("utf-8", "replace"))
        if result.exit_code != expect_exit and expect_exit is not None:
            error_lines = [line for line in text.splitlines() if line.startswith(("error", "Error"))]
            result.evidence.error = (error_lines[-1] if error_lines else text.strip()[-500:]) or None
            result.error_class = classify_text(text) if error_lines else ErrorClass.PROTOCOL_ERROR
            refused = _refused_status(result.evidence.status_line)
            if refused is not None:
                # The upgrade's own answer beats kubectl's wording (Envoy's empty 403 prints "Error from server:").
                result.error_class = classify_status(refused, text)
            result.message = result.evidence.error or f"kubectl exited {result.exit_code}"
        return result

    async def exec(
        self,
        s: Session,
        pod: str,
        container: str,
        command: list[str],
        *,
        protocol: str,
        stdin: bytes | None = None,
        expect_exit: int | None = 0,
    ) -> OpResult:
        args = ["-n", s.namespace, "exec", pod, "-c", container, *(["-i"] if stdin is not None else []), "--", *command]
        result, _ = await self._run(s, args, protocol, stdin=stdin)
        if stdin is not None:
            result.stdin_closed = True  # kubectl -i ends stdin at EOF of its own input, which we close
        result.evidence.exit_code = result.exit_code
        return self._judge_exit(result, expect_exit)

    async def cp_upload(
        self, s: Session, pod: str, container: str, local: Path, remote: str, *, protocol: str
    ) -> OpResult:
        result, _ = await self._run(
            s, ["-n", s.namespace, "cp", "-c", container, str(local), f"{pod}:{remote}"], protocol
        )
        return self._judge_exit(result)

    async def cp_download(
        self, s: Session, pod: str, container: str, remote: str, local: Path, *, protocol: str
    ) -> OpResult:
        result, _ = await self._run(
            s, ["-n", s.namespace, "cp", "-c", container, f"{pod}:{remote}", str(local)], protocol
        )
        result = self._judge_exit(result)
        if result.error_class is ErrorClass.NONE and local.is_file():
            result.sha256 = _sha256_file(local)
            result.size = local.stat().st_size
        return result

    async def attach(self, s: Session, pod: str, container: str, *, protocol: str, seconds: float) -> OpResult:
        marker = self.marker()
        result, _ = await self._run_for(
            s, ["-n", s.namespace, "attach", pod, "-c", container], protocol, seconds, marker
        )
        return result

    async def logs_follow(
        self, s: Session, pod: str, container: str, *, seconds: float, timestamps: bool = False,
        tail_lines: int | None = None,
    ) -> OpResult:
        args = ["-n", s.namespace, "logs", "-f", pod, "-c", container, *(["--timestamps"] if timestamps else []),
                *([f"--tail={tail_lines}"] if tail_lines is not None else [])]
        return (await self._run_for(s, args, "http", seconds, self.marker()))[0]

    async def _run_for(
        self, s: Session, args: list[str], protocol: str, seconds: float, marker: str
    ) -> tuple[OpResult, bytes]:
        """Run a command that never ends by itself (attach, logs -f) for `seconds`, then stop it."""
        evidence = Evidence(protocol_requested=protocol)
        start = time.monotonic()
        with self._kubeconfig(s) as kubeconfig:
            argv = self._argv(kubeconfig, marker, args)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(protocol),
            )
            assert proc.stdout is not None and proc.stderr is not None
            # Read as it arrives: cancelling communicate() at the deadline would throw away what it had read.
            out_task = asyncio.create_task(_drain(proc.stdout))
            err_task = asyncio.create_task(_drain(proc.stderr))
            try:
                await asyncio.wait_for(proc.wait(), seconds)
                ended_early = True
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                ended_early = False
            stdout, stderr = await out_task, await err_task
        evidence.timings.total_s = time.monotonic() - start
        own_stderr = self._read_log(stderr, evidence, marker)
        result = OpResult(
            ErrorClass.NONE, evidence, stdout=stdout[:MAX_OUTPUT], stderr=own_stderr, exit_code=proc.returncode
        )
        if ended_early:
            result.exit_code = proc.returncode if proc.returncode else 1
            result = self._judge_exit(result)
            if result.error_class is ErrorClass.NONE:
                result.error_class = ErrorClass.RESET
                result.message = f"the stream ended after {evidence.timings.total_s:.1f}s"
        return result, own_stderr

    async def port_forward(self, s: Session, pod: str, port: int, payloads: list[bytes], *, protocol: str) -> OpResult:
        evidence = Evidence(protocol_requested=protocol)
        marker = self.marker()
        start = time.monotonic()
        with self._kubeconfig(s) as kubeconfig:
            args = ["-n", s.namespace, "port-forward", f"pod/{pod}", f":{port}", "--address=127.0.0.1"]
            argv = self._argv(kubeconfig, marker, args)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(protocol),
            )
            assert proc.stdout is not None and proc.stderr is not None
            stderr_task = asyncio.create_task(proc.stderr.read())
            received: list[bytes] = []
            error: str | None = None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), s.timeout_s)
                m = PORT_FORWARD_READY.search(line)
                if not m:
                    error = "kubectl port-forward did not start listening"
                else:
                    local = int(m.group(1))
                    received = await asyncio.wait_for(
                        asyncio.gather(*(_echo_roundtrip(local, p) for p in payloads)), s.timeout_s
                    )
            except TimeoutError:
                error = f"no answer within {s.timeout_s:.0f}s"
            except OSError as exc:
                error = f"local connection failed: {exc}"
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                stderr = await stderr_task
        evidence.timings.total_s = time.monotonic() - start
        own_stderr = self._read_log(stderr, evidence, marker)
        result = OpResult(ErrorClass.NONE, evidence, received=list(received), stderr=own_stderr)
        text = redact(own_stderr.decode("utf-8", "replace"))
        error_lines = [x for x in text.splitlines() if x.lower().startswith(("error", "e1", "unable"))]
        short = any(len(r) != len(p) for r, p in zip(received, payloads, strict=False))
        # A short echo with no error from kubectl is the probe's to judge (truncated, N of M bytes).
        if error is not None or (short and error_lines):
            detail = error_lines[-1] if error_lines else (error or "port-forward returned fewer bytes than sent")
            evidence.error = detail
            result.error_class = (
                classify_text(detail)
                if error_lines
                else (ErrorClass.TIMEOUT if error and "within" in error else ErrorClass.RESET)
            )
            result.message = detail
            refused = _refused_status(evidence.status_line)
            if refused is not None:
                result.error_class = classify_status(refused, text)
        return result


def _refused_status(status_line: str | None) -> int | None:
    """The status code of a streaming request that was not upgraded, from kubectl's -v=6 log."""
    if not status_line:
        return None
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit() or parts[1] == "101":
        return None
    return int(parts[1])


async def _drain(reader: asyncio.StreamReader, limit: int = MAX_OUTPUT) -> bytes:
    """Everything until EOF, keeping at most `limit` bytes (the rest is read and dropped)."""
    data = bytearray()
    while chunk := await reader.read(READ_CHUNK):
        if len(data) < limit:
            data += chunk[: limit - len(data)]
    return bytes(data)


async def _echo_roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        # Sent while the echo is read: a payload larger than the socket buffers would deadlock otherwise.
        for i in range(0, len(payload), READ_CHUNK):
            writer.write(payload[i : i + READ_CHUNK])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        received = bytearray()
        while len(received) < len(payload):
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            received += chunk
        if len(received) < len(payload) and sender.done() and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]
        return bytes(received)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
