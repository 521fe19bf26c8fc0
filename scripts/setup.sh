#!/usr/bin/env bash
# Install everything the harness and its local lab need on a fresh Debian machine (idempotent):
# system packages, the Python package with its test extras, and every lab component (cached by version
# under ~/.cache/k8s-streaming-conformance, so a rerun takes seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
# The console script may not be on PATH yet right after install (pyenv shims, --user installs).
conformance() { python3 -m conformance.cli "$@"; }

# System packages the lab uses (haproxy, nginx and squid run its network paths; chromium is for the HTML
# report's browser tests); installed only when missing.
need=()
for pkg in tar procps iproute2 chromium haproxy nginx squid; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    # Without systemd, Debian's maintainer scripts would start nginx/haproxy/squid as root daemons; a
    # policy-rc.d that answers 101 ("action forbidden") keeps them from starting (only if none exists).
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1; fi
    ok=1
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" || ok=""
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    [ -n "$ok" ] || { echo "setup: apt-get could not install ${need[*]}" >&2; exit 1; }
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi
  # Debian starts a newly installed daemon as a system service on its default port; the lab runs its own
  # unprivileged instances, so stop and disable the services of the packages installed just now (only those).
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for svc in haproxy nginx squid; do
      case " ${need[*]} " in *" $svc "*)
        if [ "$(id -u)" -eq 0 ]; then systemctl disable --now "$svc" >/dev/null 2>&1 || true
        else sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi ;;
      esac
    done
  fi
fi
# kwok follows pod logs (attach, logs -f) with one inotify instance per session; Debian's default of 128
# instances per user runs out when several labs share a machine ("failed to create fsnotify watcher").
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/fs/inotify/max_user_instances ] \
  && [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
  echo 1024 > /proc/sys/fs/inotify/max_user_instances || true
fi
command -v go >/dev/null || { echo "setup: Go 1.26+ is needed to build the lab (kube-apiserver, etcd, kwok)" >&2; exit 1; }

python3 -m pip install -q --disable-pip-version-check -e '.[test,lint,lab]'
. scripts/vendor-env.sh
conformance lab build
scripts/build-actionlint.sh >/dev/null  # lints docs/ci/github-actions.yml in tests (pinned, cached by version)
