"""Multi-task suites MT3 / MT5 / MT7: a fixed number of environments per task, in one batch.

Each task's batch is stepped by its own `vmap` with its own static grid shape (no `lax.switch` over
tasks inside `vmap`, which would run every task's branch for every environment). Environments are
laid out task-major: task t owns rows `[t * n, (t + 1) * n)` of every batched output. The task id
(index and one-hot) travels beside the image, and per-task episode statistics live in fixed-shape
arrays inside the state, so the whole suite jits and vmaps (e.g. over seeds).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array

from envs.minigrid.engine import EnvState, MiniGridEnv
from envs.minigrid.registry import canonical_task_name, make

SUITES: dict[str, tuple[str, ...]] = {
    "MT3": ("LavaGapS7", "RedBlueDoors-6x6", "MemoryS11"),
    "MT5": ("DoorKey-6x6", "LavaGapS7", "RedBlueDoors-6x6", "DistShift1", "MemoryS11"),
    "MT7": (
        "DoorKey-6x6", "DistShift1", "RedBlueDoors-6x6", "LavaGapS7", "MemoryS11",
        "SimpleCrossingS9N2", "MultiRoom-N2-S4",
    ),
}  # fmt: skip


@struct.dataclass
class SuiteObs:
    """What the agent sees: MiniGrid images and which task each environment runs."""

    image: Array  # uint8 [N, 7, 7, 3]
    task_id: Array  # int32 [N]
    task_one_hot: Array  # float32 [N, T]


@struct.dataclass
class EpisodeStats:
    """Running and finished-episode statistics, fixed shape (N environments, T tasks)."""

    running_return: Array  # float32 [N], the current episode so far
    running_length: Array  # int32 [N]
    last_return: Array  # float32 [N], the most recently finished episode
    last_length: Array  # int32 [N]
    last_success: Array  # bool [N]
    episodes: Array  # int32 [T], finished episodes per task
    return_sum: Array  # float32 [T], summed over finished episodes
    length_sum: Array  # int32 [T]
    success_sum: Array  # int32 [T]
    score_sum: Array  # float32 [T], normalised score = return / best achievable return


@struct.dataclass
class SuiteState:
    """One batched EnvState per task (tuple, task order) and the episode statistics."""

    env_states: tuple[EnvState, ...]
    stats: EpisodeStats


def _check_count(num_envs_per_task: Any) -> int:
    if isinstance(num_envs_per_task, bool) or not isinstance(num_envs_per_task, int | np.integer):
        raise TypeError(
            f"num_envs_per_task must be a positive int, got {type(num_envs_per_task).__name__}"
        )
    if num_envs_per_task < 1:
        raise ValueError(
            f"num_envs_per_task must be a positive int (>= 1), got {num_envs_per_task}"
        )
    return int(num_envs_per_task)


def suite_tasks(suite: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Task names of a suite name ("MT3", "MT5", "MT7") or of an explicit list of tasks."""
    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; suite must be one of {list(SUITES)}")
        return SUITES[suite]
    tasks = tuple(canonical_task_name(t) for t in suite)
    if not tasks:
        raise ValueError("suite must name at least one task")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"suite tasks must be distinct, got {list(tasks)}")
    return tasks


