"""Our tasks as `gymnax.environments.environment.Environment`s (gymnax 1.0.1's API).

`MiniGridEnv.step` returns the 5-tuple `(obs, state, reward, done, info)`. gymnax 1.0.1, which the
project pins, returns `(obs, state, reward, terminated, truncated, info)` and builds that from
`step_env`, `reset_env` and `is_truncated`; this adapter supplies those, so gymnax's own `step`
(same-step autoreset, `info["final_observation"]`) and wrappers (`LogWrapper`, ...) run unchanged.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from gymnax.environments import environment, spaces
from jax import Array

from envs.minigrid.constants import NUM_ACTIONS, VIEW_SIZE
from envs.minigrid.engine import EnvParams, EnvState, MiniGridEnv
from envs.minigrid.registry import make


class GymnaxMiniGrid(environment.Environment[EnvState, EnvParams]):
    """A MiniGrid task with gymnax's Environment interface."""

    def __init__(self, env: MiniGridEnv) -> None:
        super().__init__()
        self.env = env

    @property
    def default_params(self) -> EnvParams:
        """MiniGrid's horizon for the task."""
        return self.env.default_params

    def step_env(
        self, key: Array, state: EnvState, action: Array, params: EnvParams
    ) -> tuple[Array, EnvState, Array, Array, dict[str, Any]]:
        """One step without autoreset; the 4th output is termination only (gymnax 1.0.1)."""
        obs, new_state, reward, _, info = self.env.step_env(key, state, action, params)
        return obs, new_state, reward, info["terminated"], {"success": info["success"]}

    def reset_env(self, key: Array, params: EnvParams) -> tuple[Array, EnvState]:
        """A new episode."""
        return self.env.reset_env(key, params)

    def is_truncated(self, state: EnvState, params: EnvParams) -> Array:
        """MiniGrid's time limit: step_count >= max_steps."""
        return state.step_count >= params.max_steps

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key: Any = None) -> Array:
        """The 7x7x3 egocentric observation."""
        return self.env.observe(state)

    @property
    def name(self) -> str:
        """MiniGrid task name."""
        return self.env.name

    @property
    def num_actions(self) -> int:
        """7 MiniGrid actions."""
        return NUM_ACTIONS

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """Discrete(7)."""
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """uint8 (7, 7, 3); values are object (<= 10), colour (<= 5) and state (<= 2) indices."""
        return spaces.Box(0, 10, (VIEW_SIZE, VIEW_SIZE, 3), jnp.uint8)


def make_gymnax(name: str) -> GymnaxMiniGrid:
    """`make(name)` wrapped for gymnax 1.0.1."""
    return GymnaxMiniGrid(make(name))
