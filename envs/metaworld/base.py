"""The Sawyer environment shared by the Meta-World tasks: `metaworld.sawyer_xyz_env` in JAX/MJX.

A task subclasses `SawyerEnv` and supplies what its Meta-World class does: its ranges (hand
start, mocap box, random reset space, goal space), `_reset_task` (where the objects and the goal
go for a sampled reset vector), `_object_obs` (object positions and quaternions) and `_evaluate`
(the v2 reward and the info dict). Everything else follows `SawyerXYZEnv` (metaworld 3.0.0):

- action (4,): xyz in [-1, 1] moves the mocap by action/100, clipped to the mocap box, quaternion
  (1, 0, 1, 0); the 4th entry drives the two finger actuators with (a, -a) (MuJoCo clamps to
  the control range); 5 physics steps per env step; then a forward pass, as `step` calls
  `mj_forward` before reading the observation.
- observation (39,): hand position, finger opening (distance of the claws / 0.1, clipped to
  [0, 1]), 14 object entries (position and quaternion (x, y, z, w) per object, zero-padded), the
  same 18 numbers of the previous step, and the goal (zeros when the goal is hidden). After a step
  it is clipped to Meta-World's observation space, and the reward reads the clipped one; the reset
  observation is not clipped and repeats the current frame as the previous one.
- reset: Meta-World resets MuJoCo's data, drives the hand to its start for 50 x 5 steps with the
  fingers open, then places the objects. That hand reset does not depend on the sampled vector
  (objects are placed after it), so it is run once, in native MuJoCo on the reference scene at
  construction, and every reset starts from its result: the port starts each episode from the
  reference's exact state (to float32), and resets cost one forward pass.
- reset vector: drawn uniformly from the task's random reset space (with the task's rejection
  rule, e.g. object and goal at least 0.15 apart), or taken from `goals` (a fixed set, one drawn
  per reset; a single row is Meta-World's fixed-goal mode, as after `set_task`).
- episode: 500 steps (`max_path_length`); `done` is 1 on the 500th step (truncation; Meta-World
  never terminates). `State.info` holds the previous frame, the task's reset quantities, the step
  count, `truncation` and `success`; `State.metrics` Meta-World's info dict of the step.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.base import Motion, Transform
from brax.envs.base import PipelineEnv, State
from mujoco import mjx
from mujoco.mjx._src import collision_driver, constraint, sensor, smooth, solver
from mujoco.mjx._src import forward as mjx_forward

from envs.metaworld import models

FRAME_SKIP = 5
MAX_PATH_LENGTH = 500
ACTION_SCALE = 1.0 / 100
MOCAP_QUAT = (1.0, 0.0, 1.0, 0.0)
HAND_RESET_STEPS = 50
OBS_OBJ_MAX_LEN = 14
OBS_SIZE = 39
ACTION_SIZE = 4
# SawyerXYZEnv._HAND_SPACE: the observation bounds of the hand position.
HAND_SPACE_LOW = (-0.525, 0.348, -0.0525)
HAND_SPACE_HIGH = (0.525, 1.025, 0.7)
# The keys of Meta-World's per-step info dict (State.metrics).
INFO_KEYS = (
    "success",
    "near_object",
    "grasp_success",
    "grasp_reward",
    "in_place_reward",
    "obj_to_target",
    "unscaled_reward",
)


def quat_from_matrix(mat: jnp.ndarray) -> jnp.ndarray:
    """scipy's `Rotation.from_matrix(mat).as_quat()` (x, y, z, w), with scipy's choice of sign."""
    trace = mat[0, 0] + mat[1, 1] + mat[2, 2]
    choice = jnp.argmax(jnp.stack([mat[0, 0], mat[1, 1], mat[2, 2], trace]))
    cases = jnp.stack(
        [
            jnp.stack(
                [
                    1 - trace + 2 * mat[0, 0],
                    mat[1, 0] + mat[0, 1],
                    mat[2, 0] + mat[0, 2],
                    mat[2, 1] - mat[1, 2],
                ]
            ),
            jnp.stack(
                [
                    mat[1, 0] + mat[0, 1],
                    1 - trace + 2 * mat[1, 1],
                    mat[2, 1] + mat[1, 2],
                    mat[0, 2] - mat[2, 0],
                ]
            ),
            jnp.stack(
                [
                    mat[2, 0] + mat[0, 2],
                    mat[2, 1] + mat[1, 2],
                    1 - trace + 2 * mat[2, 2],
                    mat[1, 0] - mat[0, 1],
                ]
            ),
            jnp.stack(
                [
                    mat[2, 1] - mat[1, 2],
                    mat[0, 2] - mat[2, 0],
                    mat[1, 0] - mat[0, 1],
                    1 + trace,
                ]
            ),
        ]
    )
    quat = cases[choice]
    return quat / jnp.linalg.norm(quat)


def _quat_to_mat(quat: jnp.ndarray) -> jnp.ndarray:
    w, x, y, z = quat
    return jnp.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def hand_reset_state(model: mujoco.MjModel, hand_init_pos: np.ndarray) -> dict[str, np.ndarray]:
    """`SawyerXYZEnv._reset_hand` after `mj_resetData`, run in native MuJoCo.

    Returns the data the reference has afterwards, and the positions it reads before its next
    forward pass (`xpos`, `site_xpos`: after `mj_step` these are those of the last step's start).
    """
    data = mujoco.MjData(model)
    mujoco.mj_resetData(model, data)
    mocap = model.body_mocapid[model.body("mocap").id]
    for _ in range(HAND_RESET_STEPS):
        data.mocap_pos[mocap] = hand_init_pos
        data.mocap_quat[mocap] = MOCAP_QUAT
        data.ctrl[:] = (-1.0, 1.0)
        mujoco.mj_step(model, data, nstep=FRAME_SKIP)
        mujoco.mj_rnePostConstraint(model, data)
    fields = [
        "qpos",
        "qvel",
        "act",
        "ctrl",
        "mocap_pos",
        "mocap_quat",
        "qacc_warmstart",
        "xpos",
        "site_xpos",
        "geom_xmat",
    ]
    state = {name: np.array(getattr(data, name)) for name in fields}
    state["time"] = np.array(data.time)
    return state


class MovedSubtree:
    """A body that Meta-World moves at reset by writing `model.body_pos`, moved in the data.

    Carrying each episode's position in the MJX model makes the model a batched argument under
    `vmap`, and XLA's compile time then grows with the batch (drawer-close, reset and 20 steps:
    72 s with one shared model, 404 s at batch 32 with per-environment models). The moved body
    hangs from the world, so moving it by an offset translates its whole subtree by that offset
    and changes nothing else that MuJoCo's kinematics computes (orientations, joint axes, the
    joint-space positions). `forward` therefore runs MJX's kinematics on the one shared model,
    translates the subtree's positions (bodies, inertial frames, joint anchors, geoms, sites),
    and runs the rest of `mjx.forward`, which reads positions from the data only.
    """

    def __init__(self, model: mujoco.MjModel, name: str):
        body = model.body(name).id
        if int(model.body_parentid[body]) != 0:
            raise ValueError(f"moved body {name!r} must be a child of the world body")
        inside = np.zeros(model.nbody, bool)
        for b in range(1, model.nbody):  # parents come before their children
            inside[b] = b == body or inside[model.body_parentid[b]]
        self.bodies = np.flatnonzero(inside)
        self.joints = np.flatnonzero(inside[model.jnt_bodyid])
        self.geoms = np.flatnonzero(inside[model.geom_bodyid])
        self.sites = np.flatnonzero(inside[model.site_bodyid])
        self.default_pos = jnp.asarray(model.body_pos[body], jnp.float32)

    def translate(self, data: mjx.Data, offset: jnp.ndarray) -> mjx.Data:
        """Kinematics' positions with the subtree moved by `offset` (world frame)."""
        return data.replace(
            xpos=data.xpos.at[self.bodies].add(offset),
            xipos=data.xipos.at[self.bodies].add(offset),
            xanchor=data.xanchor.at[self.joints].add(offset),
            geom_xpos=data.geom_xpos.at[self.geoms].add(offset),
            site_xpos=data.site_xpos.at[self.sites].add(offset),
        )

    def forward(self, m: Any, d: mjx.Data, offset: jnp.ndarray) -> mjx.Data:
        """`mjx.forward` (mujoco 4.0.0, JAX implementation) with the subtree moved by `offset`
        after the kinematics; `tests/envs/metaworld/test_metaworld_env.py` checks it against
        `mjx.forward` on the moved model."""
        d = smooth.kinematics(m, d)
        d = self.translate(d, offset)
        d = smooth.com_pos(m, d)
        d = smooth.camlight(m, d)
        d = smooth.tendon(m, d)
        d = smooth.crb(m, d)
        d = smooth.tendon_armature(m, d)
        d = smooth.factor_m(m, d)
        d = collision_driver.collision(m, d)
        d = constraint.make_constraint(m, d)
        d = smooth.transmission(m, d)
        d = sensor.sensor_pos(m, d)
        d = mjx_forward.fwd_velocity(m, d)
        d = sensor.sensor_vel(m, d)
        d = mjx_forward.fwd_actuation(m, d)
        d = mjx_forward.fwd_acceleration(m, d)
        if d._impl.efc_J.size == 0:
            return d.replace(qacc=d.qacc_smooth)
        d = solver.solve(m, d)
        return sensor.sensor_acc(m, d)


