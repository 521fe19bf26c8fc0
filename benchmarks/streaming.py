"""Native clients against kubectl 1.35 on the lab's direct path, side by side, in one run.

    python benchmarks/streaming.py [--pf-mib 256] [--cp-mib 256] [--execs 50] [--protocol spdy]

Measures, each for the native client and kubectl doing the same work:
* port-forward throughput: N MiB echoed through one forwarded connection (kubectl: through its local
  listener, fed by the same socket pump used for the raw ceiling);
* exec of ``true`` N times in sequence: median and p90 latency;
* cp of N MiB up and down, with the peak RSS (VmHWM) of the harness process, measured in a child
  process that does only the copy;
* raw TCP to the lab's echo server (CONFORMANCE_LAB_ECHO): the physical ceiling.
Not a test: it prints a table. Needs the running lab (``conformance lab up``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.clients import Endpoint, Timeouts, cp_download, cp_upload, exec_, port_forward_echo
from conformance.clients.transfer import payload_chunks

NS, POD, CONTAINER, PORT = "conformance", "probe-0", "main", 8080
MiB = 1024 * 1024
TIMEOUTS = Timeouts(read=60, total=1800)


def lab_env() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "lab", "env"], capture_output=True, text=True,
                         check=True).stdout
    return dict(re.findall(r"export (\w+)=(\S+)", out))


def kubeconfig() -> str:
    return subprocess.run([sys.executable, "-m", "conformance.cli", "lab", "kubeconfig", "--target", "direct",
                           "--user", "alice"], capture_output=True, text=True, check=True).stdout.strip()


def kubectl_path() -> str:
    from conformance.lab.build import REFERENCE_KUBECTL_MINOR, installed_components

    return str(installed_components()[f"kubectl-1.{REFERENCE_KUBECTL_MINOR}"].binaries["kubectl"])


async def socket_echo(host: str, port: int, size: int) -> float:
    """Push ``size`` bytes through an echo at host:port and read them back; seconds taken."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    started = time.perf_counter()
    sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()

    async def send() -> None:
        for chunk in payload_chunks(size, 7):
            sent_hash.update(chunk)
            writer.write(chunk)
            await writer.drain()

    async def receive() -> None:
        got = 0
        while got < size:
            data = await reader.read(1 << 20)
            if not data:
                raise RuntimeError(f"echo closed after {got} B")
            got_hash.update(data)
            got += len(data)

    await asyncio.gather(send(), receive())
    seconds = time.perf_counter() - started
    writer.close()
    if sent_hash.digest() != got_hash.digest():
        raise RuntimeError("echo was not byte-exact")
    return seconds


