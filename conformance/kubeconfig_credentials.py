"""Every credential a kubeconfig user can hold, resolved for every cell client.

A kubeconfig user is read once per run and process (`kubeconfig_user`, cached by file and user name) and
resolved per cell (`KubeconfigUser.resolve`) into a `ClientCredential`:
- `token`, `tokenFile` (read at each resolve: a rotated file is picked up);
- `client-certificate`/`client-key` (files) or `-data` (PEM in the kubeconfig);
- `exec` (ExecCredential v1 and v1beta1, conformance.exec_credential: a token or a client certificate,
  cached until its expirationTimestamp);
- the legacy `auth-provider: oidc` (its `id-token`, used as is: the harness does not refresh it).

Clients take what they can: the native client a token and/or a TLS client certificate; the Python client
the same; kubectl gets a minimal kubeconfig carrying the user's own stanza (`kubectl_user`), so it runs the
exec plugin itself, as it does for the user. Tokens and keys are registered with conformance.redact.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from conformance.errors import ConfigError
from conformance.exec_credential import DEFAULT_TIMEOUT_S, ExecPlugin
from conformance.kubeconfig_fields import b64 as _b64
from conformance.kubeconfig_fields import named as _named
from conformance.kubeconfig_fields import resolve as _resolve
from conformance.redact import register_secret

if TYPE_CHECKING:
    from conformance.transport.endpoint import Endpoint

KINDS = ("token", "tokenFile", "client-certificate", "exec", "auth-provider")


@dataclass(frozen=True)
class ClientCredential:
    """What a client sends: a bearer token and/or a client certificate (files or PEM data)."""

    token: str | None = field(default=None, repr=False)
    cert_file: str | None = None
    key_file: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)
    # The kubeconfig user stanza that yields this credential (for kubectl), None for harness-made tokens.
    kubectl_user: dict[str, Any] | None = field(default=None, repr=False, compare=False, hash=False)

    @property
    def has_certificate(self) -> bool:
        return bool((self.cert_file and self.key_file) or (self.cert_pem and self.key_pem))

    @property
    def kind(self) -> str:
        if self.token and self.has_certificate:
            return "token+client-certificate"
        return "token" if self.token else "client-certificate" if self.has_certificate else "none"


@contextlib.contextmanager
def certificate_files(cred: ClientCredential) -> Iterator[tuple[str, str] | None]:
    """Paths to the certificate and key, for libraries that only load files (ssl, the Python client).

    Files named in the kubeconfig are used where they are; PEM data is written to a private (0700) directory
    as 0600 files and removed when the block ends.
    """
    if cred.cert_file and cred.key_file:
        yield cred.cert_file, cred.key_file
        return
    if not (cred.cert_pem and cred.key_pem):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="conformance-cert-") as tmp:
        cert, key = Path(tmp, "client.crt"), Path(tmp, "client.key")
        for path, data in ((cert, cred.cert_pem), (key, cred.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        yield str(cert), str(key)


def tls_context(ca_file: str | None, insecure: bool, cred: ClientCredential | None) -> ssl.SSLContext | bool:
    """`verify=` for httpx: the CA (or the system's, or none when insecure) and the client certificate, if any."""
    if cred is None or not cred.has_certificate:
        if insecure:
            return False
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file and not insecure else ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with certificate_files(cred) as files:
            assert files is not None  # has_certificate
            ctx.load_cert_chain(*files)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"client certificate: {exc}") from None
    return ctx


def endpoint_with(cred: ClientCredential | None, **fields: Any) -> Endpoint:
    """A transport Endpoint (server, ca_file, proxy_url, ...: `fields`) that sends this credential."""
    from conformance.transport.endpoint import Endpoint

    if cred is None:
        return Endpoint(**fields)
    return Endpoint(
        token=cred.token or None,
        client_cert_file=cred.cert_file,
        client_key_file=cred.key_file,
        client_cert_data=cred.cert_pem,
        client_key_data=cred.key_pem,
        **fields,
    )


