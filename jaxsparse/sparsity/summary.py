"""Per-layer and global sparsity: sizes, counts of nonzeros, fractions."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.sparsity.masks import FilterFn, default_filter, path_str


class LayerSparsity(NamedTuple):
    path: str
    size: int
    nonzero: int
    sparsity: float
    prunable: bool


class SparsitySummary(NamedTuple):
    layers: list[LayerSparsity]
    prunable_size: int
    prunable_nonzero: int
    prunable_sparsity: float
    total_size: int
    total_nonzero: int
    total_sparsity: float

    def table(self) -> str:
        """A plain-text table, one row per layer, then the global figures."""
        width = max([len(layer.path) for layer in self.layers] + [5])
        rows = [f"{'layer':<{width}}  {'size':>10}  {'nonzero':>10}  {'sparsity':>8}"]
        for layer in self.layers:
            mark = "" if layer.prunable else "  (dense)"
            rows.append(
                f"{layer.path:<{width}}  {layer.size:>10}  {layer.nonzero:>10}  "
                f"{layer.sparsity:>8.4f}{mark}"
            )
        rows.append(
            f"{'prunable':<{width}}  {self.prunable_size:>10}  {self.prunable_nonzero:>10}  "
            f"{self.prunable_sparsity:>8.4f}"
        )
        rows.append(
            f"{'all':<{width}}  {self.total_size:>10}  {self.total_nonzero:>10}  "
            f"{self.total_sparsity:>8.4f}"
        )
        return "\n".join(rows)


def nonzero_counts(tree: Any) -> Any:
    """Exact count of nonzero entries of every leaf (jittable)."""
    return jax.tree.map(lambda x: jnp.count_nonzero(x).astype(jnp.int32), tree)


def sparsity_summary(params: Any, filter_fn: FilterFn = default_filter) -> SparsitySummary:
    """Count exact zeros in concrete ``params``; ``filter_fn`` says which layers are prunable."""
    layers = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        name = path_str(path)
        nonzero = int(np.count_nonzero(arr))
        layers.append(
            LayerSparsity(
                name, arr.size, nonzero, 1.0 - nonzero / max(arr.size, 1), filter_fn(name, leaf)
            )
        )
    p_size = sum(layer.size for layer in layers if layer.prunable)
    p_nz = sum(layer.nonzero for layer in layers if layer.prunable)
    t_size = sum(layer.size for layer in layers)
    t_nz = sum(layer.nonzero for layer in layers)
    return SparsitySummary(
        layers, p_size, p_nz, 1.0 - p_nz / max(p_size, 1), t_size, t_nz, 1.0 - t_nz / max(t_size, 1)
    )
