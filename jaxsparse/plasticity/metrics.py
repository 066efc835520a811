"""Plasticity metrics: tau-dormant neurons, effective rank, and Fisher-information trace.

All functions are pure and work under `jax.jit` and `jax.vmap` (e.g. over a leading seed axis).
Hyperparameters (`tau`, `delta`) are validated when they are concrete and skipped when traced.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.sparsity.checks import check_range
from jaxsparse.sparsity.masks import tree_map_masked

Array = jax.Array
PyTree = Any

# Same epsilon as dopamine's `weight_recyclers.py` (ReDo reference implementation).
_SCORE_EPS = 1e-9


# --------------------------------------------------------------------------- dormant neurons


class DormantStats(NamedTuple):
    """tau-dormant statistics; `overall` = `count / total` pooled over all layers' neurons."""

    per_layer: dict[str, Array]  # fraction of dormant neurons in each layer
    overall: Array  # total dormant / total neurons (not the mean of per-layer fractions)
    count: Array  # int32, dormant neurons across all layers
    total: Array  # int32, neurons across all layers


def neuron_scores(activations: Array) -> Array:
    """Per-neuron ReDo score s_i = mean|h_i| / (mean_k mean|h_k| + 1e-9) (Sokar et al., 2023).

    `activations` is `[batch, ..., features]`; all but the last axis are averaged (a conv channel
    is one neuron).
    """
    per_neuron = jnp.mean(jnp.abs(activations), axis=tuple(range(activations.ndim - 1)))
    return per_neuron / (jnp.mean(per_neuron) + _SCORE_EPS)


def dormant_mask(activations: Array, tau: float | Array) -> Array:
    """Boolean `[features]` mask of tau-dormant neurons, s_i <= tau (Sokar et al., 2023)."""
    check_range("tau", tau, 0.0, np.inf)
    return neuron_scores(activations) <= tau


def dormant_fraction(activations: Mapping[str, Array], tau: float | Array) -> DormantStats:
    """Fraction of tau-dormant neurons per layer and pooled over layers (Sokar et al., 2023, ReDo).

    Tracks loss of plasticity: neurons whose normalised mean activation has collapsed to <= tau.
    """
    check_range("tau", tau, 0.0, np.inf)
    per_layer, count, total = {}, jnp.zeros((), jnp.int32), 0
    for name, h in activations.items():
        mask = dormant_mask(h, tau)
        per_layer[name] = jnp.mean(mask.astype(jnp.float32))
        count = count + jnp.sum(mask, dtype=jnp.int32)
        total += mask.shape[0]
    total_arr = jnp.asarray(total, jnp.int32)
    overall = count / jnp.maximum(total_arr, 1).astype(jnp.float32)
    return DormantStats(per_layer=per_layer, overall=overall, count=count, total=total_arr)


# --------------------------------------------------------------------------- effective rank


def effective_rank(features: Array, delta: float = 0.01) -> Array:
    """srank_delta: smallest k with sum_{i<=k} sigma_i / sum_i sigma_i >= 1 - delta (Kumar et al.,
    2021, "Implicit under-parameterization"); `features` is `[batch, ...]`, an all-zero matrix -> 0.
    """
    check_range("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
    phi = jnp.reshape(features, (features.shape[0], -1))
    sigma = jnp.linalg.svd(phi, compute_uv=False)  # descending, non-negative
    total = jnp.sum(sigma)
    cumulative = jnp.cumsum(sigma) / jnp.where(total > 0, total, 1.0)
    # cumulative is non-decreasing, so counting entries below the threshold gives k - 1.
    k = jnp.sum(cumulative < 1.0 - delta, dtype=jnp.int32) + 1
    k = jnp.minimum(k, sigma.shape[0])  # guard against round-off leaving cumulative[-1] < 1 - delta
    return jnp.where(total > 0, k, 0).astype(jnp.int32)


# --------------------------------------------------------------------------- Fisher information


def _apply_mask(mask: Array, grads: Array) -> Array:
    """Zero per-sample gradient entries `[batch, *shape]` where the `[*shape]` mask is False."""
    if jnp.shape(mask) != grads.shape[1:]:
        raise ValueError(f"masks leaf shape {jnp.shape(mask)} != parameter shape {grads.shape[1:]}")
    return jnp.where(mask, grads, jnp.zeros_like(grads))


def per_sample_fisher(
    log_prob_fn: Callable[[PyTree, Array, Array], Array],
    params: PyTree,
    observations: Array,
    actions: Array,
    masks: PyTree | None = None,
    batch_size: int | None = None,
) -> Array:
    """Per-sample ||grad_theta log pi(a|s)||^2, shape `[batch]`: the Fisher trace's summands.

    `log_prob_fn(params, observation, action)` scores ONE sample; actions are sampled by the caller
    (a ~ pi(.|s)). `masks` mirrors `params`, with `None` for dense leaves and bool arrays for sparse
    ones: gradient entries where the mask is False are not parameters and are excluded.
    `batch_size` bounds memory: per-sample gradients are materialised `batch_size` samples at a
    time (`jax.lax.map`) instead of all at once (`batch x num_params` floats).
    """

    def squared_norms(obs: PyTree, act: Array) -> Array:
        grads = jax.vmap(jax.grad(log_prob_fn), in_axes=(None, 0, 0))(params, obs, act)
        if masks is not None:
            grads = tree_map_masked(_apply_mask, masks, grads)
        squared = [
            jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)
            for g in jax.tree_util.tree_leaves(grads)
        ]
        return sum(squared[1:], squared[0])

    if batch_size is None:
        return squared_norms(observations, actions)

    def one(xs: tuple[PyTree, Array]) -> Array:
        obs, act = jax.tree.map(lambda x: x[None], xs)
        return squared_norms(obs, act)[0]

    return jax.lax.map(one, (observations, actions), batch_size=batch_size)


def fisher_trace(
    log_prob_fn: Callable[[PyTree, Array, Array], Array],
    params: PyTree,
    observations: Array,
    actions: Array,
    masks: PyTree | None = None,
) -> Array:
    """Trace of the policy's empirical Fisher, E_{s, a~pi} ||grad_theta log pi(a|s)||^2.

    Averages per-sample squared gradient norms (not the norm of the mean gradient); see
    `per_sample_fisher` for the argument conventions.
    """
    return jnp.mean(per_sample_fisher(log_prob_fn, params, observations, actions, masks))


def sample_and_fisher_trace(
    key: Array,
    sample_fn: Callable[[Array, PyTree, Array], Array],
    log_prob_fn: Callable[[PyTree, Array, Array], Array],
    params: PyTree,
    observations: Array,
    masks: PyTree | None = None,
) -> Array:
    """`fisher_trace` with actions drawn on-policy by `sample_fn(key, params, observations)`.

    `sample_fn` is batched: it returns one action per observation.
    """
    actions = jax.lax.stop_gradient(sample_fn(key, params, observations))
    return fisher_trace(log_prob_fn, params, observations, actions, masks)
