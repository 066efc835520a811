"""Input validation that runs before compilation and names the offending field."""

from __future__ import annotations

from typing import Any

import numpy as np


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array when it is known now, ``None`` when it is traced."""
    try:
        return np.asarray(value, dtype=np.float64)
    except Exception:  # a jax Tracer refuses conversion: it is checked by its producer instead
        return None


def check_range(
    field: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` naming ``field`` if a concrete ``value`` lies outside the interval."""
    arr = concrete(value)
    if arr is None:
        return
    ok_low = arr > low if low_open else arr >= low
    ok_high = arr < high if high_open else arr <= high
    if not (np.all(ok_low) and np.all(ok_high) and np.all(np.isfinite(arr))):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{field} must lie in {interval}, got {value!r}")


def check_choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``field`` and the allowed values if ``value`` is not one."""
    if value not in allowed:
        raise ValueError(f"{field} must be one of {allowed}, got {value!r}")


def check_int(field: str, value: Any, *, minimum: int) -> None:
    """Raise ``ValueError`` naming ``field`` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
