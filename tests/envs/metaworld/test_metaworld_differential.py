"""The MJX port against the installed `metaworld` (3.0.0), per ported task.

One compiled rollout per task (a batch of 4 episodes of 20 steps, `jit(vmap(reset_to))` then
`jit(scan(vmap(step)))`):
  0, 1: reset vectors drawn by Meta-World itself; the reference env is set to the same vector
        (fixed-goal mode, `set_task`) and both replay Meta-World's scripted policy plus noise;
  2:    a hand-placed start at the goal (reach: goal at the tool centre; push: puck on the goal);
  3:    a vector drawn by the port, random actions, its step count starting at 490.

Tolerances, and why:
- reset observation: 1e-6. The port starts from the reference's own state after the hand reset
  (computed in native MuJoCo), so only float32 rounding differs (measured 9e-8).
- the trajectory, 20 steps: observation 2e-3 (m / quaternion units), reward 0.1. The physics
  differs: MJX in float32 vs MuJoCo in float64, MJX's solver (8 Newton iterations), and the
  puck as a 16-sided prism (models.MJX_CHANGES). Measured: 0.87 mm (reach) and 0.43 mm (push)
  after 20 steps; the v2 reward's steepest slope is about 65 per metre (10 x the long-tail
  tolerance over a 0.3 m margin), so 1 mm moves it by <= 0.07.
- reward and info on the port's own states, copied into the reference: 1e-4. Same state, so
  this checks observation assembly, reward, success and info code to float32 precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from metaworld_testing import (
    BATCH,
    STEPS,
    ReferenceEvaluator,
    env_for,
    info_vector,
    reference_rollout,
    rollout_fn,
)

from envs.metaworld import INFO_KEYS, MAX_PATH_LENGTH
from envs.metaworld.reference import reference_rand_vecs

# One worker compiles each task's rollout once (Makefile: --dist loadgroup); split over workers,
# each would compile the module-scoped fixture again (~2.5 min of CPU per task).
pytestmark = pytest.mark.xdist_group("metaworld_differential")

TASKS = ("reach-v3", "push-v3")
START_STEP = MAX_PATH_LENGTH - 10  # batch element 3 reaches the episode limit at its step 10


def hand_placed_rand_vec(task: str) -> np.ndarray:
    """A reset vector that starts at the goal (outside Meta-World's sampling, on purpose)."""
    env = env_for(task)
    if task == "reach-v3":
        return np.concatenate([[0.0, 0.65, 0.02], np.asarray(env.init_tcp())])
    if task == "push-v3":
        return np.array([0.05, 0.85, 0.02, 0.05, 0.85, 0.02])
    raise AssertionError(task)


@pytest.fixture(scope="module", params=TASKS)
def run(request):
    task = request.param
    env = env_for(task)
    ref_vecs = reference_rand_vecs(task, 2, seed=0)
    refs = [reference_rollout(task, v, STEPS, seed=i) for i, v in enumerate(ref_vecs)]
    sampled = np.asarray(jax.jit(env.sample_rand_vec)(jax.random.key(7)))
    rand_vecs = np.stack([ref_vecs[0], ref_vecs[1], hand_placed_rand_vec(task), sampled])
    rng = np.random.default_rng(3)
    actions = np.stack(
        [
            refs[0].actions,
            refs[1].actions,
            np.zeros((STEPS, 4), np.float32),
            rng.uniform(-1, 1, (STEPS, 4)).astype(np.float32),
        ]
    )
    start = np.array([0, 0, 0, START_STEP])
    assert rand_vecs.shape[0] == BATCH
    reset_obs, task_state, out = rollout_fn(task)(
        jnp.asarray(rand_vecs), jnp.asarray(actions), jnp.asarray(start)
    )
    obs, reward, done, metrics, qpos, qvel, mocap = jax.tree.map(np.asarray, out)
    return {
        "task": task,
        "rand_vecs": rand_vecs,
        "refs": refs,
        "actions": actions,
        "reset_obs": np.asarray(reset_obs),
        "task_state": jax.tree.map(np.asarray, task_state),
        "obs": obs,
        "reward": reward,
        "done": done,
        "metrics": metrics,
        "qpos": qpos,
        "qvel": qvel,
        "mocap": mocap,
    }


def test_reset_observation_matches_reference(run) -> None:
    for b, ref in enumerate(run["refs"]):
        np.testing.assert_allclose(run["reset_obs"][b], ref.obs[0], atol=1e-6, rtol=0)


def test_first_steps_match_reference(run) -> None:
    for b, ref in enumerate(run["refs"]):
        where = f"{run['task']} episode {b}"
        np.testing.assert_allclose(run["obs"][b], ref.obs[1:], atol=2e-3, rtol=0, err_msg=where)
        np.testing.assert_allclose(run["reward"][b], ref.reward, atol=0.1, rtol=0, err_msg=where)


def _evaluate_in_reference(run, b: int, steps) -> None:
    evaluator = ReferenceEvaluator(run["task"])
    state = {k: v[b] for k, v in run["task_state"].items()}
    for t in steps:
        prev = run["reset_obs"][b][:18] if t == 0 else run["obs"][b, t - 1, :18]
        obs, reward, info = evaluator(
            state,
            run["qpos"][b, t],
            run["qvel"][b, t],
            run["mocap"][b, t],
            prev,
            run["actions"][b, t],
        )
        where = f"{run['task']} episode {b} step {t}"
        np.testing.assert_allclose(run["obs"][b, t], obs, atol=1e-5, rtol=0, err_msg=where)
        np.testing.assert_allclose(run["reward"][b, t], reward, atol=1e-4, rtol=1e-4, err_msg=where)
        port = np.array([run["metrics"][k][b, t] for k in INFO_KEYS])
        np.testing.assert_allclose(port, info_vector(info), atol=1e-4, rtol=1e-4, err_msg=where)


def test_reward_and_info_on_port_states(run) -> None:
    for b in (0, 1):
        _evaluate_in_reference(run, b, range(0, STEPS, 3))


def test_hand_placed_start_at_goal_succeeds(run) -> None:
    assert run["metrics"]["success"][2, 0] == 1.0
    np.testing.assert_allclose(run["reward"][2, 0], 10.0, rtol=1e-6)
    _evaluate_in_reference(run, 2, [0])


def test_random_actions_stay_finite_and_truncate_at_500_steps(run) -> None:
    assert np.isfinite(run["obs"]).all() and np.isfinite(run["reward"]).all()
    assert np.isfinite(run["qpos"]).all()
    done = run["done"][3]
    assert done[:9].sum() == 0 and done[9] == 1.0  # step 500 of the episode
    assert run["done"][:3].sum() == 0
