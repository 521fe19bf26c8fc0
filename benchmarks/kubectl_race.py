"""kubectl's WebSocket demux race (kubernetes/kubernetes#131189), measured on the real binaries.

    python benchmarks/kubectl_race.py [--runs 80] [--load 4] [--versions 1.30,1.32,1.33,1.34,1.35]

A loopback server answers discovery and the pod, then answers `kubectl exec` with its 101, a stdout frame,
the exit Status and a close frame, all in one write: the earliest a server can speak. `--load` busy processes
share the CPU and `GOMAXPROCS=16` spreads kubectl's goroutines, which widens the window between kubectl's
read loop starting and its streams existing. Each run is one of: ok (the output and exit 0), lost (exit 0,
no output: the frame was discarded), closed (`error: closed all streams`), other.

Prints a line per version. Exit 1 if a version outside 1.29-1.33 failed at all, or if any failure of an
affected version lacked the signature `conformance.client_races` reads (the harness would not have
recognised it, and would not have asked again). Loopback only; every run is bounded to 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.utils import accept_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.adapters.kubectl import split_klog
from conformance.client_races import kubectl_races
from conformance.lab.build import Progress, install_kubectl

OUTPUT = b"hello-from-stdout\n"
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
       "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}}
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
        {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
         "verbs": ["create", "get"]}]},
}


def _frame(opcode: Opcode, payload: bytes) -> bytes:
    return Frame(opcode, payload).serialize(mask=False)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        for _ in range(20):  # discovery, the pod, then the exec: a handful of requests per connection
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
            lines = head.split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if ":" in x)}
            if "/exec" in path:
                accept = accept_key(headers.get("sec-websocket-key", ""))
                answer = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
                status = b'\x03{"metadata":{},"status":"Success"}'
                close = Close(CloseCode.NORMAL_CLOSURE, "").serialize()
                writer.write(answer.encode() + _frame(Opcode.BINARY, b"\x01" + OUTPUT)
                             + _frame(Opcode.BINARY, status) + _frame(Opcode.CLOSE, close))
                await writer.drain()
                await asyncio.sleep(1)
                return
            body = json.dumps(DISCOVERY.get(path.split("?")[0], POD)).encode()
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                         .encode() + body)
            await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


def _serve(ready: threading.Event, port: list[int]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _burn(deadline: float) -> None:
    while time.monotonic() < deadline:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=80)
    parser.add_argument("--load", type=int, default=4, help="busy processes beside kubectl")
    parser.add_argument("--versions", default="1.30,1.32,1.33,1.34,1.35")
    args = parser.parse_args(argv)
    ready, port = threading.Event(), []
    threading.Thread(target=_serve, args=(ready, port), daemon=True).start()
    if not ready.wait(10):
        return 2
    minors = [int(v.split(".")[1]) for v in args.versions.split(",")]
    burners = [multiprocessing.Process(target=_burn, args=(time.monotonic() + 1800,), daemon=True)
               for _ in range(args.load)]
    for b in burners:
        b.start()
    bad = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = Path(tmp) / "config"
            kubeconfig.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port[0]}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}]}))
            env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "GOMAXPROCS": "16"}
            print(f"{args.runs} runs per version, {args.load} busy processes, {os.cpu_count()} cores")
            for minor in minors:
                binary = install_kubectl(Progress(lambda _: None), minor).binaries["kubectl"]
                counts = {"ok": 0, "lost": 0, "closed": 0, "other": 0}
                unrecognised = 0
                for _ in range(args.runs):
                    done = subprocess.run([binary, f"--kubeconfig={kubeconfig}", "exec", "p", "-c", "c",
                                           "--", "true"], capture_output=True, env=env, timeout=20)
                    own, log = split_klog(done.stderr)
                    if done.returncode == 0 and done.stdout == OUTPUT:
                        kind = "ok"
                    elif done.returncode == 0 and not done.stdout:
                        kind = "lost"
                    elif b"closed all streams" in own:
                        kind = "closed"
                    else:
                        kind = "other"
                    counts[kind] += 1
                    if kind != "ok" and not kubectl_races(minor, log, own.decode("utf-8", "replace")):
                        unrecognised += 1
                affected = 29 <= minor <= 33
                failed = args.runs - counts["ok"]
                verdict = "as known" if affected or not failed else "UNEXPECTED: a fixed version failed"
                if unrecognised and affected:
                    verdict = f"UNEXPECTED: {unrecognised} failure(s) without the signature"
                bad += verdict.startswith("UNEXPECTED")
                print(f"kubectl 1.{minor}: " + "  ".join(f"{k} {v}" for k, v in counts.items())
                      + f"  ({failed / args.runs:.1%} failed; {verdict})")
    finally:
        for b in burners:
            b.terminate()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
