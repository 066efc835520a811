"""Multi-task SAC: the per-task replay buffer against a plain ring buffer, the losses against a
NumPy computation on a tiny network, tanh-Gaussian log-densities, Polyak averaging, the
collection loop (truncation bootstraps, episode sums), sparsity per network (GMP on the actor
only; the target critic keeps the critic's masks), vmap over seeds, and one learning check on
gymnax Pendulum-v1."""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pendulum_sac import pendulum_last3_returns

from jaxsparse.algos.ppo import EnvStep
from jaxsparse.algos.replay import replay_add, replay_init, replay_sample
from jaxsparse.algos.sac import (
    SAC,
    SACConfig,
    alpha_loss,
    polyak,
    split_plan,
)
from jaxsparse.algos.sac_envs import ContinuousGymnaxVecEnv
from jaxsparse.nets.sac import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    SACNetworks,
    tanh_gaussian_sample,
)
from jaxsparse.sparsity import GMP, get_sparse_state, leaf_paths

# ------------------------------------------------------------------------- replay buffer


class RingReference:
    """A plain per-task Python ring buffer."""

    def __init__(self, num_tasks: int, capacity: int) -> None:
        self.rows: list[list[Any]] = [[None] * capacity for _ in range(num_tasks)]
        self.pos, self.size, self.capacity = 0, 0, capacity

    def add(self, per_task: list[list[Any]]) -> None:
        k = len(per_task[0])
        for t, rows in enumerate(per_task):
            for j, row in enumerate(rows):
                self.rows[t][(self.pos + j) % self.capacity] = row
        self.pos = (self.pos + k) % self.capacity
        self.size = min(self.size + k, self.capacity)


def test_replay_add_matches_python_ring_buffer_with_wraparound():
    T, k, C, steps = 3, 2, 5, 7  # 14 rows per task into 5 slots: wraps around twice
    rng = np.random.default_rng(0)
    example = {"obs": jnp.zeros(4, jnp.float32), "done": jnp.zeros((), bool)}
    state = replay_init(example, T, C)
    ref = RingReference(T, C)
    add = jax.jit(replay_add)
    for _ in range(steps):
        obs = rng.normal(size=(T * k, 4)).astype(np.float32)
        done = rng.random(T * k) < 0.5
        state = add(state, {"obs": obs, "done": done})
        ref.add([[(obs[t * k + j], done[t * k + j]) for j in range(k)] for t in range(T)])
        assert int(state.pos) == ref.pos and int(state.size) == ref.size
        for t in range(T):
            for c in range(ref.size):
                np.testing.assert_array_equal(state.data["obs"][t, c], ref.rows[t][c][0])
                assert bool(state.data["done"][t, c]) == bool(ref.rows[t][c][1])
    assert ref.size == C


def test_replay_rejects_uneven_or_oversized_writes():
    state = replay_init({"x": jnp.zeros(())}, 2, 3)
    with pytest.raises(ValueError, match="split evenly"):
        replay_add(state, {"x": jnp.zeros(5)})
    with pytest.raises(ValueError, match="capacity"):
        replay_add(state, {"x": jnp.zeros(8)})


def test_replay_sample_draws_each_task_share_from_filled_slots_only():
    T, k, C, bpt = 3, 2, 10, 64
    state = replay_init({"task": jnp.zeros((), jnp.int32), "slot": jnp.zeros((), jnp.int32)}, T, C)
    for step in range(3):  # 6 of 10 slots filled
        slot = np.tile(np.arange(k) + step * k, T)
        state = replay_add(state, {"task": np.repeat(np.arange(T), k), "slot": slot})
    batch = jax.jit(replay_sample, static_argnums=2)(state, jax.random.PRNGKey(1), bpt)
    task, slot = np.asarray(batch["task"]), np.asarray(batch["slot"])
    assert task.shape == (T * bpt,)
    np.testing.assert_array_equal(task, np.repeat(np.arange(T), bpt))  # task-major blocks
    assert slot.min() >= 0 and slot.max() < int(state.size) == 6
    # Uniform over the filled part: every filled slot of every task shows up in a large sample.
    big = replay_sample(state, jax.random.PRNGKey(2), 2000)
    for t in range(T):
        assert set(np.asarray(big["slot"][t * 2000 : (t + 1) * 2000]).tolist()) == set(range(6))
    # Under vmap over seeds (batched pos/size) each seed samples its own filled part.
    states = jax.tree.map(lambda a, b: jnp.stack([a, b]), state, replay_init(
        {"task": jnp.zeros((), jnp.int32), "slot": jnp.zeros((), jnp.int32)}, T, C
    ))  # fmt: skip
    states = states.replace(size=jnp.array([6, 1]))
    out = jax.vmap(replay_sample, in_axes=(0, 0, None))(
        states, jax.random.split(jax.random.PRNGKey(3), 2), bpt
    )
    assert np.asarray(out["slot"][0]).max() < 6
    assert np.all(np.asarray(out["slot"][1]) == 0)


