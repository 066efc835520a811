"""push-v3 (`metaworld.envs.sawyer_push_v3.SawyerPushEnvV3`, reward v2)."""

from __future__ import annotations

import jax.numpy as jnp

from envs.metaworld.rewards import gripper_caging_reward, tolerance
from envs.metaworld.tasks.puck import OBJ_HIGH, OBJ_LOW, PuckEnv


class PushEnv(PuckEnv):
    """Push the puck to within 5 cm of the goal on the table."""

    TASK = "push-v3"
    HAND_INIT_POS = (0.0, 0.6, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    GOAL_LOW = (-0.1, 0.8, 0.01)
    GOAL_HIGH = (0.1, 0.9, 0.02)
    RESET_LOW = (*OBJ_LOW, *GOAL_LOW)
    RESET_HIGH = (*OBJ_HIGH, *GOAL_HIGH)

    def _reset_task(self, data, rand_vec):
        # fix_extreme_obj_pos: the puck's height is where it rests after the hand reset.
        obj_z = self._hand_reset["xpos"][self._obj_body, 2]
        target = jnp.stack([rand_vec[3], rand_vec[4], obj_z])
        obj_init_pos = jnp.stack([rand_vec[0], rand_vec[1], obj_z])
        data = self.set_obj_xyz(data, obj_init_pos)
        task = {"target_pos": target, "obj_init_pos": obj_init_pos, "init_tcp": self.init_tcp()}
        return data, task

    def _evaluate(self, data, obs, action, task):
        obj = obs[4:7]
        tcp_opened = obs[3]
        tcp = self.tcp_center(data)
        target, obj_init_pos = task["target_pos"], task["obj_init_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(obj_init_pos - target)
        in_place = tolerance(
            target_to_obj,
            bounds=(0, self.TARGET_RADIUS),
            margin=target_to_obj_init,
            sigmoid="long_tail",
        )
        object_grasped = gripper_caging_reward(
            action,
            obj,
            obj_init_pos,
            task["init_tcp"],
            tcp,
            self.body_pos(data, "leftpad"),
            self.body_pos(data, "rightpad"),
            object_reach_radius=0.01,
            obj_radius=0.015,
            pad_success_thresh=0.05,
            xz_thresh=0.005,
            high_density=True,
        )
        reward = 2 * object_grasped
        reward = jnp.where(
            (tcp_to_obj < 0.02) & (tcp_opened > 0), reward + 1.0 + reward + 5.0 * in_place, reward
        )
        reward = jnp.where(target_to_obj < self.TARGET_RADIUS, 10.0, reward)
        grasped = (
            self.touching(data, "objGeom") & (tcp_opened > 0) & (obj[2] - 0.02 > obj_init_pos[2])
        )
        info = {
            "success": (target_to_obj <= self.TARGET_RADIUS).astype(jnp.float32),
            "near_object": (tcp_to_obj <= 0.03).astype(jnp.float32),
            "grasp_success": grasped.astype(jnp.float32),
            "grasp_reward": object_grasped,
            "in_place_reward": in_place,
            "obj_to_target": target_to_obj,
            "unscaled_reward": reward,
        }
        return reward, info
