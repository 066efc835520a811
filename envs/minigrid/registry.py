"""Task names -> environments, and the checks that give bad names a clear message."""

from __future__ import annotations

from collections.abc import Callable

from envs.minigrid.engine import MiniGridEnv, TaskSpec
from envs.minigrid.tasks.crossing import make_crossing
from envs.minigrid.tasks.dist_shift import make_dist_shift
from envs.minigrid.tasks.door_key import make_door_key
from envs.minigrid.tasks.lava_gap import make_lava_gap
from envs.minigrid.tasks.memory import make_memory
from envs.minigrid.tasks.multi_room import make_multi_room
from envs.minigrid.tasks.red_blue_doors import make_red_blue_doors

TASKS: dict[str, Callable[[], TaskSpec]] = {
    "DoorKey-6x6": lambda: make_door_key(6),
    "DistShift1": lambda: make_dist_shift(2, "DistShift1"),
    "RedBlueDoors-6x6": lambda: make_red_blue_doors(6),
    "LavaGapS7": lambda: make_lava_gap(7),
    "MemoryS11": lambda: make_memory(11),
    "SimpleCrossingS9N2": lambda: make_crossing(9, 2, "wall", best_return=0.9583),
    "MultiRoom-N2-S4": lambda: make_multi_room(4),
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def canonical_task_name(name: str) -> str:
    """Accept "DoorKey-6x6" or MiniGrid's id "MiniGrid-DoorKey-6x6-v0"; reject anything else."""
    if not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {type(name).__name__}")
    short = name.removeprefix("MiniGrid-").removesuffix("-v0")
    if short not in TASKS:
        raise ValueError(f"unknown MiniGrid task {name!r}; task must be one of {list(TASK_NAMES)}")
    return short


_CACHE: dict[str, MiniGridEnv] = {}


def make(name: str) -> MiniGridEnv:
    """The environment for a task name (one shared instance per task, so jitted code is reused)."""
    short = canonical_task_name(name)
    if short not in _CACHE:
        _CACHE[short] = MiniGridEnv(TASKS[short]())
    return _CACHE[short]