class MultiTaskSuite:
    """A fixed-size multi-task batch of MiniGrid environments with a gymnax-like API."""

    def __init__(self, suite: str | tuple[str, ...] | list[str], num_envs_per_task: int) -> None:
        self.task_names = suite_tasks(suite)
        self.name = suite if isinstance(suite, str) else "+".join(self.task_names)
        self.num_envs_per_task = _check_count(num_envs_per_task)
        self.envs: tuple[MiniGridEnv, ...] = tuple(make(t) for t in self.task_names)
        self.num_tasks = len(self.envs)
        self.num_envs = self.num_tasks * self.num_envs_per_task
        self.num_actions = self.envs[0].num_actions
        self.task_ids = np.repeat(np.arange(self.num_tasks, dtype=np.int32), self.num_envs_per_task)
        self.best_returns = np.array([e.spec.best_return for e in self.envs], np.float32)

    def _obs(self, images: list[Array]) -> SuiteObs:
        ids = jnp.asarray(self.task_ids)
        return SuiteObs(
            image=jnp.concatenate(images),
            task_id=ids,
            task_one_hot=jax.nn.one_hot(ids, self.num_tasks, dtype=jnp.float32),
        )

    def _per_task(self, x: Array) -> Array:
        return x.reshape(self.num_tasks, self.num_envs_per_task)

    def reset(self, key: Array) -> tuple[SuiteObs, SuiteState]:
        """Reset every environment; statistics start empty."""
        keys = jax.random.split(key, self.num_tasks)
        images, states = [], []
        for env, k in zip(self.envs, keys, strict=True):
            obs, state = jax.vmap(env.reset)(jax.random.split(k, self.num_envs_per_task))
            images.append(obs)
            states.append(state)
        n, t = self.num_envs, self.num_tasks
        stats = EpisodeStats(
            running_return=jnp.zeros(n), running_length=jnp.zeros(n, jnp.int32),
            last_return=jnp.zeros(n), last_length=jnp.zeros(n, jnp.int32),
            last_success=jnp.zeros(n, bool), episodes=jnp.zeros(t, jnp.int32),
            return_sum=jnp.zeros(t), length_sum=jnp.zeros(t, jnp.int32),
            success_sum=jnp.zeros(t, jnp.int32),
            score_sum=jnp.zeros(t),
        )  # fmt: skip
        return self._obs(images), SuiteState(env_states=tuple(states), stats=stats)

    def step(
        self, key: Array, state: SuiteState, actions: Array
    ) -> tuple[SuiteObs, SuiteState, Array, Array, dict[str, Array]]:
        """Step all environments (autoreset in the same step); actions int [N], task-major."""
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        keys = jax.random.split(key, self.num_tasks)
        n = self.num_envs_per_task
        outs = []
        for t, (env, k) in enumerate(zip(self.envs, keys, strict=True)):
            step = jax.vmap(env.step)
            outs.append(
                step(jax.random.split(k, n), state.env_states[t], actions[t * n : (t + 1) * n])
            )
        images = [o[0] for o in outs]
        reward = jnp.concatenate([o[2] for o in outs])
        done = jnp.concatenate([o[3] for o in outs])
        info = {
            name: jnp.concatenate([o[4][name] for o in outs])
            for name in ("terminated", "truncated", "success", "terminal_observation")
        }
        stats = self._update_stats(state.stats, reward, done, info["success"])
        new_state = SuiteState(env_states=tuple(o[1] for o in outs), stats=stats)
        return self._obs(images), new_state, reward, done, info

    def _update_stats(
        self, stats: EpisodeStats, reward: Array, done: Array, success: Array
    ) -> EpisodeStats:
        ret = stats.running_return + reward
        length = stats.running_length + 1
        best = jnp.asarray(self.best_returns)
        finished = self._per_task(done)
        count = lambda x: jnp.sum(jnp.where(finished, self._per_task(x), 0), axis=1)  # noqa: E731
        return EpisodeStats(
            running_return=jnp.where(done, 0.0, ret),
            running_length=jnp.where(done, 0, length),
            last_return=jnp.where(done, ret, stats.last_return),
            last_length=jnp.where(done, length, stats.last_length),
            last_success=jnp.where(done, success, stats.last_success),
            episodes=stats.episodes + count(jnp.ones_like(length)),
            return_sum=stats.return_sum + count(ret),
            length_sum=stats.length_sum + count(length),
            success_sum=stats.success_sum + count(success.astype(jnp.int32)),
            score_sum=stats.score_sum + count(ret) / best,
        )

    def task_metrics(self, state: SuiteState) -> dict[str, Array]:
        """Per-task means over finished episodes ([T] arrays; NaN for a task with none yet)."""
        stats = state.stats
        n = stats.episodes.astype(jnp.float32)
        mean = lambda total: jnp.where(n > 0, total / jnp.maximum(n, 1.0), jnp.nan)  # noqa: E731
        return {
            "episodes": stats.episodes,
            "return": mean(stats.return_sum),
            "length": mean(stats.length_sum),
            "success": mean(stats.success_sum),
            "normalised_score": mean(stats.score_sum),
        }


def make_suite(suite: str | tuple[str, ...] | list[str], num_envs_per_task: int) -> MultiTaskSuite:
    """A suite by name ("MT3", "MT5", "MT7") or task list, with `num_envs_per_task` envs each."""
    return MultiTaskSuite(suite, num_envs_per_task)
