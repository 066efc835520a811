"""RedBlueDoors-NxN (minigrid.envs.RedBlueDoorEnv): open the red door, then the blue one.

Opening the blue door first, or opening the red door while the blue one is open, ends the
episode with reward 0. `marks` holds the red door's and the blue door's cells.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from envs.minigrid.constants import BLUE, CLOSED, DOOR, OPEN, RED
from envs.minigrid.engine import EnvParams, EnvState, Layout, TaskSpec, success_reward
from envs.minigrid.layout import (
    draws,
    put,
    random_direction,
    rect_mask,
    sample_free_cell,
    uniform_int,
    walled_grid,
)


def _door_open(state: EnvState, which: int) -> Array:
    row, col = state.marks[which, 0], state.marks[which, 1]
    return state.grid[row, col, 2] == OPEN


def _after_step(
    before: EnvState, after: EnvState, reward: Array, terminated: Array, params: EnvParams
) -> tuple[Array, Array]:
    """RedBlueDoorEnv.step's rule on top of the base step."""
    red_before, blue_before = _door_open(before, 0), _door_open(before, 1)
    red_after, blue_after = _door_open(after, 0), _door_open(after, 1)
    wrong_red = ~blue_after & red_after & blue_before
    success = blue_after & red_before
    reward = jnp.where(
        success, success_reward(after.step_count, params.max_steps),
        jnp.where(blue_after | wrong_red, 0.0, reward),
    )  # fmt: skip
    return reward, terminated | blue_after | wrong_red


def make_red_blue_doors(size: int) -> TaskSpec:
    """RedBlueDoors: a size x size room inside a 2*size x size grid, horizon 20 * size**2."""
    height, width = size, 2 * size
    room_col = size // 2

    def generate(key: Array) -> Layout:
        u_agent, u_dir, u_red, u_blue = draws(key, 4)
        base = walled_grid(height, width)
        base[0, room_col : room_col + size] = base[size - 1, room_col : room_col + size] = 2, 5, 0
        base[:, room_col] = base[:, room_col + size - 1] = 2, 5, 0
        grid = jnp.asarray(base)
        room = rect_mask((height, width), 0, room_col, size, size)
        agent = sample_free_cell(u_agent, grid, room)
        direction = random_direction(u_dir)
        red = jnp.stack([uniform_int(u_red, 1, size - 1), jnp.int32(room_col)])
        grid = put(grid, red, jnp.array([DOOR, RED, CLOSED]))
        blue_col = jnp.int32(room_col + size - 1)
        blue = jnp.stack([uniform_int(u_blue, 1, size - 1), blue_col])
        grid = put(grid, blue, jnp.array([DOOR, BLUE, CLOSED]))
        return Layout(grid=grid, agent_pos=agent, agent_dir=direction, marks=jnp.stack([red, blue]))

    return TaskSpec(
        name=f"RedBlueDoors-{size}x{size}", height=height, width=width, max_steps=20 * size**2,
        best_return=0.9900, generate=generate, after_step=_after_step,
    )  # fmt: skip
