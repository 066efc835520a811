"""Reset distributions: over many keys our start states cover what the reference generator covers.

For every task, 1-D marginals of the start state (agent row / col / direction; the row and col of
each kind of object; door colours; for MultiRoom, offsets relative to the door since its rooms move
over the whole map) and the per-cell wall frequency are compared between reference resets (seeds)
and ours (keys): every value seen at least 2% of the time on one side must appear on the other, and
the total-variation distance must stay within twice its expected sampling noise (computed from the
reference frequencies) plus 0.02.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import jax
import numpy as np
import pytest
from minigrid_reference import make_reference, state_from_reference
from minigrid_testing import batched_reset_fn

from envs.minigrid import TASK_NAMES
from envs.minigrid.constants import DOOR, EMPTY, GOAL, WALL

N_REFERENCE = 1000
N_OURS = 2000
MAX_WALL_FREQUENCY_GAP = 0.08


def features(task: str, grid: np.ndarray, pos: np.ndarray, direction: int) -> dict[str, object]:
    """Named 1-D features of one start state (grid [row, col, 3], pos (row, col))."""
    out: dict[str, object] = {"agent_dir": direction}
    objects = np.argwhere((grid[..., 0] != EMPTY) & (grid[..., 0] != WALL))
    if task.startswith("MultiRoom"):
        (door,) = np.argwhere(grid[..., 0] == DOOR)
        (goal,) = np.argwhere(grid[..., 0] == GOAL)
        out["door_colour"] = int(grid[tuple(door)][1])
        out["agent_minus_door"] = tuple(pos - door)
        out["goal_minus_door"] = tuple(goal - door)
        out["door_row_band"], out["door_col_band"] = int(door[0] // 5), int(door[1] // 5)
        return out
    out["agent_row"], out["agent_col"] = int(pos[0]), int(pos[1])
    kinds: dict[tuple, list] = defaultdict(list)
    for r, c in objects:
        kinds[tuple(int(v) for v in grid[r, c])].append((int(r), int(c)))
    for kind, cells in kinds.items():
        out[f"{kind}_rows"] = tuple(sorted(r for r, _ in cells))
        out[f"{kind}_cols"] = tuple(sorted(c for _, c in cells))
    out["object_kinds"] = tuple(sorted(kinds))
    return out


def distributions(samples: list[dict[str, object]]) -> dict[str, Counter]:
    dists: dict[str, Counter] = defaultdict(Counter)
    for sample in samples:
        for name, value in sample.items():
            dists[name][value] += 1
    return dists


def reference_samples(task: str) -> tuple[list[dict], np.ndarray]:
    ref = make_reference(task)
    samples, walls = [], []
    for seed in range(N_REFERENCE):
        ref.reset(seed=seed)
        state = state_from_reference(task, ref)
        grid = np.asarray(state.grid)
        samples.append(features(task, grid, np.asarray(state.agent_pos), int(state.agent_dir)))
        walls.append(grid[..., 0] == WALL)
    return samples, np.mean(walls, axis=0)


def our_samples(task: str) -> tuple[list[dict], np.ndarray]:
    _, states = batched_reset_fn(task)(jax.random.split(jax.random.key(11), N_OURS))
    grids, poses, dirs = (np.asarray(x) for x in (states.grid, states.agent_pos, states.agent_dir))
    samples = [features(task, grids[i], poses[i], int(dirs[i])) for i in range(N_OURS)]
    return samples, np.mean(grids[..., 0] == WALL, axis=0)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_reset_distribution_matches_reference(task: str) -> None:
    ref_samples, ref_walls = reference_samples(task)
    our, our_walls = our_samples(task)
    ref_d, our_d = distributions(ref_samples), distributions(our)
    assert set(ref_d) == set(our_d), (sorted(ref_d), sorted(our_d))
    for name in ref_d:
        p = {k: v / N_REFERENCE for k, v in ref_d[name].items()}
        q = {k: v / N_OURS for k, v in our_d[name].items()}
        missing = [k for k, f in p.items() if f >= 0.02 and k not in q]
        extra = [k for k, f in q.items() if f >= 0.02 and k not in p]
        assert not missing and not extra, f"{task} {name}: missing {missing}, extra {extra}"
        tv = 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))
        # E|p_hat - q_hat| ~ sqrt(2 / pi) * sd for each value; TV is half their sum.
        sd = np.sqrt(np.array([f * (1 - f) for f in p.values()]) * (1 / N_REFERENCE + 1 / N_OURS))
        noise = 0.5 * np.sqrt(2 / np.pi) * sd.sum()
        assert tv <= 2 * noise + 0.02, f"{task} {name}: total variation {tv:.3f}, noise {noise:.3f}"
    if not task.startswith("MultiRoom"):
        gap = np.abs(ref_walls - our_walls).max()
        assert gap <= MAX_WALL_FREQUENCY_GAP, f"{task}: wall frequency gap {gap:.3f}"
        np.testing.assert_array_equal(ref_walls > 0, our_walls > 0)
