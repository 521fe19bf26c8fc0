"""Streaming conformance harness for Kubernetes: exec, cp, attach and port-forward through proxies and paths."""

__version__ = "0.1.0"
