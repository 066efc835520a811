"""Multi-task gradient surgery as optax transformations: PCGrad and CAGrad.

Both turn per-task gradients into one update direction, resolving conflicts between tasks:

* ``pcgrad`` (Yu et al., 2020, "Gradient Surgery for Multi-Task Learning") projects each task's
  gradient onto the normal plane of every other task's gradient it conflicts with (negative dot
  product), visiting the other tasks in a random order.
* ``cagrad`` (Liu et al., 2021, "Conflict-Averse Gradient Descent") moves the mean gradient within
  a ball around itself towards the direction that most improves the worst task.

Conventions:

* ``updates`` carries a leading task axis: every leaf is ``[T, *param_shape]`` (T tasks, the same
  T for all leaves), and the output is an ordinary gradient tree ``[*param_shape]``. Put the
  surgery first in a chain, before clipping and the optimiser:
  ``optax.chain(pcgrad(), optax.clip_by_global_norm(1.0), optax.adam(3e-4))``. ``init`` takes the
  ordinary parameters (no task axis).
* A task's gradient is the concatenation of its slices of all leaves; dot products and norms run
  over all parameters. Only the T x T Gram matrix of the task gradients and per-leaf weighted sums
  over the task axis are computed, so nothing larger than T x (number of parameters) is formed.
* Reduction: both return a mean over tasks, so that without conflicts (PCGrad) or with ``c = 0``
  (CAGrad) the result is the mean of the task gradients, i.e. the gradient of the mean of the task
  losses. ``pcgrad(reduction="sum")`` gives the paper's sum.
* Sparse masks: the surgery sees every entry it is given. With sparse training, zero the pruned
  entries of the per-task gradients before the surgery, so that dot products and norms only count
  live weights, e.g. ``apply_masks(task_grads, get_sparse_state(opt_state).masks)`` (the masks
  broadcast over the task axis), then chain the surgery before ``sparsify(...)``.

Everything runs under ``jax.jit`` and ``jax.vmap`` (e.g. over a leading seed axis): T is read
from the static shapes, and the loops are ``lax`` loops of fixed length.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from optax.projections import projection_simplex

from jaxsparse.sparsity.checks import check_choice, check_int, check_range

Array = jax.Array
PyTree = Any

_HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes for the Gram matrix and weighted sums
_CAGRAD_EPS = 1e-8  # the official implementation's epsilon (g0 norm, ||gw||, the sqrt term)


# --------------------------------------------------------------------------- shared helpers


def _task_leaves(name: str, updates: PyTree, params: PyTree | None) -> tuple[list[Array], int]:
    """The leaves of ``updates`` and their common leading task count T (checked statically)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(updates)
    if not flat:
        raise ValueError(f"{name}: updates has no array leaves")
    leading = {}
    for path, leaf in flat:
        shape = jnp.shape(leaf)
        leading[jax.tree_util.keystr(path)] = shape[0] if shape else None
    sizes = set(leading.values())
    if None in sizes or len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            f"{name}: every leaf of updates needs the same leading task axis [T, *param_shape] "
            f"with T >= 1; leading sizes by leaf: {leading}"
        )
    leaves = [leaf for _, leaf in flat]
    if params is not None:
        param_leaves = jax.tree.leaves(params)
        shapes = [tuple(jnp.shape(x)[1:]) for x in leaves]
        param_shapes = [tuple(jnp.shape(p)) for p in param_leaves]
        if shapes != param_shapes:
            raise ValueError(
                f"{name}: updates without their task axis have shapes {shapes}, "
                f"but params have shapes {param_shapes}"
            )
    return leaves, sizes.pop()


def _compute_dtype(leaves: list[Array]) -> jnp.dtype:
    """float32, or wider if a leaf is wider (half-precision gradients get a float32 Gram)."""
    return jnp.result_type(jnp.float32, *[jnp.asarray(x).dtype for x in leaves])


def _gram(leaves: list[Array], num_tasks: int, dtype: jnp.dtype) -> Array:
    """``[T, T]`` Gram matrix of the task gradients, summed over all leaves."""
    gram = jnp.zeros((num_tasks, num_tasks), dtype)
    for leaf in leaves:
        flat = jnp.reshape(leaf, (num_tasks, -1)).astype(dtype)
        gram = gram + jnp.einsum("ti,si->ts", flat, flat, precision=_HIGHEST)
    return gram


def _weighted_sum(weights: Array, leaf: Array) -> Array:
    """``sum_t weights[t] * leaf[t]`` in the weights' dtype."""
    return jnp.einsum("t,t...->...", weights, leaf.astype(weights.dtype), precision=_HIGHEST)


def _as_key(seed: int | Array) -> Array:
    if isinstance(seed, int | np.integer):
        return jax.random.PRNGKey(int(seed))
    return seed


# --------------------------------------------------------------------------- PCGrad


class PCGradState(NamedTuple):
    """State of ``pcgrad``: the PRNG key of the next update's projection orders."""

    key: Array


