"""DoorKey-NxN (minigrid.envs.DoorKeyEnv): pick up the key, unlock the door, reach the goal."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from envs.minigrid.constants import DOOR, GOAL_CELL, KEY, LOCKED, WALL_CELL, YELLOW
from envs.minigrid.engine import Layout, TaskSpec
from envs.minigrid.layout import (
    NO_MARKS,
    draws,
    put,
    random_direction,
    rect_mask,
    sample_free_cell,
    uniform_int,
    walled_grid,
)


def make_door_key(size: int) -> TaskSpec:
    """DoorKey on a size x size grid, horizon 10 * size**2."""

    def generate(key: Array) -> Layout:
        u_split, u_agent, u_dir, u_door, u_key = draws(key, 5)
        grid = jnp.asarray(walled_grid(size, size))
        grid = put(grid, (size - 2, size - 2), GOAL_CELL)
        split = uniform_int(u_split, 2, size - 2)
        column = jnp.arange(size)[None, :] == split
        grid = jnp.where(column[..., None], jnp.asarray(WALL_CELL), grid)
        left = rect_mask((size, size), 0, 0, size, split)
        agent = sample_free_cell(u_agent, grid, left)
        direction = random_direction(u_dir)
        door_row = uniform_int(u_door, 1, size - 2)
        grid = put(grid, jnp.stack([door_row, split]), jnp.array([DOOR, YELLOW, LOCKED]))
        key_pos = sample_free_cell(u_key, grid, left, avoid=agent)
        grid = put(grid, key_pos, jnp.array([KEY, YELLOW, 0]))
        return Layout(grid=grid, agent_pos=agent, agent_dir=direction, marks=NO_MARKS)

    return TaskSpec(
        name=f"DoorKey-{size}x{size}", height=size, width=size, max_steps=10 * size**2,
        best_return=0.9725, generate=generate,
    )  # fmt: skip
