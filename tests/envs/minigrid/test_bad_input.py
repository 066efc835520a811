"""Bad input fails early, with a message naming the field and the allowed values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from envs.minigrid import EnvParams, make, make_suite
from envs.minigrid.save_start_pngs import save_start_pngs


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match=r"task must be one of \['DoorKey-6x6'"):
        make("DoorKey-5x5")
    assert make("MiniGrid-DoorKey-6x6-v0") is make("DoorKey-6x6")


def test_unknown_suite_or_task_in_suite() -> None:
    with pytest.raises(ValueError, match=r"suite must be one of \['MT3', 'MT5', 'MT7'\]"):
        make_suite("MT4", 1)
    with pytest.raises(ValueError, match="task must be one of"):
        make_suite(["LavaGapS7", "Nope"], 1)
    with pytest.raises(ValueError, match="distinct"):
        make_suite(["LavaGapS7", "LavaGapS7"], 1)


@pytest.mark.parametrize("count", [0, -3])
def test_non_positive_env_count(count: int) -> None:
    with pytest.raises(ValueError, match=r"num_envs_per_task must be a positive int \(>= 1\)"):
        make_suite("MT3", count)


@pytest.mark.parametrize("count", [2.0, "4", True])
def test_non_integer_env_count(count) -> None:
    with pytest.raises(TypeError, match="num_envs_per_task must be a positive int"):
        make_suite("MT3", count)


def test_wrong_action_shape_for_suite() -> None:
    suite = make_suite(["DistShift1"], 2)
    _, state = jax.eval_shape(suite.reset, jax.random.key(0))
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\)"):
        suite.step(jax.random.key(0), state, jnp.zeros(3, jnp.int32))


def test_action_out_of_range_under_jax_checks() -> None:
    env = make("DistShift1")
    _, state = env.reset(jax.random.key(0))
    with jax.enable_checks(True):
        step = jax.jit(env.step)
        step(jax.random.key(0), state, jnp.int32(6))  # in range: fine
        with pytest.raises(Exception, match=r"action must be an integer in \[0, 6\]"):
            jax.block_until_ready(step(jax.random.key(0), state, jnp.int32(7)))
        with pytest.raises(Exception, match=r"action must be an integer in \[0, 6\]"):
            jax.block_until_ready(step(jax.random.key(0), state, jnp.int32(-1)))


@pytest.mark.parametrize("max_steps", [0, -5])
def test_non_positive_horizon(max_steps: int) -> None:
    env = make("DistShift1")
    _, state = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"EnvParams.max_steps must be a positive int \(>= 1\)"):
        env.step(jax.random.key(0), state, 0, EnvParams(max_steps=max_steps))
    # A traced horizon is checked at run time under jax.enable_checks.
    with jax.enable_checks(True), pytest.raises(Exception, match=r"EnvParams\.max_steps"):
        params = EnvParams(max_steps=jnp.int32(max_steps))
        jax.block_until_ready(jax.jit(env.step)(jax.random.key(0), state, 0, params))


def test_png_tile_size() -> None:
    with pytest.raises(ValueError, match="tile_size must be >= 4"):
        save_start_pngs("/tmp/unused", tile_size=2)
