"""Sparse-training methods: one small frozen dataclass each, all with the same interface.

A method decides, per prunable layer: how many weights are active at the start and at the end
(``initial_counts`` / ``final_counts``, through a per-layer distribution), which weights are
active at first (``init_mask``), when masks change (``is_update_step``), and how
(``update_mask``). ``update_mask`` returns the new mask and the positions that were (re)grown:
those start at exactly zero with fresh optimiser moments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import jax
import jax.numpy as jnp

from jaxsparse.sparsity.checks import check_choice, check_range
from jaxsparse.sparsity.distributions import DISTRIBUTIONS, layer_counts
from jaxsparse.sparsity.masks import topk_mask
from jaxsparse.sparsity.schedules import (
    PeriodicSchedule,
    drop_fraction_schedule,
    polynomial_progress,
)

Shapes = Sequence[tuple[int, ...]]
Fixed = Sequence[float | None]


def scheduled_count(
    step: jax.Array, initial: jax.Array, final: jax.Array, start: int, end: int, power: float
) -> jax.Array:
    """Active weights on the cubic path from ``initial`` at ``start`` to ``final`` at ``end``."""
    progress = polynomial_progress(step, start, end, power)
    return jnp.round(initial + progress * (final - initial).astype(jnp.float32)).astype(jnp.int32)


@dataclass(frozen=True)
class SparseMethod:
    """The shared interface. ``sparsity`` is the global target over the method's layers (it may be
    a traced value); ``overrides`` pins the sparsity of named layers (path prefixes)."""

    sparsity: float | jax.Array = 0.0
    distribution: str = "uniform"
    overrides: Mapping[str, float] = field(default_factory=dict)
    erk_power_scale: float = 1.0

    name: ClassVar[str] = "base"
    is_dense: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_range("sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        check_choice("distribution", self.distribution, DISTRIBUTIONS)
        for layer, value in self.overrides.items():
            check_range(f"overrides[{layer!r}]", value, 0.0, 1.0, high_open=True)

    # -- counts ---------------------------------------------------------------------------
    def final_counts(self, shapes: Shapes, fixed: Fixed) -> jax.Array:
        """Active weights per layer at the end of training (the target)."""
        return layer_counts(shapes, self.sparsity, self.distribution, fixed, self.erk_power_scale)

    def initial_counts(self, shapes: Shapes, fixed: Fixed) -> jax.Array:
        """Active weights per layer at initialisation."""
        return self.final_counts(shapes, fixed)

    def active_count_at(self, step: jax.Array, initial: jax.Array, final: jax.Array) -> jax.Array:
        """Active weights of one layer after an update at ``step``."""
        return final

    # -- masks ----------------------------------------------------------------------------
    def init_mask(self, key: jax.Array, shape: tuple[int, ...], count: jax.Array) -> jax.Array:
        """A random mask with exactly ``count`` active weights."""
        return topk_mask(jax.random.uniform(key, shape), count)

    def is_update_step(self, step: jax.Array) -> jax.Array:
        return jnp.bool_(False)

    def update_mask(
        self,
        key: jax.Array,
        step: jax.Array,
        weight: jax.Array,
        grad: jax.Array,
        mask: jax.Array,
        initial: jax.Array,
        final: jax.Array,
    ) -> tuple[jax.Array, jax.Array]:
        """(new mask, regrown positions) for one layer at an update step."""
        return mask, jnp.zeros_like(mask)


@dataclass(frozen=True)
class Dense(SparseMethod):
    """No pruning: the layers get no mask at all."""

    name: ClassVar[str] = "dense"
    is_dense: ClassVar[bool] = True


@dataclass(frozen=True)
class StaticSparse(SparseMethod):
    """A random mask drawn once at initialisation and never changed (Liu et al. 2022)."""

    distribution: str = "erk"
    name: ClassVar[str] = "static"


@dataclass(frozen=True)
class GMP(SparseMethod):
    """Gradual magnitude pruning (Zhu & Gupta 2017): dense at first, then every ``freq`` steps
    between ``start`` and ``end`` keep the largest-magnitude weights, following the cubic
    schedule to ``sparsity`` at ``end``."""

    start: int = 0
    end: int = 1
    freq: int = 1
    power: float = 3.0
    name: ClassVar[str] = "gmp"

    def __post_init__(self) -> None:
        super().__post_init__()
        PeriodicSchedule(self.freq, self.start, self.end)  # validates freq, start < end

    def initial_counts(self, shapes: Shapes, fixed: Fixed) -> jax.Array:
        return jnp.asarray([math.prod(s) for s in shapes], jnp.int32)

    def active_count_at(self, step, initial, final):
        return scheduled_count(step, initial, final, self.start, self.end, self.power)

    def init_mask(self, key, shape, count):
        return jnp.ones(shape, bool)

    def is_update_step(self, step):
        return PeriodicSchedule(self.freq, self.start, self.end, include_end=True).is_update_step(
            step
        )

    def update_mask(self, key, step, weight, grad, mask, initial, final):
        count = self.active_count_at(step, initial, final)
        scores = jnp.where(mask, jnp.abs(weight), -1.0)  # pruned weights stay pruned
        return topk_mask(scores, count), jnp.zeros_like(mask)


@dataclass(frozen=True)
class SET(SparseMethod):
    """Sparse Evolutionary Training (Mocanu et al. 2018): fixed sparsity; every ``freq`` steps drop
    the ``drop_fraction`` smallest-magnitude active weights and regrow as many at random among
    the inactive ones, starting at zero."""

    distribution: str = "erk"
    freq: int = 1
    drop_fraction: float | jax.Array = 0.3
    drop_schedule: str = "constant"
    start: int = 0
    end: int | None = None
    name: ClassVar[str] = "set"

    def __post_init__(self) -> None:
        super().__post_init__()
        PeriodicSchedule(self.freq, self.start, self.end)
        drop_fraction_schedule(self.drop_fraction, self.drop_schedule, self.start, self.end)

    def is_update_step(self, step):
        return PeriodicSchedule(self.freq, self.start, self.end).is_update_step(step)

    def grow_scores(self, key: jax.Array, grad: jax.Array) -> jax.Array:
        return jax.random.uniform(key, grad.shape)

    def update_mask(self, key, step, weight, grad, mask, initial, final):
        zeta = drop_fraction_schedule(self.drop_fraction, self.drop_schedule, self.start, self.end)(
            step
        )
        active = jnp.sum(mask, dtype=jnp.int32)
        n_drop = jnp.round(zeta * active.astype(jnp.float32)).astype(jnp.int32)
        kept = topk_mask(jnp.where(mask, jnp.abs(weight), -jnp.inf), active - n_drop)
        grown = topk_mask(jnp.where(kept, -jnp.inf, self.grow_scores(key, grad)), n_drop)
        return kept | grown, grown


@dataclass(frozen=True)
class RigL(SET):
    """RigL (Evci et al. 2020): SET whose regrowth picks the inactive weights with the largest
    dense-gradient magnitude."""

    name: ClassVar[str] = "rigl"

    def grow_scores(self, key, grad):
        return jnp.abs(grad)


@dataclass(frozen=True)
class Grow(SparseMethod):
    """Sparse-to-dense: start at ``sparsity``, grow to ``final_sparsity`` along the cubic schedule
    between ``start`` and ``end``, every ``freq`` steps; new weights start at zero and are chosen
    by dense-gradient magnitude (``grow='gradient'``) or at random."""

    distribution: str = "erk"
    final_sparsity: float | jax.Array = 0.0
    start: int = 0
    end: int = 1
    freq: int = 1
    power: float = 3.0
    grow: str = "gradient"
    name: ClassVar[str] = "grow"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("final_sparsity", self.final_sparsity, 0.0, 1.0, high_open=True)
        check_choice("grow", self.grow, ("gradient", "random"))
        PeriodicSchedule(self.freq, self.start, self.end)
        try:
            if float(self.final_sparsity) > float(self.sparsity):
                raise ValueError(
                    f"final_sparsity ({self.final_sparsity}) must not exceed sparsity "
                    f"({self.sparsity}): Grow only adds weights"
                )
        except (TypeError, jax.errors.ConcretizationTypeError):
            pass  # traced values are the caller's responsibility

    def final_counts(self, shapes, fixed):
        return layer_counts(
            shapes, self.final_sparsity, self.distribution, fixed, self.erk_power_scale
        )

    def initial_counts(self, shapes, fixed):
        return layer_counts(shapes, self.sparsity, self.distribution, fixed, self.erk_power_scale)

    def active_count_at(self, step, initial, final):
        return scheduled_count(step, initial, final, self.start, self.end, self.power)

    def is_update_step(self, step):
        return PeriodicSchedule(self.freq, self.start, self.end, include_end=True).is_update_step(
            step
        )

    def update_mask(self, key, step, weight, grad, mask, initial, final):
        n_grow = jnp.maximum(
            self.active_count_at(step, initial, final) - jnp.sum(mask, dtype=jnp.int32), 0
        )
        scores = jnp.abs(grad) if self.grow == "gradient" else jax.random.uniform(key, grad.shape)
        grown = topk_mask(jnp.where(mask, -jnp.inf, scores), n_grow)
        return mask | grown, grown


METHODS: dict[str, type[SparseMethod]] = {
    cls.name: cls for cls in (Dense, StaticSparse, GMP, SET, RigL, Grow)
}


def make_method(name: str, **kwargs) -> SparseMethod:
    """A method by registry name ('dense', 'static', 'gmp', 'set', 'rigl', 'grow')."""
    check_choice("method", name, tuple(METHODS))
    return METHODS[name](**kwargs)
