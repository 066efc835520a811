"""The optax wrapper: exact zeros, exact counts, schedules, rewiring, composition, jit/vmap."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from harness import FREQ, HORIZON, make_optimizer, net_and_data, train
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsparse.sparsity import (
    GMP,
    SET,
    Dense,
    RigL,
    StaticSparse,
    apply_masks,
    get_sparse_state,
    sparsify,
    sparsity_summary,
)

CASES = [
    ("static", "adam"),
    ("static", "sgd_momentum"),
    ("gmp", "adam"),
    ("gmp", "adamw"),
    ("gmp", "clip_adam"),
    ("set", "adam"),
    ("set", "adamw"),
    ("set_cosine", "clip_adam"),
    ("rigl", "adam"),
    ("rigl", "clip_adam"),
    ("grow", "adam"),
]


@functools.cache
def compiled(method: str, optimizer: str, batched: bool = False):
    net, x, params = net_and_data()
    fn = functools.partial(train, net, x, params, method=method, optimizer=optimizer)
    return jax.jit(jax.vmap(fn) if batched else fn), params


def leaves(tree):
    return jax.tree.leaves(tree, is_leaf=lambda v: v is None)


def at(records, t):
    return jax.tree.map(lambda a: np.asarray(a[t]), records)


def gmp_like_expected(step, n, final, start, end, initial=None):
    """Active count after the last update at or before ``step``: the cubic formula in float64."""
    initial = n if initial is None else initial
    updates = [s for s in range(start + 1, end + 1) if (s - start) % FREQ == 0 or s == end]
    done = [s for s in updates if s <= step]
    if not done:
        return initial
    p = (done[-1] - start) / (end - start)
    return initial + (1 - (1 - p) ** 3) * (final - initial)


def moments_outside(optimizer, inner_state, masks, params):
    """Largest |optimiser moment| at a masked-out position, over every param-shaped state tree."""
    full = jax.tree.map(
        lambda m, p: np.ones(p.shape, bool) if m is None else m,
        masks,
        params,
        is_leaf=lambda v: v is None,
    )
    worst = optax.tree_utils.tree_map_params(
        make_optimizer(optimizer),
        lambda s, m: float(np.max(np.abs(np.where(m, 0.0, s)), initial=0.0)),
        inner_state,
        full,
        transform_non_params=lambda _: 0.0,
    )
    return max(jax.tree.leaves(worst), default=0.0)


def check_run(method, optimizer, init_state, records, params0):
    """Every invariant of one unbatched run (numpy arrays)."""
    final_counts = [None if c is None else int(c) for c in leaves(init_state.final_counts)]
    initial_counts = [None if c is None else int(c) for c in leaves(init_state.initial_counts)]
    sizes = [p.size for p in jax.tree.leaves(params0)]
    for t in range(HORIZON):
        rec = at(records, t)
        step = t  # the update count when this update ran
        masks, before = leaves(rec["masks"]), leaves(rec["masks_before"])
        params, grads = jax.tree.leaves(rec["params"]), jax.tree.leaves(rec["grads"])
        weights = jax.tree.leaves(rec["params_before"])
        for i, m in enumerate(masks):
            if m is None:
                continue
            # pruned weights are exactly zero, regrown weights start at exactly zero
            assert np.all(params[i][~m] == 0.0), (method, optimizer, t, i)
            assert np.all(params[i][m & ~before[i]] == 0.0)
            count = int(m.sum())
            if method in ("static", "set", "set_cosine", "rigl"):
                assert count == final_counts[i] == int(before[i].sum())
            elif method == "gmp":
                want = gmp_like_expected(step, sizes[i], final_counts[i], 2, 10)
                assert abs(count - want) <= 0.5 + 1e-4 * sizes[i], (t, i, count, want)
                assert np.all(~m | before[i])  # GMP never regrows
            elif method == "grow":
                want = gmp_like_expected(step, sizes[i], final_counts[i], 1, 10, initial_counts[i])
                assert abs(count - want) <= 0.5 + 1e-4 * sizes[i], (t, i, count, want)
                assert np.all(m | ~before[i])  # Grow never prunes
            if method in ("gmp", "static"):
                # generic weights: the nonzeros are exactly the planned active weights
                assert np.count_nonzero(params[i]) == count
            if method == "rigl" and not np.array_equal(m, before[i]):
                kept = m & before[i] & (params[i] != 0)  # dropped-and-regrown restart at 0
                dropped = before[i] & ~kept
                grown = m & ~kept
                w, g = np.abs(weights[i]), np.abs(grads[i])
                if dropped.any() and kept.any():
                    assert w[kept].min() >= w[dropped].max()
                candidates = ~kept & ~grown
                if grown.any() and candidates.any():
                    assert g[grown].min() >= g[candidates].max()
        mask_tree = rec["masks"]
        assert moments_outside(optimizer, rec["inner_state"], mask_tree, rec["params"]) == 0.0


@pytest.mark.parametrize(("method", "optimizer"), CASES)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sparsity=st.floats(0.0, 0.97))
def test_invariants_hold_at_every_step(method, optimizer, seed, sparsity):
    fn, params0 = compiled(method, optimizer)
    init_state, _, records = fn(jax.random.PRNGKey(seed), jnp.float32(sparsity))
    check_run(method, optimizer, init_state, records, params0)


@pytest.mark.parametrize("method", ["gmp", "set", "rigl"])
def test_same_checks_under_jit_vmap_over_seeds_and_traced_sparsities(method):
    fn, params0 = compiled(method, "adam", batched=True)
    # 4 seeds at one sparsity, then 3 sparsity levels side by side in the same compiled program
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    for sparsities in (jnp.full(4, 0.8), jnp.array([0.5, 0.8, 0.95, 0.95])):
        init_states, _, records = fn(keys, sparsities)
        for b in range(4):
            one = lambda tree, b=b: jax.tree.map(lambda a: np.asarray(a[b]), tree)  # noqa: E731
            check_run(method, "adam", one(init_states), one(records), params0)
    # per-layer targets really follow the traced sparsity
    totals = [sum(int(c[b]) for c in jax.tree.leaves(init_states.final_counts)) for b in range(4)]
    assert totals[0] > totals[1] > totals[2] == totals[3]
    # and a batched seed equals the unbatched run with the same key and sparsity
    single, _ = compiled(method, "adam")
    _, _, rec1 = single(keys[1], jnp.float32(0.8))
    np.testing.assert_array_equal(
        np.stack([m[-1] for m in jax.tree.leaves(rec1["masks"])][:1]),
        np.stack([m[1, -1] for m in jax.tree.leaves(records["masks"])][:1]),
    )


def test_gmp_reaches_final_sparsity_exactly_and_biases_stay_dense():
    _, _, params = net_and_data()
    tx = sparsify(optax.adam(1e-2), GMP(sparsity=0.9, start=0, end=4, freq=2))
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    update = jax.jit(tx.update)
    for _ in range(5):
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    summary = sparsity_summary(params)
    for layer in summary.layers:
        if layer.path.endswith("kernel"):
            assert layer.nonzero == round(0.1 * layer.size), layer
        else:
            assert layer.sparsity == 0.0, layer
    assert abs(summary.prunable_sparsity - 0.9) < 0.01


def test_module_specific_plan_gives_each_module_its_own_method():
    _, _, params = net_and_data()
    plan = {
        "conv": Dense(),
        "critic_in": SET(sparsity=0.5, freq=1, distribution="uniform"),
        "*": StaticSparse(sparsity=0.75, distribution="uniform", overrides={"actor_out": 0.0}),
    }
    tx = sparsify(optax.adam(1e-2), plan)
    state = tx.init(params)
    masks = state.masks
    assert masks["conv"]["kernel"] is None and masks["conv"]["bias"] is None
    assert int(masks["critic_in"]["kernel"].sum()) == round(0.5 * 12 * 12)
    assert int(masks["dense"]["kernel"].sum()) == round(0.25 * params["dense"]["kernel"].size)
    assert bool(masks["actor_out"]["kernel"].all())  # pinned dense by the override
    params = apply_masks(params, masks)
    before = masks["critic_in"]["kernel"]
    grads = jax.tree.map(jnp.ones_like, params)
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    after = state.masks["critic_in"]["kernel"]
    assert not np.array_equal(before, after)  # SET rewired the critic
    assert int(after.sum()) == int(before.sum())
    np.testing.assert_array_equal(state.masks["dense"]["kernel"], masks["dense"]["kernel"])


def test_chained_state_is_found_and_updates_need_params():
    _, _, params = net_and_data()
    tx = optax.chain(sparsify(optax.adam(1e-3), StaticSparse(sparsity=0.5)), optax.scale(1.0))
    state = tx.init(params)
    assert get_sparse_state(state).masks["conv"]["kernel"] is not None
    with pytest.raises(ValueError, match="params"):
        sparsify(optax.adam(1e-3), StaticSparse(sparsity=0.5)).update(params, state[0])


def test_rigl_regrows_exactly_the_highest_gradient_positions():
    """On a single layer with known gradients, RigL's regrown positions are the top gradients."""
    w = jnp.arange(1.0, 21.0).reshape(4, 5)
    params = {"layer": {"kernel": w}}
    grads = {"layer": {"kernel": -jnp.arange(20.0).reshape(4, 5)[::-1]}}
    tx = sparsify(
        optax.sgd(0.0), RigL(sparsity=0.5, freq=1, drop_fraction=0.4, distribution="uniform")
    )
    state = tx.init(params)
    params = apply_masks(params, state.masks)
    m0 = np.asarray(state.masks["layer"]["kernel"])
    updates, state = tx.update(grads, state, params)  # step 0: not an update step
    np.testing.assert_array_equal(state.masks["layer"]["kernel"], m0)
    updates, state = tx.update(grads, state, params)  # step 1: rewire
    m1 = np.asarray(state.masks["layer"]["kernel"])
    weights = np.asarray(params["layer"]["kernel"])
    g = np.abs(np.asarray(grads["layer"]["kernel"]))
    assert m0.sum() == m1.sum() == 10
    active = np.flatnonzero(m0)
    dropped = active[np.argsort(weights.ravel()[active], kind="stable")[:4]]
    kept = np.setdiff1d(active, dropped)
    candidates = np.setdiff1d(np.arange(20), kept)
    grown = candidates[np.argsort(-g.ravel()[candidates], kind="stable")[:4]]
    np.testing.assert_array_equal(np.flatnonzero(m1), np.sort(np.concatenate([kept, grown])))
    new_params = optax.apply_updates(params, updates)["layer"]["kernel"].ravel()
    assert np.all(np.asarray(new_params)[np.setdiff1d(grown, kept)] == 0.0)


