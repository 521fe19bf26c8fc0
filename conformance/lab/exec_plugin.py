"""The lab's exec credential plugin: prints an ExecCredential with a short-lived OIDC token from the lab issuer.

What `conformance lab kubeconfig --credential exec` names in `users[].user.exec`, standing in for the
kubelogin/aws/gke-gcloud-auth-plugin of a real cluster: it reads `KUBERNETES_EXEC_INFO`, answers in the
apiVersion asked for, and sets `expirationTimestamp` to the token's expiry, so a run longer than
`--lifetime` must refresh it. `--log FILE` appends one line per run (time, pid, parent pid; never the token),
so tests can count the runs. Run as a script (kubectl runs it with its own working directory):

    python3 conformance/lab/exec_plugin.py --signing-key K --issuer URL --user dana --groups devs --lifetime 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_API_VERSION = "client.authentication.k8s.io/v1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signing-key", required=True, type=Path)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--groups", default="", help="comma-separated")
    parser.add_argument("--audience", default="conformance-lab")
    parser.add_argument("--lifetime", type=int, default=20, help="seconds")
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{}")
    except ValueError:
        info = {}
    api_version = info.get("apiVersion") or DEFAULT_API_VERSION
    # Run as a script: the repository root (two levels up) holds the conformance package.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from conformance.lab.issuer import mint_token

    now = time.time()
    token = mint_token(args.signing_key, args.issuer, user=args.user,
                       groups=[g for g in args.groups.split(",") if g], audience=args.audience,
                       lifetime_s=args.lifetime)
    if args.log is not None:
        with args.log.open("a") as log:
            session = "own-session" if os.getsid(0) == os.getpid() else "shared-session"
            log.write(f"{now:.3f} {os.getpid()} {os.getppid()} {session}\n")
    expires = dt.datetime.fromtimestamp(now + args.lifetime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dump({"apiVersion": api_version, "kind": "ExecCredential",
               "status": {"token": token, "expirationTimestamp": expires}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
