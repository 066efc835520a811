"""Every MT10 task under `jit(vmap(...))`: no host callback in the reset and step programs, and
whole 500-step episodes of random actions stay finite and end (truncate) at step 500."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from metaworld_testing import env_for

from envs.metaworld import CPU_COMPILER_OPTIONS, MAX_PATH_LENGTH, TASK_NAMES

BATCH = 2


def _primitives(jaxpr) -> set[str]:
    """Every primitive's name in a closed jaxpr, sub-jaxprs (scan, while, cond) included."""
    names = set()
    for eqn in jaxpr.jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.core.jaxprs_in_params(eqn.params):
            names |= _primitives(jax.extend.core.ClosedJaxpr(sub, ()))
    return names


@pytest.mark.parametrize("task", TASK_NAMES)
def test_reset_and_step_have_no_host_callback(task: str) -> None:
    env = env_for(task)
    keys = jax.random.split(jax.random.key(0), BATCH)
    reset, state = jax.make_jaxpr(jax.vmap(env.reset), return_shape=True)(keys)
    actions = jax.ShapeDtypeStruct((BATCH, 4), jnp.float32)
    step = jax.make_jaxpr(jax.vmap(env.step))(state, actions)
    for name, jaxpr in (("reset", reset), ("step", step)):
        prims = _primitives(jaxpr)
        assert "scan" in prims or "while" in prims  # the walk does reach the physics loops
        callbacks = {p for p in prims if "callback" in p}
        assert not callbacks, f"{task} {name}: host callbacks {callbacks}"


@pytest.mark.extended
@pytest.mark.parametrize("task", TASK_NAMES)
def test_random_500_step_episodes_stay_finite(task: str) -> None:
    env = env_for(task)

    def episode(key):
        k_reset, k_act = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(k_reset, BATCH))

        def body(s, k):
            a = jax.random.uniform(k, (BATCH, 4), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            finite = jnp.isfinite(s.obs).all() & jnp.isfinite(s.reward).all()
            finite &= jnp.isfinite(s.pipeline_state.qpos).all()
            return s, (finite, s.done, s.metrics["success"])

        keys = jax.random.split(k_act, MAX_PATH_LENGTH)
        return jax.lax.scan(body, state, keys)[1]

    fn = jax.jit(episode, compiler_options=CPU_COMPILER_OPTIONS)
    finite, done, success = jax.tree.map(np.asarray, fn(jax.random.key(3)))
    assert finite.all(), f"{task}: non-finite at steps {np.flatnonzero(~finite)}"
    assert (done[:-1] == 0).all() and (done[-1] == 1).all()
    assert set(np.unique(success)) <= {0.0, 1.0}
