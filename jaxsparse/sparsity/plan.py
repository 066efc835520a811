"""Module-specific sparse training (MST): each module (a parameter-path prefix) names its own
method and sparsity. A single method is the plan ``{"*": method}``.

Every prunable leaf goes to the longest plan key that prefixes its path; ``"*"`` (or ``""``)
catches the rest; prunable leaves that no key reaches stay dense.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jax

from jaxsparse.sparsity.masks import FilterFn, default_filter, path_str, prefix_matches
from jaxsparse.sparsity.methods import SparseMethod

Plan = SparseMethod | Mapping[str, SparseMethod]


@dataclass(frozen=True)
class Group:
    """The prunable leaves (flat leaf indices) that one plan entry governs."""

    key: str
    method: SparseMethod
    indices: tuple[int, ...]
    paths: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    fixed: tuple[float | None, ...]


def _normalise(plan: Plan) -> dict[str, SparseMethod]:
    if isinstance(plan, SparseMethod):
        return {"": plan}
    if not isinstance(plan, Mapping):
        raise TypeError(
            f"plan must be a SparseMethod or a mapping of module -> method, got {plan!r}"
        )
    out = {}
    for key, method in plan.items():
        if not isinstance(method, SparseMethod):
            raise TypeError(f"plan[{key!r}] must be a SparseMethod, got {method!r}")
        out["" if key == "*" else key.strip("/")] = method
    return out


def _modules(paths: list[str]) -> list[str]:
    """Every module prefix of the given paths (for error messages)."""
    found = set()
    for path in paths:
        parts = path.split("/")
        found.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(found)


def resolve_plan(plan: Plan, params, filter_fn: FilterFn = default_filter) -> list[Group]:
    """Assign every prunable leaf of ``params`` to its plan entry; fail early on unknown names."""
    entries = _normalise(plan)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    paths = [path_str(p) for p, _ in flat]
    prunable = [
        i for i, (p, (_, leaf)) in enumerate(zip(paths, flat, strict=True)) if filter_fn(p, leaf)
    ]
    for key in entries:
        if key and not any(prefix_matches(key, paths[i]) for i in prunable):
            raise ValueError(
                f"plan key {key!r} matches no prunable parameter; modules are: "
                f"{', '.join(_modules([paths[i] for i in prunable]))}"
            )
    owner: dict[int, str] = {}
    for i in prunable:
        matches = [k for k in entries if prefix_matches(k, paths[i])]
        if matches:
            owner[i] = max(matches, key=len)
    groups = []
    for key, method in entries.items():
        idx = tuple(i for i in prunable if owner.get(i) == key)
        group_paths = [paths[i] for i in idx]
        for layer in method.overrides:
            if not any(prefix_matches(layer, p) for p in group_paths):
                raise ValueError(
                    f"overrides key {layer!r} of plan entry {key or '*'!r} matches none of its "
                    f"prunable layers: {', '.join(group_paths) or '(none)'}"
                )
        if method.is_dense or not idx:
            continue
        fixed = []
        for p in group_paths:
            hits = [k for k in method.overrides if prefix_matches(k, p)]
            fixed.append(method.overrides[max(hits, key=len)] if hits else None)
        groups.append(
            Group(
                key=key,
                method=method,
                indices=idx,
                paths=tuple(group_paths),
                shapes=tuple(tuple(flat[i][1].shape) for i in idx),
                fixed=tuple(fixed),
            )
        )
    return groups
