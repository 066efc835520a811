"""A scripted BFS oracle: the action list that solves a task from a start state (numpy, host-side).

Used by tests (the oracle must reach the goal from random starts, and its action lists drive the
differential tests against the reference package) and handy for debugging layouts. It plans
shortest turn/forward paths between sub-goals (face the key, pick it up, face the door, toggle,
reach the goal); the total is not always the shortest solution, but each leg is.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from envs.minigrid.constants import (
    BLUE,
    DIR_TO_DELTA,
    DOOR,
    EMPTY,
    EMPTY_CELL,
    FLOOR,
    GOAL,
    KEY,
    OPEN,
    RED,
    Action,
)
from envs.minigrid.engine import EnvState

Pose = tuple[int, int, int]  # row, col, dir


def _passable(cell: np.ndarray) -> bool:
    obj = int(cell[0])
    return obj in (EMPTY, GOAL, FLOOR) or (obj == DOOR and int(cell[2]) == OPEN)


def plan_path(
    grid: np.ndarray, pose: Pose, target: tuple[int, int], face: bool
) -> tuple[list[int], Pose]:
    """Shortest left/right/forward actions to stand on `target` (or face it when `face`)."""
    height, width = grid.shape[:2]
    start = tuple(int(v) for v in pose)
    parents: dict[Pose, tuple[Pose, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        row, col, d = node = queue.popleft()
        dr, dc = DIR_TO_DELTA[d]
        ahead = (row + dr, col + dc)
        done = ahead == target if face else (row, col) == target
        if done:
            actions: list[int] = []
            while parents[node] is not None:
                node, action = parents[node]  # type: ignore[misc]
                actions.append(action)
            return actions[::-1], (row, col, d)
        moves = [((row, col, (d + 3) % 4), int(Action.LEFT)), ((row, col, (d + 1) % 4), 1)]
        inside = 0 <= ahead[0] < height and 0 <= ahead[1] < width
        if inside and (_passable(grid[ahead]) or (not face and ahead == target)):
            moves.append(((ahead[0], ahead[1], d), int(Action.FORWARD)))
        for nxt, action in moves:
            if nxt not in parents:
                parents[nxt] = (node, action)
                queue.append(nxt)
    raise ValueError(f"no path from {pose} to {target}")


def _find(grid: np.ndarray, obj: int, colour: int | None = None) -> tuple[int, int]:
    hits = np.argwhere((grid[..., 0] == obj) & ((colour is None) | (grid[..., 1] == colour)))
    if len(hits) != 1:
        raise ValueError(f"expected one object {obj} (colour {colour}), found {len(hits)}")
    return int(hits[0][0]), int(hits[0][1])


class _Planner:
    """Accumulates actions while tracking the pose and the cells the plan changes."""

    def __init__(self, state: EnvState) -> None:
        self.grid = np.array(state.grid)
        self.pose: Pose = (*(int(v) for v in np.asarray(state.agent_pos)), int(state.agent_dir))
        self.actions: list[int] = []

    def go(self, target: tuple[int, int], face: bool = False) -> None:
        path, self.pose = plan_path(self.grid, self.pose, target, face)
        self.actions += path

    def act(self, action: Action, target: tuple[int, int], new_cell: np.ndarray) -> None:
        self.go(target, face=True)
        self.actions.append(int(action))
        self.grid[target] = new_cell


def oracle_actions(task: str, state: EnvState, wrong: bool = False) -> list[int]:
    """Actions that solve `task` from `state`; with `wrong`, the task's failure instead
    (RedBlueDoors: blue door first; Memory: the other object; lava tasks: into lava)."""
    plan = _Planner(state)
    grid = plan.grid
    if task == "DoorKey-6x6":
        key, door = _find(grid, KEY), _find(grid, DOOR)
        plan.act(Action.PICKUP, key, EMPTY_CELL)
        plan.act(Action.TOGGLE, door, np.array([DOOR, grid[door][1], OPEN], np.uint8))
        plan.go(_find(grid, GOAL))
    elif task == "RedBlueDoors-6x6":
        red, blue = _find(grid, DOOR, RED), _find(grid, DOOR, BLUE)
        if not wrong:
            plan.act(Action.TOGGLE, red, np.array([DOOR, RED, OPEN], np.uint8))
        plan.act(Action.TOGGLE, blue, np.array([DOOR, BLUE, OPEN], np.uint8))
    elif task == "MemoryS11":
        mid, end = grid.shape[0] // 2, grid.shape[1] - 2
        seen = int(grid[mid - 1, 1, 0])
        top_matches = int(grid[mid - 2, end, 0]) == seen
        plan.go((mid - 1, end) if top_matches != wrong else (mid + 1, end))
    elif task == "MultiRoom-N2-S4":
        door = _find(grid, DOOR)
        plan.act(Action.TOGGLE, door, np.array([DOOR, grid[door][1], OPEN], np.uint8))
        plan.go(_find(grid, GOAL))
    elif wrong:
        lava = np.argwhere(grid[..., 0] == 9)
        if len(lava) == 0:
            raise ValueError(f"{task} has no lava")
        plan.go((int(lava[0][0]), int(lava[0][1])))
    else:
        plan.go(_find(grid, GOAL))
    return plan.actions


__all__ = ["oracle_actions", "plan_path"]