def kubectl_port_forward(kubectl: str, kc: str, size: int) -> float:
    proc = subprocess.Popen([kubectl, f"--kubeconfig={kc}", "-n", NS, "port-forward", f"pod/{POD}", f":{PORT}",
                             "--address=127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        if not match:
            raise RuntimeError(f"kubectl port-forward said {line!r}")
        return asyncio.run(socket_echo("127.0.0.1", int(match.group(1)), size))
    finally:
        proc.terminate()
        proc.wait(10)


def kubectl_exec_latencies(kubectl: str, kc: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([kubectl, f"--kubeconfig={kc}", "-n", NS, "exec", POD, "--", "true"], check=True,
                       capture_output=True)
        out.append(time.perf_counter() - started)
    return out


async def native_exec_latencies(ep: Endpoint, n: int, protocol: str) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        result = await exec_(ep, NS, POD, CONTAINER, ["true"], protocol=protocol, timeouts=TIMEOUTS)
        assert result.exit_code == 0
        out.append(time.perf_counter() - started)
    return out


def child_cp(args: argparse.Namespace) -> None:
    """Runs in a fresh process: upload then download, print times and this process's peak RSS."""
    ep = Endpoint.from_kubeconfig(args.kubeconfig)

    async def both() -> tuple[float, float]:
        started = time.perf_counter()
        await cp_upload(ep, NS, POD, CONTAINER, args.source, args.remote, protocol=args.protocol, verify=False,
                        timeouts=TIMEOUTS)
        up = time.perf_counter() - started
        started = time.perf_counter()
        await cp_download(ep, NS, POD, CONTAINER, args.remote, args.dest, protocol=args.protocol, verify=False,
                          timeouts=TIMEOUTS)
        return up, time.perf_counter() - started

    up, down = asyncio.run(both())
    status = Path("/proc/self/status").read_text()
    hwm_kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    print(json.dumps({"up": up, "down": down, "vmhwm_mib": hwm_kib / 1024}))


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for chunk in payload_chunks(size, 11, chunk=MiB):
            digest.update(chunk)
            fh.write(chunk)
    return digest.hexdigest()


def file_sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.9) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pf-mib", type=int, default=256)
    parser.add_argument("--cp-mib", type=int, default=256)
    parser.add_argument("--execs", type=int, default=50)
    parser.add_argument("--protocol", default="spdy", help="native exec/cp protocol (spdy or ws-v5)")
    parser.add_argument("--pf-protocol", default="spdy", help="native port-forward protocol")
    parser.add_argument("--child-cp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--remote", help=argparse.SUPPRESS)
    parser.add_argument("--dest", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cp:
        child_cp(args)
        return 0

    env, kc, kubectl = lab_env(), kubeconfig(), kubectl_path()
    ep = Endpoint.from_kubeconfig(kc)
    rows: list[tuple[str, str, str, str]] = []
    echo_host, echo_port = env["CONFORMANCE_LAB_ECHO"].rsplit(":", 1)
    pf = args.pf_mib * MiB

    raw_s = asyncio.run(socket_echo(echo_host, int(echo_port), pf))
    rows.append((f"raw TCP echo {args.pf_mib} MiB (ceiling)", f"{pf / raw_s / 1e6:.0f} MB/s", "", ""))
    native = asyncio.run(port_forward_echo(ep, NS, POD, PORT, protocol=args.pf_protocol, size=pf, timeouts=TIMEOUTS))
    native_rate = pf / native.seconds / 1e6
    kubectl_rate = pf / kubectl_port_forward(kubectl, kc, pf) / 1e6
    rows.append((f"port-forward {args.pf_mib} MiB ({args.pf_protocol})", f"{native_rate:.0f} MB/s",
                 f"{kubectl_rate:.0f} MB/s", "native >= kubectl: " + ("yes" if native_rate >= kubectl_rate else "NO")))

    native_lat = asyncio.run(native_exec_latencies(ep, args.execs, args.protocol))
    kubectl_lat = kubectl_exec_latencies(kubectl, kc, args.execs)
    nm, km = statistics.median(native_lat), statistics.median(kubectl_lat)
    rows.append((f"exec true x{args.execs} ({args.protocol}) median / p90",
                 f"{nm * 1000:.1f} / {p90(native_lat) * 1000:.1f} ms",
                 f"{km * 1000:.1f} / {p90(kubectl_lat) * 1000:.1f} ms",
                 f"native <= kubectl/3: {'yes' if nm <= km / 3 else 'NO'} ({km / nm:.1f}x)"))

    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        src = Path(tmp, "src.bin")
        digest = make_file(src, args.cp_mib * MiB)
        remote = f"bench-cp-{os.getpid()}.bin"
        dest = Path(tmp, "native.bin")
        out = subprocess.run([sys.executable, __file__, "--child-cp", "--kubeconfig", kc, "--source", str(src),
                              "--remote", remote, "--dest", str(dest), "--protocol", args.protocol],
                             capture_output=True, text=True, check=True).stdout
        child = json.loads(out.strip().splitlines()[-1])
        assert file_sha(dest) == digest, "native cp was not byte-exact"
        started = time.perf_counter()
        subprocess.run([kubectl, f"--kubeconfig={kc}", "-n", NS, "cp", str(src), f"{POD}:{remote}-k"], check=True,
                       capture_output=True)
        k_up = time.perf_counter() - started
        started = time.perf_counter()
        kdest = Path(tmp, "kubectl.bin")
        subprocess.run([kubectl, f"--kubeconfig={kc}", "-n", NS, "cp", f"{POD}:{remote}-k", str(kdest)], check=True,
                       capture_output=True)
        k_down = time.perf_counter() - started
        subprocess.run([kubectl, f"--kubeconfig={kc}", "-n", NS, "exec", POD, "--", "rm", "-f", remote,
                        f"{remote}-k"], check=False, capture_output=True)
        rows.append((f"cp {args.cp_mib} MiB upload ({args.protocol})", f"{child['up']:.2f} s", f"{k_up:.2f} s", ""))
        rows.append((f"cp {args.cp_mib} MiB download ({args.protocol})", f"{child['down']:.2f} s", f"{k_down:.2f} s",
                     ""))
        rows.append(("cp harness peak RSS (VmHWM)", f"{child['vmhwm_mib']:.0f} MiB", "",
                     "under 100 MiB: " + ("yes" if child["vmhwm_mib"] < 100 else "NO")))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'native':>20}  {'kubectl 1.35':>20}  check")
    for name, n, k, check in rows:
        print(f"{name:<{width}}  {n:>20}  {k:>20}  {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
