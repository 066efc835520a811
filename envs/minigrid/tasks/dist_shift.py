"""DistShift<k> (minigrid.envs.DistShiftEnv): reach the goal past two fixed lava strips.

The layout is deterministic (no moving lava): DistShift1 puts the second strip on row 2,
DistShift2 on row 5. MiniGrid builds this task with `see_through_walls=True`, so its view has no
occlusion, and so does ours.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from envs.minigrid.constants import GOAL_CELL, LAVA_CELL
from envs.minigrid.engine import Layout, TaskSpec
from envs.minigrid.layout import NO_MARKS, walled_grid

_WIDTH, _HEIGHT = 9, 7


def make_dist_shift(strip2_row: int, name: str) -> TaskSpec:
    """DistShift on MiniGrid's 9x7 grid, horizon 4 * 9 * 7 = 252."""
    grid = walled_grid(_HEIGHT, _WIDTH)
    grid[1, _WIDTH - 2] = GOAL_CELL
    for i in range(_WIDTH - 6):
        grid[1, 3 + i] = LAVA_CELL
        grid[strip2_row, 3 + i] = LAVA_CELL

    def generate(key: Array) -> Layout:
        del key
        return Layout(
            grid=jnp.asarray(grid), agent_pos=jnp.array([1, 1]), agent_dir=jnp.array(0),
            marks=NO_MARKS,
        )  # fmt: skip

    return TaskSpec(
        name=name, height=_HEIGHT, width=_WIDTH, max_steps=4 * _WIDTH * _HEIGHT,
        best_return=0.9607, generate=generate, see_through_walls=True,
    )  # fmt: skip
