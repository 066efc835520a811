"""reach-v3 (`metaworld.envs.sawyer_reach_v3.SawyerReachEnvV3`, reward v2)."""

from __future__ import annotations

import jax.numpy as jnp

from envs.metaworld.rewards import tolerance
from envs.metaworld.tasks.puck import OBJ_HIGH, OBJ_LOW, PuckEnv


class ReachEnv(PuckEnv):
    """Move the tool centre point within 5 cm of the goal; the puck is only an observation."""

    TASK = "reach-v3"
    HAND_INIT_POS = (0.0, 0.6, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    GOAL_LOW = (-0.1, 0.8, 0.05)
    GOAL_HIGH = (0.1, 0.9, 0.3)
    RESET_LOW = (*OBJ_LOW, *GOAL_LOW)
    RESET_HIGH = (*OBJ_HIGH, *GOAL_HIGH)

    def _reset_task(self, data, rand_vec):
        target = rand_vec[3:6]
        obj_init_pos = rand_vec[:3]
        data = self.set_obj_xyz(data, obj_init_pos)
        task = {"target_pos": target, "obj_init_pos": obj_init_pos, "init_tcp": self.init_tcp()}
        return data, task

    def _evaluate(self, data, obs, action, task):
        target = task["target_pos"]
        tcp_to_target = jnp.linalg.norm(self.tcp_center(data) - target)
        in_place_margin = jnp.linalg.norm(jnp.asarray(self.HAND_INIT_POS) - target)
        in_place = tolerance(
            tcp_to_target,
            bounds=(0, self.TARGET_RADIUS),
            margin=in_place_margin,
            sigmoid="long_tail",
        )
        reward = 10 * in_place
        info = {
            "success": (tcp_to_target <= 0.05).astype(jnp.float32),
            "near_object": tcp_to_target,
            "grasp_success": jnp.ones(()),
            "grasp_reward": tcp_to_target,
            "in_place_reward": in_place,
            "obj_to_target": tcp_to_target,
            "unscaled_reward": reward,
        }
        return reward, info
