"""pick-place-v3 (`metaworld.envs.sawyer_pick_place_v3.SawyerPickPlaceEnvV3`, reward v2)."""

from __future__ import annotations

import jax.numpy as jnp

from envs.metaworld.rewards import hamacher_product, tolerance
from envs.metaworld.tasks.puck import OBJ_HIGH, OBJ_LOW, PuckEnv

# SawyerPickPlaceEnvV3._gripper_caging_reward's constants (it ignores the parent's arguments).
PAD_SUCCESS_MARGIN = 0.05
XZ_SUCCESS_MARGIN = 0.005
OBJ_RADIUS = 0.015
# evaluate_state: success within 7 cm of the goal (the reward's 10 needs 5 cm).
SUCCESS_RADIUS = 0.07


def pick_place_caging_reward(
    action: jnp.ndarray,
    obj_pos: jnp.ndarray,
    obj_init_pos: jnp.ndarray,
    init_tcp: jnp.ndarray,
    tcp: jnp.ndarray,
    left_pad: jnp.ndarray,
    right_pad: jnp.ndarray,
) -> jnp.ndarray:
    """`SawyerPickPlaceEnvV3._gripper_caging_reward` (its own override, not the parent's).

    Unlike the parent, the y caging is signed (the left pad must be on the object's +y side, the
    right pad on its -y side) and the result is always the "high density" mean.

    Its margins read `self.init_left_pad` / `self.init_right_pad`, which `reset_model` sets to
    `get_body_com(...)`: a view into MuJoCo's `data.xpos`, not a copy, so they are the pads'
    *current* positions at every step (checked: `np.shares_memory(env.init_left_pad,
    env.data.xpos)` is True in metaworld 3.0.0). The port reproduces that: the margins use
    `left_pad` / `right_pad`, the pads now.
    """
    right_margin = jnp.abs(jnp.abs(obj_pos[1] - right_pad[1]) - PAD_SUCCESS_MARGIN)
    left_margin = jnp.abs(jnp.abs(obj_pos[1] - left_pad[1]) - PAD_SUCCESS_MARGIN)
    bounds = (OBJ_RADIUS, PAD_SUCCESS_MARGIN)
    right = tolerance(obj_pos[1] - right_pad[1], bounds, right_margin, "long_tail")
    left = tolerance(left_pad[1] - obj_pos[1], bounds, left_margin, "long_tail")
    y_caging = hamacher_product(left, right)

    xz = jnp.array([0, 2])
    xz_margin = jnp.linalg.norm(obj_init_pos[xz] - init_tcp[xz]) - XZ_SUCCESS_MARGIN
    xz_caging = tolerance(
        jnp.linalg.norm(tcp[xz] - obj_pos[xz]), (0.0, XZ_SUCCESS_MARGIN), xz_margin, "long_tail"
    )
    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), 1.0)
    caging = hamacher_product(y_caging, xz_caging)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    return (hamacher_product(caging, gripping) + caging) / 2


class PickPlaceEnv(PuckEnv):
    """Pick the puck up and bring it within 7 cm of a goal in the air (success)."""

    TASK = "pick-place-v3"
    HAND_INIT_POS = (0.0, 0.6, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    GOAL_LOW = (-0.1, 0.8, 0.05)
    GOAL_HIGH = (0.1, 0.9, 0.3)
    RESET_LOW = (*OBJ_LOW, *GOAL_LOW)
    RESET_HIGH = (*OBJ_HIGH, *GOAL_HIGH)

    def _reset_task(self, data, rand_vec):
        # reset_model: the puck goes exactly to the vector's first three entries (its
        # fix_extreme_obj_pos result is overwritten), the goal to the last three.
        target = rand_vec[3:6]
        obj_init_pos = rand_vec[:3]
        data = self.set_obj_xyz(data, obj_init_pos)
        task = {"target_pos": target, "obj_init_pos": obj_init_pos, "init_tcp": self.init_tcp()}
        return data, task

    def _evaluate(self, data, obs, action, task):
        obj = obs[4:7]
        tcp_opened = obs[3]
        tcp = self.tcp_center(data)
        target, obj_init_pos = task["target_pos"], task["obj_init_pos"]
        obj_to_target = jnp.linalg.norm(obj - target)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        in_place = tolerance(
            obj_to_target,
            bounds=(0, self.TARGET_RADIUS),
            margin=jnp.linalg.norm(obj_init_pos - target),
            sigmoid="long_tail",
        )
        object_grasped = pick_place_caging_reward(
            action,
            obj,
            obj_init_pos,
            task["init_tcp"],
            tcp,
            self.body_pos(data, "leftpad"),
            self.body_pos(data, "rightpad"),
        )
        reward = hamacher_product(object_grasped, in_place)
        lifted = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.01 > obj_init_pos[2])
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(obj_to_target < self.TARGET_RADIUS, 10.0, reward)
        grasped = (
            self.touching(data, "objGeom") & (tcp_opened > 0) & (obj[2] - 0.02 > obj_init_pos[2])
        )
        info = {
            "success": (obj_to_target <= SUCCESS_RADIUS).astype(jnp.float32),
            "near_object": (tcp_to_obj <= 0.03).astype(jnp.float32),
            "grasp_success": grasped.astype(jnp.float32),
            "grasp_reward": object_grasped,
            "in_place_reward": in_place,
            "obj_to_target": obj_to_target,
            "unscaled_reward": reward,
        }
        return reward, info
