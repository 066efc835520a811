"""Our tasks under gymnax 1.0.1's own `step` and `LogWrapper`, unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.wrappers.purerl import LogWrapper

from envs.minigrid.gymnax_adapter import make_gymnax
from envs.minigrid.oracle import oracle_actions


def test_log_wrapper_runs_an_oracle_episode() -> None:
    env = make_gymnax("LavaGapS7")
    params = env.default_params
    assert env.action_space(params).n == 7 and env.observation_space(params).shape == (7, 7, 3)
    wrapped = LogWrapper(env)
    _, state = wrapped.reset(jax.random.key(0), params)
    actions = oracle_actions("LavaGapS7", state.env_state)
    for i, a in enumerate(actions):
        last_state = state
        _, state, reward, terminated, truncated, info = wrapped.step(
            jax.random.key(i + 1), state, jnp.int32(a), params
        )
    expected = 1 - 0.9 * len(actions) / 196
    assert bool(terminated) and not bool(truncated)
    assert float(reward) == pytest.approx(expected, rel=1e-6)
    assert float(info["returned_episode_returns"]) == pytest.approx(expected, rel=1e-6)
    assert int(info["returned_episode_lengths"]) == len(actions)
    # gymnax's autoreset: a fresh episode, with the terminal view in final_observation.
    assert int(state.env_state.step_count) == 0
    final = env.env.step_env(jax.random.key(0), last_state.env_state, actions[-1])[0]
    np.testing.assert_array_equal(info["final_observation"], final)


def test_truncation_reported_by_gymnax_step() -> None:
    env = make_gymnax("DistShift1")
    params = env.default_params.replace(max_steps=jnp.int32(2))
    _, state = env.reset(jax.random.key(0), params)
    _, state, _, terminated, truncated, _ = env.step(jax.random.key(1), state, 0, params)
    assert not bool(terminated) and not bool(truncated)
    _, _, _, terminated, truncated, _ = env.step(jax.random.key(2), state, 0, params)
    assert not bool(terminated) and bool(truncated)
