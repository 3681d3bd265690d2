"""Deprecated: :mod:`glimpse.modes` is the public module."""

# shim for issue 12 migration
from glimpse.modes import outside_inference_mode  # noqa: F401
