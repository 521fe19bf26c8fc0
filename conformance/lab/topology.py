"""What the lab runs: its ports, its config files, and each component's command line.

Pure functions of the lab's layout (state directory, ports, PKI, binaries): nothing here starts a
process, so the command lines can be read and tested on their own. `conformance.lab.lab` runs them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.lab.kubeconfigs import kubeconfig_dict, write_kubeconfig
from conformance.lab.pki import Pki
from conformance.lab.supervisor import port_free

LOOPBACK = "127.0.0.1"
DEFAULT_PORT_BASE = 17400
# Each lab takes one block of ports; a second lab on the same machine (another CI run) takes the next
# free block instead of colliding.
PORT_BLOCK = 50
MAX_BLOCKS = 40
PORT_OFFSETS = {
    "etcd": 0,
    "etcd-peer": 1,
    "kube-apiserver": 2,
    "issuer": 3,
    "kube-oidc-proxy": 4,
    "kube-oidc-proxy-ready": 5,
    "kwok": 6,
    "echo": 7,
    "kube-controller-manager": 8,
    "kube-scheduler": 9,
    # The openunison target (an Envoy stand-in) and its admin (readiness) port.
    "openunison": 10,
    "openunison-admin": 11,
    # Network paths (network_paths.py): one listener per target, named <path>-<target>.
    "nlb-direct": 12,
    "nlb-jetstack": 13,
    "nlb-openunison": 14,
    "alb-direct": 15,
    "alb-jetstack": 16,
    "alb-openunison": 17,
    "ingress-direct": 18,
    "ingress-jetstack": 19,
    "ingress-openunison": 20,
    "gateway-direct": 21,
    "gateway-jetstack": 22,
    "gateway-openunison": 23,
    "gateway-admin": 24,
    # The HTTPS forward proxy: one port, clients CONNECT to the target's own port through it.
    "https-proxy": 25,
    # The second and third kube-oidc-proxy (JetStack v0.3.0; the fork with --token-passthrough) and the
    # paths' listeners for them.
    "kube-oidc-proxy-0.3": 26,
    "kube-oidc-proxy-0.3-ready": 27,
    "kube-oidc-proxy-passthrough": 28,
    "kube-oidc-proxy-passthrough-ready": 29,
    "nlb-jetstack-0.3": 30,
    "nlb-jetstack-passthrough": 31,
    "alb-jetstack-0.3": 32,
    "alb-jetstack-passthrough": 33,
    "ingress-jetstack-0.3": 34,
    "ingress-jetstack-passthrough": 35,
    "gateway-jetstack-0.3": 36,
    "gateway-jetstack-passthrough": 37,
    # 38..49: fault hops (`conformance lab fault`, fault_paths.FAULT_PORT_OFFSETS).
}
OIDC_AUDIENCE = "conformance-lab"
# The lab service account whose bound token the passthrough target passes through unchanged (it has
# alice's rights in the lab namespace, bootstrap.py).
LAB_SERVICE_ACCOUNT = "sa-alice"


@dataclass(frozen=True, slots=True)
class OidcProxy:
    """One kube-oidc-proxy process of the lab (docs/kube-oidc-proxy.md)."""

    name: str  # the process name and its port name (readiness port: <name>-ready)
    binary: str  # the `lab build` component it runs
    token_passthrough: bool = False


OIDC_PROXIES: tuple[OidcProxy, ...] = (
    OidcProxy("kube-oidc-proxy", "kube-oidc-proxy"),  # the TremoloSecurity fork, v1.0.11
    OidcProxy("kube-oidc-proxy-0.3", "kube-oidc-proxy-0.3"),  # JetStack's last release, v0.3.0
    OidcProxy("kube-oidc-proxy-passthrough", "kube-oidc-proxy", token_passthrough=True),
)
NAMESPACE = "conformance"
NODE_NAME = "kwok-node-0"
POD_NAMES = ("probe-0", "probe-1")
# A lab pod whose port-forward reaches nothing (kwok dials the discard port, where nothing listens): an
# existing pod without an echo listener, whose port-forward cells the harness skips (docs/preflight.md).
MUTE_POD = "probe-mute"
CLOSED_PORT = 9
CONTAINER_NAME = "main"
POD_PORT = 8080
# The sandbox user that kwok runs exec'd commands as (nobody), so a probe cannot touch the host as root.
SANDBOX_UID = 65534
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
OPENUNISON_TOKEN_AUDIENCE = "api"  # noqa: S105 - conformance.lab.openunison.TOKEN_AUDIENCE (that module imports this one)
# A config value for the API server's service allocator: no traffic ever goes to this range.
SERVICE_CIDR = "10.96.0.0/16"


def choose_port_base(start: int | None = None) -> int:
    """The first block of ports (from `start`, default CONFORMANCE_LAB_PORT_BASE or 17400) wholly free."""
    first = start if start is not None else int(os.environ.get("CONFORMANCE_LAB_PORT_BASE", DEFAULT_PORT_BASE))
    for block in range(MAX_BLOCKS):
        base = first + block * PORT_BLOCK
        if all(port_free(base + off) for off in range(PORT_BLOCK)):
            return base
    raise OSError(
        f"no free block of {PORT_BLOCK} ports on 127.0.0.1 from {first}: set CONFORMANCE_LAB_PORT_BASE to a free range"
    )


@dataclass(frozen=True)
class Layout:
    """Everything a component's command line depends on."""

    state: Path
    port_base: int
    pki: Pki
    binaries: dict[str, str]
    run_as_sandbox_user: bool

    def port(self, name: str) -> int:
        return self.port_base + PORT_OFFSETS[name]

    def url(self, name: str) -> str:
        return f"https://{LOOPBACK}:{self.port(name)}"

    @property
    def issuer_url(self) -> str:
        return self.url("issuer")

    @property
    def config_dir(self) -> Path:
        return self.state / "config"

    @property
    def sandbox(self) -> Path:
        # The sandbox user must reach it: the state directory may sit under a 0700 home or mktemp dir, so a
        # root-run lab keeps the sandbox in the system temp dir, named by its (per-lab, unique) port block.
        if self.run_as_sandbox_user:
            return Path(tempfile.gettempdir()) / f"conformance-lab-sandbox-{self.port_base}"
        return self.state / "sandbox"

    @property
    def audit_log(self) -> Path:
        return self.state / "logs" / "audit.log"

    def proxy_audit_log(self, proxy: str) -> Path:
        """A kube-oidc-proxy's own audit log (its --audit-log-path)."""
        return self.state / "logs" / f"{proxy}-audit.log"

    @property
    def pod_log(self) -> Path:
        return self.state / "workload" / "main.log"

    def component_kubeconfig(self, name: str) -> Path:
        return self.config_dir / f"{name}.kubeconfig"


