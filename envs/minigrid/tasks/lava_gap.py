"""LavaGapS<N> (minigrid.envs.LavaGapEnv): cross a lava column through its one gap to the goal."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from envs.minigrid.constants import EMPTY_CELL, GOAL_CELL, LAVA_CELL
from envs.minigrid.engine import Layout, TaskSpec
from envs.minigrid.layout import NO_MARKS, draws, put, uniform_int, walled_grid


def make_lava_gap(size: int) -> TaskSpec:
    """LavaGap on a size x size grid, horizon 4 * size**2; the agent starts at (1, 1), east."""

    def generate(key: Array) -> Layout:
        u_col, u_row = draws(key, 2)
        grid = jnp.asarray(walled_grid(size, size))
        grid = put(grid, (size - 2, size - 2), GOAL_CELL)
        gap_col = uniform_int(u_col, 2, size - 2)
        gap_row = uniform_int(u_row, 1, size - 1)
        rows = jnp.arange(size)[:, None]
        cols = jnp.arange(size)[None, :]
        lava = (cols == gap_col) & (rows >= 1) & (rows <= size - 2)
        grid = jnp.where(lava[..., None], jnp.asarray(LAVA_CELL), grid)
        grid = put(grid, jnp.stack([gap_row, gap_col]), EMPTY_CELL)
        return Layout(
            grid=grid, agent_pos=jnp.array([1, 1]), agent_dir=jnp.array(0), marks=NO_MARKS
        )

    return TaskSpec(
        name=f"LavaGapS{size}", height=size, width=size, max_steps=4 * size**2,
        best_return=0.9633, generate=generate,
    )  # fmt: skip
