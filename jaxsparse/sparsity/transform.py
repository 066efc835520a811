"""The optax wrapper that makes any optimiser sparse.

``sparsify(inner, plan)`` keeps pruned weights, their gradients and their optimiser moments
exactly zero, runs each method's mask updates on its schedule (counted in optimiser updates)
inside ``update`` under ``lax.cond``, and starts regrown weights at zero with zero moments. It
composes like any optax transformation: put clipping, weight decay and Adam inside ``inner``, so
they only ever see the active weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxsparse.sparsity.control import cond_any
from jaxsparse.sparsity.masks import FilterFn, apply_masks, default_filter, tree_map_masked
from jaxsparse.sparsity.plan import Group, Plan, resolve_plan

PyTree = Any


class SparseState(NamedTuple):
    """Optimiser state of ``sparsify``: masks (``None`` for dense leaves), the per-layer active
    counts at the schedule's start and end, the update count and a PRNG key."""

    count: jax.Array
    key: jax.Array
    masks: PyTree
    initial_counts: PyTree
    final_counts: PyTree
    inner_state: optax.OptState


def _as_key(key: jax.Array | int) -> jax.Array:
    if isinstance(key, int):
        return jax.random.PRNGKey(key)
    return key


def _unflatten_like(params: PyTree, leaves: list) -> PyTree:
    """A tree shaped like ``params`` with the given leaves, ``None`` allowed."""
    treedef = jax.tree.structure(params)
    return jax.tree.unflatten(treedef, leaves)


def _flat(tree: PyTree) -> list:
    return jax.tree.leaves(tree, is_leaf=lambda x: x is None)


def _update_group(
    group: Group,
    is_update: jax.Array,
    key: jax.Array,
    step: jax.Array,
    weights: list,
    grads: list,
    masks: list,
    initial: list,
    final: list,
) -> tuple[list, list]:
    """One group's masks after its update (if ``step`` is one of its update steps)."""
    method = group.method
    idx = group.indices
    operands = (
        key,
        step,
        [weights[i] for i in idx],
        [grads[i] for i in idx],
        [masks[i] for i in idx],
        [initial[i] for i in idx],
        [final[i] for i in idx],
    )

    def do_update(ops):
        k, t, w, g, m, n0, n1 = ops
        out = [
            method.update_mask(jax.random.fold_in(k, i), t, *leaf)
            for i, leaf in zip(idx, zip(w, g, m, n0, n1, strict=True), strict=True)
        ]
        return [new for new, _ in out], [grown for _, grown in out]

    def skip(ops):
        old = ops[4]
        return list(old), [jnp.zeros_like(m) for m in old]

    return cond_any(is_update, do_update, skip, operands)


