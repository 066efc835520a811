"""The MJX port against the installed `metaworld` (3.0.0), per ported task.

One compiled rollout per task (a batch of 4 episodes of 20 steps, 120 for pick-place so that
the scripted policy grasps and places the puck; `jit(vmap(reset_to))` then
`jit(scan(vmap(step)))`):
  0, 1: reset vectors drawn by Meta-World itself; the reference env is set to the same vector
        (fixed-goal mode, `set_task`) and both replay Meta-World's scripted policy plus noise;
  2:    a hand-placed start at the goal (reach: goal at the tool centre; push: puck on the goal;
        pick-place: goal 3 cm above the puck);
  3:    a vector drawn by the port, random actions, its step count starting at 490.

Tolerances, and why:
- reset observation: 1e-6. The port starts from the reference's own state after the hand reset
  (computed in native MuJoCo), so only float32 rounding differs (measured 9e-8).
- the trajectory, 20 steps: observation 2e-3 (m / quaternion units), reward 0.1. The physics
  differs: MJX in float32 vs MuJoCo in float64, MJX's solver (8 Newton iterations), and the
  puck as a 16-sided prism (models.MJX_CHANGES). Measured: 0.87 mm (reach), 0.43 mm (push) and
  0.35 mm (pick-place) after 20 steps; the v2 reward's steepest slope is about 65 per metre (10 x
  the long-tail tolerance over a 0.3 m margin), so 1 mm moves it by <= 0.07. Pick-place's caging
  reward is not continuous (a pad's y caging jumps from 0.1 to 1 where the pad comes within 5 cm
  of the puck, since its margin is that same distance), so there the reward error is not
  bounded by a slope: measured 0.075 in its first 20 steps (0.03 for reach and push). Its grasp,
  over 120 steps, has its own test and tolerances (test_pick_place_grasp_follows_reference).
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

from envs.metaworld import INFO_KEYS, MAX_PATH_LENGTH, PORTED_TASKS, models
from envs.metaworld.reference import reference_rand_vecs

# One worker compiles each task's rollout once (Makefile: --dist loadgroup); split over workers,
# each would compile the module-scoped fixture again (~2.5 min of CPU per task).
pytestmark = pytest.mark.xdist_group("metaworld_differential")

TASKS = PORTED_TASKS
DRAWERS = ("drawer-open-v3", "drawer-close-v3")
WINDOWS = ("window-open-v3", "window-close-v3")
# Tasks whose every reset places the object away from the goal (no hand-placed success at
# step 0): their scripted episodes are replayed long enough to succeed instead.
SCRIPTED = ("door-open-v3", *DRAWERS, "button-press-topdown-v3", "peg-insert-side-v3", *WINDOWS)
START_STEP = MAX_PATH_LENGTH - 10  # batch element 3 reaches the episode limit at its step 10
# pick-place runs long enough for the scripted policy to grasp, lift and place the puck (the
# reference succeeds at steps 52 and 52 on these two episodes), the drawers long enough for it
# to open (steps 86, 87) or close (78, 77) the drawer, door-open's for it to swing the door
# open (71, 83), peg-insert-side's for it to grasp, carry and insert the peg (75, 72); the other
# tasks run STEPS.
LONG_STEPS = {
    "pick-place-v3": 120,
    "door-open-v3": 100,
    "drawer-open-v3": 100,
    "drawer-close-v3": 100,
    "button-press-topdown-v3": 80,
    "peg-insert-side-v3": 100,
    "window-open-v3": 100,
    "window-close-v3": 100,
}
# The reset observation: the port starts from the reference's state after its hand reset, to
# float32 rounding (measured 9e-8), except drawer-open and the windows: their references read
# the observation without a forward pass after the hand reset, so the hand is where it was one
# physics step before the end of the hand reset (measured 8.3e-5 m and 6.0e-5 m off); the port
# reads it after.
RESET_ATOL = {"drawer-open-v3": 1e-4, "window-open-v3": 1e-4, "window-close-v3": 1e-4}


def hand_placed_rand_vec(task: str) -> np.ndarray:
    """A reset vector that starts at the goal (outside Meta-World's sampling, on purpose)."""
    env = env_for(task)
    if task == "reach-v3":
        return np.concatenate([[0.0, 0.65, 0.02], np.asarray(env.init_tcp())])
    if task == "push-v3":
        return np.array([0.05, 0.85, 0.02, 0.05, 0.85, 0.02])
    if task == "pick-place-v3":  # the goal 3 cm above the puck (its lowest height is 5 cm)
        return np.array([0.05, 0.85, 0.02, 0.05, 0.85, 0.05])
    if task == "door-open-v3":  # every reset shuts the door; the safe at the edge of its range
        return np.array(env.RESET_HIGH)
    if task in DRAWERS:  # every reset places the drawer; the case at the edge of its range
        return np.array([0.1, 0.9, 0.0])
    if task == "button-press-topdown-v3":  # the button always starts up; the box at a corner
        return np.array([0.1, 0.8, 0.115])
    if task == "peg-insert-side-v3":  # the peg in the hole, its head at the goal; the block
        # at a corner of its range. It drops 1.5 cm onto the hole's floor: still a success.
        box = np.array([-0.25, 0.7, 0.0])
        return np.concatenate([box + np.array([0.13, 0.0, 0.13]), box])
    if task in WINDOWS:  # every reset places the sash; the window at the edge of its range
        return np.array(env_for(task).RESET_HIGH)
    raise AssertionError(task)


# Run apart (`make test-extended`) for CI time, ~3.5-4 min of CPU each: drawer-open's, since
# drawer-close's exercise the same scene, model changes and per-episode case position in CI;
# button-press-topdown's, the windows', door-open's and peg-insert-side's, with their
# native-MuJoCo model tests (contact scan, prisms) in CI. The scripted-policy fidelity of each is
# recorded in benchmarks/RESULTS.md.
EXTENDED = (
    "door-open-v3",
    "drawer-open-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    *WINDOWS,
)


def _task_params(tasks):
    return [pytest.param(t, marks=pytest.mark.extended) if t in EXTENDED else t for t in tasks]


@pytest.fixture(scope="module", params=_task_params(TASKS))
def run(request):
    task = request.param
    env = env_for(task)
    ref_vecs = reference_rand_vecs(task, 2, seed=0)
    steps = LONG_STEPS.get(task, STEPS)
    refs = [reference_rollout(task, v, steps, seed=i) for i, v in enumerate(ref_vecs)]
    sampled = np.asarray(jax.jit(env.sample_rand_vec)(jax.random.key(7)))
    rand_vecs = np.stack([ref_vecs[0], ref_vecs[1], hand_placed_rand_vec(task), sampled])
    rng = np.random.default_rng(3)
    actions = np.stack(
        [
            refs[0].actions,
            refs[1].actions,
            np.zeros((steps, 4), np.float32),
            rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
        ]
    )
    start = np.array([0, 0, 0, START_STEP])
    assert rand_vecs.shape[0] == BATCH
    reset_obs, task_state, out = rollout_fn(task)(
        jnp.asarray(rand_vecs), jnp.asarray(actions), jnp.asarray(start)
    )
    obs, reward, done, metrics, qpos, qvel, mocap, active = jax.tree.map(np.asarray, out)
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
        "active_contacts": active,
    }


