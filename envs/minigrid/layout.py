"""Small helpers for task generators: walled rooms and uniform placement on free cells.

MiniGrid places objects by rejection sampling (`place_obj`): uniform over the cells of a rectangle
that are empty and not under the agent. Sampling uniformly among those cells directly has the same
law and a fixed cost, which `jit` needs.

Generators draw all their randomness as one vector of uniforms (`draws`) and turn each into an
integer, a cell or a permutation here: one PRNG call per reset instead of one per choice. Resets
run on every step (autoreset under `vmap` computes both branches), and on CPU the PRNG dominated.
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


def draws(key: Array, n: int) -> Array:
    """`n` independent uniforms in [0, 1), the randomness of one reset."""
    return jax.random.uniform(key, (n,))


def uniform_int(u: Array, low: Array | int, high: Array | int) -> Array:
    """A uniform integer in [low, high) from a uniform `u` (MiniGrid `_rand_int`)."""
    low = jnp.asarray(low, jnp.int32)
    span = jnp.asarray(high, jnp.int32) - low
    return low + jnp.minimum(jnp.floor(u * span).astype(jnp.int32), span - 1)


def uniform_permutation(u: Array) -> Array:
    """A uniform random permutation of range(len(u)) (MiniGrid `np_random.shuffle`)."""
    return jnp.argsort(u)


def sample_free_cell(
    u: Array, grid: Array, region: Array | None = None, avoid: Array | None = None
) -> Array:
    """A uniform (row, col) among empty cells of `region`, never `avoid` (MiniGrid `place_obj`)."""
    free = grid[..., 0] == EMPTY
    if region is not None:
        free = free & region
    if avoid is not None:
        free = free.at[avoid[0], avoid[1]].set(False)
    flat = free.reshape(-1)
    k = uniform_int(u, 0, jnp.sum(flat))
    index = jnp.argmax(jnp.cumsum(flat) > k)
    return jnp.stack(jnp.divmod(index, grid.shape[1])).astype(jnp.int32)


def random_direction(u: Array) -> Array:
    """A uniform direction in 0..3 (MiniGrid `place_agent(rand_dir=True)`)."""
    return uniform_int(u, 0, 4)


def put(grid: Array, pos: Array | tuple[int, int], cell: Array | np.ndarray) -> Array:
    """The grid with `cell` (an encoding) at `pos` (row, col)."""
    return grid.at[pos[0], pos[1]].set(jnp.asarray(cell, jnp.uint8))


NO_MARKS = np.full((2, 2), -1, np.int32)
