"""The gymnax-style API: same-step autoreset, termination vs truncation, the reward formula."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.minigrid import EnvParams, make
from envs.minigrid.oracle import oracle_actions


@functools.cache
def _step(task: str):
    return jax.jit(make(task).step)


def _run(task: str, state, actions, params=None):
    outs = []
    for i, a in enumerate(actions):
        outs.append(_step(task)(jax.random.key(i), state, jnp.int32(a), params))
        state = outs[-1][1]
    return outs


def test_goal_step_resets_in_the_same_call() -> None:
    task = "LavaGapS7"
    env = make(task)
    _, state = env.reset(jax.random.key(0))
    actions = oracle_actions(task, state)
    outs = _run(task, state, actions)
    assert not any(bool(o[3]) for o in outs[:-1])
    obs, new_state, reward, done, info = outs[-1]
    assert bool(done) and bool(info["terminated"]) and not bool(info["truncated"])
    assert float(reward) == pytest.approx(1 - 0.9 * len(actions) / 196, rel=1e-6)
    assert bool(info["success"])
    # The returned observation and state start the next episode; the terminal view is kept.
    assert int(new_state.step_count) == 0
    np.testing.assert_array_equal(obs, env.observe(new_state))
    last = env.step_env(jax.random.key(0), outs[-2][1], actions[-1])
    np.testing.assert_array_equal(info["terminal_observation"], last[0])
    # No wasted transition: the next step already acts in the new episode.
    _, after, reward2, _, _ = _step(task)(jax.random.key(9), new_state, jnp.int32(1))
    assert int(after.step_count) == 1 and float(reward2) == 0.0
    assert int(after.agent_dir) == (int(new_state.agent_dir) + 1) % 4


def test_truncation_is_not_termination() -> None:
    task = "LavaGapS7"
    _, state = make(task).reset(jax.random.key(0))
    outs = _run(task, state, [0, 0, 0], EnvParams(max_steps=jnp.int32(3)))
    dones = [bool(o[3]) for o in outs]
    assert dones == [False, False, True]
    info = outs[-1][4]
    assert bool(info["truncated"]) and not bool(info["terminated"]) and float(outs[-1][2]) == 0.0


def test_lava_terminates_without_reward() -> None:
    task = "DistShift1"
    _, state = make(task).reset(jax.random.key(0))
    outs = _run(task, state, oracle_actions(task, state, wrong=True))
    _, _, reward, done, info = outs[-1]
    assert bool(done) and bool(info["terminated"]) and float(reward) == 0.0


def test_default_horizons_match_minigrid() -> None:
    expected = {
        "DoorKey-6x6": 360, "DistShift1": 252, "RedBlueDoors-6x6": 720, "LavaGapS7": 196,
        "MemoryS11": 605, "SimpleCrossingS9N2": 324, "MultiRoom-N2-S4": 40,
    }  # fmt: skip
    for task, horizon in expected.items():
        assert make(task).default_params.max_steps == horizon
    from minigrid_reference import make_reference

    for task in expected:
        assert make_reference(task).max_steps == expected[task]


def test_envs_package_stands_alone() -> None:
    """`envs/` imports nothing from `jaxsparse` (it could be published on its own)."""
    import pathlib
    import re

    import envs

    root = pathlib.Path(envs.__file__).parent
    offenders = [
        str(path)
        for path in root.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+jaxsparse", path.read_text(), re.M)
    ]
    assert not offenders, offenders
