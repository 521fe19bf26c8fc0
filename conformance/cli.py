"""The `conformance` command.

conformance lab build [--force] [--only NAME ...]
conformance lab up [--paths nlb,alb,ingress,gateway,https-proxy | all | none] | down | status | env
conformance lab token --user alice [--kind expired]
conformance lab kubeconfig --target jetstack|jetstack-0.3|jetstack-passthrough[-sa]|direct|openunison [--path alb]
    --user alice|sa-alice [--output FILE]
conformance lab kubeconfig --credential token|exec|client-cert --target direct,jetstack/alb --user dana [--output F]
conformance config init --kubeconfig K [--context a,b|all] > harness.yaml
conformance lab fault --target jetstack --fault corrupt:65536 [--name NAME]  |  conformance lab fault --remove NAME
conformance report RESULTS [--format terminal|grid|md|html|junit|json] [--output FILE]
conformance report diff OLD NEW [--format terminal|md]  |  conformance report merge A B ... --output FILE
conformance probe exec|attach|port-forward|cp-upload|cp-download|logs --protocol P --kubeconfig K -n NS POD ...
conformance preflight [--config F | --kubeconfig K [--context C]] [--user U] [--pod P] [--target/--path/--op ...]
conformance rights [--op ...]  |  conformance rights --manifest --user U --namespace N [--existing-pod]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conformance import preflight_cli, probe_cli, report_cli
from conformance.errors import ConformanceError

if TYPE_CHECKING:
    from conformance.lab.lab import ComponentStatus


def _lab_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser("lab", help="build, start and stop the local lab")
    labsub = lab.add_subparsers(dest="lab_command", required=True)
    build = labsub.add_parser("build", help="build or install every lab component into the cache")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument(
        "--only",
        action="append",
        default=[],
        help=(
            "kubernetes, etcd, kwok, kube-oidc-proxy (both), kube-oidc-proxy-0.3, kubectl, or paths "
            "(haproxy, nginx, squid, envoy) (repeatable)"
        ),
    )
    up = labsub.add_parser("up", help="start the lab (builds missing components first)")
    up.add_argument("--port-base", type=int, default=None, help="first port of the lab's block (default 17400)")
    up.add_argument(
        "--paths",
        default=None,
        help="network paths to start, comma-separated: nlb, alb, ingress, gateway, https-proxy; `all` (the "
        "default) or `none`. On a running lab, starts those missing or dead. Env "
        "CONFORMANCE_LAB_ALB_IDLE_TIMEOUT sets the alb's idle timeout (default 60 s).",
    )
    labsub.add_parser("down", help="stop every lab process")
    labsub.add_parser("status", help="each component, its pid, port, health and resident memory")
    labsub.add_parser("env", help="the lab's endpoints as shell export lines")
    token = labsub.add_parser("token", help="print an OIDC token for a lab user")
    token.add_argument("--user", required=True)
    token.add_argument(
        "--kind",
        default="valid",
        help="valid, expired, wrong-audience, wrong-issuer, bad-signature, unknown-key, not-yet-valid",
    )
    token.add_argument("--lifetime", type=int, default=3600, help="seconds")
    kubeconfig = labsub.add_parser("kubeconfig", help="write a kubeconfig for a lab user through a target")
    kubeconfig.add_argument("--target", default="direct", help="a lab target (harness config targets)")
    kubeconfig.add_argument("--path", default="none", help="none (default), nlb, alb, ingress, gateway, https-proxy")
    kubeconfig.add_argument("--user", required=True)
    kubeconfig.add_argument("--output", default=None)
    kubeconfig.add_argument(
        "--credential", default=None, choices=("token", "exec", "client-cert"),
        help="the lab as your own cluster: one context per --target (comma-separated, TARGET or TARGET/PATH), the "
        "user's credential a token, an exec plugin (short-lived tokens) or a client certificate (direct only)",
    )
    kubeconfig.add_argument("--exec-lifetime", type=int, default=20, help="seconds (--credential exec)")
    kubeconfig.add_argument("--exec-log", default=None, help="append a line per exec plugin run (--credential exec)")
    fault = labsub.add_parser(
        "fault",
        help="put a fault-injecting hop in front of a target as the extra path fault-NAME (docs/paths.md)",
    )
    fault.add_argument("--target", default=None, help="direct, jetstack or openunison")
    fault.add_argument(
        "--fault",
        default=None,
        help="none, corrupt:N, corrupt-c2s:N, truncate:N, idle-cut:S, swap-credential:USER, extra-group:GROUP, "
        "anonymous-as:USER, swallow-eof, latency:MS, pass-impersonation (direct only)",
    )
    fault.add_argument("--name", default=None, help="the path is fault-NAME (default: TARGET-KIND)")
    fault.add_argument("--remove", metavar="NAME", default=None, help="stop fault hop NAME and drop its path")


def _run_lab(args: argparse.Namespace) -> int:
    from pathlib import Path

    from conformance.lab import build, lab

    cmd = args.lab_command
    if cmd == "build":
        build.build_all(force=args.force, only=args.only)
    elif cmd == "up":
        from conformance.lab.network_paths import parse_path_list

        lab.up(port_base=args.port_base, paths=None if args.paths is None else parse_path_list(args.paths))
    elif cmd == "down":
        lab.down()
    elif cmd == "status":
        return _print_status(lab.status())
    elif cmd == "env":
        print("\n".join(lab.env_lines()))
    elif cmd == "token":
        from conformance.lab.issuer import TokenKind

        kinds = {k.value: k for k in TokenKind}
        args.kind = args.kind.replace("-", "_")
        if args.kind not in kinds:
            raise ConformanceError(f"unknown token kind {args.kind!r}: choose one of {', '.join(kinds)}")
        print(lab.token(args.user, kinds[args.kind], lifetime_s=args.lifetime))
    elif cmd == "fault":
        if args.remove:
            return 0 if lab.remove_fault(args.remove) else 1
        if not args.target or not args.fault:
            raise ConformanceError("lab fault needs --target and --fault (or --remove NAME)")
        lab.add_fault(args.target, args.fault, args.name)
    elif cmd == "kubeconfig" and args.credential:
        routes = [(t.split("/", 1)[0], t.split("/", 1)[1] if "/" in t else args.path)
                  for t in args.target.split(",") if t]
        print(lab.own_cluster_kubeconfig(routes, args.user, args.credential, Path(args.output) if args.output else None,
                                         exec_lifetime_s=args.exec_lifetime,
                                         exec_log=Path(args.exec_log) if args.exec_log else None))
    elif cmd == "kubeconfig":
        print(lab.kubeconfig(args.target, args.user, Path(args.output) if args.output else None, path=args.path))
    return 0


def _print_status(rows: Sequence[ComponentStatus]) -> int:
    if not rows:
        print("the lab is not running: start it with `conformance lab up`")
        return 1
    print(f"{'COMPONENT':<24} {'PID':>7} {'PORT':>6} {'RSS MiB':>8}  HEALTH")
    for row in rows:
        health = "healthy" if row.healthy else ("UNHEALTHY" if row.alive else "DEAD")
        rss = f"{row.rss_kib / 1024:.1f}" if row.alive else "-"
        print(f"{row.name:<24} {row.pid:>7} {row.port or '-':>6} {rss:>8}  {health} ({row.detail})")
    total = sum(r.rss_kib for r in rows) / 1024
    print(f"{'TOTAL':<24} {'':>7} {'':>6} {total:>8.1f}  resident memory of every lab process (VmRSS)")
    return 0 if all(r.healthy for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="conformance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _lab_parser(sub)
    config = sub.add_parser("config", help="harness configs")
    configsub = config.add_subparsers(dest="config_command", required=True)
    init = configsub.add_parser("init", help="print a starting harness config from a kubeconfig's contexts, "
                                "with comments on what to fill in")
    init.add_argument("--kubeconfig", required=True)
    init.add_argument("--context", default=None, help="a,b or all (default: the current context)")
    report_cli.add_parser(sub)
    probe_cli.add_parser(sub)
    preflight_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "lab":
            return _run_lab(args)
        if args.command == "config":
            from pathlib import Path

            from conformance.kubeconfig_config import render_config

            sys.stdout.write(render_config(Path(args.kubeconfig), args.context))
            return 0
        if args.command == "report":
            return report_cli.run(args)
        if args.command == "probe":
            return probe_cli.run(args)
        if args.command == "preflight":
            return preflight_cli.run_preflight(args)
        if args.command == "rights":
            return preflight_cli.run_rights(args)
    except ConformanceError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
