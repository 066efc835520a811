"""Rendering: image shapes, the sprites used, and the start-state PNG script."""

from __future__ import annotations

import jax
import numpy as np
from PIL import Image

from envs.minigrid import make
from envs.minigrid.render import render_observation, render_state, sprite_table
from envs.minigrid.save_start_pngs import main


def test_render_state_draws_cells_and_agent() -> None:
    env = make("DoorKey-6x6")
    obs, state = env.reset(jax.random.key(0))
    image = np.asarray(jax.jit(render_state, static_argnums=1)(state, 8))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    table = sprite_table(8)
    np.testing.assert_array_equal(image[:8, :8], table[2, 5, 0])  # corner wall
    np.testing.assert_array_equal(image[32:40, 32:40], table[8, 1, 0])  # goal at (4, 4)
    row, col = np.asarray(state.agent_pos)
    agent_tile = image[row * 8 : row * 8 + 8, col * 8 : col * 8 + 8]
    assert not np.array_equal(agent_tile, table[1, 0, 0])  # the agent is drawn over the floor
    assert np.asarray(render_observation(obs, 8)).shape == (56, 56, 3)


def test_png_script_writes_each_task(tmp_path) -> None:
    tasks = ["DistShift1", "RedBlueDoors-6x6"]  # the default is all of TASK_NAMES
    main(["--out", str(tmp_path), "--tile-size", "8", "--tasks", *tasks])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{t}{s}.png" for t in tasks for s in ("", "_view")
    )
    for task in tasks:
        spec = make(task).spec
        with Image.open(tmp_path / f"{task}.png") as image:
            assert image.size == (spec.width * 8, spec.height * 8)
        with Image.open(tmp_path / f"{task}_view.png") as image:
            assert image.size == (56, 56)
