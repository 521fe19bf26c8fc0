"""The lab PKI for certificate tests (the same fixture the transport tests use)."""

from tests.transport.conftest import pki

__all__ = ["pki"]
