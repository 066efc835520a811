"""Shared helpers of the Meta-World tests: one compiled rollout per task, reference rollouts, and
the reference's reward on a state copied from the port.

A plain module, not conftest.py, so that its name cannot clash with another test folder's."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs.metaworld import CPU_COMPILER_OPTIONS, INFO_KEYS, make
from envs.metaworld.reference import make_reference, reference_rand_vecs

BATCH = 4  # one compiled batch shape per task for every test
STEPS = 20


@functools.cache
def env_for(task: str):
    return make(task)


@functools.cache
def rollout_fn(task: str):
    """jit of: vmap(reset_to) over reset vectors, then a scan of vmap(step) over actions.

    `start_steps` (B,) sets each episode's step count (to reach the 500-step limit quickly).
    Returns the reset observations, the task states, and per step (batch-major) obs, reward,
    done, metrics, the physics state (qpos, qvel, the hand's mocap position) after the step,
    and the number of active contacts of dimension 3 and 4.
    """
    env = env_for(task)

    def rollout(rand_vecs, actions, start_steps):
        state = jax.vmap(env.reset_to)(rand_vecs)
        state.info["path_length"] = start_steps.astype(jnp.int32)

        def body(s, a):
            s = jax.vmap(env.step)(s, a)
            p = s.pipeline_state
            contact = p._impl.contact
            active = contact.dist < contact.includemargin
            # active contacts per contact dimension (3, 4): (B, 2)
            per_dim = jnp.stack([jnp.sum(active & (contact.dim == k), -1) for k in (3, 4)], -1)
            mocap = p.mocap_pos[:, env._mocap]
            return s, (s.obs, s.reward, s.done, s.metrics, p.qpos, p.qvel, mocap, per_dim)

        _, out = jax.lax.scan(body, state, jnp.swapaxes(actions, 0, 1))
        out = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out)
        return state.obs, state.info["task"], out

    return jax.jit(rollout, compiler_options=CPU_COMPILER_OPTIONS)


@dataclass
class ReferenceRollout:
    obs: np.ndarray  # (T + 1, 39), reset first
    reward: np.ndarray  # (T,)
    info: list[dict]
    actions: np.ndarray  # (T, 4) float32


def reference_rollout(task: str, rand_vec: np.ndarray, steps: int, seed: int) -> ReferenceRollout:
    """The reference env from `rand_vec`, driven by Meta-World's scripted policy plus noise."""
    from metaworld.policies import ENV_POLICY_MAP

    env = make_reference(task, rand_vec)
    policy = ENV_POLICY_MAP[task]()
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    all_obs, rewards, infos, actions = [obs], [], [], []
    for _ in range(steps):
        # a copy: door-open's policy shifts the observation's handle in place (`_desired_pos`)
        action = np.clip(policy.get_action(obs.copy()) + rng.normal(0, 0.1, 4), -1, 1)
        action = action.astype(np.float32)
        obs, reward, _, _, info = env.step(action)
        all_obs.append(obs)
        rewards.append(reward)
        infos.append(info)
        actions.append(action)
    return ReferenceRollout(np.array(all_obs), np.array(rewards), infos, np.array(actions))


class ReferenceEvaluator:
    """A reference env evaluating states copied from the port (goal, object start and physics
    state are all overwritten, so the env is built from any reset vector Meta-World accepts: its
    reset loops forever on a vector that breaks its rejection rule, like a hand-placed one)."""

    def __init__(self, task: str):
        self.task = task
        self.env = make_reference(task, reference_rand_vecs(task, 1, seed=0)[0])
        self.env.reset()

    def __call__(
        self,
        task_state: dict,
        qpos: np.ndarray,
        qvel: np.ndarray,
        mocap_pos: np.ndarray,
        prev_frame: np.ndarray,
        action: np.ndarray,
    ) -> tuple[np.ndarray, float, dict]:
        """The reference's clipped observation, reward and info for the port's state."""
        env = self.env
        np.testing.assert_allclose(env.init_tcp, task_state["init_tcp"], atol=1e-6)
        env._target_pos = np.asarray(task_state["target_pos"], np.float64)
        env.obj_init_pos = np.asarray(task_state["obj_init_pos"], np.float64)
        moved = env_for(self.task).MOVED_BODY  # e.g. the drawers' case: a model field there
        if moved is not None:
            env.model.body(moved).pos = np.asarray(task_state["body_pos"], np.float64)
        if "obj_to_target_init" in task_state:  # button-press-topdown's reward margin
            env._obj_to_target_init = float(task_state["obj_to_target_init"])
        if "window_handle_pos_init" in task_state:  # the windows' reach margin
            env.window_handle_pos_init = np.asarray(task_state["window_handle_pos_init"], float)
        env.set_state(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))
        env.data.mocap_pos[:] = mocap_pos
        mujoco.mj_forward(env.model, env.data)
        env._prev_obs = np.asarray(prev_frame, np.float64)
        space = env.sawyer_observation_space
        obs = np.clip(env._get_obs(), space.low, space.high)
        reward, info = env.evaluate_state(obs, np.asarray(action))
        return obs, float(reward), info


def info_vector(info: dict) -> np.ndarray:
    return np.array([float(info[k]) for k in INFO_KEYS])
