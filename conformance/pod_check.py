"""Is an existing pod fit for the cells? Its tools (exec and cp need `sh`, `cat`, `tar`) and its echo listener
(port-forward cells need something that echoes on the workload's port).

Asked over the same streaming API the cells use (the native client, SPDY), as the matrix user, each under a
short deadline. A check the API server refuses (no right to exec, a proxy that refuses SPDY) says nothing
about the pod: it is `unknown`, never "missing", so it cannot skip cells that should fail.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from conformance.clients.native import exec_, open_port_forward
from conformance.clients.transfer import echo_transfer
from conformance.redact import redact
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError
from conformance.transport.timeouts import Timeouts

TOOLS = ("sh", "cat", "tar")
CHECK_TIMEOUTS = Timeouts(connect=5.0, tls=5.0, upgrade=10.0, read=10.0, total=15.0)
ECHO_BYTES = 4096
# Prints each missing tool's name; `sh` itself is proved by the script running at all.
TOOLS_SCRIPT = 'for t in cat tar; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done'


@dataclass(frozen=True)
class PodCheck:
    """What the pod offers. `tools_missing` None / `echo` None: unknown (the reason says why)."""

    tools_missing: tuple[str, ...] | None
    tools_reason: str
    echo: bool | None
    echo_reason: str

    @property
    def fit_for_exec(self) -> bool:
        return self.tools_missing == ()


async def check_tools(endpoint: Endpoint, namespace: str, pod: str, container: str | None) -> tuple[
        tuple[str, ...] | None, str]:
    try:
        result = await exec_(endpoint, namespace, pod, container, ["sh", "-c", TOOLS_SCRIPT],
                             timeouts=CHECK_TIMEOUTS)
    except StreamingError as exc:  # refused or cut: says nothing about the pod's tools
        return None, redact(f"could not exec in the pod: {exc}")[:300]
    if result.exit_code == 0:
        missing = tuple(t for t in result.stdout.decode(errors="replace").split() if t in TOOLS)
        return missing, "present" if not missing else f"missing: {', '.join(missing)}"
    text = (result.status_message or result.stderr.decode(errors="replace")).strip()
    if "not found" in text or "no such file" in text.lower():
        return ("sh", "cat", "tar"), f"sh did not start: {text[:200]}"
    return None, f"the check exited {result.exit_code}: {text[:200]}"


async def check_echo(endpoint: Endpoint, namespace: str, pod: str, port: int) -> tuple[bool | None, str]:
    try:
        session = await open_port_forward(endpoint, namespace, pod, timeouts=CHECK_TIMEOUTS)
    except StreamingError as exc:
        return None, redact(f"could not open a port-forward: {exc}")[:300]
    try:
        async with asyncio.timeout(CHECK_TIMEOUTS.total):
            conn = await session.connect(port)
            transfer = await echo_transfer(conn, ECHO_BYTES)
    except (StreamingError, OSError, TimeoutError) as exc:
        # The API server let us forward; the pod's side did not answer: nothing listens (or echoes) there.
        return False, redact(f"nothing echoed on port {port}: {type(exc).__name__}: {exc}")[:300]
    finally:
        await session.aclose()
    if not transfer.byte_exact:
        said = f": {transfer.error_text.strip()[:200]}" if transfer.error_text.strip() else ""
        return False, f"port {port} did not echo ({transfer.received} of {ECHO_BYTES} bytes back){said}"
    return True, f"port {port} echoes"


async def inspect_pod(endpoint: Endpoint, namespace: str, pod: str, container: str | None, port: int) -> PodCheck:
    (missing, tools_reason), (echo, echo_reason) = await asyncio.gather(
        check_tools(endpoint, namespace, pod, container), check_echo(endpoint, namespace, pod, port)
    )
    return PodCheck(missing, tools_reason, echo, echo_reason)