# ------------------------------------------------------------- distributions and helpers


def test_tanh_gaussian_log_prob_matches_distrax_and_integrates_to_one():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(5, 3)).astype(np.float32)
    log_std = rng.uniform(-1.5, 0.5, size=(5, 3)).astype(np.float32)
    noise = rng.normal(size=(5, 3)).astype(np.float32)
    action, log_prob = tanh_gaussian_sample(mean, log_std, noise)
    pre = mean + np.exp(log_std) * noise
    dist = distrax.Transformed(
        distrax.MultivariateNormalDiag(mean, np.exp(log_std)), distrax.Block(distrax.Tanh(), 1)
    )
    np.testing.assert_allclose(action, np.tanh(pre), rtol=1e-6)
    np.testing.assert_allclose(log_prob, dist.log_prob(jnp.tanh(pre)), rtol=1e-4, atol=1e-4)
    # One dimension: the density over actions in (-1, 1) integrates to 1.
    a = np.linspace(-1 + 1e-7, 1 - 1e-7, 400_001)
    m, s = 0.3, 0.8
    z = (np.arctanh(a) - m) / s
    _, lp = tanh_gaussian_sample(
        jnp.full((a.size, 1), m), jnp.full((a.size, 1), math.log(s)), z[:, None]
    )
    assert abs(np.trapezoid(np.exp(np.asarray(lp, np.float64)), a) - 1.0) < 1e-3
    # Stable far in the tails (the naive log(1 - tanh^2) is -inf there).
    _, lp_tail = tanh_gaussian_sample(jnp.full((1, 1), 30.0), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    assert np.isfinite(lp_tail).all()


def test_actor_log_std_is_clipped():
    net = SACNetworks(2, 3, actor_hidden=(8,), critic_hidden=(8,))
    obs, task = jnp.ones((4, 5)), jnp.array([0, 0, 1, 1])
    params = net.init(jax.random.PRNGKey(0), obs, task)["actor"]
    for shift, bound in ((1e3, LOG_STD_MAX), (-1e3, LOG_STD_MIN)):
        p = jax.tree.map(lambda x: x, params)
        p["head"]["bias"] = p["head"]["bias"].at[:, 3:].add(shift)  # the log-std columns
        mean, log_std = net.actor(p, obs, task)
        np.testing.assert_array_equal(log_std, bound)
        np.testing.assert_allclose(mean, net.actor(params, obs, task)[0])  # means untouched
    _, log_std = net.actor(params, obs, task)
    assert np.all((log_std > LOG_STD_MIN) & (log_std < LOG_STD_MAX))


def test_parameter_paths_name_actor_and_critic():
    net = SACNetworks(2, 1, actor_hidden=(4, 4), critic_hidden=(4,))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((2, 3)), jnp.array([0, 1]))
    paths = leaf_paths(params)
    assert "actor/head/kernel" in paths and "actor/Dense_1/kernel" in paths
    assert "critic/critic_0/head/kernel" in paths and "critic/critic_1/Dense_0/kernel" in paths
    assert params["actor"]["head"]["kernel"].shape == (2, 4, 2)  # [T, 400, 2A] per-task head
    q = net.critic(params["critic"], jnp.zeros((2, 3)), jnp.zeros((2, 1)), jnp.array([0, 1]))
    assert q.shape == (2, 2)


