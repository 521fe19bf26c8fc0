"""Ground truth for the as-shipped kubectl cells: plain kubectl binaries, run the way a user runs them.

Three versions, one per stage of KEP-4006 (FIELD.md, checked against the binaries): 1.29 speaks SPDY for
everything (its WebSocket gate exists but is off), 1.30 WebSocket for exec/cp/attach only, 1.31 WebSocket for
port-forward too. Each runs exec, cp (upload) and port-forward on every lab path of three targets, directly:
a kubeconfig from `conformance lab kubeconfig`, an environment with nothing but PATH and HOME, no adapter of
ours. The harness's as-shipped cells of the same versions, targets, paths and operations must say the same
(worked or not, and which protocol reached the server), while this process's environment carries KUBECTL_*
gates set to "false" that the as-shipped mode must strip.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.adapters.kubectl import AS_SHIPPED, KubectlAdapter
from conformance.cells import Cell, CellRunner
from conformance.config import load_config
from conformance.expectations import Expectations
from conformance.model import CellKey, ErrorClass
from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
MINORS = (29, 30, 31)
TARGETS = ("direct", "jetstack", "openunison")
OPERATIONS = ("exec", "cp-upload", "port-forward")
USER = "alice"
TIMEOUT_S = 40
RETRIES = 2
ECHO = b"ground-truth\n"
PAYLOAD = bytes(range(256)) * 256  # 64 KiB: enough to cross every hop, quick on a busy machine
FORWARDING = re.compile(rb"Forwarding from 127\.0\.0\.1:(\d+) ->")
# The streaming request in kubectl's -v=6 log, either format: a WebSocket upgrade is a GET, SPDY a POST.
STREAM_REQUEST = re.compile(r'(GET|POST)"? (?:url=")?https://\S+/pods/[^/\s]+/(?:exec|portforward)\b')
Key = tuple[int, str, str, str]  # minor, target, path, operation


@dataclass
class Plain:
    worked: bool
    spoke: str  # the last streaming request's protocol: "websocket", "spdy" or "none"
    detail: str


def kubectl(binary: Path, kubeconfig: Path, home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}  # as on a laptop with no KUBECTL_* set
    return subprocess.Popen(
        [str(binary), f"--kubeconfig={kubeconfig}", "-v=6", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def spoke(stderr: bytes) -> str:
    verbs = [m.group(1) for m in STREAM_REQUEST.finditer(stderr.decode("utf-8", "replace"))]
    return {"GET": "websocket", "POST": "spdy"}.get(verbs[-1], "none") if verbs else "none"


def run_plain(binary: Path, kubeconfig: Path, home: Path, operation: str, pod: str) -> Plain:
    if operation == "exec":
        proc = kubectl(binary, kubeconfig, home, "exec", pod, "-c", "main", "--", "echo", "ground-truth")
        out, err = proc.communicate(timeout=TIMEOUT_S)
        return Plain(proc.returncode == 0 and out == ECHO, spoke(err), err.decode(errors="replace")[-300:])
    if operation == "cp-upload":
        unique = f"ground-truth-{time.monotonic_ns()}-{threading.get_ident()}"
        local = home / unique  # one file per run: runs go four at a time
        local.write_bytes(PAYLOAD)
        remote = f"{pod}:/tmp/{unique}"
        proc = kubectl(binary, kubeconfig, home, "cp", "-c", "main", str(local), remote)
        _, err = proc.communicate(timeout=TIMEOUT_S)
        return Plain(proc.returncode == 0, spoke(err), err.decode(errors="replace")[-300:])
    return port_forward(binary, kubeconfig, home, pod)


def port_forward(binary: Path, kubeconfig: Path, home: Path, pod: str) -> Plain:
    proc = kubectl(binary, kubeconfig, home, "port-forward", f"pod/{pod}", ":8080", "--address=127.0.0.1")
    assert proc.stdout is not None
    worked, detail = False, "kubectl port-forward never listened"
    try:
        line = proc.stdout.readline()  # the first line, or EOF when kubectl gives up
        m = FORWARDING.search(line)
        if m:
            with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=TIMEOUT_S) as conn:
                conn.sendall(PAYLOAD)
                conn.shutdown(socket.SHUT_WR)
                received = bytearray()
                while len(received) < len(PAYLOAD) and (chunk := conn.recv(65536)):
                    received += chunk
            worked = bytes(received) == PAYLOAD
            detail = f"echoed {len(received)} of {len(PAYLOAD)} bytes"
    except OSError as exc:
        detail = f"local connection: {exc}"
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    return Plain(worked, spoke(err), detail + " | " + err.decode(errors="replace")[-300:])


@dataclass
class Sides:
    """Both answers per key, and how to ask each side again."""

    plain: dict[Key, Plain]
    harness: dict[Key, tuple[bool, str, str]]
    rerun_plain: Callable[[Key], Plain]
    rerun_harness: Callable[[Key], tuple[bool, str, str]]


@pytest.fixture(scope="module")
def sides(running_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Sides:
    from conformance.lab import lab
    from conformance.lab.build import Progress, install_kubectl

    config = load_config(lab.harness_config_path())
    home = tmp_path_factory.mktemp("kubectl-home")
    pod = config.workload.pods[0]
    binaries = {m: Path(install_kubectl(Progress(lambda _line: None), m).binaries["kubectl"]) for m in MINORS}
    kubeconfigs = {
        (t, p): lab.kubeconfig(t, USER, home / f"{t}-{p}.kubeconfig", path=p) for t in TARGETS for p in config.paths
    }
    keys = [(m, t, p, op) for m in MINORS for t in TARGETS for p in config.paths for op in OPERATIONS]

    def plain(key: Key) -> Plain:
        return run_plain(binaries[key[0]], kubeconfigs[key[1], key[2]], home, key[3], pod)

    with ThreadPoolExecutor(max_workers=4) as pool:
        plain_results = dict(zip(keys, pool.map(plain, keys), strict=True))

    clients = {
        f"kubectl-1.{m}": KubectlAdapter(binaries[m], f"1.{m}", m, frozenset({AS_SHIPPED})) for m in MINORS
    }
    runner = CellRunner(config, dict(clients), Expectations.load("lab"), TIMEOUT_S, payload_bytes=len(PAYLOAD))

    async def cell(key: Key, gate: asyncio.Semaphore) -> tuple[bool, str, str]:
        m, t, p, op = key
        c = Cell(CellKey(target=t, path=p, protocol=AS_SHIPPED, operation=op, client=f"kubectl-1.{m}"),
                 config.targets[t].user or USER)
        async with gate:
            r = await runner.run_async(c)
        kind = (r.evidence.protocol_negotiated or "none").split(" ")[0]
        return r.error_class is ErrorClass.NONE, kind, f"{r.outcome.value}: {r.message}"[:300]

    async def run(batch: list[Key]) -> list[tuple[bool, str, str]]:
        gate = asyncio.Semaphore(4)
        return await asyncio.gather(*(cell(k, gate) for k in batch))

    def harness(batch: list[Key]) -> list[tuple[bool, str, str]]:
        with pytest.MonkeyPatch.context() as mp:
            # Inherited gates a laptop might carry: as shipped must strip them (or 1.30/1.31 would speak SPDY).
            mp.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
            mp.setenv("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")
            return asyncio.run(run(batch))

    harness_results = dict(zip(keys, harness(keys), strict=True))
    return Sides(plain_results, harness_results, plain, lambda key: harness([key])[0])


def test_the_versions_really_differ_as_kep_4006_says(sides: Sides) -> None:
    """The comparison below means something only if the plain binaries behave differently by version."""
    truth = sides.plain
    assert truth[(29, "direct", "none", "exec")].spoke == "spdy"
    assert truth[(30, "direct", "none", "exec")].spoke == "websocket"
    assert truth[(30, "direct", "none", "port-forward")].spoke == "spdy"
    assert truth[(31, "direct", "none", "port-forward")].spoke == "websocket"
    assert not truth[(29, "direct", "alb", "exec")].worked  # the ALB strips SPDY's upgrade
    assert not truth[(30, "openunison", "none", "port-forward")].worked  # OpenUnison refuses SPDY
    assert not truth[(30, "direct", "gateway", "port-forward")].worked  # so does the gateway


def test_the_harness_as_shipped_cells_say_what_plain_kubectl_does(sides: Sides) -> None:
    """Same protocol on the wire, and the same answer to "can it work here". A disagreement is asked again
    (both sides, up to RETRIES times): a stream that broke once on a busy machine (docs/kubectl.md) is
    reported, but only a disagreement that stays fails the test."""
    assert set(sides.plain) == set(sides.harness)
    differ, flaky = [], []
    for key, plain in sorted(sides.plain.items()):
        harness = sides.harness[key]
        plain_worked, harness_worked = plain.worked, harness[0]
        for _ in range(RETRIES):
            if plain_worked == harness_worked:
                break
            flaky.append(f"{key}: plain {plain.detail[-160:]!r} / harness {harness[2][:160]!r}")
            if not plain_worked:
                plain = sides.rerun_plain(key)
                plain_worked = plain.worked
            if not harness_worked:
                harness = sides.rerun_harness(key)
                harness_worked = harness[0]
        if (plain_worked, plain.spoke) != (harness_worked, harness[1]):
            differ.append(
                f"kubectl-1.{key[0]} {key[1]} via {key[2]} {key[3]}: plain {'worked' if plain_worked else 'failed'} "
                f"({plain.spoke}), harness {'worked' if harness_worked else 'failed'} ({harness[1]}) "
                f"[{harness[2]}] [{plain.detail}]"
            )
    if flaky:
        print("asked again after a one-off failure:\n" + "\n".join(flaky))
    assert not differ, f"{len(differ)} of {len(sides.plain)} differ:\n" + "\n".join(differ)