def test_reset_observation_matches_reference(run) -> None:
    atol = RESET_ATOL.get(run["task"], 1e-6)
    for b, ref in enumerate(run["refs"]):
        np.testing.assert_allclose(run["reset_obs"][b], ref.obs[0], atol=atol, rtol=0)


def test_first_steps_match_reference(run) -> None:
    for b, ref in enumerate(run["refs"]):
        where = f"{run['task']} episode {b}"
        np.testing.assert_allclose(
            run["obs"][b, :STEPS], ref.obs[1 : STEPS + 1], atol=2e-3, rtol=0, err_msg=where
        )
        np.testing.assert_allclose(
            run["reward"][b, :STEPS], ref.reward[:STEPS], atol=0.1, rtol=0, err_msg=where
        )


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
    if run["task"] in SCRIPTED and run["task"] != "peg-insert-side-v3":
        pytest.skip("never starts at the goal; see test_scripted_episodes_follow_reference")
    assert run["metrics"]["success"][2, 0] == 1.0
    np.testing.assert_allclose(run["reward"][2, 0], 10.0, rtol=1e-6)
    _evaluate_in_reference(run, 2, [0])


def test_random_actions_stay_finite_and_truncate_at_500_steps(run) -> None:
    assert np.isfinite(run["obs"]).all() and np.isfinite(run["reward"]).all()
    assert np.isfinite(run["qpos"]).all()
    done = run["done"][3]
    assert done[:9].sum() == 0 and done[9] == 1.0  # step 500 of the episode
    assert run["done"][:3].sum() == 0


def test_contact_cap_never_binds(run) -> None:
    """Where the scene caps MJX's contacts (models.MAX_CONTACT_POINTS), fewer are active at
    every step than the cap keeps, so no active contact was dropped (the scripted episodes
    push the window's sash against its stops; the random one hits what it hits)."""
    cap = models.MAX_CONTACT_POINTS.get(models.MT10_SCENES[run["task"]])
    if cap is None:
        pytest.skip("no contact cap in this scene")
    assert run["active_contacts"].max() < cap, run["active_contacts"].max(axis=(0, 1))
    assert run["active_contacts"].max() > 0  # the count does see contacts