def test_polyak_is_exact():
    target = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array([[-4.0]])}}
    online = {"a": jnp.array([3.0, -2.0]), "b": {"c": jnp.array([[4.0]])}}
    out = polyak(target, online, 0.25)
    np.testing.assert_array_equal(out["a"], np.float32([1.5, 1.0]))
    np.testing.assert_array_equal(out["b"]["c"], np.float32([[-2.0]]))
    np.testing.assert_array_equal(polyak(target, online, 0.0)["a"], target["a"])


def test_split_plan():
    gmp = GMP(sparsity=0.5, start=0, end=10, freq=5)
    assert split_plan({"actor": gmp}) == {"actor": {"actor": gmp}, "critic": {}}
    assert split_plan(gmp) == {"actor": {"": gmp}, "critic": {"": gmp}}
    both = split_plan({"*": gmp, "critic/critic_1": gmp})
    assert both == {"actor": {"": gmp}, "critic": {"": gmp, "critic/critic_1": gmp}}
    assert split_plan(None) == {"actor": {}, "critic": {}}
    with pytest.raises(ValueError, match="start with"):
        split_plan({"encoder": gmp})


def test_config_validation():
    with pytest.raises(ValueError, match="gamma"):
        SACConfig(gamma=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        SACConfig(batch_size=0)
    with pytest.raises(ValueError, match="actor_hidden"):
        SACConfig(actor_hidden=())
    env = ContinuousGymnaxVecEnv("Pendulum-v1", 4, num_tasks=2)
    with pytest.raises(ValueError, match="split evenly"):
        SAC(SACConfig(batch_size=5), env)
    with pytest.raises(ValueError, match="buffer_size"):
        SAC(SACConfig(buffer_size=2), env)
    cfg = SACConfig()
    assert (cfg.gamma, cfg.tau, cfg.init_alpha, cfg.batch_size) == (0.99, 0.005, 1.0, 1280)
    assert (cfg.buffer_size, cfg.warmup_steps, cfg.max_grad_norm) == (1_000_000, 4_000, 1.0)
    assert cfg.actor_hidden == cfg.critic_hidden == (400, 400, 400)
    assert SAC(cfg, env).target_entropy == -1.0


# ---------------------------------------------------------- losses against NumPy by hand


def _np_mlp(p: dict, x: np.ndarray, task: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    i = 0
    while f"Dense_{i}" in p:
        x = np.maximum(x @ np.float64(p[f"Dense_{i}"]["kernel"]) + p[f"Dense_{i}"]["bias"], 0.0)
        i += 1
    kernel, bias = np.float64(p["head"]["kernel"]), np.float64(p["head"]["bias"])
    return np.einsum("bi,bio->bo", x, kernel[task]) + bias[task]


def _np_actor(p, obs, task, noise):
    out = _np_mlp(p, obs, task)
    A = out.shape[1] // 2
    mean, log_std = out[:, :A], np.clip(out[:, A:], -20.0, 2.0)
    u = mean + np.exp(log_std) * noise
    log_prob = np.sum(-0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi), axis=1)
    log_prob -= np.sum(np.log(1.0 - np.tanh(u) ** 2), axis=1)
    return np.tanh(u), log_prob


def _np_q(p, obs, action, task):
    x = np.concatenate([obs, action], axis=1)
    return np.stack([_np_mlp(p[f"critic_{i}"], x, task)[:, 0] for i in range(2)], axis=1)


def test_critic_and_actor_losses_match_numpy():
    T, per_task, obs_dim = 2, 3, 3
    env = ContinuousGymnaxVecEnv("Pendulum-v1", 2, num_tasks=T)  # obs 3, action 1
    sac = SAC(SACConfig(gamma=0.9, actor_hidden=(5, 4), critic_hidden=(6,)), env)
    rng = np.random.default_rng(0)
    B, A = T * per_task, 1
    task = np.repeat(np.arange(T), per_task)
    params = sac.net.init(jax.random.PRNGKey(0), jnp.zeros((B, obs_dim)), jnp.asarray(task))
    target = jax.tree.map(  # a target different from the online critic
        lambda x: x + 0.1 * rng.normal(size=x.shape).astype(np.float32), params["critic"]
    )
    log_alpha = jnp.log(jnp.array([0.5, 2.0]))
    batch = {
        "obs": rng.normal(size=(B, obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(B, A)).astype(np.float32),
        "reward": rng.normal(size=B).astype(np.float32),
        "next_obs": rng.normal(size=(B, obs_dim)).astype(np.float32),
        # Only termination cuts the bootstrap; truncated transitions are stored with
        # terminated=False and their real final observation (see the collection test).
        "terminated": np.array([False, True, False, False, False, True]),
    }
    noise_next = rng.normal(size=(B, A)).astype(np.float32)
    noise_pi = rng.normal(size=(B, A)).astype(np.float32)

    loss, aux = sac.critic_loss(
        params["critic"], params["actor"], target, log_alpha, batch, noise_next
    )
    alpha = np.array([0.5, 2.0])[task]
    next_a, next_lp = _np_actor(params["actor"], batch["next_obs"], task, noise_next)
    next_q = _np_q(target, batch["next_obs"], next_a, task)
    y = batch["reward"] + 0.9 * (1 - batch["terminated"]) * (next_q.min(1) - alpha * next_lp)
    q = _np_q(params["critic"], batch["obs"], batch["action"], task)
    np.testing.assert_allclose(aux["target"], y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(aux["q"], q, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss, np.mean((q[:, 0] - y) ** 2 + (q[:, 1] - y) ** 2), rtol=1e-4)
    # Terminated rows are exactly the reward.
    np.testing.assert_allclose(aux["target"][batch["terminated"]], batch["reward"][[1, 5]])

    a_loss, a_aux = sac.actor_loss(params["actor"], params["critic"], log_alpha, batch, noise_pi)
    act, lp = _np_actor(params["actor"], batch["obs"], task, noise_pi)
    q_pi = _np_q(params["critic"], batch["obs"], act, task).min(1)
    np.testing.assert_allclose(a_aux["log_prob"], lp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a_loss, np.mean(alpha * lp - q_pi), rtol=1e-4, atol=1e-5)
    # The actor loss does not move the critic.
    g = jax.grad(lambda c: sac.actor_loss(params["actor"], c, log_alpha, batch, noise_pi)[0])(
        params["critic"]
    )
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g))

    # Per-task temperature loss and its gradient: d/dlog_alpha_t = sum_{i in t} alpha_t gap_i / B.
    al, al_grad = jax.value_and_grad(sac.alpha_loss)(log_alpha, jnp.asarray(lp, jnp.float32))
    gap = -lp - sac.target_entropy
    np.testing.assert_allclose(al, np.mean(alpha * gap), rtol=1e-4)
    expect = [np.sum((alpha * gap)[task == t]) / B for t in range(T)]
    np.testing.assert_allclose(al_grad, expect, rtol=1e-4)
    np.testing.assert_allclose(
        alpha_loss(log_alpha, jnp.asarray(lp), jnp.asarray(task), sac.target_entropy), al
    )


# ---------------------------------------------------- collection loop on a counter env


class CounterState(NamedTuple):
    time: jax.Array
    episode: jax.Array


class CounterEnv:
    """T tasks x 2 envs; obs = [env, time, episode]. Env i's episodes last 2 + i % 3 steps and
    end by termination when i is even, by truncation when odd. Reward = 10 * env + time + 1;
    success at time 1 only (never at an episode's last step when it lasts 3+ steps)."""

    action_dim = 2
    max_episode_steps = 4

    def __init__(self, num_tasks: int = 2, per_task: int = 2) -> None:
        self.num_tasks, self.num_envs = num_tasks, num_tasks * per_task
        self.task_ids = np.repeat(np.arange(num_tasks, dtype=np.int32), per_task)
        self.env = jnp.arange(self.num_envs)
        self.length = 2 + self.env % 3

    def _obs(self, s: CounterState) -> jax.Array:
        return jnp.stack([self.env, s.time, s.episode], axis=1).astype(jnp.float32)

    def reset(self, key):
        s = CounterState(jnp.zeros(self.num_envs, jnp.int32), jnp.zeros(self.num_envs, jnp.int32))
        return self._obs(s), s

    def step(self, key, state, actions):
        t = state.time + 1
        done = t >= self.length
        final = CounterState(t, state.episode)
        new = CounterState(jnp.where(done, 0, t), state.episode + done)
        return EnvStep(
            obs=self._obs(new),
            state=new,
            reward=(10 * self.env + t).astype(jnp.float32),
            terminated=done & (self.env % 2 == 0),
            truncated=done & (self.env % 2 == 1),
            final_obs=self._obs(final),
            success=t == 1,
        )


def test_collection_stores_final_obs_and_only_terminations():
    env = CounterEnv()
    steps = 7
    cfg = SACConfig(steps_per_update=steps, batch_size=4, buffer_size=40, warmup_steps=100,
                    actor_hidden=(4,), critic_hidden=(4,))  # fmt: skip
    sac = SAC(cfg, env)
    state, metrics = jax.jit(sac.update)(jax.jit(sac.init)(jax.random.PRNGKey(0)))
    assert int(metrics["train_steps"]) == 0 and int(state.grad_steps) == 0
    assert int(state.env_steps) == steps
    data = jax.tree.map(np.asarray, state.buffer.data)
    per_task = env.num_envs // env.num_tasks
    ret_sum, eps, succ = np.zeros(2), np.zeros(2), np.zeros(2)
    for i in range(env.num_envs):
        t_id, row = divmod(i, per_task)
        length, time_, episode, ret, ever = 2 + i % 3, 0, 0, 0.0, False
        for s in range(steps):
            rec = {k: v[t_id, s * per_task + row] for k, v in data.items()}
            np.testing.assert_array_equal(rec["obs"], [i, time_, episode])
            time_ += 1
            reward = 10 * i + time_
            ever |= time_ == 1
            ret += reward
            assert rec["reward"] == reward
            done = time_ >= length
            # Final observation of the ended episode (not the reset one); terminated only for
            # even envs: truncations keep bootstrapping.
            np.testing.assert_array_equal(rec["next_obs"], [i, time_, episode])
            assert bool(rec["terminated"]) == (done and i % 2 == 0)
            assert np.all(np.abs(rec["action"]) <= 1.0)
            if done:
                ret_sum[t_id] += ret
                eps[t_id] += 1
                succ[t_id] += ever
                time_, episode, ret, ever = 0, episode + 1, 0.0, False
        np.testing.assert_array_equal(state.obs[i], [i, time_, episode])
        assert float(state.running_return[i]) == ret
    np.testing.assert_allclose(metrics["return_sum"], ret_sum)
    np.testing.assert_array_equal(metrics["episodes"], eps)
    np.testing.assert_array_equal(metrics["success_sum"], succ)
    assert np.isnan(metrics["critic_loss"]) and bool(metrics["finite"])


def test_evaluate_counts_success_at_any_step():
    env = CounterEnv()
    sac = SAC(SACConfig(batch_size=4, buffer_size=40, actor_hidden=(4,), critic_hidden=(4,)), env)
    state = sac.init(jax.random.PRNGKey(0))
    out = jax.jit(sac.evaluate)(state.params, jax.random.PRNGKey(1))
    lengths = 2 + np.arange(4) % 3
    returns = [sum(10 * i + t for t in range(1, n + 1)) for i, n in enumerate(lengths)]
    np.testing.assert_allclose(out["return"], [np.mean(returns[:2]), np.mean(returns[2:])])
    np.testing.assert_array_equal(out["success"], [1.0, 1.0])


# ----------------------------------------------------------------- sparsity and seeds

TINY = SACConfig(
    steps_per_update=10,
    batch_size=8,
    buffer_size=400,
    warmup_steps=15,
    actor_hidden=(16, 16),
    critic_hidden=(16, 16),
)
GMP_SCHEDULE = GMP(sparsity=0.9, start=0, end=20, freq=5)  # in gradient steps


def _pendulum_sac(plan) -> SAC:
    return SAC(TINY, ContinuousGymnaxVecEnv("Pendulum-v1", 4, num_tasks=2), plan=plan)


_JITTED: dict[tuple[int, bool], tuple[Any, Any, Any]] = {}


def _train(sac: SAC, keys: jax.Array, updates: int, vmapped: bool):
    """``updates`` updates from ``init(keys)``; compiled once per (SAC object, vmapped)."""
    if (id(sac), vmapped) not in _JITTED:
        fns = (jax.vmap(sac.init), jax.vmap(sac.update)) if vmapped else (sac.init, sac.update)
        _JITTED[id(sac), vmapped] = (sac, *map(jax.jit, fns))  # keep sac alive: ids stay unique
    _, init, update = _JITTED[id(sac), vmapped]
    state = init(keys)
    for _ in range(updates):
        state, metrics = update(state)
    return state, metrics


def _kernels(tree) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat if "kernel" in str(p[-1])}


