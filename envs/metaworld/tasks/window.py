"""window-open-v3 and window-close-v3 (`metaworld.envs.sawyer_window_{open,close}_v3`, reward v2).

Both load `sawyer_window_horizontal.xml`: a fixed window frame (body `window`) with the sash
(`windowb_a`) on a slide joint along x, qpos[9] in [0, 0.2] (0 closed; a soft limit). The
reset vector is the window's position; Meta-World writes it into `model.body("window").pos`,
so here each episode's model carries it (`MOVED_BODY`). window-open starts closed and pushes
the sash 20 cm along +x; window-close starts with it open (0.2) and pushes it back.

The observed object is a handle site on the sash (`handleOpenStart` 4 cm left of the grip,
`handleCloseStart` 1 cm right of it), with a zero quaternion. The reward's reach margin uses
`window_handle_pos_init`, which the reference reads from `site_xpos` between its hand reset and
its next forward pass: the site with the window already at the reset vector (placed by the
first of the two `reset_model` calls of `reset()`, see the drawer's module) and the sash at 0,
plus 20 cm in x for window-close. The sash slides along world x, so that is the site after the
port's reset forward pass (sash at 0, or at 0.2 for window-close): read there
(`_after_reset_forward`). window-close's reset observation is read before a forward pass too:
it shows the handle with the sash still closed (`WindowCloseEnv._reset_frame`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from mujoco import mjx

from envs.metaworld.base import SawyerEnv
from envs.metaworld.rewards import hamacher_product, tolerance

SLIDE_QPOS = 9
SLIDE_OPEN = 0.2  # window-close's sash at reset
HANDLE_RADIUS = 0.02


class WindowEnv(SawyerEnv):
    """What window-open and window-close share: the scene, the hand, the reward's form."""

    HAND_INIT_POS = (0.0, 0.4, 0.2)
    HAND_LOW = (-0.5, 0.40, 0.05)
    HAND_HIGH = (0.5, 1.0, 0.5)
    # goal_space is the mocap box (hand_low / hand_high).
    GOAL_LOW = HAND_LOW
    GOAL_HIGH = HAND_HIGH
    MOVED_BODY = "window"
    # The handle site observed, the sash's opening at reset, the reach sigmoid.
    HANDLE_SITE: str
    SLIDE_INIT: float
    REACH_SIGMOID: str

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        m = self._mj_model
        self.check_joint_address("window_slide", SLIDE_QPOS)
        self._handle_site = m.site(self.HANDLE_SITE).id

    def _target(self, rand_vec: jnp.ndarray) -> jnp.ndarray:
        raise NotImplementedError

    def _reset_task(self, data, rand_vec):
        task = {
            "target_pos": self._target(rand_vec),
            "obj_init_pos": rand_vec,
            "init_tcp": self.init_tcp(),
            "body_pos": rand_vec,
            "window_handle_pos_init": jnp.zeros(3),
        }
        data = data.replace(qpos=data.qpos.at[SLIDE_QPOS].set(self.SLIDE_INIT))
        return data, task

    def _after_reset_forward(self, data, task):
        return {**task, "window_handle_pos_init": data.site_xpos[self._handle_site]}

    def _object_obs(self, data):
        # _get_quat_objects: np.zeros(4).
        return [data.site_xpos[self._handle_site]], [jnp.zeros(4)]

    def _target_to_obj_init(self, task: dict) -> jnp.ndarray:
        raise NotImplementedError

    def _evaluate(self, data: mjx.Data, obs, action, task):
        del action
        # compute_reward reads the site itself (`_get_pos_objects`), not the clipped
        # observation; the object entries are not clipped (unbounded), so they are equal.
        obj = obs[4:7]
        tcp = self.tcp_center(data)
        target = task["target_pos"]
        target_to_obj = jnp.abs(obj[0] - target[0])
        in_place = tolerance(
            target_to_obj,
            bounds=(0, self.TARGET_RADIUS),
            margin=jnp.abs(self._target_to_obj_init(task) - self.TARGET_RADIUS),
            sigmoid="long_tail",
        )
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(task["window_handle_pos_init"] - task["init_tcp"])
        reach = tolerance(
            tcp_to_obj,
            bounds=(0, HANDLE_RADIUS),
            margin=jnp.abs(tcp_to_obj_init - HANDLE_RADIUS),
            sigmoid=self.REACH_SIGMOID,
        )
        reward = 10.0 * hamacher_product(reach, in_place)
        info = {
            "success": (target_to_obj <= self.TARGET_RADIUS).astype(jnp.float32),
            "near_object": (tcp_to_obj <= 0.05).astype(jnp.float32),
            "grasp_success": jnp.ones(()),
            "grasp_reward": reach,
            "in_place_reward": in_place,
            "obj_to_target": target_to_obj,
            "unscaled_reward": reward,
        }
        return reward, info


class WindowOpenEnv(WindowEnv):
    """Push the closed sash open until the handle is within 5 cm (in x) of the goal, 20 cm on."""

    TASK = "window-open-v3"
    # _random_reset_space: the window's position (obj_low / obj_high).
    RESET_LOW = (-0.1, 0.7, 0.16)
    RESET_HIGH = (0.1, 0.9, 0.16)
    HANDLE_SITE = "handleOpenStart"
    SLIDE_INIT = 0.0
    REACH_SIGMOID = "long_tail"

    def _target(self, rand_vec):
        return rand_vec + jnp.array([0.2, 0.0, 0.0])

    def _target_to_obj_init(self, task):
        # obj_init_pos (the window's position), not the handle's: 0.2 from the goal in x.
        return jnp.abs(task["obj_init_pos"][0] - task["target_pos"][0])


class WindowCloseEnv(WindowEnv):
    """Push the open sash closed until the handle is within 5 cm (in x) of the goal."""

    TASK = "window-close-v3"
    # _random_reset_space: the window's position (obj_low / obj_high); x is fixed at 0.
    RESET_LOW = (0.0, 0.75, 0.2)
    RESET_HIGH = (0.0, 0.9, 0.2)
    HANDLE_SITE = "handleCloseStart"
    SLIDE_INIT = SLIDE_OPEN
    REACH_SIGMOID = "gaussian"

    def _target(self, rand_vec):
        return rand_vec

    def _reset_frame(self, data, task):
        # The reference's reset observation reads the handle site before any forward pass
        # after it opens the sash (qpos 0.2): the handle as it was with the sash closed, 20 cm
        # left of where it is (and so the previous frame of the first step's observation).
        frame = self._frame(data)
        closed = task["window_handle_pos_init"] - jnp.array([SLIDE_OPEN, 0.0, 0.0])
        return frame.at[4:7].set(closed)

    def _target_to_obj_init(self, task):
        return jnp.abs(task["window_handle_pos_init"][0] - task["target_pos"][0])
