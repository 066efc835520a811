"""One JAX grid engine with MiniGrid's exact dynamics, shared by all seven tasks.

Why not wrap navix: navix 0.7.4 differs from MiniGrid in the reward (flat 1.0), the horizon
(default 100), the autoreset (on the following step, one wasted transition) and the first-person
view (no occlusion). Patching each difference around navix's entity system costs more than one small
engine that does what `minigrid.MiniGridEnv.step` does. We keep navix's conventions: positions are
`(row, col)`, directions 0..3 are east/south/west/north as in `navix.grid.translate`, the action set
is navix's `MINIGRID_ACTION_SET`, states are `flax.struct` dataclasses, and rendering uses navix's
sprites (see `render.py`). The grid itself stores MiniGrid's `(object, colour, state)` encoding per
cell, `[row, col, 3]`, so observations are a gather and differential tests a direct comparison.

The API is gymnax's: `reset(key, params) -> (obs, state)` and
`step(key, state, action, params) -> (obs, state, reward, done, info)`, with autoreset inside the
same `step` (the returned observation is then the next episode's first one, the terminal one is in
`info["terminal_observation"]`), and termination and truncation reported apart in `info`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array

from envs.minigrid.constants import (
    BALL,
    BOX,
    CLOSED,
    DIR_TO_DELTA,
    DOOR,
    EMPTY,
    EMPTY_CELL,
    FLOOR,
    GOAL,
    KEY,
    LAVA,
    LOCKED,
    NUM_ACTIONS,
    OPEN,
    VIEW_SIZE,
    Action,
)
from envs.minigrid.observation import egocentric_observation


@struct.dataclass
class EnvState:
    """Full state of one MiniGrid episode (MiniGridEnv's grid, agent, carrying, step count)."""

    grid: Array  # uint8 [H, W, 3], MiniGrid encoding, empty cells (1, 0, 0)
    agent_pos: Array  # int32 [2], (row, col)
    agent_dir: Array  # int32 [], 0 east, 1 south, 2 west, 3 north
    carrying: Array  # uint8 [3], encoding of the carried object, (1, 0, 0) when nothing
    step_count: Array  # int32 []
    marks: Array  # int32 [2, 2], two task-specific cells (row, col); see each task


@struct.dataclass
class EnvParams:
    """Per-episode parameters; `max_steps` is MiniGrid's horizon for the task."""

    max_steps: int | Array


@struct.dataclass
class Layout:
    """What a task's generator returns: the start of an episode."""

    grid: Array
    agent_pos: Array
    agent_dir: Array
    marks: Array


# after_step(before, after, reward, terminated, params) -> (reward, terminated)
AfterStep = Callable[[EnvState, EnvState, Array, Array, EnvParams], tuple[Array, Array]]


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one task: its grid size, horizon, generator and special rules."""

    name: str
    height: int
    width: int
    max_steps: int
    best_return: float  # best achievable return, for the normalised score
    generate: Callable[[Array], Layout]
    see_through_walls: bool = False
    pickup_is_toggle: bool = False  # MemoryEnv maps pickup to toggle
    after_step: AfterStep | None = None


def success_reward(step_count: Array, max_steps: int | Array) -> Array:
    """MiniGrid's `_reward()`: 1 - 0.9 * step_count / max_steps (float32)."""
    return 1.0 - 0.9 * (step_count.astype(jnp.float32) / jnp.float32(max_steps))


def transition(state: EnvState, action: Array) -> tuple[EnvState, Array, Array]:
    """MiniGridEnv.step's dynamics for one action; returns (state, reached_goal, hit_lava).

    Branch-free (selects instead of `lax.switch`), so it vmaps without running every branch.
    Actions outside 0..6 do nothing (as `done` does).
    """
    grid, pos, direction, carrying = state.grid, state.agent_pos, state.agent_dir, state.carrying
    height, width = grid.shape[:2]
    fwd = pos + jnp.asarray(DIR_TO_DELTA)[direction]
    fwd = jnp.clip(fwd, 0, jnp.array([height - 1, width - 1]))
    cell = grid[fwd[0], fwd[1]]
    obj, colour, door_state = cell[0], cell[1], cell[2]

    is_fwd = action == Action.FORWARD
    turn = jnp.where(action == Action.LEFT, 3, jnp.where(action == Action.RIGHT, 1, 0))
    new_dir = (direction + turn) % 4

    can_overlap = (
        (obj == EMPTY) | (obj == GOAL) | (obj == LAVA) | (obj == FLOOR)
        | ((obj == DOOR) & (door_state == OPEN))
    )  # fmt: skip
    new_pos = jnp.where(is_fwd & can_overlap, fwd, pos)
    reached_goal = is_fwd & (obj == GOAL)
    hit_lava = is_fwd & (obj == LAVA)

    hands_empty = carrying[0] == EMPTY
    pickable = (obj == KEY) | (obj == BALL) | (obj == BOX)
    picks = (action == Action.PICKUP) & pickable & hands_empty
    drops = (action == Action.DROP) & (obj == EMPTY) & ~hands_empty
    toggles = action == Action.TOGGLE
    is_door = obj == DOOR
    unlocks = (
        toggles & is_door & (door_state == LOCKED) & (carrying[0] == KEY) & (carrying[1] == colour)
    )
    flips = toggles & is_door & (door_state != LOCKED)
    new_door_state = jnp.where(
        unlocks, OPEN, jnp.where(flips, jnp.where(door_state == OPEN, CLOSED, OPEN), door_state)
    ).astype(jnp.uint8)
    opens_box = toggles & (obj == BOX)  # boxes hold nothing in these tasks: toggling empties it

    empty = jnp.asarray(EMPTY_CELL)
    new_cell = jnp.where(
        picks | opens_box, empty, jnp.where(drops, carrying, cell.at[2].set(new_door_state))
    )
    new_carrying = jnp.where(picks, cell, jnp.where(drops, empty, carrying))
    new_state = state.replace(
        grid=grid.at[fwd[0], fwd[1]].set(new_cell),
        agent_pos=new_pos,
        agent_dir=new_dir,
        carrying=new_carrying,
        step_count=state.step_count + 1,
    )
    return new_state, reached_goal, hit_lava


def _check_action(action: np.ndarray) -> None:
    bad = np.asarray(action)
    if np.any((bad < 0) | (bad >= NUM_ACTIONS)):
        raise ValueError(
            f"action must be an integer in [0, {NUM_ACTIONS - 1}] "
            f"(left, right, forward, pickup, drop, toggle, done); got {bad.tolist()}"
        )


def check_params(params: EnvParams) -> EnvParams:
    """Reject a concrete non-positive horizon before tracing (a traced one is checked at run time
    under `jax.enable_checks`)."""
    max_steps = params.max_steps
    concrete = isinstance(max_steps, int | np.integer) or (
        isinstance(max_steps, np.ndarray | jax.Array)
        and not isinstance(max_steps, jax.core.Tracer)
        and np.ndim(max_steps) == 0
    )
    if concrete and int(max_steps) < 1:
        raise ValueError(f"EnvParams.max_steps must be a positive int (>= 1), got {max_steps}")
    return params


def _check_max_steps(max_steps: np.ndarray) -> None:
    if np.any(np.asarray(max_steps) < 1):
        raise ValueError(
            f"EnvParams.max_steps must be a positive int (>= 1), got {np.asarray(max_steps)}"
        )


class MiniGridEnv:
    """A MiniGrid task as a functional, jit/vmap-able environment (gymnax-style API)."""

    num_actions: int = NUM_ACTIONS
    observation_shape: tuple[int, int, int] = (VIEW_SIZE, VIEW_SIZE, 3)

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        """MiniGrid task name, e.g. "DoorKey-6x6"."""
        return self.spec.name

    @property
    def default_params(self) -> EnvParams:
        """MiniGrid's parameters for this task (its own `max_steps`)."""
        return EnvParams(max_steps=self.spec.max_steps)

    def observe(self, state: EnvState) -> Array:
        """The 7x7x3 egocentric image of `state`, as MiniGrid's ImgObsWrapper gives it."""
        return egocentric_observation(
            state.grid, state.agent_pos, state.agent_dir, state.carrying,
            self.spec.see_through_walls,
        )  # fmt: skip

    def state_from_layout(self, layout: Layout) -> EnvState:
        """The episode-start state for a generated (or copied) layout."""
        return EnvState(
            grid=jnp.asarray(layout.grid, jnp.uint8),
            agent_pos=jnp.asarray(layout.agent_pos, jnp.int32),
            agent_dir=jnp.asarray(layout.agent_dir, jnp.int32),
            carrying=jnp.asarray(EMPTY_CELL),
            step_count=jnp.zeros((), jnp.int32),
            marks=jnp.asarray(layout.marks, jnp.int32),
        )

    def reset_env(self, key: Array, params: EnvParams | None = None) -> tuple[Array, EnvState]:
        """Start a new episode: MiniGrid's `reset` for this task."""
        del params
        state = self.state_from_layout(self.spec.generate(key))
        return self.observe(state), state

    def step_env(
        self, key: Array, state: EnvState, action: Array, params: EnvParams | None = None
    ) -> tuple[Array, EnvState, Array, Array, dict[str, Any]]:
        """One MiniGrid step without autoreset (what the reference `env.step` returns)."""
        del key
        new_state, reward, done, info = self._advance(state, action, params)
        return self.observe(new_state), new_state, reward, done, info

    def _advance(
        self, state: EnvState, action: Array, params: EnvParams | None
    ) -> tuple[EnvState, Array, Array, dict[str, Any]]:
        params = self.default_params if params is None else check_params(params)
        action = jnp.asarray(action, jnp.int32)
        if jax.config.jax_enable_checks:
            jax.debug.callback(_check_action, action)
            jax.debug.callback(_check_max_steps, jnp.asarray(params.max_steps))
        if self.spec.pickup_is_toggle:
            action = jnp.where(action == Action.PICKUP, Action.TOGGLE, action)
        new_state, reached_goal, hit_lava = transition(state, action)
        reward = jnp.where(
            reached_goal, success_reward(new_state.step_count, params.max_steps), 0.0
        )
        terminated = reached_goal | hit_lava
        if self.spec.after_step is not None:
            reward, terminated = self.spec.after_step(state, new_state, reward, terminated, params)
        truncated = new_state.step_count >= params.max_steps
        info = {"terminated": terminated, "truncated": truncated, "success": reward > 0}
        return new_state, reward, terminated | truncated, info

    def reset(self, key: Array, params: EnvParams | None = None) -> tuple[Array, EnvState]:
        """gymnax `reset`."""
        return self.reset_env(key, params)

    def step(
        self, key: Array, state: EnvState, action: Array, params: EnvParams | None = None
    ) -> tuple[Array, EnvState, Array, Array, dict[str, Any]]:
        """gymnax `step`: a MiniGrid step, then a reset in the same call when the episode ends."""
        key_reset = jax.random.split(key)[1]
        state_next, reward, done, info = self._advance(state, action, params)
        state_reset = self.state_from_layout(self.spec.generate(key_reset))
        state_out = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_reset, state_next)
        # Two separate views: XLA drops the terminal one when the caller does not use it.
        info = {**info, "terminal_observation": self.observe(state_next)}
        obs = self.observe(state_out)
        return obs, state_out, reward, done, info
