"""The egocentric observation (with occlusion) against the reference on random cluttered grids.

Task layouts exercise few wall/door patterns; here every cell of a 9x9 room is random (walls, doors
in all three states, keys, balls, boxes, goal, lava), the agent pose and carried object too, and
the 7x7x3 image must equal MiniGrid's `gen_obs()["image"]` for both see_through_walls settings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from minigrid_reference import load_into_reference, make_reference

from envs.minigrid.constants import (
    BALL,
    BOX,
    DOOR,
    EMPTY_CELL,
    GOAL_CELL,
    KEY,
    LAVA_CELL,
    WALL_CELL,
)
from envs.minigrid.engine import EnvState
from envs.minigrid.observation import egocentric_observation

SIZE = 9


def random_state(rng: np.random.Generator) -> EnvState:
    grid = np.empty((SIZE, SIZE, 3), np.uint8)
    grid[:] = WALL_CELL
    for r in range(1, SIZE - 1):
        for c in range(1, SIZE - 1):
            u = rng.random()
            if u < 0.45:
                cell = EMPTY_CELL
            elif u < 0.65:
                cell = WALL_CELL
            elif u < 0.8:
                cell = np.array([DOOR, rng.integers(6), rng.integers(3)])
            elif u < 0.9:
                cell = np.array([rng.choice([KEY, BALL, BOX]), rng.integers(6), 0])
            else:
                cell = GOAL_CELL if rng.random() < 0.5 else LAVA_CELL
            grid[r, c] = cell
    pos = rng.integers(1, SIZE - 1, 2)
    grid[pos[0], pos[1]] = EMPTY_CELL if rng.random() < 0.8 else (DOOR, rng.integers(6), 0)
    carrying = EMPTY_CELL if rng.random() < 0.5 else np.array([KEY, rng.integers(6), 0])
    return EnvState(
        grid=jnp.asarray(grid), agent_pos=jnp.asarray(pos, jnp.int32),
        agent_dir=jnp.asarray(rng.integers(4), jnp.int32), carrying=jnp.asarray(carrying),
        step_count=jnp.zeros((), jnp.int32), marks=jnp.full((2, 2), -1, jnp.int32),
    )  # fmt: skip


@pytest.mark.parametrize("see_through_walls", [False, True])
def test_observation_matches_reference_on_random_grids(see_through_walls: bool) -> None:
    rng = np.random.default_rng(int(see_through_walls))
    states = [random_state(rng) for _ in range(150)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *states)
    observe = jax.vmap(lambda s: egocentric_observation(
        s.grid, s.agent_pos, s.agent_dir, s.carrying, see_through_walls))  # fmt: skip
    ours = np.asarray(jax.jit(observe)(batch))
    ref = make_reference("SimpleCrossingS9N2")  # any 9x9 reference env
    ref.reset(seed=0)
    ref.see_through_walls = see_through_walls
    occluded = 0
    for i, state in enumerate(states):
        load_into_reference("SimpleCrossingS9N2", ref, state)
        expected = ref.gen_obs()["image"]
        np.testing.assert_array_equal(ours[i], expected, err_msg=f"state {i}")
        occluded += int(np.any(expected[..., 0] == 0))
    assert (occluded > 100) != see_through_walls  # the cases do exercise occlusion
