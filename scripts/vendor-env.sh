# Sourced by scripts/setup.sh and .ci/run. kube-oidc-proxy: where the Go module proxy refuses its modules,
# `lab build` builds each from the release source named by these variables (README, "kube-oidc-proxy from
# source"). The vendored releases sit beside the repository on these machines (../shared/vendor); a clone
# made elsewhere names the shared folder with CONFORMANCE_SHARED_DIR. A value set by the caller wins.
for candidate in ${CONFORMANCE_SHARED_DIR:+"$CONFORMANCE_SHARED_DIR/vendor/kube-oidc-proxy"} \
  ../shared/vendor/kube-oidc-proxy ../../shared/vendor/kube-oidc-proxy; do
  if [ -d "$candidate" ]; then
    vendor="$(cd "$candidate" && pwd)"
    export CONFORMANCE_KUBE_OIDC_PROXY_SRC="${CONFORMANCE_KUBE_OIDC_PROXY_SRC:-$vendor}"
    export CONFORMANCE_KUBE_OIDC_PROXY_03_SRC="${CONFORMANCE_KUBE_OIDC_PROXY_03_SRC:-$vendor}"
    break
  fi
done
