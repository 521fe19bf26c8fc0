"""The public client API in one import: ``from conformance.clients.native import exec_, ...``."""

from conformance.clients import *  # noqa: F403 - this module exists to re-export the package API
from conformance.clients import __all__  # noqa: F401
