"""The scripted BFS oracle solves every task from our random starts; its return is the formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from minigrid_testing import batched_reset_fn, pad_actions, rollout_fn

from envs.minigrid import TASK_NAMES, EnvParams, make
from envs.minigrid.oracle import oracle_actions

LENGTH = 64


@pytest.mark.parametrize("task", TASK_NAMES)
def test_oracle_reaches_goal_from_random_starts(task: str) -> None:
    env = make(task)
    horizon = env.spec.max_steps
    _, states = batched_reset_fn(task)(jax.random.split(jax.random.key(5), 16))
    for i in range(16):
        state = jax.tree.map(lambda x, i=i: x[i], states)
        actions = oracle_actions(task, state)
        params = EnvParams(jnp.int32(horizon))
        _, rewards, terminated, truncated, *_ = rollout_fn(task)(
            state, pad_actions(actions, LENGTH), params
        )
        end = len(actions) - 1
        assert bool(terminated[end]) and not np.any(np.asarray(terminated[:end]))
        assert not np.any(np.asarray(truncated[: end + 1]))
        episode_return = float(np.sum(np.asarray(rewards[: end + 1])))
        assert episode_return == pytest.approx(1 - 0.9 * len(actions) / horizon, rel=1e-6)