def write_config_files(layout: Layout, kwok_stages: list[Path]) -> None:
    """Authentication config, audit policy, component kubeconfigs and kwok's config."""
    cfg = layout.config_dir
    cfg.mkdir(parents=True, exist_ok=True)
    (layout.state / "logs").mkdir(parents=True, exist_ok=True)
    ca_pem = layout.pki.ca.cert.read_text()
    authn = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {
                "issuer": {"url": layout.issuer_url, "audiences": [OIDC_AUDIENCE], "certificateAuthority": ca_pem},
                "claimMappings": {
                    "username": {"claim": "sub", "prefix": ""},
                    "groups": {"claim": "groups", "prefix": ""},
                },
            }
        ],
    }
    (cfg / "authentication.yaml").write_text(yaml.safe_dump(authn, sort_keys=False))
    (cfg / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
    (cfg / "proxy-audit-policy.yaml").write_text(yaml.safe_dump(PROXY_AUDIT_POLICY, sort_keys=False))
    clients = layout.pki.clients
    for name, pair in (
        ("admin", clients.admin),
        ("kube-controller-manager", clients.kube_controller_manager),
        ("kube-scheduler", clients.kube_scheduler),
        ("kwok", clients.kwok),
        ("kube-oidc-proxy", clients.kube_oidc_proxy),
        ("openunison", clients.openunison),
    ):
        write_kubeconfig(
            layout.component_kubeconfig(name),
            kubeconfig_dict(
                name=f"lab-{name}",
                server=layout.url("kube-apiserver"),
                ca_file=layout.pki.ca.cert,
                client_cert=pair.cert,
                client_key=pair.key,
            ),
        )
    # No KwokConfiguration document: kwok then applies its defaults (a partial one leaves zeros that fail).
    docs: list[object] = []
    for stage in kwok_stages:
        docs.extend(d for d in yaml.safe_load_all(stage.read_text()) if d)
    local: dict[str, object] = {
        "workDir": str(layout.sandbox),
        # kwok passes its own environment plus these; kwok itself starts with a minimal environment.
        "envs": [{"name": "HOME", "value": str(layout.sandbox)}, {"name": "PATH", "value": "/usr/bin:/bin"}],
    }
    if layout.run_as_sandbox_user:
        local["securityContext"] = {"runAsUser": SANDBOX_UID, "runAsGroup": SANDBOX_UID}
    docs += [
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "lab-exec"},
            "spec": {"execs": [{"local": local}]},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterPortForward",
            "metadata": {"name": "lab-port-forward"},
            "spec": {"forwards": [{"target": {"address": LOOPBACK, "port": layout.port("echo")}}]},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "PortForward",  # a pod's own rule wins over the cluster-wide one
            "metadata": {"name": MUTE_POD, "namespace": NAMESPACE},
            "spec": {"forwards": [{"target": {"address": LOOPBACK, "port": CLOSED_PORT}}]},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterAttach",
            "metadata": {"name": "lab-attach"},
            "spec": {"attaches": [{"logsFile": str(layout.pod_log)}]},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "lab-logs"},
            "spec": {"logs": [{"logsFile": str(layout.pod_log), "follow": True}]},
        },
    ]
    (cfg / "kwok.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))


# Metadata level records user, impersonatedUser, userAgent, requestURI and objectRef.subresource for
# every request; the control plane's own chatter is dropped so the log stays small and searchable.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "None",
            "users": [
                "system:kube-scheduler",
                "system:kube-controller-manager",
                "system:apiserver",
                f"system:node:{NODE_NAME}",
            ],
        },
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {
            "level": "None",
            "resources": [
                {"group": "coordination.k8s.io", "resources": ["leases"]},
                {"group": "", "resources": ["events"]},
            ],
        },
        {"level": "Metadata"},
    ],
}


