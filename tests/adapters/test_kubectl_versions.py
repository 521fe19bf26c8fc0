"""kubectl client names, ranges and modes (`--client`, `--kubectl-modes`), without the lab."""

from __future__ import annotations

import pytest

from conformance.errors import ConfigError
from conformance.kubectl_versions import DEFAULT_MODES, kubectl_minors, modes_for, parse_modes
from conformance.lab.build import KUBECTL_MINORS


def test_every_minor_from_1_24_to_1_37_is_supported() -> None:
    assert KUBECTL_MINORS == tuple(range(24, 38))


@pytest.mark.parametrize(
    ("name", "minors"),
    [
        ("kubectl-1.28", [28]),
        ("kubectl-1.24..1.30", [24, 25, 26, 27, 28, 29, 30]),
        ("kubectl-1.30..1.30", [30]),
        ("kubectl", list(range(24, 38))),
        ("kubectl-all", list(range(24, 38))),
        ("native", None),
        ("python", None),
    ],
)
def test_client_names(name: str, minors: list[int] | None) -> None:
    assert kubectl_minors(name, "--client") == minors


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("kubectl-1.23", "not supported; supported: 1.24 to 1.37"),
        ("kubectl-1.38", "not supported"),
        ("kubectl-1.30..1.24", "runs backwards"),
        ("kubectl-1.24..1.26..1.28", "not a version"),
        ("kubectl-30", "not a kubectl version like 1.30"),
        ("kubectl-1.x", "not a kubectl version"),
        ("kubectl-1.24..", "not a kubectl version"),
    ],
)
def test_bad_client_names_are_config_errors_naming_the_source(name: str, words: str) -> None:
    with pytest.raises(ConfigError, match="--client") as info:
        kubectl_minors(name, "--client")
    assert words in str(info.value)


def test_default_modes_every_version_as_shipped_and_the_reference_forced() -> None:
    specs = parse_modes(DEFAULT_MODES, "default")
    assert modes_for(28, specs) == {"as-shipped"}
    assert modes_for(35, specs) == {"as-shipped", "forced"}


def test_modes_with_ranges_and_repeats() -> None:
    specs = parse_modes("forced=1.24..1.26,forced=1.35,as-shipped=1.30", "--kubectl-modes")
    assert modes_for(25, specs) == {"forced"}
    assert modes_for(30, specs) == {"as-shipped"}
    assert modes_for(35, specs) == {"forced"}
    assert modes_for(33, specs) == set()
    assert modes_for(31, parse_modes("forced", "x")) == {"forced"}


@pytest.mark.parametrize(
    ("text", "words"),
    [("shipped", "unknown kubectl mode 'shipped'"), ("forced=1.99", "not supported"), (",", "no kubectl mode")],
)
def test_bad_modes_are_config_errors(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match="--kubectl-modes") as info:
        parse_modes(text, "--kubectl-modes")
    assert words in str(info.value)


def settings(client: str | None, modes: str | None = None) -> object:
    from conformance.plugin import Settings

    values = {"client": client, "kubectl-modes": modes}
    return Settings(values, {"client": "--client", "kubectl-modes": "--kubectl-modes"})


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> list[int]:
    """Every version 'installed' (fake manifests); records the versions that had to be installed."""
    from conformance.lab import build

    fetched: list[int] = []

    def manifest(minor: int) -> build.Manifest:
        return build.Manifest(f"kubectl-1.{minor}", f"1.{minor}", f"v1.{minor}.9", {"kubectl": f"/k/1.{minor}"})

    cached = {f"kubectl-1.{m}": manifest(m) for m in KUBECTL_MINORS if m != 26}
    monkeypatch.setattr(build, "installed_components", lambda: cached)

    def install(_progress: object, minor: int, force: bool = False) -> build.Manifest:
        fetched.append(minor)
        return manifest(minor)

    monkeypatch.setattr(build, "install_kubectl", install)
    return fetched


def test_the_default_run_has_every_version_as_shipped_and_1_35_forced(installed: list[int]) -> None:
    from conformance.suite_session import _clients

    clients = _clients(settings(None))  # type: ignore[arg-type]
    kubectls = [n for n in clients if n.startswith("kubectl-")]
    assert kubectls == [f"kubectl-1.{m}" for m in range(24, 38)]
    assert "native" in clients and "python" in clients
    assert installed == [26]  # the one not cached was fetched on demand
    assert clients["kubectl-1.28"].protocols("exec") == ("as-shipped",)
    assert clients["kubectl-1.35"].protocols("exec") == ("spdy", "ws", "as-shipped")
    assert clients["kubectl-1.26"].version == "v1.26.9"  # the exact version, from the manifest


def test_a_range_with_forced_modes(installed: list[int]) -> None:
    from conformance.suite_session import _clients

    clients = _clients(settings("kubectl-1.29..1.31", "forced"))  # type: ignore[arg-type]
    assert list(clients) == ["kubectl-1.29", "kubectl-1.30", "kubectl-1.31"]
    assert clients["kubectl-1.30"].protocols("port-forward") == ("spdy", "ws-tunnel")
    assert installed == []


def test_a_version_no_mode_covers_is_a_config_error(installed: list[int]) -> None:
    from conformance.suite_session import _clients

    with pytest.raises(ConfigError, match="gives none of its versions a mode"):
        _clients(settings("kubectl-1.28", "forced=1.35"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a kubectl version"):
        _clients(settings("kubectl-latest"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'java' is not a client"):
        _clients(settings("java"))  # type: ignore[arg-type]
