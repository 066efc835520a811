"""Continuous-action gymnax environments (Box action spaces, e.g. ``Pendulum-v1``) behind the
SAC environment interface of ``jaxsparse.algos.sac``.

The interface is ``jaxsparse.algos.ppo``'s ``VecEnv`` with ``action_dim`` instead of
``num_actions``: actions are ``[N, action_dim]`` floats in ``[-1, 1]`` (a tanh-squashed policy's
range) that the adapter rescales linearly to the space's ``[low, high]``; observations are
``[N, obs_dim]`` float vectors. ``num_tasks > 1`` labels equal blocks of copies of the same
environment as different tasks (task-major), which exercises the multi-task plumbing (per-task
heads, buffers and temperatures) on a cheap environment.

Kept apart from ``jaxsparse.run.envs`` (the discrete adapters); the runner builds it for
``algo: sac`` (``jaxsparse.run.build``, one task, ``env.num_envs_per_task`` copies).
"""

from __future__ import annotations

from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.algos.ppo import EnvStep
from jaxsparse.sparsity.checks import check_int

Array = jax.Array


class ContinuousGymnaxVecEnv:
    """``num_envs`` copies of a gymnax environment with a ``Box`` action space."""

    def __init__(self, name: str, num_envs: int, num_tasks: int = 1) -> None:
        check_int("num_envs", num_envs, minimum=1)
        check_int("num_tasks", num_tasks, minimum=1)
        if num_envs % num_tasks:
            raise ValueError(f"num_envs ({num_envs}) must be a multiple of num_tasks ({num_tasks})")
        self.env, self.params = gymnax.make(name)
        space = self.env.action_space(self.params)
        if not hasattr(space, "low") or not hasattr(space, "high"):
            raise ValueError(f"{name} has no Box action space ({type(space).__name__})")
        shape = tuple(space.shape) if space.shape else (1,)
        self.action_shape = tuple(space.shape)  # what the gymnax env expects per copy
        self.action_dim = int(np.prod(shape))
        self.low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape).reshape(-1)
        self.high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape).reshape(-1)
        obs_shape = self.env.observation_space(self.params).shape
        self.obs_dim = int(np.prod(obs_shape))
        self.task_names = (
            tuple(f"{name}#{t}" for t in range(num_tasks)) if num_tasks > 1 else (name,)
        )
        self.num_envs = num_envs
        self.num_tasks = num_tasks
        self.task_ids = np.repeat(np.arange(num_tasks, dtype=np.int32), num_envs // num_tasks)
        self.max_episode_steps = int(self.params.max_steps_in_episode)

    def _obs(self, obs: Array) -> Array:
        return obs.reshape(self.num_envs, self.obs_dim).astype(jnp.float32)

    def scale_actions(self, actions: Array) -> Array:
        """``[-1, 1]`` -> ``[low, high]`` (clipped first), reshaped for the gymnax env."""
        a = jnp.clip(actions.reshape(self.num_envs, self.action_dim), -1.0, 1.0)
        a = self.low + 0.5 * (a + 1.0) * (self.high - self.low)
        return a.reshape(self.num_envs, *self.action_shape)

    def reset(self, key: Array) -> tuple[Array, Any]:
        keys = jax.random.split(key, self.num_envs)
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        return self._obs(obs), state

    def step(self, key: Array, state: Any, actions: Array) -> EnvStep:
        keys = jax.random.split(key, self.num_envs)
        step = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))
        obs, state, reward, terminated, truncated, info = step(
            keys, state, self.scale_actions(actions), self.params
        )
        terminated = jnp.asarray(terminated, bool)
        return EnvStep(
            obs=self._obs(obs),
            state=state,
            reward=jnp.asarray(reward, jnp.float32).reshape(self.num_envs),
            terminated=terminated,
            truncated=jnp.asarray(truncated, bool) & ~terminated,
            final_obs=self._obs(info["final_observation"]),
            success=jnp.zeros(self.num_envs, bool),
        )
