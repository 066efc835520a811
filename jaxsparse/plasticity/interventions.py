"""Plasticity interventions on a parameter tree and its optimiser state: ReDo and Reset.

- **ReDo** (Sokar et al., 2023; dopamine's ``NeuronRecycler``): every tau-dormant neuron of a
  hidden layer gets fresh incoming weights (drawn from the network's own initialisers), a zero
  bias and zero outgoing weights, and the Adam moments of all those entries are zeroed. Zero
  outgoing weights mean the recycled neuron does not change the network's output at first.
- **Reset** (Nikishin et al., 2022): the output layers are re-initialised and their Adam moments
  zeroed.

Both take ``fresh``: a full parameter tree from ``net.init`` with a new key, and the sparse masks
(``None`` for dense leaves): pruned entries stay exactly zero, a recycled or reset weight never
revives a pruned connection. All functions are pure and run under ``jit`` and ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsparse.plasticity.neurons import NeuronLayer
from jaxsparse.sparsity.checks import check_int, check_range
from jaxsparse.sparsity.masks import apply_masks, leaf_paths, leaves_by_path

Array = jax.Array
PyTree = Any

_ZERO_LEAVES = ("bias", "ln_bias")  # reset to zero (the initialisers give zero anyway)


def _rebuild(tree: PyTree, by_path: Mapping[str, Array]) -> PyTree:
    return jax.tree.unflatten(jax.tree.structure(tree), [by_path[p] for p in leaf_paths(tree)])


def zero_adam_moments(opt_state: PyTree, touched: PyTree) -> PyTree:
    """Zero the Adam ``mu`` and ``nu`` entries where the param-shaped bool tree ``touched`` is
    True, in every ``optax.ScaleByAdamState`` inside ``opt_state`` (AdamW included)."""
    found = []

    def fix(s: Any) -> Any:
        if not isinstance(s, optax.ScaleByAdamState):
            return s
        found.append(True)

        def z(m: Array, t: Array) -> Array:
            return jnp.where(t, jnp.zeros_like(m), m)

        return s._replace(mu=jax.tree.map(z, s.mu, touched), nu=jax.tree.map(z, s.nu, touched))

    out = jax.tree.map(fix, opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
    if not found:
        raise ValueError("no Adam state (optax.ScaleByAdamState) in the optimiser state")
    return out


def recycle_dormant(
    params: PyTree,
    fresh: PyTree,
    scores: Mapping[str, Array],
    layers: tuple[NeuronLayer, ...],
    tau: float,
    masks: PyTree | None = None,
) -> tuple[PyTree, PyTree, Array]:
    """ReDo on ``params``: returns ``(params, touched, recycled)``.

    ``scores`` are ``neurons.all_scores`` (by layer name); a neuron is recycled when its score is
    ``<= tau``. ``touched`` is a param-shaped bool tree of every entry changed (incoming, bias and
    outgoing of recycled neurons), for ``zero_adam_moments``; ``recycled`` counts neurons.
    """
    old, new_init = leaves_by_path(params), leaves_by_path(fresh)
    reinit = {p: jnp.zeros(jnp.shape(x), bool) for p, x in old.items()}
    zero = dict(reinit)
    recycled = jnp.int32(0)
    for layer in layers:
        dormant = scores[layer.name] <= tau
        recycled = recycled + jnp.sum(dormant, dtype=jnp.int32)
        for slot in layer.incoming:
            reinit[slot.path] = reinit[slot.path] | slot.entries(dormant, old[slot.path].shape)
        for slot in layer.outgoing:
            zero[slot.path] = zero[slot.path] | slot.entries(dormant, old[slot.path].shape)
    out = {}
    for p, x in old.items():
        start = jnp.zeros_like(x) if p.rsplit("/", 1)[-1] in _ZERO_LEAVES else new_init[p]
        y = jnp.where(reinit[p], start, x)
        out[p] = jnp.where(zero[p], jnp.zeros_like(y), y)
    new_params = _rebuild(params, out)
    if masks is not None:
        new_params = apply_masks(new_params, masks)
    touched = _rebuild(params, {p: reinit[p] | zero[p] for p in old})
    return new_params, touched, recycled


def is_output_layer(path: str) -> bool:
    """The output layers of the MiniGrid heads: ``actor/Dense_1`` and ``critic/Dense_1``."""
    return path.startswith(("actor/Dense_1/", "critic/Dense_1/"))


def reset_layers(
    params: PyTree,
    fresh: PyTree,
    select: Callable[[str], bool] = is_output_layer,
    masks: PyTree | None = None,
) -> tuple[PyTree, PyTree]:
    """Reset: leaves whose path satisfies ``select`` take their ``fresh`` value; returns
    ``(params, touched)`` with ``touched`` True on every entry of the reset leaves."""
    paths = leaf_paths(params)
    chosen = [select(p) for p in paths]
    if not any(chosen):
        raise ValueError(f"reset selects no parameter; paths: {paths}")
    new = [
        f if c else x
        for c, x, f in zip(chosen, jax.tree.leaves(params), jax.tree.leaves(fresh), strict=True)
    ]
    treedef = jax.tree.structure(params)
    new_params = jax.tree.unflatten(treedef, new)
    if masks is not None:
        new_params = apply_masks(new_params, masks)
    touched = jax.tree.unflatten(
        treedef,
        [jnp.full(jnp.shape(x), c) for c, x in zip(chosen, jax.tree.leaves(params), strict=True)],
    )
    return new_params, touched


@dataclass(frozen=True)
class PlasticityConfig:
    """Diagnostics and interventions on an algorithm's update clock (``*_every`` in updates).

    ``diagnostics``: measure dormant fractions, srank and the Fisher trace on ``batch`` recent
    observations (``tau`` for dormancy); ``redo_every``: recycle ``redo_tau``-dormant neurons
    every N updates (0: never); ``reset_every``: reset the output layers every N updates, at most
    ``reset_max`` times (0: never). ``fisher_chunk``: per-sample gradients held at once.
    """

    diagnostics: bool = False
    batch: int = 1024
    tau: float = 0.001
    fisher_chunk: int = 64
    redo_every: int = 0
    redo_tau: float = 0.001
    reset_every: int = 0
    reset_max: int = 2

    def __post_init__(self) -> None:
        check_int("batch", self.batch, minimum=1)
        check_int("fisher_chunk", self.fisher_chunk, minimum=1)
        check_int("redo_every", self.redo_every, minimum=0)
        check_int("reset_every", self.reset_every, minimum=0)
        check_int("reset_max", self.reset_max, minimum=0)
        check_range("tau", self.tau, 0.0, np.inf)
        check_range("redo_tau", self.redo_tau, 0.0, np.inf)

    @property
    def needs_batch(self) -> bool:
        """Whether the algorithm must keep a batch of recent observations."""
        return self.diagnostics or self.redo_every > 0
