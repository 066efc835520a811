"""button-press-topdown-v3 (`metaworld.envs.sawyer_button_press_topdown_v3`, reward v2).

The scene `sawyer_button_press_topdown.xml`: a button box (body `box`, fixed) with the button on
a slide joint, qpos[9] in [-0.06, 0] (a soft limit; 0 up, negative pressed down). The reset
vector is the box's position, x in [-0.1, 0.1], y in [0.8, 0.9], z = 0.115; Meta-World writes
it into `model.body("box").pos`, so here each episode's model carries it (`MOVED_BODY`).

The observed object is the button's body position plus 19.3 cm of height (near the cap's top),
the goal the `hole` site 10 cm above the box's origin; success is the object within 2.4 cm of
the goal's height, so the button must be pressed 6.95 cm, past its joint limit: the limit is
soft and the scripted policy presses through it until the collar sits in the hole and the cap
on the box (`models.CONTACT_PAIRS`).

The reference's `reset()` runs `reset_model` twice (directly, then from gymnasium's reset after
`mj_resetData`), so the hand reset of the observed episode runs with the box already in place;
the hand starts 45 cm away from the box and does not touch it, so the port's single reset from
the common hand-reset state matches it (the button settles on its spring during the hand reset
whatever the box's position, since its slide axis is vertical).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from mujoco import mjx

from envs.metaworld.base import SawyerEnv
from envs.metaworld.rewards import hamacher_product, tolerance

BUTTON_QPOS = 9
# _get_pos_objects: the button's body position plus this offset.
OBJ_OFFSET = (0.0, 0.0, 0.193)


class ButtonPressTopdownEnv(SawyerEnv):
    """Press the button down from above until it is within 2.4 cm of the hole's height."""

    TASK = "button-press-topdown-v3"
    HAND_INIT_POS = (0.0, 0.4, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    # _random_reset_space: the box's position (obj_low / obj_high).
    RESET_LOW = (-0.1, 0.8, 0.115)
    RESET_HIGH = (0.1, 0.9, 0.115)
    # goal_space is the mocap box (hand_low / hand_high).
    GOAL_LOW = HAND_LOW
    GOAL_HIGH = HAND_HIGH
    MOVED_BODY = "box"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        m = self._mj_model
        self.check_joint_address("btnbox_joint", BUTTON_QPOS)
        self._button_body = m.body("button").id
        self._hole_site = m.site("hole").id
        self._start_site = m.site("buttonStart").id

    def _reset_task(self, data, rand_vec):
        # reset_model: the box moves to the reset vector; target and margins are read after the
        # forward pass (_after_reset_forward).
        task = {
            "target_pos": jnp.zeros(3),
            "obj_init_pos": rand_vec,
            "init_tcp": self.init_tcp(),
            "body_pos": rand_vec,
            "obj_to_target_init": jnp.zeros(()),
        }
        return data, task

    def _after_reset_forward(self, data, task):
        # _target_pos: the `hole` site; _obj_to_target_init: its height below `buttonStart`.
        target = data.site_xpos[self._hole_site]
        start = data.site_xpos[self._start_site]
        return {**task, "target_pos": target, "obj_to_target_init": jnp.abs(target[2] - start[2])}

    def _object_obs(self, data):
        # _get_quat_objects: MuJoCo's (w, x, y, z) body quaternion, as read from data.xquat.
        button = data.xpos[self._button_body] + jnp.asarray(OBJ_OFFSET)
        return [button], [data.xquat[self._button_body]]

    def _evaluate(self, data: mjx.Data, obs, action, task):
        del action
        obj = obs[4:7]
        tcp = self.tcp_center(data)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj - task["init_tcp"])  # the current obj (as theirs)
        obj_to_target = jnp.abs(task["target_pos"][2] - obj[2])
        tcp_closed = 1.0 - obs[3]
        near_button = tolerance(
            tcp_to_obj, bounds=(0, 0.01), margin=tcp_to_obj_init, sigmoid="long_tail"
        )
        button_pressed = tolerance(
            obj_to_target,
            bounds=(0, 0.005),
            margin=task["obj_to_target_init"],
            sigmoid="long_tail",
        )
        reward = 5.0 * hamacher_product(tcp_closed, near_button)
        reward = reward + jnp.where(tcp_to_obj <= 0.03, 5.0 * button_pressed, 0.0)
        info = {
            "success": (obj_to_target <= 0.024).astype(jnp.float32),
            "near_object": (tcp_to_obj <= 0.05).astype(jnp.float32),
            "grasp_success": (obs[3] > 0).astype(jnp.float32),
            "grasp_reward": near_button,
            "in_place_reward": button_pressed,
            "obj_to_target": obj_to_target,
            "unscaled_reward": reward,
        }
        return reward, info
