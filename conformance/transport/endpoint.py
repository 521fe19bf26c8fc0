"""Where and as whom to connect: an API server URL, its trust, the client's credentials.

``Endpoint.from_kubeconfig(path, context)`` reads the subset of kubeconfig the harness needs (with
PyYAML): ``server``, ``certificate-authority(-data)``, ``insecure-skip-tls-verify``,
``tls-server-name``, ``proxy-url``; ``token``, ``tokenFile``, ``client-certificate(-data)``,
``client-key(-data)``, exec plugins and the oidc auth-provider (conformance.kubeconfig_credentials); and the
context's namespace. Every token is registered with ``conformance.redact`` the moment it is read.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from conformance.errors import ConfigError
from conformance.kubeconfig_fields import b64 as _b64
from conformance.kubeconfig_fields import named as _named
from conformance.kubeconfig_fields import resolve as _resolve
from conformance.redact import register_secret

# HTTP/2 cannot carry an upgrade (PROTOCOLS.md 2), so we only ever offer http/1.1.
ALPN_PROTOCOLS = ("http/1.1",)
USER_AGENT = "k8s-streaming-conformance/0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    server: str  # https://host:port[/prefix]
    ca_file: str | None = None
    ca_data: bytes | None = None  # PEM
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: bytes | None = None  # PEM
    client_key_data: bytes | None = field(default=None, repr=False)  # PEM
    token: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = ()  # e.g. Impersonate-User, sent on every request
    proxy_url: str | None = None  # http:// or https:// proxy reached with CONNECT
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    namespace: str | None = None  # the kubeconfig context's namespace, for CLI defaults
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.server)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ConfigError(f"server {self.server!r} is not an http(s) URL")
        if self.token:
            register_secret(self.token)
        if self.proxy_url is not None and urllib.parse.urlsplit(self.proxy_url).scheme not in ("http", "https"):
            raise ConfigError(f"proxy URL {self.proxy_url!r}: only http:// and https:// proxies are supported")

    # --- derived ---------------------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        return urllib.parse.urlsplit(self.server).scheme == "https"

    @property
    def host(self) -> str:
        host = urllib.parse.urlsplit(self.server).hostname
        assert host is not None  # checked in __post_init__
        return host

    @property
    def port(self) -> int:
        parsed = urllib.parse.urlsplit(self.server)
        return parsed.port or (443 if parsed.scheme == "https" else 80)

    @property
    def path_prefix(self) -> str:
        return urllib.parse.urlsplit(self.server).path.rstrip("/")

    @property
    def authority(self) -> str:
        """The Host header value (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def request_headers(self) -> list[tuple[str, str]]:
        """Authorization, User-Agent and the extra headers, in that order (original casing)."""
        out: list[tuple[str, str]] = []
        if self.token:
            out.append(("Authorization", f"Bearer {self.token}"))
        out.append(("User-Agent", self.user_agent))
        out.extend(self.headers)
        return out

    def with_headers(self, headers: Sequence[tuple[str, str]]) -> Endpoint:
        return replace(self, headers=(*self.headers, *headers))

    def ssl_context(self) -> ssl.SSLContext:
        """A client context: our CA (or the system's), client certificate, ALPN http/1.1 only.

        Built once per set of TLS material, not per endpoint: every cell has its own endpoint (its token, its
        marker in the user agent), and loading the system's CA bundle costs tens of milliseconds.
        """
        material = (self.ca_file, self.ca_data, self.client_cert_file, self.client_key_file,
                    self.client_cert_data, self.client_key_data, self.insecure_skip_tls_verify)
        cached = _SSL_CONTEXTS.get(material)
        if cached is None:
            if len(_SSL_CONTEXTS) >= MAX_CACHED_SSL_CONTEXTS:
                _SSL_CONTEXTS.clear()
            cached = _SSL_CONTEXTS[material] = self._new_ssl_context()
        return cached

    def _new_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            if self.ca_file:
                ctx.load_verify_locations(cafile=self.ca_file)
            if self.ca_data:
                ctx.load_verify_locations(cadata=self.ca_data.decode("ascii", "replace"))
            self._load_client_cert(ctx)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"TLS material for {self.server}: {exc}") from exc
        ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
        return ctx

    def _load_client_cert(self, ctx: ssl.SSLContext) -> None:
        if self.client_cert_file and self.client_key_file:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
            return
        cert, key = self.client_cert_data, self.client_key_data
        if self.client_cert_file:
            cert = Path(self.client_cert_file).read_bytes()
        if self.client_key_file:
            key = Path(self.client_key_file).read_bytes()
        if not (cert and key):
            return
        # ssl only loads chains from files: write them to a private directory and remove them at once.
        with tempfile.TemporaryDirectory(prefix="conformance-tls-") as tmp:
            cert_path, key_path = Path(tmp, "client.crt"), Path(tmp, "client.key")
            for path, data in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            ctx.load_cert_chain(str(cert_path), str(key_path))

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> Endpoint:
        source = Path(path).expanduser()
        try:
            doc = yaml.safe_load(source.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"kubeconfig {source}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {source}: not a mapping")
        where = f"kubeconfig {source}"
        name = context or doc.get("current-context")
        if not name:
            raise ConfigError(f"{where}: no context given and no current-context")
        ctx = _named(doc, "contexts", "context", name, where)
        cluster = _named(doc, "clusters", "cluster", ctx.get("cluster"), where)
        base = source.parent
        # Every credential kind (token, tokenFile, certificate, exec plugin, oidc auth-provider), resolved now.
        from conformance.kubeconfig_credentials import kubeconfig_user

        cred = kubeconfig_user(source, str(name)).resolve() if ctx.get("user") else None
        return cls(
            server=str(cluster.get("server") or ""),
            ca_file=_resolve(base, cluster.get("certificate-authority")),
            ca_data=_b64(cluster.get("certificate-authority-data"), where, "certificate-authority-data"),
            client_cert_file=cred.cert_file if cred else None,
            client_key_file=cred.key_file if cred else None,
            client_cert_data=cred.cert_pem if cred else None,
            client_key_data=cred.key_pem if cred else None,
            token=cred.token if cred else None,
            proxy_url=cluster.get("proxy-url"),
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            tls_server_name=cluster.get("tls-server-name"),
            namespace=ctx.get("namespace"),
        )


# A bounded cache keyed by TLS material (CA, client certificate, verification): one context per set.
MAX_CACHED_SSL_CONTEXTS = 64
_SSL_CONTEXTS: dict[tuple[object, ...], ssl.SSLContext] = {}
