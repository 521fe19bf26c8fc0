"""The workload the cells run against: a namespace and probe pod(s) the harness creates, checks and removes.

`WorkloadManager.ensure()` runs once per pytest run in the process that owns the workload (never an xdist
worker); `cleanup()` runs from `pytest_unconfigure`, which pytest reaches after Ctrl-C too, and again from
`atexit`. While the manager holds objects, SIGTERM and SIGHUP raise KeyboardInterrupt, so a killed run
takes the Ctrl-C path instead of dying without cleanup.

Ownership: each object the manager creates carries this run's annotation, recorded *before* the create call.
Cleanup deletes an object only if it still carries that annotation, with a uid precondition: it never
deletes what existed before, nor what another run made under the same name.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeGuard

import urllib3
from kubernetes.client.rest import ApiException

from conformance import rights
from conformance.config import Endpoint, HarnessConfig, Workload
from conformance.errors import ConfigError, WorkloadError
from conformance.pod_check import PodCheck

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "k8s-streaming-conformance"
RUN_ANNOTATION = "k8s-streaming-conformance/run"
DEFAULT_IMAGE = "busybox:1.36"
GRANT_NAME = "k8s-streaming-conformance"
TICK_S = 0.2  # attach and logs -f see several lines a second
REQUEST_TIMEOUT_S = 10
POLL_S = 0.5
CLEANUP_DEADLINE_S = 30.0  # waiting for deletions to finish; the deletes themselves are issued first
STREAMING_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    # get and create: SPDY POSTs check create, WebSocket GETs check get (and create since 1.35).
    {"apiGroups": [""], "resources": ["pods/exec", "pods/attach", "pods/portforward"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]
RBAC_GROUP = "rbac.authorization.k8s.io"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"conformance workload: {message}", file=sys.stderr, flush=True)


def default_command(port: int) -> list[str]:
    # busybox nc: -l listen, -k keep listening, -e one `cat` per connection (the port-forward echo, on the
    # port and the next one, for the several-ports probe); the loop feeds attach and logs -f.
    script = (
        f"nc -lk -p {port} -e cat & nc -lk -p {port + 1} -e cat & "
        f"i=0; while true; do echo tick $i; i=$((i+1)); sleep {TICK_S}; done"
    )
    return ["sh", "-c", script]


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings recursively, lists of named items by name, else replaced; None deletes."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = merge(old, value)
        elif _named(value) and _named(old):
            # containers, volumes, ports: by name, as a strategic merge patch does, so an override can amend ours
            by_name = {item["name"]: item for item in old}
            for item in value:
                by_name[item["name"]] = merge(by_name.get(item["name"], {}), item)
            out[key] = list(by_name.values())
        else:
            out[key] = value
    return out


def _named(value: Any) -> TypeGuard[list[Mapping[str, Any]]]:
    return isinstance(value, list) and bool(value) and all(isinstance(i, Mapping) and "name" in i for i in value)


def _metadata(name: str, run_id: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        "annotations": {RUN_ANNOTATION: run_id},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def pod_manifest(workload: Workload, name: str, run_id: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": workload.container,
        "image": workload.image or DEFAULT_IMAGE,
        "command": list(workload.command or default_command(workload.port)),
        "workingDir": "/tmp",  # noqa: S108 (in the pod) cp probes write relative paths; / is not writable by nobody
        "ports": [{"containerPort": workload.port}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if workload.command is None:
        # Ready means the echo listener answers; a custom command may not listen, so it gets no probe.
        container["readinessProbe"] = {"tcpSocket": {"port": workload.port}, "periodSeconds": 2}
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 2,  # sh as pid 1 ignores SIGTERM: do not wait the default 30 s
        # Passes Pod Security "restricted", which many clusters enforce on new namespaces.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    metadata = _metadata(name, run_id, workload.namespace)
    metadata["labels"]["app.kubernetes.io/name"] = "conformance-probe"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": merge(spec, workload.pod_overrides)}


def grant_manifests(workload: Workload, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = _metadata(GRANT_NAME, run_id, workload.namespace)
    role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": meta, "rules": STREAMING_RULES}
    subjects = [
        {"kind": s["kind"], "name": s["name"], "namespace": s.get("namespace", workload.namespace)}
        if s["kind"] == "ServiceAccount"
        else {"apiGroup": RBAC_GROUP, "kind": s["kind"], "name": s["name"]}
        for s in workload.grant
    ]
    binding = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": GRANT_NAME},
        "subjects": subjects,
    }
    return role, binding


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@dataclass(frozen=True)
class _Owned:
    kind: str  # Namespace, Role, RoleBinding, Pod
    name: str


class WorkloadManager:
    def __init__(
        self,
        config: HarnessConfig,
        user: str,
        *,
        log: Log | None = None,
        core: Any = None,
        rbac: Any = None,
        authz: Any = None,
        inspect: Callable[[], PodCheck] | None = None,
    ) -> None:
        """`user` is the matrix user, whose token manages the workload when `workload.kubeconfig` is unset.
        `core`/`rbac`/`authz` (CoreV1Api, RbacAuthorizationV1Api, AuthorizationV1Api) and `inspect` (the pod
        check) are for tests; by default they are built on first use."""
        self.config = config
        self.workload = config.workload
        self.user = user
        self.log = log or _stderr
        self.run_id = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._core, self._rbac, self._api = core, rbac, None
        self._authz: Any = authz
        self.kube_user: str | None = None  # who the API server says the credential is (the preflight's review)
        self.pod_check: PodCheck | None = None  # an existing pod's tools and echo listener (manage: false)
        self.pod_status = ""  # what reading the existing pod(s) showed, in words
        self.create_decisions: list[rights.Decision] | None = None  # may the credential create the probe pod?
        self._inspect = inspect
        self._owned: list[_Owned] = []
        self._ready = False
        self._holding = False
        self._previous: dict[int, Any] = {}

    # -- API access -------------------------------------------------------------------------------------

    def _apis(self) -> tuple[Any, Any]:
        if self._core is None:
            from kubernetes import client

            self._api = self._api_client()
            self._core, self._rbac = client.CoreV1Api(self._api), client.RbacAuthorizationV1Api(self._api)
        return self._core, self._rbac

    def authz(self) -> Any:
        """An AuthorizationV1Api as the workload's credential (SelfSubjectAccessReviews)."""
        if self._authz is None:
            from kubernetes import client

            self._apis()
            self._authz = client.AuthorizationV1Api(self._api)
        return self._authz

    def _api_client(self) -> Any:
        from kubernetes import client
        from kubernetes import config as kube_config

        w = self.workload
        cfg = client.Configuration()
        cfg.retries = 1  # a dead or black-holed cluster answers within 2 x REQUEST_TIMEOUT_S, not urllib3's 4 x
        if w.kubeconfig:
            try:
                kube_config.load_kube_config(w.kubeconfig, w.context, client_configuration=cfg, persist_config=False)
            except Exception as exc:  # the loader raises many types; every one is a bad kubeconfig here
                raise ConfigError(f"{self.config.path}: workload.kubeconfig {w.kubeconfig}: {exc}") from exc
            return client.ApiClient(cfg)
        endpoint = self._endpoint()
        cfg.host = endpoint.server
        cfg.ssl_ca_cert = endpoint.ca_file
        cfg.verify_ssl = not endpoint.insecure_skip_tls_verify
        cfg.api_key = {"authorization": self.config.token(self.user)}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)

    def _endpoint(self) -> Endpoint:
        for target in self.config.targets.values():
            if target.endpoints["none"].available:
                return target.endpoints["none"]
        raise ConfigError(f"{self.config.path}: no available target to reach the cluster; set workload.kubeconfig")

    @property
    def credential(self) -> str:
        w = self.workload
        if w.kubeconfig:
            return f"kubeconfig {w.kubeconfig}" + (f" (context {w.context})" if w.context else "")
        return f"user {self.user}'s token"

    def _call(self, verb: str, kind: str, name: str = "", body: Any = None) -> Any:
        core, rbac = self._apis()
        api, suffix = {
            "Namespace": (core, "namespace"),
            "Pod": (core, "namespaced_pod"),
            "Role": (rbac, "namespaced_role"),
            "RoleBinding": (rbac, "namespaced_role_binding"),
        }[kind]
        ns = [] if kind == "Namespace" else [self.workload.namespace]
        method = getattr(api, f"{verb}_{suffix}")
        if verb == "create":
            return method(*ns, body, _request_timeout=REQUEST_TIMEOUT_S)
        if verb == "delete":
            return method(name, *ns, body=body, _request_timeout=REQUEST_TIMEOUT_S)
        return method(name, *ns, _request_timeout=REQUEST_TIMEOUT_S)

    def _read(self, kind: str, name: str) -> Any:
        try:
            return self._call("read", kind, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _where(self, kind: str, name: str) -> str:
        return (
            f"namespace {name!r}"
            if kind == "Namespace"
            else f"{kind} {name!r} in namespace {self.workload.namespace!r}"
        )

    # -- ensure -----------------------------------------------------------------------------------------

    def ensure(self) -> Workload:
        """Create (manage: true) or check (manage: false) the workload; idempotent. Raises ConfigError or
        WorkloadError naming the namespace and pod."""
        if self._ready:
            return self.workload
        try:
            if self.workload.manage:
                self._require_create_rights()  # before anything is made: a refusal halfway would leave debris
                self._hold()  # before the first create: from here on, Ctrl-C and SIGTERM still clean up
                self._ensure_managed()
            else:
                self._check_existing()
        except ApiException as exc:
            raise WorkloadError(
                f"the cluster refused a workload request as {self.credential}: HTTP {exc.status} {exc.reason}: "
                f"{(exc.body or '')[:300]}"
            ) from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise WorkloadError(f"cannot reach the cluster to set up the workload as {self.credential}: {exc}") from exc
        self._ready = True
        return self.workload

    def _ensure_managed(self) -> None:
        w = self.workload
        self.log(f"setting up the workload in namespace {w.namespace!r} as {self.credential}")
        if w.manage_namespace:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": _metadata(w.namespace, self.run_id)}
            self._create_or_reuse("Namespace", w.namespace, ns)
        if w.grant:
            role, binding = grant_manifests(w, self.run_id)
            self._create_or_reuse("Role", GRANT_NAME, role)
            self._create_or_reuse("RoleBinding", GRANT_NAME, binding)
        for pod in w.pods:
            self._create_or_reuse("Pod", pod, pod_manifest(w, pod, self.run_id))
        for pod in w.pods:
            self._wait_ready(pod)

    def create_rights(self) -> list[rights.Right]:
        """What making the workload takes: the probe pod's rights, and the namespace's and grant's when managed."""
        needed = list(rights.CREATE_POD_RIGHTS)
        if self.workload.manage_namespace:  # a cluster-scoped create: asked only when the harness makes it
            needed += [rights.Right("create", "namespaces"), rights.Right("delete", "namespaces")]
        if self.workload.grant:
            needed += [rights.Right("create", r, group=RBAC_GROUP) for r in ("roles", "rolebindings")]
        return needed

    def check_create_rights(self) -> list[rights.Decision]:
        """SelfSubjectAccessReviews for `create_rights()` (cached): no object is read, nothing cluster-scoped."""
        if self.create_decisions is None:
            self.create_decisions = rights.check(self.authz(), self.workload.namespace, self.create_rights())
        return self.create_decisions

    def _require_create_rights(self) -> None:
        lacking = rights.missing(self.check_create_rights())
        if lacking:
            raise WorkloadError(self.missing_rights_message(lacking))

    def missing_rights_message(self, lacking: list[rights.Right]) -> str:
        w = self.workload
        who = self.kube_user or "<your user>"
        listed = "\n".join(f"  {r}  (in namespace {w.namespace})" for r in lacking)
        return (
            f"{self.credential} may not create the probe pod {w.pods[0]!r} in namespace {w.namespace!r}; missing, "
            f"verb by verb (SelfSubjectAccessReview):\n{listed}\n"
            "Either run in an existing pod that has sh, cat and tar (and an echo listener for port-forward): "
            "--pod NAME (CONFORMANCE_POD), or ask an administrator to apply the Role and RoleBinding printed by:\n"
            f"  {rights.manifest_command(who, w.namespace, create_pod=True)}"
        )

    def _create_or_reuse(self, kind: str, name: str, body: dict[str, Any]) -> None:
        """Create and own `name`; an existing one is used only with `reuse` (and then never deleted)."""
        where = self._where(kind, name)
        deadline = time.monotonic() + self.workload.ready_timeout_s
        while True:
            existing = self._read(kind, name)
            if existing is not None and existing.metadata.deletion_timestamp is not None:
                # Left terminating by an earlier run: wait it out rather than fail on AlreadyExists.
                if time.monotonic() > deadline:
                    raise WorkloadError(f"{where} is still terminating after {self.workload.ready_timeout_s:.0f}s")
                time.sleep(POLL_S)
                continue
            if existing is not None:
                if not self.workload.reuse:
                    raise ConfigError(self._exists_message(kind, name, existing))
                self.log(f"using the existing {where} (workload.reuse: it will not be deleted)")
                return
            self._owned.append(_Owned(kind, name))  # before the call: an interrupt right after it must not leak
            try:
                self._call("create", kind, body=body)
            except ApiException as exc:
                self._owned.pop()  # the server answered: nothing was created
                if exc.status == 409:
                    continue  # someone else made it meanwhile: look again
                if exc.status == 403 and "serviceaccount" in (exc.body or "").replace(" ", "").lower():
                    # A fresh namespace's default ServiceAccount comes a moment after it.
                    if time.monotonic() < deadline:
                        time.sleep(POLL_S)
                        continue
                raise
            self.log(f"created {where}")
            return

    def _exists_message(self, kind: str, name: str, existing: Any) -> str:
        labels = existing.metadata.labels or {}
        left = (
            " (labelled as the harness's: left by an interrupted run?)"
            if labels.get(MANAGED_BY_LABEL) == MANAGED_BY
            else ""
        )
        key = "workload.namespace" if kind == "Namespace" else "workload.pods" if kind == "Pod" else "workload.grant"
        return (
            f"{self.config.path}: {key}: {self._where(kind, name)} already exists{left}; the harness creates and "
            "deletes only its own: choose another name, delete it, or set workload.reuse: true to use it as it is"
        )

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + self.workload.ready_timeout_s
        while True:
            pod = self._read("Pod", name)
            if pod is None:
                raise WorkloadError(f"{self._where('Pod', name)} disappeared while waiting for it to be Ready")
            conditions = {c.type: c.status for c in (pod.status.conditions or [])}
            if conditions.get("Ready") == "True":
                self.log(f"{self._where('Pod', name)} is Ready")
                return
            phase = pod.status.phase or "Unknown"
            if phase in ("Failed", "Succeeded"):
                raise WorkloadError(self._describe(pod, f"ended ({phase})"))
            if time.monotonic() > deadline:
                raise WorkloadError(
                    self._describe(
                        pod, f"not Ready after {self.workload.ready_timeout_s:.0f}s (workload.ready_timeout_s)"
                    )
                )
            time.sleep(POLL_S)

    def _describe(self, pod: Any, what: str) -> str:
        """Phase, conditions, container states and the latest events: what `kubectl describe` would show."""
        name = pod.metadata.name
        lines = [f"{self._where('Pod', name)} {what}; phase {pod.status.phase}"]
        for c in pod.status.conditions or []:
            lines.append(f"  condition {c.type}={c.status}" + (f" ({c.reason}: {c.message})" if c.reason else ""))
        for cs in pod.status.container_statuses or []:
            state = cs.state.waiting or cs.state.terminated if cs.state else None
            if state is not None:
                lines.append(f"  container {cs.name}: {state.reason}: {state.message or ''}".rstrip(": "))
        try:
            core, _ = self._apis()
            events = core.list_namespaced_event(
                self.workload.namespace,
                field_selector=f"involvedObject.kind=Pod,involvedObject.name={name}",
                _request_timeout=REQUEST_TIMEOUT_S,
            ).items
            for e in events[-5:]:
                lines.append(f"  event {e.type} {e.reason}: {e.message}")
        except ApiException as exc:
            lines.append(f"  events: not readable (HTTP {exc.status})")
        return "\n".join(lines)

    def _check_existing(self) -> None:
        """manage: false: every pod must exist and run. A credential that may not read pods, or a cluster that
        does not answer, is not an error: the cells will show what happens."""
        w = self.workload
        for name in w.pods:
            try:
                pod = self._read("Pod", name)
            except ApiException as exc:
                if exc.status in (401, 403):
                    self.pod_status = f"not readable as {self.credential} (HTTP {exc.status}): phase not checked"
                    self.log(f"cannot check {self._where('Pod', name)} as {self.credential} (HTTP {exc.status})")
                    break
                raise
            except (OSError, urllib3.exceptions.HTTPError) as exc:  # a target that is down is the cells' result
                self.log(f"cannot check {self._where('Pod', name)}: the cluster did not answer ({exc})")
                return
            if pod is None:
                raise ConfigError(
                    f"{self.config.path}: workload.pods: pod {name!r} not found in namespace {w.namespace!r} "
                    "(an existing pod was named, with --pod or workload.manage: false, so the harness does not "
                    "create one: name a pod that exists, or let the harness create its own)"
                )
            if pod.status.phase != "Running":
                raise ConfigError(
                    f"{self.config.path}: workload.pods: pod {name!r} in namespace {w.namespace!r} is "
                    f"{pod.status.phase or 'Unknown'}, not Running"
                )
        self.pod_status = self.pod_status or f"Running in namespace {w.namespace!r}"
        check = self.inspect_pod()
        if check.tools_missing:
            raise ConfigError(
                f"pod {w.pods[0]!r} in namespace {w.namespace!r} lacks {', '.join(check.tools_missing)}: exec and "
                f"cp cells need sh, cat and tar in container {w.container!r} ({check.tools_reason})"
            )

    def inspect_pod(self) -> PodCheck:
        """The first pod's tools and echo listener (the cells use the first), checked once as the matrix user."""
        if self.pod_check is None:
            self.pod_check = self._inspect() if self._inspect is not None else self._inspect_live()
        return self.pod_check

    def _inspect_live(self) -> PodCheck:
        import asyncio

        from conformance.kubeconfig_credentials import endpoint_with
        from conformance.pod_check import inspect_pod

        ep = self._endpoint()
        endpoint = endpoint_with(
            self.config.credential(self.user),  # any kubeconfig credential: token, client certificate, exec
            server=ep.server,
            ca_file=ep.ca_file,
            proxy_url=ep.proxy_url,
            insecure_skip_tls_verify=ep.insecure_skip_tls_verify,
        )
        w = self.workload
        return asyncio.run(inspect_pod(endpoint, w.namespace, w.pods[0], w.container, w.port))

    # -- cleanup ----------------------------------------------------------------------------------------

    def cleanup(self, deadline_s: float = CLEANUP_DEADLINE_S) -> None:
        """Delete what this run created, newest first (pods, grant, then namespace), waiting at most
        `deadline_s` for them to go. Idempotent; what could not be deleted is retried by the next call."""
        failed: list[_Owned] = []
        pending: list[_Owned] = []
        for owned in reversed(self._owned):  # every delete is issued before any waiting
            try:
                if self._delete_if_ours(owned):
                    pending.append(owned)
            except Exception as exc:  # one failure must not keep the others alive
                self.log(f"could not delete {self._where(owned.kind, owned.name)}: {exc}")
                failed.append(owned)
        end = time.monotonic() + deadline_s
        while pending and time.monotonic() < end:
            try:
                pending = [o for o in pending if self._read(o.kind, o.name) is not None]
            except Exception as exc:
                self.log(f"cannot confirm the deletions: {exc}")
                break
            if pending:
                time.sleep(POLL_S)
        for owned in pending:
            self.log(f"{self._where(owned.kind, owned.name)} is still terminating; the cluster will finish it")
        self._owned = list(reversed(failed))
        if not self._owned:
            self._release()

    def _delete_if_ours(self, owned: _Owned) -> bool:
        """True when a deletion of our object is under way."""
        from kubernetes import client

        obj = self._read(owned.kind, owned.name)
        if obj is None:
            return False
        if (obj.metadata.annotations or {}).get(RUN_ANNOTATION) != self.run_id:
            self.log(f"left {self._where(owned.kind, owned.name)} alone: this run did not create it")
            return False
        if obj.metadata.deletion_timestamp is None:
            body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=obj.metadata.uid))
            try:
                self._call("delete", owned.kind, owned.name, body=body)
            except ApiException as exc:
                if exc.status in (404, 409):  # gone already, or replaced by someone else's (uid changed)
                    return False
                raise
            self.log(f"deleting {self._where(owned.kind, owned.name)}")
        return True

    def _hold(self) -> None:
        if self._holding:
            return
        self._holding = True
        atexit.register(self.cleanup)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:  # never replace someone's handler
                    self._previous[sig] = signal.signal(sig, _interrupt)

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            atexit.unregister(self.cleanup)
            for sig, handler in self._previous.items():
                if signal.getsignal(sig) is _interrupt:
                    signal.signal(sig, handler)
            self._previous.clear()
        if self._api is not None:
            self._api.close()
            self._api, self._core, self._rbac = None, None, None