@dataclass
class KubeconfigUser:
    """One kubeconfig user stanza, ready to resolve (the exec plugin's answer is cached here)."""

    name: str
    stanza: dict[str, Any]
    base_dir: Path
    where: str
    exec_plugin: ExecPlugin | None = None

    @property
    def kind(self) -> str:
        for kind in KINDS:
            if kind in self.stanza:
                return kind
        if "client-certificate-data" in self.stanza:
            return "client-certificate"
        return "none"

    def resolve(self) -> ClientCredential:
        u = self.stanza
        token: str | None = None
        if self.exec_plugin is not None:
            answer = self.exec_plugin.credential()
            cred = _certificate(u, self.base_dir, self.where)
            return ClientCredential(
                token=answer.token,
                cert_file=cred.cert_file, key_file=cred.key_file,
                cert_pem=answer.cert_pem or cred.cert_pem, key_pem=answer.key_pem or cred.key_pem,
                kubectl_user=self.kubectl_user(),
            )
        if u.get("token"):
            token = str(u["token"])
        elif u.get("tokenFile"):
            path = _resolve(self.base_dir, u["tokenFile"]) or ""
            try:
                token = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{self.where}: tokenFile {path}: {exc.strerror}") from None
            if not token:
                raise ConfigError(f"{self.where}: tokenFile {path} is empty")
        elif "auth-provider" in u:
            token = self._auth_provider_token()
        cred = _certificate(u, self.base_dir, self.where)
        if token:
            register_secret(token)
        if not token and not cred.has_certificate:
            raise ConfigError(f"{self.where}: user {self.name!r} has no credential the harness can use (token, "
                              "tokenFile, client-certificate/-key, exec, auth-provider oidc)")
        return ClientCredential(token=token, cert_file=cred.cert_file, key_file=cred.key_file,
                                cert_pem=cred.cert_pem, key_pem=cred.key_pem, kubectl_user=self.kubectl_user(token))

    def _auth_provider_token(self) -> str:
        provider = self.stanza.get("auth-provider") or {}
        name = provider.get("name") if isinstance(provider, dict) else None
        if name != "oidc":
            raise ConfigError(f"{self.where}: auth-provider {name!r} is not supported (only the legacy `oidc` one; "
                              "gcp and azure were removed from kubectl: use their exec plugins)")
        token = (provider.get("config") or {}).get("id-token")
        if not token:
            raise ConfigError(f"{self.where}: auth-provider oidc has no id-token (log in with it once first)")
        return str(token)

    def kubectl_user(self, token: str | None = None) -> dict[str, Any]:
        """The user stanza for kubectl's own kubeconfig: the user's, with relative paths made absolute.

        An auth-provider becomes its token (kubectl 1.26 and later no longer run the oidc one)."""
        u = self.stanza
        out: dict[str, Any] = {}
        if "exec" in u:
            spec = dict(u["exec"])
            if self.exec_plugin is not None:
                spec["command"] = self.exec_plugin.command
            out["exec"] = spec
        elif u.get("tokenFile") and not u.get("token"):
            out["tokenFile"] = _resolve(self.base_dir, u["tokenFile"])  # the file, not its token, as for the user
        elif token:
            out["token"] = token
        for key in ("client-certificate", "client-key"):
            if u.get(key):
                out[key] = _resolve(self.base_dir, u[key])
        for key in ("client-certificate-data", "client-key-data"):
            if u.get(key):
                out[key] = u[key]
        return out


def _certificate(u: dict[str, Any], base: Path, where: str) -> ClientCredential:
    cert_file, key_file = _resolve(base, u.get("client-certificate")), _resolve(base, u.get("client-key"))
    cert_pem = _b64(u.get("client-certificate-data"), where, "client-certificate-data")
    key_pem = _b64(u.get("client-key-data"), where, "client-key-data")
    if bool(cert_file or cert_pem) != bool(key_file or key_pem):
        raise ConfigError(f"{where}: a client certificate needs both client-certificate(-data) and client-key(-data)")
    for path in (cert_file, key_file):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{where}: cannot read {path}")
    if key_pem:
        register_secret(key_pem.decode("ascii", "replace"))
    if cert_file and key_file:
        return ClientCredential(cert_file=cert_file, key_file=key_file)
    if cert_file:  # certificate file with key data, or the other way round: load both as data
        cert_pem = Path(cert_file).read_bytes()
    if key_file:
        key_pem = Path(key_file).read_bytes()
    return ClientCredential(cert_pem=cert_pem, key_pem=key_pem)


