"""The one adapter between ``envs`` / gymnax and the algorithms: batched environments with the
``VecEnv`` interface of ``jaxsparse.algos.ppo`` and the matching networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np

from envs.minigrid import make_suite
from jaxsparse.algos.ppo import EnvStep

Array = jax.Array


class MiniGridVecEnv:
    """A MiniGrid suite (``"MT3"``, ``"MT5"``, ``"MT7"`` or a task list) as a ``VecEnv``."""

    def __init__(self, suite: str | list[str] | tuple[str, ...], num_envs_per_task: int) -> None:
        self.suite = make_suite(suite if isinstance(suite, str) else tuple(suite),
                                num_envs_per_task)  # fmt: skip
        self.task_names = self.suite.task_names
        self.num_envs = self.suite.num_envs
        self.num_tasks = self.suite.num_tasks
        self.num_actions = self.suite.num_actions
        self.task_ids = self.suite.task_ids
        self.best_returns = self.suite.best_returns
        self.max_episode_steps = max(env.spec.max_steps for env in self.suite.envs)

    def reset(self, key: Array) -> tuple[Any, Any]:
        return self.suite.reset(key)

    def step(self, key: Array, state: Any, actions: Array) -> EnvStep:
        obs, state, reward, _, info = self.suite.step(key, state, actions)
        return EnvStep(
            obs=obs,
            state=state,
            reward=reward,
            terminated=info["terminated"],
            truncated=info["truncated"],
            final_obs=obs.replace(image=info["terminal_observation"]),
            success=info["success"],
        )


class GymnaxVecEnv:
    """``num_envs`` copies of a gymnax environment (one task) as a ``VecEnv``.

    ``best_return`` normalises the score (CartPole-v1: 500, its time limit).
    """

    def __init__(self, name: str, num_envs: int, best_return: float | None = None) -> None:
        self.env, self.params = gymnax.make(name)
        self.task_names = (name,)
        self.num_envs = num_envs
        self.num_tasks = 1
        self.num_actions = self.env.action_space(self.params).n
        self.task_ids = np.zeros(num_envs, np.int32)
        self.max_episode_steps = int(self.params.max_steps_in_episode)
        best = float(self.max_episode_steps if best_return is None else best_return)
        self.best_returns = np.array([best], np.float32)

    def reset(self, key: Array) -> tuple[Array, Any]:
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)

    def step(self, key: Array, state: Any, actions: Array) -> EnvStep:
        keys = jax.random.split(key, self.num_envs)
        step = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))
        obs, state, reward, terminated, truncated, info = step(keys, state, actions, self.params)
        return EnvStep(
            obs=obs,
            state=state,
            reward=reward.astype(jnp.float32),
            terminated=jnp.asarray(terminated, bool),
            truncated=jnp.asarray(truncated, bool) & ~jnp.asarray(terminated, bool),
            final_obs=info["final_observation"],
            success=jnp.zeros(self.num_envs, bool),
        )


class FlaxAgent:
    """A Flax actor-critic module behind the ``AgentNet`` interface (``apply -> logits, value``).

    ``inputs(obs)`` maps an observation to the module's positional arguments.
    """

    def __init__(
        self,
        module: nn.Module,
        inputs: Callable[[Any], tuple[Any, ...]],
        **kwargs: Any,
    ) -> None:
        self.module = module
        self.inputs = inputs
        self.kwargs = kwargs

    def init(self, key: Array, obs: Any) -> Any:
        return self.module.init(key, *self.inputs(obs), **self.kwargs)

    def apply(self, params: Any, obs: Any, **kwargs: Any) -> Any:
        return self.module.apply(params, *self.inputs(obs), **{**self.kwargs, **kwargs})


def minigrid_inputs(obs: Any) -> tuple[Array, Array]:
    return obs.image, obs.task_id


def vector_inputs(obs: Array) -> tuple[Array]:
    return (obs,)