# A kube-oidc-proxy sees only its clients' requests: Metadata level records the user it authenticated,
# requestURI and userAgent for each, which is what the audit chain (conformance/proxy_audit.py) matches.
PROXY_AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def etcd_argv(layout: Layout) -> list[str]:
    client = f"http://{LOOPBACK}:{layout.port('etcd')}"
    peer = f"http://{LOOPBACK}:{layout.port('etcd-peer')}"
    return [
        layout.binaries["etcd"],
        "--name=lab",
        f"--data-dir={layout.state / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=lab={peer}",
        "--initial-cluster-state=new",
        # A throwaway lab: durability is not worth the fsync latency on every write.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=1073741824",
        "--log-level=warn",
    ]


def apiserver_argv(layout: Layout) -> list[str]:
    pki = layout.pki
    cfg = layout.config_dir
    return [
        layout.binaries["kube-apiserver"],
        f"--etcd-servers=http://{LOOPBACK}:{layout.port('etcd')}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={layout.port('kube-apiserver')}",
        f"--tls-cert-file={pki.serving.kube_apiserver.cert}",
        f"--tls-private-key-file={pki.serving.kube_apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        # The issuer is the default audience; `api` is the one OpenUnison's chart asks TokenRequest for.
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER},{OPENUNISON_TOKEN_AUDIENCE}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        # The node-lifecycle controller is off (one fake node), so nothing would lift the not-ready taint this
        # plugin puts on a new node: a user's own probe pod (no kwok toleration) could never be scheduled.
        "--disable-admission-plugins=TaintNodesByCondition",
        f"--authentication-config={cfg / 'authentication.yaml'}",
        f"--audit-policy-file={cfg / 'audit-policy.yaml'}",
        f"--audit-log-path={layout.audit_log}",
        "--audit-log-format=json",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
        f"--kubelet-client-certificate={pki.clients.apiserver_kubelet_client.cert}",
        f"--kubelet-client-key={pki.clients.apiserver_kubelet_client.key}",
        "--kubelet-preferred-address-types=InternalIP",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--v=1",
    ]


