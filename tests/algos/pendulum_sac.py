"""The Pendulum SAC learning check shared by the plain SAC test and the mask-generator test."""

from __future__ import annotations

import jax
import numpy as np

from jaxsparse.algos.maskgen import MaskGenConfig
from jaxsparse.algos.sac import SAC, SACConfig
from jaxsparse.algos.sac_envs import ContinuousGymnaxVecEnv


def pendulum_last3_returns(maskgen: MaskGenConfig | None = None) -> list[np.ndarray]:
    """Two tasks (two blocks of Pendulum-v1 copies, each with its own heads and temperature),
    two seeds under vmap, 2x64 networks, lr 1e-3, 15 updates of 1000 suite steps: the greedy
    returns ``[seeds, tasks]`` of the last three evaluations (32 episodes per task each)."""
    env = ContinuousGymnaxVecEnv("Pendulum-v1", 4, num_tasks=2)
    eval_env = ContinuousGymnaxVecEnv("Pendulum-v1", 32, num_tasks=2)
    cfg = SACConfig(
        steps_per_update=1000,
        batch_size=128,
        buffer_size=100_000,
        warmup_steps=1000,
        actor_lr=1e-3,
        critic_lr=1e-3,
        alpha_lr=1e-3,
        actor_hidden=(64, 64),
        critic_hidden=(64, 64),
    )
    sac = SAC(cfg, env, eval_env=eval_env, maskgen=maskgen)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state = jax.jit(jax.vmap(sac.init))(keys)
    # Runtime-bound: XLA's default optimisation (the suite compiles at level 0, conftest.py).
    optimised = {"xla_backend_optimization_level": 3}
    update = jax.jit(jax.vmap(sac.update), compiler_options=optimised)
    evaluate = jax.jit(jax.vmap(sac.evaluate), compiler_options=optimised)
    returns = []
    for i in range(15):
        state, metrics = update(state)
        assert bool(np.all(metrics["finite"]))
        if i >= 12:
            out = evaluate(state.params, jax.random.split(jax.random.PRNGKey(100 + i), 2))
            returns.append(np.asarray(out["return"]))
    return returns
