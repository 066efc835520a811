"""Plasticity metrics against plain NumPy / per-sample-loop references."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsparse.plasticity import (
    dormant_fraction,
    dormant_mask,
    effective_rank,
    fisher_trace,
    neuron_scores,
    per_sample_fisher,
    sample_and_fisher_trace,
)

DENSE_SHAPES = [(32, 16), (8, 5), (64, 3)]
CONV_SHAPES = [(4, 3, 3, 6), (2, 5, 5, 4), (8, 2, 2, 10)]
SRANK_SHAPES = [(32, 8), (16, 24), (8, 2, 3)]

_scores_jit = jax.jit(neuron_scores)
_dormant_jit = jax.jit(dormant_fraction)  # tau is traced here, so it is not validated
_srank_jit = jax.jit(effective_rank, static_argnames="delta")


# --------------------------------------------------------------------------- NumPy references


def np_dormant(h: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron scores and dormant mask, one neuron (last axis) at a time."""
    h = np.asarray(h, np.float64)
    n = h.shape[-1]
    means = np.array([np.mean(np.abs(h[..., i])) for i in range(n)])
    scores = means / (np.mean(means) + 1e-9)
    return scores, scores <= tau


def np_srank(phi: np.ndarray, delta: float) -> tuple[int, np.ndarray]:
    s = np.linalg.svd(np.asarray(phi, np.float64).reshape(phi.shape[0], -1), compute_uv=False)
    cumulative = np.cumsum(s) / s.sum()
    for k in range(1, len(s) + 1):
        if cumulative[k - 1] >= 1 - delta:
            return k, cumulative
    raise AssertionError("unreachable")


def spread_activations(rng: np.random.Generator, shape, n_dead: int = 0) -> np.ndarray:
    """ReLU activations with per-neuron scales spread over decades, so tau splits the neurons."""
    h = np.maximum(rng.normal(size=shape), 0.0) * np.exp(rng.uniform(-4.0, 1.0, size=shape[-1]))
    h[..., rng.choice(shape[-1], size=min(n_dead, shape[-1]), replace=False)] = 0.0
    return h.astype(np.float32)


# --------------------------------------------------------------------------- dormant fraction


def _check_layer(h: np.ndarray, tau: float, fraction) -> tuple[int, int]:
    ref_scores, ref_mask = np_dormant(h, tau)
    np.testing.assert_allclose(_scores_jit(h), ref_scores, rtol=1e-5, atol=1e-7)
    mask = np.asarray(dormant_mask(h, tau))
    clear = np.abs(ref_scores - tau) > 1e-5 * max(1.0, tau)  # skip float32 ties at the threshold
    np.testing.assert_array_equal(mask[clear], ref_mask[clear])
    assert float(fraction) == pytest.approx(mask.mean())
    return int(mask.sum()), mask.size


