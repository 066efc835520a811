"""The PPO rollout computes the truncation bootstrap V(final observation) itself, only at steps
where some environment was truncated: it must equal a plain per-step reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.algos.ppo import PPO, EnvStep, PPOConfig
from jaxsparse.nets.mlp import MLPActorCritic
from jaxsparse.run.envs import FlaxAgent, vector_inputs
from jaxsparse.sparsity.methods import Dense

N, L = 4, 12


class CountingEnv:
    """Env i at counter c: observation ``[c, i, sin(c)]``; truncated when ``(c + i) % 4 == 0``
    after the step (never at the same step for every env; none at all with ``truncate=False``),
    with a final observation that differs from the next one (``next + 10``)."""

    num_envs, num_tasks, num_actions = N, 1, 2
    task_ids = np.zeros(N, np.int32)
    best_returns = np.ones(1, np.float32)
    task_names = ("count",)

    def __init__(self, truncate: bool = True) -> None:
        self.truncate = truncate

    @staticmethod
    def _obs(c: jax.Array) -> jax.Array:
        i = jnp.arange(N, dtype=jnp.float32)
        c = c.astype(jnp.float32)
        return jnp.stack([c, i, jnp.sin(c)], axis=1)

    def reset(self, key: jax.Array):
        c = jax.random.randint(key, (N,), 0, 3)
        return self._obs(c), c

    def step(self, key, c, actions) -> EnvStep:
        c = c + 1
        truncated = ((c + jnp.arange(N)) % 4 == 0) & self.truncate
        obs = self._obs(c)
        return EnvStep(
            obs=obs,
            state=c,
            reward=jnp.ones(N, jnp.float32),
            terminated=jnp.zeros(N, bool),
            truncated=truncated,
            final_obs=obs + 10.0,
            success=jnp.zeros(N, bool),
        )


def _ppo(env: CountingEnv) -> PPO:
    config = PPOConfig(rollout_length=L, policy_minibatch_per_task=8, critic_batch=8)
    return PPO(config, env, FlaxAgent(MLPActorCritic(2, hidden=8), vector_inputs), Dense())


def _reference_bootstrap(ppo: PPO, state, traj) -> np.ndarray:
    """Per step, as the update used to compute it: V(next observation + 10) where truncated."""
    next_obs = jnp.concatenate([traj.obs[1:], state.obs[None]], axis=0)  # obs after step t
    out = np.zeros((L, N), np.float32)
    for t in range(L):
        _, v = ppo.net.apply(state.params, next_obs[t] + 10.0)
        out[t] = np.where(np.asarray(traj.truncated[t]), np.asarray(v), 0.0)
    return out


def test_rollout_bootstrap_values_match_a_per_step_reference() -> None:
    ppo = _ppo(CountingEnv())
    state = ppo.init(jax.random.key(0))
    after, traj = jax.jit(ppo._rollout)(state, jax.random.key(1))
    truncated = np.asarray(traj.truncated)
    assert truncated.any() and not truncated.all(axis=1).any()  # some, never all at one step
    expected = _reference_bootstrap(ppo, after, traj)
    np.testing.assert_allclose(np.asarray(traj.bootstrap_value), expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.asarray(traj.bootstrap_value)[~truncated] == 0.0)
    assert np.all(expected[truncated] != 0.0)


def test_rollout_bootstrap_under_vmap_with_and_without_truncations() -> None:
    """vmap over seeds: each seed's bootstraps equal its own run; with no truncation at all the
    bootstrap is exactly zero (the branch that skips the forward pass)."""
    for env in (CountingEnv(), CountingEnv(truncate=False)):
        ppo = _ppo(env)
        keys = jax.random.split(jax.random.key(3), 2)
        states = jax.vmap(ppo.init)(keys)
        _, trajs = jax.jit(jax.vmap(ppo._rollout))(states, keys)
        for s in range(2):
            state = jax.tree.map(lambda x, s=s: x[s], states)
            _, traj = jax.jit(ppo._rollout)(state, keys[s])
            np.testing.assert_allclose(
                np.asarray(trajs.bootstrap_value[s]), np.asarray(traj.bootstrap_value), atol=1e-6
            )
        if not env.truncate:
            assert np.all(np.asarray(trajs.bootstrap_value) == 0.0)
