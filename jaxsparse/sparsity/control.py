"""A ``lax.cond`` that stays a real branch under ``vmap``.

``vmap`` turns a ``lax.cond`` whose predicate is batched into a ``select`` that runs both branches
for every example. Mask updates happen on the same steps for every seed, so here the batched rule
branches once on "any example's predicate holds": between mask updates nothing extra runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import custom_batching


def cond_any(
    pred: jax.Array,
    true_fn: Callable[[Any], Any],
    false_fn: Callable[[Any], Any],
    operands: Any,
) -> Any:
    """``lax.cond(pred, true_fn, false_fn, operands)``; under ``vmap`` the true branch runs (per
    example, selected) only when some example's ``pred`` holds, else only the false branch.

    The branches must take everything they use through ``operands`` (no closed-over tracers).
    """

    @custom_batching.custom_vmap
    def branch(p, ops):
        return jax.lax.cond(p, true_fn, false_fn, ops)

    @branch.def_vmap
    def branch_batched(axis_size, in_batched, p, ops):
        p_batched, ops_batched = in_batched
        ops = jax.tree.map(
            lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))),
            ops,
            ops_batched,
        )
        preds = p if p_batched else jnp.broadcast_to(p, (axis_size,))
        out = jax.lax.cond(
            jnp.any(preds),
            lambda o: jax.vmap(lambda q, x: jax.lax.cond(q, true_fn, false_fn, x))(preds, o),
            jax.vmap(false_fn),
            ops,
        )
        return out, jax.tree.map(lambda _: True, out)

    return branch(pred, operands)
