"""A harness config from a kubeconfig's contexts: the `--kubeconfig K [--context a,b|all]` simple case and the
starting config `conformance config init` writes (docs/config.md).

Each context becomes a target named after it (straight: path `none`), run as a config user of the same name,
whose credential is `{type: kubeconfig, path, context}`: whatever the kubeconfig holds (token, tokenFile, client
certificate, exec plugin, oidc auth-provider) is used as the user's own clients would. The workload is the
first context's namespace (kubectl's `default` without one), a probe pod the harness creates there and
removes, through the first context's credential.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from conformance.config import HarnessConfig, parse_config
from conformance.errors import ConfigError
from conformance.kubeconfig_credentials import KubeconfigContext, context_names, kubeconfig_context, read_kubeconfig

DEFAULT_NAMESPACE = "default"  # kubectl's, for a context without one
PROBE_POD = "conformance-probe"
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def select_contexts(path: Path, context: str | None) -> list[KubeconfigContext]:
    """`None`: the current context; `a,b`: those, in that order; `all`: every context of the file."""
    doc = read_kubeconfig(path)
    names = context_names(doc)
    if context is None or not context.strip():
        chosen: list[str | None] = [None]
    elif context.strip() == "all":
        if not names:
            raise ConfigError(f"kubeconfig {path}: --context all, but it has no contexts")
        chosen = list(names)
    else:
        chosen = [c.strip() for c in context.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise ConfigError(f"kubeconfig {path}: no context {', '.join(map(repr, unknown))} "
                              f"(have: {', '.join(names) or 'none'})")
    return [kubeconfig_context(path, c, doc) for c in dict.fromkeys(chosen)]


def _name(value: str) -> str:
    return _NAME.sub("-", value).strip("-") or "context"


def ca_file(ctx: KubeconfigContext) -> str | None:
    """The cluster's CA as a file: the kubeconfig's `certificate-authority`, or its `-data` written once to a
    content-addressed file in the temporary directory (a CA certificate is public; the harness config's
    endpoints name CA files)."""
    cluster, base = ctx.cluster, Path(ctx.path).expanduser().resolve().parent
    if cluster.get("certificate-authority"):
        ca = Path(str(cluster["certificate-authority"])).expanduser()
        return str(ca if ca.is_absolute() else base / ca)
    data = cluster.get("certificate-authority-data")
    if not data:
        return None
    import base64
    import binascii

    try:
        pem = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"kubeconfig {ctx.path}: cluster {ctx.cluster_name!r}: certificate-authority-data is "
                          "not base64") from None
    out = Path(tempfile.gettempdir()) / "conformance-ca" / f"{hashlib.sha256(pem).hexdigest()[:32]}.crt"
    if not out.exists() or out.read_bytes() != pem:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        tmp.replace(out)
    return str(out)


def config_data(path: Path, contexts: list[KubeconfigContext]) -> dict[str, Any]:
    """The harness config (as data) for these contexts of one kubeconfig."""
    source = Path(path).expanduser().resolve()
    targets: dict[str, Any] = {}
    users: dict[str, Any] = {}
    for ctx in contexts:
        if not ctx.cluster.get("server"):
            raise ConfigError(f"kubeconfig {path}: cluster {ctx.cluster_name!r} (context {ctx.name!r}) has no server")
        if not ctx.user_name:
            raise ConfigError(f"kubeconfig {path}: context {ctx.name!r} names no user")
        # One config user per context, named after it: each target's identity is learned through that target
        # (a proxy may map the user), while contexts naming one kubeconfig user still share its exec cache.
        name = _unique(_name(ctx.name), targets)
        key = name
        users[key] = {"credential": {"type": "kubeconfig", "path": str(source), "context": ctx.name}}
        target: dict[str, Any] = {
            "description": f"context {ctx.name} of {source.name}: cluster {ctx.cluster_name}",
            "server": str(ctx.cluster["server"]),
            "user": key,
        }
        ca = ca_file(ctx)
        if ca:
            target["ca_file"] = ca
        if ctx.cluster.get("proxy-url"):
            target["proxy_url"] = str(ctx.cluster["proxy-url"])
        if ctx.cluster.get("insecure-skip-tls-verify"):
            target["insecure_skip_tls_verify"] = True
        targets[name] = target
    first = contexts[0]
    return {
        "version": 1,
        "source": f"kubeconfig {source}",
        "targets": targets,
        "users": users,
        "workload": {
            "namespace": first.namespace or DEFAULT_NAMESPACE,
            "pods": [PROBE_POD],
            "container": "main",
            "port": 8080,
            "manage": True,
            # The context's namespace exists: never read nor create it (a namespace-scoped user may not).
            "manage_namespace": False,
            "reuse": True,
            "kubeconfig": str(source),
            "context": first.name,
        },
    }


def _unique(name: str, taken: dict[str, Any]) -> str:
    out, n = name, 2
    while out in taken:
        out, n = f"{name}-{n}", n + 1
    return out


def config_from_kubeconfig(path: Path, context: str | None) -> HarnessConfig:
    """The simple case: each chosen context a target, as that context's user, in the first one's namespace."""
    contexts = select_contexts(path, context)
    return parse_config(config_data(path, contexts), Path(path))


# --- `conformance config init` ----------------------------------------------------------------------------------

HEADER = """\
# A starting harness config, written by `conformance config init` from {source}
# (contexts: {contexts}). Run it with `pytest suites/ --config=THIS_FILE`; docs/config.md names every key.
# Credentials stay in the kubeconfig: each user is {{type: kubeconfig, path, context}}, read when a cell runs
# (token, tokenFile, client certificate, exec plugin or oidc auth-provider), never copied here.
#
# To fill in (search for "FILL IN"):
# - users.*.expect: who the API server must see for each user (user, groups; uid, extra if they matter).
#   Without it the harness asks once per user with a SelfSubjectReview and holds every cell to that answer.
# - paths: the network paths in front of each target (load balancers, ingress, a forward proxy), as
#   `targets.<name>.via.<path>: {{server, ca_file, proxy_url}}` plus a `paths.<path>` entry each.
# - impersonating_proxy: for a target that is an impersonating proxy (kube-oidc-proxy, OpenUnison), the
#   identity the API server sees for its requests, so the harness can check the chain.
# - identity.audit: the API server's audit log file (Metadata level), to judge each cell by its own
#   request's audit event rather than by a SelfSubjectReview (then set identity.require: audit).
# - workload: the namespace and probe pod; with manage: true the harness creates the pod and removes it.
"""


def render_config(path: Path, context: str | None) -> str:
    """The commented YAML of `conformance config init`; it loads with `load_config` as written."""
    contexts = select_contexts(path, context)
    data = config_data(path, contexts)
    parse_config(data, Path(path))  # what we write must load
    out = [HEADER.format(source=data["source"].removeprefix("kubeconfig "),
                         contexts=", ".join(c.name for c in contexts))]
    out.append(yaml.safe_dump({"version": data["version"], "source": data["source"]}, sort_keys=False))
    out.append("targets:\n")
    for name, target in data["targets"].items():
        out.append(_indent(yaml.safe_dump({name: target}, sort_keys=False), 2))
        out.append("    # FILL IN, if this target is an impersonating proxy:\n"
                   "    # impersonating_proxy: {user: kube-oidc-proxy, groups: [system:authenticated]}\n"
                   "    # FILL IN, the network paths in front of it:\n"
                   "    # via:\n    #   alb: {server: https://lb.example:443, ca_file: /path/to/lb-ca.crt}\n")
    out.append("# paths:\n#   alb: {description: the ALB in front of the API server, kind: alb, idle_timeout_s: 60}\n")
    out.append("users:\n")
    for name, user in data["users"].items():
        out.append(_indent(yaml.safe_dump({name: user}, sort_keys=False), 2))
        out.append("    # FILL IN who the API server must see (else learned once with a SelfSubjectReview):\n"
                   "    # expect: {user: alice@example.com, groups: [devs, system:authenticated]}\n")
    out.append(yaml.safe_dump({"workload": data["workload"]}, sort_keys=False))
    out.append("# FILL IN the API server's audit log (Metadata level) to judge identity by each cell's own request:\n"
               "# identity:\n#   audit: {type: file, path: /var/log/kubernetes/audit.log}\n#   require: audit\n")
    return "".join(out)


def _indent(text: str, n: int) -> str:
    return "".join(" " * n + line if line.strip() else line for line in text.splitlines(keepends=True))
