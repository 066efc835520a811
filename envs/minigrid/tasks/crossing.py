"""SimpleCrossingS<N>N<k> / LavaCrossing (minigrid.envs.CrossingEnv): cross k walls to the goal.

MiniGrid shuffles the candidate rivers (vertical at even columns, horizontal at even rows), keeps
k, then shuffles the order of crossings and opens one gap per crossing in the current band. The
same draws are made here with uniform permutations and integers on dynamic bounds.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from envs.minigrid.constants import EMPTY_CELL, GOAL_CELL, LAVA_CELL, WALL_CELL
from envs.minigrid.engine import Layout, TaskSpec
from envs.minigrid.layout import (
    NO_MARKS,
    draws,
    put,
    uniform_int,
    uniform_permutation,
    walled_grid,
)


def make_crossing(size: int, num_crossings: int, obstacle: str, best_return: float) -> TaskSpec:
    """Crossing on a size x size grid (odd size), horizon 4 * size**2; obstacle "wall" or "lava"."""
    obstacle_cell = {"wall": WALL_CELL, "lava": LAVA_CELL}[obstacle]
    positions = np.arange(2, size - 2, 2)
    river_vertical = np.concatenate([np.ones_like(positions), np.zeros_like(positions)]).astype(
        bool
    )
    river_pos = np.concatenate([positions, positions])
    last = size - 1

    def generate(key: Array) -> Layout:
        u = draws(key, len(river_pos) + 2 * num_crossings)
        u_rivers, u_path = u[: len(river_pos)], u[len(river_pos) : len(river_pos) + num_crossings]
        u_gaps = u[len(river_pos) + num_crossings :]
        base = walled_grid(size, size)
        base[size - 2, size - 2] = GOAL_CELL
        grid = jnp.asarray(base)
        chosen = uniform_permutation(u_rivers)[:num_crossings]
        is_v = jnp.asarray(river_vertical)[chosen]
        pos = jnp.asarray(river_pos)[chosen]
        rows = jnp.arange(size)[:, None]
        cols = jnp.arange(size)[None, :]
        inner = (rows >= 1) & (rows <= size - 2) & (cols >= 1) & (cols <= size - 2)
        v_cols = jnp.any((cols[..., None] == pos) & is_v, axis=-1)
        h_rows = jnp.any((rows[..., None] == pos) & ~is_v, axis=-1)
        obstacle_mask = inner & (v_cols | h_rows)
        grid = jnp.where(obstacle_mask[..., None], jnp.asarray(obstacle_cell), grid)
        # limits_v: x of vertical rivers (sorted), limits_h: y of horizontal ones, `last`-padded.
        limits_v = jnp.concatenate(
            [jnp.array([0]), jnp.sort(jnp.where(is_v, pos, last)), jnp.array([last])]
        )
        limits_h = jnp.concatenate(
            [jnp.array([0]), jnp.sort(jnp.where(is_v, last, pos)), jnp.array([last])]
        )
        n_v = jnp.sum(is_v)
        # path: n_v "h" steps (cross a vertical river) then the "v" steps, shuffled.
        crosses_vertical = (jnp.arange(num_crossings) < n_v)[uniform_permutation(u_path)]
        room_i = jnp.zeros((), jnp.int32)
        room_j = jnp.zeros((), jnp.int32)
        for step in range(num_crossings):
            in_band_y = uniform_int(u_gaps[step], limits_h[room_j] + 1, limits_h[room_j + 1])
            in_band_x = uniform_int(u_gaps[step], limits_v[room_i] + 1, limits_v[room_i + 1])
            h_step = crosses_vertical[step]
            gap_x = jnp.where(h_step, limits_v[room_i + 1], in_band_x)
            gap_y = jnp.where(h_step, in_band_y, limits_h[room_j + 1])
            grid = put(grid, jnp.stack([gap_y, gap_x]), EMPTY_CELL)
            room_i = room_i + h_step
            room_j = room_j + ~h_step
        return Layout(
            grid=grid, agent_pos=jnp.array([1, 1]), agent_dir=jnp.array(0), marks=NO_MARKS
        )

    kind = "SimpleCrossing" if obstacle == "wall" else "LavaCrossing"
    return TaskSpec(
        name=f"{kind}S{size}N{num_crossings}", height=size, width=size, max_steps=4 * size**2,
        best_return=best_return, generate=generate,
    )  # fmt: skip
