"""MultiRoom-N2-S<k> (minigrid.envs.MultiRoomEnv with two rooms): open the door, reach the goal.

MiniGrid draws the first room's corner and size, then up to 8 candidate exits (a wall other than
the entry wall, a cell on it, the next room's size and offset) and keeps the first candidate whose
room fits in the 25x25 map; with two rooms there is no overlap test. If none fits it starts over.
Here room 1 is drawn from its law given that it fits (see `_first_room`), then 2 rounds of 8
candidates at once; the first round with a fitting candidate is kept, repeating in a `while_loop`
if none fits, which has the same law. The map has no outer
wall: only the rooms' walls exist.
`marks` holds the door cell and the goal cell.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from envs.minigrid.constants import CLOSED, DOOR, GOAL_CELL, NUM_COLOURS, WALL_CELL
from envs.minigrid.engine import Layout, TaskSpec
from envs.minigrid.layout import (
    draws,
    empty_grid,
    put,
    random_direction,
    uniform_int,
)

_MAP = 25
_TRIES = 8
_MIN_ROOM = 4
_ROUND_DRAWS = 4 + 7 * _TRIES
# Rounds drawn together; a round fails only with room 1 in a corner, so the loop rarely repeats.
_ROUNDS = 2


def _fits(top_x: Array, top_y: Array, size_x: Array, size_y: Array) -> Array:
    """MultiRoomEnv._placeRoom's bounds test (note the strict test on y)."""
    return (top_x >= 0) & (top_y >= 0) & (top_x + size_x <= _MAP) & (top_y + size_y < _MAP)


def _first_room(u: Array, max_room: int) -> tuple[Array, Array]:
    """Room 1's (size_x, size_y) and (x, y) drawn as MiniGrid's accepted first rooms are: MiniGrid
    draws x, y uniform in [0, 23) and sizes uniform, and retries when the room does not fit; given
    that it fits, sizes are weighted by their number of fitting corners and the corner is uniform
    among those. Drawing that directly removes the main cause of retries."""
    sizes = np.arange(_MIN_ROOM, max_room + 1)
    fits_x = np.minimum(_MAP - 2, _MAP + 1 - sizes)  # x <= 25 - size_x, x in [0, 23)
    fits_y = np.minimum(_MAP - 2, _MAP - sizes)  # y + size_y < 25
    picked = []
    for k, fits in enumerate((fits_x, fits_y)):
        cdf = np.cumsum(fits) / fits.sum()
        index = jnp.sum(u[k] >= cdf[:-1])
        picked.append((jnp.asarray(sizes)[index], jnp.asarray(fits)[index]))
    size1 = jnp.stack([picked[0][0], picked[1][0]])
    top1 = jnp.stack([uniform_int(u[2], 0, picked[0][1]), uniform_int(u[3], 0, picked[1][1])])
    return size1, top1


def _draw_rooms(u: Array, max_room: int) -> tuple[Array, Array, Array, Array]:
    """One round from `_ROUND_DRAWS` uniforms: room 1 (x, y, sx, sy), 8 candidate room-2s and
    doors; returns (fits, room1, room2, door) for the first candidate that fits."""
    size1, top1 = _first_room(u[0:4], max_room)
    c = u[4:].reshape(7, _TRIES)
    # Candidate exits: wall in {0 (east), 1 (south), 3 (north)}; entry wall of room 1 is 2 (west).
    wall = jnp.array([0, 1, 3])[uniform_int(c[0], 0, 3)]
    along_y = top1[1] + uniform_int(c[1], 1, size1[1] - 1)
    along_x = top1[0] + uniform_int(c[2], 1, size1[0] - 1)
    door_x = jnp.where(wall == 0, top1[0] + size1[0] - 1, along_x)
    door_y = jnp.where(wall == 0, along_y, jnp.where(wall == 1, top1[1] + size1[1] - 1, top1[1]))
    size2_x = uniform_int(c[3], _MIN_ROOM, max_room + 1)
    size2_y = uniform_int(c[4], _MIN_ROOM, max_room + 1)
    offset_y = uniform_int(c[5], door_y - size2_y + 2, door_y)
    offset_x = uniform_int(c[6], door_x - size2_x + 2, door_x)
    top2_x = jnp.where(wall == 0, door_x, offset_x)
    top2_y = jnp.where(wall == 0, offset_y, jnp.where(wall == 1, door_y, door_y - size2_y + 1))
    fit2 = _fits(top2_x, top2_y, size2_x, size2_y)
    first = jnp.argmax(fit2)
    ok = jnp.any(fit2)
    room1 = jnp.concatenate([top1, size1])
    room2 = jnp.stack([top2_x[first], top2_y[first], size2_x[first], size2_y[first]])
    door = jnp.stack([door_y[first], door_x[first]])  # (row, col)
    return ok, room1, room2, door


