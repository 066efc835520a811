"""An on-device replay buffer for one seed, as pure functions over a plain pytree.

Layout: one ring buffer per task. Every leaf of ``ReplayState.data`` is ``[T, C, ...]`` (``C``
rows per task). Environments are task-major with ``k = num_envs // T`` per task, so one
environment step of the suite writes ``k`` rows to every task at the same row positions:
``pos`` (next row to write) and ``size`` (filled rows) are shared by all tasks. ``replay_sample``
draws ``batch_per_task`` rows uniformly (with replacement) from each task's filled rows and
returns a task-major batch ``[T * batch_per_task, ...]`` (each task gets its share, equal blocks,
so multi-head networks can run with ``task_major=True``).

Why not ``flashbax`` (0.1.3 on PyPI)? It is not a dependency of the project, and its buffers
know nothing of the per-task split: a task-stratified sample would need one flashbax buffer per
task anyway. The ring buffer below is a few lines, has no extra dependency, runs under
``jax.vmap`` over seeds (``pos``/``size`` may be batched) and is a ``flax.struct`` pytree that
orbax checkpoints as is.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxsparse.sparsity.checks import check_int

Array = jax.Array
PyTree = Any


class ReplayState(struct.PyTreeNode):
    """Per-task ring buffers: ``data`` leaves ``[T, C, ...]``; ``pos``, ``size`` int32 scalars."""

    data: PyTree
    pos: Array  # next row to write, in [0, C)
    size: Array  # filled rows per task, in [0, C]

    @property
    def num_tasks(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]

    @property
    def capacity(self) -> int:
        """Rows per task."""
        return jax.tree.leaves(self.data)[0].shape[1]


def replay_init(example: PyTree, num_tasks: int, capacity_per_task: int) -> ReplayState:
    """An empty buffer for transitions shaped like ``example`` (one transition, no batch axis;
    arrays or ``jax.ShapeDtypeStruct``s)."""
    check_int("num_tasks", num_tasks, minimum=1)
    check_int("capacity_per_task", capacity_per_task, minimum=1)
    data = jax.tree.map(
        lambda x: jnp.zeros((num_tasks, capacity_per_task, *x.shape), x.dtype), example
    )
    return ReplayState(data=data, pos=jnp.zeros([], jnp.int32), size=jnp.zeros([], jnp.int32))


def replay_add(state: ReplayState, batch: PyTree) -> ReplayState:
    """Write one environment step of the suite: leaves ``[N, ...]``, task-major, ``N = T * k``.

    Task ``t``'s rows ``batch[t*k:(t+1)*k]`` go to rows ``pos, ..., pos+k-1 (mod C)`` of its ring.
    """
    T, C = state.num_tasks, state.capacity
    n = jax.tree.leaves(batch)[0].shape[0]
    if n % T:
        raise ValueError(f"the batch ({n} rows) must split evenly over {T} tasks")
    k = n // T
    if k > C:
        raise ValueError(f"one step writes {k} rows per task, more than the capacity {C}")
    rows = (state.pos + jnp.arange(k, dtype=jnp.int32)) % C
    data = jax.tree.map(
        lambda buf, x: buf.at[:, rows].set(x.reshape(T, k, *x.shape[1:]).astype(buf.dtype)),
        state.data,
        batch,
    )
    return ReplayState(
        data=data, pos=(state.pos + k) % C, size=jnp.minimum(state.size + k, C).astype(jnp.int32)
    )


def replay_sample(state: ReplayState, key: Array, batch_per_task: int) -> PyTree:
    """``batch_per_task`` rows of every task, uniform over its filled rows (with replacement),
    as one task-major batch ``[T * batch_per_task, ...]``. The buffer must not be empty."""
    check_int("batch_per_task", batch_per_task, minimum=1)
    T = state.num_tasks
    rows = jax.random.randint(key, (T, batch_per_task), 0, jnp.maximum(state.size, 1))
    tasks = jnp.arange(T)[:, None]
    return jax.tree.map(
        lambda buf: buf[tasks, rows].reshape(T * batch_per_task, *buf.shape[2:]), state.data
    )
