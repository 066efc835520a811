"""Differential tests: our JAX tasks against the reference `minigrid` package, step by step.

Both environments start from the same state (the reference layout copied into ours, or ours into
the reference), replay the same actions, and must agree at every step on the observation, reward,
termination, truncation, and on the full grid, agent pose and carried object.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from minigrid_reference import (
    load_into_reference,
    make_reference,
    reference_grid,
    state_from_reference,
)
from minigrid_testing import batched_reset_fn, observe_fn, pad_actions, rollout_fn

from envs.minigrid import TASK_NAMES, EnvParams, make
from envs.minigrid.constants import BLUE, DOOR, OPEN, RED
from envs.minigrid.oracle import oracle_actions, plan_path

LENGTH = 64  # one compiled rollout length per task, for every sequence
LAVA_TASKS = ("LavaGapS7", "DistShift1")


def replay(task: str, ref, state, actions: list[int], max_steps: int) -> tuple[float, bool, bool]:
    """Step both envs through `actions` (stopping at the reference's episode end) and compare."""
    ref.max_steps = max_steps
    outs = rollout_fn(task)(state, pad_actions(actions, LENGTH), EnvParams(jnp.int32(max_steps)))
    obs, rew, term, trunc, grid, pos, direction, carrying = (np.asarray(x) for x in outs)
    reward, terminated, truncated = 0.0, False, False
    for t, action in enumerate(actions):
        ref_obs, reward, terminated, truncated, _ = ref.step(action)
        where = f"{task} step {t} action {action}"
        np.testing.assert_array_equal(obs[t], ref_obs["image"], err_msg=where)
        np.testing.assert_array_equal(grid[t], reference_grid(ref), err_msg=where)
        assert tuple(pos[t]) == (ref.agent_pos[1], ref.agent_pos[0]), where
        assert direction[t] == ref.agent_dir, where
        ref_carry = (1, 0, 0) if ref.carrying is None else ref.carrying.encode()
        assert tuple(carrying[t]) == tuple(ref_carry), where
        np.testing.assert_allclose(rew[t], reward, rtol=1e-6, atol=1e-7, err_msg=where)
        assert bool(term[t]) == terminated and bool(trunc[t]) == truncated, where
        if terminated or truncated:
            break
    return float(reward), bool(terminated), bool(truncated)


def reference_start(task: str, seed: int):
    """The reference env reset with `seed`, and the same state in our representation."""
    ref = make_reference(task)
    ref_obs, _ = ref.reset(seed=seed)
    state = state_from_reference(task, ref)
    np.testing.assert_array_equal(np.asarray(observe_fn(task)(state)), ref_obs["image"])
    return ref, state


@pytest.mark.parametrize("task", TASK_NAMES)
def test_random_actions_match_reference(task: str) -> None:
    rng = np.random.default_rng(0)
    horizon = make(task).spec.max_steps
    for seed in range(16):
        ref, state = reference_start(task, seed)
        # Short horizons on half the episodes make truncation (and its interplay) happen.
        max_steps = horizon if seed % 2 == 0 else int(rng.integers(5, LENGTH))
        replay(task, ref, state, rng.integers(0, 7, LENGTH).tolist(), max_steps)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_oracle_actions_match_reference_and_succeed(task: str) -> None:
    rng = np.random.default_rng(1)
    horizon = make(task).spec.max_steps
    for seed in range(4):
        ref, state = reference_start(task, 100 + seed)
        actions = oracle_actions(task, state)
        reward, terminated, _ = replay(task, ref, state, actions, horizon)
        assert terminated and reward == pytest.approx(1 - 0.9 * len(actions) / horizon)
        # A partial solution then random actions: keys held, doors opened and closed, drops.
        ref, state = reference_start(task, 200 + seed)
        prefix = oracle_actions(task, state)[: int(rng.integers(0, 12))]
        replay(task, ref, state, prefix + rng.integers(0, 7, LENGTH - len(prefix)).tolist(), 60)


@pytest.mark.parametrize("task", ["RedBlueDoors-6x6", "MemoryS11", *LAVA_TASKS])
def test_failures_match_reference(task: str) -> None:
    """Blue door first, the wrong Memory object, stepping into lava: terminated, reward 0."""
    for seed in range(3):
        ref, state = reference_start(task, 300 + seed)
        actions = oracle_actions(task, state, wrong=True)
        reward, terminated, _ = replay(task, ref, state, actions, make(task).spec.max_steps)
        assert terminated and reward == 0.0


@pytest.mark.parametrize("task", TASK_NAMES)
def test_our_layouts_run_identically_in_reference(task: str) -> None:
    """Our generator's start states, loaded into the reference, behave the same there."""
    env = make(task)
    rng = np.random.default_rng(2)
    _, states = batched_reset_fn(task)(jax.random.split(jax.random.key(3), 16))
    for i in range(8):
        state = jax.tree.map(lambda x, i=i: x[i], states)
        ref = make_reference(task)
        ref.reset(seed=0)
        load_into_reference(task, ref, state)
        np.testing.assert_array_equal(observe_fn(task)(state), ref.gen_obs()["image"])
        actions = oracle_actions(task, state) if i < 2 else rng.integers(0, 7, LENGTH).tolist()
        replay(task, ref, state, actions, env.spec.max_steps)


def test_red_after_blue_open_fails_like_reference() -> None:
    """RedBlueDoors: opening the red door while the blue one is already open ends at 0."""
    task = "RedBlueDoors-6x6"
    ref, state = reference_start(task, 7)
    blue = np.asarray(state.marks[1])
    state = state.replace(
        grid=state.grid.at[blue[0], blue[1]].set(jnp.array([DOOR, BLUE, OPEN], jnp.uint8))
    )
    load_into_reference(task, ref, state)
    grid = np.asarray(state.grid)
    assert grid[tuple(np.asarray(state.marks[0]))][1] == RED
    pose = (*np.asarray(state.agent_pos).tolist(), int(state.agent_dir))
    path, _ = plan_path(grid, pose, tuple(np.asarray(state.marks[0]).tolist()), face=True)
    reward, terminated, _ = replay(task, ref, state, [*path, 5], 720)
    assert terminated and reward == 0.0


@pytest.mark.parametrize("task", TASK_NAMES)
def test_observation_is_what_img_obs_wrapper_returns(task: str) -> None:
    """The literal ImgObsWrapper output after reset and one step, for each task."""
    import gymnasium as gym
    from minigrid.wrappers import ImgObsWrapper

    wrapped = ImgObsWrapper(gym.make(f"MiniGrid-{task}-v0"))
    obs, _ = wrapped.reset(seed=42)
    state = state_from_reference(task, wrapped.unwrapped)
    np.testing.assert_array_equal(observe_fn(task)(state), obs)
    obs, *_ = wrapped.step(1)
    params = EnvParams(jnp.int32(make(task).spec.max_steps))
    ours = rollout_fn(task)(state, pad_actions([1], LENGTH), params)[0][0]
    np.testing.assert_array_equal(ours, obs)