def test_the_mask_update_stays_a_real_cond_under_vmap_with_either_clock():
    _, _, params = net_and_data()
    tx = sparsify(optax.adam(1e-2), SET(sparsity=0.8, freq=2))
    states = jax.vmap(
        lambda k: sparsify(optax.adam(1e-2), SET(sparsity=0.8, freq=2), key=k).init(params)
    )(jax.random.split(jax.random.PRNGKey(0), 3))
    batched_params = jax.tree.map(lambda p: jnp.stack([p] * 3), params)
    grads = jax.tree.map(jnp.ones_like, batched_params)

    def with_count(g, s, p):
        return tx.update(g, s, p)

    def with_step(g, s, p, t):
        return tx.update(g, s, p, mask_step=t)

    by_count = jax.make_jaxpr(jax.vmap(with_count))(grads, states, batched_params)
    by_step = jax.make_jaxpr(jax.vmap(with_step, in_axes=(0, 0, 0, None)))(
        grads, states, batched_params, 2
    )
    # a batched clock still branches once, on "any seed updates now", not a per-seed select
    assert "cond[" in str(by_count) and "reduce_or" in str(by_count)
    assert "cond[" in str(by_step)
    # same result as the state's own count when the two agree
    states = states._replace(count=jnp.full(3, 2, jnp.int32))
    a = jax.vmap(with_count)(grads, states, batched_params)
    b = jax.vmap(with_step, in_axes=(0, 0, 0, None))(grads, states, batched_params, 2)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("method", ["static", "gmp", "set", "rigl", "grow"])
