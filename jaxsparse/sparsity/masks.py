"""Masks as a pytree parallel to the parameters, with ``None`` for leaves that stay dense.

Helpers here name parameter leaves by path ("encoder/Conv_0/kernel"), decide which leaves are
prunable, apply masks, and build exact top-k masks whose count may be a traced value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any
FilterFn = Callable[[str, jax.Array], bool]


def _is_none(x: Any) -> bool:
    return x is None


def key_name(entry: Any) -> str:
    """The plain name of one pytree path entry (dict key, attribute name or sequence index)."""
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_str(path: tuple[Any, ...]) -> str:
    """A parameter path as "module/submodule/leaf" (a leading flax "params" collection dropped)."""
    names = [key_name(p) for p in path]
    if len(names) > 1 and names[0] == "params":
        names = names[1:]
    return "/".join(names)


def leaf_paths(params: PyTree) -> list[str]:
    """The path string of every array leaf of ``params``, in ``jax.tree`` leaf order."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def leaves_by_path(tree: PyTree) -> dict[str, Any]:
    """Every array leaf of ``tree`` by its path string (``None`` leaves, dense masks, left out)."""
    return dict(zip(leaf_paths(tree), jax.tree.leaves(tree), strict=True))


def default_filter(path: str, leaf: jax.Array) -> bool:
    """Prune kernels of Dense and Conv layers (leaf named ``kernel``, 2+ dims); never biases or
    norm scales."""
    return path.rsplit("/", 1)[-1] == "kernel" and jnp.ndim(leaf) >= 2


def prefix_matches(prefix: str, path: str) -> bool:
    """Whether ``prefix`` names ``path`` or one of its enclosing modules (whole components only)."""
    prefix = prefix.strip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def tree_map_masked(fn: Callable[..., Any], masks: PyTree, *trees: PyTree) -> PyTree:
    """``jax.tree.map`` over ``masks`` and trees parallel to it, calling ``fn`` only where the mask
    is not ``None``; dense leaves take the first tree's leaf (or ``None`` with no trees)."""

    def apply(mask, *leaves):
        if mask is None:
            return leaves[0] if leaves else None
        return fn(mask, *leaves)

    return jax.tree.map(apply, masks, *trees, is_leaf=_is_none)


def apply_masks(params: PyTree, masks: PyTree) -> PyTree:
    """Zero the pruned entries of ``params`` (exact zeros); dense leaves are returned unchanged."""
    return tree_map_masked(lambda m, p: jnp.where(m, p, jnp.zeros_like(p)), masks, params)


def _sortable_keys(scores: jax.Array) -> jax.Array:
    """uint32 keys whose unsigned order is the float32 order of ``scores`` (-0.0 taken as +0.0)."""
    bits = jax.lax.bitcast_convert_type(scores.astype(jnp.float32) + 0.0, jnp.uint32)
    negative = (bits >> 31) == 1
    return jnp.where(negative, ~bits, bits | jnp.uint32(0x80000000))


def topk_mask(scores: jax.Array, k: jax.Array | int) -> jax.Array:
    """Boolean mask of exactly ``k`` highest scores (ties broken by lower flat index).

    ``k`` may be traced (``lax.top_k`` needs a static ``k``). The k-th largest score is found bit
    by bit on its sortable uint32 key (32 counting passes, much cheaper than a sort on CPU), and
    ties at that threshold are taken in index order with a cumulative sum.
    """
    keys = _sortable_keys(scores.reshape(-1))
    k = jnp.clip(jnp.asarray(k, jnp.int32), 0, keys.size)

    def next_bit(i, threshold):
        candidate = threshold | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        return jnp.where(jnp.sum(keys >= candidate, dtype=jnp.int32) >= k, candidate, threshold)

    threshold = jax.lax.fori_loop(0, 32, next_bit, jnp.uint32(0))  # the k-th largest key
    above = keys > threshold
    ties = keys == threshold
    needed = k - jnp.sum(above, dtype=jnp.int32)
    take_tie = ties & (jnp.cumsum(ties, dtype=jnp.int32) <= needed)
    return ((above | take_tie) & (k > 0)).reshape(scores.shape)


def count_active(masks: PyTree) -> PyTree:
    """Number of ``True`` entries of every mask leaf (``None`` stays ``None``)."""
    return tree_map_masked(lambda m: jnp.sum(m, dtype=jnp.int32), masks)