def test_gmp_on_actor_only_reaches_exact_counts_and_leaves_critics_dense():
    sac = _pendulum_sac({"actor": GMP_SCHEDULE})
    state, metrics = _train(sac, jax.random.PRNGKey(0), 4, vmapped=False)  # 25 gradient steps
    assert int(state.grad_steps) == 4 * 10 - 15 and int(metrics["train_steps"]) == 10
    # The state that update returns has the types of init's (no second compilation).
    assert _JITTED[id(sac), False][2]._cache_size() == 1
    actor_sparse = get_sparse_state(state.opt_state["actor"])
    critic_masks = get_sparse_state(state.opt_state["critic"]).masks
    assert all(m is None for m in jax.tree.leaves(critic_masks, is_leaf=lambda x: x is None))
    finals = jax.tree.leaves(actor_sparse.final_counts["actor"])
    kernels = _kernels(state.params["actor"])
    assert len(finals) == len(kernels) == 3
    for (name, w), final in zip(kernels.items(), finals, strict=True):
        assert np.count_nonzero(w) == int(final), name
        assert int(final) == round(0.1 * w.size), name
    for name, w in _kernels((state.params["critic"], state.target_critic)).items():
        assert np.count_nonzero(w) == w.size, name
    assert abs(float(metrics["actor_sparsity"]) - 0.9) < 0.01
    assert float(metrics["critic_sparsity"]) == 0.0 and bool(metrics["finite"])


