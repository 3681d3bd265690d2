"""Deprecated: :mod:`glimpse.checks` is the public module."""

# shim for issue 12 migration
from glimpse.checks import check_finite, check_positive_int, check_shape  # noqa: F401
