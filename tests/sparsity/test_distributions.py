"""Per-layer sparsity distributions against plain NumPy references."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsparse.sparsity import erk_counts, erk_densities, layer_counts, topk_mask, uniform_counts

shape_st = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 16), st.integers(1, 16)),
)


def erk_reference(shapes, sparsity):
    """ERK the way Evci et al. describe it, in float64 with an explicit loop."""
    n = np.array([math.prod(s) for s in shapes], float)
    raw = np.array([sum(s) for s in shapes], float) / n
    dense = np.zeros(len(shapes), bool)
    while not dense.all():
        eps = ((1 - sparsity) * n.sum() - n[dense].sum()) / (n[~dense] * raw[~dense]).sum()
        over = ~dense & (eps * raw > 1)
        if not over.any():
            return np.where(dense, 1.0, eps * raw)
        dense |= over
    return np.ones(len(shapes))


@settings(max_examples=60, deadline=None)
@given(shapes=st.lists(shape_st, min_size=1, max_size=6), sparsity=st.floats(0.0, 0.999))
def test_erk_densities_multiply_out_to_the_global_sparsity(shapes, sparsity):
    n = np.array([math.prod(s) for s in shapes])
    density = np.asarray(erk_densities(shapes, sparsity), float)
    want = erk_reference(shapes, sparsity)
    np.testing.assert_allclose(density, want, rtol=2e-4, atol=1e-6)
    assert np.all((density >= 0) & (density <= 1))
    np.testing.assert_allclose((density * n).sum(), (1 - sparsity) * n.sum(), rtol=1e-4, atol=1e-3)
    counts = np.asarray(erk_counts(shapes, sparsity))
    assert np.all((counts >= 0) & (counts <= n))
    # the total is the global target rounded to a whole weight (float32 slack only)
    assert abs(counts.sum() - (1 - sparsity) * n.sum()) <= 0.5 + 1e-6 * n.sum()
    assert np.all(np.abs(counts - density * n) < 1.0 + 1e-4 * n)


def test_erk_makes_small_layers_dense_and_keeps_the_total_exact():
    shapes = [(2, 2, 3, 16), (1024, 128), (128, 7)]
    counts = np.asarray(erk_counts(shapes, 0.9))
    n = np.array([math.prod(s) for s in shapes])
    assert counts.sum() == round(0.1 * n.sum())
    density = counts / n
    assert density[0] > density[1] and density[2] > density[1]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=5), sparsity=st.floats(0, 0.999))
def test_uniform_counts_round_each_layer(sizes, sparsity):
    counts = np.asarray(uniform_counts(sizes, sparsity))
    exact = (1 - sparsity) * np.array(sizes)
    assert np.all(np.abs(counts - exact) <= 0.5 + 1e-5 * np.array(sizes))


def test_fixed_layers_are_pinned_and_the_rest_share_the_target():
    shapes = [(10, 10), (20, 20), (5, 5)]
    counts = np.asarray(layer_counts(shapes, 0.8, "erk", fixed=[0.0, None, 0.5]))
    assert counts[0] == 100 and counts[2] == round(0.5 * 25)
    assert counts[1] == round(0.2 * 400)


def test_traced_sparsity_under_vmap_matches_eager():
    shapes = [(3, 3, 4, 8), (64, 32), (32, 4)]
    levels = jnp.array([0.5, 0.9, 0.95])
    batched = jax.jit(jax.vmap(lambda s: erk_counts(shapes, s)))(levels)
    for row, s in zip(np.asarray(batched), [0.5, 0.9, 0.95], strict=True):
        np.testing.assert_array_equal(row, np.asarray(erk_counts(shapes, s)))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    data=st.data(),
    ties=st.booleans(),
)
def test_topk_mask_is_exact_even_with_ties(n, data, ties):
    k = data.draw(st.integers(0, n))
    rng = np.random.default_rng(n + k)
    scores = rng.integers(0, 3, n).astype(np.float32) if ties else rng.normal(size=n)
    scores = np.where(rng.random(n) < 0.2, -np.inf, scores).astype(np.float32)  # excluded entries
    mask = np.asarray(jax.jit(topk_mask)(jnp.asarray(scores, jnp.float32), k))
    assert mask.sum() == k
    if 0 < k < n:
        assert scores[mask].min() >= scores[~mask].max()
    assert np.all(scores[mask] >= scores[~mask].max(initial=-np.inf))
    # ties go to the lower index
    order = np.argsort(-scores, kind="stable")[:k]
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(order))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="sparsity"):
        layer_counts([(4, 4)], bad)


def test_unknown_distribution_is_refused():
    with pytest.raises(ValueError, match=r"distribution must be one of \('uniform', 'erk'\)"):
        layer_counts([(4, 4)], 0.5, "gaussian")