def test_vmap_over_seeds_matches_each_seed_and_target_keeps_critic_masks():
    sac = _pendulum_sac({"actor": GMP_SCHEDULE, "critic": GMP_SCHEDULE})
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    both, m_both = _train(sac, keys, 3, vmapped=True)  # crosses warm-up and three mask updates
    for s in range(2):
        alone, m_alone = _train(sac, keys[s], 3, vmapped=False)
        seed = jax.tree.map(lambda x, s=s: x[s], both)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(seed), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(m_alone["critic_loss"], m_both["critic_loss"][s], rtol=1e-5)
        # The target critic is zero exactly where the critic is pruned.
        masks = get_sparse_state(alone.opt_state["critic"]).masks["critic"]
        for m, w in zip(
            jax.tree.leaves(masks), jax.tree.leaves(_kernels(alone.target_critic)), strict=True
        ):
            m, w = np.asarray(m), np.asarray(w)
            assert not m.all()
            assert np.all(w[~m] == 0.0) and np.all(w[m] != 0.0)
    assert float(m_both["critic_sparsity"][0]) > 0.5


def test_diagnose_matches_a_plain_reference():
    """SAC's plasticity diagnostics (jitted) against a per-sample Python loop: the recent batch
    (the newest rows of every task's ring), dormant fractions from NumPy activations, srank via
    NumPy's SVD, and the Fisher trace as a loop of single-sample gradients over live weights."""
    from jaxsparse.plasticity.interventions import PlasticityConfig

    sac = SAC(
        TINY,
        ContinuousGymnaxVecEnv("Pendulum-v1", 4, num_tasks=2),
        plan={"actor": GMP_SCHEDULE},
        plasticity=PlasticityConfig(diagnostics=True, batch=6, tau=0.1, fisher_chunk=2),
    )
    state, _ = _train(sac, jax.random.PRNGKey(3), 3, vmapped=False)  # 30 suite steps
    key = jax.random.PRNGKey(11)
    out = jax.jit(sac.diagnose)(state, key)

    # Recent batch: per task the 3 newest rows, newest first (pos - 1, pos - 2, pos - 3).
    buf = state.buffer
    pos, cap = int(buf.pos), buf.capacity
    rows = [(pos - 1 - i) % cap for i in range(3)]
    obs = np.concatenate([np.asarray(buf.data["obs"])[t, rows] for t in range(2)])
    actions = np.concatenate([np.asarray(buf.data["action"])[t, rows] for t in range(2)])
    np.testing.assert_array_equal(np.asarray(sac.recent_batch(buf)["obs"]), obs)
    task = np.repeat([0, 1], 3)

    net, params = sac.net, state.params

    def hidden(apply, *args):
        inter = apply(*args, task, False, mutable=["intermediates"])[1]["intermediates"]
        return jax.tree_util.tree_flatten_with_path(inter)[0]

    def dormant(acts):
        fracs = []
        for _, h in acts:
            score = np.abs(np.asarray(h)).mean(axis=0)
            fracs.append(score / (score.mean() + 1e-9) <= 0.1)
        return np.concatenate(fracs).mean()

    actor_acts = hidden(net.actor, params["actor"], obs)
    critic_acts = hidden(net.critic, params["critic"], obs, actions)
    np.testing.assert_allclose(out["actor_dormant"], dormant(actor_acts), atol=1e-6)
    np.testing.assert_allclose(out["critic_dormant"], dormant(critic_acts), atol=1e-6)

    def srank(h):
        sigma = np.linalg.svd(np.asarray(h, np.float64), compute_uv=False)
        return int(np.searchsorted(np.cumsum(sigma) / sigma.sum(), 0.99) + 1)

    assert int(out["actor_erank"]) == srank(actor_acts[-1][1])
    assert int(out["critic_erank"]) == srank(critic_acts[1][1])  # critic_0's last hidden layer

    # Fisher: the same pre-tanh samples, one gradient per sample, pruned weights left out.
    mean, log_std = net.actor(params["actor"], obs, task)
    pre = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    masks = get_sparse_state(state.opt_state["actor"]).masks["actor"]
    total = 0.0
    for i in range(6):

        def log_density(p, i=i):
            m, ls = net.actor(p, obs[i : i + 1], task[i : i + 1])
            z = (pre[i] - m[0]) / jnp.exp(ls[0])
            return jnp.sum(-0.5 * z**2 - ls[0] - 0.5 * math.log(2 * math.pi))

        grads = jax.grad(log_density)(params["actor"])
        for g, m in zip(
            jax.tree.leaves(grads),
            jax.tree.leaves(masks, is_leaf=lambda x: x is None),
            strict=True,
        ):
            g = np.asarray(g, np.float64)
            total += np.sum(np.square(g if m is None else g * np.asarray(m)))
    np.testing.assert_allclose(out["fisher_trace"], total / 6, rtol=1e-4)
    assert float(out["fisher_trace"]) > 0.0


# ---------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_sac_learns_pendulum():
    """Two tasks (two blocks of Pendulum-v1 copies, each with its own heads and temperature),
    two seeds under vmap, 2x64 networks, lr 1e-3, 15k suite steps (a random policy scores about
    -1200, a solved one about -150). The mean greedy return over both seeds, both tasks and the
    last three evaluations (32 episodes each) must exceed -250."""
    start = time.time()
    returns = pendulum_last3_returns()
    mean = float(np.mean(returns))
    print(f"pendulum: last-3 mean greedy return {mean:.1f} in {time.time() - start:.0f}s")
    assert mean > -250, returns
