"""The neuron-level mask generator's pieces: the straight-through top-k (exact counts, exact
zeros and ones, deterministic without noise, the soft relaxation's gradient), masked SAC
networks against a NumPy reference, the symmetric KL and the similarity normalisation against
closed forms, the FLOP count, and the synthetic case of the issue: two tasks that share a policy
and a third that differs; the VAE finds the pair and the similarity loss pulls their masks
together."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse.nets.maskgen import (
    MaskGenerator,
    TrajectoryVAE,
    active_neurons,
    generate_masks,
    hard_topk,
    mask_similarity,
    masked_mlp_flops,
    mlp_flops,
    normalised_similarity,
    policy_similarity,
    similarity_loss,
    symmetric_kl,
    topk_mask,
    vae_loss,
)
from jaxsparse.nets.sac import SACActor, TwinCritic


@pytest.mark.parametrize("k", [1, 7, 20, 32])
@pytest.mark.parametrize("noisy", [False, True])
def test_topk_mask_has_exactly_k_ones_and_only_zeros_and_ones(k, noisy):
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 32))
    key = jax.random.PRNGKey(1) if noisy else None
    mask = np.asarray(topk_mask(logits, k, key))
    assert mask.shape == logits.shape
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=-1), np.full((5, 3), k))
    if not noisy:  # the top-k of the logits themselves
        top = np.argsort(-np.asarray(logits), axis=-1)[..., :k]
        expected = np.zeros_like(mask)
        np.put_along_axis(expected, top, 1.0, axis=-1)
        np.testing.assert_array_equal(mask, expected)


def test_hard_topk_matches_lax_top_k_and_breaks_ties_by_index():
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 40))
    x = x.at[0].set(0.0).at[1, :5].set(-0.0).at[2].set(jnp.arange(40.0) % 3)  # ties, signed 0
    x = x.at[3, 7].set(jnp.inf).at[3, 8].set(-jnp.inf)
    for k in (1, 13, 40):
        _, idx = jax.lax.top_k(x, k)
        expected = np.zeros(x.shape, np.float32)
        np.put_along_axis(expected, np.asarray(idx), 1.0, axis=-1)
        got = np.asarray(hard_topk(x, k))
        # the same values are kept (equal values may sit at other indices, as ties are equal)
        np.testing.assert_array_equal(got.sum(-1), k)
        np.testing.assert_array_equal(
            np.sort(np.where(got > 0, x, np.inf), -1)[:, :k],
            np.sort(np.where(expected > 0, x, np.inf), -1)[:, :k],
        )
    row0 = np.asarray(hard_topk(x, 13))[0]  # all equal: the first 13
    np.testing.assert_array_equal(row0, (np.arange(40) < 13).astype(np.float32))


def test_topk_mask_is_deterministic_without_noise_and_random_with_it():
    logits = jax.random.normal(jax.random.PRNGKey(0), (64, 50))
    a, b = topk_mask(logits, 10), topk_mask(logits, 10)
    np.testing.assert_array_equal(a, b)
    c = topk_mask(logits, 10, jax.random.PRNGKey(1))
    d = topk_mask(logits, 10, jax.random.PRNGKey(2))
    assert np.any(np.asarray(c) != np.asarray(d))


def test_topk_mask_gradient_is_the_soft_relaxations():
    logits = jax.random.normal(jax.random.PRNGKey(0), (4, 12))
    w = jax.random.normal(jax.random.PRNGKey(1), (4, 12))
    key, k, temp = jax.random.PRNGKey(2), 5, 0.7
    g = jax.grad(lambda x: jnp.sum(topk_mask(x, k, key, temp) * w))(logits)
    z = logits + jax.random.gumbel(key, logits.shape)
    expected = jax.grad(lambda x: jnp.sum(k * jax.nn.softmax((x + (z - logits)) / temp) * w))(
        logits
    )
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)
    assert np.all(np.abs(np.asarray(g)).sum(axis=-1) > 0)


def test_active_neurons_rounds_and_rejects_bad_ratios():
    assert active_neurons(0.8, 400) == 80
    assert active_neurons(0.5, 400) == 200
    assert active_neurons(0.0, 7) == 7
    assert active_neurons(0.75, 10) == 2  # round(2.5) -> 2 (banker's rounding, as Python)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            active_neurons(bad, 10)
    with pytest.raises(ValueError, match="no neuron"):
        active_neurons(0.99, 10)


def test_generator_masks_every_layer_and_sample_with_exact_counts():
    widths = ((40, 30), (40, 30), (20,))
    gen = MaskGenerator(widths, n_tasks=3, hidden=(16,))
    state = jax.random.normal(jax.random.PRNGKey(0), (9, 5))
    task = jnp.arange(9) % 3
    params = gen.init(jax.random.PRNGKey(1), state, task, 0.75)
    logits = gen.apply(params, state, task, 0.75)
    for key in (None, jax.random.PRNGKey(2)):
        masks = generate_masks(logits, 0.75, key)
        assert len(masks) == 3
        for net, ws in zip(masks, widths, strict=True):
            for m, w in zip(net, ws, strict=True):
                assert m.shape == (9, w)
                np.testing.assert_array_equal(np.asarray(m).sum(-1), active_neurons(0.75, w))
    for a, b in zip(
        jax.tree.leaves(generate_masks(logits, 0.75, None)),
        jax.tree.leaves(generate_masks(logits, 0.75, None)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def _relu(x):
    return np.maximum(x, 0.0)


def test_masked_actor_and_critics_match_numpy_with_neurons_removed():
    B, D, A, T, hidden = 6, 5, 2, 2, (8, 6)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(B, D)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(B, A)).astype(np.float32)
    task = jnp.asarray([0, 1, 0, 1, 0, 1], jnp.int32)
    masks = [(rng.random((B, w)) < 0.5).astype(np.float32) for w in hidden]
    actor = SACActor(T, A, hidden)
    p = actor.init(jax.random.PRNGKey(0), obs, task)["params"]
    mean, log_std = actor.apply({"params": p}, obs, task, masks=masks)
    x = obs
    for i in range(len(hidden)):
        d = p[f"Dense_{i}"]
        x = _relu(x @ np.asarray(d["kernel"]) + np.asarray(d["bias"])) * masks[i]
    head = p["head"]
    out = np.stack(
        [
            x[b] @ np.asarray(head["kernel"][t]) + np.asarray(head["bias"][t])
            for b, t in enumerate(task)
        ]
    )
    np.testing.assert_allclose(mean, out[:, :A], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_std, np.clip(out[:, A:], -20, 2), rtol=1e-5, atol=1e-5)
    # Masked neurons contribute nothing: changing their incoming weights changes no output.
    p2 = jax.tree.map(lambda v: v, p)
    dead = masks[0].max(axis=0) == 0  # neurons of layer 0 off for every sample
    if dead.any():
        k = np.asarray(p2["Dense_0"]["kernel"]).copy()
        k[:, dead] += 10.0
        p2 = {**p2, "Dense_0": {**p2["Dense_0"], "kernel": jnp.asarray(k)}}
        np.testing.assert_array_equal(actor.apply({"params": p2}, obs, task, masks=masks)[0], mean)
    # All-ones masks are the unmasked network.
    ones = [np.ones((B, w), np.float32) for w in hidden]
    np.testing.assert_array_equal(
        actor.apply({"params": p}, obs, task, masks=ones)[0],
        actor.apply({"params": p}, obs, task)[0],
    )
    critic = TwinCritic(T, hidden)
    pc = critic.init(jax.random.PRNGKey(1), obs, act, task)["params"]
    masks2 = [[np.ones((B, w), np.float32) for w in hidden], masks]
    q = np.asarray(critic.apply({"params": pc}, obs, act, task, masks=masks2))
    q_plain = np.asarray(critic.apply({"params": pc}, obs, act, task))
    np.testing.assert_array_equal(q[:, 0], q_plain[:, 0])  # critic_0 unmasked
    assert np.any(q[:, 1] != q_plain[:, 1])


def test_symmetric_kl_matches_distrax():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    var = rng.uniform(0.2, 2.0, size=(4, 3)).astype(np.float32)
    d = np.asarray(symmetric_kl(jnp.asarray(mean), jnp.asarray(var)))
    for i in range(4):
        for j in range(4):
            p = distrax.MultivariateNormalDiag(mean[i], np.sqrt(var[i]))
            q = distrax.MultivariateNormalDiag(mean[j], np.sqrt(var[j]))
            ref = float(p.kl_divergence(q) + q.kl_divergence(p))
            np.testing.assert_allclose(d[i, j], ref, rtol=1e-4, atol=1e-5)


def test_normalised_similarity_by_hand():
    d = jnp.asarray([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
    s = np.asarray(normalised_similarity(d))
    scale = (1 + 3 + 2) / 3
    e = np.exp(-np.array([1.0, 3.0, 2.0]) / scale)  # pairs (0,1), (0,2), (1,2)
    n = (e - e.min()) / (e.max() - e.min())
    expected = np.array([[1, n[0], n[1]], [n[0], 1, n[2]], [n[1], n[2], 1]])
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(normalised_similarity(jnp.ones((3, 3)))), 1.0)


def test_mask_similarity_is_cosine_and_loss_by_hand():
    m = jnp.asarray([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    s = np.asarray(mask_similarity(m))
    np.testing.assert_allclose(s, [[1, 1, 0], [1, 1, 0], [0, 0, 1]], atol=1e-7)
    target = jnp.asarray([[1, 0.5, 0], [0.5, 1, 0.25], [0, 0.25, 1]])
    loss = float(similarity_loss(jnp.asarray(s), target))
    expected = 2 * ((1 - 0.5) ** 2 + 0.0 + (0 - 0.25) ** 2) / 6
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_flops_of_the_masked_network():
    assert mlp_flops(39, [400, 400, 400], 8) == 2 * (39 * 400 + 400 * 400 * 2 + 400 * 8)
    assert masked_mlp_flops(39, [400, 400, 400], 8, 0.8) == 2 * (39 * 80 + 80 * 80 * 2 + 80 * 8)


# ------------------------------------------------------------- the synthetic similarity case
def _segments(key, n_tasks=3, per_task=64, length=6, state_dim=4):
    """Tasks 0 and 1 act with the same policy a = tanh(W s); task 2 with a = -tanh(W s)."""
    w = jnp.asarray([[1.0, -0.5], [0.5, 1.0], [-1.0, 0.3], [0.2, 0.8]])
    s = jax.random.normal(key, (n_tasks, per_task, length, state_dim))
    a = jnp.tanh(s @ w)
    sign = jnp.asarray([1.0, 1.0, -1.0])[:, None, None, None]
    return jnp.concatenate([s, sign * a], axis=-1)


def test_vae_policy_similarity_finds_the_tasks_that_share_a_policy():
    seg = _segments(jax.random.PRNGKey(0))
    vae = TrajectoryVAE(state_dim=4, action_dim=2, latent=4, hidden=64)
    params = vae.init(jax.random.PRNGKey(1), seg[0], jax.random.PRNGKey(2))["params"]
    tx = optax.adam(3e-3)
    opt = tx.init(params)
    flat = seg.reshape(-1, *seg.shape[2:])

    @jax.jit
    def step(p, o, k):
        loss, g = jax.value_and_grad(lambda q: vae_loss(vae, q, flat, k))(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    first = None
    for i in range(300):
        params, opt, loss = step(params, opt, jax.random.PRNGKey(100 + i))
        first = float(loss) if first is None else first
    assert float(loss) < 0.5 * first  # the VAE learns to reconstruct the actions
    mu, logvar = vae.apply({"params": params}, flat, method="encode")
    sim = np.asarray(policy_similarity(mu.reshape(3, 64, -1), logvar.reshape(3, 64, -1)))
    assert sim[0, 1] > 0.9  # the shared policy: the most similar pair (min-max: 1)
    assert sim[0, 2] < 0.1 and sim[1, 2] < 0.1


def test_similarity_loss_pulls_the_masks_of_tasks_that_share_a_policy_together():
    T, widths = 3, ((32, 32),)
    gen = MaskGenerator(widths, T, hidden=(64,))
    states = jax.random.normal(jax.random.PRNGKey(0), (128, 4))
    params = gen.init(jax.random.PRNGKey(1), states, jnp.zeros(128, jnp.int32), 0.5)["params"]
    policy_sim = jnp.asarray([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    def sims(p):  # the deterministic masks (as the similarity phase uses them)
        def one(t):
            logits = gen.apply({"params": p}, states, jnp.full(128, t), 0.5)
            masks = generate_masks(logits, 0.5, None)[0]
            return jnp.concatenate([m.mean(0) for m in masks])

        return mask_similarity(jnp.stack([one(t) for t in range(T)]))

    tx = optax.adam(3e-3)

    @jax.jit
    def train(p):
        def step(carry, _):
            p, o = carry
            loss, g = jax.value_and_grad(lambda q: similarity_loss(sims(q), policy_sim))(p)
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        return jax.lax.scan(step, (p, tx.init(p)), None, length=100)[0][0]

    before = np.asarray(jax.jit(sims)(params))
    loss0 = float(similarity_loss(jnp.asarray(before), policy_sim))
    params = train(params)
    after = np.asarray(jax.jit(sims)(params))
    loss1 = float(similarity_loss(jnp.asarray(after), policy_sim))
    assert loss1 < 0.5 * loss0
    assert after[0, 1] > before[0, 1]  # the pair that shares a policy: more similar masks
    assert after[0, 1] > after[0, 2] + 0.2 and after[0, 1] > after[1, 2] + 0.2