# --- reading kubeconfigs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeconfigContext:
    """One context of a kubeconfig, with its cluster and user stanzas."""

    path: Path
    name: str
    cluster_name: str
    cluster: dict[str, Any]
    user_name: str
    user: dict[str, Any]
    namespace: str | None


def read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).expanduser().read_text())
    except OSError as exc:
        raise ConfigError(f"kubeconfig {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: not a kubeconfig (the top level is not a mapping)")
    return doc


def context_names(doc: dict[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in doc.get("contexts") or [] if isinstance(c, dict) and c.get("name")]


def kubeconfig_context(path: Path, context: str | None = None, doc: dict[str, Any] | None = None) -> KubeconfigContext:
    doc = doc if doc is not None else read_kubeconfig(path)
    where = f"kubeconfig {path}"
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError(f"{where}: no context given and no current-context (contexts: "
                          f"{', '.join(context_names(doc)) or 'none'})")
    ctx = _named(doc, "contexts", "context", name, where)
    cluster_name = ctx.get("cluster")
    cluster = _named(doc, "clusters", "cluster", cluster_name, where)
    user_name = ctx.get("user")
    user = _named(doc, "users", "user", user_name, where) if user_name else {}
    return KubeconfigContext(path=Path(path), name=str(name), cluster_name=str(cluster_name), cluster=cluster,
                             user_name=str(user_name or ""), user=user, namespace=ctx.get("namespace"))


_USERS: dict[tuple[str, str, str], KubeconfigUser] = {}
_USERS_LOCK = threading.Lock()


def kubeconfig_user(
    path: Path, context: str | None = None, *, exec_timeout_s: float = DEFAULT_TIMEOUT_S
) -> KubeconfigUser:
    """The user of a context, one object per file, user name and stanza in this process: its exec cache is
    shared by every context that names the same user (unless the plugin is given the cluster)."""
    ctx = kubeconfig_context(path, context)
    # Keyed by the stanza too: a kubeconfig rewritten during the run (a new login) gives a new user.
    spec = ctx.user.get("exec")
    cluster = ctx.cluster if isinstance(spec, dict) and spec.get("provideClusterInfo") else {}
    stanza = json.dumps([ctx.user, cluster], sort_keys=True, default=str)
    key = (str(Path(path).expanduser().resolve()), ctx.user_name, stanza)
    with _USERS_LOCK:
        found = _USERS.get(key)
        if found is None:
            found = _USERS[key] = _user(ctx, exec_timeout_s)
        return found


def _user(ctx: KubeconfigContext, exec_timeout_s: float) -> KubeconfigUser:
    where = f"kubeconfig {ctx.path}, user {ctx.user_name!r}"
    base = Path(ctx.path).expanduser().resolve().parent
    plugin = None
    if "exec" in ctx.user:
        spec = ctx.user["exec"]
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: exec must be a mapping")
        plugin = ExecPlugin(spec=spec, base_dir=base, where=where, timeout_s=exec_timeout_s,
                            cluster=_cluster_info(ctx.cluster))
    return KubeconfigUser(name=ctx.user_name, stanza=ctx.user, base_dir=base, where=where, exec_plugin=plugin)


def _cluster_info(cluster: dict[str, Any]) -> dict[str, Any]:
    """The ExecCredential spec.cluster for provideClusterInfo (its JSON names for the kubeconfig's fields)."""
    out: dict[str, Any] = {"server": cluster.get("server")}
    for src, dst in (("certificate-authority-data", "certificate-authority-data"), ("tls-server-name", "tlsServerName"),
                     ("insecure-skip-tls-verify", "insecureSkipTLSVerify"), ("proxy-url", "proxyURL")):
        if cluster.get(src) is not None:
            out[dst] = cluster[src]
    return out