def _projection_orders(key: Array, num_tasks: int, shuffle: bool) -> Array:
    """``[T, T-1]`` int32: row i lists the other tasks in the order task i is projected on them.

    Each task draws its own permutation (the reference implementation shuffles the task list
    again for every task); without ``shuffle`` the order is 0..T-1, skipping i.
    """
    steps = jnp.arange(num_tasks - 1)[None, :]
    tasks = jnp.arange(num_tasks)[:, None]
    others = (steps + (steps >= tasks)).astype(jnp.int32)
    if not shuffle:
        return others
    perms = jax.vmap(lambda k: jax.random.permutation(k, num_tasks - 1))(
        jax.random.split(key, num_tasks)
    )
    return jnp.take_along_axis(others, perms.astype(jnp.int32), axis=1)


def _pcgrad_coefficients(gram: Array, orders: Array) -> Array:
    """``[T, T]`` coefficients C with g_i' = sum_k C[i, k] g_k after all projections.

    Every projected gradient stays in the span of the task gradients, so its dot product with
    g_j is ``C[i] @ gram[:, j]``: the projections run on the Gram matrix alone. The scan runs over
    the T-1 projection steps, all tasks at once (task i projects on ``orders[i, step]``).
    """
    num_tasks = gram.shape[0]
    sq_norms = jnp.diagonal(gram)
    rows = jnp.arange(num_tasks)

    def step(coef: Array, j: Array) -> tuple[Array, None]:
        dots = jnp.sum(coef * gram[:, j].T, axis=1)  # g_i' . g_{j_i}
        norm_j = sq_norms[j]
        conflict = (dots < 0) & (norm_j > 0)  # a zero g_j has nothing to project on
        scale = jnp.where(conflict, dots / jnp.where(norm_j > 0, norm_j, 1.0), 0.0)
        return coef.at[rows, j].add(-scale), None

    coef, _ = lax.scan(step, jnp.eye(num_tasks, dtype=gram.dtype), orders.T)
    return coef


def pcgrad(
    seed: int | Array = 0, reduction: str = "mean", shuffle: bool = True
) -> optax.GradientTransformation:
    """PCGrad (Yu et al., 2020): project away pairwise conflicts, then reduce over tasks.

    ``update(updates, state, params=None)`` takes per-task gradients ``[T, *param_shape]`` and
    returns the combined gradient ``[*param_shape]``. For each task i, g_i' starts at g_i and, for
    every other task j in a random order (its own permutation per task, drawn from the state's
    key, which is split at every update), if g_i' . g_j < 0 then
    g_i' -= (g_i' . g_j) / ||g_j||^2 g_j. The result is the mean (``reduction="mean"``, exactly
    the mean of the task gradients when none conflict) or the sum (``"sum"``, as in the paper)
    of the g_i'. ``shuffle=False`` uses the fixed order 0..T-1 (skipping i).

    ``seed`` is an int or a PRNG key; under ``vmap`` over seeds give each seed its own key, e.g.
    ``jax.vmap(lambda k, p: pcgrad(k).init(p))(keys, params)``.
    """
    check_choice("reduction", reduction, ("mean", "sum"))

    def init_fn(params: PyTree) -> PCGradState:
        del params
        return PCGradState(key=_as_key(seed))

    def update_fn(
        updates: PyTree, state: PCGradState, params: PyTree | None = None
    ) -> tuple[PyTree, PCGradState]:
        leaves, num_tasks = _task_leaves("pcgrad", updates, params)
        dtype = _compute_dtype(leaves)
        if shuffle:
            next_key, key = jax.random.split(state.key)
        else:
            next_key = key = state.key
        if num_tasks == 1:
            correction = jnp.zeros((1,), dtype)
        else:
            orders = _projection_orders(key, num_tasks, shuffle)
            coef = _pcgrad_coefficients(_gram(leaves, num_tasks, dtype), orders)
            # Combined = sum_i g_i' = sum_t g_t + sum_t (sum_i C[i, t] - 1) g_t: the correction
            # weights are exactly zero when nothing conflicts, so the plain mean/sum is exact.
            correction = jnp.sum(coef - jnp.eye(num_tasks, dtype=dtype), axis=0)
        if reduction == "mean":
            correction = correction / num_tasks
            base = [jnp.mean(leaf.astype(dtype), axis=0) for leaf in leaves]
        else:
            base = [jnp.sum(leaf.astype(dtype), axis=0) for leaf in leaves]
        out = [
            (b + _weighted_sum(correction, leaf)).astype(leaf.dtype)
            for b, leaf in zip(base, leaves, strict=True)
        ]
        return jax.tree.unflatten(jax.tree.structure(updates), out), PCGradState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------- CAGrad


