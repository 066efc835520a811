"""MiniGrid tasks and MT3/MT5/MT7 suites in JAX, with the reference `minigrid` package's semantics.

`make("DoorKey-6x6")` gives a gymnax-style environment; `make_suite("MT5", num_envs_per_task)` a
multi-task batch. See README.md in this folder.
"""

from envs.minigrid.constants import NUM_ACTIONS, Action
from envs.minigrid.engine import EnvParams, EnvState, MiniGridEnv
from envs.minigrid.registry import TASK_NAMES, make
from envs.minigrid.suites import SUITES, MultiTaskSuite, SuiteObs, SuiteState, make_suite

__all__ = [
    "NUM_ACTIONS",
    "SUITES",
    "TASK_NAMES",
    "Action",
    "EnvParams",
    "EnvState",
    "MiniGridEnv",
    "MultiTaskSuite",
    "SuiteObs",
    "SuiteState",
    "make",
    "make_suite",
]
