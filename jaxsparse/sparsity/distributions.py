"""Per-layer sparsity distributions: uniform and Erdos-Renyi-Kernel (ERK).

Both return exact per-layer counts of active weights. The global sparsity may be a traced value,
so one compiled program can run several sparsity levels side by side under ``vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.sparsity.checks import check_choice, check_range

DISTRIBUTIONS = ("uniform", "erk")


def uniform_counts(sizes: Sequence[int], sparsity: jax.Array | float) -> jax.Array:
    """Active weights per layer when every layer has the same sparsity: round((1 - s) * n)."""
    n = jnp.asarray(sizes, jnp.float32)
    return jnp.round((1.0 - jnp.asarray(sparsity, jnp.float32)) * n).astype(jnp.int32)


def erk_densities(
    shapes: Sequence[tuple[int, ...]], sparsity: jax.Array | float, power_scale: float = 1.0
) -> jax.Array:
    """ERK densities (Evci et al. 2020): density_l proportional to (sum(shape)/prod(shape))^p.

    Layers whose density would exceed 1 are made dense and the rest rescaled, so that
    sum_l density_l * n_l = (1 - sparsity) * sum_l n_l exactly (up to float rounding).
    """
    n = np.array([math.prod(s) for s in shapes], np.float64)
    raw = jnp.asarray((np.array([sum(s) for s in shapes]) / n) ** power_scale, jnp.float32)
    n = jnp.asarray(n, jnp.float32)
    total_active = (1.0 - jnp.asarray(sparsity, jnp.float32)) * jnp.sum(n)
    dense = jnp.zeros(n.shape, bool)
    eps = jnp.float32(0.0)
    for _ in range(
        len(shapes)
    ):  # each pass makes at least one more layer dense, or changes nothing
        free_mass = jnp.sum(jnp.where(dense, 0.0, n * raw))
        left = total_active - jnp.sum(jnp.where(dense, n, 0.0))
        eps = jnp.where(free_mass > 0, left / jnp.where(free_mass > 0, free_mass, 1.0), 0.0)
        dense = dense | (eps * raw > 1.0)
    return jnp.where(dense, 1.0, jnp.clip(eps * raw, 0.0, 1.0))


def apportion(ideal: jax.Array, sizes: jax.Array, total: jax.Array) -> jax.Array:
    """Integer counts near ``ideal`` that sum exactly to ``total`` (largest-remainder rounding)."""
    base = jnp.clip(jnp.floor(ideal), 0, sizes).astype(jnp.int32)
    remainder = jnp.maximum(total - jnp.sum(base), 0)
    frac = jnp.where(base >= sizes, -1.0, ideal - base)
    order = jnp.argsort(-frac, stable=True)
    bonus = (
        jnp.zeros(ideal.shape, jnp.int32)
        .at[order]
        .set((jnp.arange(ideal.size) < remainder).astype(jnp.int32))
    )
    return base + bonus


def erk_counts(
    shapes: Sequence[tuple[int, ...]], sparsity: jax.Array | float, power_scale: float = 1.0
) -> jax.Array:
    """Active weights per layer under ERK; they sum exactly to round((1 - s) * total)."""
    sizes = jnp.asarray([math.prod(s) for s in shapes], jnp.int32)
    density = erk_densities(shapes, sparsity, power_scale)
    total = jnp.round(
        (1.0 - jnp.asarray(sparsity, jnp.float32)) * jnp.sum(sizes.astype(jnp.float32))
    )
    return apportion(density * sizes.astype(jnp.float32), sizes, total.astype(jnp.int32))


def layer_counts(
    shapes: Sequence[tuple[int, ...]],
    sparsity: jax.Array | float,
    distribution: str = "uniform",
    fixed: Sequence[float | None] | None = None,
    erk_power_scale: float = 1.0,
) -> jax.Array:
    """Active weights per layer for a group of layers sharing one global ``sparsity``.

    ``fixed[i]`` (a sparsity, or ``None``) pins layer i, e.g. 0.0 keeps it dense; the other layers
    share the global sparsity among themselves under ``distribution``.
    """
    check_choice("distribution", distribution, DISTRIBUTIONS)
    check_range("sparsity", sparsity, 0.0, 1.0, high_open=True)
    fixed = list(fixed) if fixed is not None else [None] * len(shapes)
    sizes = [math.prod(s) for s in shapes]
    counts = jnp.zeros(len(shapes), jnp.int32)
    free = [i for i, f in enumerate(fixed) if f is None]
    pinned = [i for i, f in enumerate(fixed) if f is not None]
    if pinned:
        pinned_counts = jnp.stack([uniform_counts([sizes[i]], fixed[i])[0] for i in pinned])
        counts = counts.at[jnp.array(pinned)].set(pinned_counts)
    if free:
        if distribution == "erk":
            free_counts = erk_counts([shapes[i] for i in free], sparsity, erk_power_scale)
        else:
            free_counts = uniform_counts([sizes[i] for i in free], sparsity)
        counts = counts.at[jnp.array(free)].set(free_counts)
    return counts