def controller_manager_argv(layout: Layout) -> list[str]:
    kubeconfig = layout.component_kubeconfig("kube-controller-manager")
    return [
        layout.binaries["kube-controller-manager"],
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={layout.port('kube-controller-manager')}",
        "--leader-elect=false",
        f"--service-account-private-key-file={layout.pki.sa_key}",
        f"--root-ca-file={layout.pki.ca.cert}",
        "--use-service-account-credentials=false",
        "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller",
        "--v=1",
    ]


def scheduler_argv(layout: Layout) -> list[str]:
    kubeconfig = layout.component_kubeconfig("kube-scheduler")
    return [
        layout.binaries["kube-scheduler"],
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={layout.port('kube-scheduler')}",
        "--leader-elect=false",
        "--v=1",
    ]


def kwok_argv(layout: Layout) -> list[str]:
    port = layout.port("kwok")
    return [
        layout.binaries["kwok"],
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={layout.config_dir / 'kwok.yaml'}",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--node-ip={LOOPBACK}",
        f"--node-port={port}",
        f"--server-address={LOOPBACK}:{port}",
        f"--tls-cert-file={layout.pki.serving.kwok.cert}",
        f"--tls-private-key-file={layout.pki.serving.kwok.key}",
    ]


def issuer_argv(layout: Layout) -> list[str]:
    return [
        sys.executable,
        "-m",
        "conformance.lab.issuer",
        f"--port={layout.port('issuer')}",
        f"--cert={layout.pki.serving.issuer.cert}",
        f"--key={layout.pki.serving.issuer.key}",
        f"--signing-key={layout.pki.oidc_signing_key}",
        f"--issuer-url={layout.issuer_url}",
    ]


def workload_argv(layout: Layout) -> list[str]:
    return [
        sys.executable,
        "-m",
        "conformance.lab.workload",
        f"--echo-port={layout.port('echo')}",
        f"--log-file={layout.pod_log}",
    ]


def kube_oidc_proxy_argv(layout: Layout, proxy: OidcProxy = OIDC_PROXIES[0]) -> list[str]:
    """The flags are the same for both generations (v0.3.0 and the fork v1.0.11 accept each of them)."""
    pki = layout.pki
    argv = [
        layout.binaries[proxy.binary],
        f"--oidc-issuer-url={layout.issuer_url}",
        f"--oidc-client-id={OIDC_AUDIENCE}",
        f"--oidc-ca-file={pki.ca.cert}",
        "--oidc-username-claim=sub",
        "--oidc-groups-claim=groups",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={layout.port(proxy.name)}",
        f"--readiness-probe-port={layout.port(proxy.name + '-ready')}",
        f"--tls-cert-file={pki.serving.kube_oidc_proxy.cert}",
        f"--tls-private-key-file={pki.serving.kube_oidc_proxy.key}",
        f"--kubeconfig={layout.component_kubeconfig('kube-oidc-proxy')}",
        # Its own audit log: the second identity source of the audit chain.
        f"--audit-log-path={layout.proxy_audit_log(proxy.name)}",
        f"--audit-policy-file={layout.config_dir / 'proxy-audit-policy.yaml'}",
        "--audit-log-format=json",
        "--audit-log-maxsize=100",
        "--audit-log-maxbackup=1",
    ]
    if proxy.token_passthrough:
        # A token the proxy's OIDC authenticator rejects is checked with a TokenReview (API server audiences)
        # and, if valid, forwarded unchanged, not impersonated.
        argv.append("--token-passthrough")
        # Each passed-through request costs one uncached TokenReview through the proxy's client-go client,
        # whose default limit (5 QPS, burst 10) delayed requests by over a second under the suite's 16
        # concurrent cells (its log: "client-side throttling"). An operator running passthrough at any rate
        # sets these; the finding is in docs/findings.md.
        argv += ["--kube-client-qps=100", "--kube-client-burst=200"]
    return argv
