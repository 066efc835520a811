"""The moved body (`SawyerEnv.MOVED_BODY`): the port's forward pass, which translates the body's
subtree after MJX's kinematics on the one shared model, against `mjx.forward` on the model with
the body written to the moved position, as Meta-World writes `model.body_pos`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from metaworld_testing import env_for
from mujoco import mjx

from envs.metaworld import CPU_COMPILER_OPTIONS

MOVED_TASKS = [
    "drawer-close-v3",
    pytest.param("button-press-topdown-v3", marks=pytest.mark.extended),
    pytest.param("window-open-v3", marks=pytest.mark.extended),
]
FIELDS = ("xpos", "xipos", "xanchor", "xaxis", "xquat", "geom_xpos", "geom_xmat", "site_xpos")


@pytest.mark.parametrize("task", MOVED_TASKS)
def test_translated_subtree_matches_the_moved_model(task: str) -> None:
    env = env_for(task)
    rng = np.random.default_rng(0)
    # Two reset vectors far from the scene's position; the hand reset's state, nudged so that
    # velocities and joint positions are not at rest.
    rand_vecs = np.array([env.RESET_LOW, env.RESET_HIGH], np.float32)
    data = env._hand_reset_data()
    qpos = data.qpos + jnp.asarray(rng.normal(0, 1e-3, data.qpos.shape), data.qpos.dtype)
    qvel = jnp.asarray(rng.normal(0, 0.05, data.qvel.shape), data.qvel.dtype)
    data = data.replace(qpos=qpos, qvel=qvel)

    def both(rand_vec):
        d, task_state = env._reset_task(data, rand_vec)
        ported = env._mj_forward(d, env._moved_offset(task_state))
        body = env._mj_model.body(env.MOVED_BODY).id
        moved = env.sys.replace(body_pos=env.sys.body_pos.at[body].set(task_state["body_pos"]))
        return ported, mjx.forward(moved, d)

    fn = jax.jit(jax.vmap(both), compiler_options=CPU_COMPILER_OPTIONS)
    ported, reference = fn(jnp.asarray(rand_vecs))
    offsets = np.abs(rand_vecs - np.asarray(env._moved.default_pos)).max(axis=1)
    assert offsets.min() > 0.02, "the test must move the body"
    for field in FIELDS:
        np.testing.assert_allclose(
            getattr(ported, field), getattr(reference, field), atol=1e-5, err_msg=field
        )
    np.testing.assert_allclose(ported.qacc, reference.qacc, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(ported._impl.contact.dist, reference._impl.contact.dist, atol=1e-5)
