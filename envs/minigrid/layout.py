"""Small helpers for task generators: walled rooms and uniform placement on free cells.

MiniGrid places objects by rejection sampling (`place_obj`): uniform over the cells of a rectangle
that are empty and not under the agent. Sampling uniformly among those cells directly has the same
law and a fixed cost, which `jit` needs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from envs.minigrid.constants import EMPTY, EMPTY_CELL, WALL_CELL


def empty_grid(height: int, width: int) -> np.ndarray:
    """An all-empty encoded grid, uint8 [height, width, 3]."""
    return np.broadcast_to(EMPTY_CELL, (height, width, 3)).copy()


def wall_rect(grid: np.ndarray, row: int, col: int, height: int, width: int) -> np.ndarray:
    """MiniGrid's `Grid.wall_rect(x=col, y=row, w=width, h=height)`, on a numpy grid in place."""
    grid[row, col : col + width] = WALL_CELL
    grid[row + height - 1, col : col + width] = WALL_CELL
    grid[row : row + height, col] = WALL_CELL
    grid[row : row + height, col + width - 1] = WALL_CELL
    return grid


def walled_grid(height: int, width: int) -> np.ndarray:
    """An empty room with a wall border, as `Grid(width, height).wall_rect(0, 0, ...)`."""
    return wall_rect(empty_grid(height, width), 0, 0, height, width)


def rect_mask(shape: tuple[int, int], row: Array, col: Array, height: Array, width: Array) -> Array:
    """Bool [H, W], True inside the rectangle (dynamic corner and size)."""
    rows = jnp.arange(shape[0])[:, None]
    cols = jnp.arange(shape[1])[None, :]
    return (rows >= row) & (rows < row + height) & (cols >= col) & (cols < col + width)


def sample_free_cell(
    key: Array, grid: Array, region: Array | None = None, avoid: Array | None = None
) -> Array:
    """A uniform (row, col) among empty cells of `region`, never `avoid` (MiniGrid `place_obj`)."""
    free = grid[..., 0] == EMPTY
    if region is not None:
        free = free & region
    if avoid is not None:
        free = free.at[avoid[0], avoid[1]].set(False)
    flat = jax.random.categorical(key, jnp.where(free.reshape(-1), 0.0, -jnp.inf))
    return jnp.stack(jnp.divmod(flat, grid.shape[1])).astype(jnp.int32)


def random_direction(key: Array) -> Array:
    """A uniform direction in 0..3 (MiniGrid `place_agent(rand_dir=True)`)."""
    return jax.random.randint(key, (), 0, 4, dtype=jnp.int32)


def put(grid: Array, pos: Array, cell: Array | np.ndarray) -> Array:
    """The grid with `cell` (an encoding) at `pos` (row, col)."""
    return grid.at[pos[0], pos[1]].set(jnp.asarray(cell, jnp.uint8))


NO_MARKS = np.full((2, 2), -1, np.int32)
