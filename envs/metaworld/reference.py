"""The reference `metaworld` environments, for comparisons only (tests and benchmarks).

The port never imports this module: it reads only the installed package's scenes.

metaworld 3.0.0 writes 11 numbers into the mocap weld's `eq_data` row, which has 12 entries
since mujoco 4 (`reset_mocap_welds` raises); `patch_reset_mocap_welds` writes the same 11 and
leaves the 12th as compiled (a weld does not read it). Nothing else of the reference is changed.
"""

from __future__ import annotations

import pickle

import mujoco
import numpy as np

from envs.metaworld.models import MOCAP_WELD_DATA


def patch_reset_mocap_welds() -> None:
    import metaworld.sawyer_xyz_env as sawyer_xyz_env

    def reset_mocap_welds(self) -> None:
        if self.model.nmocap > 0 and self.model.eq_data is not None:
            for i in range(self.model.eq_data.shape[0]):
                if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    self.model.eq_data[i, : MOCAP_WELD_DATA.size] = MOCAP_WELD_DATA

    sawyer_xyz_env.SawyerMocapBase.reset_mocap_welds = reset_mocap_welds


def make_reference(task: str, rand_vec: np.ndarray, goal_observable: bool = True):
    """The reference env of `task` in fixed-goal mode (`set_task`) with reset vector `rand_vec`."""
    patch_reset_mocap_welds()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.types import Task

    cls = ALL_V3_ENVIRONMENTS[task]
    env = cls()
    data = {
        "env_cls": cls,
        "rand_vec": np.asarray(rand_vec, np.float64),
        "partially_observable": not goal_observable,
    }
    env.set_task(Task(env_name=task, data=pickle.dumps(data)))
    return env


def reference_rand_vecs(task: str, count: int, seed: int) -> np.ndarray:
    """`count` reset vectors as Meta-World draws them (its own sampling and rejection rule)."""
    patch_reset_mocap_welds()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS[task]()
    env._freeze_rand_vec = False
    env._set_task_called = True
    env.seed(seed)
    env.seeded_rand_vec = True
    vecs = []
    for _ in range(count):
        env.reset()
        vecs.append(np.array(env._last_rand_vec))
    env.close()
    return np.stack(vecs)