def _cagrad_weights(gram: Array, c_g0: Array, num_steps: int) -> Array:
    """Task weights w on the simplex minimising w^T GG b + c_g0 sqrt(w^T GG w + 1e-8), b = 1/T.

    Accelerated projected gradient descent (FISTA with ``projection_simplex``) for a fixed
    ``num_steps``, on the problem divided by s = trace(GG)/T (the mean squared task-gradient
    norm; the same minimiser, with unit-scale numbers). The step is 1/L: L starts at
    T (1 + c_g0 / sqrt(s)), a bound on the normalised curvature away from the sqrt's kink; a step
    is accepted when the curvature it saw, (grad(z) - grad(y)) . (z - y) / ||z - y||^2, is at
    most L, after which L shrinks by 0.9; otherwise it is rejected and L doubles. Momentum
    restarts when it points against the projected gradient (O'Donoghue & Candes, 2015). Only
    gradients are compared, never objective values: those are flat to float32 rounding near the
    minimum and would stall the weights at ~sqrt(eps) accuracy.
    """
    num_tasks = gram.shape[0]
    dtype = gram.dtype
    uniform = jnp.full((num_tasks,), 1.0 / num_tasks, dtype)
    scale = jnp.trace(gram) / num_tasks + jnp.finfo(dtype).tiny
    gg = gram / scale
    coef = c_g0 / jnp.sqrt(scale)
    eps = _CAGRAD_EPS / scale
    linear = gg @ uniform

    def grad(w: Array) -> Array:
        gw = gg @ w
        return linear + coef * gw / jnp.sqrt(jnp.maximum(w @ gw, 0.0) + eps)

    lipschitz0 = jnp.trace(gg) * (1.0 + coef)
    low, high = 1e-6 * lipschitz0, 1e12 * lipschitz0

    def body(_: int, carry: tuple[Array, ...]) -> tuple[Array, ...]:
        w, y, t, lipschitz, grad_y = carry
        z = projection_simplex(y - grad_y / lipschitz).astype(dtype)
        step = z - y
        ok = (grad(z) - grad_y) @ step <= lipschitz * (step @ step)
        t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        restart = (y - z) @ (z - w) > 0
        y_next = jnp.where(restart, z, z + ((t - 1.0) / t_next) * (z - w))
        t_next = jnp.where(restart, jnp.ones_like(t), t_next)
        lipschitz_next = jnp.clip(jnp.where(ok, 0.9 * lipschitz, 2.0 * lipschitz), low, high)
        return (
            jnp.where(ok, z, w),
            jnp.where(ok, y_next, y),
            jnp.where(ok, t_next, t),
            lipschitz_next,
            jnp.where(ok, grad(y_next), grad_y),
        )

    carry = (uniform, uniform, jnp.ones((), dtype), lipschitz0, grad(uniform))
    return lax.fori_loop(0, num_steps, body, carry)[0]


def cagrad(c: float = 0.5, rescale: int = 1, num_steps: int = 500) -> optax.GradientTransformation:
    """CAGrad (Liu et al., 2021), following the official implementation.

    ``update(updates, state, params=None)`` takes per-task gradients ``[T, *param_shape]`` and
    returns ``[*param_shape]``. With GG = G G^T the task gradients' Gram matrix and
    g0_norm = sqrt(mean(GG) + 1e-8), it finds w on the simplex minimising
    w^T GG b + c g0_norm sqrt(w^T GG w + 1e-8) (b = 1/T; see ``_cagrad_weights`` for the
    solver, ``num_steps`` iterations), forms gw = sum_i w_i g_i and returns
    g = mean_i g_i + c g0_norm / (||gw|| + 1e-8) gw, divided by 1 (``rescale=0``), 1 + c^2 (1)
    or 1 + c (2). ``c = 0`` gives the mean of the task gradients.

    The 1e-8 epsilons are absolute, as in the official code: once the task gradients' norms fall
    to ~1e-4 or below, the one in g0_norm dominates and the radius c g0_norm outgrows ||g0||.
    """
    check_range("c", c, 0.0, np.inf)
    if isinstance(rescale, bool) or rescale not in (0, 1, 2):
        raise ValueError(f"rescale must be one of (0, 1, 2), got {rescale!r}")
    check_int("num_steps", num_steps, minimum=1)
    divisor = {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]

    def init_fn(params: PyTree) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(
        updates: PyTree, state: optax.EmptyState, params: PyTree | None = None
    ) -> tuple[PyTree, optax.EmptyState]:
        leaves, num_tasks = _task_leaves("cagrad", updates, params)
        dtype = _compute_dtype(leaves)
        gram = _gram(leaves, num_tasks, dtype)
        c_g0 = c * jnp.sqrt(jnp.mean(gram) + _CAGRAD_EPS)
        if num_tasks == 1:
            weights = jnp.ones((1,), dtype)
        else:
            weights = _cagrad_weights(gram, c_g0, num_steps)
        gw = [_weighted_sum(weights, leaf) for leaf in leaves]
        gw_norm = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in gw))
        lmbda = c_g0 / (gw_norm + _CAGRAD_EPS)
        out = [
            ((jnp.mean(leaf.astype(dtype), axis=0) + lmbda * x) / divisor).astype(leaf.dtype)
            for leaf, x in zip(leaves, gw, strict=True)
        ]
        return jax.tree.unflatten(jax.tree.structure(updates), out), state

    return optax.GradientTransformation(init_fn, update_fn)
