"""The openunison stand-in's ServiceAccount token, kept fresh: the lab's stand-in for a projected volume.

OpenUnison's chart (`enable_tokenrequest`) mounts a projected ServiceAccount token (audience `api`,
600 s) that the kubelet renews before it expires, and OpenUnison re-reads it. Here this process asks the
TokenRequest API for a token bound to the stand-in's pod (`openunison-orchestra-0` in `openunison`) and
writes it to a file (mode 0600, replaced atomically) that the stand-in's Lua filter reads on every
request. Like the kubelet, it renews at 80 % of the token's lifetime; `--refresh-after-s` renews sooner
(the API server refuses lifetimes under 10 minutes, so a test proves renewal with this instead).

Beside the token it writes `<out>.json`: the token's JTI (the API server records `JTI=<jti>` as the
credential id), issue and expiry times. Never the token itself: no token is ever logged.

    python -m conformance.lab.openunison_token --kubeconfig admin.kubeconfig --namespace openunison \\
        --service-account openunison-orchestra --pod openunison-orchestra-0 --audience api --out FILE
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFRESH_FRACTION = 0.8  # the kubelet renews a projected token after 80 % of its lifetime
RETRY_S = 2.0
REQUEST_TIMEOUT_S = 10.0


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


def request_token(api: Any, namespace: str, service_account: str, pod: str, audience: str, lifetime_s: int) -> Issued:
    from kubernetes import client

    core = client.CoreV1Api(api)
    uid = core.read_namespaced_pod(pod, namespace, _request_timeout=REQUEST_TIMEOUT_S).metadata.uid
    body = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[audience],
            expiration_seconds=lifetime_s,
            bound_object_ref=client.V1BoundObjectReference(kind="Pod", api_version="v1", name=pod, uid=uid),
        )
    )
    answer = core.create_namespaced_service_account_token(
        service_account, namespace, body, _request_timeout=REQUEST_TIMEOUT_S
    )
    token = answer.status.token
    now = time.time()
    return Issued(token, jti_of(token), now, answer.status.expiration_timestamp.timestamp())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, type=Path)
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

    from kubernetes import config

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    api = config.new_client_from_config(config_file=str(args.kubeconfig))
    try:
        while not stop.is_set():
            try:
                issued = request_token(
                    api, args.namespace, args.service_account, args.pod, args.audience, args.lifetime_s
                )
            except Exception as exc:  # keep serving the old token, retry soon
                print(f"openunison-token: TokenRequest failed ({type(exc).__name__}); retrying", flush=True)
                stop.wait(RETRY_S)
                continue
            write_token(args.out, issued)
            print(f"openunison-token: new token {issued!r}", flush=True)
            stop.wait(max(0.0, next_refresh(issued.issued_at, issued.expires_at, args.refresh_after_s) - time.time()))
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
