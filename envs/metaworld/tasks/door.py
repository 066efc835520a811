"""door-open-v3 (`metaworld.envs.sawyer_door_v3.SawyerDoorEnvV3`, reward v2).

It loads `sawyer_door_pull.xml`: a fixed safe (body `door`, its boxes `doorlockB/1..5`) with the
door (`door_link`) on a hinge about z at the safe's front left edge, qpos[9] in [-2, 0] (0 shut,
negative swinging open towards the robot). The door carries a handle: a disc and a shaft
sticking out towards the robot and a grip along x (cylinders). The reset vector is the safe's
position, x in [0, 0.1], y in [0.85, 0.95], z 0.15; Meta-World writes it into
`model.body("door").pos` (`MOVED_BODY`), shuts the door and runs a forward pass, so the reset
observation is current. The goal is the reset vector + (-0.3, -0.45, 0).

The observed object is the handle's visual geom (`handle`): its position and the quaternion of
its frame. Success: the handle within 8 cm of the goal in x (the door swung about 60 degrees
open); the reward is then 10. Otherwise the v2 reward: 2 x hamacher(ready, grab effort) +
8 x opened, where `ready` keeps the hand above a funnel-shaped floor around the handle and
brings it between the handle and the door, and `opened` rewards any opening (0.2) and an
opening angle near 120 degrees (0.8).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from envs.metaworld.base import SawyerEnv
from envs.metaworld.rewards import hamacher_product, tolerance

HINGE_QPOS = 9
GOAL_OFFSET = (-0.3, -0.45, 0.0)
SUCCESS_DISTANCE = 0.08  # in x, between the handle and the goal
# _reward_pos: the handle reference point, the floor funnel's radius, the in-place offset.
HANDLE_SHIFT = (-0.05, 0.0, 0.0)
FLOOR_THRESHOLD = 0.12
IN_PLACE_OFFSET = (0.05, 0.03, -0.01)


class DoorOpenEnv(SawyerEnv):
    """Swing the safe's door open until its handle is within 8 cm (in x) of the goal."""

    TASK = "door-open-v3"
    HAND_INIT_POS = (0.0, 0.6, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    # _random_reset_space: the safe's position (obj_low / obj_high).
    RESET_LOW = (0.0, 0.85, 0.15)
    RESET_HIGH = (0.1, 0.95, 0.15)
    GOAL_LOW = (-0.3, 0.4, 0.1499)
    GOAL_HIGH = (-0.2, 0.5, 0.1501)
    MOVED_BODY = "door"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        m = self._mj_model
        self.check_joint_address("doorjoint", HINGE_QPOS)
        self._handle = m.geom("handle").id

    def _reset_task(self, data, rand_vec):
        task = {
            "target_pos": rand_vec + jnp.asarray(GOAL_OFFSET),
            "obj_init_pos": rand_vec,
            "init_tcp": self.init_tcp(),
            "body_pos": rand_vec,
        }
        qpos = data.qpos.at[HINGE_QPOS].set(0.0)
        qvel = data.qvel.at[HINGE_QPOS].set(0.0)
        return data.replace(qpos=qpos, qvel=qvel), task

    def _object_obs(self, data):
        return [data.geom_xpos[self._handle]], [self.geom_quat_obs(data, "handle")]

    def _evaluate(self, data: mjx.Data, obs, action, task):
        theta = data.qpos[HINGE_QPOS]
        grab = (jnp.clip(action[3], -1.0, 1.0) + 1.0) / 2.0

        # _reward_pos
        hand = obs[:3]
        door = obs[4:7] + jnp.asarray(HANDLE_SHIFT)
        radius = jnp.linalg.norm(hand[:2] - door[:2])
        above = radius - FLOOR_THRESHOLD
        floor = jnp.where(above <= 0, 0.0, 0.04 * jnp.log(jnp.maximum(above, 1e-30)) + 0.4)
        above_floor = jnp.where(
            hand[2] >= floor,
            1.0,
            tolerance(floor - hand[2], bounds=(0.0, 0.01), margin=floor / 2.0, sigmoid="long_tail"),
        )
        in_place = tolerance(
            jnp.linalg.norm(hand - door - jnp.asarray(IN_PLACE_OFFSET)),
            bounds=(0, FLOOR_THRESHOLD / 2.0),
            margin=0.5,
            sigmoid="long_tail",
        )
        ready = hamacher_product(above_floor, in_place)
        opened = 0.2 * (theta < -np.pi / 90.0) + 0.8 * tolerance(
            np.pi / 2.0 + np.pi / 6 + theta,
            bounds=(0, 0.5),
            margin=np.pi / 3.0,
            sigmoid="long_tail",
        )

        success = jnp.abs(obs[4] - task["target_pos"][0]) <= SUCCESS_DISTANCE
        reward = jnp.where(success, 10.0, 2.0 * hamacher_product(ready, grab) + 8.0 * opened)
        info = {
            "success": success.astype(jnp.float32),
            "near_object": ready,
            "grasp_success": (grab >= 0.5).astype(jnp.float32),
            "grasp_reward": grab,
            "in_place_reward": opened,
            "obj_to_target": jnp.zeros(()),
            "unscaled_reward": reward,
        }
        return reward, info
