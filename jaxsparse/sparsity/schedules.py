"""When masks change and to what: the GMP cubic schedule, periodic update steps, drop fractions."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from jaxsparse.sparsity.checks import check_choice, check_int, check_range

DROP_SCHEDULES = ("constant", "cosine")


def polynomial_progress(
    step: jax.Array | int, start: int, end: int, power: float = 3.0
) -> jax.Array:
    """1 - (1 - p)^power with p = (step - start) / (end - start) clipped to [0, 1]."""
    return optax.polynomial_schedule(0.0, 1.0, power, end - start, start)(step)


def gmp_sparsity_at(
    step: jax.Array | int,
    final_sparsity: jax.Array | float,
    start: int,
    end: int,
    initial_sparsity: jax.Array | float = 0.0,
    power: float = 3.0,
) -> jax.Array:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) (1 - (t - t_s)/(t_e - t_s))^3, clipped in time.

    With s_i = 0 this is s_t = s_f (1 - (1 - (t - t_s)/(t_e - t_s))^3).
    """
    check_range("final_sparsity", final_sparsity, 0.0, 1.0, high_open=True)
    check_range("initial_sparsity", initial_sparsity, 0.0, 1.0, high_open=True)
    _check_window(start, end)
    s_i = jnp.asarray(initial_sparsity, jnp.float32)
    s_f = jnp.asarray(final_sparsity, jnp.float32)
    return s_i + (s_f - s_i) * polynomial_progress(step, start, end, power)


def _check_window(start: int, end: int | None) -> None:
    check_int("start", start, minimum=0)
    if end is not None:
        check_int("end", end, minimum=0)
        if end <= start:
            raise ValueError(
                f"end must be greater than start (t_e > t_s), got start={start}, end={end}"
            )


@dataclass(frozen=True)
class PeriodicSchedule:
    """Update steps start + k * freq (k >= 1) up to ``end``; with ``include_end`` also at ``end``.

    ``end=None`` means updates continue forever.
    """

    freq: int
    start: int = 0
    end: int | None = None
    include_end: bool = False

    def __post_init__(self) -> None:
        check_int("freq", self.freq, minimum=1)
        _check_window(self.start, self.end)

    def is_update_step(self, step: jax.Array | int) -> jax.Array:
        step = jnp.asarray(step, jnp.int32)
        after = step > self.start
        on_period = (step - self.start) % self.freq == 0
        if self.end is None:
            return after & on_period
        at_end = step == self.end if self.include_end else jnp.bool_(False)
        return after & (step <= self.end) & (on_period | at_end)


def drop_fraction_schedule(
    fraction: float | jax.Array, kind: str = "constant", start: int = 0, end: int | None = None
) -> optax.Schedule:
    """The fraction of active weights SET/RigL drop at a step: constant, or cosine-decayed to 0 at
    ``end`` (RigL, Evci et al. 2020)."""
    check_range("drop_fraction", fraction, 0.0, 1.0, low_open=True)
    check_choice("drop_schedule", kind, DROP_SCHEDULES)
    if kind == "constant":
        return lambda step: jnp.asarray(fraction, jnp.float32)
    if end is None:
        raise ValueError("drop_schedule='cosine' needs an end step (end=None given)")
    _check_window(start, end)
    cosine = optax.cosine_decay_schedule(fraction, end - start)
    return lambda step: cosine(jnp.maximum(jnp.asarray(step) - start, 0))
