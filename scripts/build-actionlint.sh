#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow linter) from the Go module proxy into the component cache,
# keyed by version, and print the binary's path. Idempotent: a cached build is reused.
# tests/preflight/test_ci_docs.py lints docs/ci/github-actions.yml with it; scripts/setup.sh builds it.
set -euo pipefail
version="${ACTIONLINT_VERSION:-v1.7.12}"
cache="${CONFORMANCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-streaming-conformance}"
bin_dir="$cache/bin/actionlint-$version"
if [ ! -x "$bin_dir/actionlint" ]; then
  command -v go >/dev/null || { echo "build-actionlint: Go is needed to build actionlint $version" >&2; exit 1; }
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$version" >&2
fi
echo "$bin_dir/actionlint"