@settings(max_examples=2, deadline=None)
@given(
    widths=st.lists(st.integers(1, 24), min_size=2, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    sparsity=st.floats(0.0, 0.95),
)
def test_random_shapes_keep_exact_zeros_and_counts(widths, seed, sparsity, method):
    """An MLP of random widths, a python loop of jitted updates: the invariants still hold."""
    from harness import make_method

    key = jax.random.PRNGKey(seed)
    params = {
        f"Dense_{i}": {
            "kernel": jax.random.normal(jax.random.fold_in(key, i), (a, b)),
            "bias": jnp.zeros(b),
        }
        for i, (a, b) in enumerate(itertools.pairwise(widths))
    }
    tx = sparsify(optax.adamw(1e-2, weight_decay=0.01), make_method(method, sparsity), key=key)
    state = tx.init(params)
    params = apply_masks(params, state.masks)
    update = jax.jit(tx.update)
    counts = [int(m.sum()) for m in jax.tree.leaves(state.masks)]
    finals = [int(c) for c in jax.tree.leaves(state.final_counts)]
    for t in range(HORIZON):
        grads = jax.tree.map(lambda p, t=t: jnp.cos(p + t) + 0.1, params)
        updates, new_state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for m, m0, p in zip(
            jax.tree.leaves(new_state.masks),
            jax.tree.leaves(state.masks),
            [leaf["kernel"] for leaf in params.values()],
            strict=True,
        ):
            m, m0, p = np.asarray(m), np.asarray(m0), np.asarray(p)
            assert np.all(p[~m] == 0.0) and np.all(p[m & ~m0] == 0.0)
        now = [int(m.sum()) for m in jax.tree.leaves(new_state.masks)]
        if method in ("static", "set", "rigl"):
            assert now == counts == finals
        state = new_state
    if method in ("gmp", "grow"):
        assert [int(m.sum()) for m in jax.tree.leaves(state.masks)] == finals
