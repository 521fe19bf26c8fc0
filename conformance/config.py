"""The harness config: targets, paths, users (credential sources and expected identities), identity
sources and the workload. Written by `conformance lab up` for the local lab, by hand for a real cluster
(docs/config.md). Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance.classify import Answer, parse_answers
from conformance.errors import ConfigError
from conformance.exec_credential import DEFAULT_TIMEOUT_S as DEFAULT_EXEC_TIMEOUT_S
from conformance.identity import ExpectedIdentity, ProxyIdentity
from conformance.kubeconfig_credentials import ClientCredential, kubeconfig_user
from conformance.redact import register_secret

SUPPORTED_VERSIONS = (1,)
PROXY_AUDIT_FORMATS = ("k8s-audit", "openunison-access-log")


@dataclass(frozen=True)
class Endpoint:
    """How a client reaches one target through one path."""

    server: str
    ca_file: str | None = None
    proxy_url: str | None = None  # an HTTPS forward proxy reached with CONNECT
    available: bool = True
    insecure_skip_tls_verify: bool = False


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    endpoints: dict[str, Endpoint]  # by path name; "none" is straight to the target
    impersonating_proxy: dict[str, Any] | None = None  # the identity the API server sees for proxied requests
    proxy: ProxyIdentity | None = None  # impersonating_proxy, parsed
    answers: tuple[Answer, ...] = ()  # proxy_answers: refusals the target's own proxy documents
    standin: bool = False
    client_impersonation: str = "refuse"  # what it does with client Impersonate-*: "refuse" or "authorize"
    quiet_stream_cut_s: float | None = None  # it cuts a plain response silent this long (watch-quiet cells)
    idle_timeout_s: float | None = None  # the target itself cuts sessions silent this long (idle cells)
    user: str | None = None  # the config user its cells run as, overriding the run's user
    proxy_audit: Path | None = None  # the impersonating proxy's own record of each request
    proxy_audit_format: str = "k8s-audit"  # k8s-audit (kube-oidc-proxy) or openunison-access-log


@dataclass(frozen=True)
class Path_:
    name: str
    description: str
    kind: str
    idle_timeout_s: float | None = None
    answers: tuple[Answer, ...] = ()  # refusals the path's own software documents (e.g. Envoy's 403)


@dataclass(frozen=True)
class User:
    name: str
    credential: dict[str, Any]
    expect: dict[str, Any] = field(default_factory=dict)
    expected: ExpectedIdentity | None = None  # expect, parsed; None: taken from a SelfSubjectReview at the start


@dataclass(frozen=True)
class Workload:
    """Where the cells run; with `manage` the harness creates and removes it (conformance.workload, docs/config.md)."""

    namespace: str
    pods: tuple[str, ...]
    container: str
    port: int
    manage: bool = False
    manage_namespace: bool = True  # with manage: create and delete the namespace too (false: it exists)
    image: str | None = None
    reuse: bool = False  # use an existing namespace/pod instead of refusing it; never delete what existed
    kubeconfig: str | None = None  # the credential that creates and deletes (default: the matrix user's token)
    context: str | None = None
    command: tuple[str, ...] | None = None  # the probe container's argv (default: tick to stdout + echo listener)
    pod_overrides: dict[str, Any] = field(default_factory=dict)  # merged into the pod spec (None deletes a key)
    grant: tuple[dict[str, str], ...] = ()  # RBAC subjects given streaming rights in the namespace
    ready_timeout_s: float = 120.0


@dataclass(frozen=True)
class HarnessConfig:
    source: str
    path: Path
    targets: dict[str, Target]
    paths: dict[str, Path_]
    users: dict[str, User]
    workload: Workload
    audit_log: Path | None
    digest: str
    raw: dict[str, Any]
    # "audit": a worked cell needs the API server's audit event of its own request; "any": a
    # SelfSubjectReview through the same target and path is enough (docs/config.md, identity.require).
    identity_require: str = "any"

    def token(self, user: str) -> str:
        """A bearer token for a configured user, minted or read now, and registered for redaction."""
        if user not in self.users:
            raise ConfigError(f"{self.path}: users.{user} is not defined (have: {', '.join(self.users)})")
        cred = self.users[user].credential
        if cred.get("type") == "kubeconfig":
            token = self.credential(user).token
            if not token:
                raise ConfigError(f"{self.path}: users.{user}: the kubeconfig user holds a client certificate, "
                                  "not a token, and this needs a token")
            return token
        return register_secret(resolve_credential(self.path, user, cred))

    def credential(self, user: str) -> ClientCredential:
        """Everything a client sends for a user: a token, or for a `kubeconfig` credential whatever the
        kubeconfig's user holds (token, client certificate, an exec plugin's answer; docs/config.md)."""
        if user not in self.users:
            raise ConfigError(f"{self.path}: users.{user} is not defined (have: {', '.join(self.users)})")
        cred = self.users[user].credential
        if cred.get("type") != "kubeconfig":
            return ClientCredential(token=self.token(user))
        return kubeconfig_user(
            Path(os.path.expanduser(cred["path"])), cred.get("context"),
            exec_timeout_s=float(cred.get("exec_timeout_s", DEFAULT_EXEC_TIMEOUT_S)),
        ).resolve()

    def bad_token(self, user: str, kind: str) -> str | None:
        """A deliberately bad token (expired, wrong_audience, ...) for a lab-oidc user; None for other sources."""
        cred = self.users[user].credential
        if cred.get("type") != "lab-oidc":
            return None
        from conformance.lab.issuer import TokenKind, mint_token

        return register_secret(
            mint_token(
                Path(cred["signing_key"]),
                cred["issuer"],
                user=cred.get("user", user),
                audience=cred.get("audience", "conformance-lab"),
                kind=TokenKind(kind),
            )
        )


def _need(data: dict[str, Any], key: str, where: str, path: Path, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ConfigError(f"{path}: {where}.{key} is missing")
    value = data[key]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{path}: {where}.{key} must be a {expected}, got {type(value).__name__} {value!r}")
    return value


def _endpoint(data: Any, where: str, path: Path) -> Endpoint:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {where} must be a mapping with a `server`")
    return Endpoint(
        server=_need(data, "server", where, path),
        ca_file=data.get("ca_file"),
        proxy_url=data.get("proxy_url"),
        available=bool(data.get("available", True)),
        insecure_skip_tls_verify=bool(data.get("insecure_skip_tls_verify", False)),
    )


SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


def _workload(w: dict[str, Any], path: Path) -> Workload:
    def opt(key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        return _need(w, key, "workload", path, kind) if w.get(key) is not None else default

    command = opt("command", list)
    if command is not None and (not command or not all(isinstance(a, str) for a in command)):
        raise ConfigError(f"{path}: workload.command must be a non-empty list of strings (an argv)")
    grant = opt("grant", list, [])
    for i, subject in enumerate(grant):
        if not isinstance(subject, dict) or subject.get("kind") not in SUBJECT_KINDS or not subject.get("name"):
            raise ConfigError(
                f"{path}: workload.grant[{i}] must be a mapping with kind ({', '.join(SUBJECT_KINDS)}) and name, "
                f"got {subject!r}"
            )
    ready_timeout = float(opt("ready_timeout_s", (int, float), 120.0))
    if ready_timeout <= 0:
        raise ConfigError(f"{path}: workload.ready_timeout_s must be positive, got {ready_timeout}")
    kubeconfig = opt("kubeconfig", str)
    pods = _need(w, "pods", "workload", path, list)
    if not pods or not all(isinstance(p, str) and p for p in pods):
        raise ConfigError(f"{path}: workload.pods must be a non-empty list of pod names, got {pods!r}")
    return Workload(
        namespace=_need(w, "namespace", "workload", path),
        pods=tuple(pods),
        container=w.get("container", "main"),
        port=int(w.get("port", 8080)),
        manage=bool(w.get("manage", False)),
        manage_namespace=bool(opt("manage_namespace", bool, True)),
        image=opt("image", str),
        reuse=bool(opt("reuse", bool, False)),
        kubeconfig=os.path.expanduser(kubeconfig) if kubeconfig else None,
        context=opt("context", str),
        command=tuple(command) if command is not None else None,
        pod_overrides=dict(opt("pod_overrides", dict, {})),
        grant=tuple({str(k): str(v) for k, v in s.items()} for s in grant),
        ready_timeout_s=ready_timeout,
    )


def _kubeconfig_credential(cred: dict[str, Any], where: str, path: Path) -> None:
    """{type: kubeconfig, path, context, exec_timeout_s}: checked now, read when a cell needs it."""
    _need(cred, "path", where, path)
    if cred.get("context") is not None:
        _need(cred, "context", where, path)
    _positive(cred.get("exec_timeout_s"), f"{where}.exec_timeout_s", path)
    unknown = set(cred) - {"type", "path", "context", "exec_timeout_s"}
    if unknown:
        raise ConfigError(f"{path}: {where}: unknown keys {', '.join(sorted(unknown))} (a kubeconfig credential has "
                          "path, context and exec_timeout_s)")


def _positive(value: Any, where: str, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{path}: {where} must be a positive number of seconds, got {value!r}")
    return float(value)


def parse_config(data: Any, path: Path) -> HarnessConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(f"{path}: version must be one of {SUPPORTED_VERSIONS}, got {version!r}")
    targets: dict[str, Target] = {}
    for name, t in _need(data, "targets", "", path, dict).items():
        where = f"targets.{name}"
        if not isinstance(t, dict):
            raise ConfigError(f"{path}: {where} must be a mapping")
        endpoints = {"none": _endpoint(t, where, path)}
        for path_name, ep in (t.get("via") or {}).items():
            endpoints[path_name] = _endpoint(ep, f"{where}.via.{path_name}", path)
        proxy_audit = t.get("proxy_audit") or {}
        if proxy_audit and (proxy_audit.get("type") != "file" or not proxy_audit.get("path")):
            raise ConfigError(f"{path}: {where}.proxy_audit must be {{type: file, path: ..., format: k8s-audit}}")
        if proxy_audit.get("format", "k8s-audit") not in PROXY_AUDIT_FORMATS:
            raise ConfigError(
                f"{path}: {where}.proxy_audit.format must be one of {', '.join(PROXY_AUDIT_FORMATS)}, "
                f"got {proxy_audit['format']!r}"
            )
        targets[name] = Target(
            name=name,
            description=t.get("description", ""),
            endpoints=endpoints,
            impersonating_proxy=t.get("impersonating_proxy"),
            proxy=ProxyIdentity.from_config(t.get("impersonating_proxy"), f"{path}: {where}.impersonating_proxy"),
            answers=parse_answers(t.get("proxy_answers"), f"proxy:{name}", f"{path}: {where}.proxy_answers"),
            standin=bool(t.get("standin")),
            client_impersonation=t.get("client_impersonation", "refuse"),
            quiet_stream_cut_s=_positive(t.get("quiet_stream_cut_s"), f"{where}.quiet_stream_cut_s", path),
            idle_timeout_s=_idle_timeout(t, where, path),
            user=t.get("user"),
            proxy_audit=Path(proxy_audit["path"]) if proxy_audit else None,
            proxy_audit_format=proxy_audit.get("format", "k8s-audit") if proxy_audit else "k8s-audit",
        )
    paths = {"none": Path_("none", "straight to the target", "none")}
    for name, p in (data.get("paths") or {}).items():
        if not isinstance(p, dict):
            raise ConfigError(f"{path}: paths.{name} must be a mapping")
        paths[name] = Path_(
            name,
            p.get("description", ""),
            p.get("kind", name),
            p.get("idle_timeout_s"),
            parse_answers(p.get("answers"), f"path:{name}", f"{path}: paths.{name}.answers"),
        )
    for name, target in targets.items():
        for path_name in target.endpoints:
            if path_name not in paths:
                raise ConfigError(
                    f"{path}: targets.{name}.via.{path_name}: no path {path_name!r} under `paths:` "
                    f"(have: {', '.join(paths)}); declare it there (description, idle_timeout_s, answers)"
                )
    users = {}
    for name, u in _need(data, "users", "", path, dict).items():
        cred = _need(u, "credential", f"users.{name}", path, dict)
        _need(cred, "type", f"users.{name}.credential", path)
        if cred["type"] == "kubeconfig":
            _kubeconfig_credential(cred, f"users.{name}.credential", path)
        expect = u.get("expect") or {}
        if not isinstance(expect, dict):
            raise ConfigError(f"{path}: users.{name}.expect must be a mapping (user, groups, uid, extra)")
        expected = ExpectedIdentity.from_config(expect, f"{path}: users.{name}.expect") if expect else None
        users[name] = User(name, cred, expect, expected)
    for name, target in targets.items():
        if target.user is not None and target.user not in users:
            raise ConfigError(f"{path}: targets.{name}.user: {target.user!r} is not in users ({', '.join(users)})")
    workload = _workload(_need(data, "workload", "", path, dict), path)
    identity = data.get("identity") or {}
    if not isinstance(identity, dict):
        raise ConfigError(f"{path}: identity must be a mapping (audit, require)")
    audit = identity.get("audit") or {}
    audit_log = Path(audit["path"]) if audit.get("type") == "file" and audit.get("path") else None
    require = identity.get("require", "audit" if audit_log else "any")
    if require not in ("audit", "any"):
        raise ConfigError(f"{path}: identity.require must be `audit` or `any`, got {require!r}")
    if require == "audit" and audit_log is None:
        raise ConfigError(f"{path}: identity.require is `audit` but identity.audit names no audit log file")
    digest = hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()
    return HarnessConfig(
        source=data.get("source", str(path)),
        path=path,
        targets=targets,
        paths=paths,
        users=users,
        workload=workload,
        audit_log=audit_log,
        digest=digest,
        raw=data,
        identity_require=require,
    )


def load_config(path: Path) -> HarnessConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, path)


def resolve_credential(path: Path, user: str, cred: dict[str, Any]) -> str:
    """Turn a credential source into a token. Types: lab-oidc, lab-serviceaccount, token-file, env."""
    kind = cred.get("type")
    if kind == "lab-oidc":
        from conformance.lab.issuer import TokenKind, mint_token

        return mint_token(
            Path(cred["signing_key"]),
            cred["issuer"],
            user=cred.get("user", user),
            audience=cred.get("audience", "conformance-lab"),
            kind=TokenKind.VALID,
        )
    if kind == "lab-serviceaccount":
        from conformance.lab.bootstrap import service_account_token

        try:
            return service_account_token(
                Path(cred["kubeconfig"]), cred["namespace"], cred["name"], int(cred.get("expiration_s", 600))
            )
        except KeyError as exc:
            raise ConfigError(f"{path}: users.{user}.credential needs kubeconfig, namespace and name") from exc
    if kind == "token-file":
        try:
            return Path(cred["path"]).read_text().strip()
        except (OSError, KeyError) as exc:
            raise ConfigError(f"{path}: users.{user}.credential.path: cannot read the token file") from exc
    if kind == "inline-token-from-kubeconfig":
        try:
            kc = yaml.safe_load(Path(cred["kubeconfig"]).read_text())
            entry = next(u["user"] for u in kc.get("users", []) if u.get("name") == cred.get("user"))
            return str(entry["token"])
        except (OSError, KeyError, StopIteration, yaml.YAMLError) as exc:
            raise ConfigError(f"{cred.get('kubeconfig')}: user {cred.get('user')!r} has no readable token") from exc
    if kind == "env":
        value = os.environ.get(cred.get("name", ""))
        if not value:
            raise ConfigError(f"{path}: users.{user}.credential: environment variable {cred.get('name')!r} is empty")
        return value
    raise ConfigError(
        f"{path}: users.{user}.credential.type must be kubeconfig, lab-oidc, lab-serviceaccount, token-file or env, "
        f"got {kind!r}"
    )

def _idle_timeout(data: dict[str, Any], where: str, path: Path) -> float | None:
    value = data.get("idle_timeout_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{path}: {where}.idle_timeout_s must be a positive number of seconds, got {value!r}")
    return float(value)
