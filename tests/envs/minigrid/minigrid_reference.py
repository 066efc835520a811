"""Copy start states between the reference `minigrid` package and our JAX environments."""

from __future__ import annotations

import gymnasium as gym
import jax.numpy as jnp
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.world_object import Door, WorldObj

from envs.minigrid.constants import EMPTY_CELL
from envs.minigrid.engine import EnvState


def make_reference(task: str):
    """The unwrapped reference environment for a task name such as "DoorKey-6x6"."""
    return gym.make(f"MiniGrid-{task}-v0").unwrapped


def _rc(xy) -> list[int]:
    return [int(xy[1]), int(xy[0])]


def _find_door(ref, colour: str) -> list[int]:
    for x in range(ref.width):
        for y in range(ref.height):
            cell = ref.grid.get(x, y)
            if isinstance(cell, Door) and cell.color == colour:
                return [y, x]
    raise AssertionError(f"no {colour} door")


def state_from_reference(task: str, ref) -> EnvState:
    """Our EnvState for the reference env's current state (same grid, pose, carrying, count)."""
    marks = [[-1, -1], [-1, -1]]
    if task.startswith("Memory"):
        marks = [_rc(ref.success_pos), _rc(ref.failure_pos)]
    elif task.startswith("RedBlueDoors"):
        marks = [_find_door(ref, "red"), _find_door(ref, "blue")]
    elif task.startswith("MultiRoom"):
        marks = [_rc(ref.rooms[1].entryDoorPos), _rc(ref.goal_pos)]
    carrying = EMPTY_CELL if ref.carrying is None else np.array(ref.carrying.encode(), np.uint8)
    return EnvState(
        grid=jnp.asarray(ref.grid.encode().transpose(1, 0, 2)),
        agent_pos=jnp.asarray(_rc(ref.agent_pos), jnp.int32),
        agent_dir=jnp.asarray(int(ref.agent_dir), jnp.int32),
        carrying=jnp.asarray(carrying),
        step_count=jnp.asarray(ref.step_count, jnp.int32),
        marks=jnp.asarray(marks, jnp.int32),
    )


def load_into_reference(task: str, ref, state: EnvState) -> None:
    """Overwrite the (reset) reference env with our state."""
    grid, _ = Grid.decode(np.asarray(state.grid).transpose(1, 0, 2))
    ref.grid = grid
    row, col = (int(v) for v in np.asarray(state.agent_pos))
    ref.agent_pos = (col, row)
    ref.agent_dir = int(state.agent_dir)
    carrying = np.asarray(state.carrying)
    ref.carrying = None if carrying[0] == EMPTY_CELL[0] else WorldObj.decode(*carrying.tolist())
    ref.step_count = int(state.step_count)
    marks = np.asarray(state.marks)
    if task.startswith("Memory"):
        ref.success_pos = (int(marks[0, 1]), int(marks[0, 0]))
        ref.failure_pos = (int(marks[1, 1]), int(marks[1, 0]))
    elif task.startswith("RedBlueDoors"):
        ref.red_door = grid.get(int(marks[0, 1]), int(marks[0, 0]))
        ref.blue_door = grid.get(int(marks[1, 1]), int(marks[1, 0]))


def reference_grid(ref) -> np.ndarray:
    """The reference grid in our layout, [row, col, 3]."""
    return ref.grid.encode().transpose(1, 0, 2)