class SawyerEnv(PipelineEnv):
    """One Meta-World task on MJX with Brax's `Env` API (see the module docstring)."""

    TASK: ClassVar[str]
    HAND_INIT_POS: ClassVar[tuple[float, float, float]]
    HAND_LOW: ClassVar[tuple[float, float, float]]  # mocap box (Meta-World's hand_low/high)
    HAND_HIGH: ClassVar[tuple[float, float, float]]
    RESET_LOW: ClassVar[tuple[float, ...]]  # _random_reset_space
    RESET_HIGH: ClassVar[tuple[float, ...]]
    GOAL_LOW: ClassVar[tuple[float, float, float]]  # goal_space
    GOAL_HIGH: ClassVar[tuple[float, float, float]]
    TARGET_RADIUS: ClassVar[float] = 0.05
    # A body whose position Meta-World writes into the model at reset (the drawers' case, the
    # button's box, the window): its position is then part of the task state ("body_pos"), and
    # the physics translates the body's subtree (see `MovedSubtree`).
    MOVED_BODY: ClassVar[str | None] = None

    def __init__(self, goals: Any = None, goal_observable: bool = True):
        """`goals`: None (a new reset vector per reset) or an array (K, reset dim) to draw from.

        `goal_observable`: the goal in the observation (Meta-World's MT benchmarks) or zeros.
        """
        self.task_name = models.check_task(self.TASK)
        self._mj_model = models.load_mjx_model(self.TASK)
        from brax.io import mjcf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Brax System ... not maintained"
            sys = mjcf.load_model(models.load_mjx_model(self.TASK))
        super().__init__(sys, backend="mjx", n_frames=FRAME_SKIP)
        self.goal_observable = bool(goal_observable)
        self.reset_dim = len(self.RESET_LOW)
        self.goals = None if goals is None else self._check_goals(goals)

        m = self._mj_model
        self._body = {name: m.body(name).id for name in ("hand", "rightclaw", "leftclaw")}
        self._body.update(leftpad=m.body("leftpad").id, rightpad=m.body("rightpad").id)
        self._site = {n: m.site(n).id for n in ("rightEndEffector", "leftEndEffector")}
        self._mocap = int(m.body_mocapid[m.body("mocap").id])
        if m.opt.integrator != mujoco.mjtIntegrator.mjINT_EULER:
            raise AssertionError("SawyerEnv._physics integrates with Euler, as the scenes do")
        self._moved = None if self.MOVED_BODY is None else MovedSubtree(m, self.MOVED_BODY)

        reference = models.load_reference_model(self.TASK)
        self._reference_geom_quat = np.array(reference.geom_quat)
        self._hand_reset = {
            k: jnp.asarray(v)
            for k, v in hand_reset_state(reference, np.array(self.HAND_INIT_POS)).items()
        }
        goal_low = np.array(self.GOAL_LOW) if self.goal_observable else np.zeros(3)
        goal_high = np.array(self.GOAL_HIGH) if self.goal_observable else np.zeros(3)
        inf = np.full(OBS_OBJ_MAX_LEN, np.inf)
        frame_low = np.concatenate([HAND_SPACE_LOW, [-1.0], -inf])
        frame_high = np.concatenate([HAND_SPACE_HIGH, [1.0], inf])
        self._obs_low = jnp.asarray(np.concatenate([frame_low, frame_low, goal_low]))
        self._obs_high = jnp.asarray(np.concatenate([frame_high, frame_high, goal_high]))

    # ------------------------------------------------------------------ task hooks
    def _reject(self, rand_vec: jnp.ndarray) -> jnp.ndarray:
        """True where Meta-World's reset would draw the vector again (default: never)."""
        del rand_vec
        return jnp.bool_(False)

    def _reset_task(self, data: mjx.Data, rand_vec: jnp.ndarray) -> tuple[mjx.Data, dict]:
        """Place objects for `rand_vec` after the hand reset; return data and the task state.

        The task state must hold "target_pos" (3,), "obj_init_pos" (3,) and "init_tcp" (3,).
        """
        raise NotImplementedError

    def _moved_offset(self, task: dict) -> jnp.ndarray | None:
        """How far this episode moves `MOVED_BODY` from the scene's position (world frame), or
        None for a task that moves no body."""
        if self.MOVED_BODY is None:
            return None
        return task["body_pos"].astype(self.sys.body_pos.dtype) - self._moved.default_pos

    def _after_reset_forward(self, data: mjx.Data, task: dict) -> dict:
        """The task state completed from the reset's forward pass (default: unchanged), for
        tasks whose reference reads positions after placing its objects."""
        del data
        return task

    def _reset_frame(self, data: mjx.Data, task: dict) -> jnp.ndarray:
        """The reset observation's frame (default: the frame after the reset's forward pass),
        for tasks whose reference reads it before a forward pass after placing its objects."""
        del task
        return self._frame(data)

    def _object_obs(self, data: mjx.Data) -> tuple[list[jnp.ndarray], list[jnp.ndarray]]:
        """Positions (3,) and quaternions (4,) of the task's objects, in observation order."""
        raise NotImplementedError

    def _evaluate(
        self, data: mjx.Data, obs: jnp.ndarray, action: jnp.ndarray, task: dict
    ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Meta-World's `evaluate_state`: the reward and the info dict (INFO_KEYS)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for tasks
    def check_joint_address(self, joint: str, index: int) -> None:
        """Raise unless the scene's `joint` has qpos and qvel address `index` (the task's code
        reads it there)."""
        j = self._mj_model.joint(joint)
        if int(j.qposadr[0]) != index or int(j.dofadr[0]) != index:
            raise AssertionError(f"joint {joint!r} must be qpos[{index}] / qvel[{index}]")

    def tcp_center(self, data: mjx.Data) -> jnp.ndarray:
        """The midpoint of the two fingers' end-effector sites."""
        right = data.site_xpos[self._site["rightEndEffector"]]
        left = data.site_xpos[self._site["leftEndEffector"]]
        return (right + left) / 2.0

    def init_tcp(self) -> jnp.ndarray:
        """`init_tcp`: the tool centre point the reference reads right after the hand reset."""
        sites = self._hand_reset["site_xpos"]
        right, left = self._site["rightEndEffector"], self._site["leftEndEffector"]
        return (sites[right] + sites[left]) / 2.0

    def body_pos(self, data: mjx.Data, name: str) -> jnp.ndarray:
        return data.xpos[self._mj_model.body(name).id]

    def geom_quat_obs(self, data: mjx.Data, geom_name: str) -> jnp.ndarray:
        """scipy's quaternion (x, y, z, w) of a geom's frame, as the reference scene defines it.

        The frame is the body's times the reference geom's orientation, so the observation does
        not depend on how the MJX scene re-meshed the geom.
        """
        geom = self._mj_model.geom(geom_name).id
        body = int(self._mj_model.geom_bodyid[geom])
        local = _quat_to_mat(jnp.asarray(self._reference_geom_quat[geom]))
        return quat_from_matrix(data.xmat[body] @ local)

    def touching(self, data: mjx.Data, geom_name: str) -> jnp.ndarray:
        """`SawyerXYZEnv.touching_object`: both pads press on the geom (positive normal force)."""
        m = self._mj_model
        target = m.geom(geom_name).id
        contact = data._impl.contact
        force = data._impl.efc_force
        if contact.geom1.shape[0] == 0:
            return jnp.bool_(False)
        active = (contact.dist < contact.includemargin) & (contact.efc_address >= 0)
        normal = jnp.where(active, force[jnp.maximum(contact.efc_address, 0)], 0.0)

        def pad_force(pad: str) -> jnp.ndarray:
            pad_id = m.geom(pad).id
            pair = ((contact.geom1 == pad_id) & (contact.geom2 == target)) | (
                (contact.geom2 == pad_id) & (contact.geom1 == target)
            )
            return jnp.sum(jnp.where(pair, normal, 0.0))

        return (pad_force("leftpad_geom") > 0) & (pad_force("rightpad_geom") > 0)

    # ------------------------------------------------------------------ the API
    @property
    def observation_size(self) -> int:
        return OBS_SIZE

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    def _check_goals(self, goals: Any) -> jnp.ndarray:
        goals = np.asarray(goals, dtype=np.float64)
        if goals.ndim == 1:
            goals = goals[None]
        if goals.ndim != 2 or goals.shape[1] != self.reset_dim or goals.shape[0] == 0:
            raise ValueError(
                f"goals for {self.TASK} must have shape (K, {self.reset_dim}) (reset vectors), "
                f"got {goals.shape}"
            )
        low, high = np.array(self.RESET_LOW), np.array(self.RESET_HIGH)
        # 1e-6: vectors drawn by `sample_rand_vec` are float32, whose rounding of a bound such
        # as door-open's z = 0.15 (low = high) lies outside the float64 range by up to half a
        # float32 ulp (6e-9 at 0.15, 3e-8 at 0.9).
        tol = 1e-6
        if np.any(goals < low - tol) or np.any(goals > high + tol):
            raise ValueError(f"goals for {self.TASK} must lie in [{low}, {high}]")
        return jnp.asarray(goals)

    def set_goals(self, goals: Any) -> None:
        """From now on draw every reset vector from `goals` (K, reset dim); None: sample freely."""
        self.goals = None if goals is None else self._check_goals(goals)

    def sample_rand_vec(self, rng: jax.Array) -> jnp.ndarray:
        """A reset vector: from `goals` if set, else uniform with the task's rejection rule."""
        if self.goals is not None:
            return self.goals[jax.random.randint(rng, (), 0, self.goals.shape[0])]
        low, high = jnp.asarray(self.RESET_LOW), jnp.asarray(self.RESET_HIGH)

        def draw(key):
            return jax.random.uniform(key, (self.reset_dim,), minval=low, maxval=high)

        def cond(carry):
            return self._reject(carry[1])

        def body(carry):
            key, _ = carry
            key, sub = jax.random.split(key)
            return key, draw(sub)

        key, sub = jax.random.split(rng)
        return jax.lax.while_loop(cond, body, (key, draw(sub)))[1]

    def reset(self, rng: jax.Array) -> State:
        """A new episode (reset vector drawn with `rng`)."""
        return self.reset_to(self.sample_rand_vec(rng))

    def reset_to(self, rand_vec: jax.Array) -> State:
        """A new episode for a given reset vector (Meta-World's `_last_rand_vec`)."""
        rand_vec = jnp.asarray(rand_vec, jnp.float32)
        if rand_vec.shape != (self.reset_dim,):
            raise ValueError(
                f"reset vector of {self.TASK} must have shape ({self.reset_dim},), "
                f"got {rand_vec.shape}"
            )
        data = self._hand_reset_data()
        data, task = self._reset_task(data, rand_vec)
        # The first step's warm start. The reference keeps the hand reset's (MuJoCo's solver
        # converges from any start). MJX's line search can stall at that point once the objects
        # are placed at rest (exactly zero contact velocity under an elliptic cone: no progress
        # from the warm start, measured 12 rad/s^2 off on the arm), but converges from zero; so
        # the forward pass starts from zero and its converged accelerations warm-start step 1.
        data = data.replace(qacc_warmstart=jnp.zeros_like(data.qacc_warmstart))
        data = self._forward(data, self._moved_offset(task))
        data = data.replace(qacc_warmstart=data.qacc)
        task = self._after_reset_forward(data, task)
        frame = self._reset_frame(data, task)
        obs = jnp.concatenate([frame, frame, self._goal_obs(task)])
        zero = jnp.zeros(())
        info = {
            "prev_frame": frame,
            "task": task,
            "rand_vec": rand_vec,
            "path_length": jnp.zeros((), jnp.int32),
            "truncation": zero,
            "success": zero,
        }
        metrics = {k: zero for k in INFO_KEYS}
        return State(data, obs, zero, zero, metrics, info)

    def step(self, state: State, action: jax.Array) -> State:
        """One env step: mocap move, 5 physics steps, forward pass, observation and reward."""
        action = jnp.asarray(action)
        if action.shape != (ACTION_SIZE,):
            raise ValueError(
                f"action must have shape ({ACTION_SIZE},) (xyz mocap delta, gripper), got "
                f"{action.shape}; vmap `step` over a batch of environments"
            )
        action = action.astype(jnp.float32)
        data = state.pipeline_state
        delta = jnp.clip(action[:3], -1.0, 1.0) * ACTION_SCALE
        mocap = data.mocap_pos.at[self._mocap].set(
            jnp.clip(
                data.mocap_pos[self._mocap] + delta,
                jnp.asarray(self.HAND_LOW),
                jnp.asarray(self.HAND_HIGH),
            )
        )
        data = data.replace(
            mocap_pos=mocap,
            mocap_quat=data.mocap_quat.at[self._mocap].set(jnp.asarray(MOCAP_QUAT)),
            ctrl=jnp.stack([action[3], -action[3]]).astype(data.ctrl.dtype),
        )
        task = state.info["task"]
        data = self._physics(data, self._moved_offset(task))

        frame = self._frame(data)
        obs = jnp.concatenate([frame, state.info["prev_frame"], self._goal_obs(task)])
        obs = jnp.clip(obs, self._obs_low, self._obs_high)
        reward, terms = self._evaluate(data, obs, action, task)
        path_length = state.info["path_length"] + 1
        truncation = (path_length >= MAX_PATH_LENGTH).astype(jnp.float32)
        info = {
            **state.info,
            "prev_frame": frame,
            "path_length": path_length,
            "truncation": truncation,
            "success": terms["success"],
        }
        metrics = {k: jnp.asarray(terms[k], jnp.float32) for k in INFO_KEYS}
        return state.replace(
            pipeline_state=data,
            obs=obs,
            reward=jnp.asarray(reward, jnp.float32),
            done=truncation,
            metrics=metrics,
            info=info,
        )

    # ------------------------------------------------------------------ internals
    def _hand_reset_data(self) -> State:
        """The physics state after the hand reset, before any forward pass.

        Brax's `pipeline_init` would run a forward pass here, which `reset_to` runs anyway
        once the objects are placed: built directly, the reset compiles one forward pass.
        """
        from brax.mjx.base import State as PipelineState
        from brax.mjx.pipeline import _reformat_contact

        h = self._hand_reset
        data = mjx.make_data(self.sys)
        data = data.replace(
            qpos=h["qpos"].astype(data.qpos.dtype),
            qvel=h["qvel"].astype(data.qvel.dtype),
            act=h["act"].astype(data.act.dtype),
            ctrl=h["ctrl"].astype(data.ctrl.dtype),
            mocap_pos=h["mocap_pos"].astype(data.mocap_pos.dtype),
            mocap_quat=h["mocap_quat"].astype(data.mocap_quat.dtype),
            time=h["time"].astype(data.time.dtype),
        )
        nbody = self.sys.nbody - 1
        zero = Transform(pos=jnp.zeros((nbody, 3)), rot=jnp.zeros((nbody, 4)))
        fields = dict(data.__dict__)
        fields["contact"] = _reformat_contact(self.sys, data._impl.contact)
        return PipelineState(q=data.qpos, qd=data.qvel, x=zero, xd=zero, **fields)

    def _physics(self, data, offset=None):
        """`FRAME_SKIP` x `mj_step`, then `mj_forward`: as forward, integrate, ..., forward.

        Scanned as FRAME_SKIP + 1 rounds of (forward, Euler) whose last round keeps the
        forward's state, so the step compiles one forward pass instead of two (it is the
        largest part of the program). Brax's `contact` field is not updated (nothing reads it;
        `data._impl.contact` holds MJX's contacts). `offset`: see `_mj_forward`.
        """

        def round_(d, k):
            d = self._mj_forward(d, offset)
            integrated = mjx.euler(self.sys, d)
            keep = k < FRAME_SKIP
            return jax.tree.map(lambda a, b: jnp.where(keep, a, b), integrated, d), None

        data = jax.lax.scan(round_, data, jnp.arange(FRAME_SKIP + 1))[0]
        return self._coordinates(data)

    def _forward(self, data, offset=None):
        """`mj_forward`, and Brax's maximal coordinates (x, xd) for the positions."""
        return self._coordinates(self._mj_forward(data, offset))

    def _mj_forward(self, data, offset):
        """`mj_forward` on the task's model; for a task with a `MOVED_BODY`, on the model with
        that body moved by `offset` (world frame), see `MovedSubtree`."""
        if offset is None:
            return mjx.forward(self.sys, data)
        return self._moved.forward(self.sys, data, offset)

    def _coordinates(self, data):
        """Brax's `q`, `qd` and maximal coordinates (x, xd) of a forward-passed state."""
        x = Transform(pos=data.xpos[1:], rot=data.xquat[1:])
        cvel = Motion(vel=data.cvel[1:, 3:], ang=data.cvel[1:, :3])
        offset = data.xpos[1:, :] - data.subtree_com[self.sys.body_rootid[1:]]
        xd = Transform.create(pos=offset).vmap().do(cvel)
        return data.replace(q=data.qpos, qd=data.qvel, x=x, xd=xd)

    def _frame(self, data: mjx.Data) -> jnp.ndarray:
        """`_get_curr_obs_combined_no_goal`: the 18 numbers of one frame."""
        hand = data.xpos[self._body["hand"]]
        fingers = data.xpos[self._body["rightclaw"]] - data.xpos[self._body["leftclaw"]]
        opening = jnp.clip(jnp.linalg.norm(fingers) / 0.1, 0.0, 1.0)
        positions, quats = self._object_obs(data)
        objects = jnp.concatenate(
            [jnp.concatenate([p, q]) for p, q in zip(positions, quats, strict=True)]
        )
        padded = jnp.zeros(OBS_OBJ_MAX_LEN).at[: objects.shape[0]].set(objects)
        return jnp.concatenate([hand, opening[None], padded])

    def _goal_obs(self, task: dict) -> jnp.ndarray:
        goal = task["target_pos"]
        return goal if self.goal_observable else jnp.zeros_like(goal)
