"""Real kubectl (any minor from 1.24 to 1.37) as a cell client, as shipped or with the protocol forced.

Two modes per version:
- forced (cell protocols `spdy`, `ws`, `ws-tunnel`): `KUBECTL_REMOTE_COMMAND_WEBSOCKETS` (exec, attach, cp)
  and `KUBECTL_PORT_FORWARD_WEBSOCKETS` are set to "true" or "false" (kubectl treats anything but "false"
  as on; versions before the gates exist ignore them and speak SPDY);
- as shipped (cell protocol `as-shipped`): every inherited `KUBECTL_*` variable removed, so the version's
  own defaults decide, as on a laptop (`SHIPPED`: what each minor tries first, FIELD.md / KEP-4006).

kubectl runs with `-v=6`, whose log lines say which request was upgraded with which status, the negotiated
subprotocol, and any fallback ("RemoteCommand fallback", "fallback to secondary dialer"); they are separated
from the command's own stderr. The lines changed over the versions (`LOG_FORMATS` below, each seen in a
real run). A unique `--request-timeout` marks every request kubectl sends (`?timeout=...`), so the API
server's audit event for exactly this cell can be found.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from conformance.adapters.base import OpResult, Session
from conformance.classify import classify_status, classify_text
from conformance.client_races import kubectl_races
from conformance.environ import environ_snapshot
from conformance.lab.kubeconfigs import kubeconfig_dict, write_kubeconfig
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact

KLOG_LINE = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ?(.*)$")
# The -v=6 line of each request, by kubectl version (round_trippers.go):
#   1.33+: "Response" verb="GET" url="https://.../exec?..." status="101 Switching Protocols" milliseconds=8
#   -1.32: POST https://.../exec?... 101 Switching Protocols in 6 milliseconds
# A WebSocket upgrade that was refused logs an empty status (status="" / "URL  in 8 milliseconds").
RESPONSE = re.compile(r'"Response" verb="(\w+)" url="([^"]+)" status="([^"]*)"')
RESPONSE_OLD = re.compile(r"^(GET|POST) (https?://\S+) (.*?) ?in \d+ milliseconds$")
# The subprotocol a WebSocket upgrade settled on:
#   exec 1.30-1.36: The subprotocol is v5.channel.k8s.io          exec 1.37: "Subprotocol negotiated" protocol="v5..."
#   port-forward 1.31-1.32: negotiated protocol: portforward.k8s.io
#   port-forward 1.33+: "Negotiation complete" protocol="portforward.k8s.io"
NEGOTIATED = re.compile(
    r"(?:The subprotocol is |negotiated protocol: )(\S+)"
    r'|"(?:Subprotocol negotiated|Negotiation complete)" protocol="([^"]*)"'
)
FALLBACK = re.compile(r"RemoteCommand fallback|fallback to secondary dialer", re.IGNORECASE)
AS_SHIPPED = "as-shipped"
MARKER_MIN_NS = 120 * 1_000_000_000
MARKER_SPAN_NS = 60 * 1_000_000_000
# Operations with as-shipped cells: the ones KEP-4006 moved (each version's default decides).
AS_SHIPPED_OPERATIONS = ("exec", "cp-upload", "cp-download", "attach", "port-forward")
REMOTE_COMMAND_OPERATIONS = ("exec", "exec-stdin", "cp-upload", "cp-download", "attach")
PORT_FORWARD_OPERATIONS = ("port-forward", "port-forward-concurrent")
# The first minor that tries WebSocket by default (FIELD.md, KEP-4006; checked against the real binaries):
# exec/attach/cp from 1.30 (v5.channel.k8s.io), port-forward from 1.31 (SPDY over WebSocket). Each falls
# back to SPDY on an upgrade failure.
WEBSOCKET_DEFAULT_MINOR = {"remote-command": 30, "port-forward": 31}
# The first minor whose gate can force WebSocket (alpha, off by default): older versions ignore the gate and
# speak SPDY, so they get no forced WebSocket cell (it would claim a protocol kubectl never spoke).
WEBSOCKET_GATE_MINOR = {"remote-command": 29, "port-forward": 30}
STREAMING_SUBRESOURCE = re.compile(r"/(exec|attach|portforward)(\?|$)")
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


def shipped_protocols(minor: int, operation: str) -> tuple[str, ...]:
    """What kubectl 1.`minor` tries for `operation` as shipped, in order (a second entry is its fallback)."""
    if operation in REMOTE_COMMAND_OPERATIONS:
        first = WEBSOCKET_DEFAULT_MINOR["remote-command"]
        return ("ws", "spdy") if minor >= first else ("spdy",)
    if operation in PORT_FORWARD_OPERATIONS:
        first = WEBSOCKET_DEFAULT_MINOR["port-forward"]
        return ("ws-tunnel", "spdy") if minor >= first else ("spdy",)
    return ()


def _response(message: str) -> tuple[str, str, str] | None:
    """(verb, url, status) of a request's -v=6 line, in either version's format."""
    m = RESPONSE.search(message) or RESPONSE_OLD.search(message)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def read_protocol_evidence(log: list[str], evidence: Evidence) -> None:
    """Which streaming request was upgraded, how, and whether kubectl fell back.

    `protocol_negotiated` is always filled once a streaming request reached a server: `spdy` or `websocket`,
    with the subprotocol when kubectl names it (`websocket (v5.channel.k8s.io)`); when the last attempt was
    not upgraded, `<kind> (not upgraded: <status>)`. A WebSocket GET then a SPDY POST is a fallback.
    """
    attempts: list[str] = []
    kinds: list[str] = []
    for message in log:
        response = _response(message)
        if response and STREAMING_SUBRESOURCE.search(response[1]):
            verb, _, status = response
            kind = "websocket" if verb == "GET" else "spdy"
            kinds.append(kind)
            attempts.append(f"{kind}: {status or 'not upgraded (no status logged)'}")
            upgraded = status.startswith("101")
            evidence.protocol_negotiated = kind if upgraded else f"{kind} (not upgraded: {status or 'no status'})"
            if status:
                evidence.status_line = f"HTTP/1.1 {status}"
        n = NEGOTIATED.search(message)
        if n:
            sub = n.group(1) or n.group(2) or ""
            base = (evidence.protocol_negotiated or "websocket").split(" (")[0]
            evidence.protocol_negotiated = f"{base} ({sub})" if sub else base
        if FALLBACK.search(message):
            evidence.fallback = "websocket->spdy"
            evidence.notes.append(redact(message)[:300])
    if evidence.fallback is None and "websocket" in kinds and kinds[-1] == "spdy":
        evidence.fallback = "websocket->spdy"  # the log said nothing, but it tried both, WebSocket first
    if attempts:
        evidence.transcript.extend(attempts)


def audit_note(event: dict[str, object]) -> str:
    """What the API server saw of kubectl's streaming request, from its audit event: the verb says the
    protocol (a WebSocket upgrade is a GET, `get`; SPDY a POST, `create`) and the user agent the version."""
    verb = str(event.get("verb") or "?")
    kind = {"get": "websocket", "create": "spdy"}.get(verb, "?")
    agent = str(event.get("userAgent") or "?").split(" ")[0][:60]
    return f"api server saw: {verb} ({kind}) from {agent}"


class KubectlAdapter:
    def __init__(
        self, binary: Path, version: str, minor: int, modes: frozenset[str] = frozenset({"forced"})
    ) -> None:
        self.binary = binary
        self.version = version
        self.minor = minor
        self.name = f"kubectl-1.{minor}"
        self.modes = modes  # "forced" and/or AS_SHIPPED

    def protocols(self, operation: str) -> tuple[str, ...]:
        forced: tuple[str, ...] = ()
        if "forced" in self.modes:
            if operation in REMOTE_COMMAND_OPERATIONS:
                forced = ("spdy", "ws") if self.minor >= WEBSOCKET_GATE_MINOR["remote-command"] else ("spdy",)
            elif operation in PORT_FORWARD_OPERATIONS:
                forced = ("spdy", "ws-tunnel") if self.minor >= WEBSOCKET_GATE_MINOR["port-forward"] else ("spdy",)
            elif operation == "logs-follow":
                forced = ("http",)
        shipped = (AS_SHIPPED,) if AS_SHIPPED in self.modes and operation in AS_SHIPPED_OPERATIONS else ()
        return forced + shipped

    def shipped_protocols(self, operation: str) -> tuple[str, ...]:
        """What this version tries as shipped: the expectations of an as-shipped cell follow it."""
        return shipped_protocols(self.minor, operation)

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

    @staticmethod
    def _env(protocol: str) -> dict[str, str]:
        """kubectl's environment: no inherited KUBECTL_* (as shipped: the version's defaults decide), the
        gates set when forced, no KUBECONFIG, no proxy variables (the path decides, never the environment)."""
        snapshot = environ_snapshot()  # not os.environ itself: another thread may change it meanwhile
        env = {k: v for k, v in snapshot.items() if not k.startswith(("KUBECTL_", "KUBECONFIG"))}
        if protocol != AS_SHIPPED:
            ws = "false" if protocol == "spdy" else "true"
            env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = ws
            env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = ws
        for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
            env.pop(key, None)
        return env

    def _argv(self, kubeconfig: Path, marker: str, args: list[str]) -> list[str]:
        """kubectl with -v=6 (its log carries the protocol evidence) and the cell's marker as request timeout."""
        return [str(self.binary), f"--kubeconfig={kubeconfig}", "-v=6", f"--request-timeout={marker}", *args]

    def _read_log(self, s: Session, stderr: bytes, evidence: Evidence, marker: str) -> bytes:
        """Fill the evidence from kubectl's log lines; return the command's own stderr. A known race of this
        version's own (conformance.client_races) is noted on the session, so the cell can be asked again."""
        own_stderr, log = split_klog(stderr)
        read_protocol_evidence(log, evidence)
        races = kubectl_races(self.minor, log, own_stderr.decode("utf-8", "replace"))
        evidence.notes.extend(races)
        s.client_races.extend(races)
        evidence.notes.append(f"marker: ?{self.url_marker(marker)}")
        return own_stderr

    @staticmethod
    def marker() -> str:
        """A unique --request-timeout that ends up in every URL: two to three minutes, random nanoseconds.
        (Milliseconds gave 60,000 values: a full matrix of kubectl cells drew the same one twice, and a refused
        cell found another cell's audit event.)"""
        return f"{MARKER_MIN_NS + secrets.randbelow(MARKER_SPAN_NS)}ns"

    @staticmethod
    def url_marker(marker: str) -> str:
        """The same duration as Go prints it in `?timeout=` (123456789012ns -> 2m3.456789012s; 123.450s ->
        2m3.45s)."""
        if marker.endswith("ns"):
            nanos = int(marker.removesuffix("ns"))
        else:
            nanos = round(float(marker.rstrip("s")) * 1000) * 1_000_000
        minutes, rest = divmod(nanos, 60 * 1_000_000_000)
        whole, fraction = divmod(rest, 1_000_000_000)
        seconds = f"{whole}.{fraction:09d}".rstrip("0").rstrip(".")
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
        own_stderr = self._read_log(s, stderr, evidence, marker)
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
            s, ["-n", s.namespace, "attach", pod, "-c", container], protocol, seconds, marker, from_upgrade=True
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
        self, s: Session, args: list[str], protocol: str, seconds: float, marker: str, *, from_upgrade: bool = False
    ) -> tuple[OpResult, bytes]:
        """Run a command that never ends by itself (attach, logs -f) for `seconds`, then stop it.

        `from_upgrade`: the window starts when kubectl logs the streaming request's answer, not when the
        process starts (old versions spend a while on discovery first, more so on a busy machine); until then
        the probe's own timeout applies.
        """
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
            answered = asyncio.Event()
            out_task = asyncio.create_task(_drain(proc.stdout))
            err_task = asyncio.create_task(_drain(proc.stderr, on_line=_upgrade_watch(answered)))
            exited = asyncio.create_task(proc.wait())
            if from_upgrade:
                waiter = asyncio.create_task(answered.wait())
                await asyncio.wait({exited, waiter}, timeout=s.timeout_s, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(exited), seconds)
                ended_early = True
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                    proc.terminate()
                try:
                    await asyncio.wait_for(exited, 10)
                except TimeoutError:
                    proc.kill()
                    await exited
                ended_early = False
            stdout, stderr = await out_task, await err_task
        evidence.timings.total_s = time.monotonic() - start
        own_stderr = self._read_log(s, stderr, evidence, marker)
        result = OpResult(
            ErrorClass.NONE, evidence, stdout=stdout[:MAX_OUTPUT], stderr=own_stderr, exit_code=proc.returncode
        )
        # Stopped at the deadline while its streaming request had been refused: a refusal, not a quiet stream.
        if ended_early or _refused_status(evidence.status_line) is not None:
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
        own_stderr = self._read_log(s, stderr, evidence, marker)
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


async def _drain(
    reader: asyncio.StreamReader, limit: int = MAX_OUTPUT, on_line: Callable[[bytes], None] | None = None
) -> bytes:
    """Everything until EOF, keeping at most `limit` bytes (the rest is read and dropped); `on_line` sees each
    complete line as it arrives."""
    data = bytearray()
    pending = b""
    while chunk := await reader.read(READ_CHUNK):
        if len(data) < limit:
            data += chunk[: limit - len(data)]
        if on_line is not None:
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-READ_CHUNK:]
            for line in lines:
                on_line(line)
    return bytes(data)


def _upgrade_watch(answered: asyncio.Event) -> Callable[[bytes], None]:
    """Sets `answered` once kubectl logs the answer to its streaming request (upgraded or not)."""

    def see(line: bytes) -> None:
        m = KLOG_LINE.match(line)
        response = _response(m.group(1).decode("utf-8", "replace")) if m else None
        if response and STREAMING_SUBRESOURCE.search(response[1]):
            answered.set()

    return see


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
