"""PPO losses and GAE against plain NumPy loop references."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsparse.algos import categorical_log_prob_and_entropy, gae, ppo_policy_loss, value_loss

_gae_jit = jax.jit(gae)  # gamma / lam traced here


def gae_reference(r, v, d, tr, boot, last, gamma, lam):
    """Double-loop GAE: next value bootstrapped on truncation, zero on termination."""
    T, N = v.shape
    adv = np.zeros((T, N))
    for n in range(N):
        a_next = 0.0
        for t in reversed(range(T)):
            done = bool(d[t, n] or tr[t, n])
            terminal = done and not tr[t, n]
            if tr[t, n]:
                nv = boot[t, n]
            elif terminal:
                nv = 0.0
            else:
                nv = v[t + 1, n] if t + 1 < T else last[n]
            delta = r[t, n] + gamma * nv - v[t, n]
            a_next = delta + gamma * lam * (1.0 - done) * a_next
            adv[t, n] = a_next
    return adv, adv + v


def make_rollout(seed, T, N, p_done=0.3):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, N)).astype(np.float32)
    v = rng.normal(size=(T, N)).astype(np.float32)
    d = rng.random((T, N)) < p_done
    tr = d & (rng.random((T, N)) < 0.5)
    boot = rng.normal(size=(T, N)).astype(np.float32)
    last = rng.normal(size=(N,)).astype(np.float32)
    return r, v, d, tr, boot, last


def check_gae(r, v, d, tr, boot, last, gamma, lam):
    adv, ret = _gae_jit(r, v, d, tr, boot, last, gamma, lam)
    ref_adv, ref_ret = gae_reference(r, v, d, tr, boot, last, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)
    return np.asarray(adv)


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(1, 20),
    N=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    gamma=st.sampled_from([0.0, 0.5, 0.99, 1.0]),
    lam=st.sampled_from([0.0, 0.95, 1.0]),
)
def test_gae_matches_reference(T, N, seed, gamma, lam):
    check_gae(*make_rollout(seed, T, N), gamma, lam)


def test_gae_boundary_cases():
    T, N = 6, 4
    r, v, _, _, boot, last = make_rollout(0, T, N)
    d = np.zeros((T, N), bool)
    tr = np.zeros((T, N), bool)
    d[-1, 0] = True  # terminal at the last step
    d[-1, 1] = tr[-1, 1] = True  # truncation at the last step
    d[2:4, 2] = True  # consecutive terminals
    d[1:4, 3] = True  # consecutive dones: truncation, terminal, truncation
    tr[1, 3] = tr[3, 3] = True
    adv = check_gae(r, v, d, tr, boot, last, 0.9, 0.8)
    np.testing.assert_allclose(adv[-1, 0], r[-1, 0] - v[-1, 0], rtol=1e-6)
    np.testing.assert_allclose(adv[-1, 1], r[-1, 1] + 0.9 * boot[-1, 1] - v[-1, 1], rtol=1e-6)
    np.testing.assert_allclose(adv[2:4, 2], r[2:4, 2] - v[2:4, 2], rtol=1e-6)
    np.testing.assert_allclose(adv[2, 3], r[2, 3] - v[2, 3], rtol=1e-6)


def test_gae_gamma_zero_is_one_step_advantage():
    r, v, d, tr, boot, last = make_rollout(1, 12, 3)
    adv, _ = gae(r, v, d, tr, boot, last, gamma=0.0, lam=0.95)
    np.testing.assert_allclose(adv, r - v, rtol=1e-6, atol=1e-6)


def test_gae_lam_one_is_monte_carlo_return():
    gamma = 0.9
    r, v, d, tr, boot, last = make_rollout(2, 15, 3)
    _, ret = gae(r, v, d, tr, boot, last, gamma=gamma, lam=1.0)
    T, N = v.shape
    for n in range(N):
        for t in range(T):  # forward discounted sum to the episode end (or rollout end)
            g, disc, k = 0.0, 1.0, t
            while True:
                g += disc * r[k, n]
                disc *= gamma
                if tr[k, n]:
                    g += disc * boot[k, n]
                    break
                if d[k, n]:
                    break
                if k == T - 1:
                    g += disc * last[n]
                    break
                k += 1
            np.testing.assert_allclose(ret[t, n], g, rtol=1e-5, atol=1e-5)


def test_gae_jit_vmap_over_seeds():
    S, T, N = 3, 9, 2
    rollouts = [make_rollout(s, T, N) for s in range(S)]
    stacked = [np.stack(xs) for xs in zip(*rollouts, strict=True)]
    batched = jax.jit(jax.vmap(functools.partial(gae, gamma=0.97, lam=0.9)))
    adv, ret = batched(*stacked)
    for s in range(S):
        a, rr = gae(*rollouts[s], gamma=0.97, lam=0.9)
        np.testing.assert_allclose(adv[s], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ret[s], rr, rtol=1e-5, atol=1e-6)


def test_truncation_bootstraps_termination_does_not():
    gamma, lam = 0.9, 0.95
    r = np.array([[1.0], [2.0]], np.float32)
    v = np.array([[0.5], [0.3]], np.float32)
    boot = np.array([[4.0], [0.0]], np.float32)
    last = np.array([7.0], np.float32)
    d = np.array([[True], [False]])
    adv_term, _ = gae(r, v, d, np.zeros_like(d), boot, last, gamma, lam)
    adv_trunc, _ = gae(r, v, d, d, boot, last, gamma, lam)
    np.testing.assert_allclose(adv_term[0, 0], 1.0 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(adv_trunc[0, 0], 1.0 + gamma * 4.0 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(adv_trunc[0, 0] - adv_term[0, 0], gamma * 4.0, rtol=1e-6)
    # neither propagates the next episode's advantage back across the boundary
    np.testing.assert_allclose(adv_term[1], adv_trunc[1])


# ------------------------------------------------------------------------------- policy loss


def policy_loss_reference(lp, old, adv, ent, eps, c, normalize):
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(lp - old)
    surr = np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
    kl = np.mean((ratio - 1) - (lp - old))
    return -surr.mean() - c * ent.mean(), kl, np.mean(np.abs(ratio - 1) > eps)


@pytest.mark.parametrize("normalize", [True, False])
def test_policy_loss_matches_reference(normalize):
    rng = np.random.default_rng(3)
    lp, old, adv = (rng.normal(scale=0.3, size=64) for _ in range(3))
    ent = rng.random(64)
    loss, m = jax.jit(ppo_policy_loss, static_argnames="normalize_advantages")(
        lp, old, adv, ent, 0.2, 0.01, normalize_advantages=normalize
    )
    ref, kl, frac = policy_loss_reference(lp, old, adv, ent, 0.2, 0.01, normalize)
    np.testing.assert_allclose(loss, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m["approx_kl"], kl, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(m["clip_fraction"], frac)
    np.testing.assert_allclose(m["entropy"], ent.mean(), rtol=1e-6)


def test_clip_binds_and_is_pessimistic():
    eps = 0.2
    ratio = np.array([1.5, 0.5, 1.5, 0.5, 1.1], np.float32)
    adv = np.array([1.0, -1.0, -1.0, 1.0, 1.0], np.float32)
    clipped = np.array([True, True, False, False, False])
    old = np.zeros(5, np.float32)
    lp = np.log(ratio)

    def loss_fn(lp):
        return ppo_policy_loss(lp, old, adv, jnp.zeros(5), eps, 0.0, False)[0]

    loss, grad = jax.value_and_grad(loss_fn)(jnp.asarray(lp))
    np.testing.assert_array_equal(np.asarray(grad) == 0.0, clipped)
    np.testing.assert_allclose(grad[~clipped], -(ratio * adv)[~clipped] / 5, rtol=1e-5)
    unclipped_obj = np.mean(ratio * adv)
    clipped_obj = np.mean(np.clip(ratio, 1 - eps, 1 + eps) * adv)
    assert -loss <= min(unclipped_obj, clipped_obj) + 1e-6
    np.testing.assert_allclose(-loss, np.mean([1.2, -0.8, -1.5, 0.5, 1.1]), rtol=1e-5)


def test_entropy_bonus_lowers_loss():
    rng = np.random.default_rng(4)
    lp, old, adv = (rng.normal(scale=0.1, size=16) for _ in range(3))
    low, _ = ppo_policy_loss(lp, old, adv, np.full(16, 0.5), ent_coef=0.1)
    high, _ = ppo_policy_loss(lp, old, adv, np.full(16, 1.5), ent_coef=0.1)
    assert high < low
    np.testing.assert_allclose(low - high, 0.1 * 1.0, rtol=1e-5)


def test_value_loss():
    v = np.array([1.0, 2.0, 3.0, 0.0], np.float32)
    ret = np.array([0.0, 2.5, 3.0, 1.0], np.float32)
    old = np.array([1.5, 2.0, 2.0, 0.5], np.float32)
    np.testing.assert_allclose(value_loss(v, ret), np.mean((v - ret) ** 2), rtol=1e-6)
    vc = old + np.clip(v - old, -0.2, 0.2)
    ref = np.mean(np.maximum((v - ret) ** 2, (vc - ret) ** 2))
    np.testing.assert_allclose(value_loss(v, ret, old, 0.2), ref, rtol=1e-6)


# ------------------------------------------------------------------------- categorical head


def test_categorical_log_prob_and_entropy():
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3.0, size=(10, 7)).astype(np.float32)
    actions = rng.integers(0, 7, size=10)
    lp, ent = jax.jit(categorical_log_prob_and_entropy)(logits, actions)
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    np.testing.assert_allclose(lp, log_p[np.arange(10), actions], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ent, -(np.exp(log_p) * log_p).sum(-1), rtol=1e-5, atol=1e-6)
    _, ent_uniform = categorical_log_prob_and_entropy(np.zeros((3, 7)), np.zeros(3, int))
    np.testing.assert_allclose(ent_uniform, math.log(7), rtol=1e-6)
    # large logits stay finite
    lp_big, ent_big = categorical_log_prob_and_entropy(
        jnp.array([[1e4, 0.0, -1e4]]), jnp.array([1])
    )
    assert np.isfinite(lp_big).all() and np.isfinite(ent_big).all()


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("gamma", lambda x: gae(*x, gamma=1.1)),
        ("gamma", lambda x: gae(*x, gamma=-0.1)),
        ("lam", lambda x: gae(*x, lam=1.5)),
        ("clip_eps", lambda x: ppo_policy_loss(x[0], x[0], x[0], x[0], clip_eps=0.0)),
        ("ent_coef", lambda x: ppo_policy_loss(x[0], x[0], x[0], x[0], ent_coef=-0.01)),
        ("clip_eps", lambda x: value_loss(x[0], x[0], x[0], clip_eps=-1.0)),
    ],
)
def test_bad_hyperparameters_raise(field, call):
    with pytest.raises(ValueError, match=field):
        call(make_rollout(0, 3, 2))
