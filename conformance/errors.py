"""The project's exception tree.

ConformanceError
├── ConfigError            bad user input (file, key, expected value)
├── LabError               the local lab could not be built, started or reached
│   └── ComponentError     one lab component failed (names it, carries its log tail)
├── ProtocolError          wire-level failures (see conformance.wire.errors)
├── WorkloadError          the workload (namespace, probe pod) could not be created, readied or checked
├── PreflightStop          the preflight found that nothing could work (names what is missing)
└── ResultsFormatError     a results document does not match its schema (names the JSON path)
"""

from __future__ import annotations


class ConformanceError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ConformanceError):
    """A configuration value is wrong; the message names where it came from."""


class LabError(ConformanceError):
    """The local lab could not do what was asked."""


class ComponentError(LabError):
    """One lab component failed to build or start."""

    def __init__(self, component: str, message: str, log_tail: str = "") -> None:
        self.component = component
        self.log_tail = log_tail
        text = f"{component}: {message}"
        if log_tail:
            text += f"\n--- last lines of {component}'s log ---\n{log_tail}"
        super().__init__(text)


class WorkloadError(ConformanceError):
    """The workload could not be set up; the message names the namespace, the pod and what the cluster said."""


class PreflightStop(ConformanceError):
    """The preflight's verdict is `stop`: the run ends before the matrix; the message says what is missing."""


class ResultsFormatError(ConformanceError):
    """A results file is not a valid results document; the message names the JSON path and what was expected."""