def sparsify(
    inner: optax.GradientTransformation,
    plan: Plan,
    *,
    key: jax.Array | int = 0,
    filter_fn: FilterFn = default_filter,
) -> optax.GradientTransformationExtraArgs:
    """Wrap ``inner`` so that the parameters follow ``plan`` (a method, or module -> method).

    After ``state = tx.init(params)`` zero the pruned weights once with
    ``params = apply_masks(params, state.masks)``; from then on ``optax.apply_updates`` keeps them
    exactly zero. ``update`` needs ``params``.

    The schedule's clock is the wrapper's own update count. ``update(..., mask_step=t)`` uses ``t``
    instead: under ``vmap`` over seeds, an unbatched ``t`` (``in_axes=None``) keeps the mask update
    a real ``lax.cond``, where a batched count turns it into a ``select`` that runs the mask update
    at every step.
    """
    inner = optax.with_extra_args_support(inner)

    def init_fn(params: PyTree) -> SparseState:
        groups = resolve_plan(plan, params, filter_fn)
        leaves = jax.tree.leaves(params)
        n = len(leaves)
        masks, initial, final = [None] * n, [None] * n, [None] * n
        base_key = _as_key(key)
        init_key = jax.random.fold_in(base_key, 0)
        for group in groups:
            start_counts = group.method.initial_counts(group.shapes, group.fixed)
            end_counts = group.method.final_counts(group.shapes, group.fixed)
            for j, i in enumerate(group.indices):
                initial[i], final[i] = start_counts[j], end_counts[j]
                masks[i] = group.method.init_mask(
                    jax.random.fold_in(init_key, i), leaves[i].shape, start_counts[j]
                )
        return SparseState(
            count=jnp.zeros([], jnp.int32),
            key=base_key,
            masks=_unflatten_like(params, masks),
            initial_counts=_unflatten_like(params, initial),
            final_counts=_unflatten_like(params, final),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state: SparseState, params=None, *, mask_step=None, **extra_args):
        if params is None:
            raise ValueError("sparsify(...).update needs params (magnitudes decide the masks)")
        groups = resolve_plan(plan, params, filter_fn)
        weights, grads = jax.tree.leaves(params), jax.tree.leaves(updates)
        masks = _flat(state.masks)
        initial, final = _flat(state.initial_counts), _flat(state.final_counts)
        regrown: list = [None if m is None else jnp.zeros_like(m) for m in masks]
        step = state.count if mask_step is None else jnp.asarray(mask_step, jnp.int32)
        step_key = jax.random.fold_in(jax.random.fold_in(state.key, 1), step)
        new_masks = list(masks)
        any_update = jnp.bool_(False)
        for group in groups:
            is_update = group.method.is_update_step(step)
            any_update = any_update | is_update
            new, grown = _update_group(
                group, is_update, step_key, step, weights, grads, masks, initial, final
            )
            for j, i in enumerate(group.indices):
                new_masks[i], regrown[i] = new[j], grown[j]
        # Weights that carry on: active now and not just (re)grown. Only they see gradients,
        # keep optimiser moments and move; every other masked weight is set to exactly zero.
        kept = _unflatten_like(
            params, [None if m is None else m & ~r for m, r in zip(new_masks, regrown, strict=True)]
        )
        masked_grads = apply_masks(updates, kept)
        inner_updates, inner_state = inner.update(
            masked_grads, state.inner_state, params, **extra_args
        )
        # Moments of weights pruned or regrown at this step are reset. Between mask updates the
        # inactive moments stay exactly zero by themselves: their gradients are zero, and the
        # optimisers' moment updates (momentum, Adam, RMSProp, Lion, clipping, weight decay)
        # keep a zero moment at zero; the tests check this at every step.
        treedef = jax.tree.structure(params)

        def reset_moments(ops):
            state, kept_masks = ops
            dense = jax.tree.unflatten(treedef, [True] * treedef.num_leaves)
            full = tree_map_masked(lambda m, _: m, kept_masks, dense)  # True for dense leaves
            return optax.tree_utils.tree_map_params(
                inner,
                lambda x, m: x if m is True else jnp.where(m, x, jnp.zeros_like(x)),
                state,
                full,
            )

        inner_state = cond_any(any_update, reset_moments, lambda ops: ops[0], (inner_state, kept))
        new_updates = tree_map_masked(
            lambda m, u, p: jnp.where(m, u, -p).astype(u.dtype), kept, inner_updates, params
        )
        new_state = SparseState(
            count=optax.safe_int32_increment(state.count),
            key=state.key,
            masks=_unflatten_like(params, new_masks),
            initial_counts=state.initial_counts,
            final_counts=state.final_counts,
            inner_state=inner_state,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def get_sparse_state(opt_state: optax.OptState) -> SparseState:
    """The ``SparseState`` inside an optimiser state (itself, or nested in a chain's tuple)."""
    if isinstance(opt_state, SparseState):
        return opt_state
    if isinstance(opt_state, tuple):
        for sub in opt_state:
            try:
                return get_sparse_state(sub)
            except ValueError:
                continue
    raise ValueError("no SparseState found in the optimiser state: was it built with sparsify()?")
