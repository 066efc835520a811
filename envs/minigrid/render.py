"""Render MiniGrid states and observations to RGB images with navix's sprites (jit-able).

Each encoded cell `(object, colour, state)` indexes a precomputed sprite table built from the PNG
sprites shipped with navix 0.7.4 (`assets/sprites`), so rendering a batch is one gather.
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp
import navix
import numpy as np
from jax import Array
from PIL import Image

from envs.minigrid.constants import (
    BALL,
    BOX,
    COLOUR_NAMES,
    DOOR,
    EMPTY,
    FLOOR,
    GOAL,
    KEY,
    LAVA,
    NUM_COLOURS,
    WALL,
)
from envs.minigrid.engine import EnvState

SPRITES_DIR = os.path.normpath(
    os.path.join(os.path.dirname(navix.__file__), "..", "assets", "sprites")
)
_DOOR_SPRITE_STATE = ("open", "closed", "locked")  # MiniGrid door state 0, 1, 2


@functools.cache
def _sprite(name: str, tile_size: int) -> np.ndarray:
    with Image.open(os.path.join(SPRITES_DIR, f"{name}.png")) as image:
        rgb = image.convert("RGB").resize((tile_size, tile_size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, np.uint8)


@functools.cache
def sprite_table(tile_size: int) -> np.ndarray:
    """uint8 [object, colour, state, tile, tile, 3]: the picture of every encoded cell."""
    table = np.zeros((11, NUM_COLOURS, 3, tile_size, tile_size, 3), np.uint8)  # unseen: black
    fixed = {EMPTY: "floor", FLOOR: "floor", WALL: "wall", GOAL: "goal", LAVA: "lava"}
    for obj, name in fixed.items():
        table[obj] = _sprite(name, tile_size)
    for c, colour in enumerate(COLOUR_NAMES):
        for obj, name in ((KEY, "key"), (BALL, "ball"), (BOX, "box")):
            table[obj, c] = _sprite(f"{name}_{colour}", tile_size)
        for s, state in enumerate(_DOOR_SPRITE_STATE):
            table[DOOR, c, s] = _sprite(f"door_{state}_{colour}", tile_size)
    return table


@functools.cache
def _player_table(tile_size: int) -> np.ndarray:
    names = ("east", "south", "west", "north")
    return np.stack([_sprite(f"player_{n}", tile_size) for n in names])


def render_grid(
    grid: Array, agent_pos: Array | None = None, agent_dir: Array | None = None,
    tile_size: int = 32,
) -> Array:  # fmt: skip
    """RGB uint8 [H * tile, W * tile, 3] of an encoded grid `[row, col, 3]`, agent drawn on top."""
    grid = jnp.asarray(grid).astype(jnp.int32)
    tiles = jnp.asarray(sprite_table(tile_size))[grid[..., 0], grid[..., 1], grid[..., 2]]
    if agent_pos is not None:
        player = jnp.asarray(_player_table(tile_size))[agent_dir]
        tiles = tiles.at[agent_pos[0], agent_pos[1]].set(player)
    height, width = grid.shape[:2]
    image = tiles.transpose(0, 2, 1, 3, 4).reshape(height * tile_size, width * tile_size, 3)
    return image.astype(jnp.uint8)


def render_state(state: EnvState, tile_size: int = 32) -> Array:
    """RGB image of a full environment state (for videos and debugging)."""
    return render_grid(state.grid, state.agent_pos, state.agent_dir, tile_size)


def render_observation(obs: Array, tile_size: int = 32) -> Array:
    """RGB image of a 7x7x3 egocentric observation (MiniGrid's `[x, y]` layout), agent facing up."""
    obs = jnp.asarray(obs).transpose(1, 0, 2)  # -> [row, col]
    view = obs.shape[0]
    return render_grid(obs, jnp.array([view - 1, view // 2]), jnp.int32(3), tile_size)
