"""MultiRoom-N2-S<k> (minigrid.envs.MultiRoomEnv with two rooms): open the door, reach the goal.

MiniGrid draws the first room's corner and size, then up to 8 candidate exits (a wall other than
the entry wall, a cell on it, the next room's size and offset) and keeps the first candidate whose
room fits in the 25x25 map; with two rooms there is no overlap test. If none fits it starts over.
Here each `while_loop` round draws one first room and all 8 candidates at once and keeps the first
that fits, which has the same law. The map has no outer wall: only the rooms' walls exist.
`marks` holds the door cell and the goal cell.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from envs.minigrid.constants import CLOSED, DOOR, GOAL_CELL, NUM_COLOURS, WALL_CELL
from envs.minigrid.engine import Layout, TaskSpec
from envs.minigrid.layout import (
    empty_grid,
    put,
    random_direction,
    rect_mask,
    sample_free_cell,
)

_MAP = 25
_TRIES = 8
_MIN_ROOM = 4


def _fits(top_x: Array, top_y: Array, size_x: Array, size_y: Array) -> Array:
    """MultiRoomEnv._placeRoom's bounds test (note the strict test on y)."""
    return (top_x >= 0) & (top_y >= 0) & (top_x + size_x <= _MAP) & (top_y + size_y < _MAP)


def _draw_rooms(key: Array, max_room: int) -> tuple[Array, Array, Array, Array]:
    """One round: room 1 (x, y, sx, sy), 8 candidate room-2s and doors; returns the first fit."""
    ks = jax.random.split(key, 9)
    top1 = jax.random.randint(ks[0], (2,), 0, _MAP - 2)
    size1 = jax.random.randint(ks[1], (2,), _MIN_ROOM, max_room + 1)
    # Candidate exits: wall in {0 (east), 1 (south), 3 (north)}; entry wall of room 1 is 2 (west).
    wall = jnp.array([0, 1, 3])[jax.random.randint(ks[2], (_TRIES,), 0, 3)]
    along_y = top1[1] + jax.random.randint(ks[3], (_TRIES,), 1, size1[1] - 1)
    along_x = top1[0] + jax.random.randint(ks[4], (_TRIES,), 1, size1[0] - 1)
    door_x = jnp.where(wall == 0, top1[0] + size1[0] - 1, along_x)
    door_y = jnp.where(wall == 0, along_y, jnp.where(wall == 1, top1[1] + size1[1] - 1, top1[1]))
    size2 = jax.random.randint(ks[5], (_TRIES, 2), _MIN_ROOM, max_room + 1)
    offset_y = jax.random.randint(ks[6], (_TRIES,), door_y - size2[:, 1] + 2, door_y)
    offset_x = jax.random.randint(ks[7], (_TRIES,), door_x - size2[:, 0] + 2, door_x)
    top2_x = jnp.where(wall == 0, door_x, offset_x)
    top2_y = jnp.where(wall == 0, offset_y, jnp.where(wall == 1, door_y, door_y - size2[:, 1] + 1))
    fit2 = _fits(top2_x, top2_y, size2[:, 0], size2[:, 1])
    first = jnp.argmax(fit2)
    ok = _fits(top1[0], top1[1], size1[0], size1[1]) & jnp.any(fit2)
    room1 = jnp.concatenate([top1, size1])
    room2 = jnp.stack([top2_x[first], top2_y[first], size2[first, 0], size2[first, 1]])
    door = jnp.stack([door_y[first], door_x[first]])  # (row, col)
    return ok, room1, room2, door


def _walls(room: Array) -> Array:
    """Bool [25, 25]: the wall ring of a room given as (x, y, size_x, size_y)."""
    x, y, sx, sy = room[0], room[1], room[2], room[3]
    outer = rect_mask((_MAP, _MAP), y, x, sy, sx)
    inner = rect_mask((_MAP, _MAP), y + 1, x + 1, sy - 2, sx - 2)
    return outer & ~inner


def make_multi_room(max_room: int) -> TaskSpec:
    """MultiRoom with exactly two rooms of side 4..max_room on a 25x25 map, horizon 2 * 20."""

    def generate(key: Array) -> Layout:
        k_rooms, k_colour, k_agent, k_dir, k_goal = jax.random.split(key, 5)

        def cond(carry: tuple) -> Array:
            return ~carry[1]

        def body(carry: tuple) -> tuple:
            key, _, _, _, _ = carry
            key, sub = jax.random.split(key)
            return (key, *_draw_rooms(sub, max_room))

        init = (k_rooms, *_draw_rooms(jax.random.fold_in(k_rooms, 1), max_room))
        _, _, room1, room2, door = jax.lax.while_loop(cond, body, init)
        grid = jnp.asarray(empty_grid(_MAP, _MAP))
        walls = _walls(room1) | _walls(room2)
        grid = jnp.where(walls[..., None], jnp.asarray(WALL_CELL), grid)
        colour = jax.random.randint(k_colour, (), 0, NUM_COLOURS)
        grid = put(grid, door, jnp.stack([DOOR, colour, CLOSED]))
        in_room1 = rect_mask((_MAP, _MAP), room1[1], room1[0], room1[3], room1[2])
        agent = sample_free_cell(k_agent, grid, in_room1)
        direction = random_direction(k_dir)
        in_room2 = rect_mask((_MAP, _MAP), room2[1], room2[0], room2[3], room2[2])
        goal = sample_free_cell(k_goal, grid, in_room2, avoid=agent)
        grid = put(grid, goal, GOAL_CELL)
        return Layout(
            grid=grid, agent_pos=agent, agent_dir=direction, marks=jnp.stack([door, goal])
        )

    return TaskSpec(
        name=f"MultiRoom-N2-S{max_room}", height=_MAP, width=_MAP, max_steps=2 * 20,
        best_return=0.8875, generate=generate,
    )  # fmt: skip
