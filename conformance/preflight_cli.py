"""`conformance preflight` (the checks the suites run before the matrix, on their own) and `conformance rights`
(the rights each operation needs, and the Role + RoleBinding that grants them)."""

from __future__ import annotations

import argparse
from typing import Any

from conformance import rights
from conformance.errors import ConfigError

EXIT_READY, EXIT_DEGRADED, EXIT_STOP = 0, 1, 4  # 4: what the suites exit with when the preflight stops them


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pre = sub.add_parser(
        "preflight",
        help="check endpoints (TCP, TLS), identity, rights and the workload; exit 0 ready, 1 degraded, 4 stop",
    )
    source = pre.add_mutually_exclusive_group()
    source.add_argument("--config", help="harness config (default: the running local lab's)")
    source.add_argument("--kubeconfig", help="check the cluster of this kubeconfig")
    pre.add_argument("--context", help="kubeconfig context (with --kubeconfig)")
    pre.add_argument("--user", help="the config user (default: the config's only user, else alice)")
    pre.add_argument("--pod", help="an existing pod to run in instead of creating one")
    pre.add_argument("--target", default="all", help="targets, comma-separated, or all")
    pre.add_argument("--path", default="all", help="network paths, comma-separated, or all")
    pre.add_argument("--op", default="all", help="operations, comma-separated, or all")
    r = sub.add_parser("rights", help="the RBAC rights each operation needs; --manifest prints a Role + RoleBinding")
    r.add_argument("--manifest", action="store_true", help="print the Role and RoleBinding (YAML) for kubectl apply")
    r.add_argument("--user", action="append", default=[], help="a user to bind, as the API server names it")
    r.add_argument("--group", action="append", default=[], help="a group to bind (repeatable)")
    r.add_argument("--namespace", default="conformance", help="the namespace the cells run in")
    r.add_argument("--op", default="all", help="operations, comma-separated, or all")
    r.add_argument(
        "--existing-pod",
        action="store_true",
        help="the cells run in an existing pod (--pod): no right to create or delete pods",
    )


def _selection(raw: str, known: list[str], what: str) -> list[str]:
    items = [x.strip() for x in raw.split(",") if x.strip()]
    if not items or "all" in items:
        return known
    unknown = [x for x in items if x not in known]
    if unknown:
        raise ConfigError(f"--{what}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def run_rights(args: argparse.Namespace) -> int:
    ops = _selection(args.op, list(rights.OPERATION_RIGHTS), "op")
    if not args.manifest:
        print("\n".join(rights.table(ops)))
        return 0
    if not args.user and not args.group:
        raise ConfigError("rights --manifest needs --user or --group: who the RoleBinding is for")
    needed = rights.rights_for_run(ops, create_pod=not args.existing_pod)
    print(rights.manifest(args.namespace, needed, users=args.user, groups=args.group), end="")
    return 0


def run_preflight(args: argparse.Namespace) -> int:
    from conformance import preflight
    from conformance.cells import OPERATIONS
    from conformance.plugin import OPTIONS, Settings
    from conformance.suite_session import _load_harness_config, _with_pod
    from conformance.workload import WorkloadManager

    values: dict[str, Any] = {o.name: None for o in OPTIONS}
    values.update(config=args.config, kubeconfig=args.kubeconfig, context=args.context, pod=args.pod)
    settings = Settings(values, {name: f"--{name}" for name in values})
    config = _with_pod(_load_harness_config(settings), settings)
    user = args.user or (next(iter(config.users)) if len(config.users) == 1 else "alice")
    if user not in config.users:
        raise ConfigError(f"--user: {user!r} is not in {config.path} (users: {', '.join(config.users)})")
    manager = WorkloadManager(config, user, log=lambda m: None)
    report = preflight.gather(
        config,
        user,
        manager,
        targets=_selection(args.target, list(config.targets), "target"),
        paths=_selection(args.path, list(config.paths), "path"),
        operations=_selection(args.op, list(OPERATIONS), "op"),
    )
    print("\n".join(preflight.render(report)))
    return {preflight.Verdict.READY: EXIT_READY, preflight.Verdict.DEGRADED: EXIT_DEGRADED}.get(
        report.verdict, EXIT_STOP
    )
