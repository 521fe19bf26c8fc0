"""The lab's edge processes, the openunison target and the network paths: their files, ready to start.

`prepare_*` writes a process's rendered config into its work directory, makes the directories it writes
to, and returns what the supervisor needs to start and health-check it. `lab.py` starts them after the
core (API server, kube-oidc-proxy), and can start one again on its own when it has died.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import LabError
from conformance.lab import network_paths, openunison
from conformance.lab.network_paths import PATH_NAMES, PATHS, PathInstance
from conformance.lab.pki import CertKeyPair
from conformance.lab.topology import Layout

EDGE_NAMES: tuple[str, ...] = (openunison.NAME, *PATH_NAMES)
START_DEADLINE_S = 30.0
SHM_DIR = Path("/dev/shm")  # noqa: S108 - only squid segments named after our own service name


@dataclass(frozen=True, slots=True)
class EdgeProcess:
    name: str
    argv: list[str]
    health: str
    port: int
    health_ca: str | None  # the CA that the health URL's server presents; None for plain http / tcp


def serving_cert(layout: Layout, path: str) -> CertKeyPair | None:
    """The certificate `path` presents when it terminates TLS: alb's from alb-ca, others' from the lab CA."""
    name = PATHS[path].serving_cert
    if name is None:
        return None
    if PATHS[path].client_ca == "alb":
        return layout.pki.serving.alb
    return layout.pki.make_serving_cert(name)


def health_ca(layout: Layout, name: str) -> str | None:
    if name == openunison.NAME:
        return None
    if name in PATHS:
        return None if PATHS[name].forward_proxy else str(network_paths.client_ca_file(layout, name))
    return str(layout.pki.ca.cert)


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def prepare_openunison(layout: Layout, envoy: str, release: str = openunison.MIRRORS_RELEASE) -> EdgeProcess:
    ou = openunison.standin(layout, layout.pki.make_serving_cert(openunison.NAME), release)
    _write(ou.workdir, openunison.render(ou))
    return EdgeProcess(openunison.NAME, openunison.argv(ou, envoy), openunison.ready_url(ou), ou.listen, None)


def prepare_path(layout: Layout, name: str, binary: str, *, idle_timeout_s: int | None = None) -> EdgeProcess:
    inst = network_paths.instance(layout, name, serving=serving_cert(layout, name), idle_timeout_s=idle_timeout_s)
    prepare_instance(inst)
    first_port = next(iter(inst.listen.values()))
    return EdgeProcess(
        name, network_paths.argv(inst, binary), network_paths.health_url(inst), first_port, health_ca(layout, name)
    )


def prepare_instance(inst: PathInstance) -> None:
    """Write the instance's config and make the directories it writes to (also for a test's own instance)."""
    for directory in network_paths.writable_dirs(inst):
        directory.mkdir(parents=True, exist_ok=True)
    _write(inst.workdir, network_paths.render(inst))
    if inst.spec.software != "squid":
        return
    # A squid that was killed leaves its shared-memory segments, and the next one refuses to start while
    # they exist: remove those of this instance's own service name.
    for stale in SHM_DIR.glob(f"{network_paths.squid_service_name(inst)}-*.shm"):
        stale.unlink(missing_ok=True)
    if inst.as_root:
        # squid drops root for this user before it opens its logs.
        uid = pwd.getpwnam(network_paths.SQUID_USER).pw_uid
        gid = grp.getgrnam(network_paths.SQUID_GROUP).gr_gid
        os.chown(inst.rundir, uid, gid)


def remove_rundirs(layout: Layout) -> None:
    """Run directories outside the state directory (squid's, when run as root)."""
    for name in PATH_NAMES:
        rundir = network_paths.rundir(layout, name)
        if rundir != network_paths.workdir(layout, name):
            shutil.rmtree(rundir, ignore_errors=True)


def software_for(paths: tuple[str, ...]) -> list[str]:
    """The programs the openunison target (Envoy) and the chosen paths need, each once."""
    return list(dict.fromkeys(["envoy", *(PATHS[p].software for p in paths)]))


def check_known(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in EDGE_NAMES:
            raise LabError(f"unknown edge process {name!r}")
