"""The openunison stand-in's ServiceAccount token, kept fresh: the lab's stand-in for a projected volume.

OpenUnison's chart (`enable_tokenrequest`) mounts a projected ServiceAccount token (audience `api`,
600 s) that the kubelet renews before it expires, and OpenUnison re-reads it. Here this process asks the
TokenRequest API for a token bound to the stand-in's pod (`openunison-orchestra-0` in `openunison`) and
writes it to a file (mode 0600, replaced atomically) that the stand-in's Lua filter reads on every
request. Like the kubelet, it renews at 80 % of the token's lifetime; `--refresh-after-s` renews sooner
(the API server refuses lifetimes under 10 minutes, so a test proves renewal with this instead).

Beside the token it writes `<out>.json`: the token's JTI (the API server records `JTI=<jti>` as the
credential id), issue and expiry times. Never the token itself: no token is ever logged.

    python -m conformance.lab.openunison_token --server URL --ca CA --client-cert CRT --client-key KEY \\
        --namespace openunison --service-account openunison-orchestra --pod openunison-orchestra-0 \\
        --audience api --out FILE
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

REFRESH_FRACTION = 0.8  # the kubelet renews a projected token after 80 % of its lifetime
RETRY_S = 2.0
REQUEST_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    jti: str
    issued_at: float
    expires_at: float

    def __repr__(self) -> str:  # never the token
        return f"Issued(jti={self.jti!r}, issued_at={self.issued_at:.0f}, expires_at={self.expires_at:.0f})"


def next_refresh(issued_at: float, expires_at: float, refresh_after_s: float | None = None) -> float:
    """When to renew: `refresh_after_s` after issue if given, else at 80 % of the lifetime."""
    if refresh_after_s is not None:
        return issued_at + refresh_after_s
    return issued_at + REFRESH_FRACTION * (expires_at - issued_at)


def jti_of(token: str) -> str:
    """The token's `jti` claim (unverified: only to name the credential the API server will record)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["jti"])
    except (IndexError, ValueError, KeyError) as exc:
        raise ValueError("the TokenRequest answer is not a JWT with a jti") from exc


def write_token(out: Path, issued: Issued) -> None:
    """Replace the token file atomically (a reader sees the old token or the new one, never half)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(issued.token)
    os.replace(tmp, out)
    meta = {"jti": issued.jti, "issued_at": issued.issued_at, "expires_at": issued.expires_at}
    meta_path = out.with_name(out.name + ".json")
    meta_tmp = meta_path.with_name(meta_path.name + ".tmp")
    meta_tmp.write_text(json.dumps(meta))
    os.replace(meta_tmp, meta_path)


@dataclass(frozen=True, slots=True)
class ApiServer:
    """The API server and the client certificate the refresher asks it with (the lab admin's)."""

    url: str
    ca: Path
    cert: Path
    key: Path


def _call(api: ApiServer, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    # http.client rather than the kubernetes client: this process lives as long as the lab, and the
    # kubernetes package alone would take 50 MiB of it.
    ctx = ssl.create_default_context(cafile=str(api.ca))
    ctx.load_cert_chain(str(api.cert), str(api.key))
    url = urlsplit(api.url)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=REQUEST_TIMEOUT_S)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read(MAX_ANSWER_BYTES)
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}")
        answer: dict[str, Any] = json.loads(data)
        return answer
    finally:
        conn.close()


def request_token(
    api: ApiServer, namespace: str, service_account: str, pod: str, audience: str, lifetime_s: int
) -> Issued:
    """A TokenRequest for the ServiceAccount, bound to the pod (as a projected volume's token is)."""
    ns = quote(namespace)
    uid = _call(api, "GET", f"/api/v1/namespaces/{ns}/pods/{quote(pod)}")["metadata"]["uid"]
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience],
            "expirationSeconds": lifetime_s,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid},
        },
    }
    answer = _call(api, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{quote(service_account)}/token", body)
    token = str(answer["status"]["token"])
    expires = datetime.fromisoformat(answer["status"]["expirationTimestamp"]).timestamp()
    return Issued(token, jti_of(token), time.time(), expires)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="the API server's URL")
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--client-cert", required=True, type=Path)
    parser.add_argument("--client-key", required=True, type=Path)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--service-account", required=True)
    parser.add_argument("--pod", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--lifetime-s", type=int, default=600)
    parser.add_argument("--refresh-after-s", type=float, default=None)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.refresh_after_s is not None and args.refresh_after_s <= 0:
        parser.error("--refresh-after-s must be positive")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    api = ApiServer(args.server, args.ca, args.client_cert, args.client_key)
    while not stop.is_set():
        try:
            issued = request_token(api, args.namespace, args.service_account, args.pod, args.audience, args.lifetime_s)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:  # keep serving the old token, retry soon
            print(f"openunison-token: TokenRequest failed ({type(exc).__name__}); retrying", flush=True)
            stop.wait(RETRY_S)
            continue
        write_token(args.out, issued)
        print(f"openunison-token: new token {issued!r}", flush=True)
        stop.wait(max(0.0, next_refresh(issued.issued_at, issued.expires_at, args.refresh_after_s) - time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
