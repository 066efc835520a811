"""MemoryS<N> (minigrid.envs.MemoryEnv): see an object in the start room, walk down the hallway,
and step next to the matching one of two objects at its end.

Stepping next to the other object ends the episode with reward 0 (the "wrong object"). As in
MiniGrid, pickup acts as toggle. `marks` holds the success cell and the failure cell.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from envs.minigrid.constants import BALL, GREEN, KEY, WALL_CELL
from envs.minigrid.engine import EnvParams, EnvState, Layout, TaskSpec, success_reward
from envs.minigrid.layout import draws, put, uniform_int, walled_grid


def _after_step(
    before: EnvState, after: EnvState, reward: Array, terminated: Array, params: EnvParams
) -> tuple[Array, Array]:
    """MemoryEnv.step's rule: reaching the success cell pays, the failure cell ends at 0."""
    del before
    success = jnp.all(after.agent_pos == after.marks[0])
    failure = jnp.all(after.agent_pos == after.marks[1])
    reward = jnp.where(success, success_reward(after.step_count, params.max_steps), reward)
    reward = jnp.where(failure, 0.0, reward)
    return reward, terminated | success | failure


def _base_grid(size: int) -> np.ndarray:
    grid = walled_grid(size, size)
    mid = size // 2
    upper, lower = mid - 2, mid + 2
    hallway_end = size - 3
    grid[upper, 1:5] = grid[lower, 1:5] = WALL_CELL
    grid[upper + 1, 4] = grid[lower - 1, 4] = WALL_CELL
    grid[upper + 1, 5:hallway_end] = grid[lower - 1, 5:hallway_end] = WALL_CELL
    grid[:, hallway_end + 2] = WALL_CELL
    grid[:, hallway_end] = WALL_CELL
    grid[mid, hallway_end] = (1, 0, 0)
    return grid


def make_memory(size: int) -> TaskSpec:
    """Memory on a size x size grid (odd size, fixed hallway length), horizon 5 * size**2."""
    mid = size // 2
    hallway_end = size - 3
    base = _base_grid(size)

    def generate(key: Array) -> Layout:
        u_agent, u_start, u_order = draws(key, 3)
        grid = jnp.asarray(base)
        agent = jnp.stack([jnp.int32(mid), uniform_int(u_agent, 1, hallway_end + 1)])
        start_obj = jnp.where(u_start < 0.5, KEY, BALL)
        first_obj = jnp.where(u_order < 0.5, BALL, KEY)
        second_obj = KEY + BALL - first_obj
        grid = put(grid, (mid - 1, 1), jnp.stack([start_obj, GREEN, 0]))
        grid = put(grid, (mid - 2, hallway_end + 1), jnp.stack([first_obj, GREEN, 0]))
        grid = put(grid, (mid + 2, hallway_end + 1), jnp.stack([second_obj, GREEN, 0]))
        top_cell = jnp.array([mid - 1, hallway_end + 1])
        bottom_cell = jnp.array([mid + 1, hallway_end + 1])
        matches_top = start_obj == first_obj
        marks = jnp.where(
            matches_top, jnp.stack([top_cell, bottom_cell]), jnp.stack([bottom_cell, top_cell])
        )
        return Layout(grid=grid, agent_pos=agent, agent_dir=jnp.array(0), marks=marks)

    return TaskSpec(
        name=f"MemoryS{size}", height=size, width=size, max_steps=5 * size**2,
        best_return=0.9777, generate=generate, pickup_is_toggle=True, after_step=_after_step,
    )  # fmt: skip
