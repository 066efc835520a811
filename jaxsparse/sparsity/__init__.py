"""The sparse-training core: masks, distributions, schedules, methods, MST plans, the optax
wrapper and a summary, all pure functions over pytrees that run inside jit and vmap."""

from jaxsparse.sparsity.distributions import (
    apportion,
    erk_counts,
    erk_densities,
    layer_counts,
    uniform_counts,
)
from jaxsparse.sparsity.masks import (
    apply_masks,
    count_active,
    default_filter,
    leaf_paths,
    path_str,
    topk_mask,
    tree_map_masked,
)
from jaxsparse.sparsity.methods import (
    GMP,
    METHODS,
    SET,
    Dense,
    Grow,
    RigL,
    SparseMethod,
    StaticSparse,
    make_method,
    scheduled_count,
)
from jaxsparse.sparsity.plan import Group, Plan, resolve_plan
from jaxsparse.sparsity.schedules import (
    PeriodicSchedule,
    drop_fraction_schedule,
    gmp_sparsity_at,
    polynomial_progress,
)
from jaxsparse.sparsity.summary import (
    LayerSparsity,
    SparsitySummary,
    nonzero_counts,
    sparsity_summary,
)
from jaxsparse.sparsity.transform import SparseState, get_sparse_state, sparsify

__all__ = [
    "GMP",
    "METHODS",
    "SET",
    "Dense",
    "Group",
    "Grow",
    "LayerSparsity",
    "PeriodicSchedule",
    "Plan",
    "RigL",
    "SparseMethod",
    "SparseState",
    "SparsitySummary",
    "StaticSparse",
    "apply_masks",
    "apportion",
    "count_active",
    "default_filter",
    "drop_fraction_schedule",
    "erk_counts",
    "erk_densities",
    "get_sparse_state",
    "gmp_sparsity_at",
    "layer_counts",
    "leaf_paths",
    "make_method",
    "nonzero_counts",
    "path_str",
    "polynomial_progress",
    "resolve_plan",
    "scheduled_count",
    "sparsify",
    "sparsity_summary",
    "topk_mask",
    "tree_map_masked",
    "uniform_counts",
]
