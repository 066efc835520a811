"""MiniGrid's 7x7x3 egocentric symbolic observation, with its line-of-sight occlusion.

Reproduces `MiniGridEnv.gen_obs()["image"]` (what `ImgObsWrapper` returns): the array is indexed
`[view_x, view_y, channel]`, the agent sits at view cell (3, 6) looking "up" the view, cells off the
map read as grey walls, cells hidden by `Grid.process_vis` read `(0, 0, 0)` (unseen), and the
agent's own cell shows what it carries (or empty).

`process_vis` is a sequential sweep in MiniGrid. Row by row (from the agent's row upwards) it is
equivalent to: spread visibility left-to-right, then right-to-left, through transparent cells; then
make visible, in the row above, the three cells around every visible transparent cell. Both sweeps
are written here as 7x7 boolean reachability products, so the whole view is branch-free.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from envs.minigrid.constants import CLOSED, DIR_TO_DELTA, DOOR, LOCKED, VIEW_SIZE, WALL, WALL_CELL

_HALF = VIEW_SIZE // 2
# view_x[i, j] = i, view_y[i, j] = j, in MiniGrid's image layout.
_VIEW_X, _VIEW_Y = np.meshgrid(np.arange(VIEW_SIZE), np.arange(VIEW_SIZE), indexing="ij")
_LOWER = np.tril(np.ones((VIEW_SIZE, VIEW_SIZE), bool))  # [i, k]: k <= i


def view_cells(grid: Array, agent_pos: Array, agent_dir: Array) -> Array:
    """Cells of the 7x7 view (no occlusion), `[view_x, view_y, 3]`; off-map cells are walls."""
    height, width = grid.shape[:2]
    fwd = jnp.asarray(DIR_TO_DELTA)[agent_dir]  # (d_row, d_col)
    right = jnp.stack([fwd[1], -fwd[0]])  # clockwise of forward, in (row, col)
    ahead = (VIEW_SIZE - 1) - _VIEW_Y
    side = _VIEW_X - _HALF
    rows = agent_pos[0] + fwd[0] * ahead + right[0] * side
    cols = agent_pos[1] + fwd[1] * ahead + right[1] * side
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    cells = grid[jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)]
    return jnp.where(inside[..., None], cells, jnp.asarray(WALL_CELL))


def see_behind(cells: Array) -> Array:
    """Whether light passes through each encoded cell (walls and shut doors block it)."""
    obj, state = cells[..., 0], cells[..., 2]
    shut_door = (obj == DOOR) & ((state == CLOSED) | (state == LOCKED))
    return ~((obj == WALL) | shut_door)


def _sweep_row(seed: Array, clear: Array) -> Array:
    """Row visibility after MiniGrid's left-to-right then right-to-left propagation."""
    blocked = (~clear).astype(jnp.int32)
    before = jnp.cumsum(blocked) - blocked  # blockers strictly left of i
    # Left-to-right: i is reached from a visible k <= i when no blocker lies in [k, i).
    same_run = before[:, None] == before[None, :]
    left = jnp.any(_LOWER & same_run & seed[None, :], axis=1)
    # Right-to-left: i is reached from a visible k >= i when no blocker lies in (i, k].
    upto = jnp.cumsum(blocked)
    same_run = upto[:, None] == upto[None, :]
    return jnp.any(_LOWER.T & same_run & left[None, :], axis=1)


def visibility_mask(cells: Array) -> Array:
    """MiniGrid's `Grid.process_vis` for the agent at view cell (3, 6): bool `[view_x, view_y]`."""
    clear = see_behind(cells)
    seed = jnp.zeros(VIEW_SIZE, bool).at[_HALF].set(True)
    rows = [None] * VIEW_SIZE
    for j in reversed(range(VIEW_SIZE)):
        row = _sweep_row(seed, clear[:, j])
        rows[j] = row
        lit = row & clear[:, j]
        seed = lit | jnp.roll(lit, 1).at[0].set(False) | jnp.roll(lit, -1).at[-1].set(False)
    return jnp.stack(rows, axis=1)


def egocentric_observation(
    grid: Array, agent_pos: Array, agent_dir: Array, carrying: Array, see_through_walls: bool
) -> Array:
    """The uint8 `(7, 7, 3)` image MiniGrid's `gen_obs` returns for this state."""
    cells = view_cells(grid, agent_pos, agent_dir)
    if not see_through_walls:
        cells = jnp.where(visibility_mask(cells)[..., None], cells, jnp.uint8(0))
    return cells.at[_HALF, VIEW_SIZE - 1].set(carrying).astype(jnp.uint8)
