"""What reach-v3 and push-v3 (and pick-place-v3) share: one puck, `obj`, on a free joint."""

from __future__ import annotations

import jax.numpy as jnp
from mujoco import mjx

from envs.metaworld.base import SawyerEnv

# obj_low / obj_high of the Meta-World classes: the puck's start range.
OBJ_LOW = (-0.1, 0.6, 0.02)
OBJ_HIGH = (0.1, 0.7, 0.02)


class PuckEnv(SawyerEnv):
    """A Sawyer scene with the puck `obj` whose free joint starts at qpos[9] (as Meta-World's
    `_set_obj_xyz` assumes)."""

    # Meta-World redraws the reset vector while the puck and the goal are closer than this (xy).
    MIN_OBJ_GOAL_DISTANCE = 0.15

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        joint = self._mj_model.joint("objjoint")
        if int(joint.qposadr[0]) != 9 or int(joint.dofadr[0]) != 9:
            raise AssertionError("the puck's free joint must start at qpos[9] / qvel[9]")
        self._obj_body = self._mj_model.body("obj").id

    def _reject(self, rand_vec: jnp.ndarray) -> jnp.ndarray:
        return jnp.linalg.norm(rand_vec[:2] - rand_vec[3:5]) < self.MIN_OBJ_GOAL_DISTANCE

    def set_obj_xyz(self, data: mjx.Data, pos: jnp.ndarray) -> mjx.Data:
        """`SawyerXYZEnv._set_obj_xyz`: puck position (orientation kept), puck at rest."""
        return data.replace(qpos=data.qpos.at[9:12].set(pos), qvel=data.qvel.at[9:15].set(0.0))

    def _object_obs(self, data: mjx.Data):
        return [data.xpos[self._obj_body]], [self.geom_quat_obs(data, "objGeom")]
