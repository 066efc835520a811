"""peg-insert-side-v3 (`metaworld.envs.sawyer_peg_insertion_side_v3`, reward v2).

It loads `sawyer_peg_insertion_side.xml`: a square peg (body `peg`, a 3 x 3 x 24 cm box along x
on a free joint at qpos[9]) lying on the table, and a block (body `box`, turned 90 degrees about
z) with a square hole (6 x 6 cm) running through it along x, 10 to 16 cm above the table. The
reset vector is the peg's position (x in [0, 0.2], y in [0.5, 0.7], z 0.02) and the block's (x
in [-0.35, -0.25], y in [0.4, 0.7], z 0); Meta-World redraws it while the two are closer than
10 cm in xy (never, with these ranges), writes the block's into `model.body("box").pos`
(`MOVED_BODY`) and puts the peg at its position at rest. The goal is the block + (0.03, 0,
0.13): 6.6 cm deep into the hole.

The observed object is the `pegGrasp` site (3 cm right of the peg's centre, 1 cm up) and its
frame's quaternion. The reward reads the peg's head (`pegHead`, 10 cm left of the centre): its
distance to the goal, with y and z weighted twice (`obj_to_target`); success within 7 cm. The
in-place term's margin is that distance from `peg_head_pos_init`, which the reference reads
between its hand reset and placing the peg: the head with the peg where the hand reset left
it (at its XML position, at rest), the same for every reset, read here from the native hand
reset. Two regions in front of the hole (`*_collision_box_*` sites) damp the in-place term
(`rect_prism_tolerance`) so that the head enters the hole, not the block's face.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from mujoco import mjx

from envs.metaworld.base import SawyerEnv, quat_from_matrix
from envs.metaworld.rewards import (
    gripper_caging_reward,
    hamacher_product,
    rect_prism_tolerance,
    tolerance,
)

PEG_QPOS = 9
GOAL_OFFSET = (0.03, 0.0, 0.13)  # from the block's position
MIN_PEG_BOX_DISTANCE = 0.1
SUCCESS_DISTANCE = 0.07
TARGET_SCALE = (1.0, 2.0, 2.0)  # obj_to_target weighs y and z twice


class PegInsertSideEnv(SawyerEnv):
    """Grasp the peg, lift it and push its head into the block's hole from the side."""

    TASK = "peg-insert-side-v3"
    HAND_INIT_POS = (0.0, 0.6, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    # _random_reset_space: the peg's position (obj_low / obj_high), the block's (goal_low /
    # goal_high).
    RESET_LOW = (0.0, 0.5, 0.02, -0.35, 0.4, -0.001)
    RESET_HIGH = (0.2, 0.7, 0.02, -0.25, 0.7, 0.001)
    # goal_space: the block's range moved by GOAL_OFFSET.
    GOAL_LOW = (-0.32, 0.4, 0.129)
    GOAL_HIGH = (-0.22, 0.7, 0.131)
    MOVED_BODY = "box"
    # The class overrides SawyerXYZEnv's 0.05: the in-place term's bound.
    TARGET_RADIUS = 0.07

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        m = self._mj_model
        # the peg's free joint is unnamed
        joint = int(m.body("peg").jntadr[0])
        if int(m.jnt_qposadr[joint]) != PEG_QPOS or int(m.jnt_dofadr[joint]) != PEG_QPOS:
            raise AssertionError(
                f"the peg's free joint must be qpos[{PEG_QPOS}] / qvel[{PEG_QPOS}]"
            )
        self._site_ids = {
            name: m.site(name).id
            for name in (
                "pegGrasp",
                "pegHead",
                "bottom_right_corner_collision_box_1",
                "top_left_corner_collision_box_1",
                "bottom_right_corner_collision_box_2",
                "top_left_corner_collision_box_2",
            )
        }
        # The head where the reference reads it, right after the hand reset.
        self._peg_head_pos_init = self._hand_reset["site_xpos"][self._site_ids["pegHead"]]

    def _reject(self, rand_vec: jnp.ndarray) -> jnp.ndarray:
        return jnp.linalg.norm(rand_vec[:2] - rand_vec[3:5]) < MIN_PEG_BOX_DISTANCE

    def _reset_task(self, data, rand_vec):
        peg, box = rand_vec[:3], rand_vec[3:]
        task = {
            "target_pos": box + jnp.asarray(GOAL_OFFSET),
            "obj_init_pos": peg,
            "init_tcp": self.init_tcp(),
            "body_pos": box,
            "peg_head_pos_init": self._peg_head_pos_init,
        }
        # _set_obj_xyz: the peg's position (its orientation kept), at rest
        data = data.replace(
            qpos=data.qpos.at[PEG_QPOS : PEG_QPOS + 3].set(peg),
            qvel=data.qvel.at[PEG_QPOS : PEG_QPOS + 6].set(0.0),
        )
        return data, task

    def _site_pos(self, data: mjx.Data, name: str) -> jnp.ndarray:
        return data.site_xpos[self._site_ids[name]]

    def _object_obs(self, data):
        grasp = self._site_ids["pegGrasp"]
        return [data.site_xpos[grasp]], [quat_from_matrix(data.site_xmat[grasp])]

    def _evaluate(self, data: mjx.Data, obs, action, task):
        tcp = self.tcp_center(data)
        obj = obs[4:7]
        obj_head = self._site_pos(data, "pegHead")
        tcp_opened = obs[3]
        target, obj_init_pos = task["target_pos"], task["obj_init_pos"]
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        scale = jnp.asarray(TARGET_SCALE)
        obj_to_target = jnp.linalg.norm((obj_head - target) * scale)
        in_place_margin = jnp.linalg.norm((task["peg_head_pos_init"] - target) * scale)
        in_place = tolerance(
            obj_to_target,
            bounds=(0, self.TARGET_RADIUS),
            margin=in_place_margin,
            sigmoid="long_tail",
        )
        collision_boxes = hamacher_product(
            rect_prism_tolerance(
                obj_head,
                zero=self._site_pos(data, "bottom_right_corner_collision_box_2"),
                one=self._site_pos(data, "top_left_corner_collision_box_2"),
            ),
            rect_prism_tolerance(
                obj_head,
                zero=self._site_pos(data, "bottom_right_corner_collision_box_1"),
                one=self._site_pos(data, "top_left_corner_collision_box_1"),
            ),
        )
        in_place = hamacher_product(in_place, collision_boxes)
        object_grasped = gripper_caging_reward(
            action,
            obj,
            obj_init_pos,
            task["init_tcp"],
            tcp,
            self.body_pos(data, "leftpad"),
            self.body_pos(data, "rightpad"),
            object_reach_radius=0.01,
            obj_radius=0.0075,
            pad_success_thresh=0.03,
            xz_thresh=0.005,
            high_density=True,
        )
        lifted = (tcp_to_obj < 0.08) & (tcp_opened > 0) & (obj[2] - 0.01 > obj_init_pos[2])
        object_grasped = jnp.where(lifted, 1.0, object_grasped)
        reward = hamacher_product(object_grasped, in_place)
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        success = obj_to_target <= SUCCESS_DISTANCE
        reward = jnp.where(success, 10.0, reward)
        grasped = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.01 > obj_init_pos[2])
        info = {
            "success": success.astype(jnp.float32),
            "near_object": (tcp_to_obj <= 0.03).astype(jnp.float32),
            "grasp_success": grasped.astype(jnp.float32),
            "grasp_reward": object_grasped,
            "in_place_reward": in_place,
            "obj_to_target": obj_to_target,
            "unscaled_reward": reward,
        }
        return reward, info