@pytest.mark.parametrize("run", ["pick-place-v3"], indirect=True)
def test_pick_place_grasp_follows_reference(run) -> None:
    """Episodes 0 and 1 replayed open-loop for 120 steps: the reference's scripted actions grasp,
    lift and carry the puck to the goal (first success at step 52 in both), and the port must
    do the same through MJX's contacts (pads against the 16-sided prism).

    Tolerances, with the values measured (mujoco-mjx 3.17 on CPU, float32):
    - success, grasp_success and near_object: the same at every step but 2 per flag (measured:
      identical at all 120 steps);
    - hand and puck positions within 3 mm at every step (measured 1.1 mm and 1.3 mm);
    - the whole observation within 0.05 (measured 0.034 in the finger opening while the fingers
      close on the puck, i.e. 3.4 mm of claw separation for a step or two, and 0.031 in the
      puck's quaternion while it is held; these are not positions in metres);
    - rewards within 0.1 at every step but 2 (measured: one step, where the object-to-goal
      distance crosses the 5 cm of the reward's 10 one step apart: 5.7), and the 120-step
      return within 2 % (measured 0.85 % and 0.01 %).
    """
    for b, ref in enumerate(run["refs"]):
        where = f"pick-place episode {b}"
        assert ref.obs[:, 6].max() > 0.04, where  # the reference lifts the puck
        assert any(i["success"] for i in ref.info), where
        for k in ("success", "grasp_success", "near_object"):
            theirs = np.array([i[k] for i in ref.info], float)
            differ = np.flatnonzero(run["metrics"][k][b] != theirs)
            assert differ.size <= 2, f"{where}: {k} differs at steps {differ}"
        err = np.abs(run["obs"][b] - ref.obs[1:])
        assert err[:, 0:3].max() < 3e-3 and err[:, 4:7].max() < 3e-3, where
        assert err.max() < 0.05, (where, err.max(axis=0))
        reward_err = np.abs(run["reward"][b] - ref.reward)
        assert np.sum(reward_err > 0.1) <= 2, (where, np.flatnonzero(reward_err > 0.1))
        np.testing.assert_allclose(run["reward"][b].sum(), ref.reward.sum(), rtol=0.02)


# door-open's hand and handle: 15 mm. The door swings fast once pulled (the handle moves up to
# 1 cm per step), and the port's first success comes one step after the reference's (72 and
# 84 against 71 and 83): measured 11.3 and 11.2 mm at the swing, 3.5 and 3.3 mm at step 100,
# returns within 0.6 % and 1.9 %. Native MuJoCo on the changed model shows the same (6.8 and
# 8.7 mm while the fingers land on the grip; 4e-6 m with every change undone): the grown finger
# boxes and the grip's prisms, not MJX.
# peg-insert-side's peg: 6 mm. The peg is held by the pads' friction and pushed into the hole's
# walls: measured 4.1 and 3.7 mm (hand 0.9 and 1.0 mm), the first success at the reference's
# step (75, 72), returns within 0.02 % and 1.2 % over 100 steps.
SCRIPTED_POSITION_ATOL = {"door-open-v3": 0.015, "peg-insert-side-v3": 0.006}


@pytest.mark.parametrize("run", _task_params(SCRIPTED), indirect=True)
def test_scripted_episodes_follow_reference(run) -> None:
    """Episodes 0 and 1 replayed open-loop: the reference's scripted actions open (close) the
    drawer, first success at steps 86 and 87 (78 and 77), or press the button, first success at
    steps 70 and 71; the port must do the same through MJX's contacts (fingers and gripper base
    against the handle and the front; fingers on the button's cap, the collar in the hole).

    Tolerances (mujoco-mjx 3.17 on CPU, float32): first success within 1 step; success flags
    equal at every step but 2; hand and object within 3 mm and the return within 3 %, at every
    step for the drawers (100 steps), up to the first success for the button (80 steps). Measured
    on drawer-close's 4 episodes: the same first-success step, hand within 0.93 mm and handle
    within 2.2 mm. The button, measured over 4 episodes of 150 steps: success equal at every
    step; hand within 2.5 mm and button within 1.2 mm up to the first success, returns up to it
    within 0.2 %. Beyond it the press goes on through the joint's soft limit and the fingers
    sink into the cap: in the reference by up to 25 mm on one contact point per finger, after
    which a finger slips off the cap's edge; MJX
    collides the prism with up to 4 points per finger, and holds the hand up to 15 mm higher, on
    the cap (150-step returns 13-26 % above the reference's, since the reward stays at 8.4
    where the reference's drops to 3.5 when the finger slips). Reward and info on the port's
    states around the first success, evaluated by the reference, to float32 precision.
    """
    for b, ref in enumerate(run["refs"]):
        where = f"{run['task']} episode {b}"
        theirs = np.array([i["success"] for i in ref.info], float)
        ours = run["metrics"]["success"][b]
        assert theirs.any() and ours.any(), where
        assert abs(int(theirs.argmax()) - int(ours.argmax())) <= 1, where
        assert np.sum(theirs != ours) <= 2, where
        first = int(ours.argmax())
        until = first + 1 if run["task"] == "button-press-topdown-v3" else len(ours)
        err = np.abs(run["obs"][b, :until] - ref.obs[1 : until + 1])
        atol = SCRIPTED_POSITION_ATOL.get(run["task"], 3e-3)
        assert err[:, 0:3].max() < atol and err[:, 4:7].max() < atol, (where, err.max(axis=0))
        np.testing.assert_allclose(
            run["reward"][b, :until].sum(), ref.reward[:until].sum(), rtol=0.03, err_msg=where
        )
        _evaluate_in_reference(run, b, range(first - 2, first + 2))