@settings(max_examples=25, deadline=None)
@given(
    dense_shape=st.sampled_from(DENSE_SHAPES),
    conv_shape=st.sampled_from(CONV_SHAPES),
    tau=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    n_dead=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_dormant_fraction_matches_numpy(dense_shape, conv_shape, tau, n_dead, seed):
    rng = np.random.default_rng(seed)
    acts = {
        "dense": spread_activations(rng, dense_shape, n_dead),
        "conv": spread_activations(rng, conv_shape, n_dead),
    }
    stats = _dormant_jit(acts, tau)
    counted, total = 0, 0
    for name, h in acts.items():
        c, t = _check_layer(h, tau, stats.per_layer[name])
        counted, total = counted + c, total + t
    assert int(stats.count) == counted
    assert int(stats.total) == total == dense_shape[-1] + conv_shape[-1]
    assert float(stats.overall) == pytest.approx(counted / total)


def test_dormant_fraction_dead_neurons_exact():
    rng = np.random.default_rng(0)
    dense = (np.abs(rng.normal(size=(64, 10))) + 1.0).astype(np.float32)
    dense[:, [2, 5, 7]] = 0.0
    conv = (np.abs(rng.normal(size=(8, 4, 4, 6))) + 1.0).astype(np.float32)
    conv[..., 0] = 0.0
    stats = dormant_fraction({"dense": dense, "conv": conv}, tau=0.0)
    assert float(stats.per_layer["dense"]) == pytest.approx(0.3)
    assert float(stats.per_layer["conv"]) == pytest.approx(1 / 6)
    assert (int(stats.count), int(stats.total)) == (4, 16)
    # Pooled over neurons (4 / 16), not the mean of per-layer fractions ((0.3 + 1/6) / 2).
    assert float(stats.overall) == pytest.approx(0.25)
    np.testing.assert_array_equal(dormant_mask(conv, 0.0), np.arange(6) == 0)


# --------------------------------------------------------------------------- effective rank


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from(SRANK_SHAPES),
    delta=st.sampled_from([0.01, 0.1, 0.3]),
    decay=st.sampled_from([0.0, 1.0, 4.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_effective_rank_matches_numpy(shape, delta, decay, seed):
    rng = np.random.default_rng(seed)
    dim = math.prod(shape[1:])
    phi = rng.normal(size=(shape[0], dim)) * np.exp(-decay * np.linspace(0.0, 1.0, dim))
    phi = phi.reshape(shape).astype(np.float32)
    got = int(_srank_jit(phi, delta=delta))
    ref, cumulative = np_srank(phi, delta)
    if got != ref:  # only a float32 tie at the threshold may move k, and by one
        assert abs(got - ref) == 1
        assert abs(cumulative[min(got, ref) - 1] - (1 - delta)) < 1e-5


def test_effective_rank_known_rank_and_zero():
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.normal(size=(32, 5)))
    v, _ = np.linalg.qr(rng.normal(size=(16, 5)))
    phi = (3.0 * u @ v.T).astype(np.float32)  # five equal singular values
    assert int(effective_rank(phi)) == 5
    assert int(effective_rank(phi, delta=0.5)) == 3  # smallest k with k / 5 >= 0.5
    zeros = jnp.zeros((8, 4, 3))
    assert int(effective_rank(zeros)) == 0
    assert int(jax.jit(effective_rank)(zeros)) == 0
    assert effective_rank(phi).dtype == jnp.int32


# --------------------------------------------------------------------------- Fisher trace


class Policy(nn.Module):
    @nn.compact
    def __call__(self, x):
        hidden = jnp.tanh(nn.Dense(8)(x))  # Dense_0
        return nn.Dense(4)(hidden)  # Dense_1: logits


POLICY = Policy()
OBS_DIM, BATCH = 3, 16


def log_prob(params, observation, action):
    return jax.nn.log_softmax(POLICY.apply(params, observation))[action]


def sample_actions(key, params, observations):
    return jax.random.categorical(key, POLICY.apply(params, observations))


def make_problem(seed: int):
    k_init, k_obs, k_act, k_mask = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = POLICY.init(k_init, jnp.zeros(OBS_DIM))
    observations = jax.random.normal(k_obs, (BATCH, OBS_DIM))
    actions = sample_actions(k_act, params, observations)
    k0, k1 = jax.random.split(k_mask)
    masks = {
        "params": {
            "Dense_0": {"kernel": jax.random.bernoulli(k0, 0.5, (OBS_DIM, 8)), "bias": None},
            "Dense_1": {"kernel": jax.random.bernoulli(k1, 0.5, (8, 4)), "bias": None},
        }
    }
    return params, observations, actions, masks


_grad_jit = jax.jit(jax.grad(log_prob))  # one sample per call; jitted only for speed


def loop_fisher(params, observations, actions, masks=None) -> np.ndarray:
    """Per-sample squared grad norms from one jax.grad call per sample, summed in NumPy."""
    out = []
    for obs, act in zip(observations, actions, strict=True):
        grads = _grad_jit(params, obs, act)
        total = 0.0
        for layer in ("Dense_0", "Dense_1"):
            for leaf in ("kernel", "bias"):
                g = np.asarray(grads["params"][layer][leaf], np.float64)
                m = None if masks is None else masks["params"][layer][leaf]
                if m is not None:
                    g = np.where(np.asarray(m), g, 0.0)
                total += np.sum(g**2)
        out.append(total)
    return np.array(out)


def test_fisher_trace_matches_per_sample_loop():
    params, observations, actions, _ = make_problem(0)
    ref = loop_fisher(params, observations, actions)
    np.testing.assert_allclose(
        per_sample_fisher(log_prob, params, observations, actions), ref, rtol=1e-5
    )
    trace = float(jax.jit(fisher_trace, static_argnums=0)(log_prob, params, observations, actions))
    assert trace == pytest.approx(ref.mean(), rel=1e-5)

    # The squared norm of the mean gradient is a different (and, on-policy, much smaller) number.
    grads = [_grad_jit(params, o, a) for o, a in zip(observations, actions, strict=True)]
    mean_grad = jax.tree_util.tree_map(lambda *g: np.mean(np.stack(g), axis=0), *grads)
    mean_norm = sum(np.sum(np.square(g)) for g in jax.tree_util.tree_leaves(mean_grad))
    assert trace > 1.5 * mean_norm


def test_fisher_trace_masked():
    params, observations, actions, masks = make_problem(1)
    ref = loop_fisher(params, observations, actions, masks)
    got = per_sample_fisher(log_prob, params, observations, actions, masks)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    full = fisher_trace(log_prob, params, observations, actions)
    masked = fisher_trace(log_prob, params, observations, actions, masks)
    assert float(masked) == pytest.approx(ref.mean(), rel=1e-5)
    assert float(masked) < float(full)
    all_dense = jax.tree_util.tree_map(lambda _: None, masks)
    assert float(fisher_trace(log_prob, params, observations, actions, all_dense)) == float(full)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_per_sample_fisher_in_chunks_matches_the_loop(batch_size):
    # lax.map over chunks of `batch_size` samples (a remainder chunk included) bounds memory.
    params, observations, actions, masks = make_problem(1)
    ref = loop_fisher(params, observations, actions, masks)
    got = per_sample_fisher(log_prob, params, observations, actions, masks, batch_size=batch_size)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_sample_and_fisher_trace_uses_sampled_actions():
    params, observations, _, _ = make_problem(2)
    key = jax.random.PRNGKey(7)
    actions = sample_actions(key, params, observations)
    got = sample_and_fisher_trace(key, sample_actions, log_prob, params, observations)
    assert float(got) == pytest.approx(
        float(fisher_trace(log_prob, params, observations, actions)), rel=1e-6
    )


# --------------------------------------------------------------------------- jit(vmap) over seeds


def test_jit_vmap_over_seeds_matches_unbatched():
    rng = np.random.default_rng(3)
    acts = {
        "dense": np.stack([spread_activations(rng, (32, 16), 2) for _ in range(4)]),
        "conv": np.stack([spread_activations(rng, (4, 3, 3, 6), 1) for _ in range(4)]),
    }
    phi = rng.normal(size=(4, 32, 8)).astype(np.float32) * np.geomspace(1, 1e-3, 8, dtype="f4")
    problems = [make_problem(s) for s in range(4)]
    params, observations, actions, masks = jax.tree_util.tree_map(
        lambda *x: jnp.stack(x), *problems
    )

    def metrics(a, f, p, o, act, m):
        return dormant_fraction(a, 0.1), effective_rank(f), fisher_trace(log_prob, p, o, act, m)

    stats, srank, fisher = jax.jit(jax.vmap(metrics))(
        acts, phi, params, observations, actions, masks
    )
    for i, (p, o, act, m) in enumerate(problems):
        ref = dormant_fraction({k: v[i] for k, v in acts.items()}, 0.1)
        for name in acts:
            assert float(stats.per_layer[name][i]) == pytest.approx(float(ref.per_layer[name]))
        assert float(stats.overall[i]) == pytest.approx(float(ref.overall))
        assert int(stats.count[i]) == int(ref.count) > 0
        assert int(stats.total[i]) == int(ref.total) == 22
        assert int(srank[i]) == int(effective_rank(phi[i]))
        assert float(fisher[i]) == pytest.approx(
            float(fisher_trace(log_prob, p, o, act, m)), rel=1e-5
        )


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("tau", [-0.1, -1, float("nan")])
def test_bad_tau_raises(tau):
    h = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="tau"):
        dormant_fraction({"layer": h}, tau)
    with pytest.raises(ValueError, match="tau"):
        dormant_mask(h, tau)


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_bad_delta_raises(delta):
    with pytest.raises(ValueError, match="delta"):
        effective_rank(np.ones((4, 3), np.float32), delta)


def test_traced_hyperparameters_skip_validation():
    h = np.ones((4, 3), np.float32)
    assert not np.any(jax.jit(dormant_mask)(h, -1.0))
    assert int(jax.jit(effective_rank)(h, 0.5)) == 1


def test_mask_shape_mismatch_raises():
    params, observations, actions, masks = make_problem(0)
    masks["params"]["Dense_1"]["kernel"] = jnp.ones((4,), bool)  # would silently broadcast
    with pytest.raises(ValueError, match="masks"):
        fisher_trace(log_prob, params, observations, actions, masks)