def _draw_first_fit(key: Array, max_room: int) -> tuple[Array, Array, Array, Array]:
    """`_ROUNDS` independent rounds at once; the first that fits (ok False if none did)."""
    u = draws(key, _ROUNDS * _ROUND_DRAWS).reshape(_ROUNDS, _ROUND_DRAWS)
    ok, room1, room2, door = jax.vmap(_draw_rooms, in_axes=(0, None))(u, max_room)
    first = jnp.argmax(ok)
    return ok[first], room1[first], room2[first], door[first]


def _interior_cell(room: Array, u_row: Array, u_col: Array) -> Array:
    """A uniform (row, col) inside a room given as (x, y, size_x, size_y)."""
    row = room[1] + 1 + uniform_int(u_row, 0, room[3] - 2)
    col = room[0] + 1 + uniform_int(u_col, 0, room[2] - 2)
    return jnp.stack([row, col])


def _walls(room: Array) -> Array:
    """Bool [25, 25]: the wall ring of a room given as (x, y, size_x, size_y)."""
    x, y, sx, sy = room[0], room[1], room[2], room[3]
    line = jnp.arange(_MAP)
    rows_in, cols_in = (line >= y) & (line < y + sy), (line >= x) & (line < x + sx)
    rows_edge, cols_edge = (line == y) | (line == y + sy - 1), (line == x) | (line == x + sx - 1)
    return (rows_in[:, None] & cols_edge[None, :]) | (rows_edge[:, None] & cols_in[None, :])


def make_multi_room(max_room: int) -> TaskSpec:
    """MultiRoom with exactly two rooms of side 4..max_room on a 25x25 map, horizon 2 * 20."""

    def generate(key: Array) -> Layout:
        u_colour, u_dir, *u_cells = draws(key, 6)

        def cond(carry: tuple) -> Array:
            return ~carry[1]

        def body(carry: tuple) -> tuple:
            count = carry[0] + 1
            return (count, *_draw_first_fit(jax.random.fold_in(key, count), max_room))

        init = (jnp.int32(1), *_draw_first_fit(jax.random.fold_in(key, 1), max_room))
        _, _, room1, room2, door = jax.lax.while_loop(cond, body, init)
        grid = jnp.asarray(empty_grid(_MAP, _MAP))
        walls = _walls(room1) | _walls(room2)
        grid = jnp.where(walls[..., None], jnp.asarray(WALL_CELL), grid)
        colour = uniform_int(u_colour, 0, NUM_COLOURS)
        grid = put(grid, door, jnp.stack([DOOR, colour, CLOSED]))
        # Room interiors are empty and disjoint, so MiniGrid's rejection sampling of the agent in
        # room 1 and of the goal in room 2 is a uniform interior cell of each.
        agent = _interior_cell(room1, u_cells[0], u_cells[1])
        direction = random_direction(u_dir)
        goal = _interior_cell(room2, u_cells[2], u_cells[3])
        grid = put(grid, goal, GOAL_CELL)
        return Layout(
            grid=grid, agent_pos=agent, agent_dir=direction, marks=jnp.stack([door, goal])
        )

    return TaskSpec(
        name=f"MultiRoom-N2-S{max_room}", height=_MAP, width=_MAP, max_steps=2 * 20,
        best_return=0.8875, generate=generate,
    )  # fmt: skip
