"""``conformance probe OPERATION``: run one streaming operation ad hoc, with a pinned protocol.

    conformance probe exec --protocol spdy --kubeconfig K -n NS POD -- echo hi
    conformance probe attach --protocol ws-v5 --kubeconfig K -n NS POD --duration 3
    conformance probe port-forward --protocol ws-tunnel --kubeconfig K -n NS POD 8080 --bytes 1048576
    conformance probe cp-upload --kubeconfig K -n NS POD LOCAL REMOTE
    conformance probe cp-download --kubeconfig K -n NS POD REMOTE LOCAL
    conformance probe logs --kubeconfig K -n NS POD --duration 3

Credentials come from a kubeconfig (``--kubeconfig``, ``--context``) or from ``--server URL --ca FILE
--token-file FILE``. Prints what happened and the (redacted) evidence, or the evidence as JSON with
``--json``. Exit code 0 iff the operation worked; 1 if it failed; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from conformance.errors import ConfigError
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact_obj, register_secret

OPERATIONS = ("exec", "attach", "port-forward", "cp-upload", "cp-download", "logs")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    probe = sub.add_parser("probe", help="run one streaming operation with a pinned protocol and show the evidence",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ops = probe.add_subparsers(dest="operation", required=True)
    for name in OPERATIONS:
        op = ops.add_parser(name)
        _common(op)
        if name in ("exec", "attach", "logs", "cp-upload", "cp-download"):
            op.add_argument("-c", "--container", default=None)
        if name == "exec":
            op.add_argument("--protocol", default="spdy", help="spdy, ws-v5, ws-v4, ws-v1, ws-base64, ws-v4-base64")
            op.add_argument("-i", "--stdin", action="store_true", help="send our stdin, then close it")
            op.add_argument("-t", "--tty", action="store_true", help="allocate a tty (needs -i)")
            op.add_argument("argv", nargs="+", metavar="COMMAND")
        elif name == "attach":
            op.add_argument("--protocol", default="spdy")
            op.add_argument("--duration", type=float, default=3.0, help="detach after this many seconds")
            op.add_argument("--max-bytes", type=int, default=None)
        elif name == "port-forward":
            op.add_argument("--protocol", default="spdy", help="spdy, ws-tunnel, ws-legacy")
            op.add_argument("port", type=int)
            op.add_argument("--bytes", type=int, default=1024 * 1024, help="bytes echoed per connection")
            op.add_argument("--connections", type=int, default=1)
        elif name in ("cp-upload", "cp-download"):
            op.add_argument("--protocol", default="spdy")
            op.add_argument("source")
            op.add_argument("destination")
            op.add_argument("--no-verify", action="store_true", help="skip sha256sum in the pod")
        elif name == "logs":
            op.add_argument("--duration", type=float, default=3.0)
            op.add_argument("--max-bytes", type=int, default=64 * 1024)
            op.add_argument("--tail", type=int, default=None)


def _common(op: argparse.ArgumentParser) -> None:
    op.add_argument("--kubeconfig", default=None)
    op.add_argument("--context", default=None)
    op.add_argument("--server", default=None, help="API server URL (instead of a kubeconfig)")
    op.add_argument("--ca", default=None, help="CA bundle for --server")
    op.add_argument("--token-file", default=None, help="bearer token file for --server")
    op.add_argument("--insecure-skip-tls-verify", action="store_true")
    op.add_argument("--proxy", default=None, help="HTTPS proxy URL (CONNECT)")
    op.add_argument("-H", "--header", action="append", default=[], help="extra request header 'Name: value'")
    op.add_argument("-n", "--namespace", default=None)
    op.add_argument("pod")
    op.add_argument("--timeout", type=float, default=120.0, help="total seconds")
    op.add_argument("--read-timeout", type=float, default=30.0, help="idle seconds")
    op.add_argument("--json", action="store_true", help="print the evidence as JSON")


def _endpoint(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from conformance.transport.endpoint import Endpoint

    if args.server:
        token = None
        if args.token_file:
            token = register_secret(Path(args.token_file).read_text().strip())
        endpoint = Endpoint(server=args.server, ca_file=args.ca, token=token,
                            insecure_skip_tls_verify=args.insecure_skip_tls_verify)
    elif args.kubeconfig:
        endpoint = Endpoint.from_kubeconfig(args.kubeconfig, args.context)
    else:
        raise ConfigError("give --kubeconfig (and optionally --context), or --server with --ca and --token-file")
    headers = []
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep:
            raise ConfigError(f"header {raw!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    if args.proxy:
        endpoint = replace(endpoint, proxy_url=args.proxy)
    if args.insecure_skip_tls_verify:
        endpoint = replace(endpoint, insecure_skip_tls_verify=True)
    return endpoint.with_headers(headers) if headers else endpoint


async def _run(args: argparse.Namespace) -> tuple[str, Evidence, dict[str, Any]]:
    from conformance import clients
    from conformance.transport.timeouts import Timeouts

    endpoint = _endpoint(args)
    ns = args.namespace or endpoint.namespace or "default"
    timeouts = Timeouts(total=args.timeout, read=args.read_timeout)
    op = args.operation
    if op == "exec":
        if args.tty and not args.stdin:
            raise ConfigError("--tty needs --stdin (a tty without stdin crashes some kubelets, e.g. kwok)")
        stdin = sys.stdin.buffer.read() if args.stdin else None
        r = await clients.exec_(endpoint, ns, args.pod, args.container, args.argv, protocol=args.protocol,
                                stdin=stdin, tty=args.tty, timeouts=timeouts)
        sys.stdout.buffer.write(r.stdout)
        sys.stderr.buffer.write(r.stderr)
        return (f"exit code {r.exit_code}", r.evidence,
                {"exit_code": r.exit_code, "stdout_bytes": r.stdout_bytes, "stderr_bytes": r.stderr_bytes})
    if op == "attach":
        r = await clients.attach(endpoint, ns, args.pod, args.container, protocol=args.protocol,
                                 max_duration=args.duration, max_bytes=args.max_bytes, timeouts=timeouts)
        sys.stdout.buffer.write(r.stdout)
        return (f"attached, {r.stdout_bytes} B of output", r.evidence, {"stdout_bytes": r.stdout_bytes})
    if op == "port-forward":
        pf = await clients.port_forward_echo(endpoint, ns, args.pod, args.port, protocol=args.protocol,
                                             size=args.bytes, connections=args.connections, timeouts=timeouts)
        rate = pf.bytes_echoed / pf.seconds / 1e6 if pf.seconds else 0.0
        return (f"{len(pf.connections)} connection(s) echoed {pf.bytes_echoed} B byte-exact "
                f"in {pf.seconds:.3f}s ({rate:.1f} MB/s)", pf.evidence, {"bytes_echoed": pf.bytes_echoed})
    if op in ("cp-upload", "cp-download"):
        fn = clients.cp_upload if op == "cp-upload" else clients.cp_download
        cp = await fn(endpoint, ns, args.pod, args.container, args.source, args.destination,
                      protocol=args.protocol, verify=not args.no_verify, timeouts=timeouts)
        return (f"{cp.direction} of {cp.bytes} B, sha256 {cp.sha256}"
                + (", verified in the pod" if cp.remote_sha256 else ""), cp.evidence,
                {"bytes": cp.bytes, "sha256": cp.sha256})
    logs = await clients.logs_follow(endpoint, ns, args.pod, args.container, max_bytes=args.max_bytes,
                                     max_duration=args.duration, tail_lines=args.tail, timeouts=timeouts)
    sys.stdout.buffer.write(logs.data)
    return f"{logs.bytes} B of log, ended by {logs.ended_by}", logs.evidence, {"bytes": logs.bytes}


def run(args: argparse.Namespace) -> int:
    from conformance.transport.errors import StreamingError

    try:
        summary, evidence, extra = asyncio.run(_run(args))
        ok, error_class = True, ErrorClass.NONE
    except StreamingError as exc:
        summary, evidence, extra = str(exc), exc.evidence, {}
        ok, error_class = False, exc.error_class
    except OSError as exc:  # a local file (cp source, token file) could not be read
        raise ConfigError(str(exc)) from exc
    doc = {"operation": args.operation, "ok": ok, "error_class": error_class.value, "summary": summary,
           **extra, "evidence": asdict(evidence)}
    doc = redact_obj(doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_human(doc)
    return 0 if ok else 1


def _print_human(doc: dict[str, Any]) -> None:
    ev = doc["evidence"]
    out = sys.stderr if not sys.stdout.isatty() else sys.stdout
    print(f"{'OK' if doc['ok'] else 'FAILED'} {doc['operation']}: {doc['summary']}", file=out)
    if not doc["ok"]:
        print(f"  error class: {doc['error_class']}", file=out)
    print(f"  protocol: asked {ev['protocol_requested']}, negotiated {ev['protocol_negotiated']}", file=out)
    print(f"  status line: {ev['status_line']}", file=out)
    timings = ", ".join(f"{k[:-2]} {v * 1000:.1f}ms" for k, v in ev["timings"].items() if v is not None)
    print(f"  timings: {timings}", file=out)
    print(f"  bytes sent {ev['bytes_sent']}, verified {ev['bytes_verified']}", file=out)
    for line in ev["transcript"]:
        print(f"  {line}", file=out)
    if ev["body_excerpt"]:
        print(f"  body: {ev['body_excerpt'][:500]}", file=out)
    for note in ev["notes"]:
        print(f"  note: {note}", file=out)
