"""The generators' compiled loops: numba where it is installed, the numpy code otherwise.

numba is a dependency of the package, but GPU images built from a reduced wheel set leave it out (scripts/gpu_wheels.sh:
llvmlite alone is most of the carry), so each caller keeps its numpy path and asks here for the compiled one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


@functools.cache
def njit_or_none(function: Callable) -> Callable | None:
    """``function`` compiled by numba's njit (cached on disk beside its module), or None when numba is not installed; one
    dispatcher per function (cached), so callers may ask on every call.
    The compiled loop runs the same float operations in the same order as ``function`` (its callers test that)."""
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True)(function)
