"""Module-specific plans: leaf assignment and early, named errors."""

from __future__ import annotations

import optax
import pytest
from harness import net_and_data

from jaxsparse.sparsity import GMP, SET, Dense, StaticSparse, resolve_plan, sparsify


def test_longest_prefix_wins_and_unmatched_layers_stay_dense():
    _, _, params = net_and_data()
    groups = resolve_plan(
        {"critic_in": SET(sparsity=0.5, freq=2), "conv": StaticSparse(sparsity=0.5)}, params
    )
    assigned = {g.key: g.paths for g in groups}
    assert assigned == {"critic_in": ("critic_in/kernel",), "conv": ("conv/kernel",)}
    nested = resolve_plan({"*": StaticSparse(sparsity=0.5), "dense": Dense()}, params)
    (group,) = nested
    assert "dense/kernel" not in group.paths and "conv/kernel" in group.paths
    assert all(p.endswith("kernel") for p in group.paths)  # biases never pruned


def test_unknown_module_names_fail_before_compilation_and_list_the_modules():
    _, _, params = net_and_data()
    with pytest.raises(ValueError, match=r"plan key 'critc'.*critic_in"):
        sparsify(optax.adam(1e-3), {"critc": StaticSparse(sparsity=0.5)}).init(params)
    bad_override = GMP(sparsity=0.9, start=0, end=10, freq=1, overrides={"encoder/Conv_9": 0.0})
    with pytest.raises(ValueError, match=r"overrides key 'encoder/Conv_9'.*conv/kernel"):
        sparsify(optax.adam(1e-3), bad_override).init(params)


def test_plan_values_must_be_methods():
    _, _, params = net_and_data()
    with pytest.raises(TypeError, match=r"plan\['actor'\]"):
        resolve_plan({"actor": "gmp"}, params)
