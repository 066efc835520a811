"""API, bad input and reset sampling, without compiling the physics (shapes are traced with
`jax.eval_shape`; only the reset-vector sampler is compiled)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import PipelineEnv, State
from metaworld_testing import env_for
from scipy import stats

from envs.metaworld import ACTION_SIZE, INFO_KEYS, OBS_SIZE, PORTED_TASKS, TASK_NAMES, make
from envs.metaworld.reference import reference_rand_vecs


def test_task_names_are_meta_worlds_mt10() -> None:
    from metaworld.env_dict import MT10_V3

    assert tuple(MT10_V3) == TASK_NAMES


def test_unknown_task_names_and_every_mt10_task_ported() -> None:
    with pytest.raises(ValueError, match=r"task must be one of \['reach-v3', 'push-v3'"):
        make("reach")
    assert PORTED_TASKS == TASK_NAMES


@pytest.fixture(scope="module")
def abstract_state():
    """The shapes of a reset state of push-v3 (traced once: tracing MJX takes seconds)."""
    return jax.eval_shape(env_for("push-v3").reset, jax.random.key(0))


def test_brax_api_shapes(abstract_state) -> None:
    env = env_for("push-v3")
    assert isinstance(env, PipelineEnv)
    assert env.observation_size == OBS_SIZE and env.action_size == ACTION_SIZE
    state = abstract_state
    assert isinstance(state, State)
    assert state.obs.shape == (OBS_SIZE,) and state.reward.shape == () and state.done.shape == ()
    assert set(state.metrics) == set(INFO_KEYS)
    after = jax.eval_shape(env.step, state, jnp.zeros(ACTION_SIZE))
    assert after.obs.shape == (OBS_SIZE,)
    batch = jax.eval_shape(jax.vmap(env.reset), jax.random.split(jax.random.key(0), 3))
    assert batch.obs.shape == (3, OBS_SIZE)


@pytest.mark.parametrize("shape", [(3,), (5,), (2, 4), ()])
def test_wrong_action_shape(abstract_state, shape) -> None:
    env = env_for("push-v3")
    with pytest.raises(ValueError, match=r"action must have shape \(4,\)"):
        jax.eval_shape(env.step, abstract_state, jnp.zeros(shape))


def test_wrong_reset_vector_and_goals() -> None:
    env = env_for("reach-v3")
    with pytest.raises(ValueError, match=r"reset vector of reach-v3 must have shape \(6,\)"):
        jax.eval_shape(env.reset_to, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"must have shape \(K, 6\)"):
        make("reach-v3", goals=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="must lie in"):
        make("reach-v3", goals=np.ones((1, 6)))


@pytest.mark.parametrize("task", PORTED_TASKS)
def test_sampled_reset_vectors_follow_meta_world(task: str) -> None:
    """In the random reset space (for the puck tasks, object and goal >= 0.15 apart), and
    distributed as Meta-World draws them (two-sample Kolmogorov-Smirnov per coordinate)."""
    env = env_for(task)
    keys = jax.random.split(jax.random.key(1), 1000)
    ours = np.asarray(jax.jit(jax.vmap(env.sample_rand_vec))(keys))
    low, high = np.array(env.RESET_LOW), np.array(env.RESET_HIGH)
    assert np.all(ours >= low - 1e-6) and np.all(ours <= high + 1e-6)
    theirs = reference_rand_vecs(task, 100, seed=5)
    if task.startswith("drawer"):  # the case's x; y and z are fixed
        np.testing.assert_allclose(ours[:, 1:], np.broadcast_to(low[1:], (1000, 2)), atol=1e-7)
        np.testing.assert_array_equal(theirs[:, 1:], np.broadcast_to(low[1:], (100, 2)))
    elif task == "button-press-topdown-v3":  # the box's x and y; z is fixed
        np.testing.assert_allclose(ours[:, 2], low[2], atol=1e-7)
        np.testing.assert_array_equal(theirs[:, 2], low[2])
    elif task.startswith("window") or task == "door-open-v3":
        # window-open and door-open: x and y; window-close: y (x, z fixed)
        fixed = np.flatnonzero(high == low)
        np.testing.assert_allclose(
            ours[:, fixed], np.broadcast_to(low[fixed], (1000, fixed.size)), atol=1e-7
        )
        np.testing.assert_array_equal(
            theirs[:, fixed], np.broadcast_to(low[fixed], (100, fixed.size))
        )
    elif task == "peg-insert-side-v3":  # the peg's z is fixed; the block's spans 2 mm
        np.testing.assert_allclose(ours[:, 2], low[2], atol=1e-7)
        assert np.all(np.linalg.norm(ours[:, :2] - ours[:, 3:5], axis=1) >= 0.1)
    else:
        assert np.all(np.linalg.norm(ours[:, :2] - ours[:, 3:5], axis=1) >= 0.15)
    for k in np.flatnonzero(high > low):
        assert stats.ks_2samp(ours[:, k], theirs[:, k]).pvalue > 1e-3, k
    # its own float32 draws are valid fixed goals (`env.fixed_goals`, as the MT10 runs use them),
    # a fixed coordinate included (float32's 0.15 is 6e-9 above the bound)
    fixed = make(task, goals=ours[:8])
    np.testing.assert_array_equal(np.asarray(fixed.goals, np.float32), ours[:8])


def test_fixed_goal_mode() -> None:
    """`goals`: each reset draws one of the given reset vectors (one row: always that one)."""
    goals = np.array([[0.0, 0.6, 0.02, 0.1, 0.9, 0.2], [-0.05, 0.7, 0.02, -0.1, 0.85, 0.1]])
    env = make("reach-v3", goals=goals)
    keys = jax.random.split(jax.random.key(2), 64)
    drawn = np.asarray(jax.jit(jax.vmap(env.sample_rand_vec))(keys))
    rows = {tuple(np.round(r, 5)) for r in drawn}
    assert rows == {tuple(np.round(r, 5)) for r in goals.astype(np.float32)}
    single = make("reach-v3", goals=goals[0])
    drawn = np.asarray(jax.jit(jax.vmap(single.sample_rand_vec))(keys))
    np.testing.assert_array_equal(drawn, np.broadcast_to(goals[0], drawn.shape).astype(drawn.dtype))
